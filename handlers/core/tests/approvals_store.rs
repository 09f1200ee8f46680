//! The approvals store on every backend: memory, a local folder, and (under `make test`)
//! moto S3, azurite and fake-gcs-server. What handlers and the CLI rely on: changes are
//! published and logged, concurrent writers lose nothing, readers pick up changes within
//! their refresh interval, revoked approvals never match, old generations are collected,
//! and an unreachable or damaged store yields an error, never a decision.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use escher_core::approvals::{
    Action, Approval, ApprovalStore, ApprovalStoreError, ApprovalsReader, Change, Conditions,
    Decision, NothingUsedYet, Outcome, Publication, Scope, WizardDefaults,
};
use escher_core::UnifiedEvent;
use escher_test_support::emulator::{notice, sub_store};
use escher_test_support::names::unique;
use escher_test_support::{azurite, fake_gcs, moto};

fn public_bucket(account: &str) -> UnifiedEvent {
    serde_json::from_value(serde_json::json!({
        "event_id": "aws-00112233445566778899aabbccddeeff",
        "event_type": "bucket_public", "severity": "HIGH", "cloud_provider": "aws",
        "account_id": account, "region": "eu-west-1",
        "resource": {"type": "s3_bucket", "id": "arn:aws:s3:::marketing-assets",
            "name": "marketing-assets", "tags": {"environment": "dev"}, "metadata": {}},
        "context": {"environment": "dev"}, "timestamp": "2026-11-02T08:00:00Z",
        "source": "aws.cloudtrail", "raw_event": {}, "schema_version": "1"
    }))
    .expect("event")
}

fn bucket_approval(id: &str, account: &str) -> Approval {
    Approval {
        id: id.into(),
        action: Action::MakeBucketPrivate,
        scope: Scope {
            account_ids: vec![account.into()],
            ..Scope::default()
        },
        conditions: Conditions::default(),
        approved_by: "ana".into(),
        approved_at: Utc::now() - chrono::Duration::minutes(1),
        expires_at: None,
        reason: "test".into(),
        revoked_at: None,
        revoked_by: None,
        revoke_reason: None,
    }
}

fn wizard_defaults() -> Vec<Approval> {
    let now = Utc::now() - chrono::Duration::minutes(1);
    WizardDefaults::built_in()
        .choices
        .iter()
        .filter(|c| c.enabled)
        .map(|c| c.to_approval("ana", now))
        .collect()
}

/// A store in a new local folder holding the wizard's defaults: (its folder, the store).
async fn local_store_with_defaults(name: &str) -> (std::path::PathBuf, ApprovalStore) {
    let root = std::env::temp_dir().join(unique(name));
    let store = ApprovalStore::open(&format!("fs://{}", root.display())).expect("open");
    store
        .apply(
            &Change::Init {
                approvals: wizard_defaults(),
            },
            "ana",
        )
        .await
        .expect("init");
    (root, store)
}

async fn decide(reader: &ApprovalsReader, account: &str) -> Result<Decision, ApprovalStoreError> {
    reader
        .decide(
            &public_bucket(account),
            Action::MakeBucketPrivate,
            Utc::now(),
            &NothingUsedYet,
        )
        .await
}

fn chosen(decision: &Decision) -> Option<&str> {
    match decision {
        Decision::Approved { approval_id, .. } => Some(approval_id),
        Decision::NotApproved { .. } => None,
    }
}

