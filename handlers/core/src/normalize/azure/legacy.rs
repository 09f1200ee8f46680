//! The older, non-common Azure Monitor webhooks: the metric alert payload
//! (`schemaId: AzureMonitorMetricAlert`, status Activated/Resolved) and the activity-log
//! alert payload (`schemaId: Microsoft.Insights/activityLogs`, `data.context.activityLog`).
//! Mapped like their common-schema counterparts (see `monitor` and `activity_log`).

use crate::normalize::JsonAt;
use serde_json::Value;

use super::activity_log::{self, Category};
use super::arm::resource_kind;
use super::monitor::is_capacity_metric;
use super::{
    context_from_properties, put, put_str, resource_from_id, sev_severity, subscription_of, text,
};
use crate::event::{EventSource, EventType};
use crate::normalize::{json_kind, required_str, Cx, EventDraft, NormalizeError, Normalized};

const METRIC_ENVELOPE: &str = "Azure Monitor metric alert webhook (AzureMonitorMetricAlert)";
const ACTIVITY_ENVELOPE: &str = "Azure Monitor activity log alert webhook";

fn required_object<'a>(
    value: &'a Value,
    pointer: &str,
    envelope: &str,
) -> Result<&'a Value, NormalizeError> {
    match value.at(pointer) {
        Some(v @ Value::Object(_)) => Ok(v),
        None | Some(Value::Null) => Err(NormalizeError::field(
            envelope,
            crate::normalize::dotted(pointer),
            "is missing",
        )),
        Some(other) => Err(NormalizeError::field(
            envelope,
            crate::normalize::dotted(pointer),
            format!("must be an object, found {}", json_kind(other)),
        )),
    }
}

pub(super) fn metric_alert(value: &Value, cx: &Cx) -> Result<Normalized, NormalizeError> {
    let status = required_str(value, "/data/status", METRIC_ENVELOPE)?;
    let context = required_object(value, "/data/context", METRIC_ENVELOPE)?;
    let resource_id = required_str(value, "/data/context/resourceId", METRIC_ENVELOPE)?;
    let resolved = match status.to_ascii_lowercase().as_str() {
        "activated" | "fired" => false,
        "resolved" | "deactivated" => true,
        _ => {
            return Err(NormalizeError::field(
                METRIC_ENVELOPE,
                "data.status",
                format!("is `{status}`, expected `Activated` or `Resolved`"),
            ))
        }
    };
    let criteria = context.at("/condition/allOf").and_then(Value::as_array);
    let capacity = criteria.into_iter().flatten().any(|c| {
        c.get("metricName")
            .and_then(Value::as_str)
            .is_some_and(is_capacity_metric)
    });
    let event_type = match (resolved, capacity) {
        (true, _) => EventType::AlarmResolved,
        (false, true) => EventType::CapacityHigh,
        (false, false) => EventType::MetricAlarm,
    };
    let mut draft = EventDraft::for_payload(EventSource::AzureMonitor, event_type);
    draft.resource = resource_from_id(resource_id);
    if let Some(kind) = text(context, "/resourceType") {
        draft.resource.kind = resource_kind(kind);
    }
    // The resource's own id says which subscription owns it; the rule's field is a fallback.
    draft.account_id = subscription_of(&[], &[Some(resource_id)]);
    if draft.account_id.is_empty() {
        draft.account_id = text(context, "/subscriptionId").unwrap_or_default().into();
    }
    let sev = text(context, "/severity");
    if !resolved {
        draft.source_severity = sev.and_then(sev_severity);
    }
    let timestamp = text(context, "/timestamp");
    draft.time = timestamp.map(str::to_string);
    draft.id_parts = [text(context, "/id"), Some(status), timestamp]
        .iter()
        .flatten()
        .map(|s| s.to_string())
        .collect();
    let custom = value.at("/data/properties");
    draft.context = context_from_properties(&[custom]);
    let meta = &mut draft.resource.metadata;
    put_str(meta, "alert_rule", text(context, "/name"));
    put_str(meta, "alert_rule_id", text(context, "/id"));
    put_str(meta, "alert_severity", sev);
    put_str(meta, "status", Some(status));
    put_str(meta, "alert_description", text(context, "/description"));
    put_str(meta, "condition_type", text(context, "/conditionType"));
    put_str(meta, "window_size", text(context, "/condition/windowSize"));
    if let Some(first) = criteria.and_then(|c| c.first()) {
        put_str(meta, "metric_name", text(first, "/metricName"));
        put_str(meta, "metric_namespace", text(first, "/metricNamespace"));
        put_str(meta, "operator", text(first, "/operator"));
        put(meta, "threshold", first.get("threshold"));
        put(meta, "metric_value", first.get("metricValue"));
    }
    put(meta, "criteria", context.at("/condition/allOf"));
    put_str(
        meta,
        "rule_subscription_id",
        text(context, "/subscriptionId"),
    );
    put_str(meta, "portal_link", text(context, "/portalLink"));
    put(meta, "custom_properties", custom);
    Ok(Normalized::Events(vec![cx.finish(draft)]))
}

pub(super) fn activity_log_alert(value: &Value, cx: &Cx) -> Result<Normalized, NormalizeError> {
    let record = required_object(value, "/data/context/activityLog", ACTIVITY_ENVELOPE)?;
    let category = match Category::of_record(record) {
        Some(category) => category,
        // Administrative records often omit eventSource but always carry authorization.
        None if text(record, "/eventSource").is_none() && record.get("authorization").is_some() => {
            Category::Administrative
        }
        None => {
            return Err(NormalizeError::unrecognized(
                ACTIVITY_ENVELOPE,
                format!(
                    "its activity-log category `{}` is not supported (supported: \
                     Administrative, Security, Policy, Autoscale, ServiceHealth, ResourceHealth)",
                    text(record, "/eventSource").unwrap_or("none")
                ),
            ))
        }
    };
    let status = text(value, "/data/status");
    let account_id = subscription_of(
        &[text(record, "/subscriptionId")],
        &[
            text(record, "/resourceId"),
            text(record, "/authorization/scope"),
        ],
    );
    let mut draft = EventDraft::for_payload(category.source(), category.event_type(record));
    draft.account_id = account_id.clone();
    if let Some(resource) = activity_log::resource(category, record, None, &account_id) {
        draft.resource = resource;
    } else if category == Category::ServiceHealth && !account_id.is_empty() {
        draft.resource = resource_from_id(&format!("/subscriptions/{account_id}"));
    }
    draft.region = activity_log::region(category, record, &draft.resource);
    draft.source_severity = activity_log::record_severity(category, record);
    draft.time = text(record, "/eventTimestamp")
        .or(text(record, "/submissionTimestamp"))
        .map(str::to_string);
    draft.id_parts = [text(record, "/eventDataId"), status]
        .iter()
        .flatten()
        .map(|s| s.to_string())
        .collect();
    if text(record, "/eventDataId").is_none() {
        // Without the record's own id, the payload itself identifies the event.
        draft.id_parts.clear();
    }
    let custom = value.at("/data/properties");
    draft.context = context_from_properties(&[custom]);
    let meta = &mut draft.resource.metadata;
    put_str(meta, "alert_status", status);
    activity_log::describe(category, record, meta);
    put(
        meta,
        "custom_properties",
        custom.filter(|c| c.as_object().is_some_and(|o| !o.is_empty())),
    );
    Ok(Normalized::Events(vec![cx.finish(draft)]))
}
