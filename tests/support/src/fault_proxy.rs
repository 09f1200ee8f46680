//! A fault proxy on 127.0.0.1: every HTTP request the handler's clients and stores send
//! passes through it on its way to the service behind it (moto, fake-gcs-server, azurite,
//! the Google APIs contract server, the Resource Manager stand-in), is logged with what it
//! was answered, and the requests a [`Rule`] picks get a fault instead of (or on top of)
//! the service's answer.
//!
//! Hand-written because the fault crates on crates.io inject at random rates (noxy,
//! tower-fault) or run as separate programs (fault-cli, lowdown): a test needs "the first N
//! requests that match", and a truncated answer to a request the service did apply, which
//! neither offers. HTTP/1.1 only, as the SDK, reqwest and opendal speak it to an `http://`
//! endpoint. A `Location` naming the service behind is rewritten to the proxy (as a reverse
//! proxy does), so a Cloud Storage resumable upload's session comes back through it too.
//!
//! In front of fake-gcs-server ([`FaultProxy::start_in_front_of_fake_gcs`]) the proxy also
//! refuses a create-only upload (`ifGenerationMatch=0`) of an object that exists, with
//! Cloud Storage's 412: fake-gcs-server up to v1.54 (the one `tests/emulators.sh` installs)
//! writes it anyway, and the pipeline's claim markers and audit records rely on that refusal.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What a rule does to a request it picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The connection is closed without an answer (as a server that went away mid-request).
    Close,
    /// The connection is reset (TCP RST) without an answer.
    Reset,
    /// No answer for this long, then the connection is closed; the request never reaches
    /// the service (a server that stopped answering: longer than the client's timeout).
    Hang(Duration),
    /// 500 Internal Server Error, not forwarded.
    InternalError,
    /// 503 Service Unavailable, not forwarded.
    Unavailable,
    /// 429 Too Many Requests with `Retry-After: 1`, not forwarded.
    TooManyRequests,
    /// S3's `SlowDown`: 503 with S3's XML error body, not forwarded (to any other client, the
    /// 503 it is).
    SlowDown,
    /// Forwarded, so the service applies it; its answer is cut short and the connection
    /// closed: a body is sent in part under a `Content-Length` larger than what follows, an
    /// answer without a body (a PUT's) loses half its head. The answer to an applied change
    /// is lost.
    TruncatedAnswer,
}

impl Fault {
    /// Every kind, for a test that tries each.
    pub fn all(hang: Duration) -> [Fault; 8] {
        [
            Fault::Close,
            Fault::Reset,
            Fault::Hang(hang),
            Fault::InternalError,
            Fault::Unavailable,
            Fault::TooManyRequests,
            Fault::SlowDown,
            Fault::TruncatedAnswer,
        ]
    }

    /// A short name for tables.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Close => "close",
            Fault::Reset => "reset",
            Fault::Hang(_) => "hang",
            Fault::InternalError => "500",
            Fault::Unavailable => "503",
            Fault::TooManyRequests => "429",
            Fault::SlowDown => "SlowDown",
            Fault::TruncatedAnswer => "truncated",
        }
    }
}

/// One request as the proxy read it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The path, percent-encoded as sent (S3 path style: `/bucket/key`; Cloud Storage's JSON
    /// API: `/storage/v1/b/{bucket}/o/{object}`).
    pub path: String,
    /// The query string, without `?` (empty when none).
    pub query: String,
    /// The API operation: `X-Amz-Target`'s operation (`AmazonSSM.GetParameter` →
    /// `GetParameter`), else the form's or query's `Action=`, else empty (S3's REST calls:
    /// see [`Request::s3_subresource`]).
    pub operation: String,
}

impl Request {
    /// The bucket of an S3 path-style request.
    pub fn bucket(&self) -> &str {
        self.path
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or_default()
    }

    /// The object key of an S3 path-style request (empty for a bucket-level call).
    pub fn key(&self) -> &str {
        self.path
            .trim_start_matches('/')
            .split_once('/')
            .map(|(_, key)| key)
            .unwrap_or_default()
    }

