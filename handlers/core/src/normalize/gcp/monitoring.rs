//! Cloud Monitoring incidents (Pub/Sub notification channel, schema version 1.2 and the
//! older 1.1, which has the same core fields) → `gcp.monitoring`.
//!
//! `open` → `metric_alarm`, or `capacity_high` when the metric measures how full something
//! is ([`CAPACITY_METRIC_SUFFIXES`]: CPU, memory and disk utilization or percent used,
//! Kubernetes limit/allocatable utilization, quota usage). `closed` → `alarm_resolved`.
//! The incident's `severity` (`Critical`/`Error`/`Warning`) is the source severity of an
//! open incident; a closed one keeps it only in metadata (a resolution is not urgent).
//! Ids are the incident id AND its state, so an incident's opening and closing are two
//! events.

use crate::normalize::JsonAt;
use crate::resource_types::gcp as gcp_types;
use chrono::{DateTime, SecondsFormat};
use serde_json::{Map, Value};

use super::{first_str, non_empty, resource};
use crate::event::{EventSource, EventType, Severity};
use crate::normalize::{required_str, tags_from, EventDraft, NormalizeError};

const ENVELOPE: &str = "Cloud Monitoring incident";

/// Metric type endings that mean "a resource is filling up" rather than "a number moved".
const CAPACITY_METRIC_SUFFIXES: &[&str] = &[
    "/cpu/utilization",
    "/cpu/limit_utilization",
    "/cpu/allocatable_utilization",
    "/memory/percent_used",
    "/memory/utilization",
    "/memory/limit_utilization",
    "/memory/allocatable_utilization",
    "/disk/percent_used",
    "/disk/utilization",
    "/disk/bytes_used",
    "/quota/allocation/usage",
    "/quota/rate/net_usage",
];

pub(super) fn is_incident(object: &Map<String, Value>) -> bool {
    object.get("incident").is_some_and(Value::is_object)
}

pub(super) fn is_capacity_metric(metric_type: &str) -> bool {
    CAPACITY_METRIC_SUFFIXES
        .iter()
        .any(|suffix| metric_type.ends_with(suffix))
}

fn severity_of(text: &str) -> Option<Severity> {
    match text.trim().to_ascii_lowercase().as_str() {
        "critical" => Some(Severity::Critical),
        "error" => Some(Severity::High),
        "warning" => Some(Severity::Medium),
        _ => None,
    }
}

pub(super) fn drafts(value: &Value) -> Result<Vec<EventDraft>, NormalizeError> {
    let incident_id = required_str(value, "/incident/incident_id", ENVELOPE)?;
    let state = required_str(value, "/incident/state", ENVELOPE)?;
    // Every other field is under `incident`: look it up once and read relative to it.
    let incident = value.get("incident").unwrap_or(&Value::Null);
    let open = match state.trim().to_ascii_lowercase().as_str() {
        "open" => true,
        "closed" => false,
        _ => {
            return Err(NormalizeError::field(
                ENVELOPE,
                "incident.state",
                format!("is `{state}`, expected `open` or `closed`"),
            ))
        }
    };
    let metric_type = non_empty(incident.at("/metric/type")).unwrap_or("");
    let event_type = if !open {
        EventType::AlarmResolved
    } else if is_capacity_metric(metric_type) {
        EventType::CapacityHigh
    } else {
        EventType::MetricAlarm
    };

    let mut draft = EventDraft::for_payload(EventSource::GcpMonitoring, event_type);
    let severity_text = non_empty(incident.at("/severity"));
    if open {
        draft.source_severity = severity_text.and_then(severity_of);
    }

    let monitored_type = non_empty(incident.at("/resource/type")).unwrap_or("");
    let labels = incident.at("/resource/labels");
    let label = |name: &str| non_empty(labels.and_then(|l| l.get(name)));
    let project = label("project_id")
        .or_else(|| non_empty(incident.at("/scoping_project_id")))
        .or_else(|| non_empty(incident.at("/condition/name")).and_then(resource::project_from_name))
        .unwrap_or("");
    draft.account_id = project.to_string();
    draft.region = ["zone", "region", "location"]
        .iter()
        .find_map(|l| label(l))
        .and_then(resource::region_from_location);

    let display_name = first_str(
        incident,
        &["/resource_display_name", "/metric/labels/instance_name"],
    );
    draft.resource.kind = resource::kind_from_monitored_type(monitored_type)
        .map(str::to_string)
        .unwrap_or_else(|| resource::kind_from_unknown_monitored_type(monitored_type));
    draft.resource.id = resource_id(incident, monitored_type, project, &label)
        .unwrap_or_else(|| monitored_type.to_string());
    draft.resource.name = display_name
        .map(str::to_string)
        .unwrap_or_else(|| resource::last_segment(&draft.resource.id).to_string());
    draft.resource.tags = tags_from(incident.at("/metadata/user_labels"));

    let metadata = &mut draft.resource.metadata;
    metadata.insert("incident_id".into(), Value::from(incident_id));
    metadata.insert("state".into(), Value::from(state));
    for (key, pointer) in [
        ("policy_name", "/policy_name"),
        ("condition_name", "/condition_name"),
        ("condition", "/condition/name"),
        ("metric_type", "/metric/type"),
        ("metric_display_name", "/metric/displayName"),
        ("threshold_value", "/threshold_value"),
        ("observed_value", "/observed_value"),
        ("severity", "/severity"),
        ("summary", "/summary"),
        ("url", "/url"),
    ] {
        if let Some(text) = non_empty(incident.at(pointer)) {
            metadata.insert(key.into(), Value::from(text));
        }
    }
    for (key, pointer) in [
        ("metric_labels", "/metric/labels"),
        ("monitored_resource", "/resource"),
        ("policy_user_labels", "/policy_user_labels"),
    ] {
        if let Some(v) = incident.at(pointer).filter(|v| !v.is_null()) {
            metadata.insert(key.into(), v.clone());
        }
    }

    // An open incident happened when it started; a closed one when it ended.
    let time_fields: &[&str] = if open {
        &["/started_at"]
    } else {
        &["/ended_at", "/started_at"]
    };
    draft.time = time_fields
        .iter()
        .find_map(|p| incident.at(p).and_then(epoch_seconds_text));
    draft.id_parts = vec![incident_id.to_string(), state.trim().to_ascii_lowercase()];
    Ok(vec![draft])
}

