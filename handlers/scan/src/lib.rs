//! `escher-scan`: the nightly scan end to end, the same for the `escher-scan` function and
//! `escher-provision scan run`: run the cloud's checks ([`escher_core::scan::run_scan`]),
//! compare with the previous report, hand pre-approved findings to the alert pipeline, build
//! the [`MorningReport`], render it ([`render`]) and store it write-once ([`store`]).

pub mod render;
pub mod store;
pub mod summary;

use std::sync::Arc;

use chrono::Utc;
use escher_core::approvals::{Decision, NothingUsedYet};
use escher_core::pipeline::audit::AuditLog;
use escher_core::pipeline::notify::NotificationResult;
use escher_core::pipeline::Pipeline;
use escher_core::scan::report::HandledFinding;
use escher_core::scan::{
    run_scan, sections, MorningReport, ReportSettings, ScanCheck, ScanContext,
};

pub use render::{render_html, render_markdown, RenderError};
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

impl ScanRun<'_> {
    pub async fn run(self) -> Result<ScanResult, ScanRunError> {
        let context = ScanContext::new(self.settings.thresholds.clone());
        let outcome = run_scan(
            &self.checks,
            &self.regions,
            self.settings.scan.concurrency,
            &context,
        )
        .await;
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
        }
        let files = self.store.write(&report).await?;
        let notified = self.notify_summary(&report, &files).await;
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
