//! `escher-provision approvals …` as an operator or a script uses it: the change commands,
//! list/show/log output, `check`'s exit status, and two writer processes adding approvals
//! at the same time without losing any (a local folder always; moto S3 under `make test`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use escher_test_support::emulator::sub_store;
use escher_test_support::moto;
use escher_test_support::names::unique;
use serde_json::Value;

fn approvals(store: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_escher-provision"))
        .arg("approvals")
        .args(["--store", store])
        .args(args)
        .env("USER", "ci-operator")
        .env_remove("ESCHER_APPROVALS_URI")
        .output()
        .expect("run escher-provision")
}

fn ok(store: &str, args: &[&str]) -> String {
    let out = approvals(store, args);
    assert!(
        out.status.success(),
        "approvals {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(store: &str, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    serde_json::from_str(&ok(store, &all)).expect("JSON output")
}

fn temp_store(name: &str) -> (PathBuf, String) {
    let dir = std::env::temp_dir().join(format!(
        "escher-cli-{name}-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    ));
    let uri = format!("fs://{}", dir.display());
    (dir, uri)
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/aws")
        .join(name)
        .display()
        .to_string()
}

const PUBLIC_BUCKET: &str = "cloudtrail-eventbridge-putbucketacl-allusers.json";

#[test]
fn init_add_revoke_and_check_as_a_script_sees_them() {
    let (dir, store) = temp_store("lifecycle");
    let event = fixture(PUBLIC_BUCKET);

    // Nothing approved yet: exit 1 with an explanation that says how to approve.
    let out = approvals(&store, &["check", "--event", &event]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("approvals add --action make_bucket_private")
    );

    let init = json(&store, &["init", "--disable", "stop_idle_instance"]);
    let ids: Vec<&str> = init["change"]["approvals"]
        .as_array()
        .expect("approvals")
        .iter()
        .map(|a| a["id"].as_str().expect("id"))
        .collect();
    assert!(ids.contains(&"default-make-bucket-private"));
    assert!(
        !ids.contains(&"default-stop-idle-instance"),
        "--disable is honoured"
    );
    assert!(
        !ids.contains(&"default-revoke-open-ingress"),
        "off by default"
    );

    let out = approvals(&store, &["check", "--event", &event]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("APPROVED by default-make-bucket-private")
    );

    let added = json(
        &store,
        &[
            "add",
            "--action",
            "make_bucket_private",
            "--id",
            "apr-marketing",
            "--resource",
            "marketing-*",
            "--account",
            "210987654321",
            "--max-resources-per-day",
            "3",
            "--reason",
            "marketing buckets",
            "--by",
            "bo",
            "--expires-in",
            "30d",
        ],
    );
    assert_eq!(added["change"]["approval"]["approved_by"], "bo");
    let decisions = json(&store, &["check", "--event", &event]);
    assert_eq!(
        decisions[0]["decisions"][0]["approval_id"], "apr-marketing",
        "most specific wins"
    );

    ok(
        &store,
        &["revoke", "apr-marketing", "--reason", "campaign over"],
    );
    ok(
        &store,
        &[
            "revoke",
            "default-make-bucket-private",
            "--reason",
            "freeze",
        ],
    );
    let out = approvals(
        &store,
        &[
            "check",
            "--event",
            &event,
            "--action",
            "make_bucket_private",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "revoked approvals never match");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("revoked by ci-operator"), "{text}");

    let listed = json(&store, &["list"]);
    let revoked = listed
        .as_array()
        .expect("list")
        .iter()
        .find(|a| a["id"] == "apr-marketing")
        .expect("revoked approval still listed");
    assert!(revoked["status"]
        .as_str()
        .expect("status")
        .starts_with("revoked"));

    let shown = json(&store, &["show", "apr-marketing"]);
    let history: Vec<(&str, &str)> = shown["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|r| {
            (
                r["by"].as_str().expect("by"),
                r["change"]["op"].as_str().expect("op"),
            )
        })
        .collect();
    assert_eq!(history, [("bo", "add"), ("ci-operator", "revoke")]);
    assert_eq!(json(&store, &["log"]).as_array().expect("log").len(), 4);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn mistakes_are_refused_with_a_reason_and_exit_2() {
    let (dir, store) = temp_store("mistakes");
    // Not a terminal and no --yes: init must not guess.
    let out = approvals(&store, &["init"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));

    // Each ticked choice says what it does on each cloud today, from the fix registries.
    let init = approvals(&store, &["init", "--yes"]);
    assert!(init.status.success());
    let said = String::from_utf8_lossy(&init.stderr);
    assert!(
        said.contains("make_bucket_private: AWS fixes s3_bucket; Azure fixes azure_blob_container"),
        "{said}"
    );
    assert!(
        said.contains("scale_up_capacity: AWS fixes autoscaling_group, ebs_volume, ec2_instance, rds_instance; Azure notifies only (no automatic fix there yet); GCP notifies only"),
        "{said}"
    );
    // The choices not ticked by default, when the user ticks them.
    let other = tempfile::tempdir().unwrap();
    let other_store = format!("fs://{}", other.path().display());
    let ticked = approvals(
        &other_store,
        &[
            "init",
            "--yes",
            "--enable",
            "restart_service",
            "--enable",
            "rollback_deployment",
        ],
    );
    assert!(ticked.status.success());
    let said = String::from_utf8_lossy(&ticked.stderr);
    for (choice, on_aws) in [
        ("restart_service", "AWS fixes ec2_instance, ecs_service"),
        (
            "rollback_deployment",
            "AWS fixes cloudformation_stack, ecs_service, lambda_function",
        ),
    ] {
        let line = said
            .lines()
            .find(|l| l.contains(&format!("{choice}: ")))
            .unwrap_or_else(|| panic!("no line for {choice} in {said}"));
        assert!(
            line.contains(on_aws) && line.contains("Azure notifies only"),
            "{line}"
        );
    }
    for (args, expected) in [
        (vec!["init", "--yes"], "already initialised"),
        (
            vec!["revoke", "nope", "--reason", "x"],
            "no approval with id nope",
        ),
        (vec!["show", "nope"], "no approval with id nope"),
        (
            vec![
                "add",
                "--action",
                "make_bucket_private",
                "--id",
                "default-encrypt-volume",
                "--reason",
                "x",
            ],
            "already exists",
        ),
        (
            vec![
                "add",
                "--action",
                "encrypt_volume",
                "--min-idle-hours",
                "3",
                "--reason",
                "x",
            ],
            "only applies to stop_idle_instance",
        ),
        (
            vec![
                "add",
                "--action",
                "revoke_open_ingress",
                "--keep-network",
                "0.0.0.0/0",
                "--reason",
                "x",
            ],
            "narrower than the internet",
        ),
        (
            vec![
                "add",
                "--action",
                "make_bucket_private",
                "--keep-network",
                "203.0.113.0/24",
                "--reason",
                "x",
            ],
            "only applies to revoke_open_ingress",
        ),
        (
            vec!["check", "--event", "/nonexistent/event.json"],
            "cannot read",
        ),
    ] {
        let out = approvals(&store, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let out = approvals(
        &store,
        &["add", "--action", "delete_everything", "--reason", "x"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("known actions"));
    // A network to keep is stored as the fix reads it.
    let added = json(
        &store,
        &[
            "add",
            "--action",
            "revoke_open_ingress",
            "--keep-network",
            "203.0.113.0/24",
            "--reason",
            "SSH only from the office",
        ],
    );
    assert_eq!(
        added["change"]["approval"]["conditions"]["keep_networks"],
        serde_json::json!(["203.0.113.0/24"]),
        "{added}"
    );
    std::fs::remove_dir_all(dir).ok();
}

/// Two writer processes streams, `per_writer` `approvals add` invocations each, at the same time.
fn concurrent_writer_processes(store: &str, per_writer: usize) {
    ok(store, &["init", "--yes"]);
    let writers: Vec<_> = ["alpha", "beta"]
        .into_iter()
        .map(|writer| {
            let store = store.to_string();
            std::thread::spawn(move || {
                for i in 0..per_writer {
                    let id = format!("{writer}-{i:03}");
                    ok(
                        &store,
                        &[
                            "add",
                            "--action",
                            "encrypt_volume",
                            "--id",
                            &id,
                            "--reason",
                            "concurrency test",
                            "--by",
                            writer,
                        ],
                    );
                }
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer thread");
    }
    let listed = json(store, &["list"]);
    let ids: std::collections::BTreeSet<String> = listed
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|a| a["id"].as_str())
        .filter(|id| id.starts_with("alpha-") || id.starts_with("beta-"))
        .map(String::from)
        .collect();
    assert_eq!(ids.len(), 2 * per_writer, "{store}: no approval lost");
    let log = json(store, &["log"]);
    assert_eq!(
        log.as_array().expect("log").len(),
        1 + 2 * per_writer,
        "{store}: every change logged"
    );
}

#[test]
fn two_writer_processes_on_a_local_folder_lose_nothing() {
    let (dir, store) = temp_store("concurrent");
    concurrent_writer_processes(&store, 20);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn two_writer_processes_on_moto_s3_lose_nothing() {
    let Some(base) = moto::s3_store("the moto S3 concurrency test") else {
        return;
    };
    concurrent_writer_processes(&sub_store(&base, &unique("cli-concurrent")), 50);
}

/// Without `--store`, the approvals live in the Escher folder: `--escher-dir` or
/// `ESCHER_HOME` when given (the demo and CI keep ~/.escher untouched that way), else
/// `~/.escher`; with none of them and no HOME, the error says what to pass.
#[test]
fn the_default_store_is_in_the_escher_folder() {
    let (home, _) = temp_store("home");
    let (folder, _) = temp_store("folder");
    std::fs::create_dir_all(&home).expect("home");
    let run = |args: &[&str], envs: &[(&str, &Path)]| {
        Command::new(env!("CARGO_BIN_EXE_escher-provision"))
            .arg("approvals")
            .args(args)
            .env("USER", "ci-operator")
            .env("HOME", &home)
            .env_remove("ESCHER_HOME")
            .env_remove("ESCHER_APPROVALS_URI")
            .envs(envs.iter().copied())
            .current_dir(&home)
            .output()
            .expect("run escher-provision")
    };

    let flag = folder.join("by-flag");
    let out = run(
        &["init", "--yes", "--escher-dir", &flag.display().to_string()],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(flag.join("approvals/manifest.json").is_file());

    let by_env = folder.join("by-env");
    let out = run(&["init", "--yes"], &[("ESCHER_HOME", &by_env)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(by_env.join("approvals/manifest.json").is_file());
    // The list reads the same folder back.
    let out = run(&["list", "--json"], &[("ESCHER_HOME", &by_env)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("default-make-bucket-private"));

    // A relative folder is taken from the current folder.
    let out = run(&["init", "--yes", "--escher-dir", "relative-escher"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(home
        .join("relative-escher/approvals/manifest.json")
        .is_file());

    assert!(
        !home.join(".escher").exists(),
        "an Escher folder was given each time, so nothing goes to ~/.escher"
    );

    // No folder given: ~/.escher.
    let out = run(&["init", "--yes"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(home.join(".escher/approvals/manifest.json").is_file());

    // No HOME and no folder: the error names the way out.
    let out = Command::new(env!("CARGO_BIN_EXE_escher-provision"))
        .args(["approvals", "list"])
        .env_remove("HOME")
        .env_remove("ESCHER_HOME")
        .env_remove("ESCHER_APPROVALS_URI")
        .output()
        .expect("run escher-provision");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--escher-dir") && err.contains("ESCHER_HOME"),
        "{err}"
    );

    let _ = std::fs::remove_dir_all(&home);
    let _ = std::fs::remove_dir_all(&folder);
}
