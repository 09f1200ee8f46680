//! Google Cloud's JSON APIs over plain HTTPS: a bearer token from a [`TokenSource`], and what
//! Google asks of a client: back off on 429 and 5xx as `Retry-After` says (bounded), follow
//! `nextPageToken`, and wait out Compute Engine's long-running operations
//! (`operations.wait` until `DONE`, the operation's own error surfaced).
//!
//! Each call is one [`GcpOperation`] (the discovery method id and the IAM permission it
//! needs), so the audit record names what was called, a 403 names the permission to grant,
//! and the conformance suite can hold every call to the fix's declared permissions.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use escher_core::remediate::{ApiCall, RemediationError};
use escher_runtime::RemoteCallMeter;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// The Google API a call goes to; each has its own base URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Storage,
    Compute,
    Monitoring,
    /// Infrastructure Manager (`config.googleapis.com`), which deploys Escher itself.
    Config,
    /// BigQuery v2: the nightly scan reads the billing export with `jobs.query`.
    BigQuery,
    /// Cloud Billing Budget API v1: the nightly scan lists the billing account's budgets.
    BillingBudgets,
    /// Secret Manager v1: the Slack webhook and PagerDuty key the notices need.
    SecretManager,
    /// Service Usage v1: `extend` enables the APIs the deployment needs.
    ServiceUsage,
    /// IAM v1: `extend` makes the service account Infrastructure Manager deploys as.
    Iam,
    /// Resource Manager v1: `extend` grants that account its roles on the project.
    ResourceManager,
    /// Artifact Registry v1: `extend` makes the repository the handler's image goes to.
    ArtifactRegistry,
    /// Cloud Storage's media upload (`…/upload/storage/v1`): the blueprint's files.
    StorageUpload,
}

impl Service {
    /// The service's short name, as the audit record shows it.
    pub fn name(self) -> &'static str {
        match self {
            Service::Storage => "storage",
            Service::Compute => "compute",
            Service::Monitoring => "monitoring",
            Service::Config => "config",
            Service::BigQuery => "bigquery",
            Service::BillingBudgets => "billingbudgets",
            Service::SecretManager => "secretmanager",
            Service::ServiceUsage => "serviceusage",
            Service::Iam => "iam",
            Service::ResourceManager => "cloudresourcemanager",
            Service::ArtifactRegistry => "artifactregistry",
            Service::StorageUpload => "storage",
        }
    }
}

/// Where each API answers: Google's public endpoints, or a test server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Cloud Storage JSON API v1 (`…/storage/v1`).
    pub storage: String,
    /// Compute Engine v1 (`…/compute/v1`).
    pub compute: String,
    /// Cloud Monitoring v3 (`…/v3`).
    pub monitoring: String,
    /// Infrastructure Manager v1 (`…/v1`, paths start at `projects/`).
    pub config: String,
    /// BigQuery v2 (`…/bigquery/v2`).
    pub bigquery: String,
    /// Cloud Billing Budget API v1 (`…/v1`, paths start at `billingAccounts/`).
    pub billing_budgets: String,
    /// Secret Manager v1 (`…/v1`, paths start at `projects/`).
    pub secret_manager: String,
    /// Service Usage v1 (`…/v1`, paths start at `projects/` or `operations/`).
    pub service_usage: String,
    /// IAM v1 (`…/v1`, paths start at `projects/`).
    pub iam: String,
    /// Resource Manager v1 (`…/v1`, paths start at `projects/`).
    pub resource_manager: String,
    /// Artifact Registry v1 (`…/v1`, paths start at `projects/`).
    pub artifact_registry: String,
    /// Cloud Storage's upload endpoint (`…/upload/storage/v1`).
    pub storage_upload: String,
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints {
            storage: "https://storage.googleapis.com/storage/v1".into(),
            compute: "https://compute.googleapis.com/compute/v1".into(),
            monitoring: "https://monitoring.googleapis.com/v3".into(),
            config: "https://config.googleapis.com/v1".into(),
            bigquery: "https://bigquery.googleapis.com/bigquery/v2".into(),
            billing_budgets: "https://billingbudgets.googleapis.com/v1".into(),
            secret_manager: "https://secretmanager.googleapis.com/v1".into(),
            service_usage: "https://serviceusage.googleapis.com/v1".into(),
            iam: "https://iam.googleapis.com/v1".into(),
            resource_manager: "https://cloudresourcemanager.googleapis.com/v1".into(),
            artifact_registry: "https://artifactregistry.googleapis.com/v1".into(),
            storage_upload: "https://storage.googleapis.com/upload/storage/v1".into(),
        }
    }
}

