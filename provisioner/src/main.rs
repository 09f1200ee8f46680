//! `escher-provision`: the laptop-side CLI of Escher Extend.
//!
//! It renders and deploys Escher into the user's account (`render`, `extend`, `status`,
//! `destroy`, `credentials`; AWS today, each cloud behind [`deploy::seam::Deployment`]),
//! manages the pre-approvals (`approvals`), and runs the same code paths the functions run
//! in the cloud (`events normalize`, `events handle`, `scan run`, `audit verify`), so an
//! operator can see exactly what a handler would do with an alert.

mod approvals;
mod audit_command;
mod cloud;
mod config;
mod deploy;
mod events;
mod handle;
mod inbox;
mod incidents_command;
mod output;
mod render;
mod render_command;
mod scan_command;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use cloud::Cloud;
use deploy::aws::AwsDeployment;
use deploy::azure::AzureDeployment;
use deploy::gcp::GcpDeployment;

// Same allocator as every Escher binary (see the workspace Cargo.toml).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Escher Extend: your cloud alerts handled and your account scanned every night, while
/// your laptop is closed, by functions deployed into your own AWS account, Azure
/// subscription or Google Cloud project. Deploy and check them, pre-approve the fixes they
/// may make, and run the same alert handling, scan and audit check from this machine.
#[derive(Debug, Parser)]
#[command(name = "escher-provision", version)]
struct Cli {
    /// Show debug logs on stderr (also: RUST_LOG=escher_core=debug).
    #[arg(long, short, global = true)]
    verbose: bool,

    /// Escher's folder on this machine: the default approvals, state and audit stores
    /// (fs://DIR/approvals, …) and the saved deployment outputs (DIR/extend/). Default:
    /// ~/.escher.
    #[arg(long, global = true, value_name = "DIR", env = "ESCHER_HOME")]
    escher_dir: Option<std::path::PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Turn AWS, Azure and GCP alert payloads into UnifiedEvents, or handle an AWS alert
    /// here as the alert function does.
    #[command(subcommand)]
    Events(events::EventsCommand),
    /// Pre-approve fixes, list and revoke them, and check what an alert would trigger.
    Approvals(approvals::ApprovalsArgs),

    /// Write what `extend` deploys from escher.toml, to review or deploy by hand: the AWS
    /// CloudFormation template and its parameters, or the Azure ARM template, its
    /// parameters and the same resources in Bicep (GCP is not available yet).
    ///
    /// Exit status: 0 when the files were written, 2 when the configuration is invalid or the
    /// cloud is not supported yet (the reason is printed on stderr).
    Render(render_command::RenderArgs),

