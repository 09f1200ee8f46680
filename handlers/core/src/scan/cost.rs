//! The report's cost summary, cloud-neutral: which days a scan asks about, and the maths on
//! the daily costs per service a cloud's billing API returns (yesterday against the day
//! before, month to date against the budget, the top services), with the flags that become
//! `cost_spike` and `budget_exceeded` findings.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, Duration, NaiveDate};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::settings::ScanThresholds;

/// How many services the summary lists.
pub const TOP_SERVICES: usize = 5;

/// The days one report's cost summary covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CostWindow {
    /// The last full day before the report.
    pub yesterday: NaiveDate,
    pub day_before: NaiveDate,
    /// The first day of `yesterday`'s month: on the 1st, the report closes the month
    /// before.
    pub month_start: NaiveDate,
    /// The first day to ask for (the earlier of `day_before` and `month_start`).
    pub start: NaiveDate,
    /// The day after `yesterday` (billing APIs take an exclusive end).
    pub end: NaiveDate,
}

impl CostWindow {
    pub fn for_report(report_date: NaiveDate) -> CostWindow {
        let yesterday = report_date - Duration::days(1);
        let day_before = report_date - Duration::days(2);
        let month_start = yesterday.with_day(1).unwrap_or(yesterday);
        CostWindow {
            yesterday,
            day_before,
            month_start,
            start: day_before.min(month_start),
            end: report_date,
        }
    }

    /// Days in `yesterday`'s month.
    fn days_in_month(&self) -> u32 {
        let next = if self.month_start.month() == 12 {
            NaiveDate::from_ymd_opt(self.month_start.year() + 1, 1, 1)
        } else {
            NaiveDate::from_ymd_opt(self.month_start.year(), self.month_start.month() + 1, 1)
        };
        next.map_or(30, |next| (next - self.month_start).num_days() as u32)
    }
}

/// What a billing API said: cost per day and service.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DailyCosts {
    pub by_day: BTreeMap<NaiveDate, BTreeMap<String, f64>>,
    /// Days whose figures the API still estimates (usually yesterday).
    pub estimated: BTreeSet<NaiveDate>,
    /// The currency of every amount (`USD`).
    pub currency: String,
}

impl DailyCosts {
    fn day_total(&self, day: NaiveDate) -> Option<f64> {
        self.by_day
            .get(&day)
            .map(|services| services.values().sum())
    }
}

/// One service's cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceCost {
    pub service: String,
    pub amount: f64,
}

/// Tonight's cost summary against the previous report's: the report's "cost change".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CostChange {
    pub currency: String,
    /// The day the previous report's figure is for, and that figure.
    pub previous_day: NaiveDate,
    pub previous_amount: f64,
    /// The day tonight's figure is for, and that figure.
    pub day: NaiveDate,
    pub amount: f64,
    pub change_amount: f64,
    /// `None` when the previous figure was zero.
    pub change_percent: Option<f64>,
    /// How much month to date grew since the previous report; `None` when the two reports
    /// are about different months.
    pub month_to_date_growth: Option<f64>,
}

impl CostChange {
    /// `None` unless both reports have a cost summary in the same currency: a missing
    /// figure is not a change.
    pub fn between(previous: Option<&CostSummary>, now: Option<&CostSummary>) -> Option<Self> {
        let (previous, now) = (previous?, now?);
        if previous.currency != now.currency {
            return None;
        }
        let change_amount = now.yesterday_amount - previous.yesterday_amount;
        Some(CostChange {
            currency: now.currency.clone(),
            previous_day: previous.yesterday,
            previous_amount: previous.yesterday_amount,
            day: now.yesterday,
            amount: now.yesterday_amount,
            change_amount,
            change_percent: (previous.yesterday_amount > 0.0)
                .then(|| change_amount / previous.yesterday_amount * 100.0),
            month_to_date_growth: (previous.month_start == now.month_start)
                .then_some(now.month_to_date_amount - previous.month_to_date_amount),
        })
    }
}