    /// The bucket subresource an S3 call names (`acl`, `publicAccessBlock`, `tagging`, …):
    /// the query's first parameter without a value, or `None`.
    pub fn s3_subresource(&self) -> Option<&str> {
        self.query
            .split('&')
            .map(|p| p.split_once('=').map(|(k, _)| k).unwrap_or(p))
            .find(|k| !k.is_empty() && !k.contains('-') && *k != "x-id")
            .filter(|k| {
                !self
                    .query
                    .split('&')
                    .any(|p| p.starts_with(&format!("{k}=")) && p.len() > k.len() + 1)
            })
    }

    /// Whether this is an S3 object write (PUT) whose key, below its store's prefix, starts
    /// with `prefix` anywhere in the key (stores sit under a folder of the bucket).
    pub fn is_object_put_under(&self, folder: &str) -> bool {
        self.method == "PUT" && self.s3_subresource().is_none() && self.key().contains(folder)
    }

    /// Whether this is an S3 object read (GET) under `folder`.
    pub fn is_object_get_under(&self, folder: &str) -> bool {
        self.method == "GET" && self.s3_subresource().is_none() && self.key().contains(folder)
    }

    /// The query parameter `name`, decoded; `None` when the query has none.
    pub fn query_param(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// A Cloud Storage JSON API call's bucket and what follows it, as sent: `/storage/v1/b/
    /// {bucket}/{rest}`, also under `/upload/` and `/download/`.
    fn gcs_parts(&self) -> Option<(&str, &str)> {
        let path = self.path.as_str();
        let api = path
            .strip_prefix("/upload")
            .or_else(|| path.strip_prefix("/download"))
            .unwrap_or(path);
        let rest = api.strip_prefix("/storage/v1/b/")?;
        let (bucket, under) = rest.split_once('/').unwrap_or((rest, ""));
        (!bucket.is_empty()).then_some((bucket, under))
    }

    /// The bucket a Cloud Storage JSON API call names, or `None` for any other call.
    pub fn gcs_bucket(&self) -> Option<&str> {
        self.gcs_parts().map(|(bucket, _)| bucket)
    }

    /// What a Cloud Storage call names below its bucket, as sent: `""` for the bucket itself
    /// (`storage.buckets.get`, `patch`), `iam` for its IAM policy, `o` for its objects (a
    /// listing, an upload), `o/{object}` for one object.
    pub fn gcs_under_bucket(&self) -> Option<&str> {
        self.gcs_parts().map(|(_, under)| under)
    }

    /// The object a Cloud Storage call reads or writes, decoded: from the path
    /// (`…/o/{object}`), or from an upload's `name` (a resumable upload's session names it
    /// when its URI carries the name, as fake-gcs-server's does).
    pub fn gcs_object(&self) -> Option<String> {
        let (_, under) = self.gcs_parts()?;
        if let Some(encoded) = under.strip_prefix("o/") {
            return Some(
                percent_encoding::percent_decode_str(encoded)
                    .decode_utf8_lossy()
                    .into_owned(),
            );
        }
        (under == "o" && self.path.starts_with("/upload/"))
            .then(|| self.query_param("name"))
            .flatten()
    }

    /// Whether this is a Cloud Storage object upload (an upload's POST or a resumable
    /// session's PUT) of an object whose name holds `folder`.
    pub fn is_gcs_object_write_under(&self, folder: &str) -> bool {
        matches!(self.method.as_str(), "POST" | "PUT")
            && self.path.starts_with("/upload/")
            && self.gcs_object().is_some_and(|o| o.contains(folder))
    }

    /// Whether this is a Cloud Storage object read (its data or its metadata) of an object
    /// whose name holds `folder`; a listing names no object and is not one.
    pub fn is_gcs_object_read_under(&self, folder: &str) -> bool {
        self.method == "GET" && self.gcs_object().is_some_and(|o| o.contains(folder))
    }

    /// The container and blob an Azure Blob call names, path style as azurite serves it
    /// (`/{account}/{container}/{blob}`), the blob decoded; `None` for an account-level call.
    /// A container-level call (a listing) names an empty blob.
    pub fn azblob_parts(&self) -> Option<(&str, String)> {
        let mut parts = self.path.trim_start_matches('/').splitn(3, '/');
        let (_account, container) = (parts.next()?, parts.next()?);
        let blob = parts.next().unwrap_or_default();
        (!container.is_empty()).then(|| {
            (
                container,
                percent_encoding::percent_decode_str(blob)
                    .decode_utf8_lossy()
                    .into_owned(),
            )
        })
    }

    /// Whether this is an Azure Blob write (a blob's PUT, a block's or its block list's)
    /// of a blob whose name holds `folder`.
    pub fn is_azblob_write_under(&self, folder: &str) -> bool {
        self.method == "PUT" && self.azblob_parts().is_some_and(|(_, b)| b.contains(folder))
    }

    /// Whether this is an Azure Blob read (its data or its properties) of a blob whose name
    /// holds `folder`; a listing names no blob and is not one.
    pub fn is_azblob_read_under(&self, folder: &str) -> bool {
        matches!(self.method.as_str(), "GET" | "HEAD")
            && self
                .azblob_parts()
                .is_some_and(|(_, b)| !b.is_empty() && b.contains(folder))
    }

    /// Whether this upload may only create its object (`ifGenerationMatch=0`).
    fn is_gcs_create_only(&self) -> bool {
        self.path.starts_with("/upload/")
            && self.method == "POST"
            && self.query_param("ifGenerationMatch").as_deref() == Some("0")
    }

    /// A one-line description for the log.
    pub fn describe(&self) -> String {
        if let Some((bucket, under)) = self.gcs_parts() {
            let what = self.gcs_object().unwrap_or_else(|| under.to_string());
            return format!("{} gs://{bucket} {what}", self.method);
        }
        let what = if !self.operation.is_empty() {
            self.operation.clone()
        } else if let Some(sub) = self.s3_subresource() {
            format!("?{sub}")
        } else {
            self.key().to_string()
        };
        format!("{} {} {what}", self.method, self.bucket())
    }
}

/// One request and what became of it.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub request: Request,
    /// The fault a rule applied, if any.
    pub fault: Option<Fault>,
    /// The status of the service behind the proxy, when the request reached it (412 when the
    /// proxy refused a create-only upload for fake-gcs-server).
    pub upstream_status: Option<u16>,
    /// The status the client received in full; `None` when it got no complete answer
    /// (closed, reset, hung, truncated).
    pub answered: Option<u16>,
}

