//! What the Azure handler costs, against the Resource Manager stand-in (no Azure account):
//!
//! - Start: the real `escher-azure-functions` binary (the release build `make package-azure`
//!   publishes when `ESCHER_BENCH_BIN_DIR` names its folder, as `make bench` does; else this
//!   bench's build) spawned as the Functions host spawns it, with stores on local files and
//!   the stand-in as Resource Manager and identity endpoint; wall time from spawn to the answer
//!   to the first invocation (an approved public-storage policy alert, fixed and verified),
//!   split into spawn → listening and the first event. p50/p99 over the runs.
//! - Memory: each start's peak resident memory (`VmHWM`) once the first event is answered, and
//!   one warm handler's after each of three passes over the corpus. Target: ≤ 30 MB.
//! - CPU per event: the same pipeline in this process on a current-thread runtime, over every
//!   payload in `tests/fixtures/azure/` (each pass on fresh stores, every fix approved, the
//!   resources the payloads name seeded), measuring the thread's CPU and, with
//!   `escher_runtime::meter`, the CPU inside Resource Manager and store calls: the handler's
//!   own CPU is the difference. The stand-in runs on the same thread, so its work inside
//!   metered calls is excluded; Key Vault and Application Insights calls are not metered and
//!   count as the handler's. Target: p99 ≤ 1 ms.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::Utc;
use escher_azure::{azure_bindings, ArmClient};
use escher_core::approvals::{Action, Approval, ApprovalStore, Change, Conditions, Scope};
use escher_core::CloudProvider;
use escher_runtime::{build_pipeline, HandlerConfig, RemoteCallMeter, ThreadCpu};
use escher_test_support::azure_arm::{public_storage_policy_event, ArmDouble};
use escher_test_support::figures::{ms, percentile, verdict};
use escher_test_support::fixtures;
use escher_test_support::http::{closed_port, wait_until_listening};
use escher_test_support::process_memory::{
    bench_binary, memory_line, peak_mb, warm_lines, ProcessMemory,
};
use serde_json::{json, Value};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SUBSCRIPTION: &str = "6f1c2d3e-4a5b-4c6d-8e7f-901a2b3c4d5e";
const STARTS: usize = 20;
/// Passes of one warm handler over the corpus.
const WARM_PASSES: usize = 3;
const CPU_PASSES: usize = 20;
const START_TARGET: Duration = Duration::from_millis(25);
const CPU_TARGET: Duration = Duration::from_millis(1);
/// How long a spawned binary may take to listen before the bench says it did not start.
const LISTEN_PATIENCE: Duration = Duration::from_secs(10);

/// The resources the corpus's fixable payloads name, in the state they alert about.
fn seed(double: &ArmDouble) -> String {
    let account =
        double.storage_account(SUBSCRIPTION, "payments-prod", "paymentsexports", Some(true));
    double.blob_container(&account, "exports", "Blob");
    let vm = double.vm(SUBSCRIPTION, "batch-dev", "batch-worker-3", "running");
    double.cpu(&vm, Some(0.8));
    account
}

async fn approve_everything(uri: &str) {
    let approvals = [
        Action::MakeBucketPrivate,
        Action::RevokeOpenIngress,
        Action::StopIdleInstance,
        Action::EncryptVolume,
    ]
    .into_iter()
    .map(|action| Approval {
        id: format!("apr-{action}"),
        action,
        scope: Scope {
            clouds: vec![CloudProvider::Azure],
            ..Scope::default()
        },
        conditions: Conditions::default(),
        approved_by: "bench".into(),
        approved_at: Utc::now() - chrono::Duration::minutes(5),
        expires_at: None,
        reason: "the bench approves every fix".into(),
        revoked_at: None,
        revoked_by: None,
        revoke_reason: None,
    })
    .collect();
    ApprovalStore::open(uri)
        .expect("approvals store")
        .apply(&Change::Init { approvals }, "bench")
        .await
        .expect("approved");
}

fn uri(dir: &Path, name: &str) -> String {
    format!("fs://{}", dir.join(name).display())
}

fn policy_alert(account: &str) -> Value {
    let delivery = format!(
        "bench-{}",
        Utc::now().timestamp_nanos_opt().unwrap_or_default()
    );
    json!({"Data": {"event": public_storage_policy_event(SUBSCRIPTION, account, &delivery)}})
}

/// The handler spawned as the Functions host spawns it, on `port`, with stores under `dir`.
fn spawn_handler(double: &ArmDouble, dir: &Path, port: u16) -> tokio::process::Child {
    tokio::process::Command::new(bench_binary(
        "escher-azure-functions",
        env!("CARGO_BIN_EXE_escher-azure-functions"),
    ))
    .env_clear()
    .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
    .env("IDENTITY_ENDPOINT", double.identity_endpoint())
    .env("IDENTITY_HEADER", double.identity_header())
    .env("ESCHER_ARM_ENDPOINT", double.endpoint())
    .env("ESCHER_STATE_URI", uri(dir, "state"))
    .env("ESCHER_AUDIT_URI", uri(dir, "audit"))
    .env("ESCHER_APPROVALS_URI", uri(dir, "approvals"))
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .kill_on_drop(true)
    .spawn()
    .expect("the handler starts")
}

/// One start's figures: spawn → listening, spawn → first event answered, and the process's
/// peak memory then.
struct Start {
    listening: Duration,
    first: Duration,
    peak_mb: Option<f64>,
}

