//! `escher-alert`: the AWS alert function. Thin on purpose: every decision is in
//! `escher_core::pipeline`, assembled by `escher_aws::build_pipeline` exactly as
//! `escher-provision events handle` does on a laptop.
//!
//! A transient failure (storage or approvals unreachable, throttling) returns an error so
//! Lambda retries the event and the dead-letter queue keeps what still fails; a payload that
//! is not an alert is audited by the pipeline and acknowledged, since redelivery cannot help.

use std::sync::Arc;
use std::time::Duration;

use escher_aws::{build_metered_pipeline, load_sdk_config};
use escher_core::pipeline::{Handled, Pipeline};
use escher_runtime::{init_function_logs, HandlerConfig, RemoteCallMeter, RemoteCalls, ThreadCpu};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

// Same allocator as every Escher binary (see the workspace Cargo.toml).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// One thread: Lambda hands a process one invocation at a time, so worker threads would only
// cost start-up time; and on one thread the remote-call meter's CPU figures are complete.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    init_function_logs();
    let config = HandlerConfig::from_env()?;
    let sdk = load_sdk_config(None, None).await;
    let meter = RemoteCallMeter::new();
    // Built once per cold start; every invocation shares the clients and the approvals cache.
    let pipeline = Arc::new(build_metered_pipeline(&config, &sdk, &meter)?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let pipeline = pipeline.clone();
        let meter = meter.clone();
        async move { handle(&pipeline, &meter, event.payload).await }
    }))
    .await
}

async fn handle(
    pipeline: &Pipeline,
    meter: &RemoteCallMeter,
    payload: Value,
) -> Result<Value, Error> {
    let (cpu, calls) = (ThreadCpu::now(), meter.snapshot());
    let bytes = serde_json::to_vec(&payload)?;
    let handled = pipeline.handle(&bytes).await;
    let remote = Remote {
        calls: meter.snapshot().since(&calls),
        cpu: ThreadCpu::now().since(&cpu),
    };
    let handled = handled.map_err(|e| {
        tracing::error!(error = %e, remote_calls = remote.calls.calls(), remote_wait_ms = remote.wait_ms(), "event not handled; Lambda will retry it");
        e
    })?;
    Ok(summary(&handled, &remote))
}

/// The invocation's remote calls and CPU time.
struct Remote {
    calls: RemoteCalls,
    cpu: ThreadCpu,
}

impl Remote {
    fn wait_ms(&self) -> f64 {
        self.calls.wait.as_secs_f64() * 1e3
    }

    /// The handler's own CPU: the thread's, less what ran inside remote calls.
    fn own_cpu(&self) -> Duration {
        self.cpu.total.saturating_sub(self.calls.cpu_in_calls)
    }

    fn json(&self) -> Value {
        let ms = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
        json!({
            "calls": self.calls.calls(),
            "sdk_calls": self.calls.sdk_calls,
            "store_requests": self.calls.store_requests,
            "wait_ms": ms(self.calls.wait),
            "cpu_ms": ms(self.cpu.total),
            "cpu_in_calls_ms": ms(self.calls.cpu_in_calls),
            "cpu_in_transmit_ms": ms(self.calls.cpu_in_transmit),
            "own_cpu_ms": ms(self.own_cpu()),
        })
    }
}

/// What the invocation returns: one line per event, no event content, and the
/// invocation's remote calls (how many, the wait on them, CPU inside and outside them).
fn summary(handled: &Handled, remote: &Remote) -> Value {
    tracing::info!(
        remote_calls = remote.calls.calls(),
        remote_wait_ms = remote.wait_ms(),
        own_cpu_ms = remote.own_cpu().as_secs_f64() * 1e3,
        "invocation handled"
    );
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
        Some(handshake) => {
            json!({ "events": events, "handshake": handshake, "remote": remote.json() })
        }
        None => json!({ "events": events, "remote": remote.json() }),
    }
}
