//! Infrastructure Manager (`config.googleapis.com/v1`), which runs the rendered Terraform in
//! the user's project: a preview whose resource changes become the change table every cloud
//! prints, the deployment created or updated from the same blueprint, its outputs, and its
//! deletion. Every call is a long-running operation; [`InfraManager`] polls it, reports each
//! new step (init, plan, apply) and, when it fails, reads the deployment or preview back so
//! the error names the Terraform resources and Google's reasons, not just "failed".
//!
//! Deployment Manager is past its end of support (2026-03-31): Infrastructure Manager is the
//! only way Escher deploys on Google Cloud.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use escher_gcp::rest::{GcpClient, GcpError, GcpOperation, HttpMethod, Problem, Service};
use serde_json::{json, Value};

use crate::deploy::seam::{ChangeKind, Replacement, ResourceChange};

/// The newest Terraform Infrastructure Manager runs (its last MPL-licensed line).
pub const TERRAFORM_VERSION: &str = "1.5.7";

const fn config_call(
    id: &'static str,
    method: HttpMethod,
    permission: &'static str,
    mutating: bool,
) -> GcpOperation {
    GcpOperation {
        id,
        service: Service::Config,
        method,
        permission,
        mutating,
        long_running: false,
    }
}

const GET_DEPLOYMENT: GcpOperation = config_call(
    "config.projects.locations.deployments.get",
    HttpMethod::Get,
    "config.deployments.get",
    false,
);
const CREATE_DEPLOYMENT: GcpOperation = config_call(
    "config.projects.locations.deployments.create",
    HttpMethod::Post,
    "config.deployments.create",
    true,
);
const UPDATE_DEPLOYMENT: GcpOperation = config_call(
    "config.projects.locations.deployments.patch",
    HttpMethod::Patch,
    "config.deployments.update",
    true,
);
const DELETE_DEPLOYMENT: GcpOperation = config_call(
    "config.projects.locations.deployments.delete",
    HttpMethod::Delete,
    "config.deployments.delete",
    true,
);
const GET_REVISION: GcpOperation = config_call(
    "config.projects.locations.deployments.revisions.get",
    HttpMethod::Get,
    "config.revisions.get",
    false,
);
const LIST_RESOURCES: GcpOperation = config_call(
    "config.projects.locations.deployments.revisions.resources.list",
    HttpMethod::Get,
    "config.resources.list",
    false,
);
const CREATE_PREVIEW: GcpOperation = config_call(
    "config.projects.locations.previews.create",
    HttpMethod::Post,
    "config.previews.create",
    true,
);
const GET_PREVIEW: GcpOperation = config_call(
    "config.projects.locations.previews.get",
    HttpMethod::Get,
    "config.previews.get",
    false,
);
const DELETE_PREVIEW: GcpOperation = config_call(
    "config.projects.locations.previews.delete",
    HttpMethod::Delete,
    "config.previews.delete",
    true,
);
const LIST_RESOURCE_CHANGES: GcpOperation = config_call(
    "config.projects.locations.previews.resourceChanges.list",
    HttpMethod::Get,
    "config.resourcechanges.list",
    false,
);
const GET_OPERATION: GcpOperation = config_call(
    "config.projects.locations.operations.get",
    HttpMethod::Get,
    "config.operations.get",
    false,
);

/// What a deployment or preview is made from: the uploaded Terraform root module and the
/// values of its variables.
#[derive(Debug, Clone, PartialEq)]
pub struct Blueprint {
    /// `gs://bucket/folder/` holding the `.tf` files.
    pub gcs_source: String,
    pub inputs: BTreeMap<String, Value>,
    /// `projects/{project}/serviceAccounts/{email}`: whom Infrastructure Manager runs
    /// Terraform as (it needs `roles/config.agent` and the roles for what it creates).
    pub service_account: String,
}

