//! Security Command Center notifications (`{"notificationConfigName", "finding": {...}}`,
//! both the older finding shape and the newer one with `findingClass`, `finding.resource`
//! and a top-level `resource`) → `gcp.scc`.
//!
//! State `INACTIVE` → `alarm_resolved` (without the source severity: nothing is urgent any
//! more). Otherwise by category: `PUBLIC_BUCKET_ACL` → `bucket_public`, `OPEN_*_PORT` and
//! `OPEN_FIREWALL` → `firewall_open`, threats → `threat_detected`, anything else →
//! `compliance_violation`. A threat is `findingClass: THREAT`, or, in the older shape, an
//! Event/Container Threat Detection finding: an ETD `detectionCategory` property, a source
//! named "… Threat Detection", or a category in ETD's `Tactic: technique` form.
//! Severity is `finding.severity` (LOW → INFO), else the older `SeverityLevel` property.
//! `account_id` is the project (display id when given, else the number in the resource
//! name), or the organization number when the finding names no project.

use crate::normalize::JsonAt;
use crate::resource_types::gcp as gcp_types;
use serde_json::{Map, Value};

use super::{first_str, non_empty, resource};
use crate::event::{EventSource, EventType, Severity};
use crate::normalize::{required_str, str_at, EventDraft, NormalizeError};

const ENVELOPE: &str = "Security Command Center notification";

/// MITRE ATT&CK tactic prefixes of Event Threat Detection categories ("Malware: Bad IP").
const THREAT_TACTICS: &[&str] = &[
    "malware",
    "c2",
    "command and control",
    "persistence",
    "privilege escalation",
    "defense evasion",
    "evasion",
    "credential access",
    "discovery",
    "lateral movement",
    "collection",
    "exfiltration",
    "impact",
    "initial access",
    "execution",
    "brute force",
    "cryptomining",
    "reconnaissance",
    "resource development",
    "active scan",
    "log4j malware",
];

/// Container Threat Detection categories, which have no tactic prefix.
const CONTAINER_THREATS: &[&str] = &[
    "added binary executed",
    "added library loaded",
    "reverse shell",
    "malicious script executed",
    "malicious url observed",
    "unexpected child shell",
];

pub(super) fn is_notification(object: &Map<String, Value>) -> bool {
    object
        .get("finding")
        .and_then(Value::as_object)
        .is_some_and(|finding| {
            object.contains_key("notificationConfigName")
                || finding.contains_key("category")
                || finding.contains_key("findingClass")
        })
}

fn severity_of(text: &str) -> Option<Severity> {
    match text.trim().to_ascii_uppercase().as_str() {
        "CRITICAL" => Some(Severity::Critical),
        "HIGH" => Some(Severity::High),
        "MEDIUM" => Some(Severity::Medium),
        "LOW" => Some(Severity::Info),
        _ => None,
    }
}

fn is_threat(finding: &Value, category: &str) -> bool {
    let lower = category.trim().to_ascii_lowercase();
    str_at(finding, "/findingClass").is_some_and(|c| c.eq_ignore_ascii_case("THREAT"))
        || finding.at("/sourceProperties/detectionCategory").is_some()
        || str_at(finding, "/sourceDisplayName").is_some_and(|s| s.contains("Threat Detection"))
        || lower
            .split_once(':')
            .is_some_and(|(tactic, _)| THREAT_TACTICS.contains(&tactic.trim()))
        || CONTAINER_THREATS.contains(&lower.as_str())
}

fn classify(finding: &Value, category: &str, state: &str) -> EventType {
    let upper = category.trim().to_ascii_uppercase();
    if state.eq_ignore_ascii_case("INACTIVE") {
        EventType::AlarmResolved
    } else if upper == "PUBLIC_BUCKET_ACL" {
        EventType::BucketPublic
    } else if upper == "OPEN_FIREWALL" || (upper.starts_with("OPEN_") && upper.ends_with("_PORT")) {
        EventType::FirewallOpen
    } else if is_threat(finding, category) {
        EventType::ThreatDetected
    } else {
        EventType::ComplianceViolation
    }
}

