//! The `escher-scan` binary as Lambda runs it, against the Runtime API stand-in shared with
//! escher-alert's test (`escher_test_support::lambda_runtime_api`), with its stores on moto
//! S3, scanning a small moto estate (a public bucket in a region of its own). The first
//! invocation's deadline is inside the safety margin, so it finishes one (check, region)
//! pair and hands the run on with an asynchronous Lambda `Invoke` of itself; moto cannot run
//! functions (no Docker), so the stand-in answers that call as Lambda does (a contract test
//! of the request: 202, payload queued as the next invocation). The second invocation
//! finishes the run and returns the report's summary.
//!
//! Needs moto (`ESCHER_TEST_AWS_ENDPOINT`, see `tests/emulators.sh`); without it the test
//! prints a notice and returns, unless `ESCHER_REQUIRE_EMULATORS=1`.

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use escher_scan::ReportStore;
use escher_test_support::lambda_runtime_api::{Invocation, RuntimeApi};
use escher_test_support::moto::{self, s3, Moto};
use serde_json::{json, Value};

const REGION: &str = "ca-central-1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_too_long_for_one_invocation_hands_on_and_the_next_stores_the_report() {
    let Some(moto) = Moto::connect("us-east-1", "the escher-scan function test").await else {
        return;
    };
    let stores = moto.private_bucket("escher-scan-fn").await;
    let public = s3::public_bucket(&moto.s3, "escher-scan-fn-public", REGION)
        .await
        .expect("public bucket");
    let uri = |prefix: &str| moto.store_uri(&stores, prefix);

    let schedule = json!({
        "version": "0", "id": "5e1f7a3c-0000-0000-0000-000000000000",
        "detail-type": "Scheduled Event", "source": "aws.scheduler",
        "account": "123456789012", "time": Utc::now().to_rfc3339(),
        "region": "us-east-1", "resources": [], "detail": {}
    });
    // Inside the shipped 120 s margin from the start.
    let api = RuntimeApi::start_with(
        vec![Invocation {
            event: schedule,
            deadline_in: Duration::from_secs(60),
        }],
        "escher-scan",
    )
    .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = api
        .function(Path::new(env!("CARGO_BIN_EXE_escher-scan")))
        .env("AWS_LAMBDA_FUNCTION_NAME", "escher-scan")
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        // The Invoke call goes to the stand-in (the SDK's per-service endpoint variable).
        .env("AWS_ENDPOINT_URL_LAMBDA", format!("http://{}", api.addr))
        .env("AWS_REGION", "us-east-1")
        .env("ESCHER_SCAN_REGIONS", REGION)
        .env("ESCHER_STATE_URI", uri("state"))
        .env("ESCHER_AUDIT_URI", uri("audit"))
        .env(
            "ESCHER_APPROVALS_URI",
            format!("fs://{}/approvals", dir.path().display()),
        )
        .spawn()
        .expect("start escher-scan");

    // The first answer, the Invoke call, the second answer.
    let posted = api.wait_for_answers(3, Duration::from_secs(120)).await;
    let _ = child.kill().await;
    assert_eq!(posted.len(), 3, "{posted:?}");
    let first = posted
        .iter()
        .find(|a| a.path == "/2018-06-01/runtime/invocation/req-1/response")
        .expect("the first invocation answered");
    let run = &first.body["handed_on"];
    assert_eq!(run["invocation"], 2, "{}", first.body);
    // Named after the scheduled event, so Lambda's retry of the first try would continue it.
    assert_eq!(
        run["run"], "event-5e1f7a3c-0000-0000-0000-000000000000",
        "{}",
        first.body
    );
    let invoke = posted
        .iter()
        .find(|a| a.path.starts_with("/2015-03-31/functions/"))
        .expect("the function invoked itself");
    assert!(
        invoke.path.ends_with("/invocations") && invoke.path.contains("escher-scan"),
        "{}",
        invoke.path
    );
    assert!(
        invoke
            .head
            .to_ascii_lowercase()
            .contains("x-amz-invocation-type: event"),
        "asynchronous: {}",
        invoke.head
    );
    assert_eq!(invoke.body, json!({ "escher_scan_run": run }));
    let second = posted
        .iter()
        .find(|a| a.path == "/2018-06-01/runtime/invocation/req-2/response")
        .expect("the handed-on invocation answered");
    let body: &Value = &second.body;
    // moto's default account has no Cost Explorer data, so the cost summary is the one
    // reported failure (see moto_scan's cost tests); every regional check ran.
    assert_eq!(body["failures"], 1, "{body}");
    assert!(body["summary"]["findings"].as_u64() >= Some(1), "{body}");

    let store = ReportStore::new(
        escher_core::store::open(&uri("state")).expect("state store"),
        uri("state"),
    );
    let report = store
        .latest()
        .await
        .expect("read")
        .expect("the report is stored");
    assert_eq!(body["report"]["json"], report_path(&store).await);
    assert_eq!(report.regions, [REGION]);
    let failed: Vec<(&str, &str)> = report
        .failures
        .iter()
        .map(|f| (f.region.as_str(), f.check.as_str()))
        .collect();
    assert_eq!(failed, [("global", "cost")], "{:?}", report.failures);
    let key = format!("public_bucket:arn:aws:s3:::{public}");
    assert_eq!(
        report.findings.iter().filter(|f| f.key == key).count(),
        1,
        "the public bucket, once: {:?}",
        report.findings.iter().map(|f| &f.key).collect::<Vec<_>>()
    );
    // Every pair of the run has exactly one kept result.
    let date = run["date"].as_str().expect("date");
    let name = run["run"].as_str().expect("run");
    let parts = store
        .operator()
        .list(&format!("scans/{date}/{name}/parts/"))
        .await
        .expect("parts")
        .into_iter()
        .filter(|e| e.path().ends_with(".json"))
        .count();
    assert_eq!(
        parts,
        escher_aws::AwsScan::new(escher_aws::AwsClients::new(&moto.config), moto::ACCOUNT)
            .checks()
            .len()
    );
}

async fn report_path(store: &ReportStore) -> String {
    store
        .latest_files()
        .await
        .expect("read")
        .expect("pointer")
        .json
}
