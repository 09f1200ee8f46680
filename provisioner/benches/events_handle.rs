//! What one `escher-provision events handle alert.json` costs as a whole process, as a user
//! on a laptop (or a script) runs it: the release build (`ESCHER_BENCH_CLI`, which `make
//! bench` sets; else the binary built with this bench's profile), against moto (`make
//! bench` starts it), stores in local folders (`fs://`), a `make_bucket_private` approval in
//! place, and a CloudTrail alert that the bucket was made public. Each run fixes the bucket
//! (public access block, ACL), verifies it (every check of the fix), seals the audit record
//! and prints the story; before each run the bucket is made public again and the alert gets
//! a new event id, so no run is a duplicate of another.
//!
//! Printed, hyperfine-style: wall time from spawn to exit (p50, p90, min, max) and the
//! process's peak resident memory (`ru_maxrss` of the child, from `wait4`), against the
//! targets (p50 ≤ 50 ms, peak ≤ 30 MB).
//! A run that does not end `remediated` and verified stops the bench with FAIL.
//!
//! Without moto the bench prints a notice and measures nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use escher_core::approvals::{Action, Approval, ApprovalStore, Change, Conditions, Scope};
use escher_test_support::figures::{ms, percentile, verdict};
use escher_test_support::fixtures::aws::put_bucket_acl;
use escher_test_support::moto::{self, s3, Moto, ACCOUNT};
use escher_test_support::names::unique;
use serde_json::Value;

const REGION: &str = "us-east-1";
const RUNS: usize = 30;
const TIME_TARGET: Duration = Duration::from_millis(50);
const MEMORY_TARGET_MB: f64 = 30.0;

struct Run {
    wall: Duration,
    peak_rss_mb: f64,
    story: Value,
}

