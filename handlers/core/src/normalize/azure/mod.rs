//! Azure payloads: Event Grid deliveries (Event Grid schema and CloudEvents 1.0, an array or
//! a single event) and Azure Monitor action-group webhooks (the common alert schema, and the
//! older `AzureMonitorMetricAlert` and `Microsoft.Insights/activityLogs` payloads).
//!
//! The payloads are read through `serde_json::Value` with small accessors rather than the
//! `azure_svc_eventgrid` models the issue suggests: that crate is an Azure REST SDK (it pulls
//! `azure_core` and an HTTP client) and `escher-core` must link no cloud SDK. Reading values
//! also tolerates every unknown field and the placeholders (`{subscription-id}`,
//! `yyyy-mm-ddThh:mm:ssZ`) found in published samples.
//!
//! Detection is by shape only and stays clear of the other clouds: an Event Grid event needs
//! `eventType` + `id` + `subject`/`topic` (a raw CloudTrail record has `eventType` but no
//! `id`/`subject`/`topic`); a CloudEvent needs `specversion` and an Azure `type` or `source`
//! (GCP's CloudEvents are `google.*` with `//…googleapis.com` sources); a Monitor webhook
//! needs `schemaId` + `data` (EventBridge has `detail-type`, SNS `Records`, Pub/Sub push
//! `message` + `subscription`).

mod activity_log;
mod arm;
mod eventgrid;
mod legacy;
mod monitor;
mod system_events;

use serde_json::{Map, Value};

use super::{tags_from, text, Cx, NormalizeError, Normalized};
use crate::context;
use crate::event::{EventContext, Resource, Severity};

use arm::ArmId;

pub(crate) fn normalize(value: &Value, cx: &Cx) -> Option<Result<Normalized, NormalizeError>> {
    if eventgrid::claims(value) {
        return Some(eventgrid::normalize(value, cx));
    }
    let schema_id = value.get("schemaId")?.as_str()?;
    value.get("data")?;
    let lower = schema_id.to_ascii_lowercase();
    match lower.as_str() {
        "azuremonitorcommonalertschema" => Some(monitor::normalize(value, cx)),
        "azuremonitormetricalert" => Some(legacy::metric_alert(value, cx)),
        "microsoft.insights/activitylogs" => Some(legacy::activity_log_alert(value, cx)),
        _ if lower.starts_with("microsoft.") || lower.starts_with("azure") => {
            Some(Err(NormalizeError::unrecognized(
                format!("Azure Monitor webhook (schemaId {schema_id})"),
                "this schemaId is not supported (supported: azureMonitorCommonAlertSchema, \
                 AzureMonitorMetricAlert, Microsoft.Insights/activityLogs)",
            )))
        }
        _ => None,
    }
}

// ---- small helpers shared by the Azure submodules ----

/// Inserts a metadata value unless it is absent or null (readers should not see noise).
fn put(meta: &mut Map<String, Value>, key: &str, value: Option<&Value>) {
    if let Some(v) = value.filter(|v| !v.is_null()) {
        meta.insert(key.into(), v.clone());
    }
}

fn put_str(meta: &mut Map<String, Value>, key: &str, value: Option<&str>) {
    if let Some(v) = value {
        meta.insert(key.into(), Value::String(v.into()));
    }
}

/// Azure Monitor severities: `Sev0..Sev4` (the older payloads send the bare digit).
/// Sev3 (informational) and Sev4 (verbose) both become INFO.
fn sev_severity(text: &str) -> Option<Severity> {
    let trimmed = text.trim();
    let digits = trimmed
        .get(..3)
        .filter(|p| p.eq_ignore_ascii_case("sev"))
        .and_then(|_| trimmed.get(3..))
        .unwrap_or(trimmed);
    match digits {
        "0" => Some(Severity::Critical),
        "1" => Some(Severity::High),
        "2" => Some(Severity::Medium),
        "3" | "4" => Some(Severity::Info),
        _ => None,
    }
}

/// `Australia East` → `australiaeast` (the ARM location spelling); `Global` and lists of
/// several regions give `None`, i.e. `global`.
fn region_name(text: &str) -> Option<String> {
    let name: String = text
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    if name.is_empty() || name == "global" || name.contains(',') || name.contains(';') {
        None
    } else {
        Some(name)
    }
}

/// The resource an ARM id names: kind from its provider type, name from its last segment.
fn resource_from_id(id: &str) -> Resource {
    let parsed = ArmId::parse(id);
    Resource {
        kind: parsed.kind(),
        id: id.to_string(),
        name: parsed.name.unwrap_or(id).to_string(),
        ..Resource::default()
    }
}

/// The first subscription id found: explicit fields first, then ids to parse.
fn subscription_of(explicit: &[Option<&str>], ids: &[Option<&str>]) -> String {
    explicit
        .iter()
        .flatten()
        .map(|s| s.trim())
        .find(|s| !s.is_empty())
        .or_else(|| {
            ids.iter()
                .flatten()
                .find_map(|id| ArmId::parse(id).subscription)
        })
        .unwrap_or_default()
        .to_string()
}

/// Context stated by the alert itself through its custom properties (the one place an
/// alert rule author can say `environment: production`); tags still fill the rest later.
fn context_from_properties(properties: &[Option<&Value>]) -> EventContext {
    let mut cx = EventContext::default();
    for props in properties {
        context::fill_from_tags(&mut cx, &tags_from(*props));
    }
    cx
}

/// Whether an ARM operation name says it creates (`Microsoft.X/things/create/action`);
/// a plain `…/write` is create-or-update and says nothing either way.
fn operation_says_create(operation: Option<&str>) -> bool {
    operation.is_some_and(|op| {
        op.split('/')
            .skip(1)
            .any(|part| part.eq_ignore_ascii_case("create"))
    })
}

#[cfg(test)]
mod tests;
