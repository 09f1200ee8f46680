//! Cost Explorer on moto: GetCostAndUsage answers queued through moto's API, and the
//! shapes of a day and a page of them.

use chrono::{Duration, NaiveDate};
use serde_json::{json, Value};

/// Cost Explorer's name for EC2 instances' cost.
pub const EC2_COMPUTE: &str = "Amazon Elastic Compute Cloud - Compute";

/// Queues GetCostAndUsage answers in moto at `endpoint` for `account` (moto's
/// `/moto-api/static/ce/cost-and-usage-results`: each new request body takes the next, the
/// same body the same answer).
pub async fn queue_results(
    endpoint: &str,
    account: &str,
    results: Vec<Value>,
) -> Result<(), String> {
    let body = json!({ "account_id": account, "results": results });
    let response = reqwest::Client::new()
        .post(format!(
            "{endpoint}/moto-api/static/ce/cost-and-usage-results"
        ))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| format!("queue Cost Explorer answers in moto at {endpoint}: {e}"))?;
    match response.status().as_u16() {
        201 => Ok(()),
        status => Err(format!(
            "queue Cost Explorer answers in moto at {endpoint}: HTTP {status}"
        )),
    }
}

/// One day's cost by service (`services`: name and USD), as Cost Explorer answers it.
pub fn day(day: NaiveDate, services: &[(&str, f64)], estimated: bool) -> Value {
    let groups: Vec<Value> = services
        .iter()
        .map(|(service, amount)| {
            json!({
                "Keys": [service],
                "Metrics": { "UnblendedCost": { "Amount": amount.to_string(), "Unit": "USD" } }
            })
        })
        .collect();
    json!({
        "TimePeriod": { "Start": day.to_string(), "End": (day + Duration::days(1)).to_string() },
        "Total": {},
        "Groups": groups,
        "Estimated": estimated
    })
}

/// One answer holding `days`; with `next`, Cost Explorer's token for the page after it.
pub fn page(days: Vec<Value>, next: Option<&str>) -> Value {
    let mut page = json!({ "ResultsByTime": days, "DimensionValueAttributes": [] });
    if let Some(token) = next {
        page["NextPageToken"] = json!(token);
    }
    page
}