/// Spawns the CLI with `args` and `env`, waits with `wait4` for its own resource usage.
fn run(binary: &Path, args: &[&str], env: &[(&str, String)]) -> Result<Run, String> {
    let mut command = Command::new(binary);
    command
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let child = command
        .spawn()
        .map_err(|e| format!("start {}: {e}", binary.display()))?;
    let pid = child.id() as libc::pid_t;
    // The output is read after the child exits: the story is a few KB, within a pipe's buffer.
    let mut status = 0;
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `pid` is our own unwaited child; `status` and `usage` are valid for writes.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, usage.as_mut_ptr()) };
    let wall = started.elapsed();
    if waited != pid {
        return Err(format!(
            "waiting for {}: {}",
            binary.display(),
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: wait4 succeeded, so it filled `usage`.
    let usage = unsafe { usage.assume_init() };
    let mut out = String::new();
    let mut err = String::new();
    use std::io::Read;
    if let Some(mut stdout) = child.stdout {
        let _ = stdout.read_to_string(&mut out);
    }
    if let Some(mut stderr) = child.stderr {
        let _ = stderr.read_to_string(&mut err);
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(format!(
            "escher-provision {} ended with status {status}:\n{out}\n{err}",
            args.join(" ")
        ));
    }
    let story: Value = serde_json::from_str(&out)
        .map_err(|e| format!("the --json story is not JSON ({e}):\n{out}\n{err}"))?;
    Ok(Run {
        wall,
        // ru_maxrss is in kilobytes on Linux.
        peak_rss_mb: usage.ru_maxrss as f64 / 1024.0,
        story,
    })
}

/// The story's one event must be a verified fix.
fn check_story(story: &Value) -> Result<(), String> {
    let event = &story["results"][0];
    let outcome = event["outcome"].as_str().unwrap_or("?");
    let verified = event
        .pointer("/record/remediation/verification/passed")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if outcome != "remediated" || !verified {
        return Err(format!(
            "the alert was not remediated and verified (outcome {outcome}, verified {verified}): {story}"
        ));
    }
    Ok(())
}

fn main() {
    let Some((endpoint, runtime)) = moto::bench_start("the events handle benchmark") else {
        return;
    };
    if let Err(e) = bench(&endpoint, &runtime) {
        println!("events handle benchmark: FAIL: {e}");
        std::process::exit(1);
    }
}

fn bench(endpoint: &str, runtime: &tokio::runtime::Runtime) -> Result<(), String> {
    // The release build users run (`make bench` builds it and names it); else the build
    // this bench was compiled with.
    let binary = std::env::var_os("ESCHER_BENCH_CLI")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_escher-provision")));
    if !binary.is_file() {
        return Err(format!(
            "{} does not exist: build it first (cargo build --release -p escher-provision)",
            binary.display()
        ));
    }
    let dir = tempfile::tempdir().map_err(|e| format!("a temporary folder: {e}"))?;
    let uri = |name: &str| format!("fs://{}", dir.path().join(name).display());
    let (state, audit, approvals) = (uri("state"), uri("audit"), uri("approvals"));
    let bucket = unique("escher-bench-handle");
    let moto = runtime.block_on(Moto::at(endpoint, REGION));
    runtime.block_on(async {
        s3::make_public(&moto.s3, &bucket, REGION).await?;
        ApprovalStore::open(&approvals)
            .map_err(|e| e.to_string())?
            .apply(
                &Change::Init {
                    approvals: vec![Approval {
                        id: "apr-bench-public-buckets".into(),
                        action: Action::MakeBucketPrivate,
                        scope: Scope::default(),
                        conditions: Conditions::default(),
                        approved_by: "bench".into(),
                        approved_at: Utc::now() - chrono::Duration::minutes(5),
                        expires_at: None,
                        reason: "public buckets are made private".into(),
                        revoked_at: None,
                        revoked_by: None,
                        revoke_reason: None,
                    }],
                },
                "bench",
            )
            .await
            .map_err(|e| e.to_string())
    })?;
    let env = vec![
        ("AWS_ENDPOINT_URL", endpoint.to_string()),
        ("AWS_REGION", REGION.to_string()),
        ("ESCHER_STATE_URI", state),
        ("ESCHER_AUDIT_URI", audit),
        ("ESCHER_APPROVALS_URI", approvals),
    ];
    let alert = dir.path().join("alert.json");
    let alert_arg = alert.display().to_string();
    let args = ["events", "handle", "--json", alert_arg.as_str()];

    let mut walls = Vec::with_capacity(RUNS);
    let mut peaks = Vec::with_capacity(RUNS);
    // One warm-up run (the binary into the page cache), then the measured runs.
    for n in 0..=RUNS {
        runtime.block_on(s3::make_public(&moto.s3, &bucket, REGION))?;
        std::fs::write(&alert, put_bucket_acl(&bucket, ACCOUNT, REGION).to_string())
            .map_err(|e| format!("write {}: {e}", alert.display()))?;
        let run = run(&binary, &args, &env).map_err(|e| format!("run {n}: {e}"))?;
        check_story(&run.story).map_err(|e| format!("run {n}: {e}"))?;
        if n > 0 {
            walls.push(run.wall);
            peaks.push(run.peak_rss_mb);
        }
    }
    walls.sort();
    peaks.sort_by(f64::total_cmp);
    let p50 = percentile(&walls, 0.50);
    let peak = peaks.last().copied().unwrap_or_default();
    println!(
        "\nescher-provision events handle, whole process ({}, {:.1} MB; an approved public bucket made private, verified and audited; fs stores; against moto; {RUNS} runs after a warm-up, the bucket made public again before each):",
        binary.display(),
        std::fs::metadata(&binary).map(|m| m.len()).unwrap_or_default() as f64 / 1e6,
    );
    println!(
        "  wall, spawn → exit: p50 {}, p90 {}, min {}, max {} (target p50 ≤ {}): {}",
        ms(p50),
        ms(percentile(&walls, 0.90)),
        ms(walls.first().copied().unwrap_or_default()),
        ms(walls.last().copied().unwrap_or_default()),
        ms(TIME_TARGET),
        verdict(p50, TIME_TARGET),
    );
    println!(
        "  peak resident memory: p50 {:.1} MB, max {:.1} MB (target ≤ {MEMORY_TARGET_MB:.0} MB): {}",
        peaks[peaks.len() / 2],
        peak,
        if peak <= MEMORY_TARGET_MB { "PASS" } else { "FAIL" },
    );
    Ok(())
}
