//! `escher-provision inbox` as a user runs it: the notices the functions put under `inbox/`
//! in the state store, newest first and grouped by resource; read once per laptop, never
//! deleted; `--watch` following new ones.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use escher_core::pipeline::audit::Outcome;
use escher_core::pipeline::notify::Notification;
use escher_core::Severity;
use serde_json::Value;

fn notice(id: &str, resource: &str, minute: u32, title: &str) -> Notification {
    Notification {
        event_id: id.into(),
        severity: Severity::Medium,
        outcome: Outcome::NotifyOnly,
        title: title.into(),
        happened: format!("{title} happened."),
        done: "Nothing was changed: no approval covers it.".into(),
        next: vec![format!(
            "escher-provision approvals add --action make_bucket_private --resource '{resource}' --reason '...'"
        )],
        resource_id: resource.into(),
        account_id: "123456789012".into(),
        region: "eu-west-1".into(),
        timestamp: Utc
            .with_ymd_and_hms(2026, 12, 3, 2, minute, 0)
            .single()
            .expect("a time"),
    }
}

/// Writes a notice where the functions put it: `inbox/<day>/<event id>.json`.
fn put(state: &Path, n: &Notification) {
    let dir = state
        .join("inbox")
        .join(n.timestamp.format("%Y-%m-%d").to_string());
    std::fs::create_dir_all(&dir).expect("inbox folder");
    std::fs::write(
        dir.join(format!("{}.json", n.event_id)),
        serde_json::to_vec(n).expect("json"),
    )
    .expect("write notice");
}

fn inbox(home: &Path, state: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_escher-provision"))
        .arg("inbox")
        .args(["--state", &format!("fs://{}", state.display())])
        .args(["--escher-dir", &home.display().to_string()])
        .args(args)
        .output()
        .expect("run escher-provision");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn keys(out: &Output) -> Vec<String> {
    let entries: Vec<Value> = serde_json::from_slice(&out.stdout).expect("JSON");
    entries
        .iter()
        .map(|e| {
            e["notice"]["event_id"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[test]
fn notices_are_shown_newest_first_once_per_laptop_and_never_deleted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (home, state) = (dir.path().join("home"), dir.path().join("state"));
    let bucket = "arn:aws:s3:::exports";
    let group = "arn:aws:ec2:eu-west-1:123456789012:security-group/sg-1";
    put(&state, &notice("evt-a", bucket, 10, "bucket made public"));
    put(&state, &notice("evt-b", group, 20, "port 22 opened"));
    put(
        &state,
        &notice("evt-c", bucket, 30, "bucket made public again"),
    );

    let text = inbox(&home, &state, &[]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("3 notices (3 new) on 2 resources"), "{text}");
    // Grouped by resource, the resource with the newest notice first, newest first inside.
    let at = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("{needle} in {text}"))
    };
    assert!(at(bucket) < at(group));
    assert!(at("bucket made public again") < at("bucket made public\n"));
    assert!(
        text.contains("escher-provision approvals add"),
        "the command to act"
    );

    // Read now: nothing new; still there with --all, marked read; nothing deleted.
    let again = inbox(&home, &state, &["--json"]);
    assert!(keys(&again).is_empty());
    let all = inbox(&home, &state, &["--all", "--json"]);
    assert_eq!(keys(&all), ["evt-c", "evt-b", "evt-a"]);
    let entries: Vec<Value> = serde_json::from_slice(&all.stdout).expect("JSON");
    assert!(entries.iter().all(|e| e["read"] == true));
    assert_eq!(
        std::fs::read_dir(state.join("inbox/2026-12-03"))
            .expect("inbox")
            .count(),
        3
    );

    // A new notice, even one timed before the others (a late delivery), is new.
    put(&state, &notice("evt-late", group, 5, "late delivery"));
    assert_eq!(keys(&inbox(&home, &state, &["--json"])), ["evt-late"]);

    // Another laptop (another Escher folder) has read nothing.
    let other = dir.path().join("other-laptop");
    assert_eq!(keys(&inbox(&other, &state, &["--json"])).len(), 4);
}

#[test]
fn watch_prints_a_notice_that_arrives_while_it_runs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (home, state) = (dir.path().join("home"), dir.path().join("state"));
    std::fs::create_dir_all(&state).expect("state");
    let mut child = Command::new(env!("CARGO_BIN_EXE_escher-provision"))
        .arg("inbox")
        .args(["--state", &format!("fs://{}", state.display())])
        .args(["--escher-dir", &home.display().to_string()])
        .args(["--watch", "--interval", "1"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = lines.next().expect("a line").expect("text");
    assert!(first.contains("no new notices"), "{first}");
    put(
        &state,
        &notice("evt-w", "arn:aws:s3:::logs", 40, "arrived while watching"),
    );
    let started = Instant::now();
    let mut seen = false;
    for line in lines.by_ref() {
        if line.expect("text").contains("arrived while watching") {
            seen = true;
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "still waiting");
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen, "the new notice was printed");
}
