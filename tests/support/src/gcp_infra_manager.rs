//! A contract server for Infrastructure Manager (`config.googleapis.com/v1`) on 127.0.0.1,
//! since Google publishes no emulator for it and no Terraform runs here. It keeps
//! deployments, their revisions, previews and long-running operations in memory and answers
//! at Google's paths (`/v1/projects/{p}/locations/{l}/…`), every request held to the
//! published discovery document (`gcp-discovery/config.v1.json`, see [`crate::gcp_discovery`]).
//!
//! What Terraform would do with a blueprint is the test's to say: [`InfraManagerApi::blueprint`]
//! registers, for a `gs://` source, the resources its plan holds (address, type and a
//! fingerprint of their settings) and its outputs. A preview compares them with what the
//! deployment holds (create, update when the fingerprint changed, recreate when the test
//! marked the resource as replaced, delete, unchanged); an apply makes the deployment hold
//! them. A source nobody registered fails as Infrastructure Manager fails when it cannot
//! download a blueprint. Operations report each step Google reports (one per poll), then
//! stay running for what is left of [`InfraManagerApi::lro_polls`];
//! [`InfraManagerApi::fail_next_apply`] ends the next apply with Terraform errors, as a
//! resource the project refuses does.

// A refused request's answer is the HTTP response itself, returned as it is.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use crate::gcp_discovery::{google_error, segments};
use crate::gcp_incoming::{
    already_exists, found, loopback, not_found, not_played, ok, serve_in_background,
    unauthenticated, ContractLog, GoogleRequest, Incoming,
};

/// One resource of a blueprint's plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedResource {
    /// Terraform's address, `google_storage_bucket.audit`.
    pub address: String,
    /// The resource type, `google_storage_bucket`.
    pub kind: String,
    /// Stands for the resource's settings: a different one plans an update.
    pub fingerprint: String,
}

impl PlannedResource {
    pub fn new(address: &str, fingerprint: &str) -> PlannedResource {
        PlannedResource {
            address: address.to_string(),
            kind: address.split('.').next().unwrap_or_default().to_string(),
            fingerprint: fingerprint.to_string(),
        }
    }
}

/// What Terraform would make of one blueprint.
#[derive(Debug, Clone, Default)]
pub struct Blueprint {
    pub resources: Vec<PlannedResource>,
    /// Addresses whose change forces a new resource (Terraform's delete-then-create).
    pub replaced: BTreeSet<String>,
    pub outputs: BTreeMap<String, Value>,
}

/// One Terraform error of a failed apply, as Infrastructure Manager reports it.
#[derive(Debug, Clone)]
pub struct TerraformError {
    pub resource_address: String,
    pub http_response_code: u16,
    pub description: String,
}

#[derive(Debug, Clone)]
struct Deployment {
    record: Value,
    resources: Vec<PlannedResource>,
    revisions: u32,
}

#[derive(Debug, Clone)]
enum Work {
    Apply {
        deployment: String,
        blueprint: Option<Blueprint>,
        source: String,
        failure: Option<Vec<TerraformError>>,
    },
    Delete {
        deployment: String,
        failure: Option<Vec<TerraformError>>,
    },
    Preview {
        preview: String,
        blueprint: Option<Blueprint>,
        source: String,
        delete: bool,
    },
}

#[derive(Debug, Clone)]
struct Operation {
    polls_left: u32,
    steps_taken: usize,
    work: Work,
    result: Option<Value>,
}

/// Plans a source nobody registered (`gs://…` and the request's input values), as a project
/// stand-in that holds the uploaded files does ([`crate::gcp_project_api`]).
pub type Planner = Arc<dyn Fn(&str, &Value) -> Option<Blueprint> + Send + Sync>;

#[derive(Default)]
struct Inner {
    blueprints: HashMap<String, Blueprint>,
    planner: Option<Planner>,
    deployments: BTreeMap<String, Deployment>,
    revisions: BTreeMap<String, Value>,
    previews: BTreeMap<String, Value>,
    changes: BTreeMap<String, Vec<Value>>,
    operations: HashMap<String, Operation>,
    next_id: u64,
    lro_polls: u32,
    page_size: usize,
    fail_next_apply: Option<Vec<TerraformError>>,
    fail_next_delete: Option<Vec<TerraformError>>,
    abandoned: Vec<String>,
}