/// The cost section of the morning report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CostSummary {
    pub currency: String,
    pub yesterday: NaiveDate,
    pub yesterday_amount: f64,
    pub day_before_amount: f64,
    /// Yesterday minus the day before.
    pub change_amount: f64,
    /// The change against the day before, in percent; `None` when the day before cost
    /// nothing.
    pub change_percent: Option<f64>,
    /// The billing API still estimates yesterday's figure; it may grow.
    pub yesterday_estimated: bool,
    pub month_start: NaiveDate,
    pub month_to_date_amount: f64,
    /// Month to date spread over the whole month at the same daily rate.
    pub projected_month_amount: f64,
    pub monthly_budget: Option<f64>,
    /// The services costing most this month, most first.
    pub top_services: Vec<ServiceCost>,
    /// The services whose cost grew most from the day before to yesterday, most first
    /// (only those that grew).
    pub top_increases: Vec<ServiceCost>,
    /// Why the costs are flagged, one line each (empty: nothing to flag).
    pub flags: Vec<String>,
    /// A day-over-day increase above the thresholds.
    pub spike: bool,
    /// The month projected (or already) over the budget.
    pub over_budget: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CostError {
    #[error("the billing data has no cost for {0}: cost data may not be available yet (Cost Explorer needs up to 24 hours after it is enabled)")]
    MissingDay(NaiveDate),
}

impl CostError {
    /// The failure the report lists for the cost check that read the data with
    /// `operation` from `resource`.
    pub fn into_scan_error(self, operation: &str, resource: &str) -> super::ScanError {
        super::ScanError {
            operation: operation.to_string(),
            resource: resource.to_string(),
            message: format!("{self}; the cost summary is left out tonight"),
            transient: false,
        }
    }
}

fn round_cents(amount: f64) -> f64 {
    (amount * 100.0).round() / 100.0
}

fn ranked(mut costs: Vec<ServiceCost>) -> Vec<ServiceCost> {
    costs.sort_by(|a, b| {
        b.amount
            .total_cmp(&a.amount)
            .then_with(|| a.service.cmp(&b.service))
    });
    costs.truncate(TOP_SERVICES);
    costs
}

impl CostSummary {
    /// The figures a cost finding's resource (the account, subscription or project) carries,
    /// the same on every cloud.
    pub fn resource_metadata(&self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::json!({
            "yesterday": self.yesterday,
            "yesterday_amount": self.yesterday_amount,
            "day_before_amount": self.day_before_amount,
            "month_to_date_amount": self.month_to_date_amount,
            "projected_month_amount": self.projected_month_amount,
            "monthly_budget": self.monthly_budget,
            "currency": self.currency,
        })
        .as_object()
        .cloned()
        .unwrap_or_default()
    }

