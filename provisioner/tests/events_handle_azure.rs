//! `escher-provision events handle --cloud azure` on the laptop: the Azure function's own
//! pipeline with this machine's Azure credential (here the managed-identity endpoint of the
//! Resource Manager stand-in), local stores, and the published contract checked on every
//! request.

use std::process::Command;

use escher_test_support::azure_arm::{public_storage_policy_event, ArmDouble};
use serde_json::{json, Value};

const SUBSCRIPTION: &str = "6f1c2d3e-4a5b-4c6d-8e7f-901a2b3c4d5e";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_public_storage_alert_is_fixed_from_the_laptop_and_a_dry_run_changes_nothing() {
    let double = ArmDouble::start().await;
    let account = double.storage_account(SUBSCRIPTION, "payments-prod", "exportsacct", Some(true));
    double.blob_container(&account, "invoices", "Container");
    let dir = tempfile::tempdir().expect("temp dir");
    let approvals = format!("fs://{}", dir.path().join("approvals").display());
    // Approved as an operator does it, from the CLI.
    let approved = Command::new(env!("CARGO_BIN_EXE_escher-provision"))
        .args(["approvals", "--store", &approvals, "add"])
        .args(["--action", "make_bucket_private", "--cloud", "azure"])
        .args([
            "--reason",
            "our storage accounts are never public",
            "--by",
            "ana",
        ])
        .output()
        .expect("approvals add");
    assert!(
        approved.status.success(),
        "{}",
        String::from_utf8_lossy(&approved.stderr)
    );

    let handle = |delivery: &str, extra: &[&str]| {
        let alert = dir.path().join(format!("{delivery}.json"));
        std::fs::write(
            &alert,
            public_storage_policy_event(SUBSCRIPTION, &account, delivery).to_string(),
        )
        .expect("alert file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_escher-provision"));
        command
            .args(["events", "handle", "--cloud", "azure", "--json"])
            .args(["--endpoint-url", double.endpoint()])
            .args(["--escher-dir", &dir.path().display().to_string()])
            .args(["--approvals", &approvals])
            .args(extra)
            .arg(&alert)
            .env_remove("AZURE_TENANT_ID")
            .env_remove("AZURE_CLIENT_SECRET")
            .env("IDENTITY_ENDPOINT", double.identity_endpoint())
            .env("IDENTITY_HEADER", double.identity_header());
        async move {
            let out = tokio::task::spawn_blocking(move || command.output().expect("run"))
                .await
                .expect("join");
            assert!(
                out.status.success(),
                "stdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            serde_json::from_slice::<Value>(&out.stdout).expect("JSON")
        }
    };

    // A dry run says what it would do and changes nothing.
    let dry = handle("laptop-dry-run", &["--dry-run"]).await;
    assert!(dry.to_string().contains("make_bucket_private"), "{dry}");
    assert_eq!(
        double.resource(&account).expect("account")["properties"]["allowBlobPublicAccess"],
        json!(true)
    );

    let handled = handle("laptop-1", &[]).await;
    assert!(handled.to_string().contains("remediated"), "{handled}");
    assert_eq!(
        double.resource(&account).expect("account")["properties"]["allowBlobPublicAccess"],
        json!(false)
    );
    // Audited on this machine, as the function audits in the cloud.
    let audit = walkdir::WalkDir::new(dir.path().join("audit"))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .count();
    assert!(audit > 0, "an audit record under the Escher folder");
    assert!(double.violations().is_empty(), "{:?}", double.violations());
}
