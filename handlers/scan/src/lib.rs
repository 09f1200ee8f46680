//! `escher-scan`: the nightly scan end to end, the same for the `escher-scan` function and
//! `escher-provision scan run`: run the cloud's checks ([`escher_core::scan::run_scan`]),
//! compare with the previous report, hand pre-approved findings to the alert pipeline, build
//! the [`MorningReport`], render it ([`render`]) and store it write-once ([`store`]).

pub mod render;
pub mod store;

use std::sync::Arc;

use chrono::Utc;
use escher_core::approvals::{Decision, NothingUsedYet};
use escher_core::pipeline::Pipeline;
use escher_core::scan::report::HandledFinding;
use escher_core::scan::{run_scan, MorningReport, ReportSettings, ScanCheck, ScanContext};

pub use render::{render_html, render_markdown, RenderError};
pub use store::{ReportFiles, ReportStore, StoreError};

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
}

/// What a scan produced.
#[derive(Debug, Clone)]
pub struct ScanResult {
    pub report: MorningReport,
    pub files: ReportFiles,
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
        let mut report = MorningReport::build(
            outcome,
            previous.as_ref(),
            self.settings,
            context.report_date(),
            Utc::now(),
        );
        if let Some(pipeline) = self.pipeline {
            report.handled = handle_pre_approved(pipeline, &report).await;
        }
        let files = self.store.write(&report).await?;
        Ok(ScanResult { report, files })
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
