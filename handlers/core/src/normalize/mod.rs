//! Normalizers: raw alert bytes from any cloud in, `UnifiedEvent`s out.
//!
//! The payload's kind is detected from its shape alone (never from a file name or a flag):
//! each cloud module looks at the parsed JSON and either claims it (`Some`) or passes
//! (`None`). A module that recognises an envelope but not its body answers with an
//! [`NormalizeError::Unrecognized`] naming that envelope, so the operator learns what arrived.
//!
//! Everything here is pure: no I/O, no clock except as a last resort for a source that sent
//! no usable time, so the same bytes always give the same events and ids.

mod aws;
mod azure;
mod gcp;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::context;
use crate::event::{
    CloudProvider, EventContext, EventSource, EventType, Resource, Severity, UnifiedEvent,
    SCHEMA_VERSION,
};
use crate::severity::SeverityPolicy;

/// What a payload turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum Normalized {
    /// Alerts, findings or notifications: one `UnifiedEvent` each (possibly none, e.g. a
    /// CloudTrail call that did not open anything to the world is still a valid, empty result).
    Events(Vec<UnifiedEvent>),
    /// A subscription handshake the endpoint must answer; it is not an alert.
    Handshake(Handshake),
}

/// A delivery-channel handshake, e.g. Event Grid's `SubscriptionValidationEvent`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Handshake {
    pub cloud_provider: CloudProvider,
    /// What kind of handshake, e.g. `eventgrid_subscription_validation`.
    pub kind: String,
    /// The code to echo back (`{"validationResponse": code}` for Event Grid).
    pub validation_code: String,
    /// The URL that validates the subscription with a GET, when the source offers one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation_url: Option<String>,
}

/// Why a payload could not be normalized. Never a panic, whatever the bytes.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NormalizeError {
    #[error("payload is not valid JSON at byte {offset} (line {line}, column {column}): {message}; check that the whole payload was captured and is UTF-8 JSON")]
    Malformed {
        offset: usize,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}", unrecognized_message(.envelope.as_deref(), .detail))]
    Unrecognized {
        /// The envelope that was recognised around the unknown body, if any.
        envelope: Option<String>,
        detail: String,
    },
    #[error("{envelope}: field `{field}` {problem}")]
    InvalidField {
        envelope: String,
        /// JSON path of the offending field, e.g. `message.data` or `detail.findings[0].Id`.
        field: String,
        problem: String,
    },
}

fn unrecognized_message(envelope: Option<&str>, detail: &str) -> String {
    match envelope {
        Some(envelope) => format!(
            "unrecognized event: the envelope is {envelope}, but {detail}; \
             see 'Adding an event source' in README.md"
        ),
        None => format!(
            "unrecognized event: {detail}; no known envelope (EventBridge, SNS, Event Grid, \
             Azure Monitor, Pub/Sub push, ...) was found; the supported payloads are listed in README.md"
        ),
    }
}

impl NormalizeError {
    pub(crate) fn field(
        envelope: impl Into<String>,
        field: impl Into<String>,
        problem: impl Into<String>,
    ) -> Self {
        NormalizeError::InvalidField {
            envelope: envelope.into(),
            field: field.into(),
            problem: problem.into(),
        }
    }

    pub(crate) fn unrecognized(envelope: impl Into<String>, detail: impl Into<String>) -> Self {
        NormalizeError::Unrecognized {
            envelope: Some(envelope.into()),
            detail: detail.into(),
        }
    }
}

/// Normalizes with the built-in severity policy.
pub fn normalize(bytes: &[u8]) -> Result<Normalized, NormalizeError> {
    Normalizer::default().normalize(bytes)
}

/// Normalizer bound to a severity policy (the user's edited `policies/severity.yaml`).
#[derive(Debug, Clone, Copy)]
pub struct Normalizer<'p> {
    policy: &'p SeverityPolicy,
}

impl Default for Normalizer<'static> {
    fn default() -> Self {
        Normalizer {
            policy: SeverityPolicy::built_in(),
        }
    }
}

