//! Azure Resource Manager ids: `/subscriptions/{id}/resourceGroups/{rg}/providers/{ns}/{type}/{name}/…`.
//!
//! ARM treats ids case-insensitively and Azure's own payloads mix spellings
//! (`Microsoft.Compute/virtualMachines` beside `microsoft.compute/virtualmachines`), so
//! every comparison here ignores ASCII case. Parsing is lenient: published samples carry
//! placeholders such as `{subscription-id}` or `<ResourceType>`, which are kept as text.

use crate::normalize::snake_case;
use crate::resource_types::azure as azure_types;

/// The parts of an ARM id this crate needs; borrowed from the id text.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct ArmId<'a> {
    pub subscription: Option<&'a str>,
    pub resource_group: Option<&'a str>,
    /// Namespace after the last `providers` segment (extension resources nest providers).
    pub namespace: Option<&'a str>,
    /// Type segments after the namespace, e.g. `["storageAccounts", "blobServices"]`.
    pub types: Vec<&'a str>,
    /// The last segment of the id: the resource's own name.
    pub name: Option<&'a str>,
    /// The value after a `locations` type segment (Defender alerts live under one).
    pub location: Option<&'a str>,
}

impl<'a> ArmId<'a> {
    pub fn parse(id: &'a str) -> ArmId<'a> {
        // One pass over the segments, without collecting them: ids are parsed several
        // times per event. Every segment is tested, values included, as before.
        let mut segments = id.split('/').filter(|s| !s.is_empty()).peekable();
        let mut parsed = ArmId::default();
        let mut after_providers = None;
        while let Some(segment) = segments.next() {
            let next = segments.peek().copied();
            parsed.name = Some(segment);
            if segment.eq_ignore_ascii_case("subscriptions") && parsed.subscription.is_none() {
                parsed.subscription = next;
            } else if segment.eq_ignore_ascii_case("resourceGroups")
                && parsed.resource_group.is_none()
            {
                parsed.resource_group = next;
            } else if segment.eq_ignore_ascii_case("providers") && next.is_some() {
                after_providers = Some(segments.clone());
            }
        }
        if let Some(mut rest) = after_providers {
            parsed.namespace = rest.next();
            // `type/name` pairs; the last may lack its name.
            while let Some(kind) = rest.next() {
                parsed.types.push(kind);
                let value = rest.next();
                if kind.eq_ignore_ascii_case("locations") {
                    parsed.location = value;
                }
            }
        }
        parsed
    }

    /// `Namespace/type/subtype` as spelled in the id (its capitals mark word breaks).
    pub fn type_path(&self) -> Option<String> {
        let mut path = self.namespace?.to_string();
        for kind in &self.types {
            path.push('/');
            path.push_str(kind);
        }
        Some(path)
    }

    /// The snake_case `resource.type` for this id (see [`resource_kind`]).
    pub fn kind(&self) -> String {
        match self.type_path() {
            Some(path) if !self.types.is_empty() => resource_kind(&path),
            _ if self.resource_group.is_some() => azure_types::RESOURCE_GROUP.into(),
            _ if self.subscription.is_some() => azure_types::SUBSCRIPTION.into(),
            _ => azure_types::RESOURCE.into(),
        }
    }
}

/// Well-known ARM types with the short names operators use; anything else becomes
/// `azure_` + the singular snake_case of its last type segment.
const KNOWN_KINDS: &[(&str, &str)] = &[
    ("microsoft.compute/virtualmachines", azure_types::VM),
    ("microsoft.compute/virtualmachinescalesets", "azure_vmss"),
    ("microsoft.compute/disks", azure_types::DISK),
    (
        "microsoft.storage/storageaccounts",
        azure_types::STORAGE_ACCOUNT,
    ),
    (
        "microsoft.storage/storageaccounts/blobservices/containers",
        azure_types::BLOB_CONTAINER,
    ),
    ("microsoft.network/networksecuritygroups", azure_types::NSG),
    (
        "microsoft.network/networksecuritygroups/securityrules",
        azure_types::NSG_RULE,
    ),
    ("microsoft.network/publicipaddresses", "azure_public_ip"),
    ("microsoft.network/virtualnetworks", "azure_vnet"),
    ("microsoft.network/networkinterfaces", "azure_nic"),
    ("microsoft.network/loadbalancers", "azure_load_balancer"),
    ("microsoft.sql/servers", "azure_sql_server"),
    ("microsoft.sql/servers/databases", "azure_sql_database"),
    ("microsoft.keyvault/vaults", "azure_key_vault"),
    ("microsoft.web/sites", "azure_app_service"),
    (
        "microsoft.containerservice/managedclusters",
        "azure_aks_cluster",
    ),
    (
        "microsoft.documentdb/databaseaccounts",
        "azure_cosmosdb_account",
    ),
    (
        "microsoft.operationalinsights/workspaces",
        "azure_log_analytics_workspace",
    ),
    ("microsoft.eventhub/namespaces", "azure_event_hub_namespace"),
    (
        "microsoft.resourcehealth/events",
        "azure_service_health_event",
    ),
    (
        "microsoft.security/locations/alerts",
        "azure_security_alert",
    ),
];

/// `resource.type` for an ARM type path `Namespace/type[/subtype…]`, spelled any way
/// (`Microsoft.Compute/virtualMachines`, `microsoft.compute/virtualmachines`).
pub(super) fn resource_kind(type_path: &str) -> String {
    let lower = type_path.trim_matches('/').to_ascii_lowercase();
    if let Some((_, kind)) = KNOWN_KINDS.iter().find(|(path, _)| *path == lower) {
        return (*kind).to_string();
    }
    // Take the last segment from the original spelling: its capitals mark word breaks.
    let last = type_path
        .trim_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    let words = singular(&snake_case(last));
    if words.is_empty() {
        azure_types::RESOURCE.into()
    } else {
        format!("azure_{words}")
    }
}

/// English plural of the last word → singular, for ARM's plural collection names
/// (`workspaces`, `policies`, `addresses`); resource kinds are singular like `s3_bucket`.
fn singular(words: &str) -> String {
    let (head, last) = match words.rsplit_once('_') {
        Some((head, last)) => (Some(head), last),
        None => (None, words),
    };
    let last = if let Some(stem) = last.strip_suffix("ies") {
        format!("{stem}y")
    } else if let Some(stem) = last.strip_suffix("sses") {
        format!("{stem}ss")
    } else if let Some(stem) = last.strip_suffix("uses") {
        format!("{stem}us")
    } else if last.ends_with("ss") || last.ends_with("us") || last.len() <= 3 {
        last.to_string()
    } else if let Some(stem) = last.strip_suffix('s') {
        stem.to_string()
    } else {
        last.to_string()
    };
    match head {
        Some(head) => format!("{head}_{last}"),
        None => last,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_nested_id_case_insensitively() {
        let id = ArmId::parse(
            "/subscriptions/s-1/resourcegroups/rg/providers/microsoft.compute/virtualmachines/vm1",
        );
        assert_eq!(id.subscription, Some("s-1"));
        assert_eq!(id.resource_group, Some("rg"));
        assert_eq!(id.name, Some("vm1"));
        assert_eq!(id.kind(), "azure_vm");
        let upper = ArmId::parse(
            "/SUBSCRIPTIONS/s-1/RESOURCEGROUPS/rg/PROVIDERS/Microsoft.Compute/virtualMachines/vm1",
        );
        assert_eq!(upper.kind(), "azure_vm");
        assert_eq!(upper.subscription, Some("s-1"));
    }

    #[test]
    fn kinds_for_scopes_and_unknown_types() {
        assert_eq!(
            ArmId::parse("/subscriptions/s").kind(),
            "azure_subscription"
        );
        assert_eq!(
            ArmId::parse("/subscriptions/s/resourceGroups/rg").kind(),
            "azure_resource_group"
        );
        assert_eq!(
            ArmId::parse("/subscriptions/s/providers/Microsoft.Consumption/budgets/b").kind(),
            "azure_budget"
        );
        assert_eq!(
            resource_kind("Microsoft.EventHub/namespaces/AuthorizationRules"),
            "azure_authorization_rule"
        );
        assert_eq!(
            resource_kind("Microsoft.Authorization/policies"),
            "azure_policy"
        );
        assert_eq!(
            resource_kind("Microsoft.Network/applicationGatewayWebApplicationFirewallPolicies"),
            "azure_application_gateway_web_application_firewall_policy"
        );
        assert_eq!(
            resource_kind("Microsoft.Network/ipAddresses"),
            "azure_ip_address"
        );
        assert_eq!(
            resource_kind("<ProviderNamespace>/<ResourceType>"),
            "azure_resource_type"
        );
        assert_eq!(resource_kind(""), "azure_resource");
        assert_eq!(ArmId::parse("").kind(), "azure_resource");
    }

    #[test]
    fn extension_resources_use_the_last_provider_and_find_locations() {
        let id = ArmId::parse("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm/providers/Microsoft.ResourceHealth/availabilityStatuses/current");
        assert_eq!(id.namespace, Some("Microsoft.ResourceHealth"));
        assert_eq!(id.kind(), "azure_availability_status");
        let alert = ArmId::parse("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Security/locations/centralus/alerts/a1");
        assert_eq!(alert.location, Some("centralus"));
        assert_eq!(alert.kind(), "azure_security_alert");
    }

    #[test]
    fn snake_case_handles_acronyms_and_placeholders() {
        assert_eq!(snake_case("publicIPAddresses"), "public_ip_addresses");
        assert_eq!(
            snake_case("virtualMachineScaleSets"),
            "virtual_machine_scale_sets"
        );
        assert_eq!(snake_case("<ResourceType>"), "resource_type");
        assert_eq!(snake_case("{name}"), "name");
    }
}