impl Blueprint {
    fn body(&self) -> Value {
        let inputs: serde_json::Map<String, Value> = self
            .inputs
            .iter()
            .map(|(k, v)| (k.clone(), json!({ "inputValue": v })))
            .collect();
        json!({
            "terraformBlueprint": {
                "gcsSource": self.gcs_source,
                "inputValues": inputs,
            },
            "serviceAccount": self.service_account,
            "tfVersionConstraint": format!("<= {TERRAFORM_VERSION}"),
        })
    }
}

/// One Terraform error Infrastructure Manager reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerraformError {
    /// The resource's Terraform address, `google_storage_bucket.audit`.
    pub resource: String,
    pub http_status: Option<u16>,
    pub description: String,
}

impl fmt::Display for TerraformError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let resource = if self.resource.is_empty() {
            "(no resource)"
        } else {
            &self.resource
        };
        match self.http_status {
            Some(status) => write!(f, "{resource}: HTTP {status}: {}", self.description),
            None => write!(f, "{resource}: {}", self.description),
        }
    }
}

fn terraform_errors(record: &Value) -> Vec<TerraformError> {
    record["tfErrors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| TerraformError {
            resource: e["resourceAddress"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            http_status: e["httpResponseCode"]
                .as_u64()
                .and_then(|s| u16::try_from(s).ok()),
            description: e["errorDescription"]
                .as_str()
                .or_else(|| e["error"]["message"].as_str())
                .unwrap_or_default()
                .to_string(),
        })
        .collect()
}

/// A deployment as Infrastructure Manager reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentState {
    /// `projects/{p}/locations/{l}/deployments/{id}`.
    pub name: String,
    /// `ACTIVE`, `FAILED`, `CREATING`, `UPDATING`, `DELETING`, …
    pub state: String,
    pub detail: Option<String>,
    pub latest_revision: Option<String>,
    pub errors: Vec<TerraformError>,
    pub update_time: Option<String>,
    /// Where Cloud Build's logs of the last run are.
    pub logs: Option<String>,
    /// The blueprint's input values the deployment was last given (`handler_image`).
    pub inputs: BTreeMap<String, Value>,
}

impl DeploymentState {
    fn from_record(record: &Value) -> DeploymentState {
        let text = |key: &str| record[key].as_str().map(str::to_string);
        DeploymentState {
            name: text("name").unwrap_or_default(),
            state: text("state").unwrap_or_else(|| "STATE_UNSPECIFIED".into()),
            detail: text("stateDetail"),
            latest_revision: text("latestRevision"),
            errors: terraform_errors(record),
            update_time: text("updateTime"),
            logs: text("errorLogs").or_else(|| text("logs")),
            inputs: record
                .pointer("/terraformBlueprint/inputValues")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v["inputValue"].clone()))
                .collect(),
        }
    }
}

/// A finished preview: its name (to delete it afterwards) and the change table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedChanges {
    pub preview: String,
    pub changes: Vec<ResourceChange>,
    /// Resources the plan leaves as they are.
    pub unchanged: usize,
}

/// Why an Infrastructure Manager step did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum InfraManagerError {
    /// A call was refused or could not be made.
    #[error("Infrastructure Manager {}", describe(.0))]
    Call(GcpError),
    /// The preview, apply or deletion ran and failed.
    #[error("{what} of {target} failed: {message}{}{}", list(.errors), logs_hint(.logs))]
    Failed {
        what: &'static str,
        target: String,
        message: String,
        errors: Vec<TerraformError>,
        logs: Option<String>,
    },
    /// The operation did not end in time; it goes on at Google.
    #[error("{what} of {target} was still running after {minutes} min ({operation}); it goes on in Google Cloud: follow it with `escher-provision status --cloud gcp`, or in the console under Infrastructure Manager")]
    StillRunning {
        what: &'static str,
        target: String,
        operation: String,
        minutes: u64,
    },
    /// An answer without what the API promises.
    #[error("Infrastructure Manager's answer for {target} could not be read: {message}")]
    BadAnswer { target: String, message: String },
}

