//! A fault proxy on 127.0.0.1: every HTTP request the handler's SDK clients and stores send
//! passes through it on its way to moto, is logged with what it was answered, and the
//! requests a [`Rule`] picks get a fault instead of (or on top of) moto's answer.
//!
//! Hand-written because the fault crates on crates.io inject at random rates (noxy,
//! tower-fault) or run as separate programs (fault-cli, lowdown): a test needs "the first N
//! requests that match", and a truncated answer to a request moto did apply, which neither
//! offers. HTTP/1.1 only, as the SDK and opendal speak it to an `http://` endpoint.

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
    /// moto (a server that stopped answering: longer than the client's timeout).
    Hang(Duration),
    /// 500 Internal Server Error, not forwarded.
    InternalError,
    /// 503 Service Unavailable, not forwarded.
    Unavailable,
    /// 429 Too Many Requests with `Retry-After: 1`, not forwarded.
    TooManyRequests,
    /// S3's `SlowDown`: 503 with S3's XML error body, not forwarded.
    SlowDown,
    /// Forwarded, so moto applies it; its answer is cut short and the connection closed: a
    /// body is sent in part under a `Content-Length` larger than what follows, an answer
    /// without a body (a PUT's) loses half its head. The answer to an applied change is lost.
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
    /// The path, percent-encoded as sent (S3 path style: `/bucket/key`).
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

    /// A one-line description for the log.
    pub fn describe(&self) -> String {
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
    /// moto's status, when the request reached it.
    pub upstream_status: Option<u16>,
    /// The status the client received in full; `None` when it got no complete answer
    /// (closed, reset, hung, truncated).
    pub answered: Option<u16>,
}

impl Exchange {
    /// Whether moto applied the request (answered it 2xx), whatever the client then saw.
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

impl FaultProxy {
    /// Listens on 127.0.0.1 (a free port) and forwards to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> Result<FaultProxy, String> {
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
        let upstream = upstream.trim_end_matches('/').to_string();
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

/// moto's answer, read whole.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

async fn forward(
    client: &reqwest::Client,
    upstream: &str,
    incoming: &Incoming,
) -> Result<Answer, String> {
    let method = reqwest::Method::from_bytes(incoming.request.method.as_bytes())
        .map_err(|e| format!("method {}: {e}", incoming.request.method))?;
    let mut url = format!("{upstream}{}", incoming.request.path);
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
        .map_err(|e| format!("forwarding to moto: {e}"))?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).to_string(),
            )
        })
        .collect();
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("reading moto's answer: {e}"))?
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
/// A HEAD answer keeps moto's `Content-Length` and carries no body.
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
    headers.push(("content-type".into(), "application/xml".into()));
    Answer {
        status,
        headers,
        body: body.as_bytes().to_vec(),
    }
}

const SLOW_DOWN: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>fault-proxy</RequestId></Error>";

async fn serve(
    mut socket: TcpStream,
    shared: Arc<Mutex<Shared>>,
    client: reqwest::Client,
    upstream: String,
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
            Some(Fault::TruncatedAnswer) | None => {
                match forward(&client, &upstream, &incoming).await {
                    Ok(answer) => {
                        exchange.upstream_status = Some(answer.status);
                        Some(answer)
                    }
                    // moto unreachable: the client sees a closed connection, as it would.
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
                // never learns the status of a change moto made.
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
}
