//! Event Grid deliveries: the envelope of both schemas (Event Grid and CloudEvents 1.0),
//! the subscription-validation handshake, and one event per array element.

use crate::normalize::JsonAt;
use std::collections::HashSet;

use serde_json::Value;

use super::system_events;
use super::text;
use crate::event::{CloudProvider, EventSource, EventType};
use crate::normalize::{dotted, json_kind, Cx, EventDraft, Handshake, NormalizeError, Normalized};

const VALIDATION_EVENT: &str = "Microsoft.EventGrid.SubscriptionValidationEvent";

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Schema {
    EventGrid,
    CloudEvents,
}

impl Schema {
    fn label(self) -> &'static str {
        match self {
            Schema::EventGrid => "Event Grid event",
            Schema::CloudEvents => "CloudEvents event",
        }
    }
}

/// Whether the payload is an Event Grid delivery: one event, or an array holding one.
pub(super) fn claims(value: &Value) -> bool {
    match value {
        Value::Array(items) => items.iter().any(|item| schema_of(item).is_some()),
        _ => schema_of(value).is_some(),
    }
}

fn schema_of(value: &Value) -> Option<Schema> {
    let obj = value.as_object()?;
    let has = |key: &str| obj.contains_key(key);
    if obj.get("eventType").is_some_and(Value::is_string)
        && has("id")
        && (has("subject") || has("topic"))
        && (has("eventTime") || has("dataVersion"))
    {
        return Some(Schema::EventGrid);
    }
    let kind = obj.get("type").and_then(Value::as_str)?;
    let source = obj.get("source").and_then(Value::as_str)?;
    let azure_type = kind
        .get(..10)
        .is_some_and(|p| p.eq_ignore_ascii_case("microsoft."));
    let azure_source = ["/subscriptions/", "/tenants/"].iter().any(|prefix| {
        source
            .get(..prefix.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
    });
    (has("specversion") && has("id") && (azure_type || azure_source)).then_some(Schema::CloudEvents)
}

/// One event of a delivery, with the envelope fields of either schema under one name.
pub(super) struct GridEvent<'a> {
    pub raw: &'a Value,
    schema: Schema,
    /// JSON pointer of this event in the payload (`/2` in an array, empty for one object).
    pointer: String,
    pub id: Option<&'a str>,
    pub event_type: &'a str,
    pub subject: Option<&'a str>,
    /// `topic` (Event Grid schema) or `source` (CloudEvents): the publishing resource.
    pub topic: Option<&'a str>,
    pub time: Option<&'a str>,
    /// `data`, or `Null` when absent (field errors then name the missing data field).
    pub data: &'a Value,
}

impl<'a> GridEvent<'a> {
    fn read(raw: &'a Value, schema: Schema, pointer: String) -> GridEvent<'a> {
        let (type_key, topic_key, time_key) = match schema {
            Schema::EventGrid => ("/eventType", "/topic", "/eventTime"),
            Schema::CloudEvents => ("/type", "/source", "/time"),
        };
        GridEvent {
            raw,
            schema,
            pointer,
            id: text(raw, "/id"),
            event_type: text(raw, type_key).unwrap_or_default(),
            subject: text(raw, "/subject"),
            topic: text(raw, topic_key),
            time: text(raw, time_key),
            data: raw.get("data").unwrap_or(&Value::Null),
        }
    }

    /// `Event Grid event (Microsoft.Storage.BlobCreated)`: what error messages say arrived.
    pub fn envelope(&self) -> String {
        format!("{} ({})", self.schema.label(), self.event_type)
    }

    /// The envelope's name for the publishing resource, for error messages.
    pub fn topic_field(&self) -> &'static str {
        match self.schema {
            Schema::EventGrid => "/topic",
            Schema::CloudEvents => "/source",
        }
    }

    /// An error about `field` (a pointer inside this event, e.g. `/data/complianceState`),
    /// naming its path in the whole payload.
    pub fn field_error(&self, field: &str, problem: impl Into<String>) -> NormalizeError {
        NormalizeError::field(
            self.envelope(),
            dotted(&format!("{}{field}", self.pointer)),
            problem,
        )
    }

    /// The non-blank string at `pointer` (inside this event), or an error naming it.
    pub fn required(&self, pointer: &str) -> Result<&'a str, NormalizeError> {
        match self.raw.at(pointer) {
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s),
            Some(Value::String(_)) => Err(self.field_error(pointer, "is empty")),
            None | Some(Value::Null) => Err(self.field_error(pointer, "is missing")),
            Some(other) => Err(self.field_error(
                pointer,
                format!("must be a string, found {}", json_kind(other)),
            )),
        }
    }

    /// A draft with the envelope's raw event, time and id filled in (the caller sets the
    /// resource, so metadata starts there).
    pub fn draft(&self, source: EventSource, event_type: EventType) -> EventDraft {
        // The event is the payload itself, or one element of the batch: either is moved
        // into the raw event when the events are finished, not copied here.
        let mut draft = if self.pointer.is_empty() {
            EventDraft::for_payload(source, event_type)
        } else {
            EventDraft::for_part(source, event_type, self.pointer.clone())
        };
        draft.time = self.time.map(str::to_string);
        draft.id_parts = self.id.map(str::to_string).into_iter().collect();
        draft
    }
}

pub(super) fn normalize(value: &Value, cx: &Cx) -> Result<Normalized, NormalizeError> {
    let items: Vec<(String, &Value)> = match value {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| (format!("/{i}"), item))
            .collect(),
        other => vec![(String::new(), other)],
    };
    let mut events = Vec::new();
    let mut seen_ids = HashSet::new();
    let mut grid_events = Vec::new();
    for (pointer, item) in items {
        let Some(schema) = schema_of(item) else {
            let shape = match item.as_object() {
                Some(obj) => format!(
                    "an object with keys [{}]",
                    obj.keys().take(8).cloned().collect::<Vec<_>>().join(", ")
                ),
                None => json_kind(item).to_string(),
            };
            return Err(NormalizeError::field(
                "Event Grid delivery",
                dotted(&pointer),
                format!("is not an Event Grid or CloudEvents event (found {shape})"),
            ));
        };
        let event = GridEvent::read(item, schema, pointer);
        // Event Grid sends the validation event alone; answering it is all that matters.
        if event.event_type.eq_ignore_ascii_case(VALIDATION_EVENT) {
            return handshake(&event).map(Normalized::Handshake);
        }
        grid_events.push(event);
    }
    for (index, event) in grid_events.iter().enumerate() {
        let Some(mut draft) = system_events::draft(event)? else {
            continue;
        };
        draft.resource.metadata.insert(
            "event_grid_event_type".into(),
            Value::String(event.event_type.to_string()),
        );
        // Event ids are unique by contract; if a sender repeats one inside a batch, the
        // position keeps the two events apart (and is stable for the same batch).
        if let Some(id) = event.id {
            if !seen_ids.insert(id) {
                draft.id_parts.push(format!("#{index}"));
            }
        }
        events.push(cx.finish(draft));
    }
    Ok(Normalized::Events(events))
}

fn handshake(event: &GridEvent) -> Result<Handshake, NormalizeError> {
    Ok(Handshake {
        cloud_provider: CloudProvider::Azure,
        kind: "eventgrid_subscription_validation".into(),
        validation_code: event.required("/data/validationCode")?.to_string(),
        validation_url: text(event.raw, "/data/validationUrl").map(str::to_string),
    })
}
