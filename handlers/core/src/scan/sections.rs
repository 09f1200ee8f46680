//! The report sections that come from what the handlers recorded during the day rather than
//! from the scan: the CRITICAL alerts of the last 24 hours (the audit store) and the INFO
//! events queued for the report since the previous one (`report-queue/` in the state store).
//!
//! Neither deletes anything: the audit trail is immutable, and the queue keeps every notice;
//! the previous report's [`InfoEvents::until`] (else its `generated_at`) is the watermark the next report reads from.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use futures::TryStreamExt;
use opendal::{ErrorKind, Operator};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ScanError;
use crate::approvals::Action;
use crate::pipeline::audit::{AuditError, AuditLog, Outcome};
use crate::pipeline::notify::{report_queue_time, Notification, REPORT_QUEUE};
use crate::{CloudProvider, EventSource, EventType, Severity};

/// How far back the critical alerts go.
pub const CRITICAL_WINDOW_HOURS: i64 = 24;

/// One CRITICAL alert the alert handler handled, and what it did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CriticalAlert {
    pub event_id: String,
    pub event_type: EventType,
    pub cloud_provider: CloudProvider,
    pub account_id: String,
    pub region: String,
    pub resource_type: String,
    pub resource_name: String,
    pub handled_at: DateTime<Utc>,
    /// The audit outcome (`remediated`, `approval_required`, `failed`, …).
    pub outcome: String,
    /// What was done, or why nothing was.
    pub summary: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// `passed`, `FAILED: <checks>`, or `None` when nothing was changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<String>,
    /// The audit record's path in the audit store.
    pub audit: String,
}

/// The CRITICAL alerts handled from `since` to `until`, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CriticalAlerts {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub alerts: Vec<CriticalAlert>,
    /// Set when (part of) the audit store could not be read: the list may be incomplete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<ScanError>,
}

/// Reads the audit records of the day folders covering the 24 hours before `until` and
/// keeps the CRITICAL alerts. Findings of the scan itself are left out (they are in the
/// report's findings and "fixed automatically"), and so are `duplicate` records (another
/// delivery of an alert already listed, or listed in an earlier report).
pub async fn critical_alerts(audit: &AuditLog, until: DateTime<Utc>) -> CriticalAlerts {
    let since = until - Duration::hours(CRITICAL_WINDOW_HOURS);
    let mut section = CriticalAlerts {
        since,
        until,
        alerts: Vec::new(),
        failure: None,
    };
    let mut day = since.date_naive();
    while day <= until.date_naive() {
        match audit.records_between(day, since, until).await {
            Ok(records) => {
                for record in records {
                    let Some(event) = &record.event else { continue };
                    let keep = event.severity == Severity::Critical
                        && event.source != EventSource::EscherScan
                        && record.outcome != Outcome::Duplicate;
                    if !keep {
                        continue;
                    }
                    let verification = record
                        .remediation
                        .as_ref()
                        .and_then(|r| r.verification.as_ref())
                        .map(|v| {
                            if v.passed {
                                "passed".to_string()
                            } else {
                                format!("FAILED: {}", v.failed_checks())
                            }
                        });
                    section.alerts.push(CriticalAlert {
                        event_id: event.event_id.clone(),
                        event_type: event.event_type,
                        cloud_provider: event.cloud_provider,
                        account_id: event.account_id.clone(),
                        region: event.region.clone(),
                        resource_type: event.resource.kind.clone(),
                        resource_name: event.resource.name.clone(),
                        handled_at: record.handled_at,
                        outcome: record.outcome.as_str().to_string(),
                        summary: record.summary.clone(),
                        action: record.action,
                        verification,
                        audit: record.path(),
                    });
                }
            }
            Err(e) => {
                let reason = match e {
                    AuditError::Storage { source, .. } => source.to_string(),
                    other => other.to_string(),
                };
                tracing::warn!(day = %day, error = %reason, "audit store unreadable: the report's critical alerts are incomplete");
                section.failure = Some(ScanError {
                    operation: "read audit records".into(),
                    resource: format!("{} audit/{}/", audit.location(), day.format("%Y/%m/%d")),
                    message: format!("{reason}; the critical alerts listed may be incomplete: check the audit store URI and that the scan may read it"),
                    transient: true,
                });
            }
        }
        let Some(next) = day.succ_opt() else { break };
        day = next;
    }
    section
        .alerts
        .sort_by(|a, b| (b.handled_at, &b.event_id).cmp(&(a.handled_at, &a.event_id)));
    section
}

