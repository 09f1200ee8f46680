//! The `events normalize` command as a user or a script runs it: output, exit codes, errors.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_escher-provision"))
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn run_with_stdin(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = bin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn escher-provision");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The first project fixture of a cloud whose golden output holds events.
fn fixture_with_events(cloud: &str) -> PathBuf {
    let dir = fixtures().join(cloud);
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixture dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p.to_string_lossy();
            n.ends_with(".json") && !n.ends_with(".expected.json")
        })
        .collect();
    inputs.sort();
    inputs
        .into_iter()
        .find(|p| {
            let expected = std::fs::read(p.with_extension("expected.json")).unwrap_or_default();
            let v: serde_json::Value = serde_json::from_slice(&expected).unwrap_or_default();
            v["events"].as_array().is_some_and(|e| !e.is_empty())
        })
        .unwrap_or_else(|| panic!("no fixture with events in {}", dir.display()))
}

#[test]
fn normalize_prints_one_event_per_line_and_exits_zero() {
    for cloud in ["aws", "azure", "gcp"] {
        let file = fixture_with_events(cloud);
        let out = bin()
            .args(["events", "normalize"])
            .arg(&file)
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{}: {}",
            file.display(),
            text(&out.stderr)
        );
        let stdout = text(&out.stdout);
        let lines: Vec<&str> = stdout.lines().collect();
        assert!(!lines.is_empty(), "{}: no output", file.display());
        for line in lines {
            let event: serde_json::Value = serde_json::from_str(line).expect("each line is JSON");
            assert_eq!(event["cloud_provider"], cloud, "{}", file.display());
            assert_eq!(event["schema_version"], "1");
        }
    }
}

#[test]
fn normalize_reads_stdin_and_pretty_prints() {
    let file = fixture_with_events("aws");
    let bytes = std::fs::read(&file).expect("read fixture");
    let out = run_with_stdin(&["events", "normalize", "-", "--pretty"], &bytes);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("\n  \"event_id\""),
        "not indented: {stdout}"
    );
}

#[test]
fn malformed_input_exits_2_with_the_byte_offset_on_stderr() {
    let out = run_with_stdin(&["events", "normalize"], b"{\"detail-type\": ");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "nothing on stdout for a failure");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("not valid JSON at byte 16"), "{stderr}");
}

#[test]
fn unknown_payload_exits_2_and_says_unrecognized() {
    let out = run_with_stdin(&["events", "normalize"], br#"{"greeting": "hello"}"#);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("unrecognized event"), "{stderr}");
    assert!(stderr.contains("greeting"), "{stderr}");
}

#[test]
fn missing_file_exits_2_naming_it() {
    let out = bin()
        .args(["events", "normalize", "/nonexistent/alert.json"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("/nonexistent/alert.json"));
}

#[test]
fn dir_summary_covers_every_bundled_fixture() {
    let mut cmd = bin();
    cmd.args(["events", "normalize", "--json"]);
    for cloud in ["aws", "azure", "gcp"] {
        cmd.arg("--dir").arg(fixtures().join(cloud));
    }
    let out = cmd.output().expect("run");
    let rows: Vec<serde_json::Value> =
        serde_json::from_slice(&out.stdout).expect("--json prints a JSON array");
    // The valid fixtures all normalize (the broken ones live in tests/fixtures/invalid).
    let failed: Vec<_> = rows.iter().filter(|r| !r["error"].is_null()).collect();
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(out.status.code(), Some(0));
    for cloud in ["aws", "azure", "gcp"] {
        assert!(
            rows.iter()
                .any(|r| r["file"].as_str().is_some_and(|f| f.starts_with(cloud))
                    && r["source"].as_str().is_some_and(|s| s.starts_with(cloud))),
            "no {cloud} event rows"
        );
    }
    assert!(
        rows.iter()
            .all(|r| !r["file"].as_str().unwrap_or("").ends_with(".expected.json")),
        "expected files are not inputs"
    );
}

#[test]
fn dir_with_a_broken_file_exits_2_and_shows_the_error_row() {
    let dir = std::env::temp_dir().join(format!("escher-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::copy(fixture_with_events("gcp"), dir.join("good.json")).expect("copy");
    std::fs::write(dir.join("broken.json"), b"{ not json").expect("write");
    let out = bin()
        .args(["events", "normalize", "--dir"])
        .arg(&dir)
        .env("COLUMNS", "400")
        .output()
        .expect("run");
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(out.status.code(), Some(2));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("broken.json") && stdout.contains("not valid JSON"),
        "{stdout}"
    );
    assert!(
        stdout.contains("good.json") && stdout.contains("gcp."),
        "{stdout}"
    );
    assert!(stdout.contains("1 failed"), "{stdout}");
}

#[test]
fn event_grid_handshake_is_printed_as_such_and_exits_zero() {
    let payload = br#"[{"id": "2d1781af-3a4c-4d7c-bd0c-e34b19da4e66",
        "topic": "/subscriptions/00000000-0000-0000-0000-000000000000",
        "subject": "", "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
        "eventTime": "2026-11-02T22:12:19.4556811Z", "metadataVersion": "1", "dataVersion": "1",
        "data": {"validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}}]"#;
    let out = run_with_stdin(&["events", "normalize"], payload);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        line["handshake"]["validation_code"],
        "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"
    );
    assert!(text(&out.stderr).contains("handshake"));
}

#[test]
fn policy_flag_replaces_the_built_in_severities() {
    let dir = std::env::temp_dir().join(format!("escher-cli-policy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    // Every default INFO except scheduled scans, which this operator wants to hear about.
    let built_in = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/severity.yaml"),
    )
    .expect("read built-in policy");
    let custom = built_in.replace("scheduled_scan: INFO", "scheduled_scan: HIGH");
    assert_ne!(custom, built_in, "the built-in policy names scheduled_scan");
    let policy = dir.join("severity.yaml");
    std::fs::write(&policy, custom).expect("write policy");
    let scan = br#"{"version": "0", "id": "89d1a02d-5ec7-412e-82f5-13505f849b41",
        "detail-type": "Scheduled Event", "source": "aws.events", "account": "123456789012",
        "time": "2026-11-02T02:00:00Z", "region": "eu-west-1",
        "resources": ["arn:aws:events:eu-west-1:123456789012:rule/escher-nightly-scan"],
        "detail": {}}"#;
    let default = run_with_stdin(&["events", "normalize"], scan);
    let policy_arg = policy.display().to_string();
    let raised = run_with_stdin(&["events", "normalize", "--policy", &policy_arg], scan);
    let broken_path = dir.join("broken.yaml");
    std::fs::write(&broken_path, "defaults: {}\nrasie: []\n").expect("write");
    let broken_arg = broken_path.display().to_string();
    let broken = run_with_stdin(&["events", "normalize", "--policy", &broken_arg], scan);
    std::fs::remove_dir_all(&dir).ok();

    let severity = |out: &Output| -> serde_json::Value {
        let event: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        event["severity"].clone()
    };
    assert_eq!(severity(&default), "INFO");
    assert_eq!(severity(&raised), "HIGH", "{}", text(&raised.stderr));
    assert_eq!(broken.status.code(), Some(2));
    assert!(
        text(&broken.stderr).contains("rasie"),
        "{}",
        text(&broken.stderr)
    );
}
