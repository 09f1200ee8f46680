//! A local stand-in for the Lambda Runtime API (`AWS_LAMBDA_RUNTIME_API`), for the
//! `lambda_function` and `scan_function` tests and the `handler` bench: it hands a function's
//! binary one invocation per `GET …/invocation/next` and records every response or error it
//! posts, with the moment it arrived, so a caller can check the answers or time a cold start.
//!
//! It speaks just enough HTTP/1.1 for `lambda_runtime` ([`crate::http`]). It
//! also answers the Lambda `Invoke` API (`POST /2015-03-31/functions/<fn>/invocations`,
//! pointed at it with `AWS_ENDPOINT_URL_LAMBDA`) as Lambda does for an asynchronous
//! invocation: 202, and the payload queued as a later invocation of the function, so a
//! function that hands work on to itself can be run end to end (moto runs no functions).

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::http::{read_request, ACCEPTED};

/// One POST the function made: `…/invocation/<id>/response` or `…/invocation/<id>/error`
/// (or a Lambda `Invoke` call).
#[derive(Debug, Clone)]
pub struct Answer {
    pub path: String,
    /// The request line and headers, as sent (the escher-scan test reads the Invoke call's).
    pub head: String,
    pub body: Value,
    pub at: Instant,
}

/// One invocation to hand out, with the time the function gets for it.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub event: Value,
    pub deadline_in: Duration,
}

/// The time an invocation queued by an asynchronous `Invoke` gets: Lambda's maximum.
pub const INVOKED_DEADLINE: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Default)]
struct Seen {
    answers: Vec<Answer>,
    /// When the function first asked for an invocation: its initialisation was done.
    first_poll: Option<Instant>,
}

/// A running stand-in; dropped with the runtime that serves it.
pub struct RuntimeApi {
    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub addr: String,
    seen: Arc<Mutex<Seen>>,
}

impl RuntimeApi {
    /// Serves `events` one per `GET …/invocation/next`; later polls are held open (as Lambda
    /// does between invocations).
    pub async fn start(events: Vec<Value>) -> RuntimeApi {
        let invocations = events
            .into_iter()
            .map(|event| Invocation {
                event,
                deadline_in: Duration::from_secs(60),
            })
            .collect();
        RuntimeApi::start_with(invocations, "escher-alert").await
    }

    /// Serves `invocations` of the function `function` (its name in the invoked ARN), then
    /// whatever the function itself invokes asynchronously.
    pub async fn start_with(invocations: Vec<Invocation>, function: &str) -> RuntimeApi {
        let function = function.to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the Runtime API stand-in");
        let addr = listener.local_addr().expect("addr").to_string();
        let queue = Arc::new(Mutex::new(VecDeque::from(invocations)));
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let sink = seen.clone();
        tokio::spawn(async move {
            let mut next_id = 0;
            while let Ok((mut socket, _)) = listener.accept().await {
                let (head, body) = read_request(&mut socket).await;
                let mut parts = head.split_whitespace();
                let (method, path) = (
                    parts.next().unwrap_or_default().to_string(),
                    parts.next().unwrap_or_default().to_string(),
                );
                if method == "GET" && path.ends_with("/invocation/next") {
                    sink.lock()
                        .expect("lock")
                        .first_poll
                        .get_or_insert_with(Instant::now);
                    let Some(Invocation { event, deadline_in }) =
                        queue.lock().expect("lock").pop_front()
                    else {
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_secs(600)).await;
                            drop(socket);
                        });
                        continue;
                    };
                    next_id += 1;
                    let body = event.to_string();
                    let deadline =
                        chrono::Utc::now().timestamp_millis() + deadline_in.as_millis() as i64;
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nlambda-runtime-aws-request-id: req-{next_id}\r\nlambda-runtime-deadline-ms: {deadline}\r\nlambda-runtime-invoked-function-arn: arn:aws:lambda:us-east-1:123456789012:function:{function}\r\nlambda-runtime-trace-id: Root=1-0-0\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                } else {
                    let at = Instant::now();
                    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let asynchronous = head
                        .to_ascii_lowercase()
                        .contains("x-amz-invocation-type: event");
                    if path.starts_with("/2015-03-31/functions/")
                        && path.ends_with("/invocations")
                        && asynchronous
                    {
                        queue.lock().expect("lock").push_back(Invocation {
                            event: body.clone(),
                            deadline_in: INVOKED_DEADLINE,
                        });
                    }
                    sink.lock().expect("lock").answers.push(Answer {
                        path,
                        head: head.clone(),
                        body,
                        at,
                    });
                    let _ = socket.write_all(ACCEPTED).await;
                }
            }
        });
        RuntimeApi { addr, seen }
    }

    /// The answers so far, in arrival order.
    pub fn answers(&self) -> Vec<Answer> {
        self.seen.lock().expect("lock").answers.clone()
    }

    /// When the function first polled for an invocation, if it has.
    pub fn first_poll(&self) -> Option<Instant> {
        self.seen.lock().expect("lock").first_poll
    }

    /// Waits until `count` answers arrived or `timeout` passed; returns what arrived.
    pub async fn wait_for_answers(&self, count: usize, timeout: Duration) -> Vec<Answer> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let answers = self.answers();
            if answers.len() >= count || tokio::time::Instant::now() >= deadline {
                return answers;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// The function `binary` as Lambda starts it against this stand-in: the runtime's
    /// variables set, output discarded, killed when dropped. The caller adds the function's
    /// own environment.
    pub fn function(&self, binary: &Path) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(binary);
        command
            .env("AWS_LAMBDA_RUNTIME_API", &self.addr)
            .env("AWS_LAMBDA_FUNCTION_NAME", "escher-alert")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        command
    }
}
