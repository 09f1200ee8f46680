//! `escher-provision incidents` as a user runs it: the memory rebuilt from an audit trail
//! (dry runs and duplicate deliveries left out), then searched by resource, principal,
//! outcome and time, as text and as JSON.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use chrono::{DateTime, Utc};
use escher_core::approvals::Action;
use escher_core::pipeline::audit::{AuditLog, AuditRecord, Outcome};
use escher_core::remediate::Mode;
use escher_core::{Normalized, Normalizer, UnifiedEvent};
use serde_json::Value;

const PUBLIC_BUCKET: &str =
    include_str!("../../tests/fixtures/aws/cloudtrail-eventbridge-putbucketacl-allusers.json");

fn event(id: &str, bucket: &str) -> UnifiedEvent {
    let Ok(Normalized::Events(mut events)) =
        Normalizer::default().normalize(PUBLIC_BUCKET.as_bytes())
    else {
        panic!("the fixture is a public-bucket alert");
    };
    let mut event = events.remove(0);
    event.event_id = id.into();
    event.resource.id = format!("arn:aws:s3:::{bucket}");
    event.resource.name = bucket.into();
    event
}

fn record(event: UnifiedEvent, mode: Mode, outcome: Outcome, at: &str) -> AuditRecord {
    let at: DateTime<Utc> = at.parse().expect("time");
    AuditRecord {
        record_id: format!("r-{}-{}", event.event_id, outcome),
        handled_at: at,
        mode,
        outcome,
        summary: format!("{outcome} on bucket {}", event.resource.name),
        event_id: Some(event.event_id.clone()),
        event: Some(event),
        payload_sha256: "00".into(),
        action: Some(Action::MakeBucketPrivate),
        decision: None,
        remediation: None,
        notifications: vec![],
        timings_ms: BTreeMap::from([("total".into(), 1400)]),
        notes: vec![],
        history: None,
        error: None,
        sha256: String::new(),
    }
}

fn run(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_escher-provision"))
        .args(["--escher-dir", &home.display().to_string()])
        .arg("incidents")
        .args(args)
        .output()
        .expect("run escher-provision")
}

fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn ids(out: &Output) -> Vec<String> {
    let found: Vec<Value> = serde_json::from_slice(&out.stdout).expect("JSON");
    found
        .iter()
        .map(|i| i["event_id"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn the_memory_is_rebuilt_from_the_audit_trail_and_searched() {
    let home = tempfile::tempdir().expect("home");
    let audit_uri = format!("fs://{}", home.path().join("audit").display());
    let log = AuditLog::new(
        escher_core::store::open(&audit_uri).expect("audit"),
        audit_uri.clone(),
    );
    for r in [
        record(
            event("aws-1", "marketing-assets"),
            Mode::Apply,
            Outcome::Remediated,
            "2026-11-02T08:00:00Z",
        ),
        record(
            event("aws-2", "marketing-assets"),
            Mode::Apply,
            Outcome::Remediated,
            "2026-11-20T08:00:00Z",
        ),
        record(
            event("aws-3", "payroll-exports"),
            Mode::Apply,
            Outcome::ApprovalRequired,
            "2026-11-21T08:00:00Z",
        ),
        record(
            event("aws-4", "payroll-exports"),
            Mode::DryRun,
            Outcome::WouldRemediate,
            "2026-11-21T09:00:00Z",
        ),
        record(
            event("aws-2", "marketing-assets"),
            Mode::Apply,
            Outcome::Duplicate,
            "2026-11-20T08:00:05Z",
        ),
    ] {
        log.write(r).await.expect("audit record");
    }

    // Nothing yet: the search says so, and how to fill it is the rebuild.
    let empty = ok(run(home.path(), &["search", "marketing-assets"]));
    let said = String::from_utf8_lossy(&empty.stdout);
    assert!(
        said.contains("no incidents matching \"marketing-assets\""),
        "{said}"
    );

    let rebuilt = ok(run(home.path(), &["rebuild", "--json"]));
    let rebuilt: Value = serde_json::from_slice(&rebuilt.stdout).expect("JSON");
    assert_eq!(
        rebuilt["incidents"], 3,
        "dry runs and duplicates are not incidents: {rebuilt}"
    );

    let bucket = ok(run(home.path(), &["search", "marketing-assets", "--json"]));
    assert_eq!(ids(&bucket), ["aws-2", "aws-1"], "newest first");
    let recent = ok(run(
        home.path(),
        &[
            "search",
            "marketing-assets",
            "--since",
            "2026-11-10",
            "--json",
        ],
    ));
    assert_eq!(ids(&recent), ["aws-2"]);
    let waiting = ok(run(
        home.path(),
        &["search", "outcome:approval_required", "--json"],
    ));
    assert_eq!(ids(&waiting), ["aws-3"]);
    let everything = ok(run(home.path(), &["search", "--json"]));
    assert_eq!(ids(&everything), ["aws-3", "aws-2", "aws-1"]);

    let text = ok(run(home.path(), &["search", "payroll-exports"]));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("1 incident matching \"payroll-exports\""),
        "{text}"
    );
    assert!(text.contains("approval_required"), "{text}");
    assert!(text.contains("audit: audit/2026/11/21/"), "{text}");

    // A rebuild again gives the same memory (it replaces, never adds twice).
    ok(run(home.path(), &["rebuild"]));
    let again = ok(run(home.path(), &["search", "--json"]));
    assert_eq!(ids(&again), ["aws-3", "aws-2", "aws-1"]);
}

#[test]
fn a_query_it_cannot_read_is_refused_with_how_to_write_one() {
    let home = tempfile::tempdir().expect("home");
    let out = run(home.path(), &["search", "bucket AND ("]);
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("cannot read the search"), "{said}");
    assert!(said.contains("event_type:bucket_public"), "{said}");
}