    /// The summary of `costs` over `window`, flagged by `thresholds`: a spike when
    /// yesterday rose by more than `cost_spike_usd` or by more than `cost_spike_percent`
    /// against the day before; over budget when month to date, projected over the month,
    /// exceeds `monthly_budget_usd`.
    pub fn from_daily(
        costs: &DailyCosts,
        window: CostWindow,
        thresholds: &ScanThresholds,
    ) -> Result<CostSummary, CostError> {
        let yesterday = costs
            .day_total(window.yesterday)
            .ok_or(CostError::MissingDay(window.yesterday))?;
        // A day without any line (an account that cost nothing) is zero, not missing.
        let day_before = costs.day_total(window.day_before).unwrap_or(0.0);
        let change = yesterday - day_before;
        let change_percent = (day_before > 0.0).then(|| change / day_before * 100.0);

        let mut month: BTreeMap<&str, f64> = BTreeMap::new();
        for (_, services) in costs.by_day.range(window.month_start..=window.yesterday) {
            for (service, amount) in services {
                *month.entry(service.as_str()).or_default() += amount;
            }
        }
        let month_to_date: f64 = month.values().sum();
        let elapsed = f64::from(window.yesterday.day());
        let projected = month_to_date / elapsed * f64::from(window.days_in_month());
        let top_services = ranked(
            month
                .iter()
                .map(|(service, amount)| ServiceCost {
                    service: service.to_string(),
                    amount: round_cents(*amount),
                })
                .collect(),
        );
        let empty = BTreeMap::new();
        let before = costs.by_day.get(&window.day_before).unwrap_or(&empty);
        let after = costs.by_day.get(&window.yesterday).unwrap_or(&empty);
        let services: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
        let top_increases = ranked(
            services
                .into_iter()
                .map(|service| ServiceCost {
                    service: service.clone(),
                    amount: round_cents(
                        after.get(service).unwrap_or(&0.0) - before.get(service).unwrap_or(&0.0),
                    ),
                })
                .filter(|c| c.amount > 0.0)
                .collect(),
        );

        let currency = if costs.currency.is_empty() {
            "USD".to_string()
        } else {
            costs.currency.clone()
        };
        let mut flags = Vec::new();
        let spike = change > 0.0
            && (change > thresholds.cost_spike_usd
                || change_percent.is_some_and(|p| p > thresholds.cost_spike_percent));
        if spike {
            let percent = change_percent
                .map(|p| format!(" (+{p:.1} %)"))
                .unwrap_or_default();
            let drivers: Vec<String> = top_increases
                .iter()
                .take(3)
                .map(|c| format!("{} +{:.2}", c.service, c.amount))
                .collect();
            flags.push(format!(
                "{} cost {yesterday:.2} {currency}, up {change:.2}{percent} from the day before (thresholds: {} {currency} or {} %){}",
                window.yesterday,
                thresholds.cost_spike_usd,
                thresholds.cost_spike_percent,
                if drivers.is_empty() {
                    String::new()
                } else {
                    format!("; most of it: {}", drivers.join(", "))
                }
            ));
        }
        let budget = thresholds.monthly_budget_usd;
        let over_budget = budget.is_some_and(|b| projected > b);
        if let Some(budget) = budget.filter(|_| over_budget) {
            let already = if month_to_date > budget {
                " and already over it"
            } else {
                ""
            };
            flags.push(format!(
                "{} so far this month is {month_to_date:.2} {currency}; at this rate the month ends at {projected:.2} {currency}, over the {budget:.2} {currency} budget{already}",
                window.month_start.format("%B %Y")
            ));
        }
        Ok(CostSummary {
            currency,
            yesterday: window.yesterday,
            yesterday_amount: round_cents(yesterday),
            day_before_amount: round_cents(day_before),
            change_amount: round_cents(change),
            change_percent: change_percent.map(|p| (p * 10.0).round() / 10.0),
            yesterday_estimated: costs.estimated.contains(&window.yesterday),
            month_start: window.month_start,
            month_to_date_amount: round_cents(month_to_date),
            projected_month_amount: round_cents(projected),
            monthly_budget: budget,
            top_services,
            top_increases,
            flags,
            spike,
            over_budget,
        })
    }
}

