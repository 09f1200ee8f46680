//! The cost summary from Cost Management: one query (actual cost, daily, grouped by service)
//! per scan over the days [`CostWindow`] names, turned into the report's [`CostSummary`] and,
//! when flagged, `cost_spike` / `budget_exceeded` findings (core's rule, as on every cloud).
//! The budget is the report settings' `monthly_budget_usd`, else the subscription's own
//! monthly cost budget in Azure. Account-wide: it runs once per scan.

use async_trait::async_trait;
use chrono::NaiveDate;
use escher_core::resource_types::azure as azure_types;
use escher_core::scan::cost::{cost_findings, CostSummary};
use escher_core::scan::{
    CheckOutput, CheckScope, CostWindow, DailyCosts, Finding, ScanCheck, ScanContext, ScanError,
    ACCOUNT_WIDE,
};
use escher_core::{CloudProvider, Resource};
use serde_json::{json, Value};

use super::{scan_error, AzureScan, LIST_BUDGETS, QUERY_COSTS};
use crate::arm::CallLog;

pub(super) struct Cost(pub AzureScan);

fn unreadable(what: String) -> ScanError {
    ScanError {
        operation: QUERY_COSTS.id.into(),
        resource: "Cost Management".into(),
        message: format!("{what}; the cost summary is left out tonight"),
        transient: false,
    }
}

/// The query's table as cost per day and service. Columns are found by name, since Cost
/// Management orders them as it likes.
fn daily_costs(answer: &Value) -> Result<DailyCosts, ScanError> {
    let columns: Vec<&str> = answer
        .pointer("/properties/columns")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect();
    let at = |name: &str| {
        columns
            .iter()
            .position(|c| c.eq_ignore_ascii_case(name))
            .ok_or_else(|| unreadable(format!("the cost table has no {name} column ({columns:?})")))
    };
    let (cost, date, service, currency) = (
        at("Cost")?,
        at("UsageDate")?,
        at("ServiceName")?,
        at("Currency")?,
    );
    let mut costs = DailyCosts {
        currency: "USD".into(),
        ..DailyCosts::default()
    };
    for row in answer
        .pointer("/properties/rows")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let cell = |i: usize| row.get(i).unwrap_or(&Value::Null);
        let day = cell(date)
            .as_u64()
            .map(|d| d.to_string())
            .or_else(|| cell(date).as_str().map(str::to_string))
            .and_then(|d| NaiveDate::parse_from_str(&d, "%Y%m%d").ok())
            .ok_or_else(|| {
                unreadable(format!(
                    "a cost row's UsageDate is not a date: {}",
                    cell(date)
                ))
            })?;
        let amount = cell(cost).as_f64().ok_or_else(|| {
            unreadable(format!("a cost row's Cost is not a number: {}", cell(cost)))
        })?;
        let name = cell(service)
            .as_str()
            .unwrap_or("(unnamed service)")
            .to_string();
        *costs
            .by_day
            .entry(day)
            .or_default()
            .entry(name)
            .or_default() += amount;
        if let Some(unit) = cell(currency).as_str() {
            costs.currency = unit.to_string();
        }
    }
    Ok(costs)
}

impl Cost {
    fn scope(&self) -> String {
        format!("/subscriptions/{}", self.0.subscription)
    }

    async fn query(&self, window: CostWindow) -> Result<DailyCosts, ScanError> {
        let body = json!({
            "type": "ActualCost",
            "timeframe": "Custom",
            "timePeriod": {
                "from": format!("{}T00:00:00Z", window.start),
                "to": format!("{}T23:59:59Z", window.yesterday),
            },
            "dataset": {
                "granularity": "Daily",
                "aggregation": {"totalCost": {"name": "Cost", "function": "Sum"}},
                "grouping": [{"type": "Dimension", "name": "ServiceName"}]
            }
        });
        let mut log = CallLog::metered(self.0.meter.as_ref());
        let answer = log
            .call(
                &self.0.arm,
                &QUERY_COSTS,
                &format!("{}/providers/Microsoft.CostManagement/query", self.scope()),
                &[],
                Some(&body),
            )
            .await
            .map_err(scan_error)?;
        daily_costs(&answer)
    }