/// The contract server; stops when dropped with its runtime.
#[derive(Clone)]
pub struct InfraManagerApi {
    endpoint: String,
    contract: ContractLog,
    inner: Arc<Mutex<Inner>>,
}

const APPLY_STEPS: [&str; 5] = [
    "PREPARING_STORAGE_BUCKET",
    "DOWNLOADING_BLUEPRINT",
    "RUNNING_TF_INIT",
    "RUNNING_TF_PLAN",
    "RUNNING_TF_APPLY",
];
const DELETE_STEPS: [&str; 2] = ["RUNNING_TF_INIT", "RUNNING_TF_DESTROY"];
const PREVIEW_STEPS: [&str; 4] = [
    "PREPARING_STORAGE_BUCKET",
    "DOWNLOADING_BLUEPRINT",
    "RUNNING_TF_INIT",
    "RUNNING_TF_PLAN",
];

impl InfraManagerApi {
    /// A bearer token the server accepts.
    pub const TEST_TOKEN: &'static str = "escher-infra-manager-test-token";

    pub async fn start() -> InfraManagerApi {
        let (listener, endpoint) = loopback().await;
        let api = InfraManagerApi::serving_at(&endpoint);
        serve_in_background(listener, handle, api.clone());
        api
    }

    /// The server's state without a listener of its own: another server at `endpoint`
    /// passes it the requests [`InfraManagerApi::serves`] (one origin for every API).
    pub fn serving_at(endpoint: &str) -> InfraManagerApi {
        InfraManagerApi {
            endpoint: endpoint.to_string(),
            contract: ContractLog::load(&["config.v1"]),
            inner: Arc::new(Mutex::new(Inner {
                lro_polls: 1,
                page_size: 100,
                ..Inner::default()
            })),
        }
    }

    /// Whether `method path` is a published Infrastructure Manager method.
    pub fn serves(&self, method: &Method, path: &str) -> bool {
        match self
            .contract
            .discovery()
            .check(method, &segments(path), &[], None)
        {
            Ok(_) => true,
            Err(problems) => !problems.iter().any(|p| p.contains("no published method")),
        }
    }

    /// Answers one request as this server does (for a server holding it).
    pub fn answer(&self, incoming: Incoming) -> Response {
        self.contract
            .answer(incoming, |incoming| route(self, incoming))
    }

    /// Plans the sources no test registered with `planner`.
    pub fn plan_unregistered_with(&self, planner: Planner) {
        self.lock().planner = Some(planner);
    }

    /// The origin; Infrastructure Manager's base URL is `{endpoint}/v1`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Says what Terraform plans for the blueprint at `source` (`gs://bucket/folder`).
    pub fn blueprint(&self, source: &str, blueprint: Blueprint) {
        self.lock().blueprints.insert(source.to_string(), blueprint);
    }

    /// Operations report `done` only after this many polls (default 1).
    pub fn lro_polls(&self, polls: u32) {
        self.lock().lro_polls = polls;
    }

    /// Resource changes per page of `previews.resourceChanges.list`.
    pub fn page_size(&self, size: usize) {
        self.lock().page_size = size.max(1);
    }

    /// The next apply ends with these Terraform errors (the deployment `FAILED`).
    pub fn fail_next_apply(&self, errors: Vec<TerraformError>) {
        self.lock().fail_next_apply = Some(errors);
    }

    /// The next deletion (`deletePolicy=DELETE`) ends with these Terraform errors: their
    /// resources stay in the deployment (now `FAILED`), everything else is deleted.
    pub fn fail_next_delete(&self, errors: Vec<TerraformError>) {
        self.lock().fail_next_delete = Some(errors);
    }

    /// The resources of deployments deleted with `deletePolicy=ABANDON` (left in the
    /// project, no longer managed).
    pub fn abandoned(&self) -> Vec<String> {
        self.lock().abandoned.clone()
    }