impl Endpoints {
    /// Every API under one origin, at the paths Google uses (a test server serves them all).
    pub fn all_at(origin: &str) -> Self {
        let origin = origin.trim_end_matches('/');
        Endpoints {
            storage: format!("{origin}/storage/v1"),
            compute: format!("{origin}/compute/v1"),
            monitoring: format!("{origin}/v3"),
            config: format!("{origin}/v1"),
            bigquery: format!("{origin}/bigquery/v2"),
            billing_budgets: format!("{origin}/v1"),
            secret_manager: format!("{origin}/v1"),
            service_usage: format!("{origin}/v1"),
            iam: format!("{origin}/v1"),
            resource_manager: format!("{origin}/v1"),
            artifact_registry: format!("{origin}/v1"),
            storage_upload: format!("{origin}/upload/storage/v1"),
        }
    }

    fn base(&self, service: Service) -> &str {
        match service {
            Service::Storage => &self.storage,
            Service::Compute => &self.compute,
            Service::Monitoring => &self.monitoring,
            Service::Config => &self.config,
            Service::BigQuery => &self.bigquery,
            Service::BillingBudgets => &self.billing_budgets,
            Service::SecretManager => &self.secret_manager,
            Service::ServiceUsage => &self.service_usage,
            Service::Iam => &self.iam,
            Service::ResourceManager => &self.resource_manager,
            Service::ArtifactRegistry => &self.artifact_registry,
            Service::StorageUpload => &self.storage_upload,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    Get,
    Put,
    Patch,
    Post,
    Delete,
}

impl HttpMethod {
    fn as_reqwest(self) -> Method {
        match self {
            HttpMethod::Get => Method::GET,
            HttpMethod::Put => Method::PUT,
            HttpMethod::Patch => Method::PATCH,
            HttpMethod::Post => Method::POST,
            HttpMethod::Delete => Method::DELETE,
        }
    }
}

/// One REST method, as Google's discovery document names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcpOperation {
    /// The discovery method id (`storage.buckets.setIamPolicy`), shown in the audit record.
    pub id: &'static str,
    pub service: Service,
    pub method: HttpMethod,
    /// The IAM permission the call needs (`storage.buckets.setIamPolicy`).
    pub permission: &'static str,
    /// Whether the call changes something (a dry run makes none).
    pub mutating: bool,
    /// Whether it answers with a Compute Engine operation to wait for.
    pub long_running: bool,
}

impl GcpOperation {
    /// The call on `path`, as a fix's audit record names it.
    fn name<'a>(&'a self, path: &'a str) -> escher_runtime::calls::CallName<'a> {
        escher_runtime::calls::CallName {
            service: self.service.name(),
            operation: self.id,
            target: path,
            mutating: self.mutating,
        }
    }
}

/// Compute Engine's operation waits, by where the operation runs.
pub(crate) const WAIT_ZONE_OPERATION: GcpOperation = GcpOperation {
    id: "compute.zoneOperations.wait",
    service: Service::Compute,
    method: HttpMethod::Post,
    permission: "compute.zoneOperations.get",
    mutating: false,
    long_running: false,
};
pub(crate) const WAIT_GLOBAL_OPERATION: GcpOperation = GcpOperation {
    id: "compute.globalOperations.wait",
    service: Service::Compute,
    method: HttpMethod::Post,
    permission: "compute.globalOperations.get",
    mutating: false,
    long_running: false,
};

/// How long the client waits and how often it tries.
#[derive(Debug, Clone, Copy)]
pub struct Patience {
    /// Attempts of one request when Google answers 429 or 5xx, or cannot be reached.
    pub attempts: u32,
    /// The pause between two waits on a long-running operation (each wait itself blocks
    /// at Google for up to two minutes, or until the operation ends).
    pub poll_interval: Duration,
    /// The longest single back-off, whatever `Retry-After` asks (a handler has a deadline).
    pub max_wait: Duration,
    /// How long one long-running operation may take before the event is retried later.
    pub operation_timeout: Duration,
}

impl Default for Patience {
    fn default() -> Self {
        Patience {
            attempts: 4,
            poll_interval: Duration::from_secs(1),
            max_wait: Duration::from_secs(30),
            operation_timeout: Duration::from_secs(240),
        }
    }
}

/// Why no access token could be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the metadata server at {url} could not be reached ({message}); outside Google Cloud, run Escher with a service account's token instead")]
    Unreachable { url: String, message: String },
    #[error("the metadata server at {url} answered HTTP {status}; check that the service runs as a service account")]
    Refused { url: String, status: u16 },
    #[error("the metadata server's answer held no access token ({message})")]
    Unreadable { message: String },
    /// Credentials other than the metadata server's (a laptop's): what failed and what to do.
    #[error("{0}")]
    Credentials(String),
}

