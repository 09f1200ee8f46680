//! What the Google stand-ins ([`crate::gcp_api`], [`crate::gcp_infra_manager`] and
//! [`crate::gcp_project_api`]) do alike around their APIs' own logic: read a request
//! ([`Incoming`], an axum extractor), hold it to the discovery documents and log it with its
//! answer ([`ContractLog`]), answer as Google's APIs answer ([`ok`], [`found`],
//! [`not_found`], [`already_exists`], [`unauthenticated`], [`not_played`]; other errors
//! through [`google_error`]), and
//! serve on loopback ([`loopback`], [`serve_in_background`]).

use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::handler::Handler;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::Value;

use crate::gcp_discovery::{google_error, segments, Discovery, Published};

/// One request as a stand-in reads it before its API's logic.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub method: Method,
    /// The URI as sent, `/v1/projects/p/locations/l/deployments?deploymentId=d`.
    pub uri: Uri,
    /// The path's non-empty segments, `["v1", "projects", "p", …]`.
    pub segments: Vec<String>,
    /// The query string's pairs, decoded, in order (a key may repeat).
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    /// The body as JSON; `None` when it is empty or not JSON.
    pub body: Option<Value>,
    /// The body's bytes as sent (a media upload's content).
    pub raw: Bytes,
}

impl Incoming {
    pub fn read(method: Method, uri: Uri, headers: HeaderMap, raw: Bytes) -> Incoming {
        let query = uri
            .query()
            .map(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let body = if raw.is_empty() {
            None
        } else {
            serde_json::from_slice(&raw).ok()
        };
        Incoming {
            method,
            segments: segments(uri.path()),
            uri,
            query,
            headers,
            body,
            raw,
        }
    }

    /// The URL path as sent, `/v1/projects/p/locations/l/deployments`.
    pub fn path(&self) -> &str {
        self.uri.path()
    }

    /// The first value of the query parameter `key`.
    pub fn param(&self, key: &str) -> Option<&str> {
        param(&self.query, key)
    }

    /// The string field `key` of the JSON body.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.body.as_ref()?.get(key)?.as_str()
    }

    /// The token of an `Authorization: Bearer …` header.
    pub fn bearer(&self) -> Option<&str> {
        self.headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
    }
}

/// The body as axum's `Bytes` extractor reads it (its size limit and its rejections).
impl<S: Send + Sync> FromRequest<S> for Incoming {
    type Rejection = BytesRejection;

    async fn from_request(request: Request, state: &S) -> Result<Incoming, BytesRejection> {
        let method = request.method().clone();
        let uri = request.uri().clone();
        let headers = request.headers().clone();
        let raw = Bytes::from_request(request, state).await?;
        Ok(Incoming::read(method, uri, headers, raw))
    }
}

/// The first value of the query parameter `key` among `query`'s pairs.
pub fn param<'q>(query: &'q [(String, String)], key: &str) -> Option<&'q str> {
    query
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// One request as a stand-in saw it, with its answer's status.
#[derive(Debug, Clone)]
pub struct GoogleRequest {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    /// The published method it matched (`compute.firewalls.patch`), if any.
    pub operation: Option<String>,
    pub body: Option<Value>,
    pub status: u16,
}

#[derive(Debug, Default)]
struct Seen {
    requests: Vec<GoogleRequest>,
    violations: Vec<String>,
}

/// The discovery documents a stand-in holds its requests to, and what it saw: every request
/// with its answer, and every way one broke the published contract. Clones share the log.
#[derive(Debug, Clone)]
pub struct ContractLog {
    discovery: Arc<Discovery>,
    seen: Arc<Mutex<Seen>>,
}

impl ContractLog {
    /// Loads the named vendored documents (`config.v1`); see [`Discovery::load`].
    pub fn load(documents: &[&str]) -> ContractLog {
        ContractLog {
            discovery: Arc::new(Discovery::load(documents)),
            seen: Arc::default(),
        }
    }

    pub fn discovery(&self) -> &Discovery {
        &self.discovery
    }

    /// Answers `incoming` with `route`, which says the published method it matched, and
    /// logs the request with the answer's status.
    pub fn answer(
        &self,
        incoming: Incoming,
        route: impl FnOnce(&Incoming) -> (Response, Option<String>),
    ) -> Response {
        let (response, operation) = route(&incoming);
        let Incoming {
            method,
            uri,
            query,
            body,
            ..
        } = incoming;
        self.seen().requests.push(GoogleRequest {
            method: method.to_string(),
            path: uri.path().to_string(),
            query,
            operation,
            body,
            status: response.status().as_u16(),
        });
        response
    }

    /// The published method `incoming` is when its path reads as `segments`; else the 400
    /// that answers it, every problem recorded as a violation.
    // The refusal is the HTTP response itself, returned as it is.
    #[allow(clippy::result_large_err)]
    pub fn hold(&self, incoming: &Incoming, segments: &[String]) -> Result<&Published, Response> {
        self.discovery
            .check(
                &incoming.method,
                segments,
                &incoming.query,
                incoming.body.as_ref(),
            )
            .map_err(|problems| self.refuse(problems))
    }