impl Exchange {
    /// Whether the service applied the request (answered it 2xx), whatever the client then
    /// saw.
    pub fn applied(&self) -> bool {
        self.upstream_status
            .is_some_and(|s| (200..300).contains(&s))
    }
}

type Predicate = Arc<dyn Fn(&Request) -> bool + Send + Sync>;

/// Picks requests for a fault: those `matches` accepts, the first `times` of them.
#[derive(Clone)]
pub struct Rule {
    matches: Predicate,
    fault: Fault,
    remaining: usize,
    /// Matching requests let through before the first fault.
    skip: usize,
}

impl Rule {
    /// The first `times` requests `matches` accepts get `fault`.
    pub fn new(
        fault: Fault,
        times: usize,
        matches: impl Fn(&Request) -> bool + Send + Sync + 'static,
    ) -> Rule {
        Rule {
            matches: Arc::new(matches),
            fault,
            remaining: times,
            skip: 0,
        }
    }

    /// Lets the first `skip` matching requests through untouched (to reach a later call of
    /// the same kind: the reading after a change rather than the one before it).
    pub fn after(mut self, skip: usize) -> Rule {
        self.skip = skip;
        self
    }
}

#[derive(Default)]
struct Shared {
    rules: Vec<Rule>,
    log: Vec<Exchange>,
}

/// The running proxy. It stops when the runtime that started it does.
#[derive(Clone)]
pub struct FaultProxy {
    url: String,
    shared: Arc<Mutex<Shared>>,
}

/// Where the proxy forwards, and what it holds that service to.
#[derive(Clone)]
struct Upstream {
    origin: String,
    /// The proxy's own origin, for the `Location`s it rewrites.
    proxy: String,
    /// Refuse create-only uploads of existing objects (for fake-gcs-server).
    create_only: bool,
    /// Held by a create-only write from its existence check to its answer.
    creating: Arc<tokio::sync::Mutex<()>>,
    /// Create-only resumable uploads begun, by `upload_id`: the request that began each.
    sessions: Arc<Mutex<std::collections::HashMap<String, Request>>>,
}

impl Upstream {
    /// The create-only upload `request` begins or finishes (a resumable session's `PUT`
    /// carries no object name: the request that began it does).
    fn create_only(&self, request: &Request) -> Option<Request> {
        if !self.create_only {
            return None;
        }
        if request.is_gcs_create_only() {
            return Some(request.clone());
        }
        if request.method != "PUT" || !request.path.starts_with("/upload/") {
            return None;
        }
        let id = request.query_param("upload_id")?;
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.get(&id).cloned()
    }

