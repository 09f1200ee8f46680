//! `escher-azure-functions`: the Azure Functions custom handler. Thin on purpose: the host
//! protocol is `escher_azure::functions`, every decision is `escher_core::pipeline`,
//! assembled by `escher_runtime::build_pipeline` with Azure's bindings on the Function's
//! managed identity.
//!
//! The host starts it with `FUNCTIONS_CUSTOMHANDLER_PORT` and waits at most 60 s for it to
//! listen: nothing is fetched before listening. The token, the approvals and the incident
//! memory are read beside the listener as it starts (`Handler::warm`), not by the first event.

use std::sync::Arc;

use anyhow::Context;
use escher_azure::arm::PUBLIC_ENDPOINT;
use escher_azure::functions::Handler;
use escher_azure::nightly::{self, Nightly};
use escher_azure::{azure_bindings, functions, managed_identity_on, ArmClient, AzureScan};
use escher_runtime::{build_pipeline, init_function_logs, HandlerConfig, RemoteCallMeter};
use escher_scan::ReportStore;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    init_function_logs();
    let config = HandlerConfig::from_env()?;
    let port: u16 = std::env::var("FUNCTIONS_CUSTOMHANDLER_PORT")
        .context("FUNCTIONS_CUSTOMHANDLER_PORT is not set; the Functions host sets it when it starts the handler")?
        .parse()
        .context("FUNCTIONS_CUSTOMHANDLER_PORT is not a port number")?;
    // One HTTP client for every Azure call, the identity's token requests included.
    let http = reqwest::Client::new();
    let identity = managed_identity_on(http.clone()).context(
        "no managed identity: turn on the Function App's system-assigned identity (escher-provision extend does)",
    )?;
    // Tests and sovereign clouds point Resource Manager elsewhere.
    let endpoint =
        std::env::var("ESCHER_ARM_ENDPOINT").unwrap_or_else(|_| PUBLIC_ENDPOINT.to_string());
    let meter = RemoteCallMeter::new();
    let arm = ArmClient::on(http, endpoint, identity.clone());
    let warm_arm = arm.clone();
    let bindings = azure_bindings(
        arm.clone(),
        identity,
        std::env::var("APPLICATIONINSIGHTS_CONNECTION_STRING")
            .ok()
            .as_deref(),
        Some(meter.clone()),
    );
    let pipeline = build_pipeline(&config, bindings, &meter)?;
    let nightly = match std::env::var("ESCHER_AZURE_SUBSCRIPTION") {
        Ok(subscription) if !subscription.is_empty() => {
            let (zone, scan_time) = nightly::schedule_from(|k| std::env::var(k).ok())?;
            Some(Nightly {
                scan: AzureScan::new(arm, subscription, Some(meter.clone())),
                // The reports live in the state store the pipeline already opened.
                store: ReportStore::new(pipeline.state.clone(), config.state_uri.clone()),
                zone,
                scan_time,
                // The host's functionTimeout (host.json) is 10 minutes.
                budget: chrono::Duration::minutes(9),
            })
        }
        _ => None,
    };
    let handler = Arc::new(Handler { pipeline, nightly });
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{port}"))?;
    tracing::info!(port, "listening for the Functions host");
    tokio::spawn({
        let handler = handler.clone();
        async move { handler.warm(&warm_arm).await }
    });
    axum::serve(listener, functions::router(handler))
        .await
        .context("the handler's server stopped")
}
