//! `escher-scan`: the nightly scan end to end, the same on every cloud and for
//! `escher-provision scan run`: run the cloud's checks ([`escher_core::scan::run_scan`]),
//! compare with the previous report, hand pre-approved findings to the alert pipeline, build
//! the [`MorningReport`], render it ([`render`]) and store it write-once ([`store`]). A
//! cloud's scan function is one [`invocation::invoke`] per trigger, with the cloud's
//! [`invocation::HandOff`] for a scan longer than one invocation. No cloud SDK here.

pub mod invocation;
pub mod nightly;
pub mod render;
pub mod runs;
pub mod store;
pub mod summary;

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use escher_core::approvals::{Decision, NothingUsedYet};
use escher_core::pipeline::audit::AuditLog;
use escher_core::pipeline::notify::NotificationResult;
use escher_core::pipeline::Pipeline;
use escher_core::scan::report::HandledFinding;
use escher_core::scan::split::{next_step, Budget, NextStep};
use escher_core::scan::{
    run_pairs, sections, MorningReport, PairResult, ReportSettings, ScanCheck, ScanContext,
    ScanError, ScanOutcome, ScanPair,
};

pub use render::{render_html, render_markdown, RenderError};
pub use runs::{RunManifest, RunRef, RunStore};
pub use store::{ReportFiles, ReportStore, StoreError};
pub use summary::summary_notification;

#[derive(Debug, thiserror::Error)]
pub enum ScanRunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Render(#[from] RenderError),
}

/// One scan: what to scan and where the report goes.
pub struct ScanRun<'a> {
    pub checks: Vec<Arc<dyn ScanCheck>>,
    pub regions: Vec<String>,
    pub settings: &'a ReportSettings,
    pub store: &'a ReportStore,
    /// The alert pipeline, for findings whose fix is pre-approved; `None` only reports.
    pub pipeline: Option<&'a Pipeline>,
    /// The audit store the alert handler writes, for the critical alerts of the last 24 h;
    /// `None` leaves that section empty.
    pub audit: Option<&'a AuditLog>,
}

/// What a scan produced.
#[derive(Debug, Clone)]
pub struct ScanResult {
    pub report: MorningReport,
    pub files: ReportFiles,
    /// Where the night's summary went (empty: nothing MEDIUM or higher, or no pipeline).
    pub notified: Vec<NotificationResult>,
}

/// Where one invocation of a run got to.
#[derive(Debug, Clone)]
pub enum Progress {
    /// The report is stored (by this invocation, or, for a rerun, an earlier one).
    Finished(Box<ScanResult>),
    /// Time is short: a new invocation must continue `RunRef`.
    HandOn(RunRef),
}

