//! The deploy seam: what every cloud's deployment does, in cloud-neutral types.
//!
//! `extend`, `status`, `destroy` and `credentials` are written once, in [`super::flow`],
//! generic over [`Deployment`]: printing the preview, stopping for `--dry-run`, asking
//! unless `--yes` (and refusing without a terminal), applying, printing and saving the
//! outputs, and the exit status. A cloud brings only its calls: AWS's are in
//! [`super::aws`] (CloudFormation change sets); Azure (what-if) and GCP (preview) implement
//! the same trait in a folder of their own, and `main` sends their `--cloud` to it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::{AccessArgs, OtherCloud};
use crate::cloud::Cloud;
use crate::config::{EscherConfig, TimeZoneName};

/// One cloud's deployment of Escher Extend. Nothing here prints a decision or asks the
/// user; progress of a long operation goes to stderr.
///
/// The `async fn`s are called from this crate only, on one thread, so their futures need
/// not be `Send`.
#[allow(async_fn_in_trait)]
pub trait Deployment: Sized {
    /// What the cloud calls the deployed unit, in messages: `stack` on AWS.
    const UNIT: &'static str;
    /// What the cloud calls a preview of changes: `change set` on AWS (Azure: what-if; GCP:
    /// preview).
    const PREVIEW: &'static str;

    /// Finds the credentials, asks the cloud whose they are and opens the clients.
    /// `config` is escher.toml, already read.
    async fn connect(access: &AccessArgs, config: EscherConfig) -> anyhow::Result<Self>;

    /// Where the deployment is and as whom.
    fn session(&self) -> &Session;

    /// The deployment as it stands, before `extend` previews anything; an error when it
    /// cannot be changed now (busy, stuck), saying what to do.
    async fn current(&mut self) -> anyhow::Result<Current>;

    /// Deletes a deployment that [`Current::recreate`] said can only be made again; the
    /// user agreed.
    async fn remove_failed(&mut self) -> anyhow::Result<()>;

    /// Uploads what the deployment refers to (the functions' code) and previews the
    /// changes. Nothing deployed changes yet.
    async fn preview(&mut self, request: &PreviewRequest<'_>) -> anyhow::Result<Preview>;

    /// Drops the last preview (no changes, a dry run, declined), leaving nothing behind.
    async fn discard(&mut self);

    /// Applies the last preview, showing its progress on stderr ([`super::progress`]).
    /// A failure names the failing resources and the cloud's reasons.
    async fn apply(&mut self, preview: &Preview) -> anyhow::Result<Deployed>;

    /// The deployment's status; `None` when nothing is deployed.
    async fn status(&self) -> anyhow::Result<Option<Status>>;

    /// What `destroy` would delete and keep; `None` when nothing is deployed.
    async fn destroy_plan(&self, delete_data: bool) -> anyhow::Result<Option<DestroyPlan>>;

    /// Deletes what the plan says (emptying [`DestroyPlan::emptied`] first) and waits.
    async fn destroy(&self, plan: &DestroyPlan) -> anyhow::Result<()>;

    /// Stores another cloud's credentials as a secret the functions may read; returns where
    /// it went, in words (`SecureString /escher/<stack>/credentials/azure`).
    async fn store_secret(&self, cloud: OtherCloud, value: String) -> anyhow::Result<String>;

    /// The stored credentials: names and dates, never values.
    async fn list_secrets(&self) -> anyhow::Result<SecretList>;

    /// Deletes one cloud's stored credentials; returns the secret's name.
    async fn remove_secret(&self, cloud: OtherCloud) -> anyhow::Result<String>;
}

/// Where a deployment is and as whom: what every command names, prints and saves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub cloud: Cloud,
    /// The deployment's name, `[stack] name`.
    pub name: String,
    /// The AWS account (an Azure subscription, a GCP project).
    pub account: String,
    pub region: String,
    /// Who the commands run as.
    pub identity: String,
    /// How messages name the deployment: ``stack `escher-extend` (account 1234, eu-west-1)``.
    pub label: String,
}

