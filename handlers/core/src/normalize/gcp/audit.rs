//! Cloud Audit Log entries (a log sink's `LogEntry`, or Eventarc's `LogEntryData`, which is
//! the same JSON) → `gcp.audit`.
//!
//! Classification of the `protoPayload.methodName`:
//! - a storage IAM change (`storage.setIamPermissions`, or any storage call whose policy
//!   delta ADDs `allUsers`/`allAuthenticatedUsers`) granting the public → `bucket_public`;
//!   other `setIamPermissions`/`SetIamPolicy` → `resource_changed` (public grants still
//!   listed in metadata);
//! - `compute.firewalls.insert/update/patch` of an enabled ingress allow rule open to
//!   0.0.0.0/0 or ::/0 → `firewall_open`. On insert and update (full replacements) an absent
//!   `sourceRanges` with no `sourceTags`/`sourceServiceAccounts` is GCP's 0.0.0.0/0 default;
//!   on patch an absent field means "unchanged", so only explicit open ranges count;
//! - `compute.instances.start/stop/reset/suspend/resume` → `instance_state_changed`;
//! - insert/create → `resource_created`, delete → `resource_deleted`, other writes →
//!   `resource_changed`.
//!
//! Entries that describe no change yield no event: failed calls (`status.code` ≠ 0), reads
//! (get/list/… in Data Access logs) and the closing entry of a long-running operation
//! (`operation.last` without `first`; its opening entry was already reported).

use crate::normalize::JsonAt;
use crate::resource_types::gcp as gcp_types;
use serde_json::{Map, Value};

use super::{non_empty, resource};
use crate::event::{EventSource, EventType};
use crate::normalize::{required_str, str_at, tags_from, EventDraft, NormalizeError};

const ENVELOPE: &str = "Cloud Audit Log entry";
const AUDIT_LOG_TYPE: &str = "type.googleapis.com/google.cloud.audit.AuditLog";
const PUBLIC_MEMBERS: &[&str] = &["allUsers", "allAuthenticatedUsers"];
const OPEN_RANGES: &[&str] = &["0.0.0.0/0", "::/0"];
/// Method verbs (lowercased last segment prefixes) that read without changing anything.
const READ_VERBS: &[&str] = &[
    "get",
    "list",
    "aggregatedlist",
    "search",
    "testiampermissions",
    "read",
    "query",
    "lookup",
];

/// A `LogEntry`: an audit `protoPayload`, or any entry with a `logName` and a payload (the
/// latter is recognised so the error can say it is not an audit log).
pub(super) fn is_log_entry(object: &Map<String, Value>) -> bool {
    object.get("protoPayload").is_some_and(Value::is_object)
        || (object.get("logName").is_some_and(Value::is_string)
            && ["jsonPayload", "textPayload", "insertId"]
                .iter()
                .any(|k| object.contains_key(*k)))
}