/// The resource's GCP name where the labels allow building one; else the incident's own
/// `resource_id`/`resource_name` text. `incident` is the payload's `incident` object.
fn resource_id<'a>(
    incident: &'a Value,
    monitored_type: &str,
    project: &str,
    label: &dyn Fn(&str) -> Option<&'a str>,
) -> Option<String> {
    if let Some(id) = non_empty(incident.at("/resource_id")) {
        return Some(id.to_string());
    }
    let built = match monitored_type {
        gcp_types::GCE_INSTANCE => {
            let instance = non_empty(incident.at("/metric/labels/instance_name"))
                .or_else(|| label("instance_id"));
            match (label("zone"), instance) {
                (Some(zone), Some(instance)) if !project.is_empty() => Some(format!(
                    "projects/{project}/zones/{zone}/instances/{instance}"
                )),
                _ => None,
            }
        }
        gcp_types::GCS_BUCKET => label("bucket_name").map(|b| format!("projects/_/buckets/{b}")),
        "cloudsql_database" => label("database_id")
            .and_then(|d| d.split_once(':'))
            .map(|(p, i)| format!("projects/{p}/instances/{i}")),
        "pubsub_topic" => label("topic_id")
            .filter(|_| !project.is_empty())
            .map(|t| format!("projects/{project}/topics/{t}")),
        "cloud_run_revision" => match (label("location"), label("service_name")) {
            (Some(location), Some(service)) if !project.is_empty() => Some(format!(
                "projects/{project}/locations/{location}/services/{service}"
            )),
            _ => None,
        },
        "cloud_function" => match (label("region"), label("function_name")) {
            (Some(region), Some(function)) if !project.is_empty() => Some(format!(
                "projects/{project}/locations/{region}/functions/{function}"
            )),
            _ => None,
        },
        "pubsub_subscription" => label("subscription_id")
            .filter(|_| !project.is_empty())
            .map(|s| format!("projects/{project}/subscriptions/{s}")),
        _ => None,
    };
    built.or_else(|| non_empty(incident.at("/resource_name")).map(str::to_string))
}

/// Incidents carry Unix seconds (a number, or occasionally a numeric string).
fn epoch_seconds_text(value: &Value) -> Option<String> {
    let seconds = match value {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64))?,
        Value::String(s) => s.trim().parse::<i64>().ok()?,
        _ => return None,
    };
    DateTime::from_timestamp(seconds, 0).map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn severity_table() {
        assert_eq!(severity_of("Critical"), Some(Severity::Critical));
        assert_eq!(severity_of("Error"), Some(Severity::High));
        assert_eq!(severity_of("Warning"), Some(Severity::Medium));
        assert_eq!(severity_of("No severity"), None);
    }

    #[test]
    fn capacity_metrics() {
        assert!(is_capacity_metric(
            "compute.googleapis.com/instance/cpu/utilization"
        ));
        assert!(is_capacity_metric(
            "agent.googleapis.com/memory/percent_used"
        ));
        assert!(is_capacity_metric(
            "cloudsql.googleapis.com/database/disk/utilization"
        ));
        assert!(!is_capacity_metric(
            "compute.googleapis.com/instance/network/sent_packets_count"
        ));
        assert!(!is_capacity_metric(""));
    }

    #[test]
    fn epoch_times() {
        assert_eq!(
            epoch_seconds_text(&json!(1746178794)).as_deref(),
            Some("2025-05-02T09:39:54Z")
        );
        assert_eq!(
            epoch_seconds_text(&json!("1746178794")).as_deref(),
            Some("2025-05-02T09:39:54Z")
        );
        assert_eq!(epoch_seconds_text(&Value::Null), None);
        assert_eq!(epoch_seconds_text(&json!(i64::MAX)), None);
    }

    #[test]
    fn open_and_closed_get_distinct_ids_and_bad_state_names_the_field() {
        let open = json!({"incident": {"incident_id": "0.x", "state": "open"}, "version": "1.2"});
        let closed =
            json!({"incident": {"incident_id": "0.x", "state": "closed"}, "version": "1.2"});
        let open = drafts(&open).unwrap_or_default();
        let closed = drafts(&closed).unwrap_or_default();
        assert_ne!(open[0].id_parts, closed[0].id_parts);
        assert_eq!(closed[0].event_type, EventType::AlarmResolved);
        let err = drafts(&json!({"incident": {"incident_id": "0.x", "state": "snoozed"}}))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("incident.state"), "{err}");
        let err = drafts(&json!({"incident": {"state": "open"}}))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("incident.incident_id") && err.contains("missing"),
            "{err}"
        );
    }
}
