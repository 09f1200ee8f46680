//! `GcpDeployment`: `extend`, `status`, `destroy` and `credentials` in a Google Cloud
//! project, behind the one [`Deployment`] seam.
//!
//! `extend` readies the project ([`super::bootstrap`]: APIs, the deployer account and its
//! roles, the blueprint's files, the image repository), pushes the handler's image
//! ([`super::image`]) and previews the rendered Terraform with Infrastructure Manager
//! ([`super::infra_manager`]); the same files and the same image give the same source and
//! input, so a second run previews no change.
//!
//! `destroy` keeps the audit trail. It first writes its own record (who destroyed what,
//! when) into the audit bucket, beside the trail. Terraform then destroys what the
//! deployment holds, but Cloud Storage refuses to delete a bucket that still holds objects
//! (the template sets no `force_destroy`, and the audit bucket's retention policy forbids
//! deleting its records anyway): when the only resources Terraform could not delete are the
//! buckets `destroy` keeps, the deployment itself is then deleted with `ABANDON`, which
//! leaves them in the project, no longer managed (the access-logs bucket stays with them:
//! Terraform deletes it only after the buckets that log into it). A `prevent_destroy` lifecycle would instead fail every
//! deletion, and the audit bucket made outside Terraform would lose the deployment's
//! retention settings; this way the template stays whole and the records stay where they
//! are.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use base64::Engine as _;
use escher_gcp::rest::{Endpoints, GcpClient, GcpOperation, HttpMethod, Service, TokenSource};
use serde_json::{json, Value};

use super::access::{self, CredentialSource};
use super::bootstrap::{
    blueprint_folder, required_services, ProjectSetup, DELETE_BUCKET, DELETE_OBJECT,
    DELETE_REPOSITORY, DEPLOYER_ROLES, LIST_OBJECTS,
};
use super::image::{self, Repository};
use super::infra_manager::{Blueprint, DeletePolicy, InfraManager, InfraManagerError};
use crate::cloud::Cloud;
use crate::config::{EscherConfig, GcpRegion};
use crate::deploy::package::{Workspace, ZipFreshness};
use crate::deploy::seam::{
    Current, Deletion, Deployed, Deployment, DestroyPlan, FunctionStatus, KeptResource, Preview,
    PreviewKind, PreviewRequest, Resource, SecretList, Session, Status, StoredCredential,
};
use crate::deploy::OtherCloud;
use crate::render::gcp::{GcpFormat, GcpRenderInputs};

/// The handler binary the image is made of.
pub const HANDLER_BINARY: &str = "escher-gcp-service";

/// The buckets `destroy` keeps, and why.
const AUDIT_BUCKET: &str = "google_storage_bucket.audit";
const ACCESS_LOGS_BUCKET: &str = "google_storage_bucket.access_logs";
const STATE_BUCKET: &str = "google_storage_bucket.state";

const ADD_SECRET_VERSION: GcpOperation = GcpOperation {
    id: "secretmanager.projects.secrets.addVersion",
    service: Service::SecretManager,
    method: HttpMethod::Post,
    permission: "secretmanager.versions.add",
    mutating: true,
    long_running: false,
};
const LIST_SECRETS: GcpOperation = GcpOperation {
    id: "secretmanager.projects.secrets.list",
    service: Service::SecretManager,
    method: HttpMethod::Get,
    permission: "secretmanager.secrets.list",
    mutating: false,
    long_running: false,
};
const LIST_SECRET_VERSIONS: GcpOperation = GcpOperation {
    id: "secretmanager.projects.secrets.versions.list",
    service: Service::SecretManager,
    method: HttpMethod::Get,
    permission: "secretmanager.versions.list",
    mutating: false,
    long_running: false,
};
const DESTROY_SECRET_VERSION: GcpOperation = GcpOperation {
    id: "secretmanager.projects.secrets.versions.destroy",
    service: Service::SecretManager,
    method: HttpMethod::Post,
    permission: "secretmanager.versions.destroy",
    mutating: true,
    long_running: false,
};

/// Names derived from the stack's name and the project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// Infrastructure Manager's deployment id (the stack's name, lowercase).
    pub deployment: String,
    /// The service account Infrastructure Manager runs Terraform as.
    pub deployer_account: String,
    /// Where the blueprint's files go.
    pub blueprint_bucket: String,
    /// The Artifact Registry repository of the handler's image.
    pub repository: String,
    /// The Cloud Run service (as the template names it).
    pub service: String,
}

