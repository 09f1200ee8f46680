//! A Google Cloud project on 127.0.0.1 for `extend --cloud gcp`: one origin answering every
//! API the CLI calls, as `--endpoint-url` sends them, each request held to Google's published
//! discovery documents (`gcp-discovery/`, see [`crate::gcp_discovery`]):
//!
//! - Service Usage (`services.batchEnable`, a long-running operation done after one poll),
//! - IAM (`serviceAccounts.get/create`), Resource Manager (`projects.getIamPolicy` /
//!   `setIamPolicy`, refused on a stale `etag` as Google does),
//! - Cloud Storage (buckets, objects, and the media upload at `/upload/storage/v1`),
//! - Artifact Registry (repositories), Secret Manager (secrets Terraform made, and their
//!   versions),
//! - Infrastructure Manager ([`InfraManagerApi`], sharing the origin), which plans an
//!   uploaded blueprint from its files: every `resource "type" "name"` block is a resource
//!   whose settings are its text and the input values it reads, so the same files and inputs
//!   plan no change and a new image plans an update of what reads `var.handler_image`;
//! - the OAuth token endpoint (`/token`) a credentials file's `token_uri` may name, answering
//!   [`GoogleProjectApi::TEST_TOKEN`];
//! - the container registry (`/v2/…`), passed on to a registry the test runs
//!   ([`GoogleProjectApi::registry_behind`]), since images are pushed to the same host.

// A refused request's answer is the HTTP response itself, returned as it is.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::gcp_discovery::google_error;
use crate::gcp_incoming::{
    already_exists, found, loopback, not_found, not_played, ok, serve_in_background,
    unauthenticated, ContractLog, GoogleRequest, Incoming,
};
use crate::gcp_infra_manager::{Blueprint, InfraManagerApi, PlannedResource};

#[derive(Debug, Clone)]
struct SecretVersion {
    bytes: Vec<u8>,
    state: &'static str,
    created: String,
}

#[derive(Debug, Default)]
struct Inner {
    enabled: BTreeSet<String>,
    service_accounts: BTreeMap<String, Value>,
    policy: Value,
    policy_version: u64,
    buckets: BTreeMap<String, Value>,
    objects: BTreeMap<(String, String), Vec<u8>>,
    repositories: BTreeMap<String, Value>,
    secrets: BTreeMap<String, Value>,
    versions: BTreeMap<String, Vec<SecretVersion>>,
    operations: BTreeMap<String, (u32, Value)>,
    next_id: u64,
    registry: Option<String>,
    outputs: BTreeMap<String, Value>,
    refuse_next: Option<String>,
    race_next_policy_write: Option<(String, String)>,
}

/// The project stand-in; stops when dropped with its runtime.
#[derive(Clone)]
pub struct GoogleProjectApi {
    endpoint: String,
    project: String,
    contract: ContractLog,
    infra_manager: InfraManagerApi,
    http: reqwest::Client,
    inner: Arc<Mutex<Inner>>,
}

impl GoogleProjectApi {
    /// The bearer token every API here accepts (Infrastructure Manager's too).
    pub const TEST_TOKEN: &'static str = InfraManagerApi::TEST_TOKEN;

    /// A project `project` whose IAM policy grants its owner `user:owner@example.com`.
    pub async fn start(project: &str) -> GoogleProjectApi {
        let (listener, endpoint) = loopback().await;
        let api = GoogleProjectApi {
            infra_manager: InfraManagerApi::serving_at(&endpoint),
            endpoint,
            project: project.to_string(),
            contract: ContractLog::load(&[
                "serviceusage.v1",
                "iam.v1",
                "cloudresourcemanager.v1",
                "storage.v1",
                "artifactregistry.v1",
                "secretmanager.v1",
            ]),
            http: reqwest::Client::new(),
            inner: Arc::new(Mutex::new(Inner {
                policy: json!({
                    "version": 1,
                    "etag": "BwYAAAAAAAE=",
                    "bindings": [{"role": "roles/owner", "members": ["user:owner@example.com"]}],
                }),
                policy_version: 1,
                ..Inner::default()
            })),
        };
        let planner_view = api.clone();
        api.infra_manager
            .plan_unregistered_with(Arc::new(move |source, inputs| {
                planner_view.plan(source, inputs)
            }));
        serve_in_background(listener, handle, api.clone());
        api
    }