/// A cloud module's entry point: `None` when the shape is not that cloud's.
type CloudNormalizer = fn(&Value, &Cx) -> Option<Result<Normalized, NormalizeError>>;

const CLOUDS: &[CloudNormalizer] = &[gcp::normalize, azure::normalize, aws::normalize];

impl<'p> Normalizer<'p> {
    pub fn new(policy: &'p SeverityPolicy) -> Self {
        Normalizer { policy }
    }

    pub fn normalize(&self, bytes: &[u8]) -> Result<Normalized, NormalizeError> {
        self.normalize_owned(parse_json(bytes)?)
    }

    /// For callers that already hold the parsed payload (e.g. a Lambda runtime); the payload
    /// moves into the event's `raw_event` instead of being copied.
    pub fn normalize_owned(&self, payload: Value) -> Result<Normalized, NormalizeError> {
        let parts = RefCell::new(Vec::new());
        let mut result = self.detect_and_build(&payload, &parts);
        if let Ok(Normalized::Events(events)) = &mut result {
            fill_payload(events, payload, parts.into_inner());
        }
        result
    }

    /// Like [`Normalizer::normalize_owned`] for a borrowed payload, which is copied once.
    pub fn normalize_value(&self, payload: &Value) -> Result<Normalized, NormalizeError> {
        self.normalize_owned(payload.clone())
    }

    fn detect_and_build(
        &self,
        payload: &Value,
        parts: &RefCell<Vec<PendingPart>>,
    ) -> Result<Normalized, NormalizeError> {
        let cx = Cx {
            policy: self.policy,
            payload,
            parts: Some(parts),
        };
        for cloud in CLOUDS {
            if let Some(result) = cloud(payload, &cx) {
                return result;
            }
        }
        Err(NormalizeError::Unrecognized {
            envelope: None,
            detail: describe_shape(payload),
        })
    }
}

/// Gives the events whose draft said "the whole payload" their `raw_event`: the parsed
/// payload itself, shared between them. Copying a large payload per event cost more than
/// parsing it (see `make bench`). Events whose draft named a part of the payload (one
/// element of a batch) get that part, moved out when no event keeps the whole payload.
fn fill_payload(events: &mut [UnifiedEvent], mut payload: Value, parts: Vec<PendingPart>) {
    let placeholder = payload_placeholder();
    let whole_kept = events
        .iter()
        .any(|e| Arc::ptr_eq(&e.raw_event, placeholder));
    // Several events of one element (a call launching instances) share its one copy.
    let mut resolved: Vec<(String, Arc<Value>)> = Vec::new();
    for part in parts {
        let value = match resolved.iter().find(|(p, _)| *p == part.pointer) {
            Some((_, value)) => Arc::clone(value),
            None => {
                let value = Arc::new(match payload.pointer_mut(&part.pointer) {
                    Some(slot) if !whole_kept => std::mem::take(slot),
                    Some(slot) => slot.clone(),
                    None => Value::Null,
                });
                resolved.push((part.pointer, Arc::clone(&value)));
                value
            }
        };
        for event in events
            .iter_mut()
            .filter(|e| Arc::ptr_eq(&e.raw_event, &part.placeholder))
        {
            event.raw_event = Arc::clone(&value);
        }
    }
    if whole_kept {
        let shared = Arc::new(payload);
        for event in events
            .iter_mut()
            .filter(|e| Arc::ptr_eq(&e.raw_event, placeholder))
        {
            event.raw_event = Arc::clone(&shared);
        }
    }
}

/// A finished event whose `raw_event` is a part of the payload, resolved by [`fill_payload`]
/// once the payload is owned again; `placeholder` identifies the event(s) until then.
struct PendingPart {
    placeholder: Arc<Value>,
    pointer: String,
}