/// Where bearer tokens come from.
#[async_trait]
pub trait TokenSource: Send + Sync + fmt::Debug {
    /// A token valid for the Google APIs the fixes call.
    async fn token(&self) -> Result<String, TokenError>;
}

/// One fixed token (tests, or a token a person hands the CLI).
#[derive(Clone)]
pub struct StaticToken(String);

impl StaticToken {
    pub fn new(token: impl Into<String>) -> Self {
        StaticToken(token.into())
    }
}

impl fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StaticToken(…)")
    }
}

#[async_trait]
impl TokenSource for StaticToken {
    async fn token(&self) -> Result<String, TokenError> {
        Ok(self.0.clone())
    }
}

/// The attached service account's token from the metadata server, which every Cloud Run
/// service and Compute Engine VM has; cached until a minute before it expires.
///
/// Chosen over `google-cloud-auth` because this is all a handler running on Google Cloud
/// needs, and it costs no new dependency (that crate brings its own HTTP and crypto stack).
pub struct MetadataServer {
    http: reqwest::Client,
    url: String,
    cached: tokio::sync::Mutex<Option<(String, Instant)>>,
}

impl fmt::Debug for MetadataServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetadataServer")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

const TOKEN_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";

impl MetadataServer {
    /// The metadata server at `GCE_METADATA_HOST` (host[:port], as Google's own libraries
    /// read it), else `metadata.google.internal`.
    pub fn new(http: reqwest::Client) -> Self {
        let host = std::env::var("GCE_METADATA_HOST")
            .ok()
            .filter(|h| !h.trim().is_empty())
            .unwrap_or_else(|| "metadata.google.internal".to_string());
        MetadataServer::at(http, &format!("http://{host}"))
    }

    /// The metadata server at `origin` (`http://host:port`).
    pub fn at(http: reqwest::Client, origin: &str) -> Self {
        MetadataServer {
            http,
            url: format!("{}{TOKEN_PATH}", origin.trim_end_matches('/')),
            cached: tokio::sync::Mutex::new(None),
        }
    }
}

#[async_trait]
impl TokenSource for MetadataServer {
    async fn token(&self) -> Result<String, TokenError> {
        let mut cached = self.cached.lock().await;
        if let Some((token, until)) = cached.as_ref() {
            if Instant::now() < *until {
                return Ok(token.clone());
            }
        }
        let response = self
            .http
            .get(&self.url)
            .header("Metadata-Flavor", "Google")
            .send()
            .await
            .map_err(|e| TokenError::Unreachable {
                url: self.url.clone(),
                message: e.to_string(),
            })?;
        if !response.status().is_success() {
            return Err(TokenError::Refused {
                url: self.url.clone(),
                status: response.status().as_u16(),
            });
        }
        let body: Value = response.json().await.map_err(|e| TokenError::Unreadable {
            message: e.to_string(),
        })?;
        let token = body
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or_else(|| TokenError::Unreadable {
                message: "no access_token field".into(),
            })?
            .to_string();
        let lifetime = body.get("expires_in").and_then(Value::as_u64).unwrap_or(0);
        // Renewed a minute early, so a token never expires in the middle of a fix.
        let until = Instant::now() + Duration::from_secs(lifetime.saturating_sub(60));
        *cached = Some((token.clone(), until));
        Ok(token)
    }
}