pub(super) fn drafts(value: &Value) -> Result<Vec<EventDraft>, NormalizeError> {
    let finding_name = required_str(value, "/finding/name", ENVELOPE)?;
    let category = required_str(value, "/finding/category", ENVELOPE)?;
    let finding = value.get("finding").unwrap_or(&Value::Null);
    let state = str_at(finding, "/state").unwrap_or("");
    let event_type = classify(finding, category, state);

    let mut draft = EventDraft::for_payload(EventSource::GcpScc, event_type);
    if event_type != EventType::AlarmResolved {
        draft.source_severity =
            first_str(finding, &["/severity", "/sourceProperties/SeverityLevel"])
                .and_then(severity_of);
    }

    // The newer shape describes the resource inside the finding, the notification's
    // top-level `resource` does in between; fields are snake_case or camelCase.
    // Both resource objects are looked up once, not per field and spelling.
    let resources = [finding.get("resource"), value.get("resource")];
    let described = |snake: &str, camel: &str| {
        resources
            .iter()
            .flatten()
            .find_map(|r| non_empty(r.get(snake)).or_else(|| non_empty(r.get(camel))))
    };
    let properties = finding.get("sourceProperties");
    let property = |name: &str| properties.and_then(|p| p.get(name));
    let resource_name =
        non_empty(finding.get("resourceName")).or_else(|| described("name", "name"));

    draft.account_id = described("project_display_name", "projectDisplayName")
        .or_else(|| non_empty(property("ProjectId")))
        .or_else(|| resource_name.and_then(resource::project_from_name))
        .or_else(|| described("project_name", "projectName").and_then(resource::project_from_name))
        .or_else(|| resource::parent_id(finding_name, "projects"))
        .or_else(|| resource::parent_id(finding_name, "organizations"))
        .unwrap_or("")
        .to_string();
    draft.region = resource_name
        .and_then(resource::region_from_name)
        .or_else(|| described("location", "location").and_then(resource::region_from_location));

    draft.resource.kind = described("type", "type")
        .and_then(resource::kind_from_asset_type)
        .or_else(|| {
            resource_name
                .and_then(resource::kind_from_resource_name)
                .map(str::to_string)
        })
        .unwrap_or_else(|| gcp_types::RESOURCE.into());
    draft.resource.id = resource_name.unwrap_or("").to_string();
    draft.resource.name = described("display_name", "displayName")
        .or_else(|| non_empty(finding.get("assetDisplayName")))
        .or_else(|| resource_name.map(resource::last_segment))
        .unwrap_or("")
        .to_string();

    let metadata = &mut draft.resource.metadata;
    metadata.insert("finding_name".into(), Value::from(finding_name));
    metadata.insert("category".into(), Value::from(category));
    for (key, field) in [
        ("state", finding.get("state")),
        ("finding_class", finding.get("findingClass")),
        ("severity", finding.get("severity")),
        ("source_display_name", finding.get("sourceDisplayName")),
        ("external_uri", finding.get("externalUri")),
        ("mute", finding.get("mute")),
        ("notification_config", value.get("notificationConfigName")),
        ("scanner_name", property("ScannerName")),
        ("explanation", property("Explanation")),
        ("recommendation", property("Recommendation")),
        ("exposed_service", property("ExposedService")),
    ] {
        if let Some(text) = non_empty(field) {
            metadata.insert(key.into(), Value::from(text));
        }
    }
    for (key, field) in [
        ("open_ports", property("OpenPorts")),
        ("detection_category", property("detectionCategory")),
        ("security_marks", finding.at("/securityMarks/marks")),
    ] {
        if let Some(v) = field.filter(|v| !v.is_null()) {
            metadata.insert(key.into(), v.clone());
        }
    }

    let event_time = first_str(finding, &["/eventTime", "/createTime"]);
    draft.time = event_time.map(str::to_string);
    draft.id_parts = vec![
        finding_name.to_string(),
        event_time.unwrap_or("").to_string(),
    ];
    Ok(vec![draft])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kind(category: &str, extra: Value) -> EventType {
        let mut finding = json!({"name": "organizations/1/sources/2/findings/f", "category": category, "state": "ACTIVE"});
        if let (Some(f), Some(e)) = (finding.as_object_mut(), extra.as_object()) {
            f.extend(e.clone());
        }
        classify(&finding, category, str_at(&finding, "/state").unwrap_or(""))
    }

    #[test]
    fn categories() {
        assert_eq!(
            kind("PUBLIC_BUCKET_ACL", json!({})),
            EventType::BucketPublic
        );
        assert_eq!(kind("OPEN_SSH_PORT", json!({})), EventType::FirewallOpen);
        assert_eq!(kind("OPEN_RDP_PORT", json!({})), EventType::FirewallOpen);
        assert_eq!(kind("OPEN_FIREWALL", json!({})), EventType::FirewallOpen);
        assert_eq!(kind("C2: Bad IP", json!({})), EventType::ThreatDetected);
        assert_eq!(
            kind("Malware: Bad Domain", json!({})),
            EventType::ThreatDetected
        );
        assert_eq!(
            kind("Added Binary Executed", json!({})),
            EventType::ThreatDetected
        );
        assert_eq!(
            kind("SOMETHING_NEW", json!({"findingClass": "THREAT"})),
            EventType::ThreatDetected
        );
        assert_eq!(
            kind("FLOW_LOGS_DISABLED", json!({})),
            EventType::ComplianceViolation
        );
        assert_eq!(
            kind("OPEN_SSH_PORT", json!({"state": "INACTIVE"})),
            EventType::AlarmResolved
        );
    }

    #[test]
    fn severity_table() {
        assert_eq!(severity_of("CRITICAL"), Some(Severity::Critical));
        assert_eq!(severity_of("HIGH"), Some(Severity::High));
        assert_eq!(severity_of("Medium"), Some(Severity::Medium));
        assert_eq!(severity_of("LOW"), Some(Severity::Info));
        assert_eq!(severity_of("SEVERITY_UNSPECIFIED"), None);
    }

    #[test]
    fn id_changes_with_event_time_and_missing_name_is_named() {
        let at = |t: &str| json!({"finding": {"name": "organizations/1/sources/2/findings/f", "category": "X", "eventTime": t}});
        let a = drafts(&at("2024-01-01T00:00:00Z")).unwrap_or_default();
        let b = drafts(&at("2024-01-02T00:00:00Z")).unwrap_or_default();
        assert_ne!(
            a.first().map(|d| &d.id_parts),
            b.first().map(|d| &d.id_parts)
        );
        assert_eq!(a.first().map(|d| d.account_id.as_str()), Some("1"));
        let err = drafts(&json!({"finding": {"category": "X"}}))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("finding.name"), "{err}");
    }
}
