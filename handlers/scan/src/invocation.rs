//! One invocation of the scan function, the same on every cloud: read which run the payload
//! continues (or which scheduled event starts one), take this invocation's share of the run,
//! and either answer with the stored report or hand the rest on to a new invocation through
//! the cloud's [`HandOff`] (Lambda's asynchronous Invoke on AWS; the other clouds bring
//! their own). The cloud's binary only parses its trigger and builds the checks.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{json, Value};

use escher_core::pipeline::notify::CloudCallError;

use crate::{Progress, RunRef, ScanRun, ScanRunError};

/// The payload key that names the run an invocation continues:
/// `{"escher_scan_run": {"date": …, "run": …, "invocation": …}}`.
pub const RUN_KEY: &str = "escher_scan_run";

/// How the cloud starts a new invocation of the scan function with a payload.
#[async_trait]
pub trait HandOff: Send + Sync {
    /// Starts (without waiting for it) an invocation whose payload is `payload`; returns
    /// once the cloud has accepted it. The error says what failed and what to check.
    async fn hand_on(&self, payload: &Value) -> Result<(), CloudCallError>;
}

#[derive(Debug, thiserror::Error)]
pub enum InvocationError {
    #[error("the payload's {RUN_KEY} is not a scan run this version reads: {0}")]
    BadRun(serde_json::Error),
    #[error(transparent)]
    Scan(#[from] ScanRunError),
    #[error("cannot hand scan run {run} on to a new invocation: {cause}")]
    HandOff { run: String, cause: CloudCallError },
}

/// What started this invocation, as the cloud delivered it.
#[derive(Debug, Clone)]
pub struct Invocation<'a> {
    pub payload: &'a Value,
    /// The cloud's id of this invocation, used when the payload carries no event id.
    pub request_id: &'a str,
    /// When the cloud stops this invocation; `None` runs to the end.
    pub deadline: Option<DateTime<Utc>>,
}

/// Runs one invocation's share of `scan` and answers: the stored report's paths and
/// summary, or `{"handed_on": <run>}` once `handoff` accepted the next invocation.
pub async fn invoke(
    scan: &ScanRun<'_>,
    invocation: Invocation<'_>,
    handoff: &dyn HandOff,
) -> Result<Value, InvocationError> {
    let progress = match start_of(invocation.payload, invocation.request_id)? {
        Start::Continue(run) => scan.step(Some(run), invocation.deadline).await?,
        Start::Trigger { id, date } => {
            scan.step_for_trigger(&id, date, invocation.deadline)
                .await?
        }
    };
    let result = match progress {
        Progress::Finished(result) => result,
        Progress::HandOn(next) => {
            handoff
                .hand_on(&json!({ RUN_KEY: next }))
                .await
                .map_err(|cause| InvocationError::HandOff {
                    run: next.run.clone(),
                    cause,
                })?;
            tracing::info!(run = %next.run, invocation = next.invocation, "scan handed on");
            return Ok(json!({ "handed_on": next }));
        }
    };
    let summary = &result.report.summary;
    tracing::info!(findings = summary.findings, critical = summary.critical, high = summary.high, failed_regions = summary.regions_failed, report = %result.files.json, "scan done");
    Ok(json!({
        "report": result.files,
        "summary": summary,
        "handled": result.report.handled.len(),
        "failures": result.report.failures.len(),
        "notified": result.notified,
    }))
}

/// What an invocation's payload asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Start {
    /// `{"escher_scan_run": …}`: the next step of a run an earlier invocation handed on.
    Continue(RunRef),
    /// Any other payload: the run of this trigger, started or (on a retry) continued.
    Trigger { id: String, date: NaiveDate },
}

/// Reads an invocation's payload (pure, so it can be fuzzed): a hand-off names its run,
/// which must be one this version reads; anything else is a trigger. For a trigger, the
/// scheduled event's id (the same in the platform's retries of this invocation), else the
/// request id: a retry continues the run the failed try started.
pub fn start_of(payload: &Value, request_id: &str) -> Result<Start, InvocationError> {
    match payload.get(RUN_KEY) {
        Some(run) => serde_json::from_value(run.clone())
            .map(Start::Continue)
            .map_err(InvocationError::BadRun),
        None => {
            let (id, date) = trigger_of(payload, request_id);
            Ok(Start::Trigger { id, date })
        }
    }
}

/// The id and day of the event that started this run: a scheduled event's `id` and `time`
/// (EventBridge's fields), or the invocation's request id and today for any other payload.
pub fn trigger_of(payload: &Value, request_id: &str) -> (String, NaiveDate) {
    let id = payload
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .unwrap_or(request_id)
        .to_string();
    let date = payload
        .get("time")
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map_or_else(|| Utc::now().date_naive(), |t| t.date_naive());
    (id, date)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-off payload whose run name climbs out of `scans/` is refused, not scanned into
    /// another folder of the state store; the names runs really have are read.
    #[test]
    fn a_handed_on_run_must_have_a_run_name() {
        for run in ["../../audit", "a/b", "", "ev ent", &"x".repeat(129)] {
            let payload = json!({RUN_KEY: {"date": "2026-11-30", "run": run, "invocation": 2}});
            let err = start_of(&payload, "req-9").unwrap_err();
            assert!(
                matches!(err, InvocationError::BadRun(_)) && err.to_string().contains("run name"),
                "{run}: {err}"
            );
        }
        for run in ["event-ev-1", "013000-1a2b3c4d", "event-a_b"] {
            let payload = json!({RUN_KEY: {"date": "2026-11-30", "run": run, "invocation": 2}});
            assert!(
                matches!(start_of(&payload, "req-9"), Ok(Start::Continue(r)) if r.run == run),
                "{run}"
            );
        }
        let trigger = RunRef::for_trigger(
            "../ev 1",
            NaiveDate::from_ymd_opt(2026, 11, 30).expect("date"),
        );
        let handed_on = json!({RUN_KEY: trigger.clone()});
        assert_eq!(
            start_of(&handed_on, "req-9").ok(),
            Some(Start::Continue(trigger))
        );
    }

    #[test]
    fn the_trigger_is_the_scheduled_event_else_the_request() {
        let scheduled = json!({"id": "ev-1", "time": "2026-11-30T01:00:00Z"});
        assert_eq!(
            trigger_of(&scheduled, "req-9"),
            (
                "ev-1".to_string(),
                NaiveDate::from_ymd_opt(2026, 11, 30).expect("date")
            )
        );
        let (id, date) = trigger_of(&json!({"id": ""}), "req-9");
        assert_eq!(id, "req-9");
        assert_eq!(date, Utc::now().date_naive());
    }
}
