//! The `escher-alert` binary as Lambda runs it: a local stand-in for the Lambda Runtime API
//! (`AWS_LAMBDA_RUNTIME_API`) hands it invocations and records what it answers. Proves the
//! function acknowledges a payload that is not an alert (so it is not retried forever) and
//! reports an error for an event that must be retried (so Lambda retries it and the DLQ keeps
//! it), touching nothing.
//!
//! Needs moto (`ESCHER_TEST_AWS_ENDPOINT`, see `tests/emulators.sh`); without it the test
//! prints a notice and returns, unless `ESCHER_REQUIRE_EMULATORS=1`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type Posted = Arc<Mutex<Vec<(String, Value)>>>;

/// Serves `events` one per `GET …/invocation/next` (later ones wait forever, like Lambda
/// between invocations) and records every POST.
async fn runtime_api(events: Vec<Value>) -> (String, Posted) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let queue = Arc::new(Mutex::new(VecDeque::from(events)));
    let posted: Posted = Arc::default();
    let sink = posted.clone();
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
                let Some(event) = queue.lock().expect("lock").pop_front() else {
                    // Hold the connection: no more invocations.
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_secs(600)).await;
                        drop(socket);
                    });
                    continue;
                };
                next_id += 1;
                let body = event.to_string();
                let deadline = chrono::Utc::now().timestamp_millis() + 60_000;
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nlambda-runtime-aws-request-id: req-{next_id}\r\nlambda-runtime-deadline-ms: {deadline}\r\nlambda-runtime-invoked-function-arn: arn:aws:lambda:us-east-1:123456789012:function:escher-alert\r\nlambda-runtime-trace-id: Root=1-0-0\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            } else {
                let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                sink.lock().expect("lock").push((path, value));
                let _ = socket
                    .write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
                    .await;
            }
        }
    });
    (addr, posted)
}

async fn read_request(socket: &mut tokio::net::TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = socket.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let length = head
                .to_ascii_lowercase()
                .lines()
                .find_map(|l| {
                    l.strip_prefix("content-length:")
                        .map(str::trim)
                        .map(str::to_string)
                })
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + length {
                let n = socket.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return (head, buf[end + 4..].to_vec());
        }
    }
    (String::from_utf8_lossy(&buf).to_string(), Vec::new())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_function_acknowledges_non_alerts_and_fails_events_that_must_be_retried() {
    let endpoint = match std::env::var("ESCHER_TEST_AWS_ENDPOINT") {
        Ok(endpoint) => endpoint,
        Err(_) if std::env::var_os("ESCHER_REQUIRE_EMULATORS").is_some() => {
            panic!("ESCHER_TEST_AWS_ENDPOINT is not set although the emulators were started")
        }
        Err(_) => {
            eprintln!("NOTICE: ESCHER_TEST_AWS_ENDPOINT not set; the Lambda function test runs under `make test`, which starts moto");
            return;
        }
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let fixture = format!(
        "{}/../../tests/fixtures/aws/cloudtrail-eventbridge-putbucketacl-allusers.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let bucket_event: Value =
        serde_json::from_str(&std::fs::read_to_string(&fixture).expect("fixture")).expect("json");
    let (api, posted) = runtime_api(vec![json!({"hello": "world"}), bucket_event]).await;

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_escher-alert"))
        .env("AWS_LAMBDA_RUNTIME_API", &api)
        .env("AWS_LAMBDA_FUNCTION_NAME", "escher-alert")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_REGION", "us-east-1")
        .env(
            "ESCHER_STATE_URI",
            format!("fs://{}/state", dir.path().display()),
        )
        .env(
            "ESCHER_AUDIT_URI",
            format!("fs://{}/audit", dir.path().display()),
        )
        .env(
            "ESCHER_APPROVALS_URI",
            format!(
                "s3://escher-down/approvals?region=us-east-1&endpoint=http://127.0.0.1:{closed}"
            ),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start escher-alert");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while posted.lock().expect("lock").len() < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill().await;
    let posted = posted.lock().expect("lock").clone();
    assert_eq!(posted.len(), 2, "{posted:?}");
    let (path, body) = &posted[0];
    assert_eq!(
        path, "/2018-06-01/runtime/invocation/req-1/response",
        "{body}"
    );
    assert_eq!(body["events"][0]["outcome"], "unrecognized", "{body}");
    let (path, body) = &posted[1];
    assert_eq!(path, "/2018-06-01/runtime/invocation/req-2/error", "{body}");
    assert!(
        body.to_string().contains("retried"),
        "the error says the event will be retried: {body}"
    );
}
