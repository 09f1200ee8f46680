//! The Pub/Sub push envelope: `{"message": {"data", "attributes", "messageId",
//! "publishTime"}, "subscription"}` (the same body is Eventarc's `MessagePublishedData`).
//!
//! We deliberately do not use `google-cloud-pubsub` for this: it is a Google Cloud SDK (a
//! gRPC client) and `escher-core` links no cloud SDK. The envelope is three fields, so a
//! small serde struct does, without `deny_unknown_fields` since Google adds fields (`@type`,
//! `deliveryAttempt`, snake_case duplicates) freely.
//!
//! The base64 `data` is decoded. When it is a JSON object of a kind we know, that payload is
//! normalized; anything else (another JSON document, text, bytes) is unrecognised: audited
//! and acknowledged by the pipeline, since delivering it again cannot help. In particular
//! text is not taken for a Cloud Scheduler tick: a scan starts only from Escher's own
//! Scheduler job, which calls the service directly with its marker and token.

use crate::normalize::JsonAt;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{resource, Payload};
use crate::normalize::{json_kind, EventDraft, NormalizeError};

/// Name used in field errors, as operators search for it.
pub(super) const ENVELOPE: &str = "Pub/Sub push envelope";

#[derive(Debug, Deserialize)]
struct PushEnvelope {
    message: PushedMessage,
    #[serde(default)]
    subscription: Option<String>,
}

/// Both spellings of the id and time appear in real deliveries (the docs example carries
/// both at once), so they are separate fields rather than serde aliases, which would
/// reject the duplicate.
#[derive(Debug, Deserialize)]
struct PushedMessage {
    #[serde(default)]
    data: Option<String>,
    #[serde(default)]
    attributes: Option<Map<String, Value>>,
    #[serde(default, rename = "messageId")]
    message_id: Option<String>,
    #[serde(default, rename = "message_id")]
    message_id_snake: Option<String>,
    #[serde(default, rename = "publishTime")]
    publish_time: Option<String>,
    #[serde(default, rename = "publish_time")]
    publish_time_snake: Option<String>,
}

/// What the push delivery adds to the events of the message it carries.
#[derive(Debug, Default)]
pub(super) struct Delivery {
    pub message_id: Option<String>,
    pub subscription: Option<String>,
    pub publish_time: Option<String>,
    pub attributes: Map<String, Value>,
}

impl Delivery {
    pub(super) fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }

    fn envelope_name(&self) -> String {
        match &self.subscription {
            Some(s) => format!("{ENVELOPE} (subscription {s})"),
            None => ENVELOPE.to_string(),
        }
    }
}

const MESSAGE_FIELDS: &[&str] = &[
    "data",
    "messageId",
    "message_id",
    "attributes",
    "publishTime",
];

pub(super) fn is_push_envelope(value: &Value) -> bool {
    value
        .get("message")
        .and_then(Value::as_object)
        .is_some_and(|m| MESSAGE_FIELDS.iter().any(|f| m.contains_key(*f)))
}

/// Standard base64 as Pub/Sub sends it, tolerating dropped padding (some relays strip it).
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

pub(super) fn decode_base64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    LENIENT_BASE64.decode(text.trim())
}

/// Text as itself, anything else (binary) kept as the base64 it arrived in.
pub(super) fn body_as_json(bytes: &[u8], original_base64: &str) -> Value {
    Value::String(match as_text(bytes) {
        Some(text) => text.to_string(),
        None => original_base64.to_string(),
    })
}

/// The body as text when it is UTF-8 without control characters other than whitespace:
/// bytes like `01 02 03 04` are valid UTF-8 but are not text anyone wrote.
pub(super) fn as_text(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(bytes)
        .ok()
        .filter(|text| !text.chars().any(|c| c.is_control() && !c.is_whitespace()))
}

/// A JSON object or array decoded from a message body; scalars and non-JSON are not
/// structured payloads (a Scheduler body `42` or `"ping"` is just a body).
pub(super) fn structured_json(bytes: &[u8]) -> Option<Value> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    crate::normalize::parse_embedded(bytes).filter(|v| v.is_object() || v.is_array())
}

pub(super) fn drafts(value: &Value) -> Result<Vec<EventDraft>, NormalizeError> {
    let envelope = PushEnvelope::deserialize(value).map_err(|e| {
        let (field, found) = mistyped_field(value);
        NormalizeError::field(ENVELOPE, field, format!("must be {found}: {e}"))
    })?;
    let message = envelope.message;
    let delivery = Delivery {
        message_id: message.message_id.or(message.message_id_snake),
        subscription: envelope.subscription,
        publish_time: message.publish_time.or(message.publish_time_snake),
        attributes: message.attributes.unwrap_or_default(),
    };
    let data = match message.data {
        Some(data) => data,
        // Pub/Sub allows attribute-only messages (Scheduler jobs may publish just those).
        None if !delivery.attributes.is_empty() => String::new(),
        None => {
            return Err(NormalizeError::field(
                ENVELOPE,
                "message.data",
                "is missing",
            ))
        }
    };
    let bytes = decode_base64(&data).map_err(|e| {
        NormalizeError::field(
            ENVELOPE,
            "message.data",
            format!("is not valid base64: {e}"),
        )
    })?;

    let drafts = match structured_json(&bytes) {
        Some(inner) => {
            let kind = Payload::detect(&inner).ok_or_else(|| {
                NormalizeError::unrecognized(
                    delivery.envelope_name(),
                    format!(
                        "its decoded message.data is {} that is none of the payloads it may \
                         carry (Cloud Monitoring incident, Cloud Audit Log entry, Security \
                         Command Center notification, budget notification, Cloud Scheduler \
                         job data)",
                        describe(&inner)
                    ),
                )
            })?;
            let mut drafts = kind
                .drafts(&inner, Some(&delivery))
                .map_err(|e| nest_error(e, &delivery))?;
            crate::normalize::resolve_inner_payload(&mut drafts, inner);
            drafts
        }
        // Text or bytes: no alert source Escher reads publishes those. It used to be taken
        // for a Cloud Scheduler tick, which let any publisher to the topic start a scan; the
        // nightly scan now starts only from Escher's own Scheduler job calling the service.
        None => {
            return Err(NormalizeError::unrecognized(
                delivery.envelope_name(),
                format!(
                    "its decoded message.data is {} and not JSON, so it is no alert (the \
                     nightly scan is started by Escher's own Cloud Scheduler job, never by a \
                     Pub/Sub message)",
                    describe_body(&bytes)
                ),
            ))
        }
    };
    Ok(drafts
        .into_iter()
        .map(|d| apply_delivery(d, &delivery, value))
        .collect())
}