/// Init, add, revoke, the change log, and the decisions a reader makes along the way.
async fn lifecycle(store: ApprovalStore) {
    let name = store.location().to_string();
    assert!(
        store.load().await.expect("load").is_none(),
        "{name}: new store is empty"
    );
    let reader = ApprovalsReader::new(store.clone(), Duration::ZERO);
    let empty = decide(&reader, "111111111111")
        .await
        .expect("decide on empty store");
    assert!(
        !empty.is_approved(),
        "{name}: nothing approved in an empty store"
    );
    assert!(empty
        .explanation()
        .to_string()
        .contains("no approval exists"));

    let defaults = wizard_defaults();
    let published = store
        .apply(
            &Change::Init {
                approvals: defaults.clone(),
            },
            "ana",
        )
        .await
        .expect("init");
    assert_eq!(published.manifest.sequence, 1);
    assert_eq!(published.manifest.approvals, defaults.len());
    let again = store
        .apply(
            &Change::Init {
                approvals: defaults,
            },
            "ana",
        )
        .await
        .expect_err("second init");
    assert!(
        matches!(again, ApprovalStoreError::Rejected { .. }),
        "{name}: {again}"
    );
    assert!(!again.is_transient());

    // The wizard's account-wide default approves; a more specific approval then wins.
    let d = decide(&reader, "111111111111").await.expect("decide");
    assert_eq!(chosen(&d), Some("default-make-bucket-private"), "{name}");
    store
        .apply(
            &Change::Add {
                approval: Box::new(bucket_approval("apr-prod", "111111111111")),
            },
            "bo",
        )
        .await
        .expect("add");
    let d = decide(&reader, "111111111111").await.expect("decide");
    assert_eq!(chosen(&d), Some("apr-prod"), "{name}: most specific wins");

    let duplicate = store
        .apply(
            &Change::Add {
                approval: Box::new(bucket_approval("apr-prod", "2")),
            },
            "bo",
        )
        .await
        .expect_err("duplicate id");
    assert!(
        duplicate.to_string().contains("already exists"),
        "{duplicate}"
    );

    for id in ["apr-prod", "default-make-bucket-private"] {
        store
            .apply(
                &Change::Revoke {
                    id: id.into(),
                    reason: "incident 42".into(),
                    at: Utc::now(),
                },
                "cy",
            )
            .await
            .expect("revoke");
    }
    let d = decide(&reader, "111111111111").await.expect("decide");
    assert_eq!(chosen(&d), None, "{name}: revoked approvals never match");
    let revoked = d
        .explanation()
        .candidates
        .iter()
        .filter(|c| matches!(&c.outcome, Outcome::Failed { failed } if failed.to_string().contains("revoked by cy")))
        .count();
    assert_eq!(revoked, 2, "{name}: both revocations are explained");

    let (manifest, index) = store.load().await.expect("load").expect("index");
    assert_eq!(manifest.sequence, 4);
    let kept = index.get("apr-prod").expect("revoked approval is kept");
    assert_eq!(kept.revoke_reason.as_deref(), Some("incident 42"));

    let log = store.changes().await.expect("change log");
    let summary: Vec<(u64, &str, &str)> = log
        .iter()
        .map(|r| {
            let op = match r.change {
                Change::Init { .. } => "init",
                Change::Add { .. } => "add",
                Change::Revoke { .. } => "revoke",
            };
            (r.sequence, r.by.as_str(), op)
        })
        .collect();
    assert_eq!(
        summary,
        [
            (1, "ana", "init"),
            (2, "bo", "add"),
            (3, "cy", "revoke"),
            (4, "cy", "revoke")
        ],
        "{name}: every change is logged with who made it"
    );
}

/// Two writers adding at the same time lose nothing.
async fn concurrent_writers(store: ApprovalStore, per_writer: usize) {
    let name = store.location().to_string();
    let mut tasks = Vec::new();
    for writer in ["w1", "w2"] {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_writer {
                let approval = bucket_approval(&format!("{writer}-{i}"), "111111111111");
                store
                    .apply(
                        &Change::Add {
                            approval: Box::new(approval),
                        },
                        writer,
                    )
                    .await
                    .unwrap_or_else(|e| panic!("{writer} add {i}: {e}"));
            }
        }));
    }
    for task in tasks {
        task.await.expect("writer task");
    }
    let (manifest, index) = store.load().await.expect("load").expect("index");
    assert_eq!(
        index.len(),
        2 * per_writer,
        "{name}: every approval of both writers is present"
    );
    assert_eq!(
        manifest.sequence as usize,
        2 * per_writer,
        "{name}: one generation per change"
    );
    assert_eq!(store.changes().await.expect("log").len(), 2 * per_writer);
}

