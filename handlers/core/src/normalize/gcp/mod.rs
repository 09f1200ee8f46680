//! GCP payloads: the Pub/Sub push envelope and what it carries — Cloud Monitoring
//! incidents, Cloud Audit Log entries (log sinks and Eventarc `LogEntryData`), Security
//! Command Center notifications, Cloud Billing budget notifications and Cloud Scheduler
//! messages — each also accepted bare (a function receiving the decoded data only).
//!
//! Detection is by shape, and is tried before the Azure and AWS modules, so it passes on
//! anything that carries another cloud's envelope markers (EventBridge `detail-type`, SNS
//! `Records`, Event Grid `eventType`/`specversion`, Azure Monitor `schemaId`).

mod audit;
mod billing;
mod monitoring;
mod pubsub;
mod resource;
mod scc;
mod scheduler;

use crate::normalize::JsonAt;
use serde_json::Value;

use super::{Cx, EventDraft, NormalizeError, Normalized};

/// Top-level keys that belong to another cloud's envelope; a payload with any of them is
/// never GCP's, whatever else it contains.
const FOREIGN_ENVELOPE_KEYS: &[&str] = &[
    "detail-type",
    "Records",
    "TopicArn",
    "eventType",
    "specversion",
    "schemaId",
];

pub(crate) fn normalize(value: &Value, cx: &Cx) -> Option<Result<Normalized, NormalizeError>> {
    let object = value.as_object()?;
    if FOREIGN_ENVELOPE_KEYS
        .iter()
        .any(|k| object.contains_key(*k))
    {
        return None;
    }
    let drafts = if pubsub::is_push_envelope(value) {
        pubsub::drafts(value)
    } else {
        Payload::detect(value)?.drafts(value, None)
    };
    Some(
        drafts.map(|drafts| Normalized::Events(drafts.into_iter().map(|d| cx.finish(d)).collect())),
    )
}

/// The payloads a Pub/Sub message (or a direct delivery) can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Payload {
    MonitoringIncident,
    AuditLogEntry,
    SccNotification,
    BudgetNotification,
    SchedulerJobData,
}

impl Payload {
    fn detect(value: &Value) -> Option<Payload> {
        let object = value.as_object()?;
        if monitoring::is_incident(object) {
            Some(Payload::MonitoringIncident)
        } else if audit::is_log_entry(object) {
            Some(Payload::AuditLogEntry)
        } else if scc::is_notification(object) {
            Some(Payload::SccNotification)
        } else if billing::is_budget_notification(object) {
            Some(Payload::BudgetNotification)
        } else if scheduler::is_job_data(object) {
            Some(Payload::SchedulerJobData)
        } else {
            None
        }
    }

    /// Drafts for a payload of this kind; `delivery` is the push envelope it came in, if any.
    fn drafts(
        self,
        value: &Value,
        delivery: Option<&pubsub::Delivery>,
    ) -> Result<Vec<EventDraft>, NormalizeError> {
        match self {
            Payload::MonitoringIncident => monitoring::drafts(value),
            Payload::AuditLogEntry => audit::drafts(value),
            Payload::SccNotification => scc::drafts(value),
            Payload::BudgetNotification => billing::drafts(value, delivery),
            Payload::SchedulerJobData => scheduler::job_data_drafts(value, delivery),
        }
    }
}

/// `Some(s)` only for a non-empty string: GCP sends `""` for "not set" in many fields.
fn non_empty(value: Option<&Value>) -> Option<&str> {
    value
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

/// The first non-empty string among several JSON pointers.
fn first_str<'a>(value: &'a Value, pointers: &[&str]) -> Option<&'a str> {
    pointers.iter().find_map(|p| non_empty(value.at(p)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::severity::SeverityPolicy;
    use base64::Engine as _;
    use serde_json::json;

    fn claim(value: &Value) -> Option<Result<Normalized, NormalizeError>> {
        let cx = Cx::new(SeverityPolicy::built_in(), value);
        normalize(value, &cx)
    }

    #[test]
    fn other_clouds_envelopes_are_not_claimed() {
        let foreign = [
            json!({"version": "0", "id": "1", "detail-type": "CloudWatch Alarm State Change", "source": "aws.cloudwatch", "detail": {"incident": {}}}),
            json!({"Records": [{"EventSource": "aws:sns", "Sns": {"Message": "{}"}}]}),
            json!({"id": "1", "eventType": "Microsoft.Resources.ResourceWriteSuccess", "subject": "/subscriptions/x", "data": {}}),
            json!({"specversion": "1.0", "type": "Microsoft.Storage.BlobCreated", "source": "/subscriptions/x", "id": "1", "data": {"message": {"data": "e30="}}}),
            json!({"schemaId": "azureMonitorCommonAlertSchema", "data": {"essentials": {}}}),
            json!([{"eventType": "Microsoft.EventGrid.SubscriptionValidationEvent"}]),
        ];
        for value in &foreign {
            assert!(claim(value).is_none(), "claimed {value}");
        }
        // The other clouds' real samples are checked for their cloud in tests/shared_fixtures.
    }

    #[test]
    fn redelivery_keeps_the_id_and_a_new_message_changes_it() {
        let incident =
            json!({"incident": {"incident_id": "0.a", "state": "open", "started_at": 1718193600}});
        let data = base64::engine::general_purpose::STANDARD.encode(incident.to_string());
        let envelope = |id: &str| json!({"message": {"data": data, "messageId": id}, "subscription": "projects/p/subscriptions/s"});
        let ids = |value: &Value| match claim(value) {
            Some(Ok(Normalized::Events(events))) => {
                events.into_iter().map(|e| e.event_id).collect()
            }
            other => panic!("{other:?}"),
        };
        let first: Vec<String> = ids(&envelope("1"));
        assert_eq!(first, ids(&envelope("1")));
        assert_ne!(first, ids(&envelope("2")));
        assert_ne!(first, ids(&incident));
    }
}
