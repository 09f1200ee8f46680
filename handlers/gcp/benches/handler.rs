//! What the Google Cloud handler costs, against the contract server (no Google account):
//!
//! - Start: the real `escher-gcp-service` binary (the release build the service's image holds
//!   when `ESCHER_BENCH_BIN_DIR` names its folder, as `make bench` does; else this bench's
//!   build) spawned as Cloud Run spawns it (`PORT` set, nothing else but the service's
//!   settings), with stores on local files, the contract server as every Google API and as
//!   the metadata server, and a loopback JWKS publishing the committed test signer; wall time
//!   from spawn to the answer to the first push (an approved public-bucket alert, fixed and
//!   verified, its OIDC token checked), split into spawn → listening and the first event.
//!   p50/p99 over the runs.
//! - Memory: each start's peak resident memory (`VmHWM`) once the first push is answered, and
//!   one warm service's after each of three passes over the corpus. Target: ≤ 30 MB.
//! - CPU per event: the same pipeline (`build_service`, as the binary assembles it) in this
//!   process on a current-thread runtime, over every payload in `tests/fixtures/gcp/` (each
//!   pass on fresh stores, every fix approved, the resources the payloads name seeded),
//!   measuring the thread's CPU and, with `escher_runtime::meter`, the CPU inside Google API
//!   and store calls: the handler's own CPU is the difference. The contract server runs on
//!   the same thread, so its work inside metered calls is excluded. Target: p99 ≤ 1 ms.

#[path = "../tests/oidc/tokens.rs"]
mod tokens;

#[path = "../tests/kit/service.rs"]
mod kit;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use escher_core::approvals::{Action, Approval, ApprovalStore, Change, Conditions, Scope};
use escher_core::CloudProvider;
use escher_gcp::oidc::OidcPolicy;
use escher_gcp::service::{build_service, ServiceSettings};
use escher_gcp::{Endpoints, LoggedNotices, StaticToken};
use escher_runtime::{HandlerConfig, RemoteCallMeter, ThreadCpu};
use escher_test_support::figures::{ms, percentile, verdict};
use escher_test_support::fixtures;
use escher_test_support::http::{closed_port, wait_until_listening};
use escher_test_support::process_memory::{
    bench_binary, memory_line, peak_mb, warm_lines, ProcessMemory,
};
use kit::{public_grant, pushed, GcpApi, PROJECT};
use serde_json::json;
use tokens::{bearer, valid_token, Jwks, AUDIENCE, INVOKER};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const STARTS: usize = 20;
/// Passes of one warm service over the corpus.
const WARM_PASSES: usize = 3;
const CPU_PASSES: usize = 20;
const START_TARGET: Duration = Duration::from_millis(25);
const CPU_TARGET: Duration = Duration::from_millis(1);
/// How long a spawned binary may take to listen before the bench says it did not start.
const LISTEN_PATIENCE: Duration = Duration::from_secs(10);
/// The bucket the start's alert makes public.
const START_BUCKET: &str = "crm-exports";

/// The resources the corpus's fixable payloads name, in the state they alert about: the
/// public bucket, the rule open to SSH, and the rule open to RDP that Security Command
/// Center names by its numeric id (which Compute Engine accepts in place of the name).
fn seed(api: &GcpApi) {
    api.bucket("crm-exports-eu", true);
    api.firewall(
        PROJECT,
        "allow-ssh-anywhere",
        json!({"sourceRanges": ["0.0.0.0/0"], "allowed": [{"IPProtocol": "tcp", "ports": ["22"]}]}),
    );
    api.firewall(
        PROJECT,
        "6655443322110099",
        json!({"name": "allow-rdp", "id": "6655443322110099", "sourceRanges": ["0.0.0.0/0"],
               "allowed": [{"IPProtocol": "tcp", "ports": ["3389"]}]}),
    );
}

