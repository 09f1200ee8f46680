//! `escher-scan`: the nightly scan function (the 02:00 schedule, or by hand). Thin on
//! purpose: `escher_scan::ScanRun` does the work, exactly as `escher-provision scan run`.
//!
//! Settings come from the alert handler's environment (`escher_aws::HandlerConfig`: the
//! state, approvals and audit stores, topics, dry run) plus `ESCHER_SCAN_REGIONS`
//! (comma-separated; default: the function's own region). The account is the one in the
//! invoked function's ARN. The report settings are the shipped `policies/report.yaml`.
//!
//! A long scan is split across invocations: each runs pending (check, region) pairs while
//! its deadline leaves `scan.safety_margin_secs`, then either stores the report or invokes
//! this same function asynchronously with `{"escher_scan_run": <run>}`, which continues the
//! run (the schedule's event, or any other payload, starts a new one).

use std::sync::Arc;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use chrono::DateTime;
use escher_aws::{
    build_pipeline, init_function_logs, load_sdk_config, AwsClients, AwsScan, HandlerConfig,
};
use escher_core::pipeline::Pipeline;
use escher_core::scan::ReportSettings;
use escher_scan::{Progress, ReportStore, RunRef, ScanRun};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

// Same allocator as every Escher binary (see the workspace Cargo.toml).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Function {
    clients: AwsClients,
    pipeline: Pipeline,
    store: ReportStore,
    regions: Vec<String>,
    lambda: aws_sdk_lambda::Client,
}

/// The payload key that names the run an invocation continues.
const RUN_KEY: &str = "escher_scan_run";

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_function_logs();
    let config = HandlerConfig::from_env()?;
    let sdk = load_sdk_config(None, None).await;
    let regions = match std::env::var("ESCHER_SCAN_REGIONS") {
        Ok(list) if !list.trim().is_empty() => list
            .split(',')
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty())
            .collect(),
        _ => sdk
            .region()
            .map(|r| vec![r.to_string()])
            .unwrap_or_default(),
    };
    if regions.is_empty() {
        return Err("no region to scan: set ESCHER_SCAN_REGIONS or AWS_REGION".into());
    }
    // Built once per cold start; every invocation shares the clients and the approvals cache.
    let function = Arc::new(Function {
        clients: AwsClients::new(&sdk),
        pipeline: build_pipeline(&config, &sdk)?,
        store: ReportStore::new(
            escher_core::store::open(&config.state_uri)?,
            &config.state_uri,
        ),
        regions,
        lambda: aws_sdk_lambda::Client::new(&sdk),
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let function = function.clone();
        async move { function.scan(event).await }
    }))
    .await
}

impl Function {
    async fn scan(&self, event: LambdaEvent<Value>) -> Result<Value, Error> {
        let function_arn = &event.context.invoked_function_arn;
        // arn:aws:lambda:<region>:<account>:function:<name>
        let account = function_arn
            .split(':')
            .nth(4)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| {
                format!("cannot read the account from the function ARN {function_arn:?}")
            })?;
        let run: Option<RunRef> = match event.payload.get(RUN_KEY) {
            Some(run) => Some(serde_json::from_value(run.clone()).map_err(|e| {
                format!("the payload's {RUN_KEY} is not a scan run this version reads: {e}")
            })?),
            None => None,
        };
        let deadline = DateTime::from_timestamp_millis(event.context.deadline as i64);
        let scan = ScanRun {
            checks: AwsScan::new(self.clients.clone(), account).checks(),
            regions: self.regions.clone(),
            settings: ReportSettings::built_in(),
            store: &self.store,
            pipeline: Some(&self.pipeline),
            audit: Some(&self.pipeline.audit),
        };
        let progress = match run {
            Some(run) => scan.step(Some(run), deadline).await,
            None => {
                // The scheduled event's id (the same in Lambda's retries of this invocation),
                // else the request id: a retry continues the run the failed try started.
                let (trigger, date) = trigger_of(&event.payload, &event.context.request_id);
                scan.step_for_trigger(&trigger, date, deadline).await
            }
        }
        .map_err(|e| {
            tracing::error!(error = %e, "scan not stored; Lambda will retry it");
            e
        })?;
        let result = match progress {
            Progress::Finished(result) => result,
            Progress::HandOn(next) => {
                let payload = json!({ RUN_KEY: next });
                self.lambda
                    .invoke()
                    .function_name(function_arn)
                    .invocation_type(InvocationType::Event)
                    .payload(Blob::new(payload.to_string()))
                    .send()
                    .await
                    .map_err(|e| {
                        let e = aws_sdk_lambda::error::DisplayErrorContext(e);
                        tracing::error!(error = %e, run = %next.run, "cannot hand the scan on; Lambda will retry this invocation");
                        format!("cannot hand scan run {} on to a new invocation of {function_arn} (lambda:InvokeFunction): {e}", next.run)
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
}

/// The id and day of the event that started this run: EventBridge's `id` and `time`, or
/// the invocation's request id and today for any other payload.
fn trigger_of(payload: &Value, request_id: &str) -> (String, chrono::NaiveDate) {
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
        .map_or_else(|| chrono::Utc::now().date_naive(), |t| t.date_naive());
    (id, date)
}
