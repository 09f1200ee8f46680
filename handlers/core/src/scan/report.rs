//! The morning report as data (`schemas/morning-report.schema.json`), and its deltas against
//! the previous report. Rendering (Markdown, HTML) and storing are `escher-scan`'s.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::sections::{CriticalAlerts, InfoEvents};
use super::settings::{ReportFocus, ReportFormat, ReportSettings};
use super::{Finding, RegionFailure, ScanOutcome};
use crate::{EventType, Severity};

/// Version of the report document; bumped only on a breaking change.
pub const REPORT_SCHEMA_VERSION: &str = "1";

/// The JSON Schema of [`MorningReport`] (`schemas/morning-report.schema.json`). The
/// `UnifiedEvent` inside each finding keeps its own `$id` when generated, which would make
/// its `$ref`s resolve against the event schema's URI instead of this document; it is
/// dropped here so the report schema stands alone.
pub fn morning_report_schema() -> schemars::Schema {
    schemars::generate::SchemaSettings::draft2020_12()
        .with_transform(|schema: &mut schemars::Schema| {
            let nested = schema
                .get_mut("$defs")
                .and_then(|defs| defs.get_mut("UnifiedEvent"))
                .and_then(|event| event.as_object_mut());
            if let Some(event) = nested {
                event.remove("$id");
            }
        })
        .into_generator()
        .into_root_schema_for::<MorningReport>()
}

/// Where a finding appears in the report.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SectionKind {
    /// Security and compliance.
    Security,
    /// Optimisation opportunities, with savings.
    Optimisation,
    /// Operational health.
    Operational,
}

impl SectionKind {
    pub fn of(event_type: EventType) -> SectionKind {
        match event_type {
            EventType::BucketPublic
            | EventType::FirewallOpen
            | EventType::VolumeUnencrypted
            | EventType::ComplianceViolation
            | EventType::ThreatDetected => SectionKind::Security,
            EventType::InstanceIdle
            | EventType::ResourceUnused
            | EventType::InstanceOverprovisioned
            | EventType::CostSpike
            | EventType::BudgetExceeded => SectionKind::Optimisation,
            _ => SectionKind::Operational,
        }
    }

    /// The sections in the order `focus` puts them.
    pub fn ordered(focus: ReportFocus) -> [SectionKind; 3] {
        use SectionKind::*;
        match focus {
            ReportFocus::Balanced | ReportFocus::Security => [Security, Optimisation, Operational],
            ReportFocus::Cost => [Optimisation, Security, Operational],
            ReportFocus::Operational => [Operational, Security, Optimisation],
        }
    }
}

/// A finding of the previous report that is gone tonight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolvedFinding {
    pub key: String,
    pub title: String,
    pub severity: Severity,
}

/// What changed since the previous report, by finding key.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Deltas {
    /// The date of the report compared with; `None` for the first report.
    pub previous_report: Option<NaiveDate>,
    pub new: Vec<String>,
    pub resolved: Vec<ResolvedFinding>,
    pub unchanged: Vec<String>,
    /// Tonight's cost against the previous report's, when both have a cost summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<super::cost::CostChange>,
}

impl Deltas {
    /// Compares tonight's findings with the previous report's (every key sorted).
    pub fn between(previous: Option<&MorningReport>, current: &[Finding]) -> Deltas {
        let Some(previous) = previous else {
            return Deltas {
                previous_report: None,
                new: current.iter().map(|f| f.key.clone()).collect(),
                ..Deltas::default()
            };
        };
        let before: BTreeMap<&str, &Finding> = previous
            .findings
            .iter()
            .map(|f| (f.key.as_str(), f))
            .collect();
        let now: BTreeSet<&str> = current.iter().map(|f| f.key.as_str()).collect();
        let mut deltas = Deltas {
            previous_report: Some(previous.report_date),
            ..Deltas::default()
        };
        for key in &now {
            if before.contains_key(key) {
                deltas.unchanged.push(key.to_string());
            } else {
                deltas.new.push(key.to_string());
            }
        }
        for (key, finding) in before {
            if !now.contains(key) {
                deltas.resolved.push(ResolvedFinding {
                    key: key.to_string(),
                    title: finding.title.clone(),
                    severity: finding.event.severity,
                });
            }
        }
        deltas.new.sort();
        deltas.unchanged.sort();
        deltas
    }
}

