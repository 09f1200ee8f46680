//! The `cost` check: the cost summary from the Cloud Billing export in BigQuery (one
//! `jobs.query` per scan: this project's cost per day and service over the days
//! [`CostWindow`] names, credits included), turned into the report's [`CostSummary`] and,
//! when flagged, `cost_spike` / `budget_exceeded` findings (core's rule, as on every cloud).
//! The budget is the report settings' `monthly_budget_usd`, else the project's monthly budget
//! on the billing account (Budget API); every budget's thresholds are compared with the
//! month's spend. Without an export table the check fails with what to set, listing the
//! budgets it found, so the report says why it has no cost section.

use async_trait::async_trait;
use chrono::NaiveDate;
use escher_core::resource_types::gcp as gcp_types;
use escher_core::scan::cost::{cost_findings, CostSummary};
use escher_core::scan::{
    CheckOutput, CheckScope, CostWindow, DailyCosts, Finding, ScanCheck, ScanContext, ScanError,
    ACCOUNT_WIDE,
};
use escher_core::{CloudProvider, Resource};
use serde_json::{json, Value};

use super::{
    scan_error, text, GcpScan, BILLING_ACCOUNT_ENV, BILLING_EXPORT_TABLE_ENV, LIST_BUDGETS,
    QUERY_BILLING,
};
use crate::rest::CallLog;

pub(super) struct Cost(pub GcpScan);

/// How long BigQuery may take before answering; a query still running then is retried
/// tomorrow rather than polled (a daily total per service over a month reads little).
const QUERY_TIMEOUT_MS: u64 = 60_000;

fn unreadable(table: &str, what: String) -> ScanError {
    ScanError {
        operation: QUERY_BILLING.id.into(),
        resource: table.into(),
        message: format!("{what}; the cost summary is left out tonight"),
        transient: false,
    }
}

/// `project.dataset.table`, each part made of the characters BigQuery allows: the name is put
/// into the statement (a table cannot be a query parameter), so nothing else may be in it.
fn checked_table(table: &str) -> Result<&str, ScanError> {
    let parts: Vec<&str> = table.split('.').collect();
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ':');
    if parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(allowed))
    {
        Ok(table)
    } else {
        Err(ScanError {
            operation: QUERY_BILLING.id.into(),
            resource: table.into(),
            message: format!(
                "the billing export table {table:?} is not of the form project.dataset.table; set {BILLING_EXPORT_TABLE_ENV} to the table Cloud Billing exports to (Billing > Billing export in the console)"
            ),
            transient: false,
        })
    }
}

/// The query: this project's cost per day and service, credits (negative amounts) included.
/// Rows arrive in the partition of the day they were exported, never before their usage
/// day, so partitions from a few days before the window bound the bytes read.
fn statement(table: &str) -> String {
    format!(
        "SELECT CAST(DATE(usage_start_time) AS STRING) AS day, service.description AS service, \
         SUM(cost) + SUM(IFNULL((SELECT SUM(c.amount) FROM UNNEST(credits) AS c), 0)) AS cost, currency \
         FROM `{table}` \
         WHERE project.id = @project \
         AND _PARTITIONTIME >= TIMESTAMP(DATE_SUB(@start_day, INTERVAL 3 DAY)) \
         AND DATE(usage_start_time) >= @start_day AND DATE(usage_start_time) < @end_day \
         GROUP BY day, service, currency"
    )
}

fn parameter(name: &str, kind: &str, value: String) -> Value {
    json!({"name": name, "parameterType": {"type": kind}, "parameterValue": {"value": value}})
}