/// The delivery id comes first in the id, the payload's own ids after it; the delivery's
/// time and project fill in only what the payload did not say.
/// The draft's own raw event (the decoded data, inner encodings decoded too) goes back into
/// `message.data` of a copy of the envelope.
fn apply_delivery(mut draft: EventDraft, delivery: &Delivery, envelope: &Value) -> EventDraft {
    if let Some(id) = &delivery.message_id {
        draft.id_parts.insert(0, id.clone());
    }
    if draft.time.is_none() {
        draft.time = delivery.publish_time.clone();
    }
    if draft.account_id.is_empty() {
        if let Some(project) = delivery
            .subscription
            .as_deref()
            .and_then(resource::project_from_name)
        {
            draft.account_id = project.to_string();
        }
    }
    let metadata = &mut draft.resource.metadata;
    let mut put = |key: &str, v: Option<&String>| {
        if let Some(v) = v {
            metadata.insert(key.into(), Value::String(v.clone()));
        }
    };
    put("pubsub_message_id", delivery.message_id.as_ref());
    put("pubsub_subscription", delivery.subscription.as_ref());
    put("pubsub_publish_time", delivery.publish_time.as_ref());
    metadata.insert(
        "pubsub_attributes".into(),
        Value::Object(delivery.attributes.clone()),
    );
    let data = draft.raw_event.take().unwrap_or_default();
    draft.raw_event = Some(crate::normalize::with_replaced(
        envelope,
        "/message/data",
        data,
    ));
    draft
}

/// Errors inside the decoded data name the envelope too, and the field's full path.
fn nest_error(error: NormalizeError, delivery: &Delivery) -> NormalizeError {
    match error {
        NormalizeError::InvalidField {
            envelope,
            field,
            problem,
        } => NormalizeError::InvalidField {
            envelope: format!("{envelope} in a {}", delivery.envelope_name()),
            field: format!("message.data.{field}"),
            problem,
        },
        NormalizeError::Unrecognized {
            envelope: Some(inner),
            detail,
        } => NormalizeError::Unrecognized {
            envelope: Some(format!("{inner} in a {}", delivery.envelope_name())),
            detail,
        },
        other => other,
    }
}

/// A non-JSON body in a few words, without repeating it (it may hold anything).
fn describe_body(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "empty".to_string();
    }
    match as_text(bytes) {
        Some(text) => format!("{} character(s) of text", text.chars().count()),
        None => format!("{} byte(s) of binary data", bytes.len()),
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let keys: Vec<&str> = map.keys().take(8).map(String::as_str).collect();
            format!("a JSON object with keys [{}]", keys.join(", "))
        }
        Value::Array(items) => format!("a JSON array of {} item(s)", items.len()),
        other => json_kind(other).to_string(),
    }
}

/// serde's message does not say which field was wrong; find it ourselves.
fn mistyped_field(value: &Value) -> (String, &'static str) {
    let strings = [
        "/subscription",
        "/message/data",
        "/message/messageId",
        "/message/message_id",
        "/message/publishTime",
        "/message/publish_time",
    ];
    for pointer in strings {
        if let Some(v) = value.at(pointer) {
            if !v.is_string() && !v.is_null() {
                return (crate::normalize::dotted(pointer), "a string");
            }
        }
    }
    match value.at("/message/attributes") {
        Some(v) if !v.is_object() && !v.is_null() => ("message.attributes".into(), "an object"),
        _ => ("message".into(), "a Pub/Sub message object"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_with_or_without_padding() {
        assert_eq!(decode_base64("dGVzdA==").ok(), Some(b"test".to_vec()));
        assert_eq!(decode_base64("dGVzdA").ok(), Some(b"test".to_vec()));
        assert!(decode_base64("not base64!").is_err());
        assert_eq!(decode_base64("").ok(), Some(Vec::new()));
    }

    #[test]
    fn only_objects_and_arrays_are_structured() {
        assert!(structured_json(br#"{"a":1}"#).is_some());
        assert!(structured_json(b"[1]").is_some());
        assert!(structured_json(b"42").is_none());
        assert!(structured_json(br#""ping""#).is_none());
        assert!(structured_json(b"Hello Cloud Pub/Sub!").is_none());
        assert!(structured_json(&[1, 2, 3, 4]).is_none());
    }

    #[test]
    fn control_bytes_are_binary_not_text() {
        assert_eq!(as_text(b"Hello\n\tworld"), Some("Hello\n\tworld"));
        assert_eq!(as_text(&[1, 2, 3, 4]), None);
        assert_eq!(as_text(&[0xff, 0xfe]), None);
    }
}