/// Spawn → listening → the first event answered, once.
async fn one_start(double: &ArmDouble) -> Start {
    let dir = tempfile::tempdir().expect("temp dir");
    approve_everything(&uri(dir.path(), "approvals")).await;
    let account = seed(double);
    let port = closed_port();
    let started = Instant::now();
    let mut child = spawn_handler(double, dir.path(), port);
    wait_until_listening(port, LISTEN_PATIENCE)
        .await
        .expect("the spawned binary listens");
    let listening = started.elapsed();
    let answer = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/events"))
        .json(&policy_alert(&account))
        .send()
        .await
        .expect("answered");
    assert!(answer.status().is_success(), "{}", answer.status());
    let first = started.elapsed();
    let peak_mb = peak_mb(child.id());
    let _ = child.kill().await;
    Start {
        listening,
        first,
        peak_mb,
    }
}

/// One warm handler given every payload of the Azure corpus `WARM_PASSES` times over, one
/// request after the other as the action group posts them (passes after the first are
/// redeliveries, answered as duplicates): its memory after each pass.
async fn warm_memory(double: &ArmDouble) -> Vec<String> {
    let payloads = corpus();
    let dir = tempfile::tempdir().expect("temp dir");
    approve_everything(&uri(dir.path(), "approvals")).await;
    let port = closed_port();
    let mut child = spawn_handler(double, dir.path(), port);
    wait_until_listening(port, LISTEN_PATIENCE)
        .await
        .expect("the spawned binary listens");
    let client = reqwest::Client::new();
    let mut passes = Vec::with_capacity(WARM_PASSES);
    for _ in 0..WARM_PASSES {
        seed(double);
        for payload in &payloads {
            let request = json!({"Data": {"req": {
                "Method": "POST",
                "Body": String::from_utf8_lossy(payload),
                "Headers": {}
            }}});
            let answer = client
                .post(format!("http://127.0.0.1:{port}/alert"))
                .json(&request)
                .send()
                .await
                .expect("answered");
            assert!(answer.status().is_success(), "{}", answer.status());
        }
        passes.extend(ProcessMemory::of(child.id()));
    }
    let _ = child.kill().await;
    warm_lines(payloads.len() * WARM_PASSES, &passes)
}

/// Every payload of `tests/fixtures/azure/`.
fn corpus() -> Vec<Vec<u8>> {
    fixtures::inputs(&fixtures::dir("azure"))
        .iter()
        .map(|p| std::fs::read(p).expect("fixture"))
        .collect()
}

async fn cpu_per_event(double: &ArmDouble) -> Vec<Duration> {
    let payloads = corpus();
    let mut own = Vec::new();
    for _ in 0..CPU_PASSES {
        let dir = tempfile::tempdir().expect("temp dir");
        approve_everything(&uri(dir.path(), "approvals")).await;
        seed(double);
        let config = HandlerConfig::from_lookup(|name| match name {
            "ESCHER_STATE_URI" => Some(uri(dir.path(), "state")),
            "ESCHER_AUDIT_URI" => Some(uri(dir.path(), "audit")),
            "ESCHER_APPROVALS_URI" => Some(uri(dir.path(), "approvals")),
            _ => None,
        })
        .expect("config");
        let meter = RemoteCallMeter::new();
        let arm = ArmClient::new(
            double.endpoint(),
            escher_azure::managed_identity().expect("identity"),
        );
        let identity = escher_azure::managed_identity().expect("identity");
        let pipeline = build_pipeline(
            &config,
            azure_bindings(arm, identity, None, Some(meter.clone())),
            &meter,
        )
        .expect("pipeline");
        for payload in &payloads {
            let (cpu, calls) = (ThreadCpu::now(), meter.snapshot());
            let _ = pipeline.handle(payload).await;
            let inside = meter.snapshot().since(&calls).cpu_in_calls;
            own.push(ThreadCpu::now().since(&cpu).total.saturating_sub(inside));
        }
    }
    own.sort();
    own
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let double = ArmDouble::start().await;
        // SAFETY: set before any other thread reads the environment (one runtime thread).
        unsafe { double.serve_identity_to_this_process() };
        let mut listening = Vec::new();
        let mut first = Vec::new();
        let mut peaks = Vec::new();
        for _ in 0..STARTS {
            let start = one_start(&double).await;
            listening.push(start.listening);
            first.push(start.first);
            peaks.extend(start.peak_mb);
        }
        listening.sort();
        first.sort();
        println!(
            "Azure handler start ({}, {STARTS} runs, stand-in Resource Manager, local stores):",
            bench_binary("escher-azure-functions", env!("CARGO_BIN_EXE_escher-azure-functions"))
                .display()
        );
        println!(
            "  spawn → listening        p50 {}  p99 {}",
            ms(percentile(&listening, 0.5)),
            ms(percentile(&listening, 0.99))
        );
        let p50 = percentile(&first, 0.5);
        println!(
            "  spawn → first event done p50 {}  p99 {}  (an approved public-storage fix, verified)  target p50 ≤ {}: {}",
            ms(p50),
            ms(percentile(&first, 0.99)),
            ms(START_TARGET),
            verdict(p50, START_TARGET)
        );
        println!(
            "  {}",
            memory_line("peak resident memory after the first event", &mut peaks)
        );
        for line in warm_memory(&double).await {
            println!("  {line}");
        }
        let own = cpu_per_event(&double).await;
        let p99 = percentile(&own, 0.99);
        println!(
            "Azure handler own CPU per event ({} events: the Azure fixture corpus × {CPU_PASSES}): p50 {}  p99 {}  target p99 ≤ {}: {}",
            own.len(),
            ms(percentile(&own, 0.5)),
            ms(p99),
            ms(CPU_TARGET),
            verdict(p99, CPU_TARGET)
        );
        assert!(double.violations().is_empty(), "{:?}", double.violations());
    });
}