fn list(errors: &[TerraformError]) -> String {
    errors.iter().map(|e| format!("\n  - {e}")).collect()
}

fn logs_hint(logs: &Option<String>) -> String {
    match logs {
        Some(url) => format!("\n  Terraform's full output: {url}"),
        None => String::new(),
    }
}

/// A failed call in words for the person at the laptop (the client's own words speak to a
/// function handling an alert).
fn describe(error: &GcpError) -> String {
    let call = format!("{} on {}", error.operation, error.target);
    match &error.problem {
        Problem::Denied { permission, message } => format!(
            "{call}: permission denied ({message}); grant {permission} to the account escher-provision runs as (roles/config.admin holds every Infrastructure Manager permission)"
        ),
        Problem::Unauthenticated { message } => format!(
            "{call}: the credentials were refused ({message}); sign in again with `gcloud auth application-default login`"
        ),
        Problem::Busy { status, attempts, message } => format!(
            "{call}: Google Cloud stayed busy (HTTP {status}: {message}) for {attempts} attempts; try again in a few minutes"
        ),
        Problem::Unreachable { message } => format!(
            "{call}: Google Cloud could not be reached ({message}); check the network and try again"
        ),
        Problem::NotFound { message } => format!("{call}: not found ({message})"),
        Problem::Rejected { status, message } => {
            format!("{call}: refused (HTTP {status}: {message})")
        }
        other => format!("{call}: {other}"),
    }
}

/// What deleting a deployment does to its resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletePolicy {
    Delete,
    Abandon,
}

/// How long to wait on an operation, and how often to look.
#[derive(Debug, Clone, Copy)]
pub struct Waiting {
    pub poll_every: Duration,
    pub give_up_after: Duration,
}

impl Default for Waiting {
    fn default() -> Self {
        // Terraform in Cloud Build: a first deployment of Escher takes a few minutes, a
        // Cloud Run service with a new image up to ten.
        Waiting {
            poll_every: Duration::from_secs(5),
            give_up_after: Duration::from_secs(45 * 60),
        }
    }
}

/// Infrastructure Manager in one project and region.
#[derive(Debug)]
pub struct InfraManager {
    client: GcpClient,
    /// `projects/{project}/locations/{region}`.
    location: String,
    waiting: Waiting,
}

impl InfraManager {
    pub fn new(client: GcpClient, project: &str, region: &str) -> InfraManager {
        InfraManager {
            client,
            location: format!("projects/{project}/locations/{region}"),
            waiting: Waiting::default(),
        }
    }

    pub fn with_waiting(mut self, waiting: Waiting) -> InfraManager {
        self.waiting = waiting;
        self
    }

    /// The full name of the deployment `id`.
    pub fn deployment_name(&self, id: &str) -> String {
        format!("{}/deployments/{id}", self.location)
    }

    fn call_error(error: GcpError) -> InfraManagerError {
        InfraManagerError::Call(error)
    }

    /// The deployment, or `None` when there is none.
    pub async fn deployment(&self, id: &str) -> Result<Option<DeploymentState>, InfraManagerError> {
        let name = self.deployment_name(id);
        match self.client.call(&GET_DEPLOYMENT, &name, &[], None).await {
            Ok(record) => Ok(Some(DeploymentState::from_record(&record))),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(Self::call_error(e)),
        }
    }