/// What went wrong with a call, and what the user can do about it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Problem {
    #[error("permission denied (HTTP 403: {message}); grant {permission} to the service account Escher runs as")]
    Denied {
        permission: &'static str,
        message: String,
    },
    #[error("the access token was refused (HTTP 401: {message}); check the credentials Escher runs with")]
    Unauthenticated { message: String },
    #[error("not found (HTTP 404: {message}); it may have been deleted since the alert")]
    NotFound { message: String },
    #[error("changed by someone else while it was being fixed (HTTP {status}: {message}); the event will be tried again")]
    Conflict { status: u16, message: String },
    #[error("Google Cloud stayed busy (HTTP {status}: {message}) for {attempts} attempts; the event will be tried again")]
    Busy {
        status: u16,
        attempts: u32,
        message: String,
    },
    #[error("refused (HTTP {status}: {message}); the request or the resource needs correcting")]
    Rejected { status: u16, message: String },
    #[error("the operation ended with an error: {message}")]
    OperationFailed { message: String },
    #[error("still running after {seconds} s; the event will be tried again")]
    StillRunning { seconds: u64 },
    #[error("Google Cloud could not be reached ({message}); the event will be tried again")]
    Unreachable { message: String },
    #[error("no access token: {0}")]
    Token(TokenError),
    #[error("the answer could not be read ({message}); the event will be tried again")]
    BadAnswer { message: String },
}

/// A failed call: which method, on which resource, and the [`Problem`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{operation} on {target}: {problem}")]
pub struct GcpError {
    pub operation: &'static str,
    pub target: String,
    pub problem: Problem,
}

impl GcpError {
    fn new(operation: &GcpOperation, target: &str, problem: Problem) -> Self {
        GcpError {
            operation: operation.id,
            target: target.to_string(),
            problem,
        }
    }

    /// Whether trying the event again later can help.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.problem,
            Problem::Conflict { .. }
                | Problem::Busy { .. }
                | Problem::StillRunning { .. }
                | Problem::Unreachable { .. }
                | Problem::Token(_)
                | Problem::BadAnswer { .. }
        )
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self.problem, Problem::NotFound { .. })
    }

    pub fn into_remediation_error(self, api_calls: Vec<ApiCall>) -> RemediationError {
        RemediationError::of_call(
            self.is_transient(),
            self.operation,
            self.target,
            self.problem.to_string(),
            api_calls,
        )
    }
}

/// A client for Google's APIs, shared by every fix of a process.
#[derive(Clone)]
pub struct GcpClient {
    http: reqwest::Client,
    endpoints: Endpoints,
    tokens: Arc<dyn TokenSource>,
    patience: Patience,
}

impl fmt::Debug for GcpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcpClient")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

impl GcpClient {
    pub fn new(endpoints: Endpoints, tokens: Arc<dyn TokenSource>) -> Self {
        GcpClient::on(reqwest::Client::new(), endpoints, tokens)
    }

    /// A client sending through `http` (one connection pool for the process).
    pub fn on(http: reqwest::Client, endpoints: Endpoints, tokens: Arc<dyn TokenSource>) -> Self {
        GcpClient {
            http,
            endpoints,
            tokens,
            patience: Patience::default(),
        }
    }