    pub fn requests(&self) -> Vec<GoogleRequest> {
        self.contract.requests()
    }

    pub fn violations(&self) -> Vec<String> {
        self.contract.violations()
    }

    /// The deployment as Google would answer `deployments.get`, if it exists.
    pub fn deployment(&self, name: &str) -> Option<Value> {
        self.lock().deployments.get(name).map(|d| d.record.clone())
    }

    /// The addresses the deployment holds now.
    pub fn deployed_resources(&self, name: &str) -> Vec<String> {
        self.lock()
            .deployments
            .get(name)
            .map(|d| d.resources.iter().map(|r| r.address.clone()).collect())
            .unwrap_or_default()
    }

    /// The previews that exist now (a client should delete the ones it made).
    pub fn previews(&self) -> Vec<String> {
        self.lock().previews.keys().cloned().collect()
    }
}

async fn handle(State(api): State<InfraManagerApi>, incoming: Incoming) -> Response {
    api.answer(incoming)
}

fn route(api: &InfraManagerApi, incoming: &Incoming) -> (Response, Option<String>) {
    let segments = &incoming.segments;
    let published = match api.contract.hold(incoming, segments) {
        Ok(p) => p.id.clone(),
        Err(refused) => return (refused, None),
    };
    if incoming.bearer() != Some(InfraManagerApi::TEST_TOKEN) {
        return (unauthenticated(), Some(published));
    }
    // Everything after `v1/`: `projects/p/locations/l/…`.
    let name = segments[1..].join("/");
    let param = |key: &str| incoming.param(key);
    let body = incoming.body.as_ref();
    let mut inner = api.lock();
    let response = match published.trim_start_matches("config.projects.locations.") {
        "deployments.get" => found(inner.deployments.get(&name).map(|d| &d.record), &name),
        "deployments.create" => {
            let deployment = format!("{name}/{}", param("deploymentId").unwrap_or_default());
            if inner.deployments.contains_key(&deployment) {
                already_exists(&format!("Resource '{deployment}' already exists"))
            } else {
                match deploy(&mut inner, &deployment, body, true) {
                    Ok(op) => ok(op),
                    Err(r) => r,
                }
            }
        }
        "deployments.patch" => {
            if !inner.deployments.contains_key(&name) {
                not_found(&name)
            } else {
                match deploy(&mut inner, &name, body, false) {
                    Ok(op) => ok(op),
                    Err(r) => r,
                }
            }
        }
        "deployments.delete" => {
            let abandon = param("deletePolicy") == Some("ABANDON");
            let failure = if abandon {
                None
            } else {
                inner.fail_next_delete.take()
            };
            match inner.deployments.get_mut(&name) {
                None => not_found(&name),
                Some(d) if abandon => {
                    let left: Vec<String> = d.resources.iter().map(|r| r.address.clone()).collect();
                    inner.deployments.remove(&name);
                    inner.abandoned.extend(left);
                    inner.next_id += 1;
                    let op = format!(
                        "{}/operations/operation-{}",
                        location_of(&name),
                        inner.next_id
                    );
                    ok(
                        json!({"name": op, "done": true, "response": {"name": name, "state": "DELETED"}}),
                    )
                }
                Some(d) => {
                    d.record["state"] = json!("DELETING");
                    let work = Work::Delete {
                        deployment: name.clone(),
                        failure,
                    };
                    ok(start(&mut inner, &name, "delete", work))
                }
            }
        }
        "deployments.revisions.resources.list" => {
            let revision = name.trim_end_matches("/resources").to_string();
            let deployment = revision.split("/revisions/").next().unwrap_or_default();
            match inner.deployments.get(deployment) {
                Some(d) if d.record["latestRevision"] == revision.as_str() => {
                    let resources: Vec<Value> = d
                        .resources
                        .iter()
                        .enumerate()
                        .map(|(i, r)| {
                            json!({
                                "name": format!("{revision}/resources/{i}"),
                                "terraformInfo": {"address": r.address, "type": r.kind, "id": format!("{}-id", r.address)},
                                "intent": "CREATE",
                                "state": "RECONCILED",
                            })
                        })
                        .collect();
                    ok(json!({"resources": resources}))
                }
                _ => not_found(&revision),
            }
        }
        "deployments.revisions.get" => found(inner.revisions.get(&name), &name),
        "previews.create" => {
            let id = match param("previewId") {
                Some(id) => id.to_string(),
                None => {
                    inner.next_id += 1;
                    format!("preview-{}", inner.next_id)
                }
            };
            let preview = format!("{name}/{id}");
            match preview_create(&mut inner, &preview, body) {
                Ok(op) => ok(op),
                Err(r) => r,
            }
        }
        "previews.get" => found(inner.previews.get(&name), &name),
        "previews.delete" => match inner.previews.remove(&name) {
            Some(_) => {
                inner.changes.remove(&name);
                inner.next_id += 1;
                let op = format!(
                    "{}/operations/operation-{}",
                    location_of(&name),
                    inner.next_id
                );
                ok(json!({"name": op, "done": true, "response": {}}))
            }
            None => not_found(&name),
        },
        "previews.resourceChanges.list" => {
            let preview = name.trim_end_matches("/resourceChanges").to_string();
            match inner.changes.get(&preview) {
                None => not_found(&preview),
                Some(changes) => {
                    let size = param("pageSize")
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(inner.page_size)
                        .min(inner.page_size);
                    let from: usize = param("pageToken").and_then(|t| t.parse().ok()).unwrap_or(0);
                    let page: Vec<Value> = changes.iter().skip(from).take(size).cloned().collect();
                    let mut answer = json!({"resourceChanges": page});
                    if from + size < changes.len() {
                        answer["nextPageToken"] = json!((from + size).to_string());
                    }
                    ok(answer)
                }
            }
        }
        "operations.get" => poll(&mut inner, &name),
        other => not_played(&format!("the contract server does not play {other}")),
    };
    (response, Some(published))
}

