//! The parts of a Resource Manager id a fix needs. ARM ids are case-insensitive and alerts
//! spell them either way, so segments are compared ignoring ASCII case, and the id keeps the
//! spelling it arrived with.

/// The id up to and including `<type_segment>/<name>`: the storage account of a container,
/// the network security group of one of its rules. `None` when the id has no such segment.
pub fn through(id: &str, type_segment: &str) -> Option<String> {
    let segments: Vec<&str> = id.split('/').filter(|s| !s.is_empty()).collect();
    let at = segments
        .iter()
        .rposition(|s| s.eq_ignore_ascii_case(type_segment))?;
    let name = segments.get(at + 1)?;
    if name.is_empty() {
        return None;
    }
    Some(format!("/{}", segments[..=at + 1].join("/")))
}

/// The value after `<type_segment>` (a rule's name, a resource group's name).
pub fn value_after<'a>(id: &'a str, type_segment: &str) -> Option<&'a str> {
    let segments: Vec<&str> = id.split('/').filter(|s| !s.is_empty()).collect();
    let at = segments
        .iter()
        .rposition(|s| s.eq_ignore_ascii_case(type_segment))?;
    segments.get(at + 1).copied()
}

/// The resource's own name: the id's last segment.
pub fn name(id: &str) -> &str {
    id.trim_end_matches('/').rsplit('/').next().unwrap_or(id)
}

/// Whether `id` is a Resource Manager id at all (an alert may carry a bare name).
pub fn is_arm_id(id: &str) -> bool {
    id.starts_with("/subscriptions/") && value_after(id, "providers").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: &str = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/web/securityRules/rdp";

    #[test]
    fn an_id_is_cut_after_the_named_type_whatever_its_case() {
        assert_eq!(
            through(RULE, "networksecuritygroups").as_deref(),
            Some("/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/web")
        );
        assert_eq!(through(RULE, "storageAccounts"), None);
        assert_eq!(
            through("/subscriptions/s1/resourceGroups", "resourceGroups"),
            None
        );
        assert_eq!(value_after(RULE, "securityRules"), Some("rdp"));
        assert_eq!(value_after(RULE, "resourcegroups"), Some("rg"));
        assert_eq!(name(RULE), "rdp");
        assert!(is_arm_id(RULE));
        assert!(!is_arm_id("paymentsexports"));
    }
}