impl Names {
    pub fn new(stack: &str, project: &str) -> Names {
        let prefix = stack.to_ascii_lowercase();
        // Service account ids: 6 to 30 characters (the template's accounts keep 21 too).
        let short = prefix[..prefix.len().min(21)].trim_end_matches('-');
        let bucket = format!("{project}-{prefix}-blueprints");
        let blueprint_bucket = if bucket.len() <= 63 {
            bucket
        } else {
            format!("{project}-escher-blueprints")
        };
        Names {
            deployment: prefix.clone(),
            deployer_account: format!("{short}-deployer"),
            blueprint_bucket,
            repository: prefix[..prefix.len().min(63)]
                .trim_end_matches('-')
                .to_string(),
            service: prefix[..prefix.len().min(49)]
                .trim_end_matches('-')
                .to_string(),
        }
    }
}

/// What `destroy` does with one Terraform resource of the deployment.
pub fn destroy_decision(
    address: &str,
    delete_data: bool,
) -> Result<Option<&'static str>, &'static str> {
    match address {
        AUDIT_BUCKET => Err("the audit trail, always kept: destroy first writes its own record into it, Cloud Storage refuses to delete a bucket holding records (its retention policy protects them), and the deployment then leaves it in the project"),
        ACCESS_LOGS_BUCKET => Err("the access logs of the audit and state buckets, kept with the audit bucket"),
        STATE_BUCKET if !delete_data => Err("approvals, handler state and morning reports: Cloud Storage refuses to delete it while it holds them (an empty one is deleted); --delete-data empties and deletes it"),
        STATE_BUCKET => Ok(Some("emptied first (every version): approvals, handler state and reports are lost")),
        a if a.starts_with("google_project_service.") => Ok(Some("only from the deployment: the API stays enabled, other workloads may use it")),
        a if a.starts_with("google_storage_bucket_iam_member.handler_audit") => Ok(Some("the handler's access to the audit bucket")),
        _ => Ok(None),
    }
}

/// The pending preview `apply` deploys.
#[derive(Debug, Clone)]
struct Pending {
    preview: String,
    blueprint: Blueprint,
    deployed: bool,
}

/// Escher's deployment in one Google Cloud project and region, and the clients it works with.
pub struct GcpDeployment {
    session: Session,
    config: EscherConfig,
    client: GcpClient,
    setup: ProjectSetup,
    infra_manager: InfraManager,
    tokens: Arc<dyn TokenSource>,
    endpoint_override: Option<String>,
    project: String,
    region: String,
    names: Names,
    pending: Option<Pending>,
}

impl GcpDeployment {
    fn progress(line: &str) {
        eprintln!("  {line}");
    }

    fn member(&self) -> String {
        format!(
            "serviceAccount:{}@{}.iam.gserviceaccount.com",
            self.names.deployer_account, self.project
        )
    }

    fn repository(&self) -> Repository {
        match &self.endpoint_override {
            Some(endpoint) => {
                Repository::at_endpoint(endpoint, &self.project, &self.names.repository)
            }
            None => {
                Repository::artifact_registry(&self.region, &self.project, &self.names.repository)
            }
        }
    }

    fn secret_id(&self, cloud: OtherCloud) -> String {
        format!("{}-credentials-{}", self.names.deployment, cloud.as_str())
    }

    /// The handler binary: `--artifacts DIR`'s, else this workspace's release build (built
    /// when missing or stale, unless `--no-build`).
    fn handler_binary(request: &PreviewRequest<'_>) -> anyhow::Result<PathBuf> {
        if let Some(dir) = request.artifacts {
            let path = dir.join(HANDLER_BINARY);
            if !path.is_file() {
                bail!(
                    "{} is missing: --artifacts names a folder holding the handler built with `cargo build --release -p escher-gcp --bin {HANDLER_BINARY}`",
                    path.display()
                );
            }
            return Ok(path);
        }
        let workspace = Workspace::of_this_build().with_context(|| {
            format!("this escher-provision was installed without its sources, so it cannot build the handler: pass --artifacts DIR holding {HANDLER_BINARY}")
        })?;
        let path = workspace.target_dir().join("release").join(HANDLER_BINARY);
        match (workspace.freshness_of(&path)?, request.build) {
            (ZipFreshness::Fresh, _) => return Ok(path),
            (ZipFreshness::Missing, false) => bail!(
                "{} is missing and --no-build was given: build it with `cargo build --release -p escher-gcp --bin {HANDLER_BINARY}`, or pass --artifacts DIR",
                path.display()
            ),
            (ZipFreshness::Stale { newer }, false) => {
                eprintln!(
                    "warning: {} is older than {}; deploying it anyway (--no-build)",
                    path.display(),
                    newer.display()
                );
                return Ok(path);
            }
            _ => {}
        }
        eprintln!("building {HANDLER_BINARY} (cargo build --release)…");
        let status = std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .args(["build", "--release", "-p", "escher-gcp", "--bin", HANDLER_BINARY])
            .current_dir(&workspace.root)
            .status()
            .context("cargo could not be run to build the handler; install Rust (rustup.rs), or pass --artifacts DIR")?;
        if !status.success() {
            bail!("building {HANDLER_BINARY} failed (cargo's errors are above)");
        }
        Ok(path)
    }

