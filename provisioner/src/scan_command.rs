//! `escher-provision scan run` and `report show`: the nightly scan from the laptop, through
//! the same `escher_scan::ScanRun` the `escher-scan` function runs, and the stored reports.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::NaiveDate;
use clap::{Args, Subcommand, ValueEnum};
use escher_aws::{build_pipeline, load_sdk_config, AwsClients, AwsScan};
use escher_core::scan::ReportSettings;
use escher_scan::{ReportStore, ScanRun};

use crate::handle::handler_config;
use crate::output::{default_store, run_async, write_json};

#[derive(Debug, Subcommand)]
pub enum ScanCommand {
    /// Scan the account now and store the morning report, exactly as the nightly function
    /// does (pre-approved fixes included).
    ///
    /// Exit status: 0 scanned (findings or not), 1 some regions or checks failed (the report
    /// is stored and says which), 2 the scan could not run or store its report.
    Run(ScanRunArgs),
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Print a stored morning report (the latest, or the last of a day).
    ///
    /// Exit status: 0 printed, 2 no such report or the store is unreadable.
    Show(ReportShowArgs),
}

#[derive(Debug, Args)]
pub struct ScanRunArgs {
    /// A region to scan (repeat for more). Default: the report settings' regions, else the
    /// region of the AWS configuration.
    #[arg(long = "region", value_name = "REGION")]
    regions: Vec<String>,

    /// The state store, where reports are kept. Default: fs://<Escher folder>/state (see --escher-dir).
    #[arg(long, env = "ESCHER_STATE_URI", value_name = "URI")]
    state: Option<String>,

    /// The audit store. Default: fs://<Escher folder>/audit (see --escher-dir).
    #[arg(long, env = "ESCHER_AUDIT_URI", value_name = "URI")]
    audit: Option<String>,

    /// The approvals store. Default: fs://<Escher folder>/approvals (see --escher-dir).
    #[arg(long, env = "ESCHER_APPROVALS_URI", value_name = "URI")]
    approvals: Option<String>,

    /// Report settings (sections, thresholds, focus, format). Default: the shipped
    /// policies/report.yaml.
    #[arg(long, value_name = "FILE")]
    settings: Option<PathBuf>,

    /// Report what pre-approved fixes would do without changing anything.
    #[arg(long)]
    dry_run: bool,

    /// Print the report as JSON instead of Markdown.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Md,
    Html,
    Json,
}

#[derive(Debug, Args)]
pub struct ReportShowArgs {
    /// The day (YYYY-MM-DD, UTC). Default: the latest report.
    #[arg(long, value_name = "YYYY-MM-DD")]
    date: Option<NaiveDate>,

    #[arg(long, value_enum, default_value = "md")]
    format: Format,

    /// The same as --format json.
    #[arg(long)]
    json: bool,

    /// The state store. Default: fs://<Escher folder>/state (see --escher-dir).
    #[arg(long, env = "ESCHER_STATE_URI", value_name = "URI")]
    state: Option<String>,
}

pub fn run_scan(cmd: ScanCommand) -> ExitCode {
    let ScanCommand::Run(args) = cmd;
    run_async(async { scan(args).await.map(ExitCode::from) })
}

pub fn run_report(cmd: ReportCommand) -> ExitCode {
    let ReportCommand::Show(args) = cmd;
    run_async(async { show(args).await.map(ExitCode::from) })
}

fn open_store(uri: &str) -> anyhow::Result<ReportStore> {
    let operator = escher_core::store::open(uri)
        .with_context(|| format!("cannot open the state store {uri}"))?;
    Ok(ReportStore::new(operator, uri))
}

async fn scan(args: ScanRunArgs) -> anyhow::Result<u8> {
    let settings = match &args.settings {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the report settings {}", path.display()))?;
            ReportSettings::from_yaml(&text, &path.display().to_string())?
        }
        None => ReportSettings::built_in().clone(),
    };
    let config = handler_config(args.state, args.audit, args.approvals, args.dry_run)?;
    let state = config.state_uri.clone();
    let sdk = load_sdk_config(None, None).await;
    let regions = if !args.regions.is_empty() {
        args.regions
    } else if !settings.scan.regions.is_empty() {
        settings.scan.regions.clone()
    } else {
        sdk.region()
            .map(|r| vec![r.to_string()])
            .context("no region to scan: pass --region or set AWS_REGION")?
    };
    let identity = aws_sdk_sts::Client::new(&sdk)
        .get_caller_identity()
        .send()
        .await
        .context("cannot tell which AWS account to scan (sts:GetCallerIdentity failed); check your AWS credentials")?;
    let account = identity
        .account()
        .context("sts:GetCallerIdentity named no account")?
        .to_string();
    let pipeline = build_pipeline(&config, &sdk)?;
    let store = open_store(&state)?;
    let result = ScanRun {
        checks: AwsScan::new(AwsClients::new(&sdk), account).checks(),
        regions,
        settings: &settings,
        store: &store,
        pipeline: Some(&pipeline),
        audit: Some(&pipeline.audit),
    }
    .run()
    .await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        write_json(&mut out, &result.report, false)?;
    } else {
        out.write_all(escher_scan::render_markdown(&result.report)?.as_bytes())?;
        writeln!(out, "\nStored: {} ({state})", result.files.json)?;
    }
    for failure in &result.report.failures {
        eprintln!(
            "warning: {} in {} not scanned: {}",
            failure.check, failure.region, failure.error
        );
    }
    Ok(if result.report.failures.is_empty() {
        0
    } else {
        1
    })
}

async fn show(args: ReportShowArgs) -> anyhow::Result<u8> {
    let state = args.state.map_or_else(|| default_store("state"), Ok)?;
    let store = open_store(&state)?;
    let files = match args.date {
        Some(date) => store.files_on(date).await?,
        None => store.latest_files().await?,
    };
    let Some(files) = files else {
        let when = args
            .date
            .map_or_else(|| "yet".to_string(), |d| format!("for {d}"));
        eprintln!("error: no morning report {when} in {state}; run `escher-provision scan run` to make one");
        return Ok(2);
    };
    let format = if args.json { Format::Json } else { args.format };
    let path = match format {
        Format::Md => &files.markdown,
        Format::Html => &files.html,
        Format::Json => &files.json,
    };
    let body = store.read(path).await?;
    std::io::stdout().lock().write_all(&body)?;
    Ok(0)
}