/// The answer's rows as cost per day and service. Columns are found by name in its schema.
fn daily_costs(table: &str, answer: &Value) -> Result<DailyCosts, ScanError> {
    if answer.get("jobComplete").and_then(Value::as_bool) == Some(false) {
        return Err(ScanError {
            transient: true,
            ..unreadable(
                table,
                format!(
                    "BigQuery had not finished the query after {} s",
                    QUERY_TIMEOUT_MS / 1000
                ),
            )
        });
    }
    if answer
        .get("pageToken")
        .and_then(Value::as_str)
        .is_some_and(|t| !t.is_empty())
    {
        return Err(unreadable(
            table,
            "the daily costs did not fit in one answer".to_string(),
        ));
    }
    let columns: Vec<&str> = answer
        .pointer("/schema/fields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|f| f.get("name").and_then(Value::as_str))
        .collect();
    let at = |name: &str| {
        columns.iter().position(|c| *c == name).ok_or_else(|| {
            unreadable(
                table,
                format!("the answer has no {name} column ({columns:?})"),
            )
        })
    };
    let (day, service, cost, currency) = (at("day")?, at("service")?, at("cost")?, at("currency")?);
    let mut costs = DailyCosts {
        currency: "USD".into(),
        ..DailyCosts::default()
    };
    for row in answer
        .get("rows")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let cell = |i: usize| row.pointer(&format!("/f/{i}/v")).and_then(Value::as_str);
        let date = cell(day)
            .and_then(|d| d.parse::<NaiveDate>().ok())
            .ok_or_else(|| unreadable(table, format!("a row's day is not a date: {row}")))?;
        // BigQuery sends FLOAT64 values as strings.
        let amount = cell(cost)
            .and_then(|c| c.parse::<f64>().ok())
            .ok_or_else(|| unreadable(table, format!("a row's cost is not a number: {row}")))?;
        let name = cell(service).unwrap_or("(unnamed service)").to_string();
        *costs
            .by_day
            .entry(date)
            .or_default()
            .entry(name)
            .or_default() += amount;
        if let Some(unit) = cell(currency) {
            costs.currency = unit.to_string();
        }
    }
    Ok(costs)
}

/// One budget as the report speaks of it.
#[derive(Debug, Clone, PartialEq)]
struct Budget {
    name: String,
    /// A fixed amount; `None` for a budget that follows last period's spend.
    amount: Option<f64>,
    currency: String,
    monthly: bool,
    /// (fraction, on forecasted spend)
    thresholds: Vec<(f64, bool)>,
}

impl Budget {
    fn read(budget: &Value) -> Budget {
        let specified = budget.pointer("/amount/specifiedAmount");
        let units = specified
            .and_then(|m| match m.get("units") {
                Some(Value::String(u)) => u.parse::<f64>().ok(),
                Some(other) => other.as_f64(),
                None => Some(0.0),
            })
            .unwrap_or_default();
        let nanos = specified
            .and_then(|m| m.get("nanos"))
            .and_then(Value::as_f64)
            .unwrap_or_default();
        let period = text(budget, "/budgetFilter/calendarPeriod");
        let custom = budget.pointer("/budgetFilter/customPeriod").is_some();
        Budget {
            name: text(budget, "/displayName")
                .or_else(|| text(budget, "/name"))
                .unwrap_or("(unnamed budget)")
                .to_string(),
            amount: specified.map(|_| units + nanos / 1e9),
            currency: specified
                .and_then(|m| text(m, "/currencyCode"))
                .unwrap_or("USD")
                .to_string(),
            // A budget without a period or a custom range is monthly.
            monthly: !custom && matches!(period, None | Some("MONTH")),
            thresholds: budget
                .get("thresholdRules")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|r| {
                    let percent = r.get("thresholdPercent").and_then(Value::as_f64)?;
                    Some((percent, text(r, "/spendBasis") == Some("FORECASTED_SPEND")))
                })
                .collect(),
        }
    }

    fn words(&self) -> String {
        let amount = match self.amount {
            Some(a) => format!("{a:.2} {}", self.currency),
            None => "last period's spend".to_string(),
        };
        let period = if self.monthly { " a month" } else { "" };
        let thresholds: Vec<String> = self
            .thresholds
            .iter()
            .map(|(p, forecast)| {
                format!(
                    "{:.0} %{}",
                    p * 100.0,
                    if *forecast { " forecast" } else { "" }
                )
            })
            .collect();
        let alerts = if thresholds.is_empty() {
            String::new()
        } else {
            format!(", alerts at {}", thresholds.join(", "))
        };
        format!("{:?} ({amount}{period}{alerts})", self.name)
    }

    /// The line for the highest threshold this month's spend (or its projection) passed.
    fn passed(&self, summary: &CostSummary) -> Option<String> {
        let amount = self.amount.filter(|_| self.monthly)?;
        if self.currency != summary.currency || amount <= 0.0 {
            return None;
        }
        let crossed = self
            .thresholds
            .iter()
            .filter(|(p, forecast)| {
                let spend = if *forecast {
                    summary.projected_month_amount
                } else {
                    summary.month_to_date_amount
                };
                spend >= p * amount
            })
            .max_by(|a, b| a.0.total_cmp(&b.0))?;
        let (spend, basis) = if crossed.1 {
            (summary.projected_month_amount, "the month's projection")
        } else {
            (summary.month_to_date_amount, "spend so far")
        };
        Some(format!(
            "Budget {:?}: {basis} ({spend:.2} {}) has passed its {:.0} % threshold of {amount:.2} {}",
            self.name,
            summary.currency,
            crossed.0 * 100.0,
            self.currency
        ))
    }
}