    /// Deletes every object (every generation) in `bucket`; a bucket already gone is fine.
    async fn empty_bucket(&self, bucket: &str) -> anyhow::Result<()> {
        let items = match self
            .client
            .list(
                &LIST_OBJECTS,
                &format!("b/{bucket}/o"),
                &[("versions", "true")],
                "items",
            )
            .await
        {
            Ok(items) => items,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot list gs://{bucket} to empty it"))
            }
        };
        for item in items {
            let Some(name) = item["name"].as_str() else {
                continue;
            };
            let mut query = Vec::new();
            if let Some(generation) = item["generation"].as_str() {
                query.push(("generation", generation));
            }
            let path = format!("b/{bucket}/o/{}", encode_segment(name));
            match self.client.call(&DELETE_OBJECT, &path, &query, None).await {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!(
                        "cannot delete gs://{bucket}/{name}; a retention policy or hold keeps it"
                    )
                    })
                }
            }
        }
        Ok(())
    }

    /// Writes who destroyed what, and when, into the audit bucket (beside the audit trail,
    /// under `destroyed/`), before the deletion: the bucket then always holds an object,
    /// so Cloud Storage refuses Terraform's deletion of it even when the handler never
    /// wrote a record, and the trail ends with its own destruction.
    async fn record_destroy(&self, plan: &DestroyPlan) -> anyhow::Result<()> {
        let Some(state) = self
            .infra_manager
            .deployment(&self.names.deployment)
            .await?
        else {
            return Ok(());
        };
        let outputs = match &state.latest_revision {
            Some(revision) => self.infra_manager.outputs(revision).await?,
            None => BTreeMap::new(),
        };
        let Some(audit) = outputs.get("audit_bucket") else {
            // Never applied: no audit bucket was made.
            return Ok(());
        };
        let at = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let record = destroy_record(&self.session, &state.name, plan, &at);
        let name = format!("destroyed/{at}.json");
        self.setup
            .upload(audit, &name, record.to_string().as_bytes(), "application/json")
            .await
            .with_context(|| {
                format!("the destroy was stopped before anything was deleted: its record could not be written to the audit bucket gs://{audit}")
            })?;
        Self::progress(&format!("recorded in gs://{audit}/{name}"));
        Ok(())
    }

    async fn delete_bucket(&self, bucket: &str) -> anyhow::Result<()> {
        self.empty_bucket(bucket).await?;
        match self
            .client
            .call(&DELETE_BUCKET, &format!("b/{bucket}"), &[], None)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e).with_context(|| format!("cannot delete the bucket gs://{bucket}")),
        }
    }
}

