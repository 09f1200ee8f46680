//! The report's Markdown and HTML, from the handlebars templates in `templates/reports/`
//! (embedded: the function has no repository beside it). Strict mode, so a template that
//! names a value the view does not have fails instead of printing an empty line.

use escher_core::scan::report::SectionKind;
use escher_core::scan::{CriticalAlerts, Finding, InfoEvents, MorningReport, ReportFormat};
use handlebars::Handlebars;
use serde::Serialize;

const MARKDOWN: &str = include_str!("../../../templates/reports/report.md.hbs");
const HTML: &str = include_str!("../../../templates/reports/report.html.hbs");

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("bundled report template {name} is broken (please report this): {source}")]
    Template {
        name: &'static str,
        #[source]
        source: Box<handlebars::TemplateError>,
    },
    #[error("rendering the {name} report failed: {source}")]
    Render {
        name: &'static str,
        #[source]
        source: Box<handlebars::RenderError>,
    },
}

/// What the templates see: the report, shaped for reading.
#[derive(Debug, Serialize)]
struct View<'a> {
    report_date: String,
    /// `None` when the section is switched off.
    critical: Option<CriticalView<'a>>,
    info: Option<InfoView<'a>>,
    summary: &'a escher_core::scan::report::ReportSummary,
    saving: String,
    sections: Vec<SectionView<'a>>,
    handled: &'a [escher_core::scan::report::HandledFinding],
    changes: Option<ChangesView<'a>>,
    failures: Vec<FailureView>,
    cost: Option<CostView<'a>>,
    /// `None` when nothing recurs (and the memory could be read).
    repeat: Option<RepeatView>,
}

/// The repeat offenders as one line.
#[derive(Debug, Serialize)]
struct RepeatView {
    days: u32,
    offenders: Vec<String>,
    failure: Option<String>,
}

fn repeat_view(section: &escher_core::incidents::RepeatOffenders) -> Option<RepeatView> {
    if section.offenders.is_empty() && section.failure.is_none() {
        return None;
    }
    Some(RepeatView {
        days: escher_core::incidents::REPEAT_WINDOW_DAYS,
        offenders: section.offenders.iter().map(ToString::to_string).collect(),
        failure: section.failure.clone(),
    })
}

/// The cost summary with its amounts written for reading.
#[derive(Debug, Serialize)]
struct CostView<'a> {
    currency: &'a str,
    yesterday: String,
    yesterday_amount: String,
    estimated: bool,
    day_before_amount: String,
    /// `+12.34 (+5.6 %)`.
    change: String,
    month: String,
    month_to_date: String,
    projected: String,
    budget: Option<String>,
    top_services: Vec<ServiceView<'a>>,
    flags: &'a [String],
}

#[derive(Debug, Serialize)]
struct ServiceView<'a> {
    service: &'a str,
    amount: String,
}

fn cost_view(cost: &escher_core::scan::CostSummary) -> CostView<'_> {
    let percent = cost
        .change_percent
        .map(|p| format!(" ({p:+.1} %)"))
        .unwrap_or_default();
    CostView {
        currency: &cost.currency,
        yesterday: cost.yesterday.to_string(),
        yesterday_amount: format!("{:.2}", cost.yesterday_amount),
        estimated: cost.yesterday_estimated,
        day_before_amount: format!("{:.2}", cost.day_before_amount),
        change: format!("{:+.2}{percent}", cost.change_amount),
        month: cost.month_start.format("%B %Y").to_string(),
        month_to_date: format!("{:.2}", cost.month_to_date_amount),
        projected: format!("{:.2}", cost.projected_month_amount),
        budget: cost.monthly_budget.map(|b| format!("{b:.2}")),
        top_services: cost
            .top_services
            .iter()
            .map(|s| ServiceView {
                service: &s.service,
                amount: format!("{:.2}", s.amount),
            })
            .collect(),
        flags: &cost.flags,
    }
}

fn cost_change_line(change: &escher_core::scan::CostChange) -> String {
    let percent = change
        .change_percent
        .map(|p| format!(" ({p:+.1} %)"))
        .unwrap_or_default();
    let month = change
        .month_to_date_growth
        .map(|g| format!("; month to date {g:+.2}"))
        .unwrap_or_default();
    format!(
        "{:.2} {} on {} against {:.2} on {}: {:+.2}{percent}{month}",
        change.amount,
        change.currency,
        change.day,
        change.previous_amount,
        change.previous_day,
        change.change_amount
    )
}

#[derive(Debug, Serialize)]
struct CriticalView<'a> {
    since: String,
    alerts: Vec<AlertView<'a>>,
    failure: Option<String>,
}

#[derive(Debug, Serialize)]
struct AlertView<'a> {
    handled_at: String,
    event_type: &'static str,
    resource: String,
    outcome: &'a str,
    summary: &'a str,
    action: Option<&'static str>,
    verification: Option<&'a str>,
    audit: &'a str,
}

#[derive(Debug, Serialize)]
struct InfoView<'a> {
    /// `None` for the first report (everything queued so far).
    since: Option<String>,
    count: usize,
    events: Vec<InfoEventView<'a>>,
    hidden: usize,
    failure: Option<String>,
}