    /// The subscription's monthly cost budget in Azure, when it has one.
    async fn azure_budget(&self) -> Result<Option<f64>, ScanError> {
        let mut log = CallLog::metered(self.0.meter.as_ref());
        let budgets = log
            .list(
                &self.0.arm,
                &LIST_BUDGETS,
                &format!("{}/providers/Microsoft.Consumption/budgets", self.scope()),
                &[],
            )
            .await
            .map_err(scan_error)?;
        Ok(budgets.iter().find_map(|b| {
            let p = b.get("properties")?;
            let monthly = p.get("timeGrain").and_then(Value::as_str) == Some("Monthly");
            let cost = p.get("category").and_then(Value::as_str) == Some("Cost");
            (monthly && cost)
                .then(|| p.get("amount").and_then(Value::as_f64))
                .flatten()
        }))
    }
}

#[async_trait]
impl ScanCheck for Cost {
    fn id(&self) -> &'static str {
        "cost"
    }

    fn cloud(&self) -> CloudProvider {
        CloudProvider::Azure
    }

    fn scope(&self) -> CheckScope {
        CheckScope::Account
    }

    fn feeds_cost_section(&self) -> bool {
        true
    }

    async fn run(&self, region: &str, scan: &ScanContext) -> Result<Vec<Finding>, ScanError> {
        Ok(self.output(region, scan).await?.findings)
    }

    async fn output(&self, _region: &str, scan: &ScanContext) -> Result<CheckOutput, ScanError> {
        let window = CostWindow::for_report(scan.report_date());
        let costs = self.query(window).await?;
        let mut thresholds = scan.thresholds.clone();
        if thresholds.monthly_budget_usd.is_none() {
            thresholds.monthly_budget_usd = self.azure_budget().await?;
        }
        let summary = CostSummary::from_daily(&costs, window, &thresholds)
            .map_err(|e| e.into_scan_error(QUERY_COSTS.id, &self.scope()))?;
        let subscription = &self.0.subscription;
        let resource = Resource {
            kind: azure_types::SUBSCRIPTION.into(),
            id: self.scope(),
            name: format!("subscription {subscription}"),
            metadata: summary.resource_metadata(),
            ..Resource::default()
        };
        let look = |from: NaiveDate| {
            format!(
                "az costmanagement query --type ActualCost --scope {} --timeframe Custom --time-period from={from} to={} --dataset-grouping name=ServiceName type=Dimension",
                self.scope(),
                window.yesterday
            )
        };
        let findings = cost_findings(
            &summary,
            |check, event_type, title| {
                self.0
                    .draft_in(check, ACCOUNT_WIDE, event_type, resource.clone(), title)
            },
            look(window.day_before),
            look(window.month_start),
            scan,
        );
        Ok(CheckOutput {
            findings,
            cost: Some(summary),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cost_table_is_read_by_column_name() {
        let answer = json!({"properties": {
            "columns": [{"name": "ServiceName"}, {"name": "Cost"}, {"name": "Currency"}, {"name": "UsageDate"}],
            "rows": [["Virtual Machines", 12.5, "EUR", 20261201], ["Storage", 1.25, "EUR", 20261201]]
        }});
        let costs = daily_costs(&answer).expect("read");
        let day = NaiveDate::from_ymd_opt(2026, 12, 1).expect("a date");
        assert_eq!(costs.by_day[&day]["Virtual Machines"], 12.5);
        assert_eq!(costs.currency, "EUR");
        let broken = json!({"properties": {"columns": [{"name": "Cost"}], "rows": []}});
        assert!(daily_costs(&broken)
            .unwrap_err()
            .message
            .contains("no UsageDate column"));
    }
}