/// For a module that normalized a payload found inside another: drafts that said "the whole
/// payload" get `inner` (the last one by move, the others a copy), drafts that named a part
/// of it a copy of that part.
pub(crate) fn resolve_inner_payload(drafts: &mut [EventDraft], inner: Value) {
    for draft in drafts.iter_mut().filter(|d| d.raw_event.is_none()) {
        if let Some(pointer) = draft.raw_part.take() {
            draft.raw_event = Some(inner.at(&pointer).cloned().unwrap_or_default());
        }
    }
    let mut waiting = drafts
        .iter_mut()
        .filter(|d| d.raw_event.is_none())
        .peekable();
    while let Some(draft) = waiting.next() {
        if waiting.peek().is_some() {
            draft.raw_event = Some(inner.clone());
        } else {
            draft.raw_event = Some(inner);
            return;
        }
    }
}

/// Stands in a finished event's `raw_event` until [`fill_payload`] puts the payload there;
/// recognised by identity, so no real raw event can be mistaken for it.
fn payload_placeholder() -> &'static Arc<Value> {
    static PLACEHOLDER: std::sync::OnceLock<Arc<Value>> = std::sync::OnceLock::new();
    PLACEHOLDER.get_or_init(|| Arc::new(Value::Null))
}

fn describe_shape(value: &Value) -> String {
    match value {
        Value::Object(map) if map.is_empty() => "the payload is an empty JSON object".into(),
        Value::Object(map) => {
            let keys: Vec<&str> = map.keys().take(8).map(String::as_str).collect();
            format!("a JSON object with keys [{}]", keys.join(", "))
        }
        Value::Array(items) => format!("a JSON array of {} item(s)", items.len()),
        Value::String(_) => "the payload is a JSON string, not an object".into(),
        Value::Number(_) => "the payload is a JSON number, not an object".into(),
        Value::Bool(_) => "the payload is a JSON boolean, not an object".into(),
        Value::Null => "the payload is JSON null".into(),
    }
}

/// Parses JSON found inside a payload (an SNS `Message` string, base64-decoded Pub/Sub
/// data); `None` when it is not JSON. Same parser as [`parse_json`].
pub(crate) fn parse_embedded(bytes: &[u8]) -> Option<Value> {
    simd_parse(bytes).ok()
}

/// simd-json into a `serde_json::Value`, reusing this thread's scratch buffers: a function
/// parses payload after payload, and allocating the tokenizer's buffers anew for each one
/// cost as much as the tokenizing of a small payload. simd-json tokenizes in place, hence the
/// scratch copy of the input.
fn simd_parse(bytes: &[u8]) -> Result<Value, simd_json::Error> {
    const RETAINED_SCRATCH_BYTES: usize = 1 << 20;
    struct Scratch {
        buffers: simd_json::Buffers,
        input: Vec<u8>,
    }
    thread_local! {
        static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch {
            buffers: simd_json::Buffers::default(),
            input: Vec::new(),
        });
    }
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut scratch) => {
            let Scratch { buffers, input } = &mut *scratch;
            input.clear();
            input.extend_from_slice(bytes);
            let parsed = simd_json::serde::from_slice_with_buffers::<Value>(input, buffers);
            // One huge payload (a CloudTrail log file) must not pin its buffers for the
            // life of the function.
            if input.capacity() > RETAINED_SCRATCH_BYTES {
                *scratch = Scratch {
                    buffers: simd_json::Buffers::default(),
                    input: Vec::new(),
                };
            }
            parsed
        }
        // Re-entered on this thread (cannot happen today: nothing here calls back out):
        // fresh buffers rather than a panic.
        Err(_) => simd_json::serde::from_slice::<Value>(&mut bytes.to_vec()),
    })
}

/// Parses JSON, turning serde's line/column into the byte offset an operator can seek to.
pub(crate) fn parse_json(bytes: &[u8]) -> Result<Value, NormalizeError> {
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    // simd-json is faster than serde_json; when it refuses the input, serde_json parses it
    // again for its precise error position.
    if let Ok(value) = simd_parse(body) {
        return Ok(value);
    }
    serde_json::from_slice(body).map_err(|e| {
        let bom = bytes.len() - body.len();
        // serde's text repeats the position, which the error already reports.
        let mut message = e.to_string();
        if let Some(at) = message.rfind(" at line ") {
            message.truncate(at);
        }
        // A truncated payload is reported at its end, where the missing bytes belong.
        let offset = if e.is_eof() {
            body.len()
        } else {
            byte_offset(body, e.line(), e.column())
        };
        NormalizeError::Malformed {
            offset: bom + offset,
            line: e.line(),
            column: e.column(),
            message,
        }
    })
}

