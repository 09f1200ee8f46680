//! The nightly scan, cloud-neutral: what a check is, what a finding is, and how the checks
//! are run over the regions.
//!
//! A cloud brings [`ScanCheck`]s (one check, one region, returns findings); [`run_scan`]
//! runs every check in every region with bounded concurrency, so one region that fails
//! (denied, throttled, unreachable) is reported in [`ScanOutcome::failures`] and the others
//! still count. Findings are [`UnifiedEvent`]s with source `escher.scan`, so a pre-approved
//! one can go through the same pipeline as an alert; [`Finding`] adds what the report needs
//! (a stable key for deltas, the one-click command, suggested questions).
//!
//! [`settings`] reads `policies/report.yaml`; [`report`] is the morning report and its
//! deltas against the previous one.

pub mod cost;
pub mod report;
pub mod sections;
pub mod settings;
pub mod split;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::approvals::Action;
use crate::pipeline::notify::approve_command;
use crate::{
    CloudProvider, EventContext, EventSource, EventType, Resource, SeverityPolicy, UnifiedEvent,
    SCHEMA_VERSION,
};
pub use cost::{CostChange, CostSummary, CostWindow, DailyCosts};
pub use report::{Deltas, MorningReport, ResolvedFinding};
pub use sections::{CriticalAlert, CriticalAlerts, InfoEvents, QueuedEvent};
pub use settings::{ReportFormat, ReportSettings, ScanThresholds, Sections, SettingsError};

/// Why one check could not finish in one region.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize, JsonSchema)]
#[error("{operation} on {resource} failed: {message}")]
pub struct ScanError {
    /// The cloud API operation (e.g. `DescribeVolumes`).
    pub operation: String,
    /// What it was called on (a region, a bucket, a volume id).
    pub resource: String,
    /// The cloud's error code and message, and what the user can do about it.
    pub message: String,
    /// Throttling, timeouts, 5xx: tomorrow's run (or a rerun) may well succeed.
    pub transient: bool,
}

impl ScanError {
    /// A check that judges resources with its fix's own readers (so the scan and the fix
    /// agree) reports their failure as its own.
    pub fn from_fix_read(
        operation: &str,
        resource: &str,
        e: crate::remediate::RemediationError,
    ) -> Self {
        ScanError {
            operation: operation.to_string(),
            resource: resource.to_string(),
            transient: e.is_transient(),
            message: e.to_string(),
        }
    }
}

/// Where a check looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckScope {
    /// Once in every scanned region.
    Region,
    /// Once per scan, whatever the regions: account-wide APIs (billing) answer the same
    /// everywhere, and some charge per call. Its failures are reported under the region
    /// [`ACCOUNT_WIDE`].
    Account,
}

/// The region label of account-wide checks and their findings.
pub const ACCOUNT_WIDE: &str = "global";

/// What one run of a check produced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckOutput {
    pub findings: Vec<Finding>,
    /// The account's cost summary, from the check that reads billing data.
    pub cost: Option<CostSummary>,
}

/// One check in one region: everything a cloud needs to implement to be scanned.
#[async_trait]
pub trait ScanCheck: Send + Sync {
    /// Stable id, part of every finding's key (`public_bucket`, `open_admin_port`, …).
    fn id(&self) -> &'static str;

    /// The cloud this check looks at; its findings carry it as `cloud_provider`.
    fn cloud(&self) -> CloudProvider;

    /// The findings in `region` (`global` resources such as buckets are attributed to the
    /// region they live in, so every region reports its own).
    async fn run(&self, region: &str, scan: &ScanContext) -> Result<Vec<Finding>, ScanError>;

    fn scope(&self) -> CheckScope {
        CheckScope::Region
    }

    /// Whether the check reads billing data for the cost section (its findings are cost
    /// spikes): a run whose report has that section turned off does not run it, so it
    /// makes no request (Cost Explorer bills each one).
    fn feeds_cost_section(&self) -> bool {
        false
    }

    /// What [`run_scan`] calls: the findings, and for a check that has one, the cost
    /// summary.
    async fn output(&self, region: &str, scan: &ScanContext) -> Result<CheckOutput, ScanError> {
        Ok(CheckOutput {
            findings: self.run(region, scan).await?,
            cost: None,
        })
    }
}

