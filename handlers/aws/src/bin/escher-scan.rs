//! `escher-scan`: the nightly scan function on Lambda (the 02:00 schedule, or by hand). Thin
//! on purpose: `escher_scan::invocation` does the work (as `escher-provision scan run` does
//! without a deadline); this binary reads the Lambda event, builds the AWS checks and hands a
//! long scan on through Lambda's asynchronous Invoke.
//!
//! Settings come from the alert handler's environment (`escher_runtime::HandlerConfig`: the
//! state, approvals and audit stores, topics, dry run) plus `ESCHER_SCAN_REGIONS`
//! (comma-separated; default: the function's own region). The account is the one in the
//! invoked function's ARN. The report settings are the shipped `policies/report.yaml`.
//!
//! A long scan is split across invocations: each runs pending (check, region) pairs while
//! its deadline leaves `scan.safety_margin_secs`, then either stores the report or invokes
//! this same function asynchronously with `{"escher_scan_run": <run>}`, which continues the
//! run (the schedule's event, or any other payload, starts a new one).

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use chrono::DateTime;
use escher_aws::{build_pipeline, load_sdk_config, AwsClients, AwsScan};
use escher_core::pipeline::notify::CloudCallError;
use escher_core::pipeline::Pipeline;
use escher_core::scan::ReportSettings;
use escher_runtime::{init_function_logs, HandlerConfig};
use escher_scan::invocation::{invoke, HandOff, Invocation};
use escher_scan::{ReportStore, ScanRun};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

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

/// Hands the rest of a run to a new asynchronous invocation of this same function.
struct LambdaHandOff<'a> {
    lambda: &'a aws_sdk_lambda::Client,
    function_arn: &'a str,
}

#[async_trait]
impl HandOff for LambdaHandOff<'_> {
    async fn hand_on(&self, payload: &Value) -> Result<(), CloudCallError> {
        self.lambda
            .invoke()
            .function_name(self.function_arn)
            .invocation_type(InvocationType::Event)
            .payload(Blob::new(payload.to_string()))
            .send()
            .await
            .map(drop)
            .map_err(|e| CloudCallError {
                operation: "Lambda Invoke (asynchronous)".into(),
                target: self.function_arn.to_string(),
                message: aws_sdk_lambda::error::DisplayErrorContext(e).to_string(),
                remedy:
                    "the function's role needs lambda:InvokeFunction on itself (extend grants it)"
                        .into(),
            })
    }
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
        let scan = ScanRun {
            checks: AwsScan::new(self.clients.clone(), account).checks(),
            regions: self.regions.clone(),
            settings: ReportSettings::built_in(),
            store: &self.store,
            pipeline: Some(&self.pipeline),
            audit: Some(&self.pipeline.audit),
        };
        let invocation = Invocation {
            payload: &event.payload,
            request_id: &event.context.request_id,
            deadline: DateTime::from_timestamp_millis(event.context.deadline as i64),
        };
        let handoff = LambdaHandOff {
            lambda: &self.lambda,
            function_arn,
        };
        invoke(&scan, invocation, &handoff).await.map_err(|e| {
            tracing::error!(error = %e, "scan not finished; Lambda will retry this invocation");
            e.into()
        })
    }
}