/// serde_json reports 1-based lines and 1-based byte columns (0 at a line's very start).
fn byte_offset(bytes: &[u8], line: usize, column: usize) -> usize {
    let line_start = if line <= 1 {
        0
    } else {
        bytes
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(line - 2)
            .map_or(bytes.len(), |(i, _)| i + 1)
    };
    (line_start + column.saturating_sub(1)).min(bytes.len())
}

/// Shared state for the cloud modules while they build events.
pub(crate) struct Cx<'p> {
    policy: &'p SeverityPolicy,
    /// The payload being normalized, for ids of events whose source gave none.
    payload: &'p Value,
    /// Where events whose raw event is a part of the payload are noted, when the caller
    /// will own the payload (see [`fill_payload`]); without it the part is copied.
    parts: Option<&'p RefCell<Vec<PendingPart>>>,
}

/// What a cloud module knows about one event before the shared finishing steps.
#[derive(Debug, Clone)]
pub(crate) struct EventDraft {
    pub source: EventSource,
    pub event_type: EventType,
    pub account_id: String,
    /// `None` becomes `global`.
    pub region: Option<String>,
    pub resource: Resource,
    /// Fields the source states itself; tags fill the rest.
    pub context: EventContext,
    /// The source's own severity, when it has one.
    pub source_severity: Option<Severity>,
    /// The source's timestamp text, parsed leniently.
    pub time: Option<String>,
    /// The source's own ids, outermost first (delivery id, then finding id, ...): they make
    /// `event_id` stable across redeliveries and distinct between items of one payload.
    pub id_parts: Vec<String>,
    /// `None`: the whole payload the module was given, or the part of it at `raw_part`.
    /// A module that normalizes a payload found inside another (a Pub/Sub `data`, an SNS
    /// `Message`) resolves `None` itself; at the top level the normalizer moves the parsed
    /// payload (or the part) in, saving a copy.
    pub raw_event: Option<Value>,
    /// JSON pointer of the part of the payload that is this event's raw event (one element
    /// of a batch), when `raw_event` is `None`; `None` for the whole payload.
    pub raw_part: Option<String>,
}

impl EventDraft {
    /// A draft whose `raw_event` is `raw_event` (an item of the payload, or a decoded copy).
    pub fn new(source: EventSource, event_type: EventType, raw_event: Value) -> Self {
        EventDraft {
            raw_event: Some(raw_event),
            ..EventDraft::for_payload(source, event_type)
        }
    }

    /// A draft whose `raw_event` is the part of the payload at `pointer` (one element of a
    /// batch): moved out of the payload at the end instead of copied now.
    pub fn for_part(source: EventSource, event_type: EventType, pointer: String) -> Self {
        EventDraft {
            raw_part: Some(pointer),
            ..EventDraft::for_payload(source, event_type)
        }
    }

    /// A draft whose `raw_event` is the whole payload the module was given.
    pub fn for_payload(source: EventSource, event_type: EventType) -> Self {
        EventDraft {
            source,
            event_type,
            account_id: String::new(),
            region: None,
            resource: Resource::default(),
            context: EventContext::default(),
            source_severity: None,
            time: None,
            id_parts: Vec::new(),
            raw_event: None,
            raw_part: None,
        }
    }
}

impl<'p> Cx<'p> {
    /// For tests that call a cloud module directly: parts of the payload are copied.
    #[cfg(test)]
    pub(crate) fn new(policy: &'p SeverityPolicy, payload: &'p Value) -> Self {
        Cx {
            policy,
            payload,
            parts: None,
        }
    }