impl Cost {
    fn scope(&self) -> String {
        format!("projects/{}", self.0.project)
    }

    async fn query(&self, table: &str, window: CostWindow) -> Result<DailyCosts, ScanError> {
        let table = checked_table(table)?;
        let body = json!({
            "query": statement(table),
            "useLegacySql": false,
            "parameterMode": "NAMED",
            "queryParameters": [
                parameter("project", "STRING", self.0.project.clone()),
                parameter("start_day", "DATE", window.start.to_string()),
                parameter("end_day", "DATE", window.end.to_string()),
            ],
            "timeoutMs": QUERY_TIMEOUT_MS,
            "maxResults": 10_000,
            "labels": {"escher": "nightly-scan"},
        });
        let mut log = CallLog::metered(self.0.meter.as_ref());
        let answer = log
            .call(
                &self.0.client,
                &QUERY_BILLING,
                &format!("projects/{}/queries", self.0.project),
                &[],
                Some(&body),
            )
            .await
            .map_err(scan_error)?;
        daily_costs(table, &answer)
    }

    /// The budgets on the billing account that track this project.
    async fn budgets(&self, account: &str) -> Result<Vec<Budget>, ScanError> {
        let mut log = CallLog::metered(self.0.meter.as_ref());
        let scope = self.scope();
        let budgets = log
            .list(
                &self.0.client,
                &LIST_BUDGETS,
                &format!("billingAccounts/{account}/budgets"),
                &[("scope", &scope)],
                "budgets",
            )
            .await
            .map_err(scan_error)?;
        Ok(budgets.iter().map(Budget::read).collect())
    }

    /// What to say of the budgets when the export is not configured.
    async fn budgets_in_words(&self) -> String {
        let Some(account) = self.0.settings.billing_account.as_deref() else {
            return format!(
                "; set {BILLING_ACCOUNT_ENV} to the billing account id to compare with its budgets"
            );
        };
        match self.budgets(account).await {
            Ok(budgets) if budgets.is_empty() => {
                format!("; billing account {account} has no budget for this project")
            }
            Ok(budgets) => format!(
                "; budgets on billing account {account}: {}",
                budgets
                    .iter()
                    .map(Budget::words)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            Err(e) => format!("; the budgets could not be read either: {e}"),
        }
    }
}

#[async_trait]
impl ScanCheck for Cost {
    fn id(&self) -> &'static str {
        "cost"
    }

