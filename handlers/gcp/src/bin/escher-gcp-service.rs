//! `escher-gcp-service`: Escher on Google Cloud, a Cloud Run service. Thin on purpose: the
//! routes and answers are `escher_gcp::service`, the token check `escher_gcp::oidc`, every
//! decision `escher_core::pipeline`, assembled by `escher_runtime::build_pipeline` with
//! Google Cloud's bindings on the service's account (tokens from the metadata server).
//!
//! Cloud Run sets `PORT` and routes to 0.0.0.0 on it; nothing is fetched before listening.
//! Google's keys, the token, the approvals and the incident memory are read beside the
//! listener as it starts ([`escher_gcp::service::Service::warm`]), not by the first request.

use std::sync::Arc;

use anyhow::Context;
use escher_gcp::service::{build_service, router, ServiceSettings};
use escher_gcp::{LoggedNotices, MetadataServer};
use escher_runtime::{init_function_logs, HandlerConfig, RemoteCallMeter};

/// How long one call to a Google API may take.
const GOOGLE_CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(90);

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    init_function_logs();
    let config = HandlerConfig::from_env()?;
    let settings = ServiceSettings::from_lookup(|k| std::env::var(k).ok())?;
    let port: u16 = std::env::var("PORT")
        .context("PORT is not set; Cloud Run sets it (for a local run, export PORT=8080)")?
        .parse()
        .context("PORT is not a port number")?;
    // One HTTP client for every Google call: the APIs, the metadata server, the JWKS. A call
    // that hangs is given up after a while (BigQuery's query answers within 60 s), so the push
    // answers "retry" long before Pub/Sub's acknowledgement deadline instead of hanging.
    let http = reqwest::Client::builder()
        .timeout(GOOGLE_CALL_TIMEOUT)
        .build()
        .context("the HTTP client could not be built (the system's TLS roots)")?;
    let tokens = Arc::new(MetadataServer::new(http.clone()));
    let meter = RemoteCallMeter::new();
    let service = build_service(
        &config,
        &settings,
        http,
        tokens,
        LoggedNotices::stdout(),
        &meter,
    )?;
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port))
        .await
        .with_context(|| format!("cannot listen on 0.0.0.0:{port}"))?;
    tracing::info!(port, project = %settings.project, "listening for Pub/Sub pushes and the nightly scan");
    let service = Arc::new(service);
    tokio::spawn({
        let service = service.clone();
        async move { service.warm().await }
    });
    axum::serve(listener, router(service))
        .await
        .context("the service's server stopped")
}
