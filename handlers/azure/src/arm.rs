//! Azure Resource Manager over plain HTTPS: a bearer token from an `azure_identity`
//! credential, the operation's `api-version`, and what ARM itself asks of a client: honour
//! `Retry-After` on 429 and 5xx, follow `nextLink` pages, and wait out long-running
//! operations, whichever way the resource provider reports them (`Azure-AsyncOperation`, a
//! status document, or `Location`, polled until it stops answering 202).
//!
//! Each call is one [`ArmOperation`] (the REST operation id, its api-version and the role
//! action it needs), so the audit record names what was called and the conformance suite can
//! hold every call to the fix's declared permissions.

use std::sync::Arc;
use std::time::{Duration, Instant};

use azure_core::credentials::TokenCredential;
use escher_core::remediate::{ApiCall, RemediationError};
use escher_runtime::RemoteCallMeter;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Where public Azure's Resource Manager answers, and the token scope for it.
pub const PUBLIC_ENDPOINT: &str = "https://management.azure.com";
const SCOPE: &str = "https://management.azure.com/.default";

/// One ARM REST operation, as the REST API reference names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArmOperation {
    /// The operation id (`StorageAccounts_Update`), shown in the audit record.
    pub id: &'static str,
    pub method: HttpMethod,
    pub api_version: &'static str,
    /// The role action the call needs (`Microsoft.Storage/storageAccounts/write`).
    pub permission: &'static str,
}