    /// The origin every API answers at (`--endpoint-url`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The Infrastructure Manager behind the same origin.
    pub fn infra_manager(&self) -> &InfraManagerApi {
        &self.infra_manager
    }

    /// Passes `/v2/…` (the registry protocol) to the registry at `origin` (`http://…`).
    pub fn registry_behind(&self, origin: &str) {
        self.lock().registry = Some(origin.trim_end_matches('/').to_string());
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next call of the published method `id` is refused (403) as IAM refuses a call
    /// its caller lacks the permission for.
    pub fn refuse_next(&self, id: &str) {
        self.lock().refuse_next = Some(id.to_string());
    }

    /// Just before the next `setIamPolicy` lands, another administrator grants `role` to
    /// `member`: the write carries a stale etag and is refused, as Google refuses it.
    pub fn race_next_policy_write(&self, role: &str, member: &str) {
        self.lock().race_next_policy_write = Some((role.to_string(), member.to_string()));
    }

    /// The value Terraform's apply gives the output `name` (others read as their own name).
    pub fn plan_output(&self, name: &str, value: &str) {
        self.lock().outputs.insert(name.to_string(), json!(value));
    }

    pub fn requests(&self) -> Vec<GoogleRequest> {
        self.contract.requests()
    }

    /// The published methods called, in order (Infrastructure Manager's are in its own log).
    pub fn operations(&self) -> Vec<String> {
        self.contract
            .requests()
            .into_iter()
            .filter_map(|r| r.operation)
            .collect()
    }

    /// Every way a request broke the published contract, both servers' together.
    pub fn violations(&self) -> Vec<String> {
        let mut all = self.contract.violations();
        all.extend(self.infra_manager.violations());
        all
    }

    pub fn enabled_services(&self) -> BTreeSet<String> {
        self.lock().enabled.clone()
    }

    pub fn service_account(&self, email: &str) -> Option<Value> {
        self.lock().service_accounts.get(email).cloned()
    }

    /// The project's IAM policy as it stands.
    pub fn policy(&self) -> Value {
        self.lock().policy.clone()
    }

    /// Changes the policy as another administrator would (a new etag).
    pub fn grant_elsewhere(&self, role: &str, member: &str) {
        let mut inner = self.lock();
        inner.policy_version += 1;
        let etag = format!("BwYAAAAAA{:03}=", inner.policy_version);
        inner.policy["etag"] = json!(etag);
        if let Some(bindings) = inner.policy["bindings"].as_array_mut() {
            bindings.push(json!({"role": role, "members": [member]}));
        }
    }

    pub fn bucket(&self, name: &str) -> Option<Value> {
        self.lock().buckets.get(name).cloned()
    }

    /// Creates a bucket as Terraform would (the deployment's buckets).
    pub fn put_bucket(&self, name: &str) {
        self.lock().buckets.insert(
            name.to_string(),
            json!({"kind": "storage#bucket", "name": name, "id": name}),
        );
    }

    /// Stores an object as the handler would.
    pub fn put_object(&self, bucket: &str, name: &str, bytes: &[u8]) {
        self.lock()
            .objects
            .insert((bucket.to_string(), name.to_string()), bytes.to_vec());
    }

    /// The object names in `bucket`.
    pub fn objects(&self, bucket: &str) -> Vec<String> {
        self.lock()
            .objects
            .keys()
            .filter(|(b, _)| b == bucket)
            .map(|(_, n)| n.clone())
            .collect()
    }

    pub fn repository(&self, name: &str) -> Option<Value> {
        self.lock().repositories.get(name).cloned()
    }

    /// Creates a secret as Terraform would (`projects/{p}/secrets/{id}`).
    pub fn put_secret(&self, id: &str) {
        let name = format!("projects/{}/secrets/{id}", self.project);
        self.lock().secrets.insert(
            name.clone(),
            json!({"name": name, "createTime": "2026-12-04T10:00:00Z", "replication": {"automatic": {}}}),
        );
    }

    /// The payloads of a secret's versions not destroyed, oldest first.
    pub fn secret_versions(&self, id: &str) -> Vec<Vec<u8>> {
        let name = format!("projects/{}/secrets/{id}", self.project);
        self.lock()
            .versions
            .get(&name)
            .into_iter()
            .flatten()
            .filter(|v| v.state != "DESTROYED")
            .map(|v| v.bytes.clone())
            .collect()
    }

    pub fn secret(&self, id: &str) -> Option<Value> {
        let name = format!("projects/{}/secrets/{id}", self.project);
        self.lock().secrets.get(&name).cloned()
    }

    /// What Terraform would plan for the files uploaded under `source`.
    fn plan(&self, source: &str, inputs: &Value) -> Option<Blueprint> {
        let (bucket, folder) = source.strip_prefix("gs://")?.split_once('/')?;
        let inner = self.lock();
        let files: Vec<(&String, &Vec<u8>)> = inner
            .objects
            .iter()
            .filter(|((b, n), _)| b == bucket && n.starts_with(folder) && n.ends_with(".tf"))
            .map(|((_, n), bytes)| (n, bytes))
            .collect();
        if files.is_empty() {
            return None;
        }
        let mut blueprint = Blueprint::default();
        for (_, bytes) in files {
            let text = String::from_utf8_lossy(bytes);
            let (resources, outputs) = terraform_blocks(&text, inputs);
            blueprint.resources.extend(resources);
            blueprint.outputs.extend(outputs);
        }
        for (name, value) in &inner.outputs {
            blueprint.outputs.insert(name.clone(), value.clone());
        }
        Some(blueprint)
    }
}

/// The resources (settings = block text plus the inputs it reads) and outputs (the value's
/// expression, a URL for `service_url`) of one Terraform file.
fn terraform_blocks(text: &str, inputs: &Value) -> (Vec<PlannedResource>, BTreeMap<String, Value>) {
    let mut resources = Vec::new();
    let mut outputs = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    let finish = |block: Option<(String, String)>, resources: &mut Vec<PlannedResource>| {
        if let Some((address, body)) = block {
            let mut fingerprint = body.clone();
            if let Some(map) = inputs.as_object() {
                for (name, value) in map {
                    if body.contains(&format!("var.{name}")) {
                        fingerprint.push_str(&format!("\n{name}={}", value["inputValue"]));
                    }
                }
            }
            resources.push(PlannedResource::new(&address, &fingerprint));
        }
    };
    for line in text.lines() {
        let words: Vec<&str> = line.split('"').collect();
        if line.starts_with("resource \"") && words.len() >= 4 {
            finish(current.take(), &mut resources);
            current = Some((format!("{}.{}", words[1], words[3]), String::new()));
            continue;
        }
        if line.starts_with("output \"") && words.len() >= 2 {
            finish(current.take(), &mut resources);
            let value = if words[1] == "service_url" {
                json!("https://escher-handler-test-ew.a.run.app")
            } else {
                json!(format!("({})", words[1]))
            };
            outputs.insert(words[1].to_string(), value);
            continue;
        }
        if !line.starts_with(' ') && !line.starts_with('}') && !line.is_empty() {
            finish(current.take(), &mut resources);
        }
        if let Some((_, body)) = current.as_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    finish(current.take(), &mut resources);
    (resources, outputs)
}

async fn handle(State(api): State<GoogleProjectApi>, mut incoming: Incoming) -> Response {
    let path = incoming.path();
    if path == "/token" {
        return ok(json!({
            "access_token": GoogleProjectApi::TEST_TOKEN,
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": "https://www.googleapis.com/auth/cloud-platform",
        }));
    }
    if path.starts_with("/v2/") || path == "/v2" {
        return api.to_registry(&incoming).await;
    }
    if api.infra_manager.serves(&incoming.method, path) {
        return api.infra_manager.answer(incoming);
    }
    if path.starts_with("/upload/") {
        // A media upload's body is the object, never JSON.
        incoming.body = None;
    }
    api.contract
        .answer(incoming, |incoming| route(&api, incoming))
}

impl GoogleProjectApi {
    async fn to_registry(&self, incoming: &Incoming) -> Response {
        let Some(origin) = self.lock().registry.clone() else {
            return google_error(
                StatusCode::NOT_FOUND,
                "notFound",
                "no registry behind this project",
            );
        };
        let url = format!(
            "{origin}{}{}",
            two_level(incoming.path()),
            incoming
                .uri
                .query()
                .map(|q| format!("?{q}"))
                .unwrap_or_default()
        );
        let mut request = self
            .http
            .request(incoming.method.clone(), &url)
            .body(incoming.raw.clone());
        for (name, value) in &incoming.headers {
            if name != "host" && name != "content-length" {
                request = request.header(name, value);
            }
        }
        let answer = match request.send().await {
            Ok(a) => a,
            Err(e) => return google_error(StatusCode::BAD_GATEWAY, "backendError", &e.to_string()),
        };
        let status = answer.status();
        let mut out = HeaderMap::new();
        for (name, value) in answer.headers() {
            if name == "transfer-encoding" || name == "content-length" {
                continue;
            }
            let value = if name == "location" {
                // The registry names its own origin; the client stays on this one.
                let text = three_level(
                    &value
                        .to_str()
                        .unwrap_or_default()
                        .replace(&origin, &self.endpoint),
                );
                HeaderValue::from_str(&text).unwrap_or_else(|_| value.clone())
            } else {
                value.clone()
            };
            out.insert(name.clone(), value);
        }
        let bytes = answer.bytes().await.unwrap_or_default();
        (status, out, bytes).into_response()
    }
}

/// The registry behind plays `repository/image` names; Artifact Registry's are
/// `project/repository/image`, passed on as `project--repository/image`.
fn two_level(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').collect();
    // ["", "v2", project, repository, image, "blobs" | "manifests" | "uploads", …]
    if parts.len() > 5 && matches!(parts[5], "blobs" | "manifests" | "uploads") {
        let mut out = vec!["", "v2"];
        let joined = format!("{}--{}", parts[2], parts[3]);
        out.push(&joined);
        out.extend(&parts[4..]);
        return out.join("/");
    }
    path.to_string()
}

/// The reverse of [`two_level`], for the registry's `Location` headers.
fn three_level(location: &str) -> String {
    match location.split_once("/v2/") {
        Some((origin, rest)) => match rest.split_once('/') {
            Some((name, tail)) if name.contains("--") => {
                format!("{origin}/v2/{}/{tail}", name.replacen("--", "/", 1))
            }
            _ => location.to_string(),
        },
        None => location.to_string(),
    }
}

fn route(api: &GoogleProjectApi, incoming: &Incoming) -> (Response, Option<String>) {
    let mut segments = incoming.segments.clone();
    // The media upload is `objects.insert` at Google's upload path.
    let upload = segments.first().map(String::as_str) == Some("upload");
    if upload {
        segments.remove(0);
    }
    let published = match api.contract.hold(incoming, &segments) {
        Ok(p) => p.id.clone(),
        Err(refused) => return (refused, None),
    };
    if upload && published != "storage.objects.insert" {
        let problem = format!("{published} has no media upload");
        return (api.contract.refuse(vec![problem]), Some(published));
    }
    if incoming.bearer() != Some(GoogleProjectApi::TEST_TOKEN) {
        return (unauthenticated(), Some(published));
    }
    let (query, body, raw) = (&incoming.query, incoming.body.as_ref(), &incoming.raw);
    let param = |key: &str| incoming.param(key).map(str::to_string);
    let field = |key: &str| incoming.field(key).map(str::to_string);
    // `v1/projects/p/…` → `projects/p/…`; Storage's `storage/v1/b/…` → `b/…`.
    let name = if segments.first().map(String::as_str) == Some("storage") {
        segments[2..].join("/")
    } else {
        segments[1..].join("/")
    };
    let project = &api.project;
    if api.lock().refuse_next.as_deref() == Some(published.as_str()) {
        api.lock().refuse_next = None;
        return (
            google_error(
                StatusCode::FORBIDDEN,
                "forbidden",
                &format!("The caller does not have permission ({published})"),
            ),
            Some(published),
        );
    }
    if published == "cloudresourcemanager.projects.setIamPolicy" {
        let race = api.lock().race_next_policy_write.take();
        if let Some((role, member)) = race {
            api.grant_elsewhere(&role, &member);
        }
    }
    let mut inner = api.lock();
    let response = match published.as_str() {
        "serviceusage.services.batchGet" => {
            let services: Vec<Value> = query
                .iter()
                .filter(|(k, _)| k == "names")
                .map(|(_, name)| {
                    let id = name.rsplit('/').next().unwrap_or_default();
                    let state = if inner.enabled.contains(id) {
                        "ENABLED"
                    } else {
                        "DISABLED"
                    };
                    json!({"name": name, "state": state, "parent": format!("projects/{project}")})
                })
                .collect();
            ok(json!({ "services": services }))
        }
        "serviceusage.services.batchEnable" => {
            let ids: Vec<String> = body
                .and_then(|b| b["serviceIds"].as_array())
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect();
            if ids.is_empty() || ids.len() > 20 {
                google_error(
                    StatusCode::BAD_REQUEST,
                    "invalid",
                    "serviceIds must hold 1 to 20 services",
                )
            } else {
                inner.enabled.extend(ids.iter().cloned());
                inner.next_id += 1;
                let op = format!("operations/acat.p2-{}", inner.next_id);
                let services: Vec<Value> = ids
                    .iter()
                    .map(|id| json!({"name": format!("projects/123456789012/services/{id}"), "state": "ENABLED"}))
                    .collect();
                inner.operations.insert(
                    op.clone(),
                    (1, json!({"name": op, "done": true, "response": {"@type": "type.googleapis.com/google.api.serviceusage.v1.BatchEnableServicesResponse", "services": services}})),
                );
                ok(
                    json!({"name": op, "metadata": {"@type": "type.googleapis.com/google.protobuf.Empty"}}),
                )
            }
        }
        "serviceusage.operations.get" => match inner.operations.get_mut(&name) {
            None => not_found(&name),
            Some((polls, done)) => {
                if *polls > 0 {
                    *polls -= 1;
                    ok(json!({"name": name}))
                } else {
                    ok(done.clone())
                }
            }
        },
        "iam.projects.serviceAccounts.get" => {
            let email = name.rsplit('/').next().unwrap_or_default().to_string();
            match inner.service_accounts.get(&email) {
                Some(account) => ok(account.clone()),
                None => not_found(&name),
            }
        }
        "iam.projects.serviceAccounts.create" => {
            let id = field("accountId").unwrap_or_default();
            let email = format!("{id}@{project}.iam.gserviceaccount.com");
            let account = json!({
                "name": format!("projects/{project}/serviceAccounts/{email}"),
                "projectId": project,
                "uniqueId": "104857600000000000001",
                "email": email,
                "displayName": body
                    .and_then(|b| b.pointer("/serviceAccount/displayName"))
                    .cloned()
                    .unwrap_or(json!("")),
                "description": body
                    .and_then(|b| b.pointer("/serviceAccount/description"))
                    .cloned()
                    .unwrap_or(json!("")),
                "etag": "MDEwMjE5MjA=",
                "oauth2ClientId": "104857600000000000001",
            });
            match inner.service_accounts.entry(email) {
                std::collections::btree_map::Entry::Occupied(_) => already_exists(&format!(
                    "Service account {id} already exists within project projects/{project}."
                )),
                std::collections::btree_map::Entry::Vacant(slot) => {
                    slot.insert(account.clone());
                    ok(account)
                }
            }
        }
        "cloudresourcemanager.projects.getIamPolicy" => ok(inner.policy.clone()),
        "cloudresourcemanager.projects.setIamPolicy" => {
            let policy = body
                .and_then(|b| b.get("policy"))
                .cloned()
                .unwrap_or_default();
            if policy["etag"] != inner.policy["etag"] {
                google_error(
                    StatusCode::CONFLICT,
                    "aborted",
                    "There were concurrent policy changes. Please retry the whole read-modify-write with exponential backoff.",
                )
            } else {
                inner.policy_version += 1;
                let mut policy = policy;
                policy["etag"] = json!(format!("BwYAAAAAA{:03}=", inner.policy_version));
                inner.policy = policy.clone();
                ok(policy)
            }
        }
        "storage.buckets.get" => {
            let bucket = segments.last().cloned().unwrap_or_default();
            found(inner.buckets.get(&bucket), &bucket)
        }
        "storage.buckets.insert" => {
            let bucket = field("name").unwrap_or_default();
            let mut record = body.cloned().unwrap_or_default();
            record["kind"] = json!("storage#bucket");
            record["id"] = json!(bucket);
            record["projectNumber"] = json!("123456789012");
            record["timeCreated"] = json!("2026-12-04T10:00:00.000Z");
            match inner.buckets.entry(bucket) {
                std::collections::btree_map::Entry::Occupied(_) => google_error(
                    StatusCode::CONFLICT,
                    "conflict",
                    "Your previous request to create the named bucket succeeded and you already own it.",
                ),
                std::collections::btree_map::Entry::Vacant(slot) => {
                    slot.insert(record.clone());
                    ok(record)
                }
            }
        }
        "storage.buckets.delete" => {
            let bucket = segments.last().cloned().unwrap_or_default();
            if !inner.buckets.contains_key(&bucket) {
                not_found(&bucket)
            } else if inner.objects.keys().any(|(b, _)| *b == bucket) {
                google_error(
                    StatusCode::CONFLICT,
                    "conflict",
                    "The bucket you tried to delete is not empty.",
                )
            } else {
                inner.buckets.remove(&bucket);
                StatusCode::NO_CONTENT.into_response()
            }
        }
        "storage.objects.insert" => {
            let bucket = segments[3].clone();
            let object = param("name").unwrap_or_default();
            if !inner.buckets.contains_key(&bucket) {
                not_found(&bucket)
            } else if param("uploadType").as_deref() != Some("media") || object.is_empty() {
                google_error(
                    StatusCode::BAD_REQUEST,
                    "invalid",
                    "a simple upload needs uploadType=media and name",
                )
            } else {
                let size = raw.len();
                inner
                    .objects
                    .insert((bucket.clone(), object.clone()), raw.to_vec());
                ok(
                    json!({"kind": "storage#object", "bucket": bucket, "name": object, "size": size.to_string()}),
                )
            }
        }
        "storage.objects.list" => {
            let bucket = segments[3].clone();
            if !inner.buckets.contains_key(&bucket) {
                not_found(&bucket)
            } else {
                let prefix = param("prefix").unwrap_or_default();
                let items: Vec<Value> = inner
                    .objects
                    .iter()
                    .filter(|((b, n), _)| *b == bucket && n.starts_with(&prefix))
                    .map(|((b, n), bytes)| json!({"kind": "storage#object", "bucket": b, "name": n, "generation": "1", "size": bytes.len().to_string()}))
                    .collect();
                ok(json!({"kind": "storage#objects", "items": items}))
            }
        }
        "storage.objects.delete" => {
            let bucket = segments[3].clone();
            let object: String =
                form_urlencoded::parse(format!("o={}", segments[5..].join("/")).as_bytes())
                    .map(|(_, v)| v.into_owned())
                    .next()
                    .unwrap_or_default();
            match inner.objects.remove(&(bucket, object.clone())) {
                Some(_) => StatusCode::NO_CONTENT.into_response(),
                None => not_found(&object),
            }
        }
        "artifactregistry.projects.locations.repositories.get" => {
            found(inner.repositories.get(&name), &name)
        }
        "artifactregistry.projects.locations.repositories.create" => {
            let repository = format!("{name}/{}", param("repositoryId").unwrap_or_default());
            if inner.repositories.contains_key(&repository) {
                already_exists(&format!("the repository already exists: {repository}"))
            } else {
                let mut record = body.cloned().unwrap_or_default();
                record["name"] = json!(repository);
                record["createTime"] = json!("2026-12-04T10:00:00Z");
                inner
                    .repositories
                    .insert(repository.clone(), record.clone());
                inner.next_id += 1;
                let op =
                    format!("{name}/operations/ar-{}", inner.next_id).replace("/repositories", "");
                ok(json!({"name": op, "done": true, "response": record}))
            }
        }
        "artifactregistry.projects.locations.repositories.delete" => {
            match inner.repositories.remove(&name) {
                Some(_) => {
                    inner.next_id += 1;
                    ok(
                        json!({"name": format!("projects/{project}/locations/x/operations/ar-{}", inner.next_id), "done": true, "response": {}}),
                    )
                }
                None => not_found(&name),
            }
        }
        "secretmanager.projects.secrets.addVersion" => {
            let secret = name.trim_end_matches(":addVersion").to_string();
            if !inner.secrets.contains_key(&secret) {
                not_found(&secret)
            } else {
                use base64::Engine as _;
                let data = body
                    .and_then(|b| b.pointer("/payload/data"))
                    .and_then(Value::as_str)
                    .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok());
                match data {
                    None => google_error(
                        StatusCode::BAD_REQUEST,
                        "invalid",
                        "payload.data must be base64",
                    ),
                    Some(bytes) => {
                        let versions = inner.versions.entry(secret.clone()).or_default();
                        let created = format!("2026-12-04T11:{:02}:00Z", versions.len() % 60);
                        versions.push(SecretVersion {
                            bytes,
                            state: "ENABLED",
                            created: created.clone(),
                        });
                        let n = versions.len();
                        ok(json!({
                            "name": format!("{secret}/versions/{n}"),
                            "state": "ENABLED",
                            "createTime": created,
                        }))
                    }
                }
            }
        }
        "secretmanager.projects.secrets.list" => {
            let items: Vec<Value> = inner.secrets.values().cloned().collect();
            ok(json!({"secrets": items, "totalSize": items.len()}))
        }
        "secretmanager.projects.secrets.versions.list" => {
            let secret = name.trim_end_matches("/versions").to_string();
            if !inner.secrets.contains_key(&secret) {
                not_found(&secret)
            } else {
                let versions: Vec<Value> = inner
                    .versions
                    .get(&secret)
                    .map(|v| v.as_slice())
                    .unwrap_or_default()
                    .iter()
                    .enumerate()
                    .rev()
                    .map(|(i, v)| json!({"name": format!("{secret}/versions/{}", i + 1), "state": v.state, "createTime": v.created}))
                    .collect();
                ok(json!({"versions": versions, "totalSize": versions.len()}))
            }
        }
        "secretmanager.projects.secrets.versions.destroy" => {
            let version = name.trim_end_matches(":destroy").to_string();
            let (secret, number) = version.split_once("/versions/").unwrap_or_default();
            let index = number.parse::<usize>().ok().and_then(|n| n.checked_sub(1));
            match (inner.versions.get_mut(secret), index) {
                (Some(versions), Some(i)) if i < versions.len() => {
                    versions[i].state = "DESTROYED";
                    versions[i].bytes.clear();
                    ok(
                        json!({"name": version, "state": "DESTROYED", "createTime": versions[i].created}),
                    )
                }
                _ => not_found(&version),
            }
        }
        other => not_played(&format!("the project stand-in does not play {other}")),
    };
    (response, Some(published))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_registry_names_reach_the_registry_as_two_levels_and_come_back() {
        let path = "/v2/shop-prod-4711/escher/escher-handler/blobs/uploads/";
        assert_eq!(
            two_level(path),
            "/v2/shop-prod-4711--escher/escher-handler/blobs/uploads/"
        );
        assert_eq!(
            three_level("/v2/shop-prod-4711--escher/escher-handler/uploads/u-1"),
            "/v2/shop-prod-4711/escher/escher-handler/uploads/u-1"
        );
        assert_eq!(two_level("/v2/"), "/v2/");
    }

    #[test]
    fn a_blueprint_plans_its_resources_with_the_inputs_they_read() {
        let text = "resource \"google_storage_bucket\" \"audit\" {\n  name = \"a\"\n}\n\nresource \"google_cloud_run_v2_service\" \"handler\" {\n  image = var.handler_image\n}\noutput \"service_url\" {\n  value = google_cloud_run_v2_service.handler.uri\n}\n";
        let first = json!({"handler_image": {"inputValue": "r@sha256:1"}});
        let second = json!({"handler_image": {"inputValue": "r@sha256:2"}});
        let (a, outputs) = terraform_blocks(text, &first);
        let (b, _) = terraform_blocks(text, &second);
        assert_eq!(a.len(), 2);
        assert_eq!(a[0], b[0], "the bucket reads no input");
        assert_ne!(a[1], b[1], "the service reads the image");
        assert!(outputs.contains_key("service_url"));
    }
}
