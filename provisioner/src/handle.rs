//! `escher-provision events handle`: runs one alert through a cloud's handler pipeline on
//! the laptop, built exactly as the function builds it (`escher_aws::build_pipeline` for
//! AWS, `escher_runtime::build_pipeline` with `escher_azure::azure_bindings` for Azure and
//! `escher_gcp::gcp_bindings` for Google Cloud), and tells what happened step by step.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use escher_aws::{build_pipeline, load_sdk_config};
use escher_core::pipeline::{Handled, Pipeline, PipelineError};
use escher_runtime::{HandlerConfig, RemoteCallMeter};

use crate::cloud::Cloud;

use crate::output::{default_store, read_input, run_async, write_json};

/// The event was handled (remediated, not approved, notify only, duplicate, …).
const EXIT_HANDLED: u8 = 0;
/// A failure the function would retry (storage or approvals unreachable, throttling).
const EXIT_RETRY: u8 = 1;
/// Bad input: not a recognised alert, unreadable file, invalid settings.
const EXIT_BAD_INPUT: u8 = 2;

#[derive(Debug, Args)]
pub struct HandleArgs {
    /// The alert payload (EventBridge, SNS, CloudWatch alarm, …; on Azure an Event Grid
    /// event or an action group's common-schema alert); `-` reads standard input.
    #[arg(value_name = "FILE|-")]
    file: PathBuf,

    /// Whose fixes and credentials: `aws` (the AWS configuration chain), `azure` (a
    /// service principal from AZURE_TENANT_ID / AZURE_CLIENT_ID / AZURE_CLIENT_SECRET, else
    /// the managed identity, else `az login`) or `gcp` (GOOGLE_APPLICATION_CREDENTIALS, else
    /// gcloud's application default login, else `gcloud auth print-access-token`).
    #[arg(long, value_enum, default_value = "aws")]
    cloud: Cloud,

    /// Send the cloud's API calls to this origin instead of the public one (a sovereign
    /// cloud, or a stand-in). Azure: Resource Manager (also ESCHER_ARM_ENDPOINT); Google
    /// Cloud: every Google API (also ESCHER_GCP_API_ENDPOINT).
    #[arg(long, value_name = "URL")]
    endpoint_url: Option<String>,

    /// Google Cloud: the project the alert's fixes act in. Default: `project` under [gcp]
    /// in escher.toml, else GOOGLE_CLOUD_PROJECT, the credentials file's, gcloud's.
    #[arg(long, value_name = "PROJECT_ID")]
    project: Option<String>,

    /// Run everything but the change, and say exactly what would have been done (also:
    /// ESCHER_DRY_RUN=true).
    #[arg(long)]
    dry_run: bool,

    /// The state store (markers, counters, inbox). Default: fs://<Escher folder>/state (see --escher-dir).
    #[arg(long, env = "ESCHER_STATE_URI", value_name = "URI")]
    state: Option<String>,

    /// The audit store. Default: fs://<Escher folder>/audit (see --escher-dir).
    #[arg(long, env = "ESCHER_AUDIT_URI", value_name = "URI")]
    audit: Option<String>,

    /// The approvals store. Default: fs://<Escher folder>/approvals (see --escher-dir).
    #[arg(long, env = "ESCHER_APPROVALS_URI", value_name = "URI")]
    approvals: Option<String>,

    /// Print the results (with their audit records) as JSON instead of the story.
    #[arg(long)]
    json: bool,
}

pub fn run(args: HandleArgs) -> ExitCode {
    run_async(async { execute(args).await.map(ExitCode::from) })
}

async fn execute(args: HandleArgs) -> anyhow::Result<u8> {
    let (label, payload) = read_input(Some(&args.file))?;
    let config = handler_config(args.state, args.audit, args.approvals, args.dry_run)?;
    let pipeline = match args.cloud {
        Cloud::Aws => build_pipeline(&config, &load_sdk_config(None, None).await)?,
        Cloud::Azure => azure_pipeline(
            &config,
            args.endpoint_url
                .or_else(|| std::env::var("ESCHER_ARM_ENDPOINT").ok())
                .as_deref(),
        )?,
        Cloud::Gcp => {
            gcp_pipeline(
                &config,
                args.endpoint_url
                    .or_else(|| std::env::var("ESCHER_GCP_API_ENDPOINT").ok())
                    .as_deref(),
                args.project,
            )
            .await?
        }
    };
    let mut out = std::io::stdout().lock();
    match pipeline.handle(&payload).await {
        Ok(handled) => {
            if args.json {
                write_json(&mut out, &handled, false)?;
            } else {
                tell(&mut out, &label, &handled)?;
            }
            if handled.unrecognized() {
                Ok(EXIT_BAD_INPUT)
            } else {
                Ok(EXIT_HANDLED)
            }
        }
        Err(e @ PipelineError::Retry { .. }) => {
            eprintln!("error: {e} (the function would answer with an error, so the platform delivers the alert again)");
            Ok(EXIT_RETRY)
        }
    }
}

