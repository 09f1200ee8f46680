//! Cloud Billing budget notifications (`budgetDisplayName`, `costAmount`, `budgetAmount`,
//! `alertThresholdExceeded`, …; attributes `billingAccountId`/`budgetId` when enveloped)
//! → `gcp.billing`.
//!
//! Cost ≥ budget → `budget_exceeded` (policy default severity). Below budget → `cost_spike`
//! with severity from the crossed threshold: ≥ 90 % HIGH, ≥ 50 % MEDIUM, lower INFO; a
//! crossed forecast threshold alone makes it at least MEDIUM; no threshold at all (Google
//! sends routine status updates several times a day) is INFO.
//! `context.cost_impact` is `costAmount` when the currency is USD or not given.
//! `account_id` is the billing account (budgets belong to one, not to a project); without
//! the attributes, the delivery falls back to the subscription's project.
//! The time is the delivery's publish time, else `costIntervalStart` (the only time in the
//! bare data).

use serde_json::{Map, Value};

use super::pubsub::Delivery;
use super::{first_str, non_empty};
use crate::event::{EventSource, EventType, Severity};
use crate::normalize::{json_kind, EventDraft, NormalizeError};

const ENVELOPE: &str = "Cloud Billing budget notification";

pub(super) fn is_budget_notification(object: &Map<String, Value>) -> bool {
    object.contains_key("budgetDisplayName")
        || (object.contains_key("costAmount") && object.contains_key("budgetAmount"))
}

/// Budget amounts are JSON numbers; accept numeric strings too (some relays stringify).
fn amount(value: &Value, field: &str) -> Result<f64, NormalizeError> {
    match value.get(field) {
        Some(Value::Number(n)) => n
            .as_f64()
            .ok_or_else(|| NormalizeError::field(ENVELOPE, field, "is not a representable number")),
        Some(Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .ok_or_else(|| {
                NormalizeError::field(ENVELOPE, field, format!("is not a number: `{s}`"))
            }),
        Some(other) => Err(NormalizeError::field(
            ENVELOPE,
            field,
            format!("must be a number, found {}", json_kind(other)),
        )),
        None => Err(NormalizeError::field(ENVELOPE, field, "is missing")),
    }
}

fn optional_number(value: &Value, field: &str) -> Option<f64> {
    match value.get(field)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Severity of a below-budget notification, from the thresholds it crossed.
fn cost_spike_severity(actual: Option<f64>, forecast: Option<f64>) -> Severity {
    let by_actual = match actual {
        Some(t) if t >= 0.9 => Severity::High,
        Some(t) if t >= 0.5 => Severity::Medium,
        _ => Severity::Info,
    };
    if forecast.is_some() {
        by_actual.max(Severity::Medium)
    } else {
        by_actual
    }
}

pub(super) fn drafts(
    value: &Value,
    delivery: Option<&Delivery>,
) -> Result<Vec<EventDraft>, NormalizeError> {
    let cost = amount(value, "costAmount")?;
    let budget = amount(value, "budgetAmount")?;
    let threshold = optional_number(value, "alertThresholdExceeded");
    let forecast = optional_number(value, "forecastThresholdExceeded");
    let exceeded = cost >= budget;
    let event_type = if exceeded {
        EventType::BudgetExceeded
    } else {
        EventType::CostSpike
    };
    let mut draft = EventDraft::for_payload(EventSource::GcpBilling, event_type);
    if !exceeded {
        draft.source_severity = Some(cost_spike_severity(threshold, forecast));
    }
    let currency = non_empty(value.get("currencyCode"));
    if currency.is_none_or(|c| c.eq_ignore_ascii_case("USD")) {
        draft.context.cost_impact = Some(cost);
    }

    let attribute = |name: &str| delivery.and_then(|d| d.attribute(name));
    let billing_account = attribute("billingAccountId");
    let budget_id = attribute("budgetId");
    let display_name = non_empty(value.get("budgetDisplayName"));
    draft.account_id = billing_account.unwrap_or("").to_string();
    draft.resource.kind = "gcp_billing_budget".into();
    draft.resource.id = match (billing_account, budget_id) {
        (Some(account), Some(budget)) => format!("billingAccounts/{account}/budgets/{budget}"),
        (None, Some(budget)) => budget.to_string(),
        _ => display_name.unwrap_or("").to_string(),
    };
    draft.resource.name = display_name.or(budget_id).unwrap_or("").to_string();

    let metadata = &mut draft.resource.metadata;
    metadata.insert("cost_amount".into(), Value::from(cost));
    metadata.insert("budget_amount".into(), Value::from(budget));
    for (key, field) in [
        ("budget_display_name", "budgetDisplayName"),
        ("budget_amount_type", "budgetAmountType"),
        ("currency_code", "currencyCode"),
        ("cost_interval_start", "costIntervalStart"),
        ("alert_threshold_exceeded", "alertThresholdExceeded"),
        ("forecast_threshold_exceeded", "forecastThresholdExceeded"),
    ] {
        if let Some(v) = value.get(field).filter(|v| !v.is_null()) {
            metadata.insert(key.into(), v.clone());
        }
    }
    for (key, name) in [
        ("billing_account_id", "billingAccountId"),
        ("budget_id", "budgetId"),
        ("schema_version", "schemaVersion"),
    ] {
        if let Some(v) = attribute(name) {
            metadata.insert(key.into(), Value::from(v));
        }
    }

    draft.time = delivery
        .and_then(|d| d.publish_time.clone())
        .or_else(|| first_str(value, &["/costIntervalStart"]).map(str::to_string));
    // Enveloped, the message id (added by the delivery) is the id; bare data has none, so
    // the framework hashes the payload.
    Ok(vec![draft])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn threshold_severities() {
        assert_eq!(cost_spike_severity(Some(0.95), None), Severity::High);
        assert_eq!(cost_spike_severity(Some(0.9), None), Severity::High);
        assert_eq!(cost_spike_severity(Some(0.5), None), Severity::Medium);
        assert_eq!(cost_spike_severity(Some(0.25), None), Severity::Info);
        assert_eq!(cost_spike_severity(None, None), Severity::Info);
        assert_eq!(cost_spike_severity(None, Some(1.0)), Severity::Medium);
        assert_eq!(cost_spike_severity(Some(0.9), Some(1.0)), Severity::High);
    }

    #[test]
    fn exceeded_at_equal_cost_and_fields_named() {
        let at_budget = json!({"budgetDisplayName": "b", "costAmount": 100, "budgetAmount": 100});
        let drafts_at = drafts(&at_budget, None).unwrap_or_default();
        assert_eq!(
            drafts_at.first().map(|d| d.event_type),
            Some(EventType::BudgetExceeded)
        );
        let eur = json!({"budgetDisplayName": "b", "costAmount": 10, "budgetAmount": 100, "currencyCode": "EUR"});
        let eur = drafts(&eur, None).unwrap_or_default();
        assert_eq!(eur.first().and_then(|d| d.context.cost_impact), None);
        let err = drafts(&json!({"budgetDisplayName": "b", "costAmount": 1}), None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("budgetAmount") && err.contains("missing"),
            "{err}"
        );
        let err = drafts(
            &json!({"budgetDisplayName": "b", "costAmount": [], "budgetAmount": 1}),
            None,
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            err.contains("costAmount") && err.contains("an array"),
            "{err}"
        );
    }
}
