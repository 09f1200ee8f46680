//! Azure Monitor common alert schema (`schemaId: azureMonitorCommonAlertSchema`):
//! `data.essentials` says which alert, `data.alertContext` what it saw.
//!
//! Metric alerts (static and dynamic thresholds) and log search alerts (v1 and v2) firing →
//! `metric_alarm`, or `capacity_high` when a criterion watches a capacity metric (see
//! [`is_capacity_metric`]); `Resolved` → `alarm_resolved`. Activity-log alerts by category
//! (see `activity_log`). Cost budget alerts → `budget_exceeded` when spent ≥ budget,
//! otherwise `cost_spike` (a notification threshold below the budget was crossed).
//!
//! Severity is the rule's `Sev0..Sev4` while the alert fires. A `Resolved` notification
//! keeps the policy default (INFO): the Sev describes the problem, not its end; the Sev is
//! kept in metadata.

use crate::normalize::JsonAt;
use serde_json::{Map, Value};

use super::activity_log::Category;
use super::{
    activity_log, context_from_properties, put, put_str, resource_from_id, sev_severity,
    subscription_of, text,
};
use crate::event::{EventSource, EventType};
use crate::normalize::{json_kind, required_str, Cx, EventDraft, NormalizeError, Normalized};

const ENVELOPE: &str = "Azure Monitor common alert";

enum AlertKind {
    Metric,
    Log,
    ActivityLog(Category),
    Cost,
}