pub(super) fn drafts(value: &Value) -> Result<Vec<EventDraft>, NormalizeError> {
    // Most fields live under `protoPayload`: look it up once and read them relative to it
    // (`Null` when absent, so every field below reads as missing).
    let proto = value.get("protoPayload").unwrap_or(&Value::Null);
    let is_audit = match proto.get("@type") {
        Some(Value::String(t)) => t == AUDIT_LOG_TYPE,
        Some(_) => false,
        // Some exporters drop `@type`; an audit entry still has a method name.
        None => proto.get("methodName").is_some(),
    };
    if !is_audit {
        let log = str_at(value, "/logName").unwrap_or("unnamed log");
        return Err(NormalizeError::unrecognized(
            format!("Cloud Logging entry (logName {log})"),
            "it is not an audit log entry (no protoPayload of type google.cloud.audit.AuditLog); \
             route only cloudaudit.googleapis.com logs here",
        ));
    }
    let method = required_str(value, "/protoPayload/methodName", ENVELOPE)?;
    let verb = method
        .rsplit('.')
        .next()
        .unwrap_or(method)
        .to_ascii_lowercase();

    let failed = proto
        .at("/status/code")
        .and_then(Value::as_i64)
        .is_some_and(|code| code != 0);
    let is_read = READ_VERBS.iter().any(|v| verb.starts_with(v));
    let operation = value.get("operation");
    let operation_flag = |name: &str| operation.and_then(|o| o.get(name)).and_then(Value::as_bool);
    let is_operation_end =
        operation_flag("last") == Some(true) && operation_flag("first") != Some(true);
    if failed || is_read || is_operation_end {
        return Ok(Vec::new());
    }

    let service = str_at(proto, "/serviceName").unwrap_or("");
    let monitored_type = str_at(value, "/resource/type").unwrap_or("");
    let resource_name = non_empty(proto.get("resourceName"));
    let request = proto.get("request");
    let labels = value.at("/resource/labels");
    let log_name = str_at(value, "/logName");

    let public_grants = public_grants(proto);
    let is_storage = service == "storage.googleapis.com" || monitored_type == gcp_types::GCS_BUCKET;
    let is_firewall_write = method.contains("compute.firewalls.")
        && ["insert", "update", "patch"].contains(&verb.as_str());
    let firewall_open = is_firewall_write && firewall_opens_to_world(request, &verb);

    let event_type = if is_storage && !public_grants.is_empty() {
        EventType::BucketPublic
    } else if firewall_open {
        EventType::FirewallOpen
    } else if method.contains("compute.instances.")
        && ["start", "stop", "reset", "suspend", "resume"].contains(&verb.as_str())
    {
        EventType::InstanceStateChanged
    } else if verb.starts_with("insert") || verb.starts_with("create") {
        EventType::ResourceCreated
    } else if verb.starts_with("delete") {
        EventType::ResourceDeleted
    } else {
        EventType::ResourceChanged
    };

    let mut draft = EventDraft::for_payload(EventSource::GcpAudit, event_type);
    let label = |name: &str| non_empty(labels.and_then(|l| l.get(name)));
    draft.account_id = label("project_id")
        .or_else(|| log_name.and_then(resource::project_from_name))
        .or_else(|| resource_name.and_then(resource::project_from_name))
        .or_else(|| {
            let log = log_name?;
            ["organizations", "folders", "billingAccounts"]
                .iter()
                .find_map(|c| resource::parent_id(log, c))
        })
        .unwrap_or("")
        .to_string();
    draft.region = region(proto, labels, resource_name);

    draft.resource.kind = resource::kind_from_monitored_type(monitored_type)
        .map(str::to_string)
        .or_else(|| {
            resource_name
                .and_then(resource::kind_from_resource_name)
                .map(str::to_string)
        })
        .unwrap_or_else(|| resource::kind_from_unknown_monitored_type(monitored_type));
    draft.resource.id = resource_name
        .map(str::to_string)
        .or_else(|| label("bucket_name").map(|b| format!("projects/_/buckets/{b}")))
        .unwrap_or_default();
    draft.resource.name = resource_name
        .map(resource::last_segment)
        .or_else(|| request.and_then(|r| non_empty(r.get("name"))))
        .unwrap_or("")
        .to_string();
    // Labels of the resource as written by this call; an audit entry has no other source.
    draft.resource.tags = [
        "/request/labels",
        "/request/properties/labels",
        "/request/resource/labels",
        "/response/labels",
    ]
    .iter()
    .find_map(|p| proto.at(p).filter(|v| v.is_object()))
    .map(|labels| tags_from(Some(labels)))
    .unwrap_or_default();

    let metadata = &mut draft.resource.metadata;
    metadata.insert("method_name".into(), Value::from(method));
    for (key, text) in [
        ("service_name", non_empty(proto.get("serviceName"))),
        (
            "principal_email",
            non_empty(proto.at("/authenticationInfo/principalEmail")),
        ),
        (
            "caller_ip",
            non_empty(proto.at("/requestMetadata/callerIp")),
        ),
        ("log_name", log_name.filter(|s| !s.trim().is_empty())),
        ("insert_id", non_empty(value.get("insertId"))),
        (
            "operation_id",
            non_empty(operation.and_then(|o| o.get("id"))),
        ),
    ] {
        if let Some(text) = text {
            metadata.insert(key.into(), Value::from(text));
        }
    }
    if let Some(monitored) = value.get("resource").filter(|v| v.is_object()) {
        metadata.insert("monitored_resource".into(), monitored.clone());
    }
    if !public_grants.is_empty() {
        metadata.insert("public_grants".into(), Value::Array(public_grants));
    }
    if is_firewall_write {
        if let Some(request) = request {
            match request.get("sourceRanges") {
                Some(ranges) => {
                    metadata.insert("source_ranges".into(), ranges.clone());
                }
                // Say what GCP applied, and that it was implied rather than written.
                None if firewall_open => {
                    metadata.insert("source_ranges".into(), serde_json::json!(["0.0.0.0/0"]));
                    metadata.insert("source_ranges_defaulted".into(), Value::Bool(true));
                }
                None => {}
            }
            for (key, field) in [
                ("allowed", "alloweds"),
                ("allowed", "allowed"),
                ("denied", "denieds"),
                ("denied", "denied"),
                ("direction", "direction"),
                ("network", "network"),
                ("target_tags", "targetTags"),
                ("priority", "priority"),
            ] {
                if let Some(v) = request.get(field) {
                    metadata.insert(key.into(), v.clone());
                }
            }
        }
    }

    let timestamp = value.get("timestamp");
    draft.time = non_empty(timestamp)
        .or_else(|| non_empty(value.get("receiveTimestamp")))
        .map(str::to_string);
    if let Some(insert_id) = non_empty(value.get("insertId")) {
        draft.id_parts = vec![
            insert_id.to_string(),
            timestamp.and_then(Value::as_str).unwrap_or("").to_string(),
        ];
    }
    Ok(vec![draft])
}