    /// Fills context from tags, resolves severity, derives the id and the timestamp.
    pub(crate) fn finish(&self, draft: EventDraft) -> UnifiedEvent {
        let EventDraft {
            source,
            event_type,
            account_id,
            region,
            mut resource,
            mut context,
            source_severity,
            time,
            id_parts,
            raw_event,
            raw_part,
        } = draft;
        context::fill_from_tags(&mut context, &resource.tags);
        let severity = self.policy.resolve(event_type, source_severity, &context);
        let timestamp = match time.as_deref().and_then(crate::time::parse_timestamp) {
            Some(t) => t,
            None => {
                // Keep the event (an alert with a garbled time must still be handled), use
                // the receive time, and keep what the source said so nothing is lost.
                tracing::warn!(?source, source_time = ?time, "event has no usable timestamp; using the time it was received");
                resource.metadata.insert(
                    "source_time".into(),
                    time.map_or(Value::Null, Value::String),
                );
                Utc::now()
            }
        };
        let part = || {
            let pointer = raw_part.as_deref()?;
            self.payload.at(pointer)
        };
        let event_id = derive_event_id(
            source,
            &id_parts,
            raw_event.as_ref().or_else(part).unwrap_or(self.payload),
        );
        let raw_event = match (raw_event, raw_part) {
            (Some(value), _) => Arc::new(value),
            (None, None) => Arc::clone(payload_placeholder()),
            (None, Some(pointer)) => match self.parts {
                Some(parts) => {
                    let placeholder = Arc::new(Value::Null);
                    parts.borrow_mut().push(PendingPart {
                        placeholder: Arc::clone(&placeholder),
                        pointer,
                    });
                    placeholder
                }
                None => Arc::new(self.payload.at(&pointer).cloned().unwrap_or_default()),
            },
        };
        UnifiedEvent {
            event_id,
            event_type,
            severity,
            cloud_provider: normalized_cloud(source),
            account_id,
            region: region
                .filter(|r| !r.trim().is_empty())
                .unwrap_or_else(|| "global".into()),
            resource,
            context,
            timestamp,
            source,
            raw_event,
            schema_version: SCHEMA_VERSION.into(),
        }
    }
}

/// The cloud of a source a normalizer produces. Every normalizer source belongs to one
/// cloud; only `escher.scan` has none, and scan findings are built by `crate::scan`, never
/// here.
fn normalized_cloud(source: EventSource) -> crate::CloudProvider {
    source.cloud().unwrap_or(crate::CloudProvider::Aws)
}

/// `<cloud>-<32 hex>`: a SHA-256 over the source and its own ids (or, when the source gave
/// none, over the canonical payload), so it is stable, fixed-length and safe as an object key.
fn derive_event_id(source: EventSource, id_parts: &[String], raw_event: &Value) -> String {
    let mut hash = Sha256::new();
    hash.update(source.as_str().as_bytes());
    if id_parts.iter().all(|p| p.is_empty()) {
        hash.update(b"\0payload\0");
        hash.update(raw_event.to_string().as_bytes());
    } else {
        for part in id_parts {
            hash.update(b"\0");
            hash.update(part.as_bytes());
        }
    }
    let digest = hash.finalize();
    let cloud = normalized_cloud(source).as_str();
    let mut id = String::with_capacity(cloud.len() + 1 + 32);
    id.push_str(cloud);
    id.push('-');
    crate::ids::push_hex(&mut id, &digest[..16]);
    id
}

// ---- small JSON helpers shared by the cloud modules ----

/// JSON pointer lookup without the allocations of `Value::pointer` (which unescapes every
/// segment into a new `String`); the normalizers do dozens of lookups per payload.
pub(crate) trait JsonAt {
    fn at(&self, pointer: &str) -> Option<&Value>;
}

