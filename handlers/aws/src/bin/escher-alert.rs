//! `escher-alert`: the AWS alert function. Thin on purpose: every decision is in
//! `escher_core::pipeline`, assembled by `escher_aws::build_pipeline` exactly as
//! `escher-provision events handle` does on a laptop.
//!
//! A transient failure (storage or approvals unreachable, throttling) returns an error so
//! Lambda retries the event and the dead-letter queue keeps what still fails; a payload that
//! is not an alert is audited by the pipeline and acknowledged, since redelivery cannot help.

use std::sync::Arc;

use escher_aws::{build_pipeline, init_function_logs, load_sdk_config, HandlerConfig};
use escher_core::pipeline::{Handled, Pipeline};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

// Same allocator as every Escher binary (see the workspace Cargo.toml).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_function_logs();
    let config = HandlerConfig::from_env()?;
    let sdk = load_sdk_config(None, None).await;
    // Built once per cold start; every invocation shares the clients and the approvals cache.
    let pipeline = Arc::new(build_pipeline(&config, &sdk)?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let pipeline = pipeline.clone();
        async move { handle(&pipeline, event.payload).await }
    }))
    .await
}

async fn handle(pipeline: &Pipeline, payload: Value) -> Result<Value, Error> {
    let bytes = serde_json::to_vec(&payload)?;
    let handled = pipeline.handle(&bytes).await.map_err(|e| {
        tracing::error!(error = %e, "event not handled; Lambda will retry it");
        e
    })?;
    Ok(summary(&handled))
}

/// What the invocation returns: one line per event, no event content.
fn summary(handled: &Handled) -> Value {
    let events: Vec<Value> = handled
        .results
        .iter()
        .map(|r| {
            tracing::info!(event_id = r.event_id.as_deref().unwrap_or("-"), outcome = %r.outcome, audit = %r.audit_path, "{}", r.summary);
            json!({
                "event_id": r.event_id,
                "outcome": r.outcome,
                "summary": r.summary,
                "audit": r.audit_path,
            })
        })
        .collect();
    match &handled.handshake {
        Some(handshake) => json!({ "events": events, "handshake": handshake }),
        None => json!({ "events": events }),
    }
}