    /// Plans `blueprint` against the deployment `id` (or against nothing, for a first
    /// deployment) and returns the change table. The preview stays until
    /// [`InfraManager::delete_preview`].
    pub async fn preview(
        &self,
        id: &str,
        deployed: bool,
        blueprint: &Blueprint,
        on_step: &mut dyn FnMut(&str),
    ) -> Result<PlannedChanges, InfraManagerError> {
        let mut body = blueprint.body();
        if deployed {
            body["deployment"] = json!(self.deployment_name(id));
        }
        body["previewMode"] = json!("DEFAULT");
        body["labels"] = json!({ "escher-deployment": id });
        let started = self
            .client
            .call(
                &CREATE_PREVIEW,
                &format!("{}/previews", self.location),
                &[],
                Some(&body),
            )
            .await
            .map_err(Self::call_error)?;
        // The operation names its preview from the start: what a failure is read back from.
        let target = started["metadata"]["target"].as_str().map(str::to_string);
        let done = self
            .wait("the preview", &format!("deployment {id}"), started, on_step)
            .await;
        let name = match done {
            Ok(operation) => operation["response"]["name"]
                .as_str()
                .map(str::to_string)
                .or(target)
                .ok_or_else(|| InfraManagerError::BadAnswer {
                    target: format!("the preview of {id}"),
                    message: "the finished operation names no preview".into(),
                })?,
            Err(InfraManagerError::Failed {
                what,
                target: failed,
                message,
                ..
            }) => {
                let Some(preview) = target else {
                    return Err(InfraManagerError::Failed {
                        what,
                        target: failed,
                        message,
                        errors: Vec::new(),
                        logs: None,
                    });
                };
                let record = self
                    .client
                    .call(&GET_PREVIEW, &preview, &[], None)
                    .await
                    .ok();
                // A failed preview is of no further use: nothing is left behind.
                let _ = self.delete_preview(&preview).await;
                let record = record.unwrap_or_default();
                let code = record["errorCode"]
                    .as_str()
                    .filter(|c| *c != "ERROR_CODE_UNSPECIFIED");
                return Err(InfraManagerError::Failed {
                    what,
                    target: failed,
                    message: match code {
                        Some(code) => format!("{message} ({code})"),
                        None => message,
                    },
                    errors: terraform_errors(&record),
                    logs: record["errorLogs"]
                        .as_str()
                        .or_else(|| record["logs"].as_str())
                        .map(str::to_string),
                });
            }
            Err(e) => return Err(e),
        };
        let items = self
            .client
            .list(
                &LIST_RESOURCE_CHANGES,
                &format!("{name}/resourceChanges"),
                &[],
                "resourceChanges",
            )
            .await
            .map_err(Self::call_error)?;
        let unchanged = items
            .iter()
            .filter(|c| c["intent"].as_str() == Some("UNCHANGED"))
            .count();
        Ok(PlannedChanges {
            preview: name,
            changes: changes(&items),
            unchanged,
        })
    }

