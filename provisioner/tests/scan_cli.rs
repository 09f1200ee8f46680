//! `escher-provision scan run` and `report show` as a user runs them, against moto.
//!
//! Scans a region of its own (sa-east-1) with a public bucket in it; stores in a temporary
//! folder. `tests/emulators.sh start` writes `ESCHER_TEST_AWS_ENDPOINT`; without it the test
//! prints a notice and returns, unless `ESCHER_REQUIRE_EMULATORS=1`, when it fails.

use std::process::{Command, Output};

use escher_test_support::moto::Moto;

const REGION: &str = "sa-east-1";

fn cli(endpoint: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_escher-provision"))
        .args(args)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", REGION)
        .env_remove("ESCHER_STATE_URI")
        .env_remove("ESCHER_AUDIT_URI")
        .env_remove("ESCHER_APPROVALS_URI")
        .output()
        .expect("run escher-provision")
}

#[tokio::test]
async fn scan_run_stores_the_report_and_report_show_prints_it() {
    let Some(moto) = Moto::connect(REGION, "the scan CLI test").await else {
        return;
    };
    let endpoint = moto.endpoint.clone();
    let bucket = moto.public_bucket("escher-cli-scan").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let uri = |name: &str| format!("fs://{}", dir.path().join(name).display());
    let (state, audit, approvals) = (uri("state"), uri("audit"), uri("approvals"));
    let stores = [
        "--state",
        &state,
        "--audit",
        &audit,
        "--approvals",
        &approvals,
    ];

    let mut args = vec!["scan", "run", "--region", REGION, "--json"];
    args.extend(stores);
    let scanned = cli(&endpoint, &args);
    // moto has no Cost Explorer data for its default account (none is queued there), so the
    // cost summary is a reported failure: exit 1, and the report is printed and stored all
    // the same.
    let stderr = String::from_utf8_lossy(&scanned.stderr);
    assert_eq!(scanned.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("warning: cost in global not scanned: GetCostAndUsage"),
        "{stderr}"
    );
    let report: serde_json::Value = serde_json::from_slice(&scanned.stdout).expect("JSON report");
    let failures: Vec<(&str, &str)> = report["failures"]
        .as_array()
        .expect("failures")
        .iter()
        .map(|f| {
            (
                f["region"].as_str().unwrap_or_default(),
                f["check"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        failures,
        [("global", "cost")],
        "only the cost summary failed"
    );
    let finding = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["event"]["resource"]["name"] == bucket.as_str())
        .expect("the public bucket is reported");
    assert_eq!(finding["event"]["severity"], "HIGH");
    assert_eq!(finding["event"]["source"], "escher.scan");

    let shown = cli(&endpoint, &["report", "show", "--state", &state]);
    assert_eq!(shown.status.code(), Some(0));
    let markdown = String::from_utf8(shown.stdout).expect("utf8");
    assert!(
        markdown.starts_with("# Escher morning report"),
        "{markdown}"
    );
    assert!(
        markdown.contains(&format!("S3 bucket {bucket} is public")),
        "{markdown}"
    );

    let json = cli(
        &endpoint,
        &["report", "show", "--format", "json", "--state", &state],
    );
    let stored: serde_json::Value = serde_json::from_slice(&json.stdout).expect("stored JSON");
    assert_eq!(stored, report, "the stored report is the one printed");
    let html = cli(
        &endpoint,
        &["report", "show", "--format", "html", "--state", &state],
    );
    assert!(String::from_utf8_lossy(&html.stdout).starts_with("<!DOCTYPE html>"));

    let missing = cli(
        &endpoint,
        &["report", "show", "--date", "2001-01-01", "--state", &state],
    );
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("no morning report for 2001-01-01"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
}