/// `proto` is the entry's `protoPayload`, `labels` its `resource.labels`.
fn region(proto: &Value, labels: Option<&Value>, resource_name: Option<&str>) -> Option<String> {
    if let Some(region) = ["zone", "region", "location"]
        .iter()
        .find_map(|l| non_empty(labels.and_then(|v| v.get(*l))))
    {
        return resource::region_from_location(region);
    }
    if let Some([only]) = proto
        .at("/resourceLocation/currentLocations")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
    {
        return only.as_str().and_then(resource::region_from_location);
    }
    resource_name.and_then(resource::region_from_name)
}

/// `{role, member}` for every public member the call ADDs: from the policy delta when the
/// service logs one, else from the bindings of a `SetIamPolicy` request. `proto` is the
/// entry's `protoPayload`.
fn public_grants(proto: &Value) -> Vec<Value> {
    let grant = |role: Option<&Value>, member: &str| serde_json::json!({ "role": role.cloned().unwrap_or(Value::Null), "member": member });
    if let Some(deltas) = proto
        .at("/serviceData/policyDelta/bindingDeltas")
        .or_else(|| proto.at("/metadata/policyDelta/bindingDeltas"))
        .and_then(Value::as_array)
    {
        return deltas
            .iter()
            .filter(|d| d.get("action").and_then(Value::as_str) == Some("ADD"))
            .filter_map(|d| {
                let member = d.get("member").and_then(Value::as_str)?;
                PUBLIC_MEMBERS
                    .contains(&member)
                    .then(|| grant(d.get("role"), member))
            })
            .collect();
    }
    proto
        .at("/request/policy/bindings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|binding| {
            binding
                .get("members")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .filter(|m| PUBLIC_MEMBERS.contains(m))
                .map(|m| grant(binding.get("role"), m))
        })
        .collect()
}