impl JsonAt for Value {
    fn at(&self, pointer: &str) -> Option<&Value> {
        // Pointers here are short ASCII literals: plain byte scans are cheaper than the
        // memchr-based `str::contains`/`str::split` searchers, whose set-up dominated.
        if pointer.bytes().any(|b| b == b'~') {
            return self.pointer(pointer);
        }
        if pointer.is_empty() {
            return Some(self);
        }
        let mut rest = pointer.strip_prefix('/')?;
        let mut node = self;
        loop {
            // Splitting at an ASCII `/` always lands on a char boundary.
            let (segment, tail) = match rest.bytes().position(|b| b == b'/') {
                Some(i) => (&rest[..i], Some(&rest[i + 1..])),
                None => (rest, None),
            };
            node = match node {
                Value::Object(map) => map.get(segment)?,
                Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
                _ => return None,
            };
            match tail {
                Some(tail) => rest = tail,
                None => return Some(node),
            }
        }
    }
}

/// The string at a JSON pointer (`/detail/state/value`), if present and a string.
pub(crate) fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.at(pointer).and_then(Value::as_str)
}

/// The string at a JSON pointer, or an error naming the field (pointer shown as a dotted path).
pub(crate) fn required_str<'a>(
    value: &'a Value,
    pointer: &str,
    envelope: &str,
) -> Result<&'a str, NormalizeError> {
    match value.at(pointer) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(NormalizeError::field(
            envelope,
            dotted(pointer),
            format!("must be a string, found {}", json_kind(other)),
        )),
        None => Err(NormalizeError::field(
            envelope,
            dotted(pointer),
            "is missing",
        )),
    }
}

/// A copy of `value` with the node at `pointer` replaced, made without copying that node
/// (a base64 body, an encoded JSON string, a list of findings): the raw event keeps the
/// decoded form in place of the encoded one. `pointer` segments are plain keys or indices.
/// When the pointer does not resolve, the copy is unchanged.
pub(crate) fn with_replaced(value: &Value, pointer: &str, replacement: Value) -> Value {
    fn copy(node: &Value, path: &[&str], replacement: &mut Option<Value>) -> Value {
        let Some((head, rest)) = path.split_first() else {
            return replacement.take().unwrap_or_else(|| node.clone());
        };
        match node {
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| {
                        let v = if k == head {
                            copy(v, rest, replacement)
                        } else {
                            v.clone()
                        };
                        (k.clone(), v)
                    })
                    .collect(),
            ),
            Value::Array(items) => {
                let index = head.parse::<usize>().ok();
                Value::Array(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, v)| {
                            if Some(i) == index {
                                copy(v, rest, replacement)
                            } else {
                                v.clone()
                            }
                        })
                        .collect(),
                )
            }
            other => other.clone(),
        }
    }
    let path: Vec<&str> = pointer.split('/').skip(1).collect();
    copy(value, &path, &mut Some(replacement))
}

/// A non-blank string at a JSON pointer (clouds send `""` for "not set").
pub(crate) fn text<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    str_at(value, pointer).filter(|s| !s.trim().is_empty())
}

/// `virtualMachineScaleSets` → `virtual_machine_scale_sets`, `publicIPAddresses` →
/// `public_ip_addresses`, `<ResourceType>` → `resource_type`.
pub(crate) fn snake_case(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    for (i, c) in chars.iter().enumerate() {
        if !c.is_ascii_alphanumeric() {
            if !out.ends_with('_') && !out.is_empty() {
                out.push('_');
            }
            continue;
        }
        if c.is_ascii_uppercase() && i > 0 {
            let prev = chars.get(i - 1).copied().unwrap_or('_');
            let next = chars.get(i + 1).copied().unwrap_or('_');
            let word_starts = prev.is_ascii_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_ascii_uppercase() && next.is_ascii_lowercase());
            if word_starts && !out.ends_with('_') && !out.is_empty() {
                out.push('_');
            }
        }
        out.push(c.to_ascii_lowercase());
    }
    out.trim_end_matches('_').to_string()
}

/// `/detail/findings/0/Id` → `detail.findings[0].Id`, the way operators read paths.
pub(crate) fn dotted(pointer: &str) -> String {
    let mut out = String::new();
    for part in pointer.split('/').filter(|p| !p.is_empty()) {
        if part.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&part.replace("~1", "/").replace("~0", "~"));
        }
    }
    out
}