/// One INFO notice that waited in the report queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueuedEvent {
    pub event_id: String,
    pub queued_at: DateTime<Utc>,
    /// The event's own time.
    pub timestamp: DateTime<Utc>,
    pub title: String,
    pub happened: String,
    pub done: String,
    pub resource_id: String,
    pub region: String,
    /// The notice's path in the state store.
    pub path: String,
}

/// The INFO events queued after `since` (the previous report's watermark) up to `until`,
/// oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InfoEvents {
    /// `None` for the first report: everything queued so far.
    pub since: Option<DateTime<Utc>>,
    /// The next report reads from here.
    pub until: DateTime<Utc>,
    pub events: Vec<QueuedEvent>,
    /// Set when the queue could not be read: the list may be incomplete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<ScanError>,
}

/// Reads the notices queued in `(since, until]`. With a watermark only the day folders from
/// its day on are listed; without one (the first report), the whole queue. Listing pages
/// through the store (opendal's lister), so a long queue is never one response.
pub async fn info_events(
    state: &Operator,
    location: &str,
    since: Option<DateTime<Utc>>,
    until: DateTime<Utc>,
) -> InfoEvents {
    let mut section = InfoEvents {
        since,
        until,
        events: Vec::new(),
        failure: None,
    };
    let folders: Vec<(String, bool)> = match since {
        Some(since) => {
            let mut folders = Vec::new();
            let mut day: NaiveDate = since.date_naive();
            while day <= until.date_naive() {
                folders.push((format!("{REPORT_QUEUE}{}/", day.format("%Y-%m-%d")), false));
                let Some(next) = day.succ_opt() else { break };
                day = next;
            }
            folders
        }
        None => vec![(REPORT_QUEUE.to_string(), true)],
    };
    let fail = |operation: &str, path: &str, e: opendal::Error| {
        ScanError {
        operation: operation.to_string(),
        resource: format!("{location} {path}"),
        message: format!("{e}; the INFO events listed may be incomplete: check the state store URI and that the scan may read it"),
        transient: true,
    }
    };
    for (folder, recursive) in folders {
        let mut paths = Vec::new();
        let listed = async {
            let mut lister = state.lister_with(&folder).recursive(recursive).await?;
            while let Some(entry) = lister.try_next().await? {
                let path = entry.path();
                if path.ends_with('/') {
                    continue;
                }
                // The name says when it was queued: only what is past the watermark is read.
                match report_queue_time(path) {
                    Some(at) if since.is_some_and(|s| at <= s) || at > until => {}
                    Some(at) => paths.push((path.to_string(), Some(at))),
                    // Not written by `report_queue_path` (an older layout): read, then judged
                    // by the event's own time.
                    None => paths.push((path.to_string(), None)),
                }
            }
            Ok::<(), opendal::Error>(())
        }
        .await;
        match listed {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => {
                section.failure = Some(fail("list", &folder, e));
                continue;
            }
        }
        for (path, queued_at) in paths {
            let bytes = match crate::store::read_whole(state, &path).await {
                Ok(bytes) => bytes.to_vec(),
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => {
                    section.failure = Some(fail("read", &path, e));
                    continue;
                }
            };
            let Ok(notice) = serde_json::from_slice::<Notification>(&bytes) else {
                tracing::warn!(path = %path, "not a queued notice; left out of the report");
                continue;
            };
            let queued_at = queued_at.unwrap_or(notice.timestamp);
            if since.is_some_and(|s| queued_at <= s) || queued_at > until {
                continue;
            }
            section.events.push(QueuedEvent {
                event_id: notice.event_id,
                queued_at,
                timestamp: notice.timestamp,
                title: notice.title,
                happened: notice.happened,
                done: notice.done,
                resource_id: notice.resource_id,
                region: notice.region,
                path,
            });
        }
    }
    section
        .events
        .sort_by(|a, b| (a.queued_at, &a.event_id).cmp(&(b.queued_at, &b.event_id)));
    section
}