/// Counts for the report's first lines.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportSummary {
    pub findings: usize,
    pub critical: usize,
    pub high: usize,
    pub medium: usize,
    pub info: usize,
    /// The sum of the findings' estimated savings, USD per month.
    pub monthly_saving_usd: f64,
    pub regions_scanned: usize,
    pub regions_failed: usize,
}

/// What the pipeline did with a finding whose fix is pre-approved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HandledFinding {
    pub key: String,
    /// The audit outcome (`remediated`, `approval_required`, `duplicate`, …).
    pub outcome: String,
    pub summary: String,
    /// The audit record's path.
    pub audit: String,
}

/// One night's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "MorningReport",
    extend("$id" = "https://escher.dev/schemas/morning-report.schema.json")
)]
pub struct MorningReport {
    #[schemars(extend("const" = "1"))]
    pub schema_version: String,
    /// The day the report is for (UTC), its folder `reports/YYYY-MM-DD/`.
    pub report_date: NaiveDate,
    pub generated_at: DateTime<Utc>,
    pub format: ReportFormat,
    pub focus: ReportFocus,
    /// The enabled sections, in the order the focus puts them.
    pub sections: Vec<SectionKind>,
    pub regions: Vec<String>,
    pub summary: ReportSummary,
    /// Every finding (whatever the sections and the format show), most important first.
    pub findings: Vec<Finding>,
    /// Findings whose fix is pre-approved, as the pipeline handled them.
    pub handled: Vec<HandledFinding>,
    pub deltas: Deltas,
    /// Checks that could not run in a region; the rest of the report still holds.
    pub failures: Vec<RegionFailure>,
    /// Yesterday against the day before, the month against the budget, the top services;
    /// `None` when the cost section is off or the billing data could not be read (then
    /// listed in `failures`). Absent in reports from before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<super::CostSummary>,
    // The day's records rather than the scan's (`sections`). `None`: the section is switched
    // off (or, in a report from before these sections existed, absent).
    /// CRITICAL alerts of the 24 hours before the report, from the audit records.
    #[serde(default)]
    pub critical_alerts: Option<CriticalAlerts>,
    /// INFO events queued for the report since the previous one.
    #[serde(default)]
    pub info_events: Option<InfoEvents>,
    /// Resources and principals behind several incidents in the week before the report,
    /// from the incident memory; `None` when the run had no pipeline (no memory to ask).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_offenders: Option<crate::incidents::RepeatOffenders>,
}

impl MorningReport {
    pub fn build(
        outcome: ScanOutcome,
        previous: Option<&MorningReport>,
        settings: &ReportSettings,
        report_date: NaiveDate,
        generated_at: DateTime<Utc>,
    ) -> MorningReport {
        let order = SectionKind::ordered(settings.focus);
        let rank = |f: &Finding| {
            let section = SectionKind::of(f.event.event_type);
            let position = order.iter().position(|s| *s == section).unwrap_or(3);
            // Balanced: severity first, whatever the section; otherwise the focus first.
            let (first, second) = match settings.focus {
                ReportFocus::Balanced => (std::cmp::Reverse(f.event.severity), position),
                _ => (std::cmp::Reverse(Severity::Info), position),
            };
            (
                first,
                second,
                std::cmp::Reverse(f.event.severity),
                f.key.clone(),
            )
        };
        let mut findings = outcome.findings;
        findings.sort_by_cached_key(rank);
        let count = |s: Severity| findings.iter().filter(|f| f.event.severity == s).count();
        let failed_regions: BTreeSet<&str> =
            outcome.failures.iter().map(|f| f.region.as_str()).collect();
        let summary = ReportSummary {
            findings: findings.len(),
            critical: count(Severity::Critical),
            high: count(Severity::High),
            medium: count(Severity::Medium),
            info: count(Severity::Info),
            monthly_saving_usd: findings.iter().filter_map(|f| f.monthly_saving_usd).sum(),
            regions_scanned: outcome.regions.len(),
            regions_failed: failed_regions.len(),
        };
        let sections = order
            .into_iter()
            .filter(|s| match s {
                SectionKind::Security => settings.sections.security,
                SectionKind::Optimisation => settings.sections.optimisation,
                SectionKind::Operational => true,
            })
            .collect();
        let cost = outcome.cost.filter(|_| settings.sections.cost);
        MorningReport {
            schema_version: REPORT_SCHEMA_VERSION.into(),
            report_date,
            generated_at,
            format: settings.format,
            focus: settings.focus,
            sections,
            regions: outcome.regions,
            summary,
            deltas: Deltas {
                cost: super::cost::CostChange::between(
                    previous.and_then(|p| p.cost.as_ref()),
                    cost.as_ref(),
                ),
                ..Deltas::between(previous, &findings)
            },
            findings,
            handled: Vec::new(),
            failures: outcome.failures,
            cost,
            critical_alerts: None,
            info_events: None,
            repeat_offenders: None,
        }
    }

