//! `escher-scan`: the nightly scan function (the 02:00 schedule, or by hand). Thin on
//! purpose: `escher_scan::ScanRun` does the work, exactly as `escher-provision scan run`.
//!
//! Settings come from the alert handler's environment (`escher_aws::HandlerConfig`: the
//! state, approvals and audit stores, topics, dry run) plus `ESCHER_SCAN_REGIONS`
//! (comma-separated; default: the function's own region). The account is the one in the
//! invoked function's ARN. The report settings are the shipped `policies/report.yaml`.

use std::sync::Arc;

use escher_aws::{
    build_pipeline, init_function_logs, load_sdk_config, AwsClients, AwsScan, HandlerConfig,
};
use escher_core::pipeline::Pipeline;
use escher_core::scan::ReportSettings;
use escher_scan::{ReportStore, ScanRun};
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
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let function = function.clone();
        async move { function.scan(&event.context.invoked_function_arn).await }
    }))
    .await
}

impl Function {
    async fn scan(&self, function_arn: &str) -> Result<Value, Error> {
        // arn:aws:lambda:<region>:<account>:function:<name>
        let account = function_arn
            .split(':')
            .nth(4)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| {
                format!("cannot read the account from the function ARN {function_arn:?}")
            })?;
        let result = ScanRun {
            checks: AwsScan::new(self.clients.clone(), account).checks(),
            regions: self.regions.clone(),
            settings: ReportSettings::built_in(),
            store: &self.store,
            pipeline: Some(&self.pipeline),
            audit: Some(&self.pipeline.audit),
        }
        .run()
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "scan not stored; Lambda will retry it");
            e
        })?;
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
