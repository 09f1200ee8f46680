//! One conformance suite for every store backend: what the approvals index, the audit trail
//! and the idempotency markers rely on must behave the same on the laptop (`fs://`), in tests
//! (`memory://`) and on each cloud's object storage (run against the emulators that
//! `make test` starts; their URIs arrive in `ESCHER_TEST_S3_URI`, `ESCHER_TEST_AZBLOB_URI`,
//! `ESCHER_TEST_GCS_URI`).
//!
//! The GCS emulator (fake-gcs-server) does not enforce `ifGenerationMatch`, so conditional
//! writes cannot be proven against it here: `make test` sets `ESCHER_TEST_GCS_CONDITIONS=skip`
//! and the suite says so in its output instead of passing silently.

use escher_test_support::emulator::{store_endpoint, store_through};
use escher_test_support::fault_proxy::FaultProxy;
use escher_test_support::{azurite, fake_gcs, moto};
use opendal::{ErrorKind, Operator};

/// Whether the backend under test enforces conditional writes (real clouds do; one
/// emulator does not).
#[derive(Clone, Copy, PartialEq)]
enum Conditions {
    Enforced,
    NotEnforcedByEmulator,
}

/// Each check names the backend, so a failure says which store broke the contract.
async fn conformance(uri: &str, conditions: Conditions) {
    let op = escher_core::store::open(uri).unwrap_or_else(|e| panic!("{uri}: {e}"));
    // A fresh prefix per run, so leftovers of an earlier run cannot make a check pass.
    let run = format!(
        "conformance-{}-{}/",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    );
    round_trip_and_listing(&op, uri, &run).await;
    if conditions == Conditions::Enforced {
        create_only_once(&op, uri, &run).await;
        racing_creates_leave_one_winner(&op, uri, &run).await;
        replace_only_the_version_read(&op, uri, &run).await;
    } else {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "NOTICE: {uri}: conditional writes not checked (the emulator does not enforce them)"
        );
    }
    missing_objects_are_not_found(&op, uri, &run).await;
    delete_everything_written(&op, uri, &run).await;
}

/// One object at a time: the GCS emulator has no batch delete, and single deletes are what
/// garbage collection of old index generations uses.
async fn delete_everything_written(op: &Operator, uri: &str, run: &str) {
    let written = op
        .list_with(run)
        .recursive(true)
        .await
        .unwrap_or_else(|e| panic!("{uri}: list for clean-up: {e}"));
    for entry in written.iter().filter(|e| !e.path().ends_with('/')) {
        op.delete(entry.path())
            .await
            .unwrap_or_else(|e| panic!("{uri}: delete {}: {e}", entry.path()));
    }
    let left = op
        .list_with(run)
        .recursive(true)
        .await
        .unwrap_or_else(|e| panic!("{uri}: list after clean-up: {e}"));
    assert!(
        left.iter().all(|e| e.path().ends_with('/')),
        "{uri}: objects left after deleting them: {:?}",
        left.iter().map(|e| e.path()).collect::<Vec<_>>()
    );
}

async fn round_trip_and_listing(op: &Operator, uri: &str, run: &str) {
    let body = br#"{"approval": "\u00e9 ok", "bytes": [0, 255]}"#.to_vec();
    for name in ["a.json", "nested/b.json", "nested/c.json"] {
        op.write(&format!("{run}{name}"), body.clone())
            .await
            .unwrap_or_else(|e| panic!("{uri}: write {name}: {e}"));
    }
    let read = op
        .read(&format!("{run}nested/b.json"))
        .await
        .unwrap_or_else(|e| panic!("{uri}: read: {e}"))
        .to_vec();
    assert_eq!(read, body, "{uri}: bytes read back differ");
    let mut listed: Vec<String> = op
        .list_with(&format!("{run}nested/"))
        .await
        .unwrap_or_else(|e| panic!("{uri}: list: {e}"))
        .into_iter()
        .map(|entry| entry.path().to_string())
        .filter(|path| !path.ends_with('/'))
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        vec![format!("{run}nested/b.json"), format!("{run}nested/c.json")],
        "{uri}: listing"
    );
}

/// Idempotency markers and audit records are written once: a second create must fail.
async fn create_only_once(op: &Operator, uri: &str, run: &str) {
    let capability = op.info().capability();
    assert!(
        capability.write_with_if_not_exists,
        "{uri}: the store cannot create-if-absent, which markers and audit records need"
    );
    let path = format!("{run}marker");
    op.write_with(&path, "first")
        .if_not_exists(true)
        .await
        .unwrap_or_else(|e| panic!("{uri}: first create: {e}"));
    let second = op.write_with(&path, "second").if_not_exists(true).await;
    match second {
        Err(e) if e.kind() == ErrorKind::ConditionNotMatch => {}
        Err(e) => panic!("{uri}: second create failed with {e}, expected a condition failure"),
        Ok(_) => panic!("{uri}: second create succeeded; it must not replace the first"),
    }
    let kept = op
        .read(&path)
        .await
        .unwrap_or_else(|e| panic!("{uri}: {e}"));
    assert_eq!(kept.to_vec(), b"first", "{uri}: the first write is kept");
}