/// One path segment of an object name (`escher/ab12/main.tf` → `escher%2Fab12%2Fmain.tf`).
fn encode_segment(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// What `destroy` writes into the audit bucket before deleting anything.
fn destroy_record(session: &Session, deployment: &str, plan: &DestroyPlan, at: &str) -> Value {
    json!({
        "escher": "destroy",
        "at": at,
        "deployment": deployment,
        "project": session.account,
        "region": session.region,
        "by": session.identity,
        "deleting": plan.delete.iter().map(|d| d.resource.logical_id.clone()).collect::<Vec<_>>(),
        "keeping": plan.keep.iter().map(|k| k.logical_id.clone()).collect::<Vec<_>>(),
        "emptied": plan.emptied,
    })
}

/// `…@sha256:abcd` → `abcd`.
fn image_digest(reference: &str) -> Option<String> {
    reference
        .rsplit_once("@sha256:")
        .map(|(_, hex)| hex.to_string())
}

impl Deployment for GcpDeployment {
    const UNIT: &'static str = "deployment";
    const PREVIEW: &'static str = "preview";

    async fn connect(
        access: &crate::deploy::AccessArgs,
        config: EscherConfig,
    ) -> anyhow::Result<Self> {
        let (env, found) = access::find_for_command(access.project.as_deref(), &config).await?;
        let region = match &access.region {
            Some(r) => r
                .parse::<GcpRegion>()
                .map_err(|e| anyhow::anyhow!("--region: {e}"))?
                .to_string(),
            None => config.gcp.region.to_string(),
        };
        let identity = match (&found.identity, &found.source, &env.gcloud) {
            (Some(email), _, _) => email.clone(),
            (None, CredentialSource::Gcloud, Some(program)) => {
                access::gcloud_value(program, &["config", "get-value", "account"])
                    .await
                    .unwrap_or_else(|| found.source.to_string())
            }
            (None, source, _) => source.to_string(),
        };
        let endpoint_override = access
            .endpoint_url
            .clone()
            .map(|e| e.trim_end_matches('/').to_string());
        let endpoints = match &endpoint_override {
            Some(origin) => Endpoints::all_at(origin),
            None => Endpoints::default(),
        };
        let client = GcpClient::new(endpoints, found.tokens.clone());
        let project = found.project.clone();
        let names = Names::new(config.stack.name.as_str(), &project);
        let mut infra_manager = InfraManager::new(client.clone(), &project, &region);
        let mut poll_every = Duration::from_secs(2);
        if endpoint_override.is_some() {
            // A stand-in answers at once; Google's operations take seconds.
            poll_every = Duration::from_millis(20);
            infra_manager = infra_manager.with_waiting(super::infra_manager::Waiting {
                poll_every,
                give_up_after: Duration::from_secs(120),
            });
        }
        let setup = ProjectSetup {
            client: client.clone(),
            tokens: found.tokens.clone(),
            http: reqwest::Client::new(),
            project: project.clone(),
            region: region.clone(),
            poll_every,
            give_up_after: Duration::from_secs(600),
        };
        eprintln!("Google Cloud project {project} ({region}), as {identity}");
        Ok(GcpDeployment {
            session: Session {
                cloud: Cloud::Gcp,
                name: names.deployment.clone(),
                account: project.clone(),
                region: region.clone(),
                identity,
                label: format!(
                    "deployment `{}` (project {project}, {region})",
                    names.deployment
                ),
            },
            config,
            client,
            setup,
            infra_manager,
            tokens: found.tokens,
            endpoint_override,
            project,
            region,
            names,
            pending: None,
        })
    }

    fn session(&self) -> &Session {
        &self.session
    }

    async fn current(&mut self) -> anyhow::Result<Current> {
        let Some(state) = self
            .infra_manager
            .deployment(&self.names.deployment)
            .await?
        else {
            return Ok(Current::default());
        };
        if matches!(state.state.as_str(), "CREATING" | "UPDATING" | "DELETING") {
            bail!(
                "{} is {} now; wait until it settles (`escher-provision status --cloud gcp`), then run extend again",
                self.session.label,
                state.state
            );
        }
        let outputs = match &state.latest_revision {
            Some(revision) => self.infra_manager.outputs(revision).await?,
            None => BTreeMap::new(),
        };
        Ok(Current {
            deployed: Some(Deployed {
                status: state.state,
                status_reason: state.detail,
                outputs,
            }),
            recreate: None,
        })
    }

    async fn remove_failed(&mut self) -> anyhow::Result<()> {
        // Infrastructure Manager updates a failed deployment; `current` never asks for this.
        self.infra_manager
            .delete(&self.names.deployment, &mut |s| Self::progress(s))
            .await?;
        Ok(())
    }

    async fn preview(&mut self, request: &PreviewRequest<'_>) -> anyhow::Result<Preview> {
        let deployed_state = self
            .infra_manager
            .deployment(&self.names.deployment)
            .await?;
        let deployed = deployed_state.is_some();
        let mut uploaded = Vec::new();

        // The handler first: a missing or unusable binary stops extend before the project
        // is touched.
        let binary = Self::handler_binary(request)?;
        let assembled = image::assemble(&binary, Path::new("/"))?;

        let services = required_services(self.config.gcp.organization.is_some());
        eprintln!("readying project {}:", self.project);
        let enabled = self.setup.enable_services(&services).await?;
        if !enabled.is_empty() {
            Self::progress(&format!("enabled {}", enabled.join(", ")));
        }

        let (email, created) = self
            .setup
            .service_account(&self.names.deployer_account, "Escher Extend deployer")
            .await?;
        Self::progress(&format!(
            "deployer service account {email}{}",
            if created { " created" } else { "" }
        ));
        let added = self.setup.grant(&self.member(), &DEPLOYER_ROLES).await?;
        if !added.is_empty() {
            Self::progress(&format!("granted it {}", added.join(", ")));
            Self::progress("(IAM can take a few minutes to apply new grants: a preview refused a permission the deployer was just given succeeds when extend is run again)");
        }

        let (timezone, _) =
            crate::config::resolve_timezone(request.timezone, &self.config.schedule);
        let permissions = escher_gcp::all_required_permissions();
        let files = crate::render::gcp::render(&GcpRenderInputs {
            config: &self.config,
            timezone,
            permissions: &permissions,
            format: GcpFormat::Terraform,
        })?;
        let bucket = &self.names.blueprint_bucket;
        if self.setup.private_bucket(bucket, "blueprint").await? {
            Self::progress(&format!("blueprint bucket gs://{bucket} created"));
        }
        let (source, sent) = self
            .setup
            .upload_blueprint(bucket, &blueprint_folder(&files), &files)
            .await?;
        if sent {
            Self::progress(&format!("blueprint uploaded to {source}"));
            uploaded.push(source.clone());
        }

        let repository = self.repository();
        let image_reference = if request.dry_run {
            assembled.reference_in(&repository)
        } else {
            if self.setup.docker_repository(&self.names.repository).await? {
                Self::progress(&format!(
                    "image repository {} created",
                    self.names.repository
                ));
            }
            let token =
                self.tokens.token().await.map_err(|e| {
                    anyhow::anyhow!("no access token to push the handler's image: {e}")
                })?;
            let pushed = image::push(&assembled, &repository, &token).await?;
            if !pushed.already_there {
                Self::progress(&format!("image pushed: {}", pushed.reference));
                uploaded.push(pushed.reference.clone());
            }
            pushed.reference
        };

        let blueprint = Blueprint {
            gcs_source: source,
            inputs: BTreeMap::from([
                ("project".to_string(), json!(self.project)),
                ("region".to_string(), json!(self.region)),
                ("handler_image".to_string(), json!(image_reference)),
            ]),
            service_account: format!("projects/{}/serviceAccounts/{email}", self.project),
        };
        let changed_parameters: Vec<String> = match &deployed_state {
            Some(state) => blueprint
                .inputs
                .iter()
                .filter(|(k, v)| state.inputs.get(*k) != Some(*v))
                .map(|(k, _)| k.clone())
                .collect(),
            None => Vec::new(),
        };
        eprintln!("previewing with Infrastructure Manager:");
        let planned = self
            .infra_manager
            .preview(&self.names.deployment, deployed, &blueprint, &mut |s| {
                Self::progress(s)
            })
            .await?;
        let up_to_date = planned.changes.is_empty();
        self.pending = Some(Pending {
            preview: planned.preview,
            blueprint,
            deployed,
        });
        Ok(Preview {
            kind: if deployed {
                PreviewKind::Update
            } else {
                PreviewKind::Create
            },
            changes: planned.changes,
            changed_parameters,
            uploaded,
            up_to_date,
        })
    }

    async fn discard(&mut self) {
        if let Some(pending) = self.pending.take() {
            if let Err(e) = self.infra_manager.delete_preview(&pending.preview).await {
                eprintln!(
                    "warning: the preview {} was left behind: {e}",
                    pending.preview
                );
            }
        }
    }

    async fn apply(&mut self, _preview: &Preview) -> anyhow::Result<Deployed> {
        let pending = self
            .pending
            .take()
            .context("there is no preview to apply; run extend again")?;
        // The preview has served; a failing apply leaves nothing of it behind.
        if let Err(e) = self.infra_manager.delete_preview(&pending.preview).await {
            eprintln!(
                "warning: the preview {} was left behind: {e}",
                pending.preview
            );
        }
        eprintln!("applying with Infrastructure Manager:");
        let (state, outputs) = self
            .infra_manager
            .apply(
                &self.names.deployment,
                pending.deployed,
                &pending.blueprint,
                &mut |s| Self::progress(s),
            )
            .await?;
        Ok(Deployed {
            status: state.state,
            status_reason: state.detail,
            outputs,
        })
    }

    async fn status(&self) -> anyhow::Result<Option<Status>> {
        let Some(state) = self
            .infra_manager
            .deployment(&self.names.deployment)
            .await?
        else {
            return Ok(None);
        };
        let outputs = match &state.latest_revision {
            Some(revision) => self.infra_manager.outputs(revision).await?,
            None => BTreeMap::new(),
        };
        let image = state.inputs.get("handler_image").and_then(Value::as_str);
        let handler = FunctionStatus {
            function: "handler".into(),
            name: format!("{} (Cloud Run)", self.names.service),
            code_sha256: image.and_then(image_digest),
            last_modified: state.update_time.clone(),
            version: state
                .latest_revision
                .as_deref()
                .and_then(|r| r.rsplit('/').next())
                .map(str::to_string),
            error: match image {
                Some(_) => None,
                None => Some("the deployment names no handler image".into()),
            },
        };
        let mut reason = state.detail.clone();
        if !state.errors.is_empty() {
            let errors: Vec<String> = state.errors.iter().map(|e| e.to_string()).collect();
            reason = Some(format!(
                "{}{}",
                reason.map(|r| format!("{r}: ")).unwrap_or_default(),
                errors.join("; ")
            ));
        }
        Ok(Some(Status {
            deployed: Deployed {
                status: state.state,
                status_reason: reason,
                outputs,
            },
            last_updated: state.update_time,
            functions: vec![handler],
            drift: "not available: Infrastructure Manager does not detect drift; `escher-provision extend --cloud gcp --dry-run` previews what differs from escher.toml".into(),
        }))
    }

    async fn destroy_plan(&self, delete_data: bool) -> anyhow::Result<Option<DestroyPlan>> {
        let Some(state) = self
            .infra_manager
            .deployment(&self.names.deployment)
            .await?
        else {
            return Ok(None);
        };
        let (resources, outputs) = match &state.latest_revision {
            Some(revision) => (
                self.infra_manager.resources(revision).await?,
                self.infra_manager.outputs(revision).await?,
            ),
            None => (Vec::new(), BTreeMap::new()),
        };
        let mut plan = DestroyPlan {
            delete: Vec::new(),
            keep: Vec::new(),
            emptied: Vec::new(),
        };
        for (address, kind, physical) in resources {
            match destroy_decision(&address, delete_data) {
                Ok(note) => plan.delete.push(Deletion {
                    resource: Resource {
                        logical_id: address,
                        resource_type: kind,
                        physical_id: physical,
                    },
                    note: note.map(str::to_string),
                }),
                Err(why) => plan.keep.push(KeptResource {
                    logical_id: address,
                    resource_type: kind,
                    physical_id: physical,
                    why: why.to_string(),
                }),
            }
        }
        let extend_files = [
            (
                "blueprints",
                "storage bucket",
                format!("gs://{}", self.names.blueprint_bucket),
            ),
            (
                "handler images",
                "artifact registry repository",
                format!(
                    "projects/{}/locations/{}/repositories/{}",
                    self.project, self.region, self.names.repository
                ),
            ),
        ];
        for (logical, kind, physical) in extend_files {
            if delete_data {
                plan.delete.push(Deletion {
                    resource: Resource {
                        logical_id: logical.into(),
                        resource_type: kind.into(),
                        physical_id: physical,
                    },
                    note: Some("made by extend, outside the deployment".into()),
                });
            } else {
                plan.keep.push(KeptResource {
                    logical_id: logical.into(),
                    resource_type: kind.into(),
                    physical_id: physical,
                    why: "made by extend to deploy from; --delete-data deletes it".into(),
                });
            }
        }
        plan.keep.push(KeptResource {
            logical_id: "deployer".into(),
            resource_type: "service account".into(),
            physical_id: format!(
                "{}@{}.iam.gserviceaccount.com",
                self.names.deployer_account, self.project
            ),
            why: "Infrastructure Manager's deployer, with its project roles; delete it with `gcloud iam service-accounts delete` once no deployment needs it".into(),
        });
        if delete_data {
            if let Some(state_bucket) = outputs.get("state_bucket") {
                plan.emptied.push(state_bucket.clone());
            }
            plan.emptied.push(self.names.blueprint_bucket.clone());
        }
        Ok(Some(plan))
    }

    async fn destroy(&self, plan: &DestroyPlan) -> anyhow::Result<()> {
        let delete_data = plan
            .delete
            .iter()
            .any(|d| d.resource.logical_id == "blueprints");
        for bucket in plan
            .emptied
            .iter()
            .filter(|b| **b != self.names.blueprint_bucket)
        {
            eprintln!("emptying gs://{bucket}…");
            self.empty_bucket(bucket).await?;
        }
        let kept: BTreeSet<&str> = plan.keep.iter().map(|k| k.logical_id.as_str()).collect();
        self.record_destroy(plan).await?;
        eprintln!("deleting with Infrastructure Manager:");
        match self
            .infra_manager
            .delete(&self.names.deployment, &mut |s| Self::progress(s))
            .await
        {
            Ok(()) => {}
            Err(InfraManagerError::Failed { errors, .. })
                if !errors.is_empty()
                    && errors.iter().all(|e| kept.contains(e.resource.as_str())) =>
            {
                for e in &errors {
                    Self::progress(&format!("{} stays: {}", e.resource, e.description));
                }
                // Everything else is gone; the kept buckets leave the deployment as they are.
                self.infra_manager
                    .delete_as(&self.names.deployment, DeletePolicy::Abandon, &mut |s| {
                        Self::progress(s)
                    })
                    .await?;
            }
            Err(e) => return Err(e.into()),
        }
        if delete_data {
            eprintln!("deleting what extend made to deploy from:");
            self.delete_bucket(&self.names.blueprint_bucket).await?;
            Self::progress(&format!("gs://{} deleted", self.names.blueprint_bucket));
            let name = format!(
                "projects/{}/locations/{}/repositories/{}",
                self.project, self.region, self.names.repository
            );
            match self.client.call(&DELETE_REPOSITORY, &name, &[], None).await {
                Ok(_) => Self::progress(&format!("{name} deleted")),
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("cannot delete the image repository {name}"))
                }
            }
        }
        Ok(())
    }

    async fn store_secret(&self, cloud: OtherCloud, value: String) -> anyhow::Result<String> {
        let id = self.secret_id(cloud);
        let name = format!("projects/{}/secrets/{id}", self.project);
        let body = json!({
            "payload": { "data": base64::engine::general_purpose::STANDARD.encode(value.as_bytes()) }
        });
        let version = match self
            .client
            .call(&ADD_SECRET_VERSION, &format!("{name}:addVersion"), &[], Some(&body))
            .await
        {
            Ok(version) => version,
            Err(e) if e.is_not_found() => bail!(
                "the secret {name} does not exist: the deployment makes it; run `escher-provision extend --cloud gcp` first"
            ),
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("cannot store the credentials in {name}; roles/secretmanager.secretVersionAdder holds secretmanager.versions.add")
                })
            }
        };
        let version = version["name"].as_str().unwrap_or(&name).to_string();
        Ok(format!("the Secret Manager version {version}"))
    }

    async fn list_secrets(&self) -> anyhow::Result<SecretList> {
        let prefix = format!("{}-credentials-", self.names.deployment);
        let secrets = self
            .client
            .list(
                &LIST_SECRETS,
                &format!("projects/{}/secrets", self.project),
                &[("filter", &format!("name:{prefix}"))],
                "secrets",
            )
            .await
            .with_context(|| format!("cannot list the secrets of project {}", self.project))?;
        let mut out = Vec::new();
        for secret in secrets {
            let Some(name) = secret["name"].as_str() else {
                continue;
            };
            let Some(cloud) = name
                .rsplit('/')
                .next()
                .and_then(|id| id.strip_prefix(&prefix))
            else {
                continue;
            };
            let versions = self
                .client
                .list(
                    &LIST_SECRET_VERSIONS,
                    &format!("{name}/versions"),
                    &[("filter", "state:ENABLED")],
                    "versions",
                )
                .await
                .with_context(|| format!("cannot list the versions of {name}"))?;
            let newest = versions
                .iter()
                .filter(|v| v["state"] == "ENABLED")
                .filter_map(|v| v["createTime"].as_str())
                .max();
            if let Some(created) = newest {
                out.push(StoredCredential {
                    cloud: cloud.to_string(),
                    parameter: name.to_string(),
                    last_modified: Some(created.to_string()),
                });
            }
        }
        Ok(SecretList {
            location: format!("Secret Manager, project {} ({prefix}*)", self.project),
            secrets: out,
        })
    }

    async fn remove_secret(&self, cloud: OtherCloud) -> anyhow::Result<String> {
        let id = self.secret_id(cloud);
        let name = format!("projects/{}/secrets/{id}", self.project);
        // The secret itself belongs to the deployment (Terraform made it); its versions are
        // the credentials, destroyed for good.
        let versions = match self
            .client
            .list(
                &LIST_SECRET_VERSIONS,
                &format!("{name}/versions"),
                &[],
                "versions",
            )
            .await
        {
            Ok(v) => v,
            Err(e) if e.is_not_found() => bail!(
                "no credentials for {} are stored: {name} does not exist",
                cloud.as_str()
            ),
            Err(e) => return Err(e).with_context(|| format!("cannot list the versions of {name}")),
        };
        let live: Vec<&str> = versions
            .iter()
            .filter(|v| v["state"] != "DESTROYED")
            .filter_map(|v| v["name"].as_str())
            .collect();
        if live.is_empty() {
            bail!("no credentials for {} are stored in {name}", cloud.as_str());
        }
        for version in live {
            self.client
                .call(&DESTROY_SECRET_VERSION, &format!("{version}:destroy"), &[], Some(&json!({})))
                .await
                .with_context(|| format!("cannot destroy {version}; roles/secretmanager.secretVersionManager holds secretmanager.versions.destroy"))?;
        }
        Ok(format!(
            "the credentials in {name} (every version destroyed)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_googles_limits() {
        let names = Names::new("Escher-Extend", "shop-prod-4711");
        assert_eq!(names.deployment, "escher-extend");
        assert_eq!(names.deployer_account, "escher-extend-deployer");
        assert_eq!(
            names.blueprint_bucket,
            "shop-prod-4711-escher-extend-blueprints"
        );
        let long = Names::new(
            "a-very-long-stack-name-for-escher-extend-in-production-use",
            "a-thirty-character-project-id0",
        );
        assert!(
            long.deployer_account.len() <= 30,
            "{}",
            long.deployer_account
        );
        assert!(
            long.blueprint_bucket.len() <= 63,
            "{}",
            long.blueprint_bucket
        );
        assert!(long.service.len() <= 49 && !long.service.ends_with('-'));
    }

    #[test]
    fn destroy_keeps_the_audit_trail_always_and_the_state_unless_asked() {
        assert!(destroy_decision(AUDIT_BUCKET, true).is_err());
        assert!(destroy_decision(AUDIT_BUCKET, false).is_err());
        assert!(destroy_decision(ACCESS_LOGS_BUCKET, true).is_err());
        assert!(destroy_decision(STATE_BUCKET, false).is_err());
        assert!(
            matches!(destroy_decision(STATE_BUCKET, true), Ok(Some(note)) if note.contains("lost"))
        );
        assert_eq!(
            destroy_decision("google_cloud_run_v2_service.handler", false),
            Ok(None)
        );
        assert!(matches!(
            destroy_decision("google_project_service.run", false),
            Ok(Some(note)) if note.contains("stays enabled")
        ));
    }

    #[test]
    fn the_destroy_record_says_who_destroyed_what_and_what_was_kept() {
        let session = Session {
            cloud: Cloud::Gcp,
            name: "escher-extend".into(),
            account: "shop-prod-4711".into(),
            region: "europe-west1".into(),
            identity: "ops@shop.example".into(),
            label: String::new(),
        };
        let plan = DestroyPlan {
            delete: vec![Deletion {
                resource: Resource {
                    logical_id: "google_cloud_run_v2_service.handler".into(),
                    resource_type: "google_cloud_run_v2_service".into(),
                    physical_id: "escher-extend".into(),
                },
                note: None,
            }],
            keep: vec![KeptResource {
                logical_id: AUDIT_BUCKET.into(),
                resource_type: "google_storage_bucket".into(),
                physical_id: "shop-prod-4711-escher-audit".into(),
                why: "kept".into(),
            }],
            emptied: vec![],
        };
        let record = destroy_record(
            &session,
            "projects/p/locations/l/deployments/d",
            &plan,
            "2026-12-04T17:00:00Z",
        );
        assert_eq!(record["by"], "ops@shop.example");
        assert_eq!(
            record["deleting"],
            json!(["google_cloud_run_v2_service.handler"])
        );
        assert_eq!(record["keeping"], json!([AUDIT_BUCKET]));
        assert_eq!(record["at"], "2026-12-04T17:00:00Z");
    }

    #[test]
    fn object_names_are_one_path_segment_and_digests_are_read_from_references() {
        assert_eq!(
            encode_segment("escher/ab12/main.tf"),
            "escher%2Fab12%2Fmain.tf"
        );
        assert_eq!(
            image_digest("europe-west1-docker.pkg.dev/p/r/escher-handler@sha256:ab12").as_deref(),
            Some("ab12")
        );
        assert_eq!(image_digest("registry/p:latest"), None);
    }
}
