//! What must stand in the project before Infrastructure Manager can preview Escher: the
//! APIs enabled, the service account Terraform runs as with the predefined roles for what
//! the blueprint creates (never owner or editor), the blueprint's files in a private bucket
//! under a folder named by their content, and the Artifact Registry repository the handler's
//! image goes to. Every step looks first and changes only what is missing, so a second
//! `extend` makes no call that changes anything.
//!
//! The pure parts (the roles to add to a policy, the blueprint's folder) are functions of
//! their inputs, tested here.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use escher_gcp::rest::{
    GcpClient, GcpError, GcpOperation, HttpMethod, Problem, Service, TokenSource,
};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::render::RenderedFile;

/// Infrastructure Manager's own role: it lets the account run Terraform in Cloud Build and
/// write the deployment's state and logs.
pub const CONFIG_AGENT: &str = "roles/config.agent";

/// What the deployer account may do beyond running Terraform: one predefined role per kind
/// of resource the blueprint creates (its APIs, buckets, service accounts and who may act
/// as them, the remediation role and its binding, secrets, the Cloud Run service, Pub/Sub,
/// the log sink, the alerting and the scheduler job).
pub const DEPLOYER_ROLES: [&str; 14] = [
    CONFIG_AGENT,
    "roles/serviceusage.serviceUsageAdmin",
    "roles/storage.admin",
    "roles/iam.serviceAccountAdmin",
    "roles/iam.serviceAccountUser",
    "roles/iam.roleAdmin",
    "roles/resourcemanager.projectIamAdmin",
    "roles/secretmanager.admin",
    "roles/run.admin",
    "roles/pubsub.admin",
    "roles/logging.configWriter",
    "roles/monitoring.notificationChannelEditor",
    "roles/monitoring.alertPolicyEditor",
    "roles/cloudscheduler.admin",
];

/// Roles no deployer is ever given: they hold everything in the project.
const BASIC_ROLES: [&str; 3] = ["roles/owner", "roles/editor", "roles/viewer"];

/// The APIs Infrastructure Manager, this bootstrap and the blueprint call.
pub fn required_services(with_scc: bool) -> Vec<&'static str> {
    let mut services = vec![
        "config.googleapis.com",
        "cloudresourcemanager.googleapis.com",
        "serviceusage.googleapis.com",
        "iam.googleapis.com",
        "storage.googleapis.com",
        "artifactregistry.googleapis.com",
        "run.googleapis.com",
        "pubsub.googleapis.com",
        "secretmanager.googleapis.com",
        "cloudscheduler.googleapis.com",
        "logging.googleapis.com",
        "monitoring.googleapis.com",
    ];
    if with_scc {
        services.push("securitycenter.googleapis.com");
    }
    services
}

/// Adds `member` to each of `roles` in an IAM policy (`bindings[]`), leaving every other
/// binding and any binding with a condition as it is; returns the roles it added. A basic
/// role is refused: the deployer gets only what it needs.
pub fn add_bindings(policy: &mut Value, member: &str, roles: &[&str]) -> Vec<String> {
    let mut added = Vec::new();
    if !policy["bindings"].is_array() {
        policy["bindings"] = json!([]);
    }
    for role in roles {
        if BASIC_ROLES.contains(role) {
            continue;
        }
        let Some(bindings) = policy["bindings"].as_array_mut() else {
            break;
        };
        let unconditional = bindings
            .iter_mut()
            .find(|b| b["role"] == *role && b.get("condition").is_none_or(Value::is_null));
        match unconditional {
            Some(binding) => {
                let members = binding["members"].as_array().cloned().unwrap_or_default();
                if members.iter().any(|m| m == member) {
                    continue;
                }
                let mut members = members;
                members.push(json!(member));
                binding["members"] = json!(members);
            }
            None => bindings.push(json!({ "role": role, "members": [member] })),
        }
        added.push(role.to_string());
    }
    added
}