/// Deliveries of one event handled side by side race to create its marker: exactly one
/// create wins, every other is told the object exists, and the winner's bytes are kept.
async fn racing_creates_leave_one_winner(op: &Operator, uri: &str, run: &str) {
    const WRITERS: usize = 16;
    let path = format!("{run}raced-marker");
    let writes = (0..WRITERS).map(|i| {
        let path = path.clone();
        async move {
            let body = format!("writer {i}");
            let written = op.write_with(&path, body.clone()).if_not_exists(true).await;
            (body, written)
        }
    });
    let results = futures::future::join_all(writes).await;
    let mut winners = Vec::new();
    for (body, written) in results {
        match written {
            Ok(_) => winners.push(body),
            Err(e) if e.kind() == ErrorKind::ConditionNotMatch => {}
            Err(e) => {
                panic!("{uri}: a racing create failed with {e}, expected a condition failure")
            }
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "{uri}: racing creates that succeeded: {winners:?}"
    );
    let kept = op
        .read(&path)
        .await
        .unwrap_or_else(|e| panic!("{uri}: {e}"));
    assert_eq!(
        kept.to_vec(),
        winners[0].as_bytes(),
        "{uri}: the winner's write is kept"
    );
}

/// The index manifest moves only from the version the writer read (If-Match on its ETag).
/// Backends without If-Match (fs, memory) must say so, and the index uses its fallback.
async fn replace_only_the_version_read(op: &Operator, uri: &str, run: &str) {
    if !op.info().capability().write_with_if_match {
        let scheme = uri.split(':').next().unwrap_or_default();
        assert!(
            matches!(scheme, "fs" | "memory"),
            "{uri}: cloud object storage must support If-Match writes"
        );
        return;
    }
    let path = format!("{run}manifest.json");
    op.write(&path, "v1")
        .await
        .unwrap_or_else(|e| panic!("{uri}: {e}"));
    let etag = op
        .stat(&path)
        .await
        .unwrap_or_else(|e| panic!("{uri}: stat: {e}"))
        .etag()
        .map(str::to_string)
        .unwrap_or_else(|| panic!("{uri}: no ETag on stat"));
    op.write_with(&path, "v2")
        .if_match(&etag)
        .await
        .unwrap_or_else(|e| panic!("{uri}: write with the current ETag: {e}"));
    let stale = op.write_with(&path, "v3").if_match(&etag).await;
    match stale {
        Err(e) if e.kind() == ErrorKind::ConditionNotMatch => {}
        Err(e) => panic!("{uri}: stale ETag failed with {e}, expected a condition failure"),
        Ok(_) => panic!("{uri}: a write with a stale ETag succeeded; updates would be lost"),
    }
    let current = op
        .read(&path)
        .await
        .unwrap_or_else(|e| panic!("{uri}: {e}"));
    assert_eq!(current.to_vec(), b"v2", "{uri}: the winning write is kept");
}

async fn missing_objects_are_not_found(op: &Operator, uri: &str, run: &str) {
    let missing = op.read(&format!("{run}never-written")).await;
    assert!(
        matches!(&missing, Err(e) if e.kind() == ErrorKind::NotFound),
        "{uri}: reading a missing object must be NotFound, got {:?}",
        missing.map(|b| b.len())
    );
}

#[tokio::test]
async fn memory_store() {
    conformance("memory://", Conditions::Enforced).await;
}

#[tokio::test]
async fn fs_store() {
    let dir = std::env::temp_dir().join(format!("escher-store-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    conformance(&format!("fs://{}", dir.display()), Conditions::Enforced).await;
    std::fs::remove_dir_all(&dir).ok();
}

// Emulator-backed stores: `make test` starts the emulators and sets their variables. A
// plain `cargo test` without them skips with a notice instead of failing.

#[tokio::test]
async fn s3_store() {
    if let Some(uri) = moto::s3_store("the S3 store's conformance") {
        conformance(&uri, Conditions::Enforced).await;
    }
}

#[tokio::test]
async fn azblob_store() {
    if let Some(uri) = azurite::blob_store("the Azure Blob store's conformance") {
        conformance(&uri, Conditions::Enforced).await;
    }
}

#[tokio::test]
async fn gcs_store() {
    let conditions = if fake_gcs::enforces_conditions() {
        Conditions::Enforced
    } else {
        Conditions::NotEnforcedByEmulator
    };
    if let Some(uri) = fake_gcs::gcs_store("the GCS store's conformance") {
        conformance(&uri, conditions).await;
    }
}

/// The Google Cloud fault suite and load bench put fake-gcs-server behind the fault proxy,
/// which refuses a create-only upload of an object that exists, as Cloud Storage does: the
/// markers' and audit records' create-once promise holds there, racing writers included.
#[tokio::test]
async fn gcs_store_behind_the_create_only_proxy() {
    let Some(uri) = fake_gcs::gcs_store("the GCS store behind the fault proxy") else {
        return;
    };
    let endpoint = store_endpoint(&uri).unwrap_or_else(|| panic!("{uri} names no endpoint"));
    let proxy = FaultProxy::start_in_front_of_fake_gcs(endpoint)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let uri = store_through(&uri, proxy.url());
    let op = escher_core::store::open(&uri).unwrap_or_else(|e| panic!("{uri}: {e}"));
    let run = format!(
        "conformance-proxied-{}-{}/",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    );
    create_only_once(&op, &uri, &run).await;
    racing_creates_leave_one_winner(&op, &uri, &run).await;
    delete_everything_written(&op, &uri, &run).await;
}
