//! `extend`, `status`, `destroy` and `credentials`: deploying the rendered stack into the
//! user's own account, reporting on it and taking it down again.
//!
//! Here: the command line and the functions Escher deploys. [`seam`] is what every cloud's
//! deployment does ([`seam::Deployment`]), [`flow`] the commands written once over it,
//! [`aws`] the AWS implementation (CloudFormation, S3, Lambda, SSM), [`azure`] the Azure one
//! (what-if, deployment stacks, the Functions package, Key Vault), [`package`] the
//! functions' zips, [`progress`] the progress display every cloud shares.

pub mod aws;
pub mod azure;
mod flow;
pub mod gcp;
pub mod package;
pub mod progress;
pub mod seam;

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;

pub use flow::{credentials, destroy, extend, status};

use crate::cloud::Cloud;
use crate::config::TimeZoneName;

/// Exit status: the user declined (nothing was changed).
pub const EXIT_DECLINED: u8 = 1;

/// The cloud to deploy into, and how to reach it.
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// The cloud: `aws` (a CloudFormation stack), `azure` (a deployment stack in a
    /// resource group) or `gcp` (an Infrastructure Manager deployment in a project).
    #[arg(long, value_enum)]
    pub cloud: Cloud,
    #[command(flatten)]
    pub access: AccessArgs,
}

/// Where and as whom: the cloud's standard credential chain, overridable. On AWS the
/// configuration chain (profile, environment, instance role); on Azure a service principal
/// from AZURE_TENANT_ID / AZURE_CLIENT_ID / AZURE_CLIENT_SECRET, else the managed identity
/// (where IDENTITY_ENDPOINT is set), else the Azure CLI's login (`az login`); on Google
/// Cloud GOOGLE_APPLICATION_CREDENTIALS, else gcloud's application default login, else
/// gcloud's own login.
#[derive(Debug, Clone, Args)]
pub struct AccessArgs {
    /// AWS region (default: escher.toml `[aws] region`, else AWS_REGION / the profile), or
    /// with --cloud gcp the Google Cloud region (default: escher.toml `[gcp] region`, else
    /// europe-west1).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Google Cloud project id (default: escher.toml `[gcp] project`, else
    /// GOOGLE_CLOUD_PROJECT / CLOUDSDK_CORE_PROJECT, else the credentials' or gcloud's
    /// project).
    #[arg(long, value_name = "ID")]
    pub project: Option<String>,
    /// AWS: named profile from ~/.aws/config (default: AWS_PROFILE, else `default`).
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Azure subscription id (default: escher.toml `[azure] subscription`, else
    /// AZURE_SUBSCRIPTION_ID, else the Azure CLI's current one).
    #[arg(long, value_name = "ID")]
    pub subscription: Option<String>,
    /// Azure region (default: escher.toml `[azure] location`, else westeurope).
    #[arg(long, value_name = "LOCATION")]
    pub location: Option<String>,
    /// Azure resource group holding the deployment (default: escher.toml
    /// `[azure] resource_group`, else `escher`); created when missing.
    #[arg(long, value_name = "NAME")]
    pub resource_group: Option<String>,
    /// Send every call to this endpoint: on AWS an emulator such as moto or a VPC endpoint
    /// (AWS_ENDPOINT_URL does the same); on Azure a Resource Manager stand-in, which then
    /// also answers for the app's deployment site and Key Vault; on Google Cloud a stand-in
    /// answering every Google API at Google's paths, and the image registry.
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// Configuration file. Without this option ./escher.toml is used when it exists, and
    /// the defaults otherwise.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ExtendArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Deploy without asking (required when standard input is not a terminal). Also agrees
    /// to delete and recreate a stack whose first creation failed (ROLLBACK_COMPLETE).
    #[arg(long, short)]
    pub yes: bool,
    /// Stop after printing the preview; nothing is changed. On AWS the artifacts bucket
    /// and the zips are still uploaded (the change set refers to them); on Azure nothing
    /// is created, not even the resource group; on Google Cloud the APIs are enabled and
    /// the deployer account, its roles, the blueprint bucket and files are made (the
    /// preview reads them), but no image is pushed.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the result (change set, outputs) as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Folder holding the functions' zips, deployed as they are (never rebuilt): on Azure
    /// `azure-functions.zip` (default: target/azure/, built by `package --cloud azure`
    /// when missing or stale; its handler must need no glibc newer than 2.31). On AWS
    /// `alert.zip` and `scan.zip`. Default: cargo lambda's output in the workspace this CLI was
    /// built from, `target/lambda/<binary>/bootstrap.zip`, built first (as `make package`
    /// does) when missing or stale: older than any file under `handlers/` or `policies/`
    /// (embedded at build time), `Cargo.toml` or `Cargo.lock`. Every zip's `bootstrap` must
    /// need no glibc newer than 2.34 (Amazon Linux 2023). On Google Cloud the folder holds
    /// `escher-gcp-service` (default: `target/release/escher-gcp-service` in the workspace
    /// this CLI was built from, built with `cargo build --release -p escher-gcp` when
    /// missing or stale), made into the Cloud Run image with the libraries it loads.
    #[arg(long, value_name = "DIR")]
    pub artifacts: Option<PathBuf>,
    /// Never build: deploy cargo lambda's zips as they are (a stale one with a warning) and
    /// stop when one is missing.
    #[arg(long, conflicts_with = "artifacts")]
    pub no_build: bool,
    /// IANA time zone of the nightly scan (e.g. Europe/Berlin); overrides escher.toml.
    #[arg(long, value_name = "TZ")]
    pub timezone: Option<TimeZoneName>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Print the status as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DestroyArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Also empty (every version) and delete the state bucket: approvals and handler state
    /// are lost. The audit bucket is always kept.
    #[arg(long)]
    pub delete_data: bool,
    /// Delete without asking (required when standard input is not a terminal).
    #[arg(long, short)]
    pub yes: bool,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CredentialsArgs {
    /// The deployment whose functions use the credentials: `aws` (SSM Parameter Store),
    /// `azure` (the deployment's Key Vault) or `gcp` (the deployment's Secret Manager
    /// secrets).
    #[arg(long = "on", value_enum, default_value = "aws", value_name = "CLOUD")]
    pub deployment: Cloud,
    #[command(flatten)]
    pub access: AccessArgs,
    #[command(subcommand)]
    pub command: CredentialsCommand,
}

#[derive(Debug, Subcommand)]
pub enum CredentialsCommand {
    /// Store the credentials the functions use for another cloud: on AWS an SSM
    /// SecureString under `/escher/<stack>/credentials/<cloud>` (encrypted with the stack's
    /// key), on Azure the Key Vault secret `credentials-<cloud>`.
    Set(CredentialsSetArgs),
    /// List the stored credentials: names and when they changed, never the values.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete the stored credentials for a cloud.
    Remove {
        /// The cloud whose credentials to delete.
        #[arg(long, value_enum)]
        cloud: OtherCloud,
    },
}

/// The clouds whose credentials the functions may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OtherCloud {
    Aws,
    Azure,
    Gcp,
}

impl OtherCloud {
    pub fn as_str(self) -> &'static str {
        match self {
            OtherCloud::Aws => "aws",
            OtherCloud::Azure => "azure",
            OtherCloud::Gcp => "gcp",
        }
    }
}