/// What every check of one run shares.
#[derive(Debug, Clone)]
pub struct ScanContext {
    pub thresholds: ScanThresholds,
    pub severity: &'static SeverityPolicy,
    /// When this run started; findings carry it as their timestamp.
    pub started_at: DateTime<Utc>,
}

impl ScanContext {
    pub fn new(thresholds: ScanThresholds) -> Self {
        ScanContext {
            thresholds,
            severity: SeverityPolicy::built_in(),
            started_at: Utc::now(),
        }
    }

    /// The day the run's report is for.
    pub fn report_date(&self) -> NaiveDate {
        self.started_at.date_naive()
    }
}

/// One thing the scan found, with what the report needs around the event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Finding {
    /// `<check>:<resource id>`: the same resource failing the same check gets the same key
    /// every night, which is what deltas compare.
    pub key: String,
    pub check: String,
    /// One line for people.
    pub title: String,
    /// The fix, when Escher has one for this finding (it may be pre-approved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// The one-click command: `escher-provision approvals add …` for a fix Escher applies,
    /// else the cloud CLI command that performs it.
    pub command: String,
    /// Estimated saving in USD per month when the finding is acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_saving_usd: Option<f64>,
    /// What the reader may want to ask before acting.
    pub questions: Vec<String>,
    pub event: UnifiedEvent,
}

/// What a check knows about one finding; [`FindingDraft::finish`] makes the [`Finding`].
#[derive(Debug, Clone)]
pub struct FindingDraft {
    pub check: &'static str,
    pub cloud: CloudProvider,
    pub account_id: String,
    pub region: String,
    pub event_type: EventType,
    pub resource: Resource,
    pub title: String,
    pub action: Option<Action>,
    /// The command when `action` is `None` (nothing for Escher to approve).
    pub manual_command: Option<String>,
    pub monthly_saving_usd: Option<f64>,
    pub questions: Vec<String>,
}

impl FindingDraft {
    /// The finding, with context and severity from the resource's tags as for an alert, and
    /// an event id that is new each night (so the pipeline handles each night's finding) and
    /// the same within one night (so a rerun is a duplicate, not a second fix).
    pub fn finish(self, scan: &ScanContext) -> Finding {
        let key = format!("{}:{}", self.check, self.resource.id);
        let mut context = EventContext::default();
        crate::context::fill_from_tags(&mut context, &self.resource.tags);
        context.cost_impact = self.monthly_saving_usd;
        let severity = scan.severity.resolve(self.event_type, None, &context);
        let mut hash = Sha256::new();
        for part in [
            EventSource::EscherScan.as_str(),
            &key,
            &scan.report_date().to_string(),
        ] {
            hash.update(part.as_bytes());
            hash.update(b"\0");
        }
        let mut event_id = format!("{}-", self.cloud);
        crate::ids::push_hex(&mut event_id, &hash.finalize()[..16]);
        let raw_event = serde_json::json!({
            "check": self.check,
            "title": self.title,
            "metadata": self.resource.metadata,
        });
        let event = UnifiedEvent {
            event_id,
            event_type: self.event_type,
            severity,
            cloud_provider: self.cloud,
            account_id: self.account_id,
            region: self.region,
            resource: self.resource,
            context,
            timestamp: scan.started_at,
            source: EventSource::EscherScan,
            raw_event: Arc::new(raw_event),
            schema_version: SCHEMA_VERSION.into(),
        };
        let command = match (self.action, self.manual_command) {
            (Some(action), _) => approve_command(&event, action),
            (None, Some(command)) => command,
            (None, None) => String::new(),
        };
        Finding {
            key,
            check: self.check.to_string(),
            title: self.title,
            action: self.action,
            command,
            monthly_saving_usd: self.monthly_saving_usd,
            questions: self.questions,
            event,
        }
    }
}

/// A check that failed in one region; the rest of the scan went on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegionFailure {
    /// The check's cloud; absent when no check of this version produced the failure (a
    /// run continued by a version without that check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud: Option<CloudProvider>,
    pub region: String,
    pub check: String,
    pub error: ScanError,
}

/// Everything one scan produced.
#[derive(Debug, Clone, Default)]
pub struct ScanOutcome {
    /// Sorted by key, one per key.
    pub findings: Vec<Finding>,
    pub failures: Vec<RegionFailure>,
    pub regions: Vec<String>,
    /// From the account-wide cost check, when it ran and succeeded.
    pub cost: Option<CostSummary>,
}