impl ScanRun<'_> {
    /// The whole scan at once, with no deadline (the CLI): the same steps an invocation of
    /// the function takes, run until the report is stored.
    pub async fn run(self) -> Result<ScanResult, ScanRunError> {
        let mut run = None;
        loop {
            match self.step(run.take(), None).await? {
                Progress::Finished(result) => return Ok(*result),
                Progress::HandOn(next) => run = Some(next),
            }
        }
    }

    /// One invocation's share of a run: starts a new run (`run` = `None`) or continues one,
    /// runs pending (check, region) pairs while `deadline` leaves the safety margin, keeping
    /// each pair's result write-once, then stores the report when every pair is done or
    /// hands the run on. A rerun of a run never repeats a finished pair, and a finished
    /// run returns its stored report.
    pub async fn step(
        &self,
        run: Option<RunRef>,
        deadline: Option<DateTime<Utc>>,
    ) -> Result<Progress, ScanRunError> {
        let runs = self.runs();
        let (run, manifest) = match run {
            Some(run) => {
                let manifest = runs.manifest(&run).await?;
                (run, manifest)
            }
            None => {
                let started_at = Utc::now();
                let name = format!(
                    "{}-{}",
                    started_at.format("%H%M%S"),
                    escher_core::ids::unique_token(4)
                );
                let manifest = self.manifest(name, started_at);
                (runs.start(&manifest).await?, manifest)
            }
        };
        self.continue_run(&runs, run, manifest, deadline).await
    }

    /// The first invocation for a trigger (the scheduled event; `trigger_id` its id, `date`
    /// the day it fired): starts the run named after it, or, when this is Lambda's retry of
    /// an invocation that failed after starting it (a failed hand-off, say), or a second
    /// delivery of the same event, continues that run, so no finished pair is scanned again.
    pub async fn step_for_trigger(
        &self,
        trigger_id: &str,
        date: NaiveDate,
        deadline: Option<DateTime<Utc>>,
    ) -> Result<Progress, ScanRunError> {
        let runs = self.runs();
        let run = RunRef::for_trigger(trigger_id, date);
        let fresh = self.manifest(run.run.clone(), Utc::now());
        let manifest = match runs.start_as(&run, &fresh).await {
            Ok(()) => fresh,
            Err(StoreError::Exists { .. }) => runs.manifest(&run).await?,
            Err(e) => return Err(e.into()),
        };
        self.continue_run(&runs, run, manifest, deadline).await
    }

    fn runs(&self) -> RunStore<'_> {
        RunStore {
            operator: self.store.operator(),
            location: self.store.location(),
        }
    }

    /// What a new run named `run` covers.
    fn manifest(&self, run: String, started_at: DateTime<Utc>) -> RunManifest {
        RunManifest {
            run,
            started_at,
            regions: self.regions.clone(),
            pairs: ScanPair::for_report(&self.checks, &self.regions, &self.settings.sections),
        }
    }

    async fn continue_run(
        &self,
        runs: &RunStore<'_>,
        run: RunRef,
        manifest: RunManifest,
        deadline: Option<DateTime<Utc>>,
    ) -> Result<Progress, ScanRunError> {
        if let Some(files) = runs.finished(&run).await? {
            let report = self.store.report(&files).await?;
            return Ok(Progress::Finished(Box::new(ScanResult {
                report,
                files,
                notified: runs.summary_sent(&run).await?,
            })));
        }
        let mut context = ScanContext::new(self.settings.thresholds.clone());
        // Every invocation's findings carry the run's start, so their ids agree.
        context.started_at = manifest.started_at;
        let scan = &self.settings.scan;
        let mut ran = 0;
        // Read once; this invocation's own results are added as they are kept.
        let mut parts = runs.parts(&run).await?;
        loop {
            let done = parts.iter().map(|p| p.pair.clone()).collect();
            let budget = Budget {
                time_left: deadline.map(|d| (d - Utc::now()).to_std().unwrap_or_default()),
                margin: std::time::Duration::from_secs(scan.safety_margin_secs),
                ran,
                invocation: run.invocation,
                max_invocations: scan.max_invocations,
            };
            match next_step(&manifest.pairs, &done, budget, scan.concurrency) {
                NextStep::Run(pairs) => {
                    for part in run_pairs(&self.checks, &pairs, scan.concurrency, &context).await {
                        parts.push(runs.keep(&run, part).await?);
                    }
                    ran += pairs.len();
                }
                NextStep::HandOn => {
                    tracing::info!(run = %run.run, invocation = run.invocation, done = done.len(), pairs = manifest.pairs.len(), "deadline near: handing the scan on");
                    return Ok(Progress::HandOn(RunRef {
                        invocation: run.invocation + 1,
                        ..run
                    }));
                }
                NextStep::Assemble => {
                    let result = self
                        .assemble(runs, &run, &manifest, parts, &context)
                        .await?;
                    return Ok(Progress::Finished(Box::new(result)));
                }
            }
        }
    }

    async fn assemble(
        &self,
        runs: &RunStore<'_>,
        run: &RunRef,
        manifest: &RunManifest,
        parts: Vec<PairResult>,
        context: &ScanContext,
    ) -> Result<ScanResult, ScanRunError> {
        // Pairs without a result: the run ran out of invocations before them.
        let done: BTreeSet<ScanPair> = parts.iter().map(|p| p.pair.clone()).collect();
        let cloud = escher_core::scan::cloud_of(&self.checks);
        let missing: Vec<PairResult> = manifest
            .pairs
            .iter()
            .filter(|pair| !done.contains(pair))
            .map(|pair| PairResult {
                cloud,
                pair: pair.clone(),
                result: Err(ScanError {
                    operation: "check".into(),
                    resource: pair.region.clone(),
                    message: format!(
                        "not scanned tonight: the run used all {} invocations (scan.max_invocations in the report settings); raise it, or the function's timeout",
                        self.settings.scan.max_invocations
                    ),
                    transient: true,
                }),
            })
            .collect();
        let outcome =
            ScanOutcome::from_results(manifest.regions.clone(), parts.into_iter().chain(missing));
        let previous = self.store.latest().await?;
        let generated_at = Utc::now();
        let mut report = MorningReport::build(
            outcome,
            previous.as_ref(),
            self.settings,
            context.report_date(),
            generated_at,
        );
        self.gather_sections(&mut report, previous.as_ref()).await;
        if let Some(pipeline) = self.pipeline {
            report.handled = handle_pre_approved(pipeline, &report).await;
            // Once a night, whatever is pending (tonight's fixes too) goes into the snapshot,
            // so a quiet estate's cold readers do not fetch a day of small objects.
            if let Err(e) = pipeline.memory.compact(1).await {
                tracing::warn!(error = %e, "incident memory not compacted; the handlers fold it later");
            }
        }
        let files = self.store.write(&report).await?;
        // Only the invocation that finished the run tells people about it.
        let notified = if runs.finish(run, &files).await? {
            let sent = self.notify_summary(&report, &files).await;
            // The report and the summary are out; a failure to note where it went is not a
            // reason to run the night again.
            if let Err(e) = runs.keep_summary(run, &sent).await {
                tracing::warn!(run = %run.run, error = %e, "where the summary went was not kept with the run");
            }
            sent
        } else {
            tracing::warn!(run = %run.run, "another invocation finished this run too; its summary was sent, this one is not");
            Vec::new()
        };
        Ok(ScanResult {
            report,
            files,
            notified,
        })
    }
}