    pub fn with_patience(mut self, patience: Patience) -> Self {
        self.patience = patience;
        self
    }

    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    fn url(&self, operation: &GcpOperation, path: &str, query: &[(&str, &str)]) -> String {
        let mut url = format!(
            "{}/{}",
            self.endpoints.base(operation.service),
            path.trim_start_matches('/')
        );
        for (i, (k, v)) in query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(&encode(k));
            url.push('=');
            url.push_str(&encode(v));
        }
        url
    }

    /// Sends one request, again after 429 / 5xx / no connection as `Retry-After` asks, at
    /// most [`Patience::attempts`] times.
    async fn send(
        &self,
        operation: &GcpOperation,
        target: &str,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Value, GcpError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let token = self
                .tokens
                .token()
                .await
                .map_err(|e| GcpError::new(operation, target, Problem::Token(e)))?;
            let mut request = self
                .http
                .request(operation.method.as_reqwest(), url)
                .bearer_auth(token);
            if let Some(body) = body {
                request = request.json(body);
            } else if operation.method != HttpMethod::Get {
                // Google's front end refuses a bodiless POST without a length (411).
                request = request.header("Content-Length", "0");
            }
            let (problem, wait) = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let wait = retry_after(&response);
                    let retryable = status == StatusCode::TOO_MANY_REQUESTS
                        || matches!(status.as_u16(), 500 | 502 | 503 | 504);
                    if !retryable {
                        return answer(operation, target, response).await;
                    }
                    let message = error_message(&read_json(response).await);
                    (
                        Problem::Busy {
                            status: status.as_u16(),
                            attempts: attempt,
                            message,
                        },
                        wait,
                    )
                }
                Err(e) => (
                    Problem::Unreachable {
                        message: e.to_string(),
                    },
                    None,
                ),
            };
            if attempt >= self.patience.attempts {
                return Err(GcpError::new(operation, target, problem));
            }
            let wait = wait.unwrap_or(Duration::from_millis(500 * u64::from(attempt)));
            tracing::debug!(
                operation = operation.id,
                target,
                attempt,
                wait_ms = wait.min(self.patience.max_wait).as_millis() as u64,
                "Google Cloud asked to back off"
            );
            tokio::time::sleep(wait.min(self.patience.max_wait)).await;
        }
    }

    /// Runs `operation` on `path` (relative to the service's base URL); when it is
    /// long-running, waits for the operation to end and returns it. `target` names the
    /// resource in errors and the audit record.
    pub async fn call(
        &self,
        operation: &GcpOperation,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, GcpError> {
        let url = self.url(operation, path, query);
        let first = self.send(operation, path, &url, body).await?;
        if !operation.long_running {
            return Ok(first);
        }
        self.await_operation(operation, path, first).await
    }

    /// Waits on a Compute Engine operation with `operations.wait` until it is `DONE`; its
    /// `error` becomes [`Problem::OperationFailed`].
    async fn await_operation(
        &self,
        operation: &GcpOperation,
        target: &str,
        mut current: Value,
    ) -> Result<Value, GcpError> {
        let started = Instant::now();
        let mut waited = false;
        loop {
            if current.get("status").and_then(Value::as_str) == Some("DONE") {
                return match operation_error(&current) {
                    Some(message) => Err(GcpError::new(
                        operation,
                        target,
                        Problem::OperationFailed { message },
                    )),
                    None => Ok(current),
                };
            }
            if started.elapsed() > self.patience.operation_timeout {
                return Err(GcpError::new(
                    operation,
                    target,
                    Problem::StillRunning {
                        seconds: self.patience.operation_timeout.as_secs(),
                    },
                ));
            }
            let (wait, path) = wait_path(&current, target).ok_or_else(|| {
                GcpError::new(
                    operation,
                    target,
                    Problem::BadAnswer {
                        message: "the operation names no project, zone or name to wait on".into(),
                    },
                )
            })?;
            // The first wait goes out at once; later ones pause (a wait can return early).
            if waited {
                tokio::time::sleep(self.patience.poll_interval.min(self.patience.max_wait)).await;
            }
            waited = true;
            let url = self.url(wait, &path, &[]);
            // A failed wait is the original call's failure: it is what the user asked for.
            current = self
                .send(wait, target, &url, None)
                .await
                .map_err(|e| GcpError::new(operation, target, e.problem))?;
        }
    }

    /// Every item of a list method (under `items_key`), following `nextPageToken`.
    pub async fn list(
        &self,
        operation: &GcpOperation,
        path: &str,
        query: &[(&str, &str)],
        items_key: &str,
    ) -> Result<Vec<Value>, GcpError> {
        self.pages(operation, path, query, |page| {
            page.get(items_key)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .await
    }

    /// Every item of a Compute Engine `aggregatedList` method (every zone's `items_key`
    /// list), following `nextPageToken`.
    pub async fn aggregated_list(
        &self,
        operation: &GcpOperation,
        path: &str,
        query: &[(&str, &str)],
        items_key: &str,
    ) -> Result<Vec<Value>, GcpError> {
        self.pages(operation, path, query, |page| {
            aggregated_items(page, items_key)
        })
        .await
    }

    async fn pages(
        &self,
        operation: &GcpOperation,
        path: &str,
        query: &[(&str, &str)],
        items_of: impl Fn(&Value) -> Vec<Value>,
    ) -> Result<Vec<Value>, GcpError> {
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut q: Vec<(&str, &str)> = query.to_vec();
            if let Some(t) = token.as_deref() {
                q.push(("pageToken", t));
            }
            let url = self.url(operation, path, &q);
            let page = self.send(operation, path, &url, None).await?;
            items.extend(items_of(&page));
            match page.get("nextPageToken").and_then(Value::as_str) {
                Some(next) if !next.is_empty() => token = Some(next.to_string()),
                _ => return Ok(items),
            }
        }
    }
}

/// The items of one page of an `aggregatedList` answer: each scope's (`zones/…`) `items_key`
/// list; a scope with only a `warning` (nothing there) adds none.
fn aggregated_items(page: &Value, items_key: &str) -> Vec<Value> {
    page.get("items")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|scopes| scopes.values())
        .filter_map(|scope| scope.get(items_key).and_then(Value::as_array))
        .flatten()
        .cloned()
        .collect()
}