impl ArmOperation {
    /// The call on `path`, as a fix's audit record names it (its provider is the service).
    fn name<'a>(&'a self, path: &'a str) -> escher_runtime::calls::CallName<'a> {
        escher_runtime::calls::CallName {
            service: self.permission.split('/').next().unwrap_or(self.permission),
            operation: self.id,
            target: path,
            mutating: self.method.mutating(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    Get,
    Put,
    Patch,
    Delete,
    Post,
}

impl HttpMethod {
    fn as_reqwest(self) -> Method {
        match self {
            HttpMethod::Get => Method::GET,
            HttpMethod::Put => Method::PUT,
            HttpMethod::Patch => Method::PATCH,
            HttpMethod::Delete => Method::DELETE,
            HttpMethod::Post => Method::POST,
        }
    }

    /// Whether the call changes something (a dry run makes none).
    pub fn mutating(self) -> bool {
        !matches!(self, HttpMethod::Get)
    }
}

/// How long the client waits and how often it tries.
#[derive(Debug, Clone, Copy)]
pub struct Patience {
    /// Attempts of one request when ARM answers 429 or 5xx, or cannot be reached.
    pub attempts: u32,
    /// The wait between polls of a long-running operation that names none.
    pub poll_interval: Duration,
    /// The longest single wait, whatever `Retry-After` asks (a function has a deadline).
    pub max_wait: Duration,
    /// How long one long-running operation may take before the event is retried later.
    pub operation_timeout: Duration,
}

impl Default for Patience {
    fn default() -> Self {
        Patience {
            attempts: 4,
            poll_interval: Duration::from_secs(5),
            max_wait: Duration::from_secs(30),
            operation_timeout: Duration::from_secs(240),
        }
    }
}

/// A failed ARM call: what ARM said (its error code and message), and whether trying the
/// event again later can help.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation} on {target}: {message}")]
pub struct ArmError {
    pub operation: &'static str,
    pub target: String,
    /// ARM's error code (`ResourceNotFound`, `AuthorizationFailed`, …), when it sent one.
    pub code: Option<String>,
    pub status: Option<u16>,
    pub transient: bool,
    pub message: String,
}

impl ArmError {
    /// A failure with no answer from ARM to read (no connection, no token, a cut-off or
    /// unreadable answer, an operation still running): worth trying the event again.
    fn transient(
        operation: &ArmOperation,
        target: &str,
        status: Option<u16>,
        message: String,
    ) -> Self {
        ArmError {
            operation: operation.id,
            target: target.to_string(),
            code: None,
            status,
            transient: true,
            message,
        }
    }

    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    pub fn into_remediation_error(self, api_calls: Vec<ApiCall>) -> RemediationError {
        RemediationError::of_call(
            self.transient,
            self.operation,
            self.target,
            self.message,
            api_calls,
        )
    }
}

/// A client for one Resource Manager endpoint, shared by every fix of a process.
#[derive(Clone)]
pub struct ArmClient {
    http: reqwest::Client,
    endpoint: String,
    credential: Arc<dyn TokenCredential>,
    patience: Patience,
}

impl std::fmt::Debug for ArmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArmClient")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl ArmClient {
    /// `endpoint` is Resource Manager's base URL ([`PUBLIC_ENDPOINT`] in public Azure).
    pub fn new(endpoint: impl Into<String>, credential: Arc<dyn TokenCredential>) -> Self {
        ArmClient::on(reqwest::Client::new(), endpoint, credential)
    }

    /// A client sending through `http` (shared with the credential and the other Azure
    /// calls of the process).
    pub fn on(
        http: reqwest::Client,
        endpoint: impl Into<String>,
        credential: Arc<dyn TokenCredential>,
    ) -> Self {
        ArmClient {
            http,
            endpoint: endpoint.into().trim_end_matches('/').to_string(),
            credential,
            patience: Patience::default(),
        }
    }

    pub fn with_patience(mut self, patience: Patience) -> Self {
        self.patience = patience;
        self
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The HTTP client, for the other Azure calls of the process to share: one connection
    /// pool and one TLS set-up (loading the system's roots is most of a client's cost).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Asks the credential for Resource Manager's token ahead of the first call (the
    /// credential keeps it until it nears expiry).
    pub async fn warm(&self) -> Result<(), azure_core::Error> {
        self.credential.get_token(&[SCOPE], None).await.map(|_| ())
    }

    async fn bearer(&self, operation: &ArmOperation, target: &str) -> Result<String, ArmError> {
        let token = self
            .credential
            .get_token(&[SCOPE], None)
            .await
            // The identity endpoint is part of the platform; its hiccups pass.
            .map_err(|e| {
                ArmError::transient(
                    operation,
                    target,
                    None,
                    format!("no token for Resource Manager from the Azure credential: {e}"),
                )
            })?;
        Ok(format!("Bearer {}", token.token.secret()))
    }

    /// Sends one request, again after 429 / 5xx / no connection as `Retry-After` asks.
    async fn send(
        &self,
        operation: &ArmOperation,
        target: &str,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<reqwest::Response, ArmError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self
                .http
                .request(method.clone(), url)
                .header("Authorization", self.bearer(operation, target).await?);
            if let Some(body) = body {
                request = request.json(body);
            } else if method == Method::POST {
                request = request.header("Content-Length", "0");
            }
            let failure = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    if status != StatusCode::TOO_MANY_REQUESTS && !status.is_server_error() {
                        return Ok(response);
                    }
                    let wait = retry_after(&response);
                    let error = error_from(operation, target, response).await;
                    (error, wait)
                }
                Err(e) => (
                    ArmError::transient(
                        operation,
                        target,
                        None,
                        format!("could not reach Resource Manager: {e}"),
                    ),
                    None,
                ),
            };
            if attempt >= self.patience.attempts {
                return Err(failure.0);
            }
            let wait = failure
                .1
                .unwrap_or(Duration::from_millis(500 * u64::from(attempt)));
            tokio::time::sleep(wait.min(self.patience.max_wait)).await;
        }
    }

    fn url(&self, path: &str, api_version: &str, query: &[(&str, &str)]) -> String {
        let mut url = format!("{}{}?api-version={api_version}", self.endpoint, path);
        for (k, v) in query {
            url.push('&');
            url.push_str(k);
            url.push('=');
            url.push_str(&encode(v));
        }
        url
    }