/// A reader sees a new approval once its refresh interval has passed, and makes no
/// request to storage before that.
async fn reader_refresh(store: ApprovalStore) {
    let name = store.location().to_string();
    store
        .apply(&Change::Init { approvals: vec![] }, "ana")
        .await
        .expect("init");
    let interval = Duration::from_millis(400);
    let reader = ApprovalsReader::new(store.clone(), interval);
    let counts = |reader: &ApprovalsReader| {
        let c = reader.store().request_counts();
        (
            c.heads.load(std::sync::atomic::Ordering::Relaxed),
            c.gets.load(std::sync::atomic::Ordering::Relaxed),
        )
    };
    let before = counts(&reader);
    assert!(!decide(&reader, "111111111111")
        .await
        .expect("decide")
        .is_approved());
    let after = counts(&reader);
    // A cold start's critical path: the manifest's token, the manifest, its generation.
    assert_eq!(
        (after.0 - before.0, after.1 - before.1),
        (1, 2),
        "{name}: a cold load makes one HEAD and two GETs"
    );
    store
        .apply(
            &Change::Add {
                approval: Box::new(bucket_approval("apr-new", "111111111111")),
            },
            "bo",
        )
        .await
        .expect("add");
    let before = reader
        .store()
        .request_counts()
        .gets
        .load(std::sync::atomic::Ordering::Relaxed)
        + reader
            .store()
            .request_counts()
            .heads
            .load(std::sync::atomic::Ordering::Relaxed);
    let cached = decide(&reader, "111111111111").await.expect("decide");
    let after = reader
        .store()
        .request_counts()
        .gets
        .load(std::sync::atomic::Ordering::Relaxed)
        + reader
            .store()
            .request_counts()
            .heads
            .load(std::sync::atomic::Ordering::Relaxed);
    // The reader shares counters with the writer's clone, so compare around the call only.
    if cached.is_approved() {
        panic!("{name}: the reader refreshed before its interval passed");
    }
    assert_eq!(
        before, after,
        "{name}: no request within the refresh interval"
    );
    tokio::time::sleep(interval + Duration::from_millis(50)).await;
    let fresh = decide(&reader, "111111111111").await.expect("decide");
    assert_eq!(
        chosen(&fresh),
        Some("apr-new"),
        "{name}: picked up after the interval"
    );
}

/// Superseded generations go once the grace period has passed, and not before.
async fn garbage_collection(store: ApprovalStore, with_grace: ApprovalStore) {
    let name = store.location().to_string();
    with_grace
        .apply(&Change::Init { approvals: vec![] }, "ana")
        .await
        .expect("init");
    for i in 0..3 {
        let p = with_grace
            .apply(
                &Change::Add {
                    approval: Box::new(bucket_approval(&format!("g{i}"), "1")),
                },
                "ana",
            )
            .await
            .expect("add");
        assert!(
            p.collected.is_empty(),
            "{name}: nothing collected within the grace period"
        );
    }
    let p = store
        .apply(
            &Change::Add {
                approval: Box::new(bucket_approval("g-last", "1")),
            },
            "ana",
        )
        .await
        .expect("add");
    assert_eq!(
        p.collected.len(),
        4,
        "{name}: the four superseded generations are collected: {:?}",
        p.collected
    );
    let (_, index) = store.load().await.expect("load").expect("index");
    assert_eq!(index.len(), 4, "{name}: the current generation is intact");
}

async fn all_behaviours(uri_for: impl Fn(&str) -> String, concurrency: bool) {
    lifecycle(ApprovalStore::open(&uri_for("lifecycle")).expect("open")).await;
    reader_refresh(ApprovalStore::open(&uri_for("refresh")).expect("open")).await;
    let gc = uri_for("gc");
    garbage_collection(
        ApprovalStore::open(&gc)
            .expect("open")
            .with_gc_grace(Duration::ZERO),
        ApprovalStore::open(&gc).expect("open"),
    )
    .await;
    if concurrency {
        concurrent_writers(
            ApprovalStore::open(&uri_for("concurrent")).expect("open"),
            15,
        )
        .await;
    }
}

