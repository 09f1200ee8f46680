//! `escher-provision render`: write the deployment template for a cloud, to read, review or
//! deploy by hand. `extend` renders the same way before it deploys.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use serde::Serialize;

use crate::cloud::Cloud;
use crate::config::{resolve_timezone, SubscriptionId, TimeZoneName, TimeZoneSource};
use crate::render;
use crate::render::gcp::GcpFormat;

/// Exit code for a failure the user can fix (bad config, unsupported cloud).
const EXIT_FAILED: u8 = 2;

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The cloud to render for: `aws`, `azure` or `gcp`.
    #[arg(long, value_enum)]
    cloud: Cloud,

    /// Folder to write the template and its parameters into (created if needed).
    #[arg(long, value_name = "DIR", default_value = "escher-rendered")]
    out: PathBuf,

    /// Configuration file. Without this option ./escher.toml is used when it exists, and the
    /// defaults otherwise.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// IANA time zone of the nightly scan (e.g. Europe/Berlin); overrides escher.toml.
    /// Default: the machine's time zone, else UTC.
    #[arg(long, value_name = "TZ")]
    timezone: Option<TimeZoneName>,

    /// Azure: the subscription id the template is for (overrides escher.toml's `[azure]
    /// subscription`, else AZURE_SUBSCRIPTION_ID). With it the storage accounts are named in
    /// the template (the names Azure gives them there); without it Azure names them when the
    /// template is deployed.
    #[arg(long, value_name = "ID")]
    subscription: Option<SubscriptionId>,

    /// Google Cloud: `terraform` (default), a root module for Infrastructure Manager, or
    /// `deployment-manager`, the same resources as Deployment Manager YAML (which no longer
    /// deploys: for keeping or migrating Deployment Manager configurations).
    #[arg(long, value_enum, value_name = "FORMAT")]
    format: Option<GcpFormat>,

    /// Print where the files went (and what was decided) as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// What `render` reports (`--json`), so scripts and `extend` can find the files.
#[derive(Debug, Serialize)]
struct RenderSummary {
    cloud: Cloud,
    stack: String,
    region: Option<String>,
    config: Option<PathBuf>,
    template: PathBuf,
    /// Absent for a format without a parameters file (Deployment Manager YAML).
    parameters: Option<PathBuf>,
    /// Google Cloud only.
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<GcpFormat>,
    timezone: String,
    timezone_source: TimeZoneSource,
    scan_time: String,
    /// AWS only.
    #[serde(skip_serializing_if = "Option::is_none")]
    create_trail: Option<bool>,
    /// Template parameters without a value yet (filled by `extend` after packaging).
    missing_parameters: Vec<&'static str>,
    remediation_permissions: usize,
    /// The cloud's own summary lines (printed, not in the JSON).
    #[serde(skip)]
    details: Vec<String>,
}

pub fn run(args: RenderArgs) -> ExitCode {
    match render_command(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

fn render_command(args: &RenderArgs) -> anyhow::Result<()> {
    let render_files = render::for_cloud(args.cloud);
    if args.format.is_some() && args.cloud != Cloud::Gcp {
        anyhow::bail!(
            "--format chooses between Google Cloud's Terraform and Deployment Manager files; it does not apply to --cloud {}",
            args.cloud.as_str()
        );
    }
    let (mut config, config_used) = crate::config::load_for_command(args.config.as_deref())?;
    if args.cloud == Cloud::Azure {
        let from_env = || {
            std::env::var("AZURE_SUBSCRIPTION_ID")
                .ok()
                .filter(|s| !s.trim().is_empty())
                .map(|s| {
                    s.trim()
                        .parse::<SubscriptionId>()
                        .map_err(|e| anyhow::anyhow!("AZURE_SUBSCRIPTION_ID: {e}"))
                })
                .transpose()
        };
        if let Some(subscription) = args.subscription.clone() {
            config.azure.subscription = Some(subscription);
        } else if config.azure.subscription.is_none() {
            config.azure.subscription = from_env()?;
        }
    } else if args.subscription.is_some() {
        anyhow::bail!(
            "--subscription is an Azure subscription; it does not apply to --cloud {}",
            args.cloud.as_str()
        );
    }
    let config_used = config_used.map(|path| absolute(&path));
    let (timezone, timezone_source) = resolve_timezone(args.timezone, &config.schedule);
    if timezone_source == TimeZoneSource::UtcFallback {
        eprintln!(
            "notice: the machine's time zone is unknown; the nightly scan runs at {} UTC (set --timezone or [schedule] timezone)",
            config.schedule.scan_time
        );
    }
    let format = (args.cloud == Cloud::Gcp).then(|| args.format.unwrap_or_default());
    let rendering = match format {
        Some(format) => render::gcp::for_review_as(&config, timezone, format)?,
        None => render_files(&config, timezone)?,
    };
    for notice in &rendering.notices {
        eprintln!("{notice}");
    }
    let written = render::write_files(&args.out, &rendering.files).with_context(|| {
        format!(
            "cannot write the rendered files into {}",
            args.out.display()
        )
    })?;
    let path_of = |name: &str| {
        written
            .iter()
            .find(|p| p.file_name().is_some_and(|n| n == name))
            .map(|p| absolute(p))
            .unwrap_or_default()
    };
    let summary = RenderSummary {
        cloud: args.cloud,
        stack: config.stack.name.to_string(),
        region: rendering.region,
        config: config_used,
        template: path_of(rendering.template_file),
        parameters: (!rendering.parameters_file.is_empty())
            .then(|| path_of(rendering.parameters_file)),
        format,
        timezone: timezone.to_string(),
        timezone_source,
        scan_time: config.schedule.scan_time.to_string(),
        create_trail: rendering.create_trail,
        missing_parameters: rendering.missing_parameters,
        remediation_permissions: rendering.remediation_permissions,
        details: rendering.details,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&summary);
    }
    Ok(())
}

fn print_summary(s: &RenderSummary) {
    println!(
        "Rendered stack `{}` for {}:",
        s.stack,
        s.cloud.display_name()
    );
    println!("  template    {}", s.template.display());
    if let Some(parameters) = &s.parameters {
        println!("  parameters  {}", parameters.display());
    }
    if !s.missing_parameters.is_empty() {
        println!("  to fill in  {}", s.missing_parameters.join(", "));
    }
    println!(
        "  nightly scan at {} {} ({})",
        s.scan_time,
        s.timezone,
        match s.timezone_source {
            TimeZoneSource::Flag => "--timezone",
            TimeZoneSource::Config => "escher.toml",
            TimeZoneSource::Machine => "this machine's time zone",
            TimeZoneSource::UtcFallback => "fallback",
        }
    );
    for line in &s.details {
        println!("  {line}");
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