/// One unit of the scan's work: one check in one region.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ScanPair {
    pub check: String,
    pub region: String,
}

impl ScanPair {
    /// Every check in every region, region by region, then each account-wide check once
    /// (as [`ACCOUNT_WIDE`]).
    /// Every pair a run with `sections` makes: each regional check in each region, each
    /// account-wide check once; a cost check only when the report shows cost.
    pub fn for_report(
        checks: &[Arc<dyn ScanCheck>],
        regions: &[String],
        sections: &Sections,
    ) -> Vec<ScanPair> {
        let wanted: Vec<Arc<dyn ScanCheck>> = checks
            .iter()
            .filter(|check| sections.cost || !check.feeds_cost_section())
            .cloned()
            .collect();
        ScanPair::all(&wanted, regions)
    }

    pub fn all(checks: &[Arc<dyn ScanCheck>], regions: &[String]) -> Vec<ScanPair> {
        let regional = regions.iter().flat_map(|region| {
            checks
                .iter()
                .filter(|check| check.scope() == CheckScope::Region)
                .map(move |check| ScanPair {
                    check: check.id().to_string(),
                    region: region.clone(),
                })
        });
        let account_wide = checks
            .iter()
            .filter(|check| check.scope() == CheckScope::Account)
            .map(|check| ScanPair {
                check: check.id().to_string(),
                region: ACCOUNT_WIDE.to_string(),
            });
        regional.chain(account_wide).collect()
    }
}

/// What one (check, region) pair produced: its findings (and the cost summary, from the
/// check that reads billing data), or why it could not finish.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairResult {
    /// The check's cloud; `None` for a result no check produced (see [`cloud_of`]).
    pub cloud: Option<CloudProvider>,
    pub pair: ScanPair,
    pub result: Result<CheckOutput, ScanError>,
}

/// Runs every check in every region (an account-wide check once, as [`ACCOUNT_WIDE`]), at
/// most `concurrency` (check, region) pairs at once.
/// A failing pair is recorded and never stops the others; a panicking check is recorded
/// the same way.
pub async fn run_scan(
    checks: &[Arc<dyn ScanCheck>],
    regions: &[String],
    concurrency: usize,
    scan: &ScanContext,
) -> ScanOutcome {
    let results = run_pairs(checks, &ScanPair::all(checks, regions), concurrency, scan).await;
    ScanOutcome::from_results(regions.to_vec(), results)
}

/// The cloud a set of checks looks at, for a result no check produced (a pair left out or
/// not reached): every check of one run is of one cloud. No checks, no cloud: none is
/// assumed.
pub fn cloud_of(checks: &[Arc<dyn ScanCheck>]) -> Option<CloudProvider> {
    checks.first().map(|c| c.cloud())
}

/// Runs `pairs`, at most `concurrency` at once; one result per pair, in `pairs`' order. A
/// pair naming a check that is not in `checks` is a failure, not a panic.
pub async fn run_pairs(
    checks: &[Arc<dyn ScanCheck>],
    pairs: &[ScanPair],
    concurrency: usize,
    scan: &ScanContext,
) -> Vec<PairResult> {
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let mut pending = BTreeMap::new();
    let mut results: Vec<Option<PairResult>> = vec![None; pairs.len()];
    for (index, pair) in pairs.iter().enumerate() {
        let Some(check) = checks.iter().find(|c| c.id() == pair.check) else {
            results[index] = Some(PairResult {
                cloud: cloud_of(checks),
                pair: pair.clone(),
                result: Err(ScanError {
                    operation: "check".into(),
                    resource: pair.region.clone(),
                    message: format!(
                        "this version has no check {:?}; the pair was left out",
                        pair.check
                    ),
                    transient: false,
                }),
            });
            continue;
        };
        let (check, region, scan, permits) = (
            Arc::clone(check),
            pair.region.clone(),
            scan.clone(),
            Arc::clone(&permits),
        );
        let cloud = Some(check.cloud());
        let handle = tasks.spawn(async move {
            // The semaphore is never closed, so acquiring only waits.
            let _permit = permits.acquire_owned().await;
            let started = std::time::Instant::now();
            let result = check.output(&region, &scan).await;
            tracing::info!(
                check = check.id(),
                region = %region,
                ms = started.elapsed().as_millis() as u64,
                findings = result.as_ref().map_or(0, |o| o.findings.len()),
                ok = result.is_ok(),
                "scan check"
            );
            result
        });
        pending.insert(handle.id(), (index, cloud));
    }
    while let Some(joined) = tasks.join_next_with_id().await {
        let (id, result) = match joined {
            Ok((id, result)) => (id, result),
            Err(e) => (
                e.id(),
                Err(ScanError {
                    operation: "check".into(),
                    resource: "the scan".into(),
                    message: format!("the check stopped unexpectedly: {e}"),
                    transient: false,
                }),
            ),
        };
        let Some((index, cloud)) = pending.remove(&id) else {
            continue;
        };
        results[index] = Some(PairResult {
            cloud,
            pair: pairs[index].clone(),
            result,
        });
    }
    results.into_iter().flatten().collect()
}