#[derive(Debug, Serialize)]
struct InfoEventView<'a> {
    queued_at: String,
    title: &'a str,
    done: &'a str,
}

fn time(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn critical_view(section: &CriticalAlerts) -> CriticalView<'_> {
    CriticalView {
        since: time(section.since),
        alerts: section
            .alerts
            .iter()
            .map(|a| AlertView {
                handled_at: time(a.handled_at),
                event_type: a.event_type.as_str(),
                resource: format!(
                    "{} {} ({} {} {})",
                    a.resource_type, a.resource_name, a.cloud_provider, a.account_id, a.region
                ),
                outcome: &a.outcome,
                summary: &a.summary,
                action: a.action.map(|action| action.as_str()),
                verification: a.verification.as_deref(),
                audit: &a.audit,
            })
            .collect(),
        failure: section.failure.as_ref().map(ToString::to_string),
    }
}

fn info_view(section: &InfoEvents, format: ReportFormat) -> InfoView<'_> {
    let limit = format.finding_limit().unwrap_or(usize::MAX);
    let events: Vec<InfoEventView<'_>> = section
        .events
        .iter()
        .take(limit)
        .map(|e| InfoEventView {
            queued_at: time(e.queued_at),
            title: &e.title,
            done: &e.done,
        })
        .collect();
    InfoView {
        since: section.since.map(time),
        count: section.events.len(),
        hidden: section.events.len() - events.len(),
        events,
        failure: section.failure.as_ref().map(ToString::to_string),
    }
}

#[derive(Debug, Serialize)]
struct SectionView<'a> {
    title: &'static str,
    findings: Vec<FindingView<'a>>,
    /// How many of the section's findings the format left out.
    hidden: usize,
}

#[derive(Debug, Serialize)]
struct FindingView<'a> {
    severity: &'static str,
    title: &'a str,
    region: &'a str,
    command: &'a str,
    questions: &'a [String],
}

#[derive(Debug, Serialize)]
struct ChangesView<'a> {
    previous: String,
    new: usize,
    resolved_count: usize,
    resolved: &'a [escher_core::scan::ResolvedFinding],
    unchanged: usize,
    /// `212.40 USD on 2026-11-30 against 180.00 on 2026-11-29: +32.40 (+18.0 %)`.
    cost: Option<String>,
}

#[derive(Debug, Serialize)]
struct FailureView {
    region: String,
    check: String,
    error: String,
}

fn title(section: SectionKind) -> &'static str {
    match section {
        SectionKind::Security => "Security and compliance",
        SectionKind::Optimisation => "Optimisation opportunities",
        SectionKind::Operational => "Operational health",
    }
}

fn finding_view(f: &Finding) -> FindingView<'_> {
    FindingView {
        severity: f.event.severity.as_str(),
        title: &f.title,
        region: &f.event.region,
        command: &f.command,
        questions: &f.questions,
    }
}

fn view(report: &MorningReport) -> View<'_> {
    let sections = report
        .sections
        .iter()
        .map(|&section| {
            let shown = report.shown(section);
            let total = report
                .findings
                .iter()
                .filter(|f| SectionKind::of(f.event.event_type) == section)
                .count();
            SectionView {
                title: title(section),
                hidden: total - shown.len(),
                findings: shown.into_iter().map(finding_view).collect(),
            }
        })
        .collect();
    let changes = report.deltas.previous_report.map(|previous| ChangesView {
        previous: previous.to_string(),
        new: report.deltas.new.len(),
        resolved_count: report.deltas.resolved.len(),
        resolved: &report.deltas.resolved,
        unchanged: report.deltas.unchanged.len(),
        cost: report.deltas.cost.as_ref().map(cost_change_line),
    });
    View {
        report_date: report.report_date.to_string(),
        critical: report.critical_alerts.as_ref().map(critical_view),
        repeat: report.repeat_offenders.as_ref().and_then(repeat_view),
        info: report
            .info_events
            .as_ref()
            .map(|info| info_view(info, report.format)),
        summary: &report.summary,
        saving: format!("{:.2}", report.summary.monthly_saving_usd),
        sections,
        handled: &report.handled,
        changes,
        failures: report
            .failures
            .iter()
            .map(|f| FailureView {
                region: f.region.clone(),
                check: f.check.clone(),
                error: f.error.to_string(),
            })
            .collect(),
        cost: report.cost.as_ref().map(cost_view),
    }
}

fn render(
    report: &MorningReport,
    name: &'static str,
    template: &str,
) -> Result<String, RenderError> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    if name == "markdown" {
        // Markdown is plain text: HTML entities would show as `&amp;` in a terminal.
        hb.register_escape_fn(handlebars::no_escape);
    }
    hb.register_template_string(name, template)
        .map_err(|source| RenderError::Template {
            name,
            source: Box::new(source),
        })?;
    hb.render(name, &view(report))
        .map_err(|source| RenderError::Render {
            name,
            source: Box::new(source),
        })
}

pub fn render_markdown(report: &MorningReport) -> Result<String, RenderError> {
    render(report, "markdown", MARKDOWN)
}

/// HTML with every value escaped (titles and commands come from resource names and tags).
pub fn render_html(report: &MorningReport) -> Result<String, RenderError> {
    render(report, "html", HTML)
}