#[derive(Debug, Args)]
pub struct CredentialsSetArgs {
    /// The cloud these credentials are for.
    #[arg(long, value_enum)]
    pub cloud: OtherCloud,
    /// Azure: the service principal's tenant id.
    #[arg(long, required_if_eq("cloud", "azure"))]
    pub tenant_id: Option<String>,
    /// Azure: the service principal's client (application) id.
    #[arg(long, required_if_eq("cloud", "azure"))]
    pub client_id: Option<String>,
    /// Azure: environment variable holding the client secret (never pass a secret as an
    /// argument: it would land in the shell history and the process list).
    #[arg(long, value_name = "VAR", default_value = "AZURE_CLIENT_SECRET")]
    pub client_secret_env: String,
    /// GCP: the service account's JSON key file.
    #[arg(long, value_name = "FILE", required_if_eq("cloud", "gcp"))]
    pub key_file: Option<PathBuf>,
}

/// The functions Escher deploys, each built from one binary of the workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Function {
    Alert,
    Scan,
}

impl Function {
    pub const ALL: [Function; 2] = [Function::Alert, Function::Scan];

    pub fn name(self) -> &'static str {
        match self {
            Function::Alert => "alert",
            Function::Scan => "scan",
        }
    }
    /// The cargo binary whose `bootstrap` the zip holds.
    pub fn binary(self) -> &'static str {
        match self {
            Function::Alert => "escher-alert",
            Function::Scan => "escher-scan",
        }
    }
    /// The template parameter naming the zip's key.
    pub fn code_key_parameter(self) -> &'static str {
        match self {
            Function::Alert => "AlertFunctionCodeKey",
            Function::Scan => "ScanFunctionCodeKey",
        }
    }
    /// The function's logical id in the template.
    pub fn logical_id(self) -> &'static str {
        match self {
            Function::Alert => "AlertFunction",
            Function::Scan => "ScanFunction",
        }
    }
}