/// Every action approved on Google Cloud, those without a Google Cloud fix too (an alert
/// that plans one then goes as far as the pipeline takes it).
async fn approve_everything(uri: &str) {
    let approvals = Action::ALL
        .into_iter()
        .map(|action| Approval {
            id: format!("apr-{action}"),
            action,
            scope: Scope {
                clouds: vec![CloudProvider::Gcp],
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

/// The service spawned as Cloud Run spawns it (`PORT` set, nothing else but the service's
/// settings), with stores under `dir`.
fn spawn_service(api: &GcpApi, jwks: &Jwks, dir: &Path, port: u16) -> tokio::process::Child {
    tokio::process::Command::new(service_binary())
        .env_clear()
        .env("PORT", port.to_string())
        .env("GCE_METADATA_HOST", api.metadata_host())
        .env("ESCHER_GCP_API_ENDPOINT", api.endpoint())
        .env("ESCHER_GCP_PROJECT", PROJECT)
        .env("ESCHER_OIDC_AUDIENCE", AUDIENCE)
        .env("ESCHER_INVOKER_SERVICE_ACCOUNT", INVOKER)
        .env("ESCHER_OIDC_JWKS_URL", &jwks.url)
        .env("ESCHER_STATE_URI", uri(dir, "state"))
        .env("ESCHER_AUDIT_URI", uri(dir, "audit"))
        .env("ESCHER_APPROVALS_URI", uri(dir, "approvals"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the service starts")
}

/// The `escher-gcp-service` to spawn: the release build when `make bench` names it, else
/// this bench's.
fn service_binary() -> PathBuf {
    bench_binary(
        "escher-gcp-service",
        env!("CARGO_BIN_EXE_escher-gcp-service"),
    )
}

/// One start's figures: spawn → listening, spawn → first push answered, and the process's
/// peak memory then.
struct Start {
    listening: Duration,
    first: Duration,
    peak_mb: Option<f64>,
}

/// Spawn → listening → the first push answered, once.
async fn one_start(api: &GcpApi, jwks: &Jwks) -> Start {
    let dir = tempfile::tempdir().expect("temp dir");
    approve_everything(&uri(dir.path(), "approvals")).await;
    api.bucket(START_BUCKET, true);
    let delivery = Utc::now().timestamp_nanos_opt().unwrap_or_default();
    let envelope = pushed(
        public_grant(START_BUCKET).to_string().as_bytes(),
        &delivery.to_string(),
    );
    let authorization = bearer(&valid_token());
    let port = closed_port();
    let started = Instant::now();
    let mut child = spawn_service(api, jwks, dir.path(), port);
    wait_until_listening(port, LISTEN_PATIENCE)
        .await
        .expect("the spawned binary listens");
    let listening = started.elapsed();
    let answer = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/alerts"))
        .header("authorization", authorization)
        .json(&envelope)
        .send()
        .await
        .expect("answered");
    let first = started.elapsed();
    let peak_mb = peak_mb(child.id());
    let status = answer.status();
    let body: serde_json::Value = answer.json().await.unwrap_or_default();
    assert!(status.is_success(), "{status} {body}");
    assert_eq!(
        kit::outcomes(&body),
        ["remediated"],
        "the first push is fixed: {body}"
    );
    let _ = child.kill().await;
    Start {
        listening,
        first,
        peak_mb,
    }
}

/// One warm service given every payload of the Google Cloud corpus `WARM_PASSES` times over,
/// one push after the other (passes after the first are redeliveries, answered as
/// duplicates): its memory after each pass.
async fn warm_memory(api: &GcpApi, jwks: &Jwks) -> Vec<String> {
    let payloads = corpus();
    let dir = tempfile::tempdir().expect("temp dir");
    approve_everything(&uri(dir.path(), "approvals")).await;
    api.lro_polls(0);
    let port = closed_port();
    let mut child = spawn_service(api, jwks, dir.path(), port);
    wait_until_listening(port, LISTEN_PATIENCE)
        .await
        .expect("the spawned binary listens");
    let client = reqwest::Client::new();
    let mut passes = Vec::with_capacity(WARM_PASSES);
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..WARM_PASSES {
        seed(api);
        for payload in &payloads {
            let answer = client
                .post(format!("http://127.0.0.1:{port}/alerts"))
                .header("authorization", bearer(&valid_token()))
                .header("content-type", "application/json")
                .body(payload.clone())
                .send()
                .await
                .expect("answered");
            // An event not handled is answered for redelivery (counted as "error"); the pass
            // goes on.
            let status = answer.status();
            let body: serde_json::Value = answer.json().await.unwrap_or_default();
            if status.is_success() {
                for outcome in kit::outcomes(&body) {
                    *outcomes.entry(outcome).or_default() += 1;
                }
            } else {
                *outcomes.entry("error".to_string()).or_default() += 1;
            }
        }
        passes.extend(ProcessMemory::of(child.id()));
    }
    let _ = child.kill().await;
    let mut lines = warm_lines(payloads.len() * WARM_PASSES, &passes);
    lines.push(format!("  its outcomes: {outcomes:?}"));
    lines
}

/// Every payload of `tests/fixtures/gcp/`.
fn corpus() -> Vec<Vec<u8>> {
    fixtures::inputs(&fixtures::dir("gcp"))
        .iter()
        .map(|p| std::fs::read(p).expect("fixture"))
        .collect()
}

/// The handler's own CPU per payload, sorted, and how often each outcome came out.
async fn cpu_per_event(api: &GcpApi, jwks: &Jwks) -> (Vec<Duration>, BTreeMap<String, usize>) {
    let payloads = corpus();
    // A firewall fix polls Compute's operation; answered done at once, the pass does not
    // sleep through poll intervals (no CPU is spent there either way).
    api.lro_polls(0);
    let settings = ServiceSettings {
        project: PROJECT.into(),
        oidc: OidcPolicy {
            audience: AUDIENCE.into(),
            invoker: INVOKER.into(),
        },
        jwks_url: jwks.url.clone(),
        zone: chrono_tz::UTC,
        scan_time: escher_scan::nightly::DEFAULT_SCAN_TIME,
        endpoints: Endpoints::all_at(api.endpoint()),
        scan: Default::default(),
    };
    let mut own = Vec::new();
    let mut outcomes = BTreeMap::new();
    for _ in 0..CPU_PASSES {
        let dir = tempfile::tempdir().expect("temp dir");
        approve_everything(&uri(dir.path(), "approvals")).await;
        seed(api);
        let config = HandlerConfig::from_lookup(|name| match name {
            "ESCHER_STATE_URI" => Some(uri(dir.path(), "state")),
            "ESCHER_AUDIT_URI" => Some(uri(dir.path(), "audit")),
            "ESCHER_APPROVALS_URI" => Some(uri(dir.path(), "approvals")),
            _ => None,
        })
        .expect("config");
        let meter = RemoteCallMeter::new();
        let service = build_service(
            &config,
            &settings,
            reqwest::Client::new(),
            Arc::new(StaticToken::new(GcpApi::TEST_TOKEN)),
            LoggedNotices::to(Arc::new(Mutex::new(Box::new(std::io::sink())))),
            &meter,
        )
        .expect("the service is built");
        for payload in &payloads {
            let (cpu, calls) = (ThreadCpu::now(), meter.snapshot());
            let handled = service.pipeline.handle(payload).await;
            let inside = meter.snapshot().since(&calls).cpu_in_calls;
            own.push(ThreadCpu::now().since(&cpu).total.saturating_sub(inside));
            match handled {
                Ok(handled) => {
                    for result in handled.results {
                        *outcomes.entry(result.outcome.to_string()).or_default() += 1;
                    }
                }
                Err(_) => *outcomes.entry("error".to_string()).or_default() += 1,
            }
        }
    }
    own.sort();
    (own, outcomes)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let api = GcpApi::start().await;
        let jwks = Jwks::start().await;
        let mut listening = Vec::new();
        let mut first = Vec::new();
        let mut peaks = Vec::new();
        for _ in 0..STARTS {
            let start = one_start(&api, &jwks).await;
            listening.push(start.listening);
            first.push(start.first);
            peaks.extend(start.peak_mb);
        }
        listening.sort();
        first.sort();
        println!(
            "Google Cloud handler start ({}, {STARTS} runs, contract server as Google's APIs, local stores):",
            service_binary().display()
        );
        println!(
            "  spawn → listening        p50 {}  p99 {}",
            ms(percentile(&listening, 0.5)),
            ms(percentile(&listening, 0.99))
        );
        let p50 = percentile(&first, 0.5);
        println!(
            "  spawn → first push done  p50 {}  p99 {}  (an approved public-bucket fix, verified, token checked)  target p50 ≤ {}: {}",
            ms(p50),
            ms(percentile(&first, 0.99)),
            ms(START_TARGET),
            verdict(p50, START_TARGET)
        );
        println!(
            "  {}",
            memory_line("peak resident memory after the first push", &mut peaks)
        );
        for line in warm_memory(&api, &jwks).await {
            println!("  {line}");
        }
        let (own, outcomes) = cpu_per_event(&api, &jwks).await;
        let p99 = percentile(&own, 0.99);
        println!(
            "Google Cloud handler own CPU per event ({} events: the Google Cloud fixture corpus × {CPU_PASSES}): p50 {}  p99 {}  target p99 ≤ {}: {}",
            own.len(),
            ms(percentile(&own, 0.5)),
            ms(p99),
            ms(CPU_TARGET),
            verdict(p99, CPU_TARGET)
        );
        println!("  outcomes: {outcomes:?}");
        assert!(api.violations().is_empty(), "{:?}", api.violations());
    });
}
