//! The `escher-alert` binary as Lambda runs it: a local stand-in for the Lambda Runtime API
//! (`AWS_LAMBDA_RUNTIME_API`) hands it invocations and records what it answers. Proves the
//! function acknowledges a payload that is not an alert (so it is not retried forever) and
//! reports an error for an event that must be retried (so Lambda retries it and the DLQ keeps
//! it), touching nothing.
//!
//! Needs moto (`ESCHER_TEST_AWS_ENDPOINT`, see `tests/emulators.sh`); without it the test
//! prints a notice and returns, unless `ESCHER_REQUIRE_EMULATORS=1`.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

// Shared with the `handler` bench, which also times the first poll.
#[allow(dead_code)]
#[path = "support/runtime_api.rs"]
mod runtime_api;

use runtime_api::RuntimeApi;

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
    let api = RuntimeApi::start(vec![json!({"hello": "world"}), bucket_event]).await;

    let mut child = api
        .function(Path::new(env!("CARGO_BIN_EXE_escher-alert")))
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
        .spawn()
        .expect("start escher-alert");

    let posted = api.wait_for_answers(2, Duration::from_secs(60)).await;
    let _ = child.kill().await;
    assert_eq!(posted.len(), 2, "{posted:?}");
    let (path, body) = (&posted[0].path, &posted[0].body);
    assert_eq!(
        path, "/2018-06-01/runtime/invocation/req-1/response",
        "{body}"
    );
    assert_eq!(body["events"][0]["outcome"], "unrecognized", "{body}");
    let (path, body) = (&posted[1].path, &posted[1].body);
    assert_eq!(path, "/2018-06-01/runtime/invocation/req-2/error", "{body}");
    assert!(
        body.to_string().contains("retried"),
        "the error says the event will be retried: {body}"
    );
}