/// The findings a flagged summary makes, the same on every cloud: a `cost_spike` when
/// yesterday jumped, a `budget_exceeded` when the month runs over budget. `draft` makes a
/// cloud's finding draft (check, event type, title); `spike_command` and `month_command` are
/// the cloud CLI commands that show the day's and the month's figures.
pub fn cost_findings(
    summary: &CostSummary,
    mut draft: impl FnMut(&'static str, crate::EventType, String) -> super::FindingDraft,
    spike_command: String,
    month_command: String,
    scan: &super::ScanContext,
) -> Vec<super::Finding> {
    let mut findings = Vec::new();
    // `flags` has the spike's line first, then the budget's.
    let mut flags = summary.flags.iter();
    if summary.spike {
        let mut spike = draft(
            "cost_spike",
            crate::EventType::CostSpike,
            flags.next().cloned().unwrap_or_default(),
        );
        spike.manual_command = Some(spike_command);
        spike.questions = vec![
            "Is the increase expected (a launch, a batch job, a migration, a load test)?".into(),
            "Did something start yesterday that nobody stopped?".into(),
        ];
        findings.push(spike.finish(scan));
    }
    if summary.over_budget {
        let mut budget = draft(
            "budget_exceeded",
            crate::EventType::BudgetExceeded,
            flags.next().cloned().unwrap_or_default(),
        );
        budget.manual_command = Some(month_command);
        budget.questions = vec![
            "Which of the top services grew beyond plan this month?".into(),
            "Should the budget change, or the spending?".into(),
        ];
        findings.push(budget.finish(scan));
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        text.parse().expect("a date")
    }

    fn costs(days: &[(&str, &[(&str, f64)])]) -> DailyCosts {
        DailyCosts {
            by_day: days
                .iter()
                .map(|(d, services)| {
                    (
                        day(d),
                        services.iter().map(|(s, a)| (s.to_string(), *a)).collect(),
                    )
                })
                .collect(),
            estimated: BTreeSet::new(),
            currency: "USD".into(),
        }
    }

    fn thresholds(budget: Option<f64>) -> ScanThresholds {
        ScanThresholds {
            monthly_budget_usd: budget,
            ..ScanThresholds::default()
        }
    }

    /// The summary a report on `report_date` makes when every day of its window cost
    /// `daily` (one service).
    fn summary_on(report_date: &str, daily: f64) -> CostSummary {
        let window = CostWindow::for_report(day(report_date));
        let mut by_day = BTreeMap::new();
        let mut d = window.start;
        while d < window.end {
            by_day.insert(d, BTreeMap::from([("Amazon EC2".to_string(), daily)]));
            d = d.succ_opt().expect("a next day");
        }
        let costs = DailyCosts {
            by_day,
            estimated: BTreeSet::new(),
            currency: "USD".into(),
        };
        CostSummary::from_daily(&costs, window, &thresholds(None)).expect("a summary")
    }

    #[test]
    fn the_cost_change_compares_each_reports_yesterday_and_month_to_date() {
        let previous = summary_on("2026-12-10", 100.0);
        let now = summary_on("2026-12-11", 125.0);
        let change = CostChange::between(Some(&previous), Some(&now)).expect("a change");
        assert_eq!(
            (change.previous_day, change.day),
            (day("2026-12-09"), day("2026-12-10"))
        );
        assert_eq!((change.previous_amount, change.amount), (100.0, 125.0));
        assert_eq!(change.change_amount, 25.0);
        assert_eq!(change.change_percent, Some(25.0));
        // 9 days at 100 → 10 days at 125.
        assert_eq!(change.month_to_date_growth, Some(1250.0 - 900.0));
    }

    #[test]
    fn no_cost_change_without_both_figures_and_no_month_growth_across_months() {
        let november = summary_on("2026-11-30", 100.0);
        let december = summary_on("2026-12-02", 100.0);
        assert_eq!(CostChange::between(None, Some(&december)), None);
        assert_eq!(CostChange::between(Some(&november), None), None);
        let change = CostChange::between(Some(&november), Some(&december)).expect("a change");
        assert_eq!(change.month_to_date_growth, None, "different months");
        assert_eq!(change.change_percent, Some(0.0));
        let free = summary_on("2026-12-01", 0.0);
        let change = CostChange::between(Some(&free), Some(&december)).expect("a change");
        assert_eq!(change.change_percent, None, "from zero, no percentage");
    }

    #[test]
    fn the_window_is_yesterday_the_day_before_and_yesterdays_month() {
        let w = CostWindow::for_report(day("2026-12-10"));
        assert_eq!(
            (w.yesterday, w.day_before, w.month_start, w.start, w.end),
            (
                day("2026-12-09"),
                day("2026-12-08"),
                day("2026-12-01"),
                day("2026-12-01"),
                day("2026-12-10")
            )
        );
        assert_eq!(w.days_in_month(), 31);
        // On the 1st the report closes the month before; on the 2nd the day before is in
        // the month before.
        let first = CostWindow::for_report(day("2027-01-01"));
        assert_eq!(first.month_start, day("2026-12-01"));
        assert_eq!(first.start, day("2026-12-01"));
        let second = CostWindow::for_report(day("2026-12-02"));
        assert_eq!(second.month_start, day("2026-12-01"));
        assert_eq!(second.start, day("2026-11-30"));
        assert_eq!(
            CostWindow::for_report(day("2028-03-01")).days_in_month(),
            29
        );
    }

    #[test]
    fn month_to_date_projection_and_top_services() {
        let window = CostWindow::for_report(day("2026-12-11"));
        let data = costs(&[
            ("2026-11-30", &[("Amazon EC2", 1000.0)]),
            ("2026-12-01", &[("Amazon EC2", 40.0), ("Amazon S3", 10.0)]),
            ("2026-12-09", &[("Amazon EC2", 40.0), ("Amazon S3", 10.0)]),
            (
                "2026-12-10",
                &[
                    ("Amazon EC2", 45.0),
                    ("Amazon S3", 5.0),
                    ("AWS Lambda", 0.004),
                ],
            ),
        ]);
        let s = CostSummary::from_daily(&data, window, &thresholds(None)).expect("summary");
        assert_eq!(s.yesterday_amount, 50.0);
        assert_eq!(s.day_before_amount, 50.0);
        assert_eq!(s.change_amount, 0.0);
        assert_eq!(s.change_percent, Some(0.0));
        // November is not this month.
        assert_eq!(s.month_to_date_amount, 150.0);
        // 150.004 over 10 days × 31 days, to the cent.
        assert_eq!(s.projected_month_amount, 465.01);
        let top: Vec<(&str, f64)> = s
            .top_services
            .iter()
            .map(|c| (c.service.as_str(), c.amount))
            .collect();
        assert_eq!(
            top,
            [
                ("Amazon EC2", 125.0),
                ("Amazon S3", 25.0),
                ("AWS Lambda", 0.0)
            ]
        );
        assert_eq!(s.top_increases[0].service, "Amazon EC2");
        assert_eq!(s.top_increases[0].amount, 5.0);
        assert!(s.flags.is_empty() && !s.spike && !s.over_budget);
    }

    #[test]
    fn a_rise_over_the_amount_or_the_percentage_is_a_spike() {
        let window = CostWindow::for_report(day("2026-12-11"));
        let rise = |before: f64, after: f64| {
            let data = costs(&[
                ("2026-12-09", &[("Amazon EC2", before)]),
                ("2026-12-10", &[("Amazon EC2", after)]),
            ]);
            CostSummary::from_daily(&data, window, &thresholds(None)).expect("summary")
        };
        // +150 on 5000 is 3 %: over the 100 amount.
        let big = rise(5000.0, 5150.0);
        assert!(big.spike, "{big:?}");
        assert!(
            big.flags[0].contains("up 150.00 (+3.0 %)"),
            "{}",
            big.flags[0]
        );
        assert!(
            big.flags[0].contains("Amazon EC2 +150.00"),
            "{}",
            big.flags[0]
        );
        // +11 on 100 is 11 %: over the 10 %.
        assert!(rise(100.0, 111.0).spike);
        // +10 on 100 is exactly 10 %, +99 on 5000 under both: not flagged.
        assert!(!rise(100.0, 110.0).spike);
        assert!(!rise(5000.0, 5099.0).spike);
        // Costs falling are never a spike; from nothing, only the amount counts.
        assert!(!rise(500.0, 100.0).spike);
        let from_zero = rise(0.0, 50.0);
        assert_eq!(from_zero.change_percent, None);
        assert!(!from_zero.spike);
        assert!(rise(0.0, 150.0).spike);
    }

    #[test]
    fn the_projected_month_over_the_budget_is_flagged() {
        let window = CostWindow::for_report(day("2026-12-11"));
        let data = costs(&[
            ("2026-12-09", &[("Amazon EC2", 30.0)]),
            ("2026-12-10", &[("Amazon EC2", 30.0)]),
        ]);
        // 60 so far over 10 days → 186 for December.
        let over = CostSummary::from_daily(&data, window, &thresholds(Some(150.0))).expect("s");
        assert!(over.over_budget && !over.spike);
        assert_eq!(over.projected_month_amount, 186.0);
        assert!(over.flags[0].contains("December 2026"), "{}", over.flags[0]);
        assert!(
            over.flags[0].contains("over the 150.00 USD budget"),
            "{}",
            over.flags[0]
        );
        assert!(!over.flags[0].contains("already"), "{}", over.flags[0]);
        let already = CostSummary::from_daily(&data, window, &thresholds(Some(50.0))).expect("s");
        assert!(already.flags[0].ends_with("and already over it"));
        let under = CostSummary::from_daily(&data, window, &thresholds(Some(200.0))).expect("s");
        assert!(!under.over_budget && under.flags.is_empty());
        let none = CostSummary::from_daily(&data, window, &thresholds(None)).expect("s");
        assert!(!none.over_budget);
    }

    #[test]
    fn no_figure_for_yesterday_is_an_error_not_a_zero() {
        let window = CostWindow::for_report(day("2026-12-11"));
        let data = costs(&[("2026-12-09", &[("Amazon EC2", 30.0)])]);
        let err = CostSummary::from_daily(&data, window, &thresholds(None)).unwrap_err();
        assert_eq!(err, CostError::MissingDay(day("2026-12-10")));
        assert!(err.to_string().contains("2026-12-10"));
    }
}
