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

use escher_test_support::lambda_runtime_api::RuntimeApi;
use escher_test_support::{fixtures, http, moto};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_function_acknowledges_non_alerts_and_fails_events_that_must_be_retried() {
    let Some(endpoint) = moto::endpoint("the Lambda function test") else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let closed = http::closed_port();
    let bucket_event = fixtures::json("aws/cloudtrail-eventbridge-putbucketacl-allusers.json");
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