    /// Deletes a preview; a preview already gone is fine.
    pub async fn delete_preview(&self, name: &str) -> Result<(), InfraManagerError> {
        match self.client.call(&DELETE_PREVIEW, name, &[], None).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(Self::call_error(e)),
        }
    }

    /// Creates (`deployed` false) or updates the deployment `id` from `blueprint`, waits for
    /// Terraform to finish and returns the deployment with its outputs.
    pub async fn apply(
        &self,
        id: &str,
        deployed: bool,
        blueprint: &Blueprint,
        on_step: &mut dyn FnMut(&str),
    ) -> Result<(DeploymentState, BTreeMap<String, String>), InfraManagerError> {
        let mut body = blueprint.body();
        body["labels"] = json!({ "escher-deployment": id });
        let started = if deployed {
            self.client
                .call(
                    &UPDATE_DEPLOYMENT,
                    &self.deployment_name(id),
                    &[],
                    Some(&body),
                )
                .await
        } else {
            self.client
                .call(
                    &CREATE_DEPLOYMENT,
                    &format!("{}/deployments", self.location),
                    &[("deploymentId", id)],
                    Some(&body),
                )
                .await
        }
        .map_err(Self::call_error)?;
        let what = if deployed {
            "the update"
        } else {
            "the creation"
        };
        match self
            .wait(what, &format!("deployment {id}"), started, on_step)
            .await
        {
            Ok(_) => {}
            Err(InfraManagerError::Failed {
                what,
                target,
                message,
                ..
            }) => {
                // The deployment holds the Terraform errors and where the logs are.
                let state = self.deployment(id).await.ok().flatten();
                let (errors, logs, message) = match state {
                    Some(s) => (s.errors, s.logs, s.detail.unwrap_or(message)),
                    None => (Vec::new(), None, message),
                };
                return Err(InfraManagerError::Failed {
                    what,
                    target,
                    message,
                    errors,
                    logs,
                });
            }
            Err(e) => return Err(e),
        }
        let state = self
            .deployment(id)
            .await?
            .ok_or_else(|| InfraManagerError::BadAnswer {
                target: format!("deployment {id}"),
                message: "it was applied but cannot be found".into(),
            })?;
        let outputs = match &state.latest_revision {
            Some(revision) => self.outputs(revision).await?,
            None => BTreeMap::new(),
        };
        Ok((state, outputs))
    }

    /// The Terraform outputs a revision applied, as text (strings as they are, other values
    /// as JSON); sensitive ones are left out.
    pub async fn outputs(
        &self,
        revision: &str,
    ) -> Result<BTreeMap<String, String>, InfraManagerError> {
        let record = self
            .client
            .call(&GET_REVISION, revision, &[], None)
            .await
            .map_err(Self::call_error)?;
        Ok(record["applyResults"]["outputs"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, output)| output["sensitive"] != true)
            .map(|(key, output)| {
                let value = match &output["value"] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (key.clone(), value)
            })
            .collect())
    }

    /// The Terraform resources a revision holds: `(address, type, id)`.
    pub async fn resources(
        &self,
        revision: &str,
    ) -> Result<Vec<(String, String, String)>, InfraManagerError> {
        let items = self
            .client
            .list(
                &LIST_RESOURCES,
                &format!("{revision}/resources"),
                &[],
                "resources",
            )
            .await
            .map_err(Self::call_error)?;
        Ok(items
            .iter()
            .filter_map(|r| {
                let info = &r["terraformInfo"];
                let address = info["address"].as_str()?.to_string();
                let kind = info["type"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| address.split('.').next().unwrap_or_default().to_string());
                let id = info["id"].as_str().unwrap_or_default().to_string();
                Some((address, kind, id))
            })
            .collect())
    }

    /// Deletes the deployment `id` and what Terraform created.
    pub async fn delete(
        &self,
        id: &str,
        on_step: &mut dyn FnMut(&str),
    ) -> Result<(), InfraManagerError> {
        self.delete_as(id, DeletePolicy::Delete, on_step).await
    }

    /// Deletes the deployment `id`: with [`DeletePolicy::Delete`] Terraform destroys what
    /// it holds; with [`DeletePolicy::Abandon`] only the deployment goes and its resources
    /// stay in the project, no longer managed.
    pub async fn delete_as(
        &self,
        id: &str,
        policy: DeletePolicy,
        on_step: &mut dyn FnMut(&str),
    ) -> Result<(), InfraManagerError> {
        let policy = match policy {
            DeletePolicy::Delete => "DELETE",
            DeletePolicy::Abandon => "ABANDON",
        };
        let started = match self
            .client
            .call(
                &DELETE_DEPLOYMENT,
                &self.deployment_name(id),
                &[("deletePolicy", policy)],
                None,
            )
            .await
        {
            Ok(op) => op,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(Self::call_error(e)),
        };
        match self
            .wait(
                "the deletion",
                &format!("deployment {id}"),
                started,
                on_step,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(InfraManagerError::Failed {
                what,
                target,
                message,
                ..
            }) => {
                let state = self.deployment(id).await.ok().flatten();
                let (errors, logs) = state.map(|s| (s.errors, s.logs)).unwrap_or_default();
                Err(InfraManagerError::Failed {
                    what,
                    target,
                    message,
                    errors,
                    logs,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Polls the operation until it is done; each new step is reported once.
    async fn wait(
        &self,
        what: &'static str,
        target: &str,
        mut operation: Value,
        on_step: &mut dyn FnMut(&str),
    ) -> Result<Value, InfraManagerError> {
        let started = Instant::now();
        let mut last_step = String::new();
        loop {
            let step = operation["metadata"]["deploymentMetadata"]["step"]
                .as_str()
                .or_else(|| operation["metadata"]["previewMetadata"]["step"].as_str())
                .unwrap_or_default();
            if !step.is_empty() && step != last_step {
                on_step(step_words(step));
                last_step = step.to_string();
            }
            if operation["done"] == true {
                return match operation.get("error") {
                    Some(error) if !error.is_null() => Err(InfraManagerError::Failed {
                        what,
                        target: target.to_string(),
                        message: error["message"]
                            .as_str()
                            .unwrap_or("no reason given")
                            .to_string(),
                        errors: Vec::new(),
                        logs: None,
                    }),
                    _ => Ok(operation),
                };
            }
            let name = operation["name"].as_str().unwrap_or_default().to_string();
            if name.is_empty() {
                return Err(InfraManagerError::BadAnswer {
                    target: target.to_string(),
                    message: "the long-running operation has no name to follow".into(),
                });
            }
            if started.elapsed() > self.waiting.give_up_after {
                return Err(InfraManagerError::StillRunning {
                    what,
                    target: target.to_string(),
                    operation: name,
                    minutes: self.waiting.give_up_after.as_secs() / 60,
                });
            }
            tokio::time::sleep(self.waiting.poll_every).await;
            operation = self
                .client
                .call(&GET_OPERATION, &name, &[], None)
                .await
                .map_err(Self::call_error)?;
        }
    }
}

/// A step of Infrastructure Manager's run, in words.
fn step_words(step: &str) -> &'static str {
    match step {
        "PREPARING_STORAGE_BUCKET" => "preparing Infrastructure Manager's storage bucket",
        "DOWNLOADING_BLUEPRINT" => "downloading the blueprint",
        "RUNNING_TF_INIT" => "terraform init",
        "RUNNING_TF_PLAN" => "terraform plan",
        "RUNNING_TF_APPLY" => "terraform apply",
        "RUNNING_TF_DESTROY" => "terraform destroy",
        "RUNNING_TF_VALIDATE" => "terraform validate",
        "RUNNING_QUOTA_VALIDATION" => "checking quotas",
        "FETCHING_DEPLOYMENT" => "reading the deployment",
        "LOCKING_DEPLOYMENT" => "locking the deployment",
        "UNLOCKING_DEPLOYMENT" => "unlocking the deployment",
        "VALIDATING_REPOSITORY" => "checking the blueprint's source",
        "SUCCEEDED" => "done",
        "FAILED" => "failed",
        _ => "working",
    }
}

/// The rows of a preview's resource changes; unchanged resources are left out, so an empty
/// table means nothing would change.
pub fn changes(items: &[Value]) -> Vec<ResourceChange> {
    let mut rows: Vec<ResourceChange> = items
        .iter()
        .filter_map(|change| {
            let (action, replacement) = match change["intent"].as_str().unwrap_or_default() {
                "CREATE" => (ChangeKind::Add, Replacement::No),
                "UPDATE" => (ChangeKind::Modify, Replacement::No),
                "RECREATE" => (ChangeKind::Modify, Replacement::Yes),
                "DELETE" => (ChangeKind::Remove, Replacement::No),
                "UNCHANGED" => return None,
                _ => (ChangeKind::Other, Replacement::Conditional),
            };
            let info = &change["terraformInfo"];
            Some(ResourceChange {
                action,
                logical_id: info["address"]
                    .as_str()
                    .or_else(|| change["name"].as_str())
                    .unwrap_or_default()
                    .to_string(),
                resource_type: info["type"].as_str().unwrap_or_default().to_string(),
                replacement,
            })
        })
        .collect();
    rows.sort_by(|a, b| {
        (a.resource_type.as_str(), a.logical_id.as_str())
            .cmp(&(b.resource_type.as_str(), b.logical_id.as_str()))
    });
    rows
}
