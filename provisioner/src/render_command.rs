//! `escher-provision render`: write the deployment template for a cloud, to read, review or
//! deploy by hand. `extend` renders the same way before it deploys.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use escher_core::remediate::RequiredPermission;
use serde::Serialize;

use crate::config::{resolve_timezone, CreateTrail, EscherConfig, TimeZoneName, TimeZoneSource};
use crate::render::{self, aws};

/// Exit code for a failure the user can fix (bad config, unsupported cloud).
const EXIT_FAILED: u8 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Cloud {
    Aws,
    Azure,
    Gcp,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The cloud to render for. Only `aws` is supported so far.
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
    parameters: PathBuf,
    timezone: String,
    timezone_source: TimeZoneSource,
    scan_time: String,
    create_trail: bool,
    /// Template parameters without a value yet (filled by `extend` after packaging).
    missing_parameters: Vec<&'static str>,
    remediation_permissions: usize,
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
    if args.cloud != Cloud::Aws {
        anyhow::bail!(
            "rendering for --cloud {} is not yet supported; only --cloud aws is available in this version",
            match args.cloud {
                Cloud::Azure => "azure",
                Cloud::Gcp => "gcp",
                Cloud::Aws => "aws",
            }
        );
    }
    let (config, config_used) = crate::config::load_for_command(args.config.as_deref())?;
    let config_used = config_used.map(|path| absolute(&path));
    let (timezone, timezone_source) = resolve_timezone(args.timezone, &config.schedule);
    if timezone_source == TimeZoneSource::UtcFallback {
        eprintln!(
            "notice: the machine's time zone is unknown; the nightly scan runs at {} UTC (set --timezone or [schedule] timezone)",
            config.schedule.scan_time
        );
    }
    let create_trail = match config.aws.cloudtrail.create_trail {
        CreateTrail::Always => true,
        CreateTrail::Never => false,
        CreateTrail::Auto => {
            eprintln!(
                "notice: create_trail = \"auto\": the template includes a CloudTrail trail; `extend` leaves it out when the account already has one"
            );
            true
        }
    };
    let permissions = remediation_permissions();
    let rendering = aws::render(&aws::AwsRenderInputs {
        config: &config,
        timezone,
        create_trail,
        permissions: &permissions,
    })?;
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
        region: config.aws.region.as_ref().map(|r| r.to_string()),
        config: config_used,
        template: path_of(aws::TEMPLATE_FILE),
        parameters: path_of(aws::PARAMETERS_FILE),
        timezone: timezone.to_string(),
        timezone_source,
        scan_time: config.schedule.scan_time.to_string(),
        create_trail,
        missing_parameters: rendering.missing_parameters,
        remediation_permissions: permissions.len(),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&summary);
    }
    Ok(())
}

fn print_summary(s: &RenderSummary) {
    println!("Rendered stack `{}` for AWS:", s.stack);
    println!("  template    {}", s.template.display());
    println!("  parameters  {}", s.parameters.display());
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
    println!(
        "  CloudTrail trail: {}",
        if s.create_trail {
            "created"
        } else {
            "not created"
        }
    );
    if !s.missing_parameters.is_empty() {
        println!(
            "  parameters without a value yet: {} (`extend` fills them after packaging; set [aws.artifacts] in escher.toml to pin them)",
            s.missing_parameters.join(", ")
        );
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The permissions the AWS remediations and the handler's enrich step need. The handler's
/// own store, SSM, KMS and SNS access is granted by the template's fixed statements.
fn remediation_permissions() -> Vec<RequiredPermission> {
    escher_aws::all_required_permissions()
}

/// The AWS template for `config`, rendered in memory: what `extend` deploys. The time zone
/// and trail are decided as `render` decides them.
/// The template `extend` deploys; `create_trail` is `[aws.cloudtrail] create_trail` resolved
/// against the account (`auto` looks at its trails).
pub(crate) fn render_aws_template(
    config: &EscherConfig,
    timezone_flag: Option<TimeZoneName>,
    create_trail: bool,
) -> anyhow::Result<String> {
    let (timezone, _) = resolve_timezone(timezone_flag, &config.schedule);
    let permissions = remediation_permissions();
    let rendering = aws::render(&aws::AwsRenderInputs {
        config,
        timezone,
        create_trail,
        permissions: &permissions,
    })?;
    rendering
        .files
        .into_iter()
        .find(|f| f.name == aws::TEMPLATE_FILE)
        .map(|f| f.contents)
        .context("the AWS rendering holds no template (a bug; please report it)")
}
