//! Cloud Scheduler job data → `scheduled_scan` from `gcp.scheduler` (informational: it
//! starts nothing).
//!
//! Only Eventarc's `SchedulerJobData` (`{"customData": base64}`), the one shape that says it
//! is a Scheduler execution. A Pub/Sub message whose data is text or bytes is not read as a
//! Scheduler tick (see `pubsub`): Escher's nightly scan starts only when its own Scheduler
//! job calls the service's `/scan` with its marker and token. The job itself is named in
//! neither, so the resource is the subscription that delivered it when there is one (the
//! delivery fills that in), else an unnamed `cloud_scheduler_job`.

use serde_json::{Map, Value};

use super::pubsub::Delivery;
use super::pubsub::{as_text, body_as_json, decode_base64, structured_json};
use super::resource::last_segment;
use crate::event::{EventSource, EventType};
use crate::normalize::{required_str, EventDraft, NormalizeError};

const ENVELOPE: &str = "Cloud Scheduler job data";

/// Longest body text copied into metadata; the full body stays in `raw_event`.
const BODY_PREVIEW_CHARS: usize = 1024;

/// `{"customData": "..."}` and nothing else of substance (`@type` is Eventarc's).
pub(super) fn is_job_data(object: &Map<String, Value>) -> bool {
    object.contains_key("customData") && object.keys().all(|k| k == "customData" || k == "@type")
}

pub(super) fn job_data_drafts(
    value: &Value,
    delivery: Option<&Delivery>,
) -> Result<Vec<EventDraft>, NormalizeError> {
    let encoded = required_str(value, "/customData", ENVELOPE)?;
    let bytes = decode_base64(encoded).map_err(|e| {
        NormalizeError::field(ENVELOPE, "customData", format!("is not valid base64: {e}"))
    })?;
    let decoded = structured_json(&bytes).unwrap_or_else(|| body_as_json(&bytes, encoded));
    let mut raw_event = value.clone();
    if let Some(slot) = raw_event.get_mut("customData") {
        *slot = decoded.clone();
    }
    let subscription = delivery.and_then(|d| d.subscription.as_deref());
    let mut draft = match subscription {
        Some(_) => message_draft(&bytes, encoded, subscription),
        // Bare job data names no job and carries no id: the framework hashes the payload.
        None => {
            let mut draft = base_draft(&bytes, encoded, Value::Null);
            draft.resource.kind = "cloud_scheduler_job".into();
            draft
        }
    };
    if let Value::Object(_) | Value::Array(_) = decoded {
        // Structured job data replaces its own text form.
        draft.resource.metadata.remove("body_text");
        draft
            .resource
            .metadata
            .insert("custom_data".into(), decoded.clone());
    }
    draft.raw_event = Some(raw_event);
    Ok(vec![draft])
}

/// Job data that came in a push delivery; the delivery adds ids, time and raw_event.
fn message_draft(bytes: &[u8], original_base64: &str, subscription: Option<&str>) -> EventDraft {
    let mut draft = base_draft(bytes, original_base64, Value::Null);
    draft.resource.kind = "pubsub_subscription".into();
    if let Some(subscription) = subscription {
        draft.resource.id = subscription.to_string();
        draft.resource.name = last_segment(subscription).to_string();
    }
    draft
}

fn base_draft(bytes: &[u8], original_base64: &str, raw_event: Value) -> EventDraft {
    let mut draft = EventDraft::new(
        EventSource::GcpScheduler,
        EventType::ScheduledScan,
        raw_event,
    );
    let metadata = &mut draft.resource.metadata;
    metadata.insert("body_bytes".into(), Value::from(bytes.len()));
    match as_text(bytes) {
        Some(text) => {
            let preview: String = text.chars().take(BODY_PREVIEW_CHARS).collect();
            metadata.insert("body_text".into(), Value::String(preview));
        }
        None => {
            metadata.insert(
                "body_base64".into(),
                Value::String(original_base64.to_string()),
            );
        }
    }
    draft
}