impl ScanRun<'_> {
    /// After the report is stored: the summary, through the pipeline's notifier and routing.
    async fn notify_summary(
        &self,
        report: &MorningReport,
        files: &ReportFiles,
    ) -> Vec<NotificationResult> {
        let (Some(pipeline), Some(summary)) = (
            self.pipeline,
            summary_notification(report, files, self.store.location()),
        ) else {
            return Vec::new();
        };
        let results = pipeline.notifier.send(&summary, pipeline.mode).await;
        for result in &results {
            tracing::info!(channel = result.channel.as_str(), status = result.status.as_str(), detail = %result.detail, "morning report summary");
        }
        results
    }

    /// The sections from the day's records: critical alerts (audit store) and INFO events
    /// queued since the previous report (state store), each when switched on.
    async fn gather_sections(&self, report: &mut MorningReport, previous: Option<&MorningReport>) {
        let sections_on = &self.settings.sections;
        if let Some(pipeline) = self.pipeline {
            report.repeat_offenders =
                Some(pipeline.memory.repeat_offenders(report.generated_at).await);
        }
        if let (true, Some(audit)) = (sections_on.critical_alerts, self.audit) {
            report.critical_alerts =
                Some(sections::critical_alerts(audit, report.generated_at).await);
        }
        if sections_on.info_events {
            // The previous report's own watermark; one that did not gather the queue (the
            // section off, or written before it existed) still showed everything up to its
            // time in some report or none, so its time is where the queue starts.
            let since = previous.map(|p| {
                p.info_events
                    .as_ref()
                    .map_or(p.generated_at, |info| info.until)
            });
            report.info_events = Some(
                sections::info_events(
                    self.store.operator(),
                    self.store.location(),
                    since,
                    report.generated_at,
                )
                .await,
            );
        }
    }
}

/// Sends the findings whose fix an approval covers through the pipeline (decide →
/// remediate → verify → audit → notify). The others are not: they stay one-click actions
/// in the report, instead of one "approval required" notice per finding every night.
async fn handle_pre_approved(pipeline: &Pipeline, report: &MorningReport) -> Vec<HandledFinding> {
    let index = match pipeline.approvals.index().await {
        Ok(index) => index,
        Err(e) => {
            tracing::error!(error = %e, "approvals unreadable: no finding is fixed tonight; they are all in the report");
            return Vec::new();
        }
    };
    let mut handled = Vec::new();
    for finding in &report.findings {
        let Some(action) = finding.action else {
            continue;
        };
        let approved = matches!(
            index.decide(&finding.event, action, Utc::now(), &NothingUsedYet),
            Ok(Decision::Approved { .. })
        );
        if !approved {
            continue;
        }
        let result = match pipeline.handle_finding(finding.event.clone()).await {
            Ok(result) => HandledFinding {
                key: finding.key.clone(),
                outcome: result.outcome.as_str().to_string(),
                summary: result.summary,
                audit: result.audit_path,
            },
            Err(e) => HandledFinding {
                key: finding.key.clone(),
                outcome: "retry".into(),
                summary: format!("not fixed tonight: {e}"),
                audit: String::new(),
            },
        };
        handled.push(result);
    }
    handled
}