pub(super) fn normalize(value: &Value, cx: &Cx) -> Result<Normalized, NormalizeError> {
    // The common alert schema keeps everything under `data`: look it up once.
    let data = value.get("data").unwrap_or(&Value::Null);
    let essentials = match data.get("essentials") {
        Some(e @ Value::Object(_)) => e,
        None | Some(Value::Null) => {
            return Err(NormalizeError::field(
                ENVELOPE,
                "data.essentials",
                "is missing",
            ))
        }
        Some(other) => {
            return Err(NormalizeError::field(
                ENVELOPE,
                "data.essentials",
                format!("must be an object, found {}", json_kind(other)),
            ))
        }
    };
    let alert_context = data.get("alertContext").unwrap_or(&Value::Null);
    let condition = required_str(value, "/data/essentials/monitorCondition", ENVELOPE)?;
    let resolved = if condition.eq_ignore_ascii_case("Resolved") {
        true
    } else if condition.eq_ignore_ascii_case("Fired") {
        false
    } else {
        return Err(NormalizeError::field(
            ENVELOPE,
            "data.essentials.monitorCondition",
            format!("is `{condition}`, expected `Fired` or `Resolved`"),
        ));
    };
    let kind = classify(essentials, alert_context)?;

    let targets: Vec<&str> = essentials
        .get("alertTargetIDs")
        .and_then(Value::as_array)
        .map(|ids| ids.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let first_target = targets.first().copied();
    let alert_id = text(essentials, "/alertId");
    let fired_time = text(essentials, "/firedDateTime");
    let resolved_time = text(essentials, "/resolvedDateTime");
    let time_text = if resolved {
        resolved_time.or(fired_time)
    } else {
        fired_time
    };
    let account_id = subscription_of(&[], &[first_target, alert_id]);
    let custom_properties = data.get("customProperties");

    let mut draft = match &kind {
        AlertKind::Metric | AlertKind::Log => {
            let criteria = alert_context
                .at("/condition/allOf")
                .and_then(Value::as_array);
            let event_type = if resolved {
                EventType::AlarmResolved
            } else if matches!(kind, AlertKind::Metric) && watches_idle_cpu(criteria) {
                EventType::InstanceIdle
            } else if matches!(kind, AlertKind::Metric) && watches_capacity(criteria) {
                EventType::CapacityHigh
            } else {
                EventType::MetricAlarm
            };
            let mut draft = EventDraft::for_payload(EventSource::AzureMonitor, event_type);
            if let Some(target) = first_target {
                draft.resource = resource_from_id(target);
            }
            // For metric and log alerts, alertContext.properties are the rule's custom
            // properties (activity-log records use the same name for their own details).
            draft.context =
                context_from_properties(&[custom_properties, alert_context.get("properties")]);
            describe_condition(alert_context, &mut draft.resource.metadata);
            draft
        }
        AlertKind::ActivityLog(category) => {
            let category = *category;
            let mut draft =
                EventDraft::for_payload(category.source(), category.event_type(alert_context));
            if let Some(resource) =
                activity_log::resource(category, alert_context, first_target, &account_id)
            {
                draft.resource = resource;
            }
            draft.region = activity_log::region(category, alert_context, &draft.resource);
            draft.context = context_from_properties(&[custom_properties]);
            draft.source_severity = activity_log::record_severity(category, alert_context);
            activity_log::describe(category, alert_context, &mut draft.resource.metadata);
            if let Some(event_time) = text(alert_context, "/eventTimestamp") {
                draft.time = Some(event_time.to_string());
            }
            draft
        }
        AlertKind::Cost => cost_alert(alert_context, resolved)?,
    };
    if draft.account_id.is_empty() {
        draft.account_id = account_id;
    }
    if draft.resource.id.is_empty() {
        if let Some(id) = alert_id {
            draft.resource = resource_from_id(id);
        }
    }
    if draft.time.is_none() {
        draft.time = time_text.map(str::to_string);
    }
    let sev = text(essentials, "/severity");
    if !resolved {
        draft.source_severity = sev.and_then(sev_severity).or(draft.source_severity);
    }
    draft.id_parts = [alert_id, Some(condition), time_text]
        .iter()
        .flatten()
        .map(|s| s.to_string())
        .collect();

    let meta = &mut draft.resource.metadata;
    put_str(meta, "alert_id", alert_id);
    put_str(meta, "alert_rule", text(essentials, "/alertRule"));
    put_str(meta, "alert_severity", sev);
    put_str(meta, "monitor_condition", Some(condition));
    put_str(
        meta,
        "monitoring_service",
        text(essentials, "/monitoringService"),
    );
    put_str(meta, "signal_type", text(essentials, "/signalType"));
    put_str(meta, "alert_description", text(essentials, "/description"));
    put_str(meta, "origin_alert_id", text(essentials, "/originAlertId"));
    put_str(meta, "fired_time", fired_time);
    put_str(meta, "resolved_time", resolved_time);
    if !targets.is_empty() {
        meta.insert("target_resource_ids".into(), targets.clone().into());
    }
    put(
        meta,
        "configuration_items",
        essentials.get("configurationItems"),
    );
    put(meta, "custom_properties", custom_properties);
    Ok(Normalized::Events(vec![cx.finish(draft)]))
}

fn classify(essentials: &Value, alert_context: &Value) -> Result<AlertKind, NormalizeError> {
    let service = text(essentials, "/monitoringService").unwrap_or_default();
    let signal: String = text(essentials, "/signalType")
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    if service.eq_ignore_ascii_case("CostAlerts") || alert_context.get("AlertCategory").is_some() {
        return Ok(AlertKind::Cost);
    }
    if let Some(category @ (Category::ServiceHealth | Category::ResourceHealth)) =
        Category::parse(service)
    {
        return Ok(AlertKind::ActivityLog(category));
    }
    let is_activity_log = signal == "activitylog"
        || service
            .get(..12)
            .is_some_and(|p| p.eq_ignore_ascii_case("activity log"));
    if is_activity_log {
        return Category::of_record(alert_context)
            .or_else(|| Category::parse(service))
            .map(AlertKind::ActivityLog)
            .ok_or_else(|| {
                NormalizeError::unrecognized(
                    format!("{ENVELOPE} (monitoringService {service}, activity log)"),
                    format!(
                        "its activity-log category `{}` is not supported (supported: \
                         Administrative, Security, Policy, Autoscale, ServiceHealth, ResourceHealth)",
                        text(alert_context, "/eventSource").unwrap_or("none")
                    ),
                )
            });
    }
    match signal.as_str() {
        "metric" => Ok(AlertKind::Metric),
        "log" => Ok(AlertKind::Log),
        _ => Err(NormalizeError::unrecognized(
            format!("{ENVELOPE} (monitoringService {service})"),
            format!(
                "its signalType `{}` is not supported (supported: Metric, Log, Activity Log, \
                 and the CostAlerts, ServiceHealth and Resource Health services)",
                text(essentials, "/signalType").unwrap_or("none")
            ),
        )),
    }
}

/// Metrics that measure how full something is; an alert on one is `capacity_high`:
/// CPU and memory use (`Percentage CPU`, `Available Memory Bytes`, `cpu_percent`,
/// `memory_percent`), storage use (`Used capacity`, `storage_percent`, disk percentages)
/// and SQL DTU use. Matched ignoring case, spaces and underscores.
pub(super) fn is_capacity_metric(name: &str) -> bool {
    let key: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    const EXACT: &[&str] = &[
        "percentagecpu",
        "availablememorybytes",
        "availablememorypercentage",
        "usedcapacity",
        "blobcapacity",
        "filecapacity",
        "storageused",
    ];
    EXACT.contains(&key.as_str())
        || (key.contains("percent")
            && ["cpu", "memory", "disk", "storage", "dtu"]
                .iter()
                .any(|w| key.contains(w)))
}

/// A VM's `Percentage CPU` falling below a threshold: the user's own "this VM is idle" rule
/// (the fix still checks the CPU over the approved window before acting).
fn watches_idle_cpu(criteria: Option<&Vec<Value>>) -> bool {
    criteria.into_iter().flatten().any(|c| {
        let text = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or_default();
        text("metricName").eq_ignore_ascii_case("Percentage CPU")
            && text("operator")
                .to_ascii_lowercase()
                .starts_with("lessthan")
    })
}

fn watches_capacity(criteria: Option<&Vec<Value>>) -> bool {
    criteria.into_iter().flatten().any(|c| {
        c.get("metricName")
            .and_then(Value::as_str)
            .is_some_and(is_capacity_metric)
    })
}

/// The condition of a metric or log alert: the first criterion flattened for readers, all
/// criteria as sent. Log search v1 puts its query fields straight in the alert context.
fn describe_condition(alert_context: &Value, meta: &mut Map<String, Value>) {
    put_str(
        meta,
        "condition_type",
        text(alert_context, "/conditionType"),
    );
    put_str(
        meta,
        "window_size",
        text(alert_context, "/condition/windowSize"),
    );
    let criteria = alert_context.at("/condition/allOf");
    if let Some(first) = criteria.and_then(|c| c.get(0)) {
        put_str(meta, "metric_name", text(first, "/metricName"));
        put_str(meta, "metric_namespace", text(first, "/metricNamespace"));
        put_str(meta, "search_query", text(first, "/searchQuery"));
        put_str(meta, "operator", text(first, "/operator"));
        put(meta, "threshold", first.get("threshold"));
        put(meta, "metric_value", first.get("metricValue"));
        put_str(meta, "time_aggregation", text(first, "/timeAggregation"));
        put_str(meta, "alert_sensitivity", text(first, "/alertSensitivity"));
    }
    put(meta, "criteria", criteria);
    for (key, field) in [
        ("search_query", "/SearchQuery"),
        ("operator", "/Operator"),
        ("alert_type", "/AlertType"),
        ("link_to_search_results", "/LinkToSearchResults"),
        ("search_interval_start", "/SearchIntervalStartTimeUtc"),
        ("search_interval_end", "/SearchIntervalEndtimeUtc"),
    ] {
        put_str(meta, key, text(alert_context, field));
    }
    put(meta, "threshold", alert_context.get("Threshold"));
    put(meta, "result_count", alert_context.get("ResultCount"));
}

/// Cost Management alerts: budgets (and anomalies). `AlertData` amounts are text such as
/// `$11,111.00`; `context.cost_impact` is the overspend (spent − budget) when both amounts
/// read and the unit is USD.
fn cost_alert(alert_context: &Value, resolved: bool) -> Result<EventDraft, NormalizeError> {
    let category = text(alert_context, "/AlertCategory").unwrap_or("budgets");
    let data = alert_context.get("AlertData").unwrap_or(&Value::Null);
    let lower = category.to_ascii_lowercase();
    let is_budget = lower.starts_with("budget");
    if !is_budget && !lower.contains("anomal") {
        return Err(NormalizeError::unrecognized(
            format!("{ENVELOPE} (CostAlerts)"),
            format!(
                "its AlertCategory `{category}` is not supported (supported: budgets, anomalies)"
            ),
        ));
    }
    let spent = text(data, "/SpentAmount").and_then(amount);
    let budget = text(data, "/BudgetThreshold").and_then(amount);
    let over_budget = match (spent, budget) {
        (Some(spent), Some(budget)) => spent >= budget,
        // The alert fired but its amounts do not read: trust that it is about the budget.
        _ => is_budget,
    };
    let event_type = if resolved {
        EventType::AlarmResolved
    } else if is_budget && over_budget {
        EventType::BudgetExceeded
    } else {
        EventType::CostSpike
    };
    let mut draft = EventDraft::for_payload(EventSource::AzureMonitor, event_type);
    let budget_id = text(data, "/BudgetId");
    let scope = text(data, "/Scope");
    if let Some(id) = budget_id {
        draft.resource = resource_from_id(id);
    }
    if let Some(name) = text(data, "/BudgetName") {
        draft.resource.name = name.to_string();
    }
    draft.account_id = subscription_of(&[], &[scope, budget_id]);
    let unit = text(data, "/Unit");
    let usd = match unit {
        Some(unit) => unit.eq_ignore_ascii_case("USD"),
        None => text(data, "/SpentAmount").is_some_and(|s| s.trim_start().starts_with('$')),
    };
    if let (true, true, Some(spent), Some(budget)) = (usd, over_budget, spent, budget) {
        draft.context.cost_impact = Some(((spent - budget) * 100.0).round() / 100.0);
    }
    let meta = &mut draft.resource.metadata;
    put_str(meta, "alert_category", Some(category));
    put_str(meta, "budget_name", text(data, "/BudgetName"));
    put_str(meta, "budget_id", budget_id);
    put_str(meta, "scope", scope);
    put_str(meta, "threshold_type", text(data, "/ThresholdType"));
    put_str(meta, "budget_type", text(data, "/BudgetType"));
    put_str(meta, "unit", unit);
    put(meta, "budget_amount", budget.map(Value::from).as_ref());
    put(meta, "spent_amount", spent.map(Value::from).as_ref());
    put(
        meta,
        "notification_threshold_amount",
        text(data, "/NotificationThresholdAmount")
            .and_then(amount)
            .map(Value::from)
            .as_ref(),
    );
    put_str(meta, "budget_start_date", text(data, "/BudgetStartDate"));
    put_str(meta, "budget_creator", text(data, "/BudgetCreator"));
    Ok(draft)
}

/// `$11,111.00` → 11111.0: currency symbols, spaces and thousands separators dropped.
pub(super) fn amount(text: &str) -> Option<f64> {
    let digits: String = text
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '.' || *c == '-')
        .collect();
    digits.parse::<f64>().ok().filter(|n| n.is_finite())
}