/// The folder a blueprint is uploaded to: `escher/<first 16 hex of its SHA-256>/`, over
/// every file's name and contents in name order, so the same files land in the same folder
/// and Infrastructure Manager sees the same source.
pub fn blueprint_folder(files: &[RenderedFile]) -> String {
    let mut sorted: Vec<&RenderedFile> = files.iter().collect();
    sorted.sort_by_key(|f| f.name);
    let mut hash = Sha256::new();
    for file in sorted {
        hash.update(file.name.as_bytes());
        hash.update([0]);
        hash.update((file.contents.len() as u64).to_be_bytes());
        hash.update(file.contents.as_bytes());
    }
    let hex: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("escher/{}/", &hex[..16])
}

/// Why a bootstrap step failed, in words for the person at the laptop.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("{step} failed: {}", words(.error, .grant))]
    Call {
        step: String,
        /// The role that holds the permission, for a refusal.
        grant: &'static str,
        error: GcpError,
    },
    #[error("{step} failed: {message}")]
    Other { step: String, message: String },
}

fn words(error: &GcpError, grant: &str) -> String {
    let call = format!("{} on {}", error.operation, error.target);
    match &error.problem {
        Problem::Denied { permission, message } => format!(
            "{call}: permission denied ({message}); grant {permission} ({grant} holds it) to the account escher-provision runs as"
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
        Problem::Rejected { status, message } | Problem::Conflict { status, message } => {
            format!("{call}: refused (HTTP {status}: {message})")
        }
        Problem::NotFound { message } => format!("{call}: not found ({message})"),
        other => format!("{call}: {other}"),
    }
}

const fn op(
    id: &'static str,
    service: Service,
    method: HttpMethod,
    permission: &'static str,
    mutating: bool,
) -> GcpOperation {
    GcpOperation {
        id,
        service,
        method,
        permission,
        mutating,
        long_running: false,
    }
}

const BATCH_GET_SERVICES: GcpOperation = op(
    "serviceusage.services.batchGet",
    Service::ServiceUsage,
    HttpMethod::Get,
    "serviceusage.services.get",
    false,
);
const BATCH_ENABLE: GcpOperation = op(
    "serviceusage.services.batchEnable",
    Service::ServiceUsage,
    HttpMethod::Post,
    "serviceusage.services.enable",
    true,
);
const SERVICE_USAGE_OPERATION: GcpOperation = op(
    "serviceusage.operations.get",
    Service::ServiceUsage,
    HttpMethod::Get,
    "serviceusage.operations.get",
    false,
);
const GET_SERVICE_ACCOUNT: GcpOperation = op(
    "iam.projects.serviceAccounts.get",
    Service::Iam,
    HttpMethod::Get,
    "iam.serviceAccounts.get",
    false,
);
const CREATE_SERVICE_ACCOUNT: GcpOperation = op(
    "iam.projects.serviceAccounts.create",
    Service::Iam,
    HttpMethod::Post,
    "iam.serviceAccounts.create",
    true,
);
const GET_PROJECT_POLICY: GcpOperation = op(
    "cloudresourcemanager.projects.getIamPolicy",
    Service::ResourceManager,
    HttpMethod::Post,
    "resourcemanager.projects.getIamPolicy",
    false,
);
const SET_PROJECT_POLICY: GcpOperation = op(
    "cloudresourcemanager.projects.setIamPolicy",
    Service::ResourceManager,
    HttpMethod::Post,
    "resourcemanager.projects.setIamPolicy",
    true,
);
const GET_BUCKET: GcpOperation = op(
    "storage.buckets.get",
    Service::Storage,
    HttpMethod::Get,
    "storage.buckets.get",
    false,
);
pub(crate) const INSERT_BUCKET: GcpOperation = op(
    "storage.buckets.insert",
    Service::Storage,
    HttpMethod::Post,
    "storage.buckets.create",
    true,
);
pub(crate) const DELETE_BUCKET: GcpOperation = op(
    "storage.buckets.delete",
    Service::Storage,
    HttpMethod::Delete,
    "storage.buckets.delete",
    true,
);
pub(crate) const LIST_OBJECTS: GcpOperation = op(
    "storage.objects.list",
    Service::Storage,
    HttpMethod::Get,
    "storage.objects.list",
    false,
);
pub(crate) const DELETE_OBJECT: GcpOperation = op(
    "storage.objects.delete",
    Service::Storage,
    HttpMethod::Delete,
    "storage.objects.delete",
    true,
);
const UPLOAD_OBJECT: GcpOperation = op(
    "storage.objects.insert",
    Service::StorageUpload,
    HttpMethod::Post,
    "storage.objects.create",
    true,
);
const GET_REPOSITORY: GcpOperation = op(
    "artifactregistry.projects.locations.repositories.get",
    Service::ArtifactRegistry,
    HttpMethod::Get,
    "artifactregistry.repositories.get",
    false,
);
const CREATE_REPOSITORY: GcpOperation = op(
    "artifactregistry.projects.locations.repositories.create",
    Service::ArtifactRegistry,
    HttpMethod::Post,
    "artifactregistry.repositories.create",
    true,
);
pub(crate) const DELETE_REPOSITORY: GcpOperation = op(
    "artifactregistry.projects.locations.repositories.delete",
    Service::ArtifactRegistry,
    HttpMethod::Delete,
    "artifactregistry.repositories.delete",
    true,
);

/// The project's side of the bootstrap: its APIs, IAM, buckets and registry.
#[derive(Debug, Clone)]
pub struct ProjectSetup {
    pub client: GcpClient,
    pub tokens: Arc<dyn TokenSource>,
    pub http: reqwest::Client,
    pub project: String,
    pub region: String,
    /// How long to wait for Service Usage's operation, and how often to look.
    pub poll_every: Duration,
    pub give_up_after: Duration,
}

fn call_error(
    step: impl Into<String>,
    grant: &'static str,
) -> impl FnOnce(GcpError) -> BootstrapError {
    let step = step.into();
    move |error| BootstrapError::Call { step, grant, error }
}

impl ProjectSetup {
    /// Enables those of `services` that are not (one batch) and waits; returns them.
    pub async fn enable_services(&self, services: &[&str]) -> Result<Vec<String>, BootstrapError> {
        let step = format!("enabling the APIs in project {}", self.project);
        let grant = "roles/serviceusage.serviceUsageAdmin";
        let parent = format!("projects/{}", self.project);
        let names: Vec<String> = services
            .iter()
            .map(|s| format!("{parent}/services/{s}"))
            .collect();
        let query: Vec<(&str, &str)> = names.iter().map(|n| ("names", n.as_str())).collect();
        let states = self
            .client
            .call(
                &BATCH_GET_SERVICES,
                &format!("{parent}/services:batchGet"),
                &query,
                None,
            )
            .await
            .map_err(call_error(step.clone(), grant))?;
        let enabled: BTreeSet<&str> = states["services"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["state"] == "ENABLED")
            .filter_map(|s| s["name"].as_str())
            .filter_map(|n| n.rsplit('/').next())
            .collect();
        let missing: Vec<String> = services
            .iter()
            .filter(|s| !enabled.contains(**s))
            .map(|s| s.to_string())
            .collect();
        if missing.is_empty() {
            return Ok(missing);
        }
        let mut operation = self
            .client
            .call(
                &BATCH_ENABLE,
                &format!("{parent}/services:batchEnable"),
                &[],
                Some(&json!({ "serviceIds": missing })),
            )
            .await
            .map_err(call_error(step.clone(), grant))?;
        let started = Instant::now();
        while operation["done"] != true {
            let Some(name) = operation["name"].as_str().map(str::to_string) else {
                return Err(BootstrapError::Other {
                    step,
                    message: "Service Usage answered without an operation to follow".into(),
                });
            };
            if started.elapsed() > self.give_up_after {
                return Err(BootstrapError::Other {
                    step,
                    message: format!(
                        "{name} was still running after {} s; run extend again in a few minutes",
                        self.give_up_after.as_secs()
                    ),
                });
            }
            tokio::time::sleep(self.poll_every).await;
            operation = self
                .client
                .call(&SERVICE_USAGE_OPERATION, &name, &[], None)
                .await
                .map_err(call_error(step.clone(), grant))?;
        }
        if let Some(message) = operation["error"]["message"].as_str() {
            return Err(BootstrapError::Other {
                step,
                message: message.to_string(),
            });
        }
        Ok(missing)
    }

    /// The service account `account_id` (created when missing); returns its e-mail and
    /// whether it was created.
    pub async fn service_account(
        &self,
        account_id: &str,
        display_name: &str,
    ) -> Result<(String, bool), BootstrapError> {
        let email = format!("{account_id}@{}.iam.gserviceaccount.com", self.project);
        let step = format!("the deployer service account {email}");
        let grant = "roles/iam.serviceAccountAdmin";
        let path = format!("projects/{}/serviceAccounts/{email}", self.project);
        match self
            .client
            .call(&GET_SERVICE_ACCOUNT, &path, &[], None)
            .await
        {
            Ok(_) => return Ok((email, false)),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(call_error(step, grant)(e)),
        }
        let body = json!({
            "accountId": account_id,
            "serviceAccount": {
                "displayName": display_name,
                "description": "Escher Extend: the account Infrastructure Manager runs Terraform as.",
            },
        });
        self.client
            .call(
                &CREATE_SERVICE_ACCOUNT,
                &format!("projects/{}/serviceAccounts", self.project),
                &[],
                Some(&body),
            )
            .await
            .map_err(call_error(step, grant))?;
        Ok((email, true))
    }

    /// Grants `roles` to `member` on the project: read the policy, add what is missing,
    /// write it back with the etag read (Google refuses a write over someone else's
    /// change; then it is read again). Returns the roles added.
    pub async fn grant(&self, member: &str, roles: &[&str]) -> Result<Vec<String>, BootstrapError> {
        let step = format!("granting {member} its roles on project {}", self.project);
        let grant = "roles/resourcemanager.projectIamAdmin";
        let resource = format!("projects/{}", self.project);
        for attempt in 1..=3 {
            let mut policy = self
                .client
                .call(
                    &GET_PROJECT_POLICY,
                    &format!("{resource}:getIamPolicy"),
                    &[],
                    Some(&json!({ "options": { "requestedPolicyVersion": 3 } })),
                )
                .await
                .map_err(call_error(step.clone(), grant))?;
            let added = add_bindings(&mut policy, member, roles);
            if added.is_empty() {
                return Ok(added);
            }
            policy["version"] = json!(3);
            match self
                .client
                .call(
                    &SET_PROJECT_POLICY,
                    &format!("{resource}:setIamPolicy"),
                    &[],
                    Some(&json!({ "policy": policy })),
                )
                .await
            {
                Ok(_) => return Ok(added),
                Err(e) if attempt < 3 && is_conflict(&e) => continue,
                Err(e) => return Err(call_error(step, grant)(e)),
            }
        }
        unreachable!("the loop returns on its last attempt")
    }

    /// A private bucket (uniform access, public access prevention enforced) in the
    /// region; returns whether it was created.
    pub async fn private_bucket(&self, name: &str, purpose: &str) -> Result<bool, BootstrapError> {
        let step = format!("the {purpose} bucket gs://{name}");
        match self
            .client
            .call(&GET_BUCKET, &format!("b/{name}"), &[], None)
            .await
        {
            Ok(_) => return Ok(false),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(call_error(step, "roles/storage.admin")(e)),
        }
        let body = json!({
            "name": name,
            "location": self.region,
            "storageClass": "STANDARD",
            "iamConfiguration": {
                "uniformBucketLevelAccess": { "enabled": true },
                "publicAccessPrevention": "enforced",
            },
            "labels": { "escher-extend": "blueprint" },
        });
        match self
            .client
            .call(
                &INSERT_BUCKET,
                "b",
                &[("project", &self.project)],
                Some(&body),
            )
            .await
        {
            Ok(_) => Ok(true),
            // 409 after a 404: the name (global) is someone else's.
            Err(e) if is_conflict(&e) => Err(BootstrapError::Other {
                step,
                message: format!("the name gs://{name} is taken by another project; bucket names are global, so choose another stack name in escher.toml"),
            }),
            Err(e) => Err(call_error(step, "roles/storage.admin")(e)),
        }
    }

    /// The object names under `prefix` in `bucket`.
    pub async fn object_names(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<BTreeSet<String>, BootstrapError> {
        let items = self
            .client
            .list(
                &LIST_OBJECTS,
                &format!("b/{bucket}/o"),
                &[("prefix", prefix)],
                "items",
            )
            .await
            .map_err(call_error(
                format!("listing gs://{bucket}/{prefix}"),
                "roles/storage.admin",
            ))?;
        Ok(items
            .iter()
            .filter_map(|o| o["name"].as_str().map(str::to_string))
            .collect())
    }

    /// Uploads the blueprint's files to `gs://bucket/folder` unless all are there already;
    /// returns the `gs://` source and whether anything was uploaded.
    pub async fn upload_blueprint(
        &self,
        bucket: &str,
        folder: &str,
        files: &[RenderedFile],
    ) -> Result<(String, bool), BootstrapError> {
        let source = format!("gs://{bucket}/{folder}");
        let there = self.object_names(bucket, folder).await?;
        let missing: Vec<&RenderedFile> = files
            .iter()
            .filter(|f| !there.contains(&format!("{folder}{}", f.name)))
            .collect();
        for file in &missing {
            self.upload(
                bucket,
                &format!("{folder}{}", file.name),
                file.contents.as_bytes(),
                "text/plain; charset=utf-8",
            )
            .await?;
        }
        Ok((source, !missing.is_empty()))
    }

    /// One object, by Cloud Storage's simple media upload (a body that is not JSON, so
    /// not through the JSON client).
    pub async fn upload(
        &self,
        bucket: &str,
        name: &str,
        bytes: &[u8],
        content_type: &str,
    ) -> Result<(), BootstrapError> {
        let step = format!("uploading gs://{bucket}/{name}");
        let token = self
            .tokens
            .token()
            .await
            .map_err(|e| BootstrapError::Other {
                step: step.clone(),
                message: e.to_string(),
            })?;
        let url = format!("{}/b/{bucket}/o", self.client.endpoints().storage_upload);
        let response = self
            .http
            .post(&url)
            .query(&[("uploadType", "media"), ("name", name)])
            .bearer_auth(token)
            .header("Content-Type", content_type)
            .body(bytes.to_vec())
            .send()
            .await
            .map_err(|e| BootstrapError::Other {
                step: step.clone(),
                message: format!(
                    "Cloud Storage could not be reached ({e}); check the network and try again"
                ),
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let said: Value = response.json().await.unwrap_or_default();
        let message = said["error"]["message"]
            .as_str()
            .unwrap_or("no reason given");
        let hint = match status.as_u16() {
            403 => format!("; grant {} (roles/storage.admin holds it), or, if the bucket is someone else's, set another name", UPLOAD_OBJECT.permission),
            _ => String::new(),
        };
        Err(BootstrapError::Other {
            step,
            message: format!("HTTP {}: {message}{hint}", status.as_u16()),
        })
    }

    /// The Docker repository `repository_id` in the region (created when missing); returns
    /// whether it was created.
    pub async fn docker_repository(&self, repository_id: &str) -> Result<bool, BootstrapError> {
        let parent = format!("projects/{}/locations/{}", self.project, self.region);
        let name = format!("{parent}/repositories/{repository_id}");
        let step = format!("the Artifact Registry repository {name}");
        let grant = "roles/artifactregistry.admin";
        match self.client.call(&GET_REPOSITORY, &name, &[], None).await {
            Ok(_) => return Ok(false),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(call_error(step, grant)(e)),
        }
        let body = json!({
            "format": "DOCKER",
            "description": "Escher Extend: the handler's container images.",
            "labels": { "escher-extend": "handler-image" },
        });
        let operation = self
            .client
            .call(
                &CREATE_REPOSITORY,
                &format!("{parent}/repositories"),
                &[("repositoryId", repository_id)],
                Some(&body),
            )
            .await
            .map_err(call_error(step.clone(), grant))?;
        if let Some(message) = operation["error"]["message"].as_str() {
            return Err(BootstrapError::Other {
                step,
                message: message.to_string(),
            });
        }
        Ok(true)
    }
}

fn is_conflict(error: &GcpError) -> bool {
    matches!(
        error.problem,
        Problem::Conflict { .. } | Problem::Rejected { status: 409, .. }
    )
}

#[cfg(test)]
mod tests {
    use escher_gcp::rest::{Endpoints, StaticToken};
    use escher_test_support::gcp_project_api::GoogleProjectApi;

    use super::*;

    const PROJECT: &str = "shop-prod-4711";
    const DEPLOYER: &str =
        "serviceAccount:escher-extend-deployer@shop-prod-4711.iam.gserviceaccount.com";

    fn setup(api: &GoogleProjectApi) -> ProjectSetup {
        let tokens: Arc<dyn TokenSource> = Arc::new(StaticToken::new(GoogleProjectApi::TEST_TOKEN));
        ProjectSetup {
            client: GcpClient::new(Endpoints::all_at(api.endpoint()), tokens.clone()),
            tokens,
            http: reqwest::Client::new(),
            project: PROJECT.into(),
            region: "europe-west1".into(),
            poll_every: Duration::from_millis(5),
            give_up_after: Duration::from_secs(10),
        }
    }

    #[tokio::test]
    async fn a_policy_changed_by_someone_else_meanwhile_is_read_again_and_both_grants_stay() {
        let api = GoogleProjectApi::start(PROJECT).await;
        api.race_next_policy_write("roles/viewer", "user:auditor@example.com");
        let added = setup(&api)
            .grant(DEPLOYER, &DEPLOYER_ROLES)
            .await
            .expect("granted on the second write");
        assert_eq!(added.len(), DEPLOYER_ROLES.len());
        let policy = api.policy();
        let holds = |role: &str, member: &str| {
            policy["bindings"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|b| {
                    b["role"] == role
                        && b["members"]
                            .as_array()
                            .is_some_and(|m| m.iter().any(|x| x == member))
                })
        };
        assert!(
            holds("roles/viewer", "user:auditor@example.com"),
            "the other grant is not lost: {policy}"
        );
        assert!(holds(CONFIG_AGENT, DEPLOYER), "{policy}");
        assert!(holds("roles/owner", "user:owner@example.com"), "{policy}");
        let writes = api
            .operations()
            .iter()
            .filter(|o| o.ends_with("setIamPolicy"))
            .count();
        assert_eq!(writes, 2, "the stale write is refused, the second lands");
        assert!(api.violations().is_empty(), "{:?}", api.violations());
    }

    #[tokio::test]
    async fn a_refused_call_names_the_permission_and_the_role_that_holds_it() {
        let api = GoogleProjectApi::start(PROJECT).await;
        api.refuse_next("cloudresourcemanager.projects.setIamPolicy");
        let error = setup(&api)
            .grant(DEPLOYER, &DEPLOYER_ROLES)
            .await
            .expect_err("refused");
        let text = error.to_string();
        assert!(
            text.contains("granting serviceAccount:escher-extend-deployer"),
            "{text}"
        );
        assert!(
            text.contains("resourcemanager.projects.setIamPolicy"),
            "{text}"
        );
        assert!(
            text.contains("roles/resourcemanager.projectIamAdmin"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn services_already_enabled_are_left_alone_and_the_rest_enabled_in_one_batch() {
        let api = GoogleProjectApi::start(PROJECT).await;
        let setup = setup(&api);
        let first = setup
            .enable_services(&["config.googleapis.com", "run.googleapis.com"])
            .await
            .expect("enabled");
        assert_eq!(first, vec!["config.googleapis.com", "run.googleapis.com"]);
        let again = setup
            .enable_services(&[
                "config.googleapis.com",
                "run.googleapis.com",
                "iam.googleapis.com",
            ])
            .await
            .expect("enabled");
        assert_eq!(again, vec!["iam.googleapis.com"]);
        let enables = api
            .operations()
            .iter()
            .filter(|o| o.ends_with("batchEnable"))
            .count();
        assert_eq!(enables, 2);
        assert!(api.violations().is_empty(), "{:?}", api.violations());
    }

    #[test]
    fn the_deployer_is_added_to_each_missing_role_and_nothing_else_changes() {
        let mut policy = json!({
            "etag": "BwY=",
            "bindings": [
                {"role": "roles/owner", "members": ["user:owner@example.com"]},
                {"role": "roles/storage.admin", "members": ["user:ops@example.com"]},
                {"role": "roles/run.admin", "members": ["serviceAccount:d@p.iam.gserviceaccount.com"],
                 "condition": {"title": "until", "expression": "request.time < timestamp('2027-01-01T00:00:00Z')"}},
            ],
        });
        let member = "serviceAccount:d@p.iam.gserviceaccount.com";
        let added = add_bindings(
            &mut policy,
            member,
            &[
                "roles/storage.admin",
                "roles/run.admin",
                "roles/owner",
                "roles/config.agent",
            ],
        );
        assert_eq!(
            added,
            vec![
                "roles/storage.admin",
                "roles/run.admin",
                "roles/config.agent"
            ],
            "a conditional grant is not the grant the deployer needs; owner is never given"
        );
        let bindings = policy["bindings"].as_array().expect("bindings");
        assert_eq!(bindings[0]["members"], json!(["user:owner@example.com"]));
        assert_eq!(
            bindings[1]["members"],
            json!(["user:ops@example.com", member])
        );
        assert!(
            bindings[2]["condition"].is_object(),
            "the conditional binding stays"
        );
        assert_eq!(
            policy["etag"], "BwY=",
            "the etag read is the one written back"
        );

        let again = add_bindings(
            &mut policy,
            member,
            &[
                "roles/storage.admin",
                "roles/run.admin",
                "roles/config.agent",
            ],
        );
        assert!(again.is_empty(), "{again:?}");
    }

    #[test]
    fn the_deployer_roles_hold_no_basic_role_and_infrastructure_managers_own() {
        assert!(DEPLOYER_ROLES.contains(&CONFIG_AGENT));
        assert!(DEPLOYER_ROLES.iter().all(|r| !BASIC_ROLES.contains(r)));
        let unique: BTreeSet<&str> = DEPLOYER_ROLES.iter().copied().collect();
        assert_eq!(unique.len(), DEPLOYER_ROLES.len());
    }

    #[test]
    fn the_blueprint_folder_names_the_files_content() {
        let files = |main: &'static str| {
            vec![
                RenderedFile {
                    name: "variables.tf",
                    contents: "variable \"project\" {}\n".into(),
                },
                RenderedFile {
                    name: "main.tf",
                    contents: main.into(),
                },
            ]
        };
        let first = blueprint_folder(&files("resource \"a\" \"b\" {}\n"));
        assert!(
            first.starts_with("escher/") && first.ends_with('/'),
            "{first}"
        );
        assert_eq!(first.len(), "escher/".len() + 16 + 1);
        let mut reversed = files("resource \"a\" \"b\" {}\n");
        reversed.reverse();
        assert_eq!(
            blueprint_folder(&reversed),
            first,
            "the order files come in does not matter"
        );
        assert_ne!(blueprint_folder(&files("resource \"a\" \"c\" {}\n")), first);
    }

    #[test]
    fn the_services_include_infrastructure_managers_and_security_command_center_only_with_an_organization(
    ) {
        let plain = required_services(false);
        assert!(plain.contains(&"config.googleapis.com"));
        assert!(!plain.contains(&"securitycenter.googleapis.com"));
        assert!(required_services(true).contains(&"securitycenter.googleapis.com"));
        assert!(plain.len() <= 20, "batchEnable takes at most 20");
    }
}