/// `projects/p/locations/l` of any name under it.
fn location_of(name: &str) -> String {
    name.split('/').take(4).collect::<Vec<_>>().join("/")
}

fn blueprint_of(body: Option<&Value>) -> Result<(String, Value), Response> {
    let source = body
        .and_then(|b| b.pointer("/terraformBlueprint/gcsSource"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            google_error(
                StatusCode::BAD_REQUEST,
                "invalid",
                "terraform_blueprint.gcs_source or terraform_blueprint.git_source is required",
            )
        })?;
    let account = body
        .and_then(|b| b.get("serviceAccount"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !account.starts_with("projects/") || !account.contains("/serviceAccounts/") {
        return Err(google_error(
            StatusCode::BAD_REQUEST,
            "invalid",
            "service_account is required, as projects/{project}/serviceAccounts/{email}",
        ));
    }
    Ok((source.to_string(), body.cloned().unwrap_or_default()))
}

fn deploy(
    inner: &mut Inner,
    deployment: &str,
    body: Option<&Value>,
    create: bool,
) -> Result<Value, Response> {
    let (source, request) = blueprint_of(body)?;
    let blueprint = planned(inner, &source, &request);
    let failure = inner.fail_next_apply.take();
    let entry = inner
        .deployments
        .entry(deployment.to_string())
        .or_insert_with(|| Deployment {
            record: json!({}),
            resources: Vec::new(),
            revisions: 0,
        });
    let previous = entry.record.clone();
    let mut record = request;
    record["name"] = json!(deployment);
    record["state"] = json!(if create { "CREATING" } else { "UPDATING" });
    for kept in ["createTime", "latestRevision"] {
        if let Some(v) = previous.get(kept) {
            record[kept] = v.clone();
        }
    }
    if create {
        record["createTime"] = json!("2026-12-04T10:00:00Z");
    }
    record["updateTime"] = json!("2026-12-04T10:00:00Z");
    entry.record = record;
    let work = Work::Apply {
        deployment: deployment.to_string(),
        blueprint,
        source,
        failure,
    };
    Ok(start(
        inner,
        deployment,
        if create { "create" } else { "update" },
        work,
    ))
}

/// What Terraform would make of `source`: the test's registration, else the planner's.
fn planned(inner: &Inner, source: &str, request: &Value) -> Option<Blueprint> {
    inner.blueprints.get(source).cloned().or_else(|| {
        let inputs = request
            .pointer("/terraformBlueprint/inputValues")
            .cloned()
            .unwrap_or_default();
        inner
            .planner
            .as_ref()
            .and_then(|plan| plan(source, &inputs))
    })
}

fn preview_create(
    inner: &mut Inner,
    preview: &str,
    body: Option<&Value>,
) -> Result<Value, Response> {
    let delete = body
        .and_then(|b| b.get("previewMode"))
        .and_then(Value::as_str)
        == Some("DELETE");
    let (source, request) = if delete {
        (String::new(), body.cloned().unwrap_or_default())
    } else {
        blueprint_of(body)?
    };
    if let Some(deployment) = request.get("deployment").and_then(Value::as_str) {
        if !inner.deployments.contains_key(deployment) {
            return Err(not_found(deployment));
        }
    }
    let blueprint = if delete {
        None
    } else {
        planned(inner, &source, &request)
    };
    let mut record = request;
    record["name"] = json!(preview);
    record["state"] = json!("CREATING");
    record["createTime"] = json!("2026-12-04T10:00:00Z");
    inner.previews.insert(preview.to_string(), record);
    let work = Work::Preview {
        preview: preview.to_string(),
        blueprint,
        source,
        delete,
    };
    Ok(start(inner, preview, "create", work))
}

fn start(inner: &mut Inner, target: &str, verb: &str, work: Work) -> Value {
    inner.next_id += 1;
    let name = format!(
        "{}/operations/operation-{}",
        location_of(target),
        inner.next_id
    );
    inner.operations.insert(
        name.clone(),
        Operation {
            polls_left: inner.lro_polls,
            steps_taken: 0,
            work,
            result: None,
        },
    );
    json!({
        "name": name,
        "done": false,
        "metadata": metadata(target, verb, None),
    })
}

fn metadata(target: &str, verb: &str, step: Option<(&str, &str)>) -> Value {
    let mut meta = json!({
        "@type": "type.googleapis.com/google.cloud.config.v1.OperationMetadata",
        "target": target,
        "verb": verb,
        "apiVersion": "v1",
        "createTime": "2026-12-04T10:00:00Z",
    });
    if let Some((key, step)) = step {
        meta[key] = json!({ "step": step });
    }
    meta
}

fn poll(inner: &mut Inner, name: &str) -> Response {
    let Some(op) = inner.operations.get_mut(name) else {
        return not_found(name);
    };
    if let Some(done) = &op.result {
        return ok(done.clone());
    }
    let (target, verb, key, steps): (String, &str, &str, &[&str]) = match &op.work {
        Work::Apply { deployment, .. } => (
            deployment.clone(),
            "update",
            "deploymentMetadata",
            &APPLY_STEPS,
        ),
        Work::Delete { deployment, .. } => (
            deployment.clone(),
            "delete",
            "deploymentMetadata",
            &DELETE_STEPS,
        ),
        Work::Preview { preview, .. } => {
            (preview.clone(), "create", "previewMetadata", &PREVIEW_STEPS)
        }
    };
    // Every step is reported once before the operation ends, as Cloud Build runs them.
    if op.polls_left > 0 || op.steps_taken < steps.len() {
        op.polls_left = op.polls_left.saturating_sub(1);
        let step = steps[op.steps_taken.min(steps.len() - 1)];
        op.steps_taken += 1;
        return ok(json!({
            "name": name,
            "done": false,
            "metadata": metadata(&target, verb, Some((key, step))),
        }));
    }
    let work = op.work.clone();
    let result = finish(inner, name, work, &target, verb, key);
    if let Some(op) = inner.operations.get_mut(name) {
        op.result = Some(result.clone());
    }
    ok(result)
}

fn finish(inner: &mut Inner, name: &str, work: Work, target: &str, verb: &str, key: &str) -> Value {
    let failed = |message: String, step: &str| {
        json!({
            "name": name,
            "done": true,
            "metadata": metadata(target, verb, Some((key, step))),
            "error": {"code": 9, "message": message},
        })
    };
    match work {
        Work::Apply {
            deployment,
            blueprint,
            source,
            failure,
        } => {
            let Some(d) = inner.deployments.get_mut(&deployment) else {
                return failed(format!("{deployment} disappeared"), "FAILED");
            };
            d.revisions += 1;
            let revision = format!("{deployment}/revisions/r-{}", d.revisions);
            d.record["latestRevision"] = json!(revision);
            let (state, errors, message) = match (&blueprint, &failure) {
                (None, _) => (
                    "FAILED",
                    vec![],
                    Some(format!(
                        "error downloading the blueprint from {source}: storage: object doesn't exist"
                    )),
                ),
                (Some(_), Some(errors)) => (
                    "FAILED",
                    errors.clone(),
                    Some("Terraform apply failed; see the Terraform errors".to_string()),
                ),
                (Some(_), None) => ("ACTIVE", vec![], None),
            };
            let tf_errors: Vec<Value> = errors
                .iter()
                .map(|e| {
                    json!({
                        "resourceAddress": e.resource_address,
                        "httpResponseCode": e.http_response_code,
                        "errorDescription": e.description,
                        "error": {"code": e.http_response_code, "message": e.description},
                    })
                })
                .collect();
            let mut revision_record = json!({
                "name": revision,
                "action": if d.revisions == 1 { "CREATE" } else { "UPDATE" },
                "state": if state == "ACTIVE" { "APPLIED" } else { "FAILED" },
                "createTime": "2026-12-04T10:00:00Z",
                "tfErrors": tf_errors,
            });
            d.record["state"] = json!(state);
            d.record["tfErrors"] = json!(tf_errors);
            match (&blueprint, &message) {
                (Some(b), None) => {
                    d.resources = b.resources.clone();
                    let outputs: serde_json::Map<String, Value> = b
                        .outputs
                        .iter()
                        .map(|(k, v)| (k.clone(), json!({"value": v, "sensitive": false})))
                        .collect();
                    revision_record["applyResults"] = json!({"outputs": outputs});
                    if let Some(map) = d.record.as_object_mut() {
                        map.remove("errorCode");
                        map.remove("stateDetail");
                    }
                }
                (_, Some(message)) => {
                    // Terraform applies what it can before the first error.
                    if let Some(b) = &blueprint {
                        let failing: BTreeSet<&str> =
                            errors.iter().map(|e| e.resource_address.as_str()).collect();
                        d.resources = b
                            .resources
                            .iter()
                            .filter(|r| !failing.contains(r.address.as_str()))
                            .cloned()
                            .collect();
                    }
                    d.record["errorCode"] = json!("REVISION_FAILED");
                    d.record["stateDetail"] = json!(message);
                    revision_record["errorCode"] = json!("APPLY_BUILD_RUN_FAILED");
                    revision_record["stateDetail"] = json!(message);
                }
                _ => {}
            }
            let record = d.record.clone();
            inner.revisions.insert(revision, revision_record);
            match message {
                None => json!({
                    "name": name,
                    "done": true,
                    "metadata": metadata(target, verb, Some((key, "SUCCEEDED"))),
                    "response": record,
                }),
                Some(message) => failed(message, "FAILED"),
            }
        }
        Work::Delete {
            deployment,
            failure: Some(errors),
        } => {
            let Some(d) = inner.deployments.get_mut(&deployment) else {
                return failed(format!("{deployment} disappeared"), "FAILED");
            };
            let failing: BTreeSet<&str> =
                errors.iter().map(|e| e.resource_address.as_str()).collect();
            d.resources.retain(|r| failing.contains(r.address.as_str()));
            let tf_errors: Vec<Value> = errors
                .iter()
                .map(|e| {
                    json!({
                        "resourceAddress": e.resource_address,
                        "httpResponseCode": e.http_response_code,
                        "errorDescription": e.description,
                    })
                })
                .collect();
            d.record["state"] = json!("FAILED");
            d.record["tfErrors"] = json!(tf_errors);
            d.record["errorCode"] = json!("DELETE_BUILD_RUN_FAILED");
            d.record["stateDetail"] = json!("Terraform destroy failed; see the Terraform errors");
            failed(
                "Terraform destroy failed; see the Terraform errors".to_string(),
                "FAILED",
            )
        }
        Work::Delete { deployment, .. } => {
            inner.deployments.remove(&deployment);
            json!({
                "name": name,
                "done": true,
                "metadata": metadata(target, verb, Some((key, "SUCCEEDED"))),
                "response": {"name": deployment, "state": "DELETED"},
            })
        }
        Work::Preview {
            preview,
            blueprint,
            source,
            delete,
        } => {
            let record = inner.previews.get(&preview).cloned().unwrap_or_default();
            let current: Vec<PlannedResource> = record
                .get("deployment")
                .and_then(Value::as_str)
                .and_then(|d| inner.deployments.get(d))
                .map(|d| d.resources.clone())
                .unwrap_or_default();
            let planned = match (&blueprint, delete) {
                (_, true) => Some(Blueprint::default()),
                (Some(b), false) => Some(b.clone()),
                (None, false) => None,
            };
            let Some(planned) = planned else {
                if let Some(p) = inner.previews.get_mut(&preview) {
                    p["state"] = json!("FAILED");
                    p["errorCode"] = json!("PREVIEW_BUILD_RUN_FAILED");
                }
                return failed(
                    format!("error downloading the blueprint from {source}: storage: object doesn't exist"),
                    "FAILED",
                );
            };
            let changes = plan(&preview, &current, &planned);
            inner.changes.insert(preview.clone(), changes);
            let Some(p) = inner.previews.get_mut(&preview) else {
                return failed(format!("{preview} disappeared"), "FAILED");
            };
            p["state"] = json!("SUCCEEDED");
            json!({
                "name": name,
                "done": true,
                "metadata": metadata(target, verb, Some((key, "SUCCEEDED"))),
                "response": p.clone(),
            })
        }
    }
}

/// The resource changes a plan from `current` to `planned` holds, as `ResourceChange`s.
fn plan(preview: &str, current: &[PlannedResource], planned: &Blueprint) -> Vec<Value> {
    let before: BTreeMap<&str, &PlannedResource> =
        current.iter().map(|r| (r.address.as_str(), r)).collect();
    let after: BTreeMap<&str, &PlannedResource> = planned
        .resources
        .iter()
        .map(|r| (r.address.as_str(), r))
        .collect();
    let addresses: BTreeSet<&str> = before.keys().chain(after.keys()).copied().collect();
    addresses
        .into_iter()
        .enumerate()
        .map(|(i, address)| {
            let (intent, actions, kind) = match (before.get(address), after.get(address)) {
                (None, Some(r)) => ("CREATE", vec!["create"], &r.kind),
                (Some(r), None) => ("DELETE", vec!["delete"], &r.kind),
                (Some(b), Some(a)) if b.fingerprint == a.fingerprint => {
                    ("UNCHANGED", vec!["no-op"], &a.kind)
                }
                (Some(_), Some(a)) if planned.replaced.contains(address) => {
                    ("RECREATE", vec!["delete", "create"], &a.kind)
                }
                (Some(_), Some(a)) => ("UPDATE", vec!["update"], &a.kind),
                (None, None) => unreachable!("an address comes from one of the two sides"),
            };
            json!({
                "name": format!("{preview}/resourceChanges/{i}"),
                "intent": intent,
                "terraformInfo": {
                    "address": address,
                    "type": kind,
                    "resourceName": address.split('.').nth(1).unwrap_or_default(),
                    "provider": "registry.terraform.io/hashicorp/google",
                    "actions": actions,
                },
            })
        })
        .collect()
}