    /// Deploy Escher Extend into your AWS account (a CloudFormation stack), Azure
    /// subscription (a deployment stack) or Google Cloud project (an Infrastructure Manager
    /// deployment running the Terraform of `render --cloud gcp`): show what changes, ask,
    /// apply it with progress, publish the functions, print and save the outputs.
    ///
    /// On Google Cloud, before the preview, the project is readied, each step only when
    /// something is missing: the APIs Escher and Infrastructure Manager use are enabled;
    /// the service account Infrastructure Manager runs Terraform as (`<stack>-deployer`) is
    /// created and given roles/config.agent and the predefined roles for what the
    /// deployment creates (never owner or editor); the Terraform files go to a private
    /// bucket (`<project>-<stack>-blueprints`) under a folder named by their content; the
    /// handler's image goes to the Artifact Registry repository `<stack>`. With --dry-run no
    /// repository is made and no image pushed (the handler is still built: the preview names
    /// its image by the digest a push would give), but the APIs, the deployer account and
    /// its roles, the bucket and the files are made: Infrastructure Manager's preview reads
    /// them.
    ///
    /// Exit status: 0 deployed, no changes, or dry run; 1 declined (nothing changed);
    /// 2 failed (the failing resource and the reason are printed on stderr).
    Extend(deploy::ExtendArgs),
    /// The deployment in your AWS account, Azure subscription or Google Cloud project:
    /// status, last update, outputs, the functions' code (on Google Cloud the handler
    /// image's digest), drift (where the cloud reports it).
    ///
    /// Exit status: 0 reported (also when there is no stack), 2 failed.
    Status(deploy::StatusArgs),
    /// Delete the deployment from your AWS account, Azure subscription or Google Cloud
    /// project. The immutable audit storage is always kept; the state storage too, unless
    /// --delete-data.
    ///
    /// On Google Cloud, destroy first writes its own record (who, when, what) into the audit
    /// bucket under `destroyed/`; Terraform then deletes what it may. Cloud Storage refuses
    /// to delete a bucket holding objects, so the audit bucket (its records under
    /// retention), its access-logs bucket and the state bucket stay, and the deployment is
    /// then removed leaving them in the project. --delete-data empties the state bucket first (so it is
    /// deleted too) and deletes the blueprint bucket and the image repository `extend`
    /// made. The deployer service account is kept.
    ///
    /// Exit status: 0 deleted (or no stack), 1 declined, 2 failed.
    Destroy(deploy::DestroyArgs),
    /// Build the functions' packages and check that they start where they run: the alert
    /// and scan zips for AWS Lambda, or with --cloud azure the Functions package
    /// (azure-functions.zip, glibc 2.31 at most); `extend` builds them itself when one is
    /// missing or stale.
    ///
    /// A release build with cargo lambda, linked for Amazon Linux 2023, into
    /// `target/lambda/<binary>/bootstrap.zip`; each `bootstrap` must need no glibc newer
    /// than 2.34. `make package` runs this.
    ///
    /// Exit status: 0 built, 2 failed (a build error, or a binary that would not start on
    /// provided.al2023).
    Package(deploy::package::PackageArgs),
    /// Store the credentials the functions use for the other clouds beside them (`--on
    /// aws`: SSM SecureStrings under the stack's path; `--on azure`: the deployment's Key
    /// Vault; `--on gcp`: a new version of the deployment's Secret Manager secret
    /// `<stack>-credentials-<cloud>`); list them (names and dates only) or remove them (on
    /// Google Cloud every version is destroyed; the secret stays with the deployment).
    Credentials(deploy::CredentialsArgs),
    /// Check the audit trail: every record re-hashed against the day's listing.
    #[command(subcommand)]
    Audit(audit_command::AuditCommand),
    /// Run the nightly scan of your AWS account now, from this machine.
    #[command(subcommand)]
    Scan(scan_command::ScanCommand),
    /// Show the morning reports the nightly scan stored.
    #[command(subcommand)]
    Report(scan_command::ReportCommand),
    /// What the functions told this laptop while it was closed: the notices in the state
    /// store's inbox (MEDIUM, and any a channel failed to deliver) not read here yet, newest
    /// first and grouped by resource, with the command to act. Marks them read for this
    /// laptop; deletes nothing. `--watch` follows new ones.
    ///
    /// Exit status: 0 shown (also when there is nothing new), 2 the store is unreadable.
    Inbox(inbox::InboxArgs),
    /// What happened before: search the events the functions handled (by resource,
    /// principal, event type, outcome) or rebuild that memory from the audit trail.
    #[command(subcommand)]
    Incidents(incidents_command::IncidentsCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    if let Some(dir) = &cli.escher_dir {
        if let Err(e) = output::set_escher_dir(dir) {
            eprintln!("error: {e:#}");
            return ExitCode::from(output::EXIT_ERROR);
        }
    }
    match cli.command {
        Command::Events(cmd) => events::run(cmd),
        Command::Approvals(args) => approvals::run(args),
        Command::Render(args) => render_command::run(args),
        // Each cloud's deployment behind the one seam (deploy::seam::Deployment).
        Command::Extend(args) => match args.target.cloud {
            Cloud::Aws => output::run_async(deploy::extend::<AwsDeployment>(args)),
            Cloud::Azure => output::run_async(deploy::extend::<AzureDeployment>(args)),
            Cloud::Gcp => output::run_async(deploy::extend::<GcpDeployment>(args)),
        },
        Command::Status(args) => match args.target.cloud {
            Cloud::Aws => output::run_async(deploy::status::<AwsDeployment>(args)),
            Cloud::Azure => output::run_async(deploy::status::<AzureDeployment>(args)),
            Cloud::Gcp => output::run_async(deploy::status::<GcpDeployment>(args)),
        },
        Command::Destroy(args) => match args.target.cloud {
            Cloud::Aws => output::run_async(deploy::destroy::<AwsDeployment>(args)),
            Cloud::Azure => output::run_async(deploy::destroy::<AzureDeployment>(args)),
            Cloud::Gcp => output::run_async(deploy::destroy::<GcpDeployment>(args)),
        },
        Command::Package(args) => output::run_command(deploy::package::package_command(args)),
        // The secrets live beside the functions of the deployment `--on` names (`--cloud`
        // there names whose credentials they are).
        Command::Credentials(args) => match args.deployment {
            Cloud::Aws => output::run_async(deploy::credentials::<AwsDeployment>(args)),
            Cloud::Azure => output::run_async(deploy::credentials::<AzureDeployment>(args)),
            Cloud::Gcp => output::run_async(deploy::credentials::<GcpDeployment>(args)),
        },
        Command::Audit(cmd) => audit_command::run(cmd),
        Command::Scan(cmd) => scan_command::run_scan(cmd),
        Command::Report(cmd) => scan_command::run_report(cmd),
        Command::Inbox(args) => inbox::run(args),
        Command::Incidents(cmd) => incidents_command::run(cmd),
    }
}

/// Human-readable logs on stderr, so stdout stays clean JSON for pipes.
fn init_logging(verbose: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if verbose { "debug" } else { "warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
}
