//! The one notification of the night: when any finding or critical alert is MEDIUM or
//! higher, a summary (counts by severity, the top findings with their commands, where the
//! report is) goes through the alert pipeline's notifier, so the highest severity picks the
//! channels exactly as for an alert (`policies/notifications.yaml`).

use escher_core::pipeline::audit::Outcome;
use escher_core::pipeline::notify::Notification;
use escher_core::scan::MorningReport;
use escher_core::Severity;

use crate::store::ReportFiles;

/// How many findings the summary names.
pub const SUMMARY_TOP_FINDINGS: usize = 3;

/// The summary of `report` (stored as `files` in the store at `location`); `None` when
/// everything is INFO, so a quiet night sends nothing.
pub fn summary_notification(
    report: &MorningReport,
    files: &ReportFiles,
    location: &str,
) -> Option<Notification> {
    let critical_alerts = report
        .critical_alerts
        .as_ref()
        .map_or(0, |section| section.alerts.len());
    let highest = report
        .findings
        .iter()
        .map(|f| f.event.severity)
        .chain((critical_alerts > 0).then_some(Severity::Critical))
        .max()?;
    if highest < Severity::Medium {
        return None;
    }
    let s = &report.summary;
    let mut counts = format!(
        "{} findings ({} critical, {} high, {} medium, {} info) in {} regions",
        s.findings, s.critical, s.high, s.medium, s.info, s.regions_scanned
    );
    if critical_alerts > 0 {
        counts.push_str(&format!(
            "; {critical_alerts} critical alerts in the last 24 h"
        ));
    }
    let happened = format!(
        "The nightly scan of {} found {counts}. Possible saving: ${:.2} a month.",
        report.report_date, s.monthly_saving_usd
    );
    let mut done = format!(
        "{} pre-approved findings were handled automatically.",
        report.handled.len()
    );
    if s.regions_failed > 0 {
        done.push_str(&format!(
            " {} regions could not be fully scanned (see the report).",
            s.regions_failed
        ));
    }
    // Findings are most important first; the summary names the first few that matter.
    let mut next: Vec<String> = report
        .findings
        .iter()
        .filter(|f| f.event.severity >= Severity::Medium)
        .take(SUMMARY_TOP_FINDINGS)
        .map(|f| format!("[{}] {}: {}", f.event.severity, f.title, f.command))
        .collect();
    next.push(format!(
        "The report: {} in {location}; `escher-provision report show --date {}`",
        files.markdown, report.report_date
    ));
    let account_id = report
        .findings
        .first()
        .map(|f| f.event.account_id.clone())
        .unwrap_or_default();
    Some(Notification {
        // One per report: also PagerDuty's dedup key, so a resent summary is one incident.
        event_id: format!(
            "report-{}-{}",
            report.report_date,
            report.generated_at.format("%H%M%S%3f")
        ),
        severity: highest,
        outcome: Outcome::NotifyOnly,
        title: format!(
            "[{highest}] Escher morning report {}: {} critical, {} high, {} medium",
            report.report_date, s.critical, s.high, s.medium
        ),
        happened,
        done,
        next,
        resource_id: files.json.clone(),
        account_id,
        region: report.regions.join(","),
        timestamp: report.generated_at,
    })
}