    /// Remembers the session a create-only upload's first request opened (its `Location`).
    fn opened(&self, request: &Request, answer: &Answer) {
        if !(self.create_only && request.is_gcs_create_only()) {
            return;
        }
        let location = answer
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("location"))
            .map(|(_, v)| v.as_str());
        let id = location
            .and_then(|l| l.split_once('?'))
            .and_then(|(_, query)| {
                form_urlencoded::parse(query.as_bytes())
                    .find(|(k, _)| k == "upload_id")
                    .map(|(_, v)| v.into_owned())
            });
        if let Some(id) = id {
            self.sessions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id, request.clone());
        }
    }
}

impl FaultProxy {
    /// Listens on 127.0.0.1 (a free port) and forwards to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> Result<FaultProxy, String> {
        FaultProxy::listen(upstream, false).await
    }

    /// In front of fake-gcs-server: forwards to `upstream` and refuses a create-only upload
    /// (`ifGenerationMatch=0`) of an object that exists with Cloud Storage's 412, which
    /// fake-gcs-server up to v1.54 does not (see the module's doc). Create-only writes go
    /// one at a time, from the check to the answer, so of writers racing to create one object
    /// only the first does, as on Cloud Storage; a resumable upload (opendal's) is checked
    /// when it begins and when its data arrives.
    pub async fn start_in_front_of_fake_gcs(upstream: &str) -> Result<FaultProxy, String> {
        FaultProxy::listen(upstream, true).await
    }

    async fn listen(upstream: &str, create_only: bool) -> Result<FaultProxy, String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("fault proxy: cannot listen on 127.0.0.1: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("fault proxy: no local address: {e}"))?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("fault proxy: cannot build its HTTP client: {e}"))?;
        let proxy = FaultProxy {
            url: format!("http://{addr}"),
            shared: Arc::new(Mutex::new(Shared::default())),
        };
        let upstream = Upstream {
            origin: upstream.trim_end_matches('/').to_string(),
            proxy: proxy.url.clone(),
            create_only,
            creating: Arc::new(tokio::sync::Mutex::new(())),
            sessions: Arc::default(),
        };
        let shared = Arc::clone(&proxy.shared);
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (shared, client, upstream) =
                    (Arc::clone(&shared), client.clone(), upstream.clone());
                tokio::spawn(serve(socket, shared, client, upstream));
            }
        });
        Ok(proxy)
    }

    /// The proxy's endpoint, for the SDK and the store URIs.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn shared(&self) -> MutexGuard<'_, Shared> {
        // A panic while holding the lock leaves a log still worth reading.
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a rule; rules are tried in the order they were added.
    pub fn add(&self, rule: Rule) {
        self.shared().rules.push(rule);
    }

    /// Removes every rule: the faults clear.
    pub fn clear(&self) {
        self.shared().rules.clear();
    }

    /// How many requests the rules have left to fault.
    pub fn faults_left(&self) -> usize {
        self.shared().rules.iter().map(|r| r.remaining).sum()
    }

    /// Every request so far, in the order they arrived.
    pub fn log(&self) -> Vec<Exchange> {
        self.shared().log.clone()
    }

    /// The fault for `request`, using up one of its rule's occurrences.
    fn pick(shared: &Mutex<Shared>, request: &Request) -> Option<Fault> {
        let mut shared = shared.lock().unwrap_or_else(|e| e.into_inner());
        let rule = shared
            .rules
            .iter_mut()
            .find(|r| r.remaining > 0 && (r.matches)(request))?;
        if rule.skip > 0 {
            rule.skip -= 1;
            return None;
        }
        rule.remaining -= 1;
        Some(rule.fault)
    }
}

fn record(shared: &Mutex<Shared>, exchange: Exchange) {
    shared
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .log
        .push(exchange);
}