/// The deployment `extend` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Current {
    /// `None`: nothing deployed yet.
    pub deployed: Option<Deployed>,
    /// Set when the deployment cannot be updated, only deleted and made again (on AWS, a
    /// stack whose first creation failed): why, in a sentence for the user, who must agree.
    pub recreate: Option<String>,
}

/// A deployment as the cloud reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployed {
    /// The cloud's word for its state (`CREATE_COMPLETE`).
    pub status: String,
    pub status_reason: Option<String>,
    pub outputs: BTreeMap<String, String>,
}

/// What `extend` asks a preview to deploy.
#[derive(Debug, Clone, Copy)]
pub struct PreviewRequest<'a> {
    /// `--timezone`, over escher.toml.
    pub timezone: Option<TimeZoneName>,
    /// `--artifacts DIR`: the functions' zips as given.
    pub artifacts: Option<&'a Path>,
    /// Build a missing or stale zip (not `--no-build`).
    pub build: bool,
    /// `--dry-run`: make only what the preview itself reads (a cloud whose preview needs
    /// nothing uploaded makes nothing).
    pub dry_run: bool,
}

/// A preview of the changes `extend` would apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preview {
    pub kind: PreviewKind,
    pub changes: Vec<ResourceChange>,
    /// Template parameters whose value changes (the functions' code keys).
    pub changed_parameters: Vec<String>,
    /// The function code uploaded for it.
    pub uploaded: Vec<String>,
    /// Nothing to apply: the deployment is as it would be afterwards.
    pub up_to_date: bool,
}

/// Whether the preview creates the deployment or updates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreviewKind {
    Create,
    Update,
}

impl PreviewKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PreviewKind::Create => "create",
            PreviewKind::Update => "update",
        }
    }
}

/// What a change does to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Add,
    Modify,
    Remove,
    /// Import, Dynamic and kinds this CLI does not know yet.
    Other,
}

/// Whether a modification replaces the resource (a new physical resource, the old one
/// deleted: data in it is lost, its name may change).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Replacement {
    Yes,
    No,
    Conditional,
}

/// One row of the change table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResourceChange {
    pub action: ChangeKind,
    pub logical_id: String,
    pub resource_type: String,
    pub replacement: Replacement,
}

/// A deployment's status, as `status` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub deployed: Deployed,
    pub last_updated: Option<String>,
    pub functions: Vec<FunctionStatus>,
    /// `IN_SYNC`, `DRIFTED`, … or why it is unknown.
    pub drift: String,
}

/// One function's deployed code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FunctionStatus {
    /// The function's role (`alert`, `scan`; on Azure `events`, `nightly` too).
    pub function: String,
    pub name: String,
    pub code_sha256: Option<String>,
    pub last_modified: Option<String>,
    pub version: Option<String>,
    /// Why the function could not be read.
    pub error: Option<String>,
}

/// A resource of the deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resource {
    pub logical_id: String,
    pub resource_type: String,
    pub physical_id: String,
}

/// What `destroy` deletes and what it keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestroyPlan {
    pub delete: Vec<Deletion>,
    pub keep: Vec<KeptResource>,
    /// Data stores emptied (every version) before the deployment is deleted, and deleted
    /// after it (`--delete-data`).
    pub emptied: Vec<String>,
}

/// A resource `destroy` deletes, and what the user should know about that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    pub resource: Resource,
    pub note: Option<String>,
}

/// A resource `destroy` keeps, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeptResource {
    pub logical_id: String,
    pub resource_type: String,
    pub physical_id: String,
    pub why: String,
}

/// The stored credentials and where they are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretList {
    /// Where the secrets are stored (`/escher/<stack>/credentials/`).
    pub location: String,
    pub secrets: Vec<StoredCredential>,
}

/// One stored credential: names and dates, never the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredCredential {
    pub cloud: String,
    pub parameter: String,
    pub last_modified: Option<String>,
}