impl ScanOutcome {
    /// The findings (one per key) and failures of `results`, however many invocations ran
    /// them.
    pub fn from_results(
        regions: Vec<String>,
        results: impl IntoIterator<Item = PairResult>,
    ) -> ScanOutcome {
        let mut outcome = ScanOutcome {
            regions,
            ..ScanOutcome::default()
        };
        let mut by_key = BTreeMap::new();
        for PairResult {
            cloud,
            pair,
            result,
        } in results
        {
            match result {
                Ok(output) => {
                    for finding in output.findings {
                        by_key.entry(finding.key.clone()).or_insert(finding);
                    }
                    if output.cost.is_some() {
                        outcome.cost = output.cost;
                    }
                }
                Err(error) => {
                    tracing::warn!(check = %pair.check, region = %pair.region, error = %error, "scan check failed in one region; the rest of the scan goes on");
                    outcome.failures.push(RegionFailure {
                        cloud,
                        region: pair.region,
                        check: pair.check,
                        error,
                    });
                }
            }
        }
        outcome
            .failures
            .sort_by(|a, b| (&a.region, &a.check).cmp(&(&b.region, &b.check)));
        outcome.findings = by_key.into_values().collect();
        outcome
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A check over plain data: a fixed list of resources per region, or a failure.
    pub(crate) struct ListedCheck {
        pub per_region: BTreeMap<String, Result<Vec<&'static str>, ScanError>>,
    }

    pub(crate) fn draft(name: &str, region: &str) -> FindingDraft {
        FindingDraft {
            check: "public_bucket",
            cloud: CloudProvider::Aws,
            account_id: "123456789012".into(),
            region: region.into(),
            event_type: EventType::BucketPublic,
            resource: Resource {
                kind: "s3_bucket".into(),
                id: format!("arn:aws:s3:::{name}"),
                name: name.into(),
                ..Resource::default()
            },
            title: format!("bucket {name} is public"),
            action: Some(Action::MakeBucketPrivate),
            manual_command: None,
            monthly_saving_usd: None,
            questions: vec![],
        }
    }

    #[async_trait]
    impl ScanCheck for ListedCheck {
        fn id(&self) -> &'static str {
            "public_bucket"
        }
        fn cloud(&self) -> CloudProvider {
            CloudProvider::Aws
        }
        async fn run(&self, region: &str, scan: &ScanContext) -> Result<Vec<Finding>, ScanError> {
            match self.per_region.get(region) {
                Some(Ok(names)) => Ok(names
                    .iter()
                    .map(|n| draft(n, region).finish(scan))
                    .collect()),
                Some(Err(e)) => Err(e.clone()),
                None => Ok(vec![]),
            }
        }
    }

    fn denied() -> ScanError {
        ScanError {
            operation: "ListBuckets".into(),
            resource: "eu-west-1".into(),
            message: "AccessDenied: not allowed".into(),
            transient: false,
        }
    }

    #[tokio::test]
    async fn a_failing_region_is_reported_and_the_others_still_count() {
        let check = ListedCheck {
            per_region: BTreeMap::from([
                ("us-east-1".to_string(), Ok(vec!["a", "b"])),
                ("eu-west-1".to_string(), Err(denied())),
                ("ap-south-1".to_string(), Ok(vec!["c"])),
            ]),
        };
        let checks: Vec<Arc<dyn ScanCheck>> = vec![Arc::new(check)];
        let regions: Vec<String> = ["us-east-1", "eu-west-1", "ap-south-1"]
            .map(String::from)
            .to_vec();
        let scan = ScanContext::new(ScanThresholds::default());
        let outcome = run_scan(&checks, &regions, 1, &scan).await;
        let names: Vec<&str> = outcome
            .findings
            .iter()
            .map(|f| f.event.resource.name.as_str())
            .collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(outcome.failures.len(), 1);
        assert_eq!(outcome.failures[0].region, "eu-west-1");
        assert_eq!(outcome.failures[0].check, "public_bucket");
        assert!(outcome.failures[0]
            .error
            .to_string()
            .contains("AccessDenied"));
    }