/// The wait method and path for a Compute operation: zonal when it names a zone, else global.
fn wait_path(operation: &Value, target: &str) -> Option<(&'static GcpOperation, String)> {
    let name = operation.get("name").and_then(Value::as_str)?;
    let project = operation
        .get("selfLink")
        .and_then(Value::as_str)
        .and_then(|l| crate::ids::value_after(l, "projects"))
        .or_else(|| crate::ids::value_after(target, "projects"))?;
    match operation
        .get("zone")
        .and_then(Value::as_str)
        .and_then(|z| z.rsplit('/').next())
    {
        Some(zone) if !zone.is_empty() => Some((
            &WAIT_ZONE_OPERATION,
            format!("projects/{project}/zones/{zone}/operations/{name}/wait"),
        )),
        _ => Some((
            &WAIT_GLOBAL_OPERATION,
            format!("projects/{project}/global/operations/{name}/wait"),
        )),
    }
}

/// A finished operation's error (`error.errors[].message`), joined.
fn operation_error(operation: &Value) -> Option<String> {
    let errors = operation.pointer("/error/errors")?.as_array()?;
    let messages: Vec<String> = errors
        .iter()
        .map(|e| {
            let code = e.get("code").and_then(Value::as_str).unwrap_or("ERROR");
            let message = e.get("message").and_then(Value::as_str).unwrap_or("");
            format!("{code}: {message}")
        })
        .collect();
    (!messages.is_empty()).then(|| messages.join("; "))
}

/// `Retry-After` in seconds (Google sends seconds; an HTTP date is treated as absent).
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

async fn read_json(response: reqwest::Response) -> Value {
    response
        .bytes()
        .await
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null)
}

/// Google's error envelope: `{"error": {"code", "message", "status", "errors": [{"reason"}]}}`.
fn error_message(document: &Value) -> String {
    let error = document.get("error").unwrap_or(document);
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("no message");
    match error
        .get("status")
        .and_then(Value::as_str)
        .or_else(|| error.pointer("/errors/0/reason").and_then(Value::as_str))
    {
        Some(status) => format!("{status}: {message}"),
        None => message.to_string(),
    }
}

