//! The incident memory on every store the functions use: many handlers recording and
//! compacting at once lose nothing and count nothing twice.

use std::sync::Arc;

use chrono::{Duration, Utc};
use escher_core::approvals::Action;
use escher_core::incidents::{Incident, IncidentMemory};
use escher_core::pipeline::audit::Outcome;
use escher_core::{CloudProvider, EventType, Severity};
use escher_test_support::{azurite, moto};

fn incident(writer: usize, n: usize) -> Incident {
    Incident {
        event_id: format!("aws-w{writer}-e{n}"),
        handled_at: Utc::now() - Duration::minutes((writer * 100 + n) as i64),
        cloud: CloudProvider::Aws,
        account_id: "123456789012".into(),
        region: "us-east-1".into(),
        resource_type: "s3_bucket".into(),
        resource_id: format!("arn:aws:s3:::bucket-{}", n % 7),
        resource_name: format!("bucket-{}", n % 7),
        event_type: EventType::BucketPublic,
        severity: Severity::High,
        principal: Some(format!("arn:aws:iam::123456789012:user/writer{writer}")),
        action: Some(Action::MakeBucketPrivate),
        outcome: Outcome::Remediated,
        summary: format!("made bucket bucket-{} private", n % 7),
        handled_in_ms: Some(40),
        audit_path: format!("audit/w{writer}/e{n}.json"),
    }
}

const WRITERS: usize = 6;
const EACH: usize = 25;

/// Every writer is its own handler (its own memory and cache) on one store; each records
/// its incidents and compacts whenever a few are pending, as the pipeline does.
async fn concurrent_writers(uri: &str) {
    // A fresh root per run (the emulators' URIs end in a shared folder), so leftovers of an
    // earlier run cannot be counted.
    let fresh = format!(
        "/incident-memory-{}-{}?",
        std::process::id(),
        Utc::now().timestamp_nanos_opt().unwrap_or_default()
    );
    let uri = &uri.replacen("/conformance?", &fresh, 1);
    let operator = escher_core::store::open(uri).expect("store");
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let operator = operator.clone();
        tasks.push(tokio::spawn(async move {
            let memory = IncidentMemory::new(operator);
            for n in 0..EACH {
                memory.record(&incident(writer, n)).await.expect("record");
                memory.compact(4).await.expect("compact");
            }
        }));
    }
    for task in tasks {
        task.await.expect("writer");
    }
    let reader = Arc::new(IncidentMemory::new(operator.clone()));
    let view = reader.view().await.expect("view");
    let mut ids: Vec<String> = view
        .all()
        .expect("all")
        .into_iter()
        .map(|i| i.event_id)
        .collect();
    let total = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), total, "{uri}: an incident is counted twice");
    assert_eq!(total, WRITERS * EACH, "{uri}: incidents lost");
    assert!(view.snapshot.is_some(), "{uri}: nothing was compacted");

    // A last compaction leaves nothing pending, and a fresh reader sees the same.
    reader.compact(1).await.expect("compact");
    let fresh = IncidentMemory::new(operator).view().await.expect("view");
    assert_eq!(fresh.pending(), 0, "{uri}");
    assert_eq!(fresh.len(), (WRITERS * EACH) as u64, "{uri}");
    let one = fresh.search("writer3", None, 1000).expect("search");
    assert_eq!(one.len(), EACH, "{uri}: search by principal");
}

#[tokio::test]
async fn concurrent_writers_on_memory() {
    concurrent_writers("memory://").await;
}

#[tokio::test]
async fn concurrent_writers_on_a_local_folder() {
    let dir = std::env::temp_dir().join(format!("escher-incidents-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    concurrent_writers(&format!("fs://{}", dir.display())).await;
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn concurrent_writers_on_s3() {
    if let Some(uri) = moto::s3_store("the incident memory on S3") {
        concurrent_writers(&uri).await;
    }
}

#[tokio::test]
async fn concurrent_writers_on_azure_blob() {
    if let Some(uri) = azurite::blob_store("the incident memory on Azure Blob") {
        concurrent_writers(&uri).await;
    }
}

#[tokio::test]
async fn a_damaged_pending_incident_names_itself_and_the_fix() {
    let operator = escher_core::store::open("memory://").expect("store");
    operator
        .write("incidents/pending/aws-bad.json", "{not json")
        .await
        .expect("write");
    let error = IncidentMemory::new(operator)
        .view()
        .await
        .expect_err("unreadable");
    let message = error.to_string();
    assert!(
        message.contains("incidents/pending/aws-bad.json"),
        "{message}"
    );
    assert!(message.contains("incidents rebuild"), "{message}");
}

/// A handler reuses its listing for a while (so a busy one does not list on every event): its
/// own incidents are in its next view at once, another handler's once the listing is older
/// than the handler's refresh, and a fresh view always has them.
#[tokio::test]
async fn a_recent_listing_is_reused_with_the_handlers_own_incidents_in_it() {
    let operator = escher_core::store::open("memory://").expect("store");
    let (here, there) = (
        IncidentMemory::new(operator.clone()),
        IncidentMemory::new(operator),
    );
    let refresh = std::time::Duration::from_millis(300);
    assert_eq!(here.view_within(refresh).await.expect("view").len(), 0);

    here.record(&incident(0, 1)).await.expect("record");
    there.record(&incident(1, 1)).await.expect("record");
    let within = here.view_within(refresh).await.expect("view");
    assert_eq!(within.len(), 1, "its own incident, not yet the other's");

    tokio::time::sleep(refresh).await;
    assert_eq!(here.view_within(refresh).await.expect("view").len(), 2);
    there.record(&incident(1, 2)).await.expect("record");
    assert_eq!(
        here.view().await.expect("view").len(),
        3,
        "a fresh view lists again"
    );
}