    /// Runs `operation` on `path` and, when it is long-running, waits for its end. Returns
    /// the resource as ARM last described it (`Value::Null` when the answer had no body).
    pub async fn call(
        &self,
        operation: &ArmOperation,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, ArmError> {
        let url = self.url(path, operation.api_version, query);
        let response = self
            .send(operation, path, operation.method.as_reqwest(), &url, body)
            .await?;
        let response = succeeded(operation, path, response).await?;
        let status = response.status();
        let async_status = header(&response, "azure-asyncoperation");
        let location = header(&response, "location");
        let wait = retry_after(&response);
        let first = body_of(operation, path, response).await?;
        // An update may answer 200 and still run on (a deployment stack does): the
        // status document says when it ends.
        if status != StatusCode::ACCEPTED && status != StatusCode::CREATED && async_status.is_none()
        {
            return Ok(first);
        }
        match (async_status, location) {
            (Some(status_url), location) => {
                self.await_status(operation, path, &status_url, wait)
                    .await?;
                // The final resource: where `Location` points for an action, else the
                // resource itself (a PUT/PATCH); nothing for a DELETE.
                match (operation.method, location) {
                    (HttpMethod::Delete, _) => Ok(Value::Null),
                    (HttpMethod::Post, Some(location)) => {
                        self.await_location(operation, path, &location, None).await
                    }
                    (HttpMethod::Post, None) => Ok(Value::Null),
                    _ => self.get_url(operation, path, &url).await,
                }
            }
            (None, Some(location)) => self.await_location(operation, path, &location, wait).await,
            // 201/202 with nothing to poll: the answer is all there is.
            (None, None) => Ok(first),
        }
    }

    async fn get_url(
        &self,
        operation: &ArmOperation,
        target: &str,
        url: &str,
    ) -> Result<Value, ArmError> {
        let response = self.send(operation, target, Method::GET, url, None).await?;
        let response = succeeded(operation, target, response).await?;
        body_of(operation, target, response).await
    }

    /// Polls an `Azure-AsyncOperation` status document until it says how it ended.
    async fn await_status(
        &self,
        operation: &ArmOperation,
        target: &str,
        status_url: &str,
        first_wait: Option<Duration>,
    ) -> Result<(), ArmError> {
        let started = Instant::now();
        let mut wait = first_wait;
        loop {
            self.pause(operation, target, started, wait).await?;
            let response = self
                .send(operation, target, Method::GET, status_url, None)
                .await?;
            wait = retry_after(&response);
            let response = succeeded(operation, target, response).await?;
            let document = body_of(operation, target, response).await?;
            match document.get("status").and_then(Value::as_str).unwrap_or("") {
                s if s.eq_ignore_ascii_case("Succeeded") => return Ok(()),
                s if s.eq_ignore_ascii_case("Failed") || s.eq_ignore_ascii_case("Canceled") => {
                    let (code, message) = error_fields(&document);
                    return Err(ArmError {
                        operation: operation.id,
                        target: target.to_string(),
                        code,
                        status: None,
                        transient: false,
                        message: format!("the operation ended {s}: {message}"),
                    });
                }
                _ => {}
            }
        }
    }

    /// Polls a `Location` URL until it stops answering 202; its last body is the result.
    async fn await_location(
        &self,
        operation: &ArmOperation,
        target: &str,
        location: &str,
        first_wait: Option<Duration>,
    ) -> Result<Value, ArmError> {
        let started = Instant::now();
        let mut wait = first_wait;
        loop {
            self.pause(operation, target, started, wait).await?;
            let response = self
                .send(operation, target, Method::GET, location, None)
                .await?;
            wait = retry_after(&response);
            if response.status() == StatusCode::ACCEPTED {
                continue;
            }
            let response = succeeded(operation, target, response).await?;
            return body_of(operation, target, response).await;
        }
    }

    async fn pause(
        &self,
        operation: &ArmOperation,
        target: &str,
        started: Instant,
        wait: Option<Duration>,
    ) -> Result<(), ArmError> {
        if started.elapsed() > self.patience.operation_timeout {
            return Err(ArmError::transient(
                operation,
                target,
                None,
                format!(
                    "still running after {} s; the event will be tried again",
                    self.patience.operation_timeout.as_secs()
                ),
            ));
        }
        let wait = wait.unwrap_or(self.patience.poll_interval);
        tokio::time::sleep(wait.min(self.patience.max_wait)).await;
        Ok(())
    }

    /// Every item of a list operation, following `nextLink` to the last page.
    pub async fn list(
        &self,
        operation: &ArmOperation,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Vec<Value>, ArmError> {
        let mut url = self.url(path, operation.api_version, query);
        let mut items = Vec::new();
        loop {
            let page = self.get_url(operation, path, &url).await?;
            if let Some(values) = page.get("value").and_then(Value::as_array) {
                items.extend(values.iter().cloned());
            }
            match page.get("nextLink").and_then(Value::as_str) {
                Some(next) if !next.is_empty() => url = next.to_string(),
                _ => return Ok(items),
            }
        }
    }
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// `Retry-After` in seconds (ARM sends seconds; an HTTP date is treated as absent).
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    header(response, "retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

async fn body_of(
    operation: &ArmOperation,
    target: &str,
    response: reqwest::Response,
) -> Result<Value, ArmError> {
    let status = response.status().as_u16();
    let bytes = response.bytes().await.map_err(|e| {
        ArmError::transient(
            operation,
            target,
            Some(status),
            format!("the answer was cut off: {e}"),
        )
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        ArmError::transient(
            operation,
            target,
            Some(status),
            format!("the answer is not JSON ({e})"),
        )
    })
}

/// The response when it is a success, else ARM's error read from it.
async fn succeeded(
    operation: &ArmOperation,
    target: &str,
    response: reqwest::Response,
) -> Result<reqwest::Response, ArmError> {
    if response.status().is_success() {
        Ok(response)
    } else {
        Err(error_from(operation, target, response).await)
    }
}

/// ARM's error envelope, `{"error": {"code", "message"}}` (some providers leave out `error`).
fn error_fields(document: &Value) -> (Option<String>, String) {
    let error = document.get("error").unwrap_or(document);
    let code = error
        .get("code")
        .and_then(Value::as_str)
        .map(str::to_string);
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("no message")
        .to_string();
    (code, message)
}

async fn error_from(
    operation: &ArmOperation,
    target: &str,
    response: reqwest::Response,
) -> ArmError {
    let status = response.status();
    let document = response
        .bytes()
        .await
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .unwrap_or(Value::Null);
    let (code, message) = error_fields(&document);
    let advice = match status.as_u16() {
        401 | 403 => "; check that the function's identity holds the Escher role on this subscription (escher-provision extend --cloud azure grants it)",
        404 => "; it may have been deleted since the alert",
        _ => "",
    };
    ArmError {
        operation: operation.id,
        target: target.to_string(),
        transient: status == StatusCode::TOO_MANY_REQUESTS
            || status.is_server_error()
            || status == StatusCode::REQUEST_TIMEOUT,
        message: format!(
            "HTTP {}: {}{message}{advice}",
            status.as_u16(),
            code.as_deref()
                .map(|c| format!("{c}: "))
                .unwrap_or_default()
        ),
        code,
        status: Some(status.as_u16()),
    }
}

/// Query values ARM takes (metric names hold spaces; timespans hold `/` and `:`).
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

    /// Runs one ARM operation and records it (with its error, if any).
    pub async fn call(
        &mut self,
        arm: &ArmClient,
        operation: &ArmOperation,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, ArmError> {
        let call = arm.call(operation, path, query, body);
        self.0
            .record(operation.name(path), call, |e| e.message.clone())
            .await
    }

    /// Every item of a list operation, recorded as one call.
    pub async fn list(
        &mut self,
        arm: &ArmClient,
        operation: &ArmOperation,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Vec<Value>, ArmError> {
        let call = arm.list(operation, path, query);
        self.0
            .record(operation.name(path), call, |e| e.message.clone())
            .await
    }

    pub fn into_calls(self) -> Vec<ApiCall> {
        self.0.into_calls()
    }

    /// `error` as the pipeline sees it, with the calls so far.
    pub fn fail(&self, error: ArmError) -> RemediationError {
        error.into_remediation_error(self.0.calls().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_encoded_for_the_url() {
        assert_eq!(encode("Percentage CPU"), "Percentage+CPU");
        assert_eq!(
            encode("2026-12-01T00:00:00Z/2026-12-01T02:00:00Z"),
            "2026-12-01T00%3A00%3A00Z%2F2026-12-01T02%3A00%3A00Z"
        );
    }

    #[test]
    fn the_error_envelope_is_read_with_or_without_its_wrapper() {
        let wrapped = serde_json::json!({"error": {"code": "ResourceNotFound", "message": "gone"}});
        assert_eq!(
            error_fields(&wrapped),
            (Some("ResourceNotFound".to_string()), "gone".to_string())
        );
        let bare = serde_json::json!({"code": "Conflict", "message": "busy"});
        assert_eq!(error_fields(&bare).0.as_deref(), Some("Conflict"));
        assert_eq!(error_fields(&Value::Null), (None, "no message".to_string()));
    }
}
