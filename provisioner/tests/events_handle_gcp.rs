//! `events handle --cloud gcp` as an operator runs it on a laptop: the Google Cloud
//! service's pipeline with gcloud's login (a `gcloud` on the PATH that prints a token),
//! every Google API at the contract server (requests held to Google's discovery documents),
//! local stores. An approved public-bucket alert from the audit log is fixed and verified,
//! its notice goes to stderr apart from the story; `--dry-run` changes nothing.

use std::path::Path;
use std::process::Output;

use chrono::Utc;
use escher_core::approvals::{Action, Approval, ApprovalStore, Change, Conditions, Scope};
use escher_core::CloudProvider;
use escher_test_support::gcp_api::GcpApi;
use serde_json::Value;

const FIXTURE: &str = "audit-storage-bucket-create-public-pii.json";
/// The bucket and project the fixture names.
const BUCKET: &str = "crm-exports-eu";
const PROJECT: &str = "crm-data-9";

async fn approve_private_buckets(uri: &str) {
    ApprovalStore::open(uri)
        .expect("approvals store")
        .apply(
            &Change::Init {
                approvals: vec![Approval {
                    id: "apr-gcp-buckets".into(),
                    action: Action::MakeBucketPrivate,
                    scope: Scope {
                        clouds: vec![CloudProvider::Gcp],
                        ..Scope::default()
                    },
                    conditions: Conditions::default(),
                    approved_by: "ana".into(),
                    approved_at: Utc::now() - chrono::Duration::minutes(5),
                    expires_at: None,
                    reason: "our buckets are never public".into(),
                    revoked_at: None,
                    revoked_by: None,
                    revoke_reason: None,
                }],
            },
            "ana",
        )
        .await
        .expect("approved");
}

/// A folder with a `gcloud` that answers `auth print-access-token` as a logged-in gcloud does.
fn gcloud_logged_in(dir: &Path) -> String {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    let gcloud = bin.join("gcloud");
    std::fs::write(
        &gcloud,
        format!(
            "#!/bin/sh\ncase \"$1 $2\" in\n  \"auth print-access-token\") echo {} ;;\n  *) exit 1 ;;\nesac\n",
            GcpApi::TEST_TOKEN
        ),
    )
    .expect("gcloud");
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&gcloud, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    format!("{}:/usr/bin:/bin", bin.display())
}

async fn handle(api: &GcpApi, dir: &Path, extra: &[&str]) -> Output {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/gcp")
        .join(FIXTURE);
    let uri = |name: &str| format!("fs://{}", dir.join(name).display());
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_escher-provision"));
    command
        .current_dir(dir)
        .args(["events", "handle", "--cloud", "gcp", "--json"])
        .args(["--endpoint-url", api.endpoint(), "--project", PROJECT])
        .args(["--state", &uri("state"), "--audit", &uri("audit")])
        .args(["--approvals", &uri("approvals")])
        .args(extra)
        .arg(&fixture)
        .env_remove("GOOGLE_APPLICATION_CREDENTIALS")
        .env("CLOUDSDK_CONFIG", dir.join("gcloud-config"))
        .env("PATH", gcloud_logged_in(dir));
    tokio::task::spawn_blocking(move || command.output().expect("run escher-provision"))
        .await
        .expect("join")
}

fn story(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn still_public(api: &GcpApi) -> bool {
    let (_, policy) = api.bucket_state(BUCKET).expect("the bucket");
    policy.to_string().contains("allUsers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_public_bucket_is_made_private_from_the_laptop_and_a_dry_run_changes_nothing() {
    let api = GcpApi::start().await;
    api.bucket(BUCKET, true);
    let dir = tempfile::tempdir().expect("temp dir");
    approve_private_buckets(&format!("fs://{}", dir.path().join("approvals").display())).await;

    let dry = story(&handle(&api, dir.path(), &["--dry-run"]).await);
    assert_eq!(dry["results"][0]["outcome"], "would_remediate", "{dry}");
    assert!(still_public(&api), "a dry run changes nothing");

    let out = handle(&api, dir.path(), &[]).await;
    let done = story(&out);
    let event = &done["results"][0];
    assert_eq!(event["outcome"], "remediated", "{done}");
    assert_eq!(
        event
            .pointer("/record/remediation/verification/passed")
            .and_then(Value::as_bool),
        Some(true),
        "{done}"
    );
    assert!(
        !still_public(&api),
        "allUsers is out of the bucket's policy"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("escher_notice") && l.contains(BUCKET)),
        "the notice is written apart from the story: {stderr}"
    );
    assert!(api.violations().is_empty(), "{:?}", api.violations());
}