/// One request read off the connection.
struct Incoming {
    request: Request,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn find(buf: &[u8], needle: &[u8]) -> Option<usize> {
    buf.windows(needle.len()).position(|w| w == needle)
}

/// Reads until `buf` holds at least `len` bytes; false when the connection closed first.
async fn fill(socket: &mut TcpStream, buf: &mut Vec<u8>, len: usize) -> bool {
    let mut chunk = [0u8; 16 * 1024];
    while buf.len() < len {
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    true
}

/// Reads one request (keep-alive: what follows it stays in `buf`); `None` when the client
/// closed the connection or sent something that is not HTTP/1.1.
async fn read_one(socket: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Incoming> {
    let mut chunk = [0u8; 16 * 1024];
    let end = loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            break end;
        }
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    buf.drain(..end + 4);
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split_whitespace();
    let (method, target) = (first.next()?.to_string(), first.next()?.to_string());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    let body = if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = find(buf, b"\r\n") {
                    break i;
                }
                if !fill(socket, buf, buf.len() + 1).await {
                    return None;
                }
            };
            let size_text = String::from_utf8_lossy(&buf[..line_end]).to_string();
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            buf.drain(..line_end + 2);
            if !fill(socket, buf, size + 2).await {
                return None;
            }
            body.extend_from_slice(&buf[..size]);
            buf.drain(..size + 2);
            if size == 0 {
                break body;
            }
        }
    } else {
        let length: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if !fill(socket, buf, length).await {
            return None;
        }
        buf.drain(..length).collect()
    };
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target.clone(), String::new()),
    };
    let form_action = |text: &str| {
        text.split('&')
            .find_map(|p| p.strip_prefix("Action="))
            .map(str::to_string)
    };
    let operation = header("x-amz-target")
        .map(|t| t.rsplit('.').next().unwrap_or(t).to_string())
        .or_else(|| form_action(&query))
        .or_else(|| {
            header("content-type")
                .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
                .then(|| form_action(&String::from_utf8_lossy(&body)))
                .flatten()
        })
        .unwrap_or_default();
    Some(Incoming {
        request: Request {
            method,
            path,
            query,
            operation,
        },
        headers,
        body,
    })
}

/// The service's answer, read whole.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

async fn forward(
    client: &reqwest::Client,
    upstream: &Upstream,
    incoming: &Incoming,
) -> Result<Answer, String> {
    let method = reqwest::Method::from_bytes(incoming.request.method.as_bytes())
        .map_err(|e| format!("method {}: {e}", incoming.request.method))?;
    let mut url = format!("{}{}", upstream.origin, incoming.request.path);
    if !incoming.request.query.is_empty() {
        url = format!("{url}?{}", incoming.request.query);
    }
    let mut builder = client.request(method, url);
    for (name, value) in &incoming.headers {
        // The hop's own framing; reqwest sets them for the body it sends.
        if !matches!(
            name.as_str(),
            "host" | "content-length" | "transfer-encoding" | "connection"
        ) {
            builder = builder.header(name, value);
        }
    }
    let response = builder
        .body(incoming.body.clone())
        .send()
        .await
        .map_err(|e| format!("forwarding to {}: {e}", upstream.origin))?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            let value = String::from_utf8_lossy(v.as_bytes()).to_string();
            // The next request of a resumable upload goes where `Location` says: here.
            let value = match value.strip_prefix(&upstream.origin) {
                Some(rest) if k == reqwest::header::LOCATION => format!("{}{rest}", upstream.proxy),
                _ => value,
            };
            (k.as_str().to_string(), value)
        })
        .collect();
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("reading the answer of {}: {e}", upstream.origin))?
        .to_vec();
    Ok(Answer {
        status,
        headers,
        body,
    })
}

fn reason(status: u16) -> &'static str {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Unknown")
}