/// Whether a firewall write leaves an enabled ingress allow rule reachable from anywhere.
fn firewall_opens_to_world(request: Option<&Value>, verb: &str) -> bool {
    let Some(request) = request else {
        return false;
    };
    let field = |name: &str| request.get(name);
    let non_empty_array =
        |v: Option<&Value>| v.and_then(Value::as_array).is_some_and(|a| !a.is_empty());
    if field("disabled").and_then(Value::as_bool) == Some(true) {
        return false;
    }
    let direction = field("direction")
        .and_then(Value::as_str)
        .unwrap_or("INGRESS");
    if !direction.eq_ignore_ascii_case("INGRESS") {
        return false;
    }
    let allows = non_empty_array(field("alloweds")) || non_empty_array(field("allowed"));
    let denies = non_empty_array(field("denieds")) || non_empty_array(field("denied"));
    if denies && !allows {
        return false;
    }
    match field("sourceRanges").and_then(Value::as_array) {
        Some(ranges) if !ranges.is_empty() => ranges
            .iter()
            .filter_map(Value::as_str)
            .any(|r| OPEN_RANGES.contains(&r.trim())),
        _ => {
            verb != "patch"
                && !non_empty_array(field("sourceTags"))
                && !non_empty_array(field("sourceServiceAccounts"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(method: &str, request: Value) -> Value {
        json!({
            "insertId": "abc",
            "logName": "projects/p1/logs/cloudaudit.googleapis.com%2Factivity",
            "protoPayload": {
                "@type": AUDIT_LOG_TYPE,
                "methodName": method,
                "serviceName": "compute.googleapis.com",
                "resourceName": "projects/p1/global/firewalls/fw",
                "request": request
            },
            "resource": {"type": "gce_firewall_rule", "labels": {"project_id": "p1"}},
            "timestamp": "2024-01-01T00:00:00Z"
        })
    }

    fn event_type(value: &Value) -> Option<EventType> {
        drafts(value).ok()?.first().map(|d| d.event_type)
    }

    #[test]
    fn firewall_rules() {
        let insert = "v1.compute.firewalls.insert";
        let patch = "v1.compute.firewalls.patch";
        let open = Some(EventType::FirewallOpen);
        assert_eq!(
            event_type(&entry(insert, json!({"alloweds": [{"IPProtocol": "tcp"}]}))),
            open
        );
        assert_eq!(
            event_type(&entry(
                insert,
                json!({"sourceRanges": ["10.0.0.0/8", "::/0"]})
            )),
            open
        );
        assert_eq!(
            event_type(&entry(patch, json!({"sourceRanges": ["0.0.0.0/0"]}))),
            open
        );
        // A patch without ranges leaves them as they were.
        assert_eq!(
            event_type(&entry(patch, json!({"priority": 10}))),
            Some(EventType::ResourceChanged)
        );
        assert_eq!(
            event_type(&entry(insert, json!({"sourceRanges": ["10.0.0.0/8"]}))),
            Some(EventType::ResourceCreated)
        );
        assert_eq!(
            event_type(&entry(insert, json!({"sourceTags": ["web"]}))),
            Some(EventType::ResourceCreated)
        );
        assert_eq!(
            event_type(&entry(insert, json!({"direction": "EGRESS"}))),
            Some(EventType::ResourceCreated)
        );
        assert_eq!(
            event_type(&entry(insert, json!({"disabled": true}))),
            Some(EventType::ResourceCreated)
        );
        assert_eq!(
            event_type(&entry(insert, json!({"denieds": [{"IPProtocol": "all"}]}))),
            Some(EventType::ResourceCreated)
        );
        assert_eq!(
            event_type(&entry("v1.compute.firewalls.delete", json!({}))),
            Some(EventType::ResourceDeleted)
        );
    }

    #[test]
    fn reads_failures_and_operation_ends_yield_nothing() {
        let get = entry("v1.compute.firewalls.get", json!({}));
        assert_eq!(drafts(&get).map(|d| d.len()).ok(), Some(0));
        let mut failed = entry("v1.compute.firewalls.insert", json!({}));
        if let Some(p) = failed.get_mut("protoPayload") {
            p["status"] = json!({"code": 7, "message": "PERMISSION_DENIED"});
        }
        assert_eq!(drafts(&failed).map(|d| d.len()).ok(), Some(0));
        let mut last = entry("v1.compute.firewalls.insert", json!({}));
        last["operation"] = json!({"id": "op", "last": true});
        assert_eq!(drafts(&last).map(|d| d.len()).ok(), Some(0));
    }

    #[test]
    fn public_grants_from_a_set_iam_policy_request() {
        let mut value = entry(
            "storage.setIamPermissions",
            json!({"policy": {"bindings": [{"role": "roles/storage.objectViewer", "members": ["allAuthenticatedUsers"]}]}}),
        );
        value["protoPayload"]["serviceName"] = json!("storage.googleapis.com");
        value["resource"] =
            json!({"type": "gcs_bucket", "labels": {"project_id": "p1", "bucket_name": "b"}});
        assert_eq!(event_type(&value), Some(EventType::BucketPublic));
        // The same grant on a non-storage resource is only a change.
        let other = entry(
            "SetIamPolicy",
            json!({"policy": {"bindings": [{"role": "roles/run.invoker", "members": ["allUsers"]}]}}),
        );
        assert_eq!(event_type(&other), Some(EventType::ResourceChanged));
    }

    #[test]
    fn non_audit_entries_and_missing_method_are_reported() {
        let text =
            json!({"logName": "projects/p/logs/syslog", "textPayload": "hi", "insertId": "1"});
        let err = drafts(&text)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("Cloud Logging entry (logName projects/p/logs/syslog)"),
            "{err}"
        );
        let no_method = json!({"protoPayload": {"@type": AUDIT_LOG_TYPE}});
        let err = drafts(&no_method)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("protoPayload.methodName") && err.contains("missing"),
            "{err}"
        );
    }
}