/// The Azure function's pipeline, with this machine's Azure credential.
fn azure_pipeline(config: &HandlerConfig, endpoint: Option<&str>) -> anyhow::Result<Pipeline> {
    let (credential, _) = crate::deploy::azure::credential_chain()?;
    let arm = escher_azure::arm::ArmClient::new(
        endpoint.unwrap_or(escher_azure::arm::PUBLIC_ENDPOINT),
        credential.clone(),
    );
    let bindings = escher_azure::azure_bindings(
        arm,
        credential,
        std::env::var("APPLICATIONINSIGHTS_CONNECTION_STRING")
            .ok()
            .as_deref(),
        None,
    );
    Ok(escher_runtime::build_pipeline(
        config,
        bindings,
        &RemoteCallMeter::new(),
    )?)
}

/// The Google Cloud service's pipeline, with this machine's Google credentials. Its
/// CRITICAL and HIGH notices (log lines the deployed service's alert policies turn into
/// e-mail) go to stderr, apart from the story.
async fn gcp_pipeline(
    config: &HandlerConfig,
    endpoint: Option<&str>,
    project: Option<String>,
) -> anyhow::Result<Pipeline> {
    let (escher_toml, _) = crate::config::load_for_command(None)?;
    let (_, access) =
        crate::deploy::gcp::access::find_for_command(project.as_deref(), &escher_toml).await?;
    let endpoints = endpoint
        .map(escher_gcp::Endpoints::all_at)
        .unwrap_or_default();
    let client = escher_gcp::GcpClient::new(endpoints, access.tokens);
    let notices = escher_gcp::LoggedNotices::to(std::sync::Arc::new(std::sync::Mutex::new(
        Box::new(std::io::stderr()),
    )));
    Ok(escher_gcp::service::alert_pipeline(
        config,
        client,
        &access.project,
        notices,
        &RemoteCallMeter::new(),
    )?)
}

/// The handler's settings on the laptop: the stores from the flags (or the defaults under
/// the Escher folder), topics, SSM prefix and the rest from the same environment the
/// function gets.
pub(crate) fn handler_config(
    state: Option<String>,
    audit: Option<String>,
    approvals: Option<String>,
    dry_run: bool,
) -> anyhow::Result<HandlerConfig> {
    let state = state.map_or_else(|| default_store("state"), Ok)?;
    let audit = audit.map_or_else(|| default_store("audit"), Ok)?;
    let approvals = approvals.map_or_else(|| default_store("approvals"), Ok)?;
    Ok(HandlerConfig::from_lookup(|name| match name {
        "ESCHER_STATE_URI" => Some(state.clone()),
        "ESCHER_AUDIT_URI" => Some(audit.clone()),
        "ESCHER_APPROVALS_URI" => Some(approvals.clone()),
        "ESCHER_DRY_RUN" if dry_run => Some("true".into()),
        _ => std::env::var(name).ok(),
    })?)
}

fn tell(out: &mut impl Write, label: &str, handled: &Handled) -> anyhow::Result<()> {
    if let Some(handshake) = &handled.handshake {
        writeln!(
            out,
            "{label}: a subscription handshake, not an alert: {}",
            serde_json::to_string(handshake)?
        )?;
    }
    for result in &handled.results {
        writeln!(
            out,
            "event {}",
            result
                .event_id
                .as_deref()
                .unwrap_or("(unrecognized payload)")
        )?;
        for step in &result.steps {
            writeln!(out, "  - {step}")?;
        }
        writeln!(out, "  outcome: {} — {}", result.outcome, result.summary)?;
        writeln!(out, "  audit: {}", result.audit_path)?;
    }
    Ok(())
}