    /// An account-wide check that counts its runs and reports a cost summary.
    struct CountingAccountCheck(std::sync::atomic::AtomicUsize);

    #[async_trait]
    impl ScanCheck for CountingAccountCheck {
        fn id(&self) -> &'static str {
            "cost"
        }
        fn cloud(&self) -> CloudProvider {
            CloudProvider::Aws
        }
        fn scope(&self) -> CheckScope {
            CheckScope::Account
        }
        async fn run(&self, region: &str, scan: &ScanContext) -> Result<Vec<Finding>, ScanError> {
            Ok(self.output(region, scan).await?.findings)
        }
        async fn output(&self, region: &str, scan: &ScanContext) -> Result<CheckOutput, ScanError> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let window = CostWindow::for_report(scan.report_date());
            let costs = DailyCosts {
                by_day: BTreeMap::from([(
                    window.yesterday,
                    BTreeMap::from([("Amazon EC2".to_string(), 12.5)]),
                )]),
                ..DailyCosts::default()
            };
            let cost = CostSummary::from_daily(&costs, window, &scan.thresholds)
                .map_err(|e| e.into_scan_error("GetCostAndUsage", region))?;
            Ok(CheckOutput {
                findings: vec![draft("account-wide", region).finish(scan)],
                cost: Some(cost),
            })
        }
    }

    #[tokio::test]
    async fn an_account_wide_check_runs_once_whatever_the_regions() {
        let check = Arc::new(CountingAccountCheck(Default::default()));
        let checks: Vec<Arc<dyn ScanCheck>> = vec![check.clone()];
        let regions: Vec<String> = ["us-east-1", "eu-west-1", "ap-south-1"]
            .map(String::from)
            .to_vec();
        let scan = ScanContext::new(ScanThresholds::default());
        let outcome = run_scan(&checks, &regions, 2, &scan).await;
        assert_eq!(check.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(outcome.findings.len(), 1);
        assert_eq!(outcome.findings[0].event.region, ACCOUNT_WIDE);
        assert_eq!(outcome.cost.map(|c| c.yesterday_amount), Some(12.5));
    }

    #[test]
    fn findings_are_scan_events_with_the_checks_cloud_and_the_approve_command() {
        let scan = ScanContext::new(ScanThresholds::default());
        let mut tagged = draft("pii-data", "us-east-1");
        tagged
            .resource
            .tags
            .insert("data-classification".into(), "pii".into());
        let finding = tagged.finish(&scan);
        assert_eq!(finding.event.source, EventSource::EscherScan);
        assert_eq!(finding.event.cloud_provider, CloudProvider::Aws);
        assert!(finding.event.event_id.starts_with("aws-"));
        assert_eq!(finding.key, "public_bucket:arn:aws:s3:::pii-data");
        // The same raise rules as for alerts: a public PII bucket is CRITICAL.
        assert_eq!(finding.event.severity, crate::Severity::Critical);
        assert!(
            finding.command.starts_with(
                "escher-provision approvals add --action make_bucket_private --cloud aws --account 123456789012 --resource-type s3_bucket --resource 'pii-data'"
            ),
            "{}",
            finding.command
        );
        let plain = draft("plain", "us-east-1").finish(&scan);
        assert_eq!(plain.event.severity, crate::Severity::High);
        assert_ne!(plain.event.event_id, finding.event.event_id);
    }

    #[test]
    fn the_event_id_is_stable_within_a_night_and_new_the_next() {
        let tonight = ScanContext::new(ScanThresholds::default());
        let mut tomorrow = tonight.clone();
        tomorrow.started_at += chrono::Duration::days(1);
        let a = draft("b", "us-east-1").finish(&tonight);
        let again = draft("b", "us-east-1").finish(&tonight);
        let next = draft("b", "us-east-1").finish(&tomorrow);
        assert_eq!(a.event.event_id, again.event.event_id);
        assert_ne!(a.event.event_id, next.event.event_id);
        assert_eq!(a.key, next.key);
    }
}