/// The bytes of an answer; `declared` overrides the body's length in `Content-Length`.
/// A HEAD answer keeps the service's `Content-Length` and carries no body.
fn wire(answer: &Answer, head_only: bool, declared: Option<usize>) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {} {}\r\n", answer.status, reason(answer.status));
    for (name, value) in &answer.headers {
        let framing = matches!(
            name.as_str(),
            "content-length" | "transfer-encoding" | "connection"
        );
        if !framing || (head_only && name == "content-length") {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    if !head_only {
        let length = declared.unwrap_or(answer.body.len());
        out.push_str(&format!("content-length: {length}\r\n"));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if !head_only {
        bytes.extend_from_slice(&answer.body);
    }
    bytes
}

fn canned(status: u16, extra: &[(&str, &str)], body: &str) -> Answer {
    let mut headers: Vec<(String, String)> = extra
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if !extra.iter().any(|(k, _)| *k == "content-type") {
        headers.push(("content-type".into(), "application/xml".into()));
    }
    Answer {
        status,
        headers,
        body: body.as_bytes().to_vec(),
    }
}

const SLOW_DOWN: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>fault-proxy</RequestId></Error>";

/// Cloud Storage's answer to a precondition that does not hold.
const CONDITION_NOT_MET: &str = r#"{"error":{"code":412,"message":"At least one of the pre-conditions you specified did not hold.","errors":[{"message":"At least one of the pre-conditions you specified did not hold.","domain":"global","reason":"conditionNotMet","locationType":"header","location":"If-Match"}]}}"#;

/// Whether a create-only upload must be refused because its object exists (asked of the
/// service behind); `false` when it cannot tell, so the upload goes on.
async fn object_exists(client: &reqwest::Client, upstream: &Upstream, request: &Request) -> bool {
    let (Some(bucket), Some(object)) = (request.gcs_bucket(), request.gcs_object()) else {
        return false;
    };
    let encoded =
        percent_encoding::utf8_percent_encode(&object, percent_encoding::NON_ALPHANUMERIC);
    let url = format!("{}/storage/v1/b/{bucket}/o/{encoded}", upstream.origin);
    client
        .get(url)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

async fn serve(
    mut socket: TcpStream,
    shared: Arc<Mutex<Shared>>,
    client: reqwest::Client,
    upstream: Upstream,
) {
    let mut buf = Vec::new();
    while let Some(incoming) = read_one(&mut socket, &mut buf).await {
        let fault = FaultProxy::pick(&shared, &incoming.request);
        let head_only = incoming.request.method == "HEAD";
        let mut exchange = Exchange {
            request: incoming.request.clone(),
            fault,
            upstream_status: None,
            answered: None,
        };
        // A create-only write, checked and made under one lock, so of writers racing to
        // create one object only the first does; a resumable upload is checked when it
        // begins and again when its data arrives, where Cloud Storage decides.
        let creates = upstream
            .create_only(&incoming.request)
            .filter(|_| matches!(fault, None | Some(Fault::TruncatedAnswer)));
        let _creating = match &creates {
            Some(_) => Some(upstream.creating.lock().await),
            None => None,
        };
        let exists = match &creates {
            Some(created) => object_exists(&client, &upstream, created).await,
            None => false,
        };
        let answer = match fault {
            Some(Fault::Close) => None,
            Some(Fault::Reset) => {
                // SO_LINGER 0: closing sends RST instead of FIN.
                let _ = socket.set_zero_linger();
                None
            }
            Some(Fault::Hang(how_long)) => {
                tokio::time::sleep(how_long).await;
                None
            }
            Some(Fault::InternalError) => Some(canned(500, &[], "")),
            Some(Fault::Unavailable) => Some(canned(503, &[], "")),
            Some(Fault::TooManyRequests) => Some(canned(429, &[("retry-after", "1")], "")),
            Some(Fault::SlowDown) => Some(canned(503, &[], SLOW_DOWN)),
            Some(Fault::TruncatedAnswer) | None if exists => {
                exchange.upstream_status = Some(412);
                Some(canned(
                    412,
                    &[("content-type", "application/json; charset=UTF-8")],
                    CONDITION_NOT_MET,
                ))
            }
            Some(Fault::TruncatedAnswer) | None => {
                match forward(&client, &upstream, &incoming).await {
                    Ok(answer) => {
                        exchange.upstream_status = Some(answer.status);
                        upstream.opened(&incoming.request, &answer);
                        Some(answer)
                    }
                    // The service unreachable: the client sees a closed connection, as it would.
                    Err(_) => None,
                }
            }
        };
        let Some(answer) = answer else {
            record(&shared, exchange);
            return;
        };
        if fault == Some(Fault::TruncatedAnswer) {
            let bytes = if answer.body.is_empty() || head_only {
                // Nothing to cut in the body (a PUT's answer): cut the head, so the client
                // never learns the status of a change the service made.
                let head = wire(&answer, head_only, None);
                head[..head.len() / 2].to_vec()
            } else {
                // Declares more than is sent, then closes: the body is cut short.
                let sent = answer.body.len() / 2;
                wire(
                    &Answer {
                        body: answer.body[..sent].to_vec(),
                        status: answer.status,
                        headers: answer.headers.clone(),
                    },
                    false,
                    Some(answer.body.len() + 64),
                )
            };
            let _ = socket.write_all(&bytes).await;
            record(&shared, exchange);
            return;
        }
        exchange.answered = Some(answer.status);
        record(&shared, exchange);
        if socket
            .write_all(&wire(&answer, head_only, None))
            .await
            .is_err()
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Request;

    fn request(method: &str, target: &str) -> Request {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        Request {
            method: method.into(),
            path: path.into(),
            query: query.into(),
            operation: String::new(),
        }
    }

    #[test]
    fn s3_calls_are_told_apart_by_key_and_subresource() {
        let put = request("PUT", "/stores/state/markers/e1.json");
        assert_eq!(put.bucket(), "stores");
        assert_eq!(put.key(), "state/markers/e1.json");
        assert!(put.is_object_put_under("markers/"));
        assert!(!put.is_object_put_under("audit/"));
        let block = request("PUT", "/b1?publicAccessBlock");
        assert_eq!(block.s3_subresource(), Some("publicAccessBlock"));
        assert!(!block.is_object_put_under(""));
        let acl = request("PUT", "/b1?acl&x-id=PutBucketAcl");
        assert_eq!(acl.s3_subresource(), Some("acl"));
        let list = request("GET", "/stores?list-type=2&prefix=state%2Fmarkers");
        assert_eq!(list.s3_subresource(), None);
    }

    #[test]
    fn cloud_storage_calls_are_told_apart_by_bucket_part_and_object() {
        let policy = request("PUT", "/storage/v1/b/crm-exports/iam");
        assert_eq!(policy.gcs_bucket(), Some("crm-exports"));
        assert_eq!(policy.gcs_under_bucket(), Some("iam"));
        assert_eq!(policy.gcs_object(), None);
        let bucket = request("PATCH", "/storage/v1/b/crm-exports");
        assert_eq!(bucket.gcs_under_bucket(), Some(""));
        let upload = request(
            "POST",
            "/upload/storage/v1/b/stores/o?uploadType=resumable&name=f1%2Fstate%2Fmarkers%2Fe1.json&ifGenerationMatch=0",
        );
        assert_eq!(upload.gcs_bucket(), Some("stores"));
        assert_eq!(
            upload.gcs_object().as_deref(),
            Some("f1/state/markers/e1.json")
        );
        assert!(upload.is_gcs_object_write_under("f1/state/markers/"));
        assert!(!upload.is_gcs_object_read_under("f1/"));
        assert!(upload.is_gcs_create_only());
        let read = request(
            "GET",
            "/storage/v1/b/stores/o/f1%2Fapprovals%2Fcurrent.json?alt=media",
        );
        assert!(read.is_gcs_object_read_under("f1/approvals/"));
        assert!(!read.is_gcs_object_write_under("f1/"));
        let listing = request("GET", "/storage/v1/b/stores/o?prefix=f1%2Fapprovals%2F");
        assert_eq!(listing.gcs_object(), None, "a listing reads no object");
        assert_eq!(request("GET", "/storage/v1/b").gcs_bucket(), None);
        assert_eq!(request("GET", "/stores/key").gcs_bucket(), None);
        assert_eq!(policy.describe(), "PUT gs://crm-exports iam");
    }

    #[test]
    fn azure_blob_calls_are_told_apart_by_blob_and_method() {
        let marker = request(
            "PUT",
            "/devstoreaccount1/escher-conformance/conformance/f1/state/markers/e1.json",
        );
        assert_eq!(
            marker.azblob_parts(),
            Some((
                "escher-conformance",
                "conformance/f1/state/markers/e1.json".to_string()
            ))
        );
        assert!(marker.is_azblob_write_under("f1/state/markers/"));
        assert!(!marker.is_azblob_write_under("f1/audit/"));
        assert!(!marker.is_azblob_read_under("f1/"));
        let read = request(
            "GET",
            "/devstoreaccount1/escher-conformance/conformance%2Ff1%2Fapprovals%2Fcurrent.json",
        );
        assert!(read.is_azblob_read_under("f1/approvals/"));
        let listing = request(
            "GET",
            "/devstoreaccount1/escher-conformance?restype=container&comp=list&prefix=f1",
        );
        assert!(!listing.is_azblob_read_under(""), "a listing reads no blob");
        assert_eq!(request("GET", "/devstoreaccount1").azblob_parts(), None);
    }
}