/// The body of a final (non-retried) answer, or its error.
async fn answer(
    operation: &GcpOperation,
    target: &str,
    response: reqwest::Response,
) -> Result<Value, GcpError> {
    let status = response.status();
    if status.is_success() {
        let bytes = response.bytes().await.map_err(|e| {
            GcpError::new(
                operation,
                target,
                Problem::BadAnswer {
                    message: format!("cut off: {e}"),
                },
            )
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        return serde_json::from_slice(&bytes).map_err(|e| {
            GcpError::new(
                operation,
                target,
                Problem::BadAnswer {
                    message: format!("not JSON: {e}"),
                },
            )
        });
    }
    let message = error_message(&read_json(response).await);
    let problem = match status.as_u16() {
        401 => Problem::Unauthenticated { message },
        403 => Problem::Denied {
            permission: operation.permission,
            message,
        },
        404 => Problem::NotFound { message },
        409 | 412 => Problem::Conflict {
            status: status.as_u16(),
            message,
        },
        s => Problem::Rejected { status: s, message },
    };
    Err(GcpError::new(operation, target, problem))
}

/// A path or query value as a URL carries it (filters hold quotes and spaces).
fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// The calls made so far for one fix, in order, for its audit record.
#[derive(Debug, Default)]
pub(crate) struct CallLog(escher_runtime::calls::CallLog);

impl CallLog {
    pub fn metered(meter: Option<&RemoteCallMeter>) -> Self {
        CallLog(escher_runtime::calls::CallLog::metered(meter))
    }

    /// Runs one method (and waits for its operation) and records it, with its error if any.
    pub async fn call(
        &mut self,
        client: &GcpClient,
        operation: &GcpOperation,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, GcpError> {
        let call = client.call(operation, path, query, body);
        self.0
            .record(operation.name(path), call, |e| e.problem.to_string())
            .await
    }

    /// Every item of a list method, recorded as one call.
    pub async fn list(
        &mut self,
        client: &GcpClient,
        operation: &GcpOperation,
        path: &str,
        query: &[(&str, &str)],
        items_key: &str,
    ) -> Result<Vec<Value>, GcpError> {
        let call = client.list(operation, path, query, items_key);
        self.0
            .record(operation.name(path), call, |e| e.problem.to_string())
            .await
    }

    /// Every item of an `aggregatedList` method, recorded as one call.
    pub async fn aggregated_list(
        &mut self,
        client: &GcpClient,
        operation: &GcpOperation,
        path: &str,
        query: &[(&str, &str)],
        items_key: &str,
    ) -> Result<Vec<Value>, GcpError> {
        let call = client.aggregated_list(operation, path, query, items_key);
        self.0
            .record(operation.name(path), call, |e| e.problem.to_string())
            .await
    }

    pub fn into_calls(self) -> Vec<ApiCall> {
        self.0.into_calls()
    }

    /// `error` as the pipeline sees it, with the calls so far.
    pub fn fail(&self, error: GcpError) -> RemediationError {
        error.into_remediation_error(self.0.calls().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_zonal_operation_is_waited_on_in_its_zone() {
        let op = json!({
            "name": "operation-1", "status": "RUNNING",
            "zone": "https://www.googleapis.com/compute/v1/projects/shop/zones/europe-west3-b",
            "selfLink": "https://www.googleapis.com/compute/v1/projects/shop/zones/europe-west3-b/operations/operation-1"
        });
        let (method, path) =
            wait_path(&op, "projects/shop/zones/europe-west3-b/instances/a").expect("a path");
        assert_eq!(method.id, "compute.zoneOperations.wait");
        assert_eq!(
            path,
            "projects/shop/zones/europe-west3-b/operations/operation-1/wait"
        );
        let global = json!({"name": "operation-2", "status": "PENDING"});
        let (method, path) =
            wait_path(&global, "projects/shop/global/firewalls/f").expect("a path");
        assert_eq!(method.id, "compute.globalOperations.wait");
        assert_eq!(path, "projects/shop/global/operations/operation-2/wait");
    }

    #[test]
    fn an_operation_error_is_read_from_every_entry() {
        let done = json!({"status": "DONE", "error": {"errors": [
            {"code": "RESOURCE_IN_USE", "message": "busy"},
            {"code": "QUOTA_EXCEEDED", "message": "no more"}
        ]}});
        assert_eq!(
            operation_error(&done).as_deref(),
            Some("RESOURCE_IN_USE: busy; QUOTA_EXCEEDED: no more")
        );
        assert_eq!(operation_error(&json!({"status": "DONE"})), None);
    }

    #[test]
    fn a_denial_names_the_permission_to_grant() {
        let error = GcpError::new(
            &WAIT_ZONE_OPERATION,
            "projects/p/zones/z/operations/o",
            Problem::Denied {
                permission: "compute.zoneOperations.get",
                message: "PERMISSION_DENIED: no".into(),
            },
        );
        assert!(!error.is_transient());
        assert!(error
            .to_string()
            .contains("grant compute.zoneOperations.get to the service account"));
    }

    #[test]
    fn an_aggregated_page_is_every_zones_items() {
        let page = json!({"items": {
            "zones/europe-west3-a": {"disks": [{"name": "a"}, {"name": "b"}]},
            "zones/us-central1-f": {"warning": {"code": "NO_RESULTS_ON_PAGE"}},
            "zones/asia-east1-b": {"disks": [{"name": "c"}]}
        }});
        let mut names: Vec<String> = aggregated_items(&page, "disks")
            .iter()
            .filter_map(|d| d["name"].as_str().map(str::to_string))
            .collect();
        names.sort();
        assert_eq!(names, ["a", "b", "c"]);
        assert!(aggregated_items(&json!({}), "disks").is_empty());
    }

    #[test]
    fn filters_are_encoded_for_the_url() {
        assert_eq!(
            encode("metric.type = \"a/b\""),
            "metric.type+%3D+%22a%2Fb%22"
        );
    }
}