pub(crate) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Tags from AWS-style `[{"Key": k, "Value": v}]` lists (any key case) or from a plain
/// `{k: v}` object (Azure tags, GCP labels). Non-string values are rendered as JSON text.
pub(crate) fn tags_from(value: Option<&Value>) -> BTreeMap<String, String> {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    match value {
        Some(Value::Object(map)) => map.iter().map(|(k, v)| (k.clone(), text(v))).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|item| {
                let obj = item.as_object()?;
                let field = |name: &str| {
                    obj.iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(name))
                        .map(|(_, v)| v)
                };
                let key = field("key")?.as_str()?.to_string();
                Some((key, field("value").map(text).unwrap_or_default()))
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_json_names_the_byte_offset() {
        let bytes = b"{\n  \"a\": 1,\n  \"b\": @\n}";
        match normalize(bytes) {
            Err(NormalizeError::Malformed { offset, line, .. }) => {
                assert_eq!(line, 3);
                assert_eq!(
                    bytes[offset], b'@',
                    "offset {offset} should point at the bad byte"
                );
            }
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    #[test]
    fn offset_of_an_error_on_the_first_line() {
        match normalize(b"[1, 2,, 3]") {
            Err(NormalizeError::Malformed { offset, .. }) => assert_eq!(offset, 6),
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    #[test]
    fn unknown_shapes_are_unrecognized_with_a_description() {
        let err = normalize(br#"{"hello": "world"}"#).unwrap_err();
        assert!(
            matches!(&err, NormalizeError::Unrecognized { envelope: None, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("hello"), "{err}");
        assert!(normalize(b"42").is_err());
        assert!(normalize(b"").is_err());
    }

    #[test]
    fn event_ids_are_stable_and_distinct_per_part() {
        let raw = serde_json::json!({"a": 1});
        let a = derive_event_id(
            EventSource::AwsSecurityHub,
            &["env-1".into(), "f-1".into()],
            &raw,
        );
        let b = derive_event_id(
            EventSource::AwsSecurityHub,
            &["env-1".into(), "f-1".into()],
            &raw,
        );
        let c = derive_event_id(
            EventSource::AwsSecurityHub,
            &["env-1".into(), "f-2".into()],
            &raw,
        );
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.starts_with("aws-") && a.len() == 4 + 32, "{a}");
    }

    #[test]
    fn tags_from_lists_and_objects() {
        let list =
            serde_json::json!([{"Key": "env", "Value": "prod"}, {"key": "team", "value": "x"}]);
        let tags = tags_from(Some(&list));
        assert_eq!(tags.get("env").map(String::as_str), Some("prod"));
        assert_eq!(tags.get("team").map(String::as_str), Some("x"));
        let obj = serde_json::json!({"env": "dev", "n": 3});
        let tags = tags_from(Some(&obj));
        assert_eq!(tags.get("n").map(String::as_str), Some("3"));
    }

    #[test]
    fn with_replaced_swaps_one_node_and_keeps_the_rest() {
        let value = serde_json::json!({"a": {"b": "encoded", "c": [1, {"d": 2}]}, "e": true});
        let out = with_replaced(&value, "/a/b", serde_json::json!({"decoded": 1}));
        assert_eq!(
            out,
            serde_json::json!({"a": {"b": {"decoded": 1}, "c": [1, {"d": 2}]}, "e": true})
        );
        let out = with_replaced(&value, "/a/c/1/d", serde_json::json!(3));
        assert_eq!(out["a"]["c"][1]["d"], 3);
        assert_eq!(
            with_replaced(&value, "/a/missing/x", serde_json::json!(0)),
            value
        );
    }

    #[test]
    fn dotted_paths_read_naturally() {
        assert_eq!(dotted("/detail/findings/0/Id"), "detail.findings[0].Id");
        assert_eq!(dotted("/message/data"), "message.data");
    }
}