    fn cloud(&self) -> CloudProvider {
        CloudProvider::Gcp
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
        let Some(table) = self.0.settings.billing_export_table.clone() else {
            // The report reads "cost: billing export on projects/… failed: not configured — …".
            return Err(ScanError {
                operation: "billing export".into(),
                resource: self.scope(),
                message: format!(
                    "not configured — set {BILLING_EXPORT_TABLE_ENV} to the BigQuery table Cloud Billing exports detailed cost to (project.dataset.table; Billing > Billing export in the console){}",
                    self.budgets_in_words().await
                ),
                transient: false,
            });
        };
        let window = CostWindow::for_report(scan.report_date());
        let costs = self.query(&table, window).await?;
        // A budget that cannot be read costs the report its comparison, not its summary:
        // listing budgets is granted on the billing account, apart from the project's role.
        let (budgets, budget_problem) = match self.0.settings.billing_account.as_deref() {
            Some(account) => match self.budgets(account).await {
                Ok(budgets) => (budgets, None),
                Err(e) => (Vec::new(), Some(e)),
            },
            None => (Vec::new(), None),
        };
        let mut thresholds = scan.thresholds.clone();
        if thresholds.monthly_budget_usd.is_none() {
            thresholds.monthly_budget_usd = budgets
                .iter()
                .filter(|b| b.monthly && b.currency == costs.currency)
                .find_map(|b| b.amount);
        }
        let mut summary = CostSummary::from_daily(&costs, window, &thresholds)
            .map_err(|e| e.into_scan_error(QUERY_BILLING.id, &table))?;
        let findings = {
            let project = &self.0.project;
            let resource = Resource {
                kind: gcp_types::PROJECT.into(),
                id: self.scope(),
                name: format!("project {project}"),
                metadata: summary.resource_metadata(),
                ..Resource::default()
            };
            let look = |from: NaiveDate| {
                format!(
                    "bq query --nouse_legacy_sql 'SELECT DATE(usage_start_time) AS day, service.description AS service, SUM(cost) AS cost FROM `{table}` WHERE project.id = \"{project}\" AND DATE(usage_start_time) BETWEEN \"{from}\" AND \"{}\" GROUP BY day, service ORDER BY day, cost DESC'",
                    window.yesterday
                )
            };
            cost_findings(
                &summary,
                |check, event_type, title| {
                    self.0
                        .draft(check, ACCOUNT_WIDE, event_type, resource.clone(), title)
                },
                look(window.day_before),
                look(window.month_start),
                scan,
            )
        };
        // After core's own flags, which its findings above took their titles from.
        let passed: Vec<String> = budgets.iter().filter_map(|b| b.passed(&summary)).collect();
        summary.flags.extend(passed);
        if let Some(problem) = budget_problem {
            summary
                .flags
                .push(format!("the budgets could not be compared: {problem}"));
        }
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
    fn only_a_plain_table_name_goes_into_the_statement() {
        assert!(checked_table("shop-billing.billing_export.gcp_billing_export_v1_01").is_ok());
        for bad in [
            "billing_export.table",
            "p.d.t` WHERE 1=1; --",
            "p..t",
            "p.d.t.x",
        ] {
            let e = checked_table(bad).expect_err(bad);
            assert!(
                e.message.contains(BILLING_EXPORT_TABLE_ENV),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn the_rows_are_read_by_column_name_and_an_unfinished_job_is_transient() {
        let answer = json!({
            "jobComplete": true,
            "schema": {"fields": [{"name": "service"}, {"name": "cost"}, {"name": "currency"}, {"name": "day"}]},
            "rows": [
                {"f": [{"v": "Compute Engine"}, {"v": "12.5"}, {"v": "EUR"}, {"v": "2026-12-01"}]},
                {"f": [{"v": "Compute Engine"}, {"v": "-2.5"}, {"v": "EUR"}, {"v": "2026-12-01"}]}
            ]
        });
        let costs = daily_costs("p.d.t", &answer).expect("read");
        let day = NaiveDate::from_ymd_opt(2026, 12, 1).expect("a date");
        assert_eq!(costs.by_day[&day]["Compute Engine"], 10.0);
        assert_eq!(costs.currency, "EUR");
        let running = daily_costs("p.d.t", &json!({"jobComplete": false})).unwrap_err();
        assert!(running.transient);
        let broken = json!({"jobComplete": true, "schema": {"fields": [{"name": "cost"}]}});
        assert!(daily_costs("p.d.t", &broken)
            .unwrap_err()
            .message
            .contains("no day column"));
    }

    #[test]
    fn a_budget_reads_its_amount_period_and_thresholds() {
        let budget = Budget::read(&json!({
            "displayName": "prod monthly",
            "amount": {"specifiedAmount": {"currencyCode": "USD", "units": "1000", "nanos": 500000000}},
            "budgetFilter": {"calendarPeriod": "MONTH"},
            "thresholdRules": [{"thresholdPercent": 0.5}, {"thresholdPercent": 1.0, "spendBasis": "FORECASTED_SPEND"}]
        }));
        assert_eq!(budget.amount, Some(1000.5));
        assert!(budget.monthly);
        assert_eq!(budget.thresholds, [(0.5, false), (1.0, true)]);
        assert_eq!(
            budget.words(),
            "\"prod monthly\" (1000.50 USD a month, alerts at 50 %, 100 % forecast)"
        );
        let following = Budget::read(
            &json!({"amount": {"lastPeriodAmount": {}}, "budgetFilter": {"calendarPeriod": "QUARTER"}}),
        );
        assert_eq!(following.amount, None);
        assert!(!following.monthly);
    }
}
