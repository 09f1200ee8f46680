//! The cost summary from Cost Explorer: one GetCostAndUsage (daily, grouped by service,
//! paginated) per scan over the days [`CostWindow`] names, turned into the report's
//! [`CostSummary`] and, when flagged, `cost_spike` / `budget_exceeded` findings. Cost
//! Explorer is a global API served from us-east-1, and every request is billed (USD 0.01),
//! so the check is account-wide: it runs once, whatever the regions.

use escher_core::resource_types::aws as aws_types;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_costexplorer::types::{
    DateInterval, Granularity, GroupDefinition, GroupDefinitionType,
};
use chrono::NaiveDate;
use escher_core::scan::cost::CostSummary;
use escher_core::scan::{
    CheckOutput, CheckScope, CostWindow, DailyCosts, Finding, ScanCheck, ScanContext, ScanError,
    ACCOUNT_WIDE,
};
use escher_core::{CloudProvider, Resource};

use super::{scan_error, AwsScan};
use crate::calls::classify;

/// Where Cost Explorer answers, whichever region the scan runs in.
const COST_EXPLORER_REGION: &str = "us-east-1";

/// The cost metric: what the invoice shows before credits and discounts are spread out.
const METRIC: &str = "UnblendedCost";

pub(super) struct Cost(pub(super) Arc<AwsScan>);

fn unreadable(what: String) -> ScanError {
    ScanError {
        operation: "GetCostAndUsage".into(),
        resource: COST_EXPLORER_REGION.into(),
        message: format!("{what}; the cost summary is left out tonight"),
        transient: false,
    }
}

fn amount(
    metrics: Option<&std::collections::HashMap<String, aws_sdk_costexplorer::types::MetricValue>>,
) -> Result<(f64, Option<String>), ScanError> {
    let Some(value) = metrics.and_then(|m| m.get(METRIC)) else {
        return Ok((0.0, None));
    };
    let text = value.amount().unwrap_or("0");
    let amount = text.parse::<f64>().map_err(|_| {
        unreadable(format!(
            "Cost Explorer returned an amount that is not a number: {text:?}"
        ))
    })?;
    Ok((amount, value.unit().map(str::to_string)))
}

impl Cost {
    async fn daily_costs(&self, window: CostWindow) -> Result<DailyCosts, ScanError> {
        let clients = self.0.clients.in_region(COST_EXPLORER_REGION);
        let period = DateInterval::builder()
            .start(window.start.to_string())
            .end(window.end.to_string())
            .build()
            .map_err(|e| unreadable(format!("no usable time period for Cost Explorer ({e})")))?;
        let mut costs = DailyCosts::default();
        let mut token: Option<String> = None;
        loop {
            let page = clients
                .cost_explorer()
                .get_cost_and_usage()
                .time_period(period.clone())
                .granularity(Granularity::Daily)
                .metrics(METRIC)
                .group_by(
                    GroupDefinition::builder()
                        .r#type(GroupDefinitionType::Dimension)
                        .key("SERVICE")
                        .build(),
                )
                .set_next_page_token(token.take())
                .send()
                .await
                .map_err(|e| scan_error(classify("GetCostAndUsage", COST_EXPLORER_REGION, &e)))?;
            for result in page.results_by_time() {
                let Some(start) = result.time_period().map(|p| p.start()) else {
                    continue;
                };
                let day: NaiveDate = start.parse().map_err(|_| {
                    unreadable(format!(
                        "Cost Explorer returned a period starting {start:?}, not a date"
                    ))
                })?;
                let services = costs.by_day.entry(day).or_default();
                if result.estimated() {
                    costs.estimated.insert(day);
                }
                if result.groups().is_empty() {
                    // Grouped results carry their amounts in the groups; a day without
                    // groups has its figure (if any) in the total.
                    let (total, unit) = amount(result.total())?;
                    if result.total().is_some_and(|t| t.contains_key(METRIC)) {
                        *services.entry("(all services)".into()).or_default() += total;
                    }
                    costs.currency = unit.unwrap_or(costs.currency);
                }
                for group in result.groups() {
                    let service = group.keys().first().cloned().unwrap_or_default();
                    let (value, unit) = amount(group.metrics())?;
                    *services.entry(service).or_default() += value;
                    costs.currency = unit.unwrap_or(costs.currency);
                }
            }
            match page.next_page_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_string()),
                _ => break,
            }
        }
        Ok(costs)
    }

    fn findings(
        &self,
        summary: &CostSummary,
        window: CostWindow,
        scan: &ScanContext,
    ) -> Vec<Finding> {
        let aws = &self.0;
        let account = &aws.account_id;
        let resource = Resource {
            kind: aws_types::ACCOUNT.into(),
            id: account.clone(),
            name: format!("account {account}"),
            metadata: summary.resource_metadata(),
            ..Resource::default()
        };
        let look = |start: NaiveDate, granularity: &str| {
            format!(
                "aws ce get-cost-and-usage --region {COST_EXPLORER_REGION} --time-period Start={start},End={} --granularity {granularity} --metrics {METRIC} --group-by Type=DIMENSION,Key=SERVICE",
                window.end
            )
        };
        escher_core::scan::cost::cost_findings(
            summary,
            |check, event_type, title| {
                aws.draft(check, ACCOUNT_WIDE, event_type, resource.clone(), title)
            },
            look(window.day_before, "DAILY"),
            look(window.month_start, "MONTHLY"),
            scan,
        )
    }
}

#[async_trait]
impl ScanCheck for Cost {
    fn id(&self) -> &'static str {
        "cost"
    }

    fn cloud(&self) -> CloudProvider {
        CloudProvider::Aws
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
        let costs = self.daily_costs(window).await?;
        let summary = CostSummary::from_daily(&costs, window, &scan.thresholds)
            .map_err(|e| e.into_scan_error("GetCostAndUsage", COST_EXPLORER_REGION))?;
        Ok(CheckOutput {
            findings: self.findings(&summary, window, scan),
            cost: Some(summary),
        })
    }
}