    /// The findings shown in `section`, at most as many as the format allows.
    pub fn shown(&self, section: SectionKind) -> Vec<&Finding> {
        let limit = self.format.finding_limit().unwrap_or(usize::MAX);
        // The format's limit is over the whole report, so the top findings win wherever
        // they are.
        self.findings
            .iter()
            .take(limit)
            .filter(|f| SectionKind::of(f.event.event_type) == section)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::settings::ScanThresholds;
    use crate::scan::tests::draft;
    use crate::scan::{ScanContext, ScanOutcome};

    fn outcome(names: &[&str]) -> (ScanOutcome, ScanContext) {
        let scan = ScanContext::new(ScanThresholds::default());
        let findings = names
            .iter()
            .map(|n| draft(n, "us-east-1").finish(&scan))
            .collect();
        (
            ScanOutcome {
                findings,
                failures: vec![],
                regions: vec!["us-east-1".into()],
                cost: None,
            },
            scan,
        )
    }

    fn report(names: &[&str], previous: Option<&MorningReport>) -> MorningReport {
        let (outcome, scan) = outcome(names);
        MorningReport::build(
            outcome,
            previous,
            ReportSettings::built_in(),
            scan.report_date(),
            scan.started_at,
        )
    }

    #[test]
    fn the_first_report_has_everything_new() {
        let first = report(&["a", "b"], None);
        assert_eq!(first.deltas.previous_report, None);
        assert_eq!(
            first.deltas.new,
            [
                "public_bucket:arn:aws:s3:::a",
                "public_bucket:arn:aws:s3:::b"
            ]
        );
        assert!(first.deltas.resolved.is_empty() && first.deltas.unchanged.is_empty());
        assert_eq!(first.summary.findings, 2);
        assert_eq!(first.summary.high, 2);
    }

    #[test]
    fn the_next_report_shows_new_resolved_and_unchanged() {
        let first = report(&["a", "b"], None);
        let second = report(&["b", "c"], Some(&first));
        assert_eq!(second.deltas.previous_report, Some(first.report_date));
        assert_eq!(second.deltas.new, ["public_bucket:arn:aws:s3:::c"]);
        assert_eq!(second.deltas.unchanged, ["public_bucket:arn:aws:s3:::b"]);
        assert_eq!(second.deltas.resolved.len(), 1);
        assert_eq!(
            second.deltas.resolved[0].key,
            "public_bucket:arn:aws:s3:::a"
        );
        assert_eq!(second.deltas.resolved[0].title, "bucket a is public");
    }

    #[test]
    fn most_severe_first_and_the_format_limits_what_is_shown() {
        let (mut outcome, scan) = outcome(&["a", "b", "c", "d"]);
        outcome.findings[3].event.severity = Severity::Critical;
        let mut settings = ReportSettings::built_in().clone();
        settings.format = ReportFormat::Executive;
        let report = MorningReport::build(
            outcome,
            None,
            &settings,
            scan.report_date(),
            scan.started_at,
        );
        assert_eq!(report.findings[0].event.resource.name, "d");
        let shown: Vec<&str> = report
            .shown(SectionKind::Security)
            .iter()
            .map(|f| f.event.resource.name.as_str())
            .collect();
        assert_eq!(shown, ["d", "a", "b"]);
        assert_eq!(report.findings.len(), 4, "the JSON keeps every finding");
    }

    #[test]
    fn focus_orders_the_sections_and_switched_off_ones_are_left_out() {
        let mut settings = ReportSettings::built_in().clone();
        settings.focus = ReportFocus::Cost;
        settings.sections.security = false;
        let (outcome, scan) = outcome(&["a"]);
        let report = MorningReport::build(
            outcome,
            None,
            &settings,
            scan.report_date(),
            scan.started_at,
        );
        assert_eq!(
            report.sections,
            [SectionKind::Optimisation, SectionKind::Operational]
        );
    }
}