    /// Records `problems` as violations and answers the request 400 naming them.
    pub fn refuse(&self, problems: Vec<String>) -> Response {
        let message = problems.join("; ");
        self.seen().violations.extend(problems);
        google_error(StatusCode::BAD_REQUEST, "invalid", &message)
    }

    pub fn requests(&self) -> Vec<GoogleRequest> {
        self.seen().requests.clone()
    }

    /// Every way a request broke the published contract (each was answered 400).
    pub fn violations(&self) -> Vec<String> {
        self.seen().violations.clone()
    }

    fn seen(&self) -> MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// 200 with `value` as the JSON body.
pub fn ok(value: Value) -> Response {
    (StatusCode::OK, axum::Json(value)).into_response()
}

/// 200 with `value`, or 404 naming `name` when there is none.
pub fn found(value: Option<&Value>, name: &str) -> Response {
    match value {
        Some(v) => ok(v.clone()),
        None => not_found(name),
    }
}

/// 404 as the APIs that name resources by their full name word it.
pub fn not_found(name: &str) -> Response {
    google_error(
        StatusCode::NOT_FOUND,
        "notFound",
        &format!("Resource '{name}' was not found"),
    )
}

/// 409 for a create whose resource exists, `message` naming it.
pub fn already_exists(message: &str) -> Response {
    google_error(StatusCode::CONFLICT, "alreadyExists", message)
}

/// 401 for a missing or unknown bearer token, as Google words it.
pub fn unauthenticated() -> Response {
    google_error(
        StatusCode::UNAUTHORIZED,
        "authError",
        "Request had invalid authentication credentials.",
    )
}

/// 501 for a published method the stand-in does not play, `message` saying which.
pub fn not_played(message: &str) -> Response {
    google_error(StatusCode::NOT_IMPLEMENTED, "notImplemented", message)
}

/// A listener on a free port of 127.0.0.1 and its origin, `http://127.0.0.1:<port>`.
pub async fn loopback() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let port = listener.local_addr().expect("local address").port();
    (listener, format!("http://127.0.0.1:{port}"))
}

/// Answers every request on `listener` with `handler` over `state`, until the runtime that
/// spawned it stops.
pub fn serve_in_background<H, T, S>(listener: tokio::net::TcpListener, handler: H, state: S)
where
    H: Handler<T, S>,
    T: 'static,
    S: Clone + Send + Sync + 'static,
{
    let app = Router::new().fallback(handler).with_state(state);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incoming(method: Method, uri: &str, body: &str) -> Incoming {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", "Bearer t-1".parse().expect("a header"));
        Incoming::read(
            method,
            uri.parse().expect("a URI"),
            headers,
            Bytes::from(body.to_string()),
        )
    }

    #[test]
    fn a_request_reads_as_its_segments_decoded_query_json_body_and_bearer() {
        let request = incoming(
            Method::POST,
            "/v1/projects/p/locations/l/deployments?deploymentId=d%201&x=1&x=2",
            r#"{"serviceAccount": "projects/p/serviceAccounts/a"}"#,
        );
        assert_eq!(
            request.segments,
            ["v1", "projects", "p", "locations", "l", "deployments"]
        );
        assert_eq!(request.param("deploymentId"), Some("d 1"));
        assert_eq!(request.param("x"), Some("1"), "the first of a repeated key");
        assert_eq!(
            request.field("serviceAccount"),
            Some("projects/p/serviceAccounts/a")
        );
        assert_eq!(request.bearer(), Some("t-1"));
        let media = incoming(Method::POST, "/upload/storage/v1/b/b/o", "resource \"x\"");
        assert_eq!(media.body, None, "a body that is not JSON");
        assert_eq!(&media.raw[..], b"resource \"x\"");
    }

    #[test]
    fn a_request_off_the_contract_is_answered_400_and_recorded_with_its_answer() {
        let log = ContractLog::load(&["config.v1"]);
        let request = incoming(Method::DELETE, "/v1/projects/p/locations/l/nothing", "");
        let answer = log.answer(request, |incoming| {
            match log.hold(incoming, &incoming.segments) {
                Ok(published) => (ok(Value::Null), Some(published.id.clone())),
                Err(refused) => (refused, None),
            }
        });
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
        assert_eq!(log.violations().len(), 1, "{:?}", log.violations());
        let logged = log.requests();
        assert_eq!(logged.len(), 1);
        assert_eq!(logged[0].status, 400);
        assert_eq!(logged[0].operation, None);

        let get = incoming(Method::GET, "/v1/projects/p/locations/l/deployments/d", "");
        let answer = log.answer(get, |incoming| {
            match log.hold(incoming, &incoming.segments) {
                Ok(published) => (not_found("d"), Some(published.id.clone())),
                Err(refused) => (refused, None),
            }
        });
        assert_eq!(answer.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            log.violations().len(),
            1,
            "a published method adds no violation"
        );
        assert_eq!(
            log.requests()[1].operation.as_deref(),
            Some("config.projects.locations.deployments.get")
        );
    }
}