fn memory_store() -> ApprovalStore {
    let op = escher_core::store::open("memory://").expect("memory");
    ApprovalStore::with_operator(op, "memory://".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory() {
    let store = memory_store();
    assert_eq!(store.publication(), Publication::Lock);
    lifecycle(memory_store()).await;
    reader_refresh(memory_store()).await;
    let shared = memory_store();
    garbage_collection(shared.clone().with_gc_grace(Duration::ZERO), shared).await;
    concurrent_writers(memory_store(), 15).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_folder() {
    let root = std::env::temp_dir().join(unique("escher-approvals"));
    all_behaviours(|name| format!("fs://{}/{name}", root.display()), true).await;
    std::fs::remove_dir_all(&root).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3() {
    let Some(base) = moto::s3_store("the approvals store on S3") else {
        return;
    };
    let run = sub_store(&base, &unique("approvals"));
    assert_eq!(
        ApprovalStore::open(&run).expect("open").publication(),
        Publication::IfMatch
    );
    all_behaviours(|name| sub_store(&run, name), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azblob() {
    let Some(base) = azurite::blob_store("the approvals store on Azure Blob") else {
        return;
    };
    let run = sub_store(&base, &unique("approvals"));
    all_behaviours(|name| sub_store(&run, name), true).await;
}

/// fake-gcs-server does not enforce `ifGenerationMatch`, so concurrent writers cannot be
/// proven against it; everything else runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcs() {
    let Some(base) = fake_gcs::gcs_store("the approvals store on GCS") else {
        return;
    };
    let run = sub_store(&base, &unique("approvals"));
    assert_eq!(
        ApprovalStore::open(&run).expect("open").publication(),
        Publication::IfVersionMatch
    );
    notice(&format!(
        "{run}: concurrent writers not checked (the emulator does not enforce ifGenerationMatch)"
    ));
    all_behaviours(|name| sub_store(&run, name), false).await;
}

/// Nothing listens on port 9: the decision must be an error the handler retries.
#[tokio::test]
async fn an_unreachable_store_gives_an_error_not_a_decision() {
    let store =
        ApprovalStore::open("s3://escher/approvals?region=us-east-1&endpoint=http://127.0.0.1:9")
            .expect("open");
    let reader = ApprovalsReader::new(store, Duration::from_secs(60));
    let error = decide(&reader, "111111111111")
        .await
        .expect_err("no decision without storage");
    assert!(error.is_transient(), "{error}");
    assert!(error.to_string().contains("unavailable"), "{error}");
}

/// Storage that worked, then fails at the next refresh: an error, not the cached approvals
/// (one of them may have been revoked meanwhile).
#[tokio::test]
async fn a_store_failing_after_a_refresh_interval_gives_an_error() {
    let (root, store) = local_store_with_defaults("escher-outage").await;
    let reader = ApprovalsReader::new(store, Duration::from_millis(50));
    assert!(decide(&reader, "1").await.expect("decide").is_approved());
    // The folder turns into a file: every read now fails with an I/O error.
    std::fs::remove_dir_all(&root).expect("remove");
    std::fs::write(&root, b"not a folder").expect("file");
    tokio::time::sleep(Duration::from_millis(80)).await;
    let error = decide(&reader, "1")
        .await
        .expect_err("no decision without storage");
    assert!(error.is_transient(), "{error}");
    std::fs::remove_file(&root).ok();
}

/// A generation altered after publication is refused (its SHA-256 no longer matches).
#[tokio::test]
async fn an_altered_generation_is_refused() {
    let root = std::env::temp_dir().join(unique("escher-altered"));
    let store = ApprovalStore::open(&format!("fs://{}", root.display())).expect("open");
    let published = store
        .apply(
            &Change::Init {
                approvals: wizard_defaults(),
            },
            "ana",
        )
        .await
        .expect("init");
    let path = root.join(&published.manifest.generation);
    let mut bytes = std::fs::read(&path).expect("generation");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).expect("alter");
    let reader = ApprovalsReader::new(store, Duration::from_secs(60));
    let error = decide(&reader, "1").await.expect_err("altered index");
    assert!(
        matches!(error, ApprovalStoreError::Damaged { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("SHA-256"), "{error}");
    std::fs::remove_dir_all(&root).ok();
}

/// A writer that died holding the lock of a local store does not block others for long.
#[tokio::test]
async fn a_stale_lock_is_broken() {
    let root = std::env::temp_dir().join(unique("escher-lock"));
    std::fs::create_dir_all(&root).expect("dir");
    let taken: DateTime<Utc> = Utc::now() - chrono::Duration::minutes(5);
    std::fs::write(
        root.join("manifest.lock"),
        format!("dead writer {}", taken.to_rfc3339()),
    )
    .expect("lock");
    let store = ApprovalStore::open(&format!("fs://{}", root.display())).expect("open");
    store
        .apply(&Change::Init { approvals: vec![] }, "ana")
        .await
        .expect("init despite a stale lock");
    assert!(!root.join("manifest.lock").exists(), "the lock is released");
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn readers_share_nothing_mutable_with_writers() {
    // The reader is handed to many concurrent invocations of a handler.
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ApprovalsReader>();
    assert_send_sync::<Arc<ApprovalStore>>();
}

/// A request arriving while the approvals load (a service warming up at start) waits for
/// that load and uses what it read: one load, the same index for both.
#[tokio::test]
async fn concurrent_first_reads_load_the_approvals_once() {
    let (root, store) = local_store_with_defaults("escher-one-load").await;
    let reader = ApprovalsReader::new(store, Duration::from_secs(60));
    let (first, second) = tokio::join!(reader.index(), reader.index());
    let (first, second) = (first.expect("loaded"), second.expect("loaded"));
    assert!(
        Arc::ptr_eq(&first, &second),
        "the second read waited for the first load instead of loading again"
    );
    std::fs::remove_dir_all(&root).ok();
}
