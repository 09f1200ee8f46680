//! What the AWS alert handler costs, against moto (`ESCHER_TEST_AWS_ENDPOINT`, set by
//! `make bench`, which starts the emulators):
//!
//! - Cold start: the real `escher-alert` binary (the release build `make package` zips for
//!   Lambda when `ESCHER_BENCH_BIN_DIR` names its folder, as `make bench` does; else this
//!   bench's build) spawned against a local Runtime API stand-in with stores on moto S3 and
//!   topics on moto SNS; wall time from spawn to the stand-in receiving the
//!   response to the first invocation. Once per payload of the fixture corpus (every fix
//!   approved, bucket events finding their bucket public), p50/p99 over them; then the
//!   heaviest first event alone, an approved public bucket made private. Split into spawn →
//!   first poll (initialisation, all ours) and the first event, which the function's own
//!   remote-call meter splits into the wait on moto and the rest (it returns the figures
//!   with its answer). Target: p50 ≤ 25 ms. Each function's peak resident memory (`VmHWM`, what
//!   Lambda reports as Max Memory Used) once it answered, and that of one warm function after
//!   each of three passes over the whole corpus. Target: ≤ 30 MB.
//! - CPU per event: the same pipeline in this process on a current-thread runtime, over
//!   every payload in `tests/fixtures/aws/`, measuring the thread's CPU time
//!   (`CLOCK_THREAD_CPUTIME_ID`, user and system from `getrusage`) and, with
//!   `escher_runtime::meter`, the CPU that ran inside remote calls: the handler's own
//!   CPU is the difference, both excluding whole remote calls and, stricter, excluding only
//!   their transmission, with the incident memory holding 100 000 incidents. Target: p99 ≤
//!   1 ms (own CPU, excluding remote calls).
//!
//! Without moto the bench prints a notice and measures nothing. A filter argument runs only
//! the parts whose name holds it: `cold-start`, `warm-memory`, `cpu`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::Utc;
use escher_aws::{build_metered_pipeline, load_sdk_config};
use escher_core::approvals::{Action, Approval, ApprovalStore, Change, Conditions, Scope};
use escher_core::incidents::Incident;
use escher_runtime::{HandlerConfig, RemoteCallMeter, ThreadCpu};
use escher_test_support::figures::{ms, percentile, verdict};
use escher_test_support::fixtures::{self, FIXTURE_ACCOUNT};
use escher_test_support::lambda_runtime_api::RuntimeApi;
use escher_test_support::moto::{self, s3, Moto};
use escher_test_support::names::unique;
use escher_test_support::process_memory::{
    bench_binary, memory_line, peak_mb, warm_lines, ProcessMemory,
};
use serde_json::Value;

// The allocator escher-alert ships with, so the CPU measured here is the function's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The region of every fixture, and so the handler's: the common case of a function
/// handling its own region's events.
const REGION: &str = "eu-west-1";
const COLD_STARTS: usize = 30;
/// Cold starts per corpus payload.
const CORPUS_ROUNDS: usize = 3;
const CPU_PASSES: usize = 20;
const START_TARGET: Duration = Duration::from_millis(25);
const CPU_TARGET: Duration = Duration::from_millis(1);

/// Stores on one moto S3 bucket, approvals for every action, SNS topics.
struct Setup {
    endpoint: String,
    s3: aws_sdk_s3::Client,
    store_bucket: String,
    approvals: String,
    critical_topic: String,
    high_topic: String,
}

impl Setup {
    async fn new(endpoint: String) -> Result<Setup, String> {
        let moto = Moto::at(&endpoint, REGION).await;
        let s3 = moto.s3.clone();
        let store_bucket = unique("escher-bench-stores");
        s3::create_bucket(&s3, &store_bucket, REGION, None).await?;
        let mut topics = Vec::new();
        for name in ["critical", "high"] {
            let arn = moto
                .sns
                .create_topic()
                .name(unique(&format!("escher-bench-{name}")))
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "create topic: {}",
                        aws_sdk_sns::error::DisplayErrorContext(&e)
                    )
                })?
                .topic_arn()
                .unwrap_or_default()
                .to_string();
            topics.push(arn);
        }
        let mut setup = Setup {
            approvals: String::new(),
            critical_topic: topics[0].clone(),
            high_topic: topics[1].clone(),
            endpoint,
            s3,
            store_bucket,
        };
        setup.approvals = setup.uri("approvals");
        let approvals = Action::ALL
            .iter()
            .map(|&action| Approval {
                id: format!("apr-bench-{action}"),
                action,
                scope: Scope::default(),
                conditions: Conditions::default(),
                approved_by: "bench".into(),
                approved_at: Utc::now() - chrono::Duration::minutes(5),
                expires_at: None,
                reason: "every fix approved, so every event runs its fix".into(),
                revoked_at: None,
                revoked_by: None,
                revoke_reason: None,
            })
            .collect();
        ApprovalStore::open(&setup.approvals)
            .map_err(|e| e.to_string())?
            .apply(&Change::Init { approvals }, "bench")
            .await
            .map_err(|e| e.to_string())?;
        Ok(setup)
    }

    fn uri(&self, prefix: &str) -> String {
        moto::store_uri(&self.endpoint, REGION, &self.store_bucket, prefix)
    }

    /// The function's environment; `state` is a fresh prefix per run, so no event is a
    /// duplicate of an earlier run's.
    fn env(&self, state: &str) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", REGION.to_string()),
            ("ESCHER_STATE_URI", self.uri(state)),
            ("ESCHER_AUDIT_URI", self.uri("audit")),
            ("ESCHER_APPROVALS_URI", self.approvals.clone()),
            ("ESCHER_CRITICAL_TOPIC_ARN", self.critical_topic.clone()),
            ("ESCHER_HIGH_TOPIC_ARN", self.high_topic.clone()),
        ]
    }

    fn config(&self, state: &str) -> Result<HandlerConfig, String> {
        let env: BTreeMap<&str, String> = self.env(state).into_iter().collect();
        HandlerConfig::from_lookup(|name| env.get(name).cloned()).map_err(|e| e.to_string())
    }
}

/// Makes `bucket` public again (as the fixtures say it is), so every pass runs the full fix.
async fn make_public(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<(), String> {
    s3::make_public(s3, bucket, REGION).await
}

struct ColdStart {
    ready: Duration,
    answered: Duration,
    /// The outcomes of the first invocation's events (`handshake` for a subscription).
    outcomes: Vec<String>,
    /// The first invocation's remote calls, as the function's meter counted them.
    remote_calls: u64,
    remote_wait: Duration,
    own_cpu: Duration,
    /// The process's peak resident memory once it answered (VmHWM), in MB.
    peak_rss_mb: Option<f64>,
}

fn ms_field(remote: &Value, name: &str) -> Duration {
    Duration::from_secs_f64(remote[name].as_f64().unwrap_or_default().max(0.0) / 1e3)
}

/// The `escher-alert` to spawn: the release build when `make bench` names it, else this
/// bench's.
fn alert_binary() -> PathBuf {
    bench_binary("escher-alert", env!("CARGO_BIN_EXE_escher-alert"))
}

/// Spawns the function, hands it `payload` as its first invocation and times the answer.
async fn one_cold_start(setup: &Setup, run: &str, payload: Value) -> Result<ColdStart, String> {
    let api = RuntimeApi::start(vec![payload]).await;
    let mut function = api.function(&alert_binary());
    function.envs(setup.env(&format!("state-cold-{run}")));
    let spawned = Instant::now();
    let mut child = function
        .spawn()
        .map_err(|e| format!("start escher-alert: {e}"))?;
    let answers = api.wait_for_answers(1, Duration::from_secs(30)).await;
    let peak_rss_mb = peak_mb(child.id());
    let _ = child.kill().await;
    let answer = answers
        .first()
        .ok_or("no answer from escher-alert within 30 s")?;
    if !answer.path.ends_with("/response") {
        return Err(format!(
            "the first event was not handled (Lambda would retry it): {} {}",
            answer.path, answer.body
        ));
    }
    let mut outcomes: Vec<String> = answer.body["events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .map(|e| e["outcome"].as_str().unwrap_or("?").to_string())
                .collect()
        })
        .unwrap_or_default();
    if answer.body.get("handshake").is_some() {
        outcomes.push("handshake".into());
    }
    let ready = api.first_poll().ok_or("no poll recorded")? - spawned;
    let remote = &answer.body["remote"];
    Ok(ColdStart {
        ready,
        answered: answer.at - spawned,
        outcomes,
        remote_calls: remote["calls"].as_u64().unwrap_or_default(),
        remote_wait: ms_field(remote, "wait_ms"),
        own_cpu: ms_field(remote, "own_cpu_ms"),
        peak_rss_mb,
    })
}

/// The heaviest first event: an approved public bucket, made private and verified.
async fn public_bucket_cold_start(setup: &Setup, run: usize) -> Result<ColdStart, String> {
    let bucket = unique(&format!("escher-bench-cold-{run}"));
    make_public(&setup.s3, &bucket).await?;
    let started = one_cold_start(
        setup,
        &run.to_string(),
        fixtures::aws::put_bucket_acl(&bucket, FIXTURE_ACCOUNT, REGION),
    )
    .await?;
    if started.outcomes != ["remediated"] {
        return Err(format!(
            "the public bucket was not remediated: {:?}",
            started.outcomes
        ));
    }
    Ok(started)
}

/// One cold start per corpus payload, `CORPUS_ROUNDS` times: the first event a function
/// meets is whatever alert arrives.
fn cold_start_corpus(runtime: &tokio::runtime::Runtime, setup: &Setup) -> Vec<String> {
    let corpus = match corpus() {
        Ok(c) => c,
        Err(e) => return vec![format!("cold start over the corpus: {e}")],
    };
    let normalizer = escher_core::Normalizer::default();
    let mut answered = Vec::new();
    let mut not_waiting = Vec::new();
    let mut waits = Vec::new();
    let mut ready = Vec::new();
    let mut peaks = Vec::new();
    let mut by_outcome: BTreeMap<String, (Vec<Duration>, Vec<u64>)> = BTreeMap::new();
    for round in 0..CORPUS_ROUNDS {
        for (name, bytes) in &corpus {
            let run = runtime.block_on(async {
                // Each bucket event finds its bucket public, as the alert says it is.
                for bucket in buckets_named(&normalizer, bytes) {
                    make_public(&setup.s3, &bucket).await?;
                }
                let payload: Value =
                    serde_json::from_slice(bytes).map_err(|e| format!("{name}: {e}"))?;
                let run = format!("corpus-{round}-{}", name.trim_end_matches(".json"));
                one_cold_start(setup, &run, payload).await
            });
            let c = match run {
                Ok(c) => c,
                Err(e) => return vec![format!("cold start over the corpus, {name}: failed: {e}")],
            };
            answered.push(c.answered);
            not_waiting.push(c.answered.saturating_sub(c.remote_wait));
            waits.push(c.remote_wait);
            ready.push(c.ready);
            peaks.extend(c.peak_rss_mb);
            let entry = by_outcome.entry(c.outcomes.join("+")).or_default();
            entry.0.push(c.answered);
            entry.1.push(c.remote_calls);
        }
    }
    for list in [&mut answered, &mut not_waiting, &mut waits, &mut ready] {
        list.sort();
    }
    let p50 = percentile(&answered, 0.50);
    let p50_not_waiting = percentile(&not_waiting, 0.50);
    let outcomes: Vec<String> = by_outcome
        .iter_mut()
        .map(|(outcome, (times, calls))| {
            times.sort();
            calls.sort();
            format!(
                "{outcome} ×{} p50 {} ({} calls)",
                times.len() / CORPUS_ROUNDS,
                ms(percentile(times, 0.50)),
                calls[calls.len() / 2]
            )
        })
        .collect();
    vec![
        format!(
            "cold start over the fixture corpus, {} payloads × {CORPUS_ROUNDS} (each the first event of a new process): spawn → response (wall time, waiting on moto included) p50 {}, p99 {} (target p50 ≤ {}): {}",
            corpus.len(),
            ms(p50),
            ms(percentile(&answered, 0.99)),
            ms(START_TARGET),
            verdict(p50, START_TARGET),
        ),
        format!(
            "  spawn → first poll p50 {}; waiting on moto p50 {}, p99 {}; spawn → response less that wait p50 {}, p99 {} (same target): {}",
            ms(percentile(&ready, 0.50)),
            ms(percentile(&waits, 0.50)),
            ms(percentile(&waits, 0.99)),
            ms(p50_not_waiting),
            ms(percentile(&not_waiting, 0.99)),
            verdict(p50_not_waiting, START_TARGET),
        ),
        format!("  by first event's outcome: {}", outcomes.join(", ")),
        memory_line(
            "peak resident memory of a function that handled its first event",
            &mut peaks,
        ),
    ]
}

/// One warm function handling the whole corpus `CORPUS_ROUNDS` times over, one invocation
/// after the other as Lambda hands them to one instance: its peak memory after each round,
/// so a leak or a cache that grows per event shows as a rising line.
fn warm_instance_memory(runtime: &tokio::runtime::Runtime, setup: &Setup) -> Vec<String> {
    let run = runtime.block_on(async {
        let corpus = corpus()?;
        let normalizer = escher_core::Normalizer::default();
        let mut payloads = Vec::new();
        for _ in 0..CORPUS_ROUNDS {
            for (name, bytes) in &corpus {
                for bucket in buckets_named(&normalizer, bytes) {
                    make_public(&setup.s3, &bucket).await?;
                }
                payloads.push(
                    serde_json::from_slice::<Value>(bytes).map_err(|e| format!("{name}: {e}"))?,
                );
            }
        }
        let count = payloads.len();
        let api = RuntimeApi::start(payloads).await;
        let mut function = api.function(&alert_binary());
        function.envs(setup.env(&unique("state-warm")));
        let mut child = function
            .spawn()
            .map_err(|e| format!("start escher-alert: {e}"))?;
        // Each round's peak once its last answer arrived; the function keeps polling, so the
        // next round's first events may already count (a peak never goes down).
        let mut passes = Vec::with_capacity(CORPUS_ROUNDS);
        let mut answered = 0;
        for round in 1..=CORPUS_ROUNDS {
            let wanted = count * round / CORPUS_ROUNDS;
            answered = api
                .wait_for_answers(wanted, Duration::from_secs(120))
                .await
                .len();
            if answered < wanted {
                break;
            }
            passes.extend(ProcessMemory::of(child.id()));
        }
        let _ = child.kill().await;
        if answered != count {
            return Err(format!(
                "{answered} of {count} invocations answered within 120 s each round"
            ));
        }
        Ok((count, passes))
    });
    match run {
        Ok((count, passes)) => warm_lines(count, &passes),
        Err(e) => vec![format!("warm function memory: failed: {e}")],
    }
}

/// The buckets a payload's events name.
fn buckets_named(normalizer: &escher_core::Normalizer<'_>, bytes: &[u8]) -> Vec<String> {
    match normalizer.normalize(bytes) {
        Ok(escher_core::Normalized::Events(events)) => events
            .into_iter()
            .filter(|e| e.resource.kind == "s3_bucket")
            .map(|e| e.resource.name)
            .collect(),
        _ => Vec::new(),
    }
}

fn cold_start(runtime: &tokio::runtime::Runtime, setup: &Setup) -> Vec<String> {
    let mut ready = Vec::with_capacity(COLD_STARTS);
    let mut answered = Vec::with_capacity(COLD_STARTS);
    let mut first_event = Vec::with_capacity(COLD_STARTS);
    let mut waits = Vec::with_capacity(COLD_STARTS);
    let mut not_waiting = Vec::with_capacity(COLD_STARTS);
    let mut own_cpu = Vec::with_capacity(COLD_STARTS);
    let mut calls = Vec::with_capacity(COLD_STARTS);
    let mut peaks = Vec::with_capacity(COLD_STARTS);
    for run in 0..COLD_STARTS {
        match runtime.block_on(public_bucket_cold_start(setup, run)) {
            Ok(c) => {
                ready.push(c.ready);
                answered.push(c.answered);
                first_event.push(c.answered.saturating_sub(c.ready));
                waits.push(c.remote_wait);
                not_waiting.push(c.answered.saturating_sub(c.remote_wait));
                own_cpu.push(c.own_cpu);
                calls.push(c.remote_calls);
                peaks.extend(c.peak_rss_mb);
            }
            Err(e) => return vec![format!("cold start, run {run}: failed: {e}")],
        }
    }
    for list in [
        &mut ready,
        &mut answered,
        &mut first_event,
        &mut waits,
        &mut not_waiting,
        &mut own_cpu,
    ] {
        list.sort();
    }
    calls.sort();
    let p50 = percentile(&answered, 0.50);
    let p50_not_waiting = percentile(&not_waiting, 0.50);
    vec![
        format!(
            "cold start, the heaviest first event, {COLD_STARTS} runs: spawn → response to the first invocation (wall time, waiting on moto included) p50 {}, p99 {} (target p50 ≤ {}): {}",
            ms(p50),
            ms(percentile(&answered, 0.99)),
            ms(START_TARGET),
            verdict(p50, START_TARGET),
        ),
        format!(
            "  spawn → first poll for an invocation (process start, settings, SDK clients, stores; no remote call): p50 {}, p99 {}",
            ms(percentile(&ready, 0.50)),
            ms(percentile(&ready, 0.99)),
        ),
        format!(
            "  the first event (an approved public bucket made private and verified: approvals cold load, marker, tags, the fix's S3 calls, audit, SNS): p50 {}, p99 {}; of it waiting on moto's answers to {} remote calls (median count): p50 {}, p99 {}; the handler's own CPU in it: p50 {}",
            ms(percentile(&first_event, 0.50)),
            ms(percentile(&first_event, 0.99)),
            calls[calls.len() / 2],
            ms(percentile(&waits, 0.50)),
            ms(percentile(&waits, 0.99)),
            ms(percentile(&own_cpu, 0.50)),
        ),
        format!(
            "  spawn → response less the time waiting on moto (what the handler itself takes to start and handle the first event) p50 {}, p99 {} (against the same target p50 ≤ {}): {}",
            ms(p50_not_waiting),
            ms(percentile(&not_waiting, 0.99)),
            ms(START_TARGET),
            verdict(p50_not_waiting, START_TARGET),
        ),
        memory_line(
            "  peak resident memory once it answered (Lambda's Max Memory Used)",
            &mut peaks,
        ),
    ]
}

/// Every payload in the fixture corpus (not the `.expected.json` files), by file name.
fn corpus() -> Result<Vec<(String, Vec<u8>)>, String> {
    fixtures::inputs(&fixtures::dir("aws"))
        .into_iter()
        .map(|path| {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok((name, bytes))
        })
        .collect()
}

/// The buckets the corpus names, so its bucket events find a public bucket on moto.
/// The accounts the corpus's events come from, so the seeded memory's look-ups walk real
/// posting lists.
fn corpus_accounts(corpus: &[(String, Vec<u8>)]) -> Vec<String> {
    let mut accounts: Vec<String> = corpus
        .iter()
        .filter_map(|(_, payload)| match escher_core::normalize(payload) {
            Ok(escher_core::Normalized::Events(events)) => Some(events),
            _ => None,
        })
        .flatten()
        .map(|e| e.account_id)
        .collect();
    accounts.sort();
    accounts.dedup();
    accounts
}

const SEEDED_INCIDENTS: usize = 100_000;

/// A year of a busy estate's incidents over `accounts`: 2 000 buckets, 200 principals.
fn busy_memory(accounts: &[String]) -> Vec<Incident> {
    let fallback = ["123456789012".to_string()];
    let accounts = if accounts.is_empty() {
        &fallback[..]
    } else {
        accounts
    };
    let now = Utc::now();
    (0..SEEDED_INCIDENTS)
        .map(|n| {
            let account = &accounts[n % accounts.len()];
            let bucket = format!("bucket-{}", (n * 7919) % 2_000);
            Incident {
                event_id: format!("aws-seeded-{n}"),
                handled_at: now - chrono::Duration::minutes((n % (365 * 24 * 60)) as i64),
                cloud: escher_core::CloudProvider::Aws,
                account_id: account.clone(),
                region: REGION.into(),
                resource_type: "s3_bucket".into(),
                resource_id: format!("arn:aws:s3:::{bucket}"),
                resource_name: bucket.clone(),
                event_type: escher_core::EventType::BucketPublic,
                severity: escher_core::Severity::High,
                principal: Some(format!("arn:aws:iam::{account}:user/p{}", n % 200)),
                action: Some(Action::MakeBucketPrivate),
                outcome: escher_core::pipeline::audit::Outcome::Remediated,
                summary: format!("made bucket {bucket} private"),
                handled_in_ms: Some(900),
                audit_path: format!("audit/seeded/{n}.json"),
            }
        })
        .collect()
}

fn corpus_buckets(corpus: &[(String, Vec<u8>)]) -> Vec<String> {
    let normalizer = escher_core::Normalizer::default();
    let mut buckets: Vec<String> = corpus
        .iter()
        .flat_map(|(_, bytes)| buckets_named(&normalizer, bytes))
        .collect();
    buckets.sort();
    buckets.dedup();
    buckets
}

fn cpu_per_event(setup: &Setup) -> Vec<String> {
    // One thread runs every task of the pipeline, so its CPU time is the handler's own;
    // while it waits for moto it is parked and accrues none.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return vec![format!("cannot start a runtime: {e}")],
    };
    let corpus = match corpus() {
        Ok(c) => c,
        Err(e) => return vec![format!("CPU per event: {e}")],
    };
    let buckets = corpus_buckets(&corpus);
    // Clients, stores and HTTP connections of this runtime's own, so the work of every
    // connection runs on this thread too; built once, like a warm function.
    let built = runtime.block_on(async {
        let sdk = load_sdk_config(Some(REGION), Some(&setup.endpoint)).await;
        let config = setup.config("state-cpu")?;
        let meter = RemoteCallMeter::new();
        let pipeline = build_metered_pipeline(&config, &sdk, &meter).map_err(|e| e.to_string())?;
        Ok::<_, String>((s3::client(&sdk), pipeline, meter))
    });
    let (s3, pipeline, meter) = match built {
        Ok(b) => b,
        Err(e) => return vec![format!("CPU per event: {e}")],
    };
    // The memory on, as a busy estate has it; the first pass (excluded) loads its snapshot.
    let seeded = runtime.block_on(
        pipeline
            .memory
            .replace_with(busy_memory(&corpus_accounts(&corpus)), &[]),
    );
    let seeded = match seeded {
        Ok(done) => done.incidents,
        Err(e) => return vec![format!("CPU per event: seed the incident memory: {e}")],
    };
    let mut samples: Vec<Duration> = Vec::new();
    let mut own: Vec<Duration> = Vec::new();
    let mut own_strict: Vec<Duration> = Vec::new();
    let mut user = Duration::ZERO;
    let mut system = Duration::ZERO;
    let mut calls_total = 0u64;
    let mut unknown_spans = 0u64;
    let mut wait: Vec<Duration> = Vec::new();
    let mut wall: Vec<Duration> = Vec::new();
    // Own CPU per payload, to name the events at the top of the distribution.
    let mut by_payload: BTreeMap<&str, (String, Vec<Duration>)> = BTreeMap::new();
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut first_pass_max = Duration::ZERO;
    let mut events_per_pass = 0usize;
    for pass in 0..CPU_PASSES {
        // Every pass finds the buckets public and no event already handled.
        let reset = runtime.block_on(async {
            for bucket in &buckets {
                make_public(&s3, bucket).await?;
            }
            pipeline
                .state
                .delete_with("markers/")
                .recursive(true)
                .await
                .map_err(|e| format!("remove the markers: {e}"))
        });
        if let Err(e) = reset {
            return vec![format!("CPU per event, pass {pass}: {e}")];
        }
        events_per_pass = 0;
        for (name, payload) in &corpus {
            let started = Instant::now();
            let (cpu_before, calls_before) = (ThreadCpu::now(), meter.snapshot());
            let handled = runtime.block_on(pipeline.handle(payload));
            let used = ThreadCpu::now().since(&cpu_before);
            let calls = meter.snapshot().since(&calls_before);
            let elapsed = started.elapsed();
            let cpu = used.total;
            let outcome_names: Vec<String> = match &handled {
                Ok(h) if h.handshake.is_some() => vec!["handshake".into()],
                Ok(h) => h.results.iter().map(|r| r.outcome.to_string()).collect(),
                Err(e) => return vec![format!("CPU per event: {name} was not handled: {e}")],
            };
            // A payload with several events: its cost is shared out among them.
            let events = outcome_names.len().max(1);
            events_per_pass += events;
            let per_event = cpu / events as u32;
            if pass == 0 {
                first_pass_max = first_pass_max.max(per_event);
                continue;
            }
            for outcome in &outcome_names {
                *outcomes.entry(outcome.clone()).or_default() += 1;
            }
            samples.extend(std::iter::repeat_n(per_event, events));
            let own_cpu = cpu.saturating_sub(calls.cpu_in_calls) / events as u32;
            own.extend(std::iter::repeat_n(own_cpu, events));
            let entry = by_payload.entry(name.as_str()).or_default();
            entry.0 = outcome_names.join("+");
            entry.1.push(own_cpu);
            let strict = cpu.saturating_sub(calls.cpu_in_transmit) / events as u32;
            own_strict.extend(std::iter::repeat_n(strict, events));
            user += used.user;
            system += used.system;
            calls_total += calls.calls();
            unknown_spans += calls.cpu_unknown_spans;
            wait.extend(std::iter::repeat_n(calls.wait / events as u32, events));
            wall.extend(std::iter::repeat_n(elapsed / events as u32, events));
        }
    }
    for list in [
        &mut samples,
        &mut own,
        &mut own_strict,
        &mut wait,
        &mut wall,
    ] {
        list.sort();
    }
    let us = |d: Duration| format!("{:.0} µs", d.as_secs_f64() * 1e6);
    let own_p99 = percentile(&own, 0.99);
    let strict_p99 = percentile(&own_strict, 0.99);
    let outcomes: Vec<String> = outcomes
        .iter()
        .map(|(o, n)| format!("{o} {}", n / (CPU_PASSES - 1)))
        .collect();
    let measured = samples.len().max(1) as u32;
    let mut heaviest: Vec<(Duration, String)> = by_payload
        .into_iter()
        .map(|(name, (outcome, mut own))| {
            own.sort();
            (percentile(&own, 0.50), format!("{name} ({outcome})"))
        })
        .collect();
    heaviest.sort();
    let heaviest: Vec<String> = heaviest
        .iter()
        .rev()
        .take(4)
        .map(|(own, name)| format!("{name} {}", us(*own)))
        .collect();
    vec![
        format!(
            "CPU per event, {} payloads ({events_per_pass} events) × {} passes, the handler's own CPU (thread CPU less the CPU inside whole remote calls: serialize, sign, send, wait, parse): p50 {}, p99 {} (target p99 ≤ {}): {}",
            corpus.len(),
            CPU_PASSES - 1,
            us(percentile(&own, 0.50)),
            us(own_p99),
            ms(CPU_TARGET),
            verdict(own_p99, CPU_TARGET),
        ),
        format!(
            "  stricter, thread CPU less only the CPU while requests were transmitted and answered (SDK read_before_transmit → read_after_transmit; store HTTP exchanges): p50 {}, p99 {} (same target): {}",
            us(percentile(&own_strict, 0.50)),
            us(strict_p99),
            verdict(strict_p99, CPU_TARGET),
        ),
        format!(
            "  thread CPU, everything included: p50 {}, p99 {}; of all of it user {:.0} %, system {:.0} % (getrusage); mean per event user {}, system {}",
            us(percentile(&samples, 0.50)),
            us(percentile(&samples, 0.99)),
            100.0 * user.as_secs_f64() / (user + system).as_secs_f64().max(1e-9),
            100.0 * system.as_secs_f64() / (user + system).as_secs_f64().max(1e-9),
            us(user / measured),
            us(system / measured),
        ),
        format!(
            "  the payloads with the most own CPU (median over the passes): {}",
            heaviest.join(", ")
        ),
        format!(
            "  remote calls: {:.1} per event (SDK calls and store requests); waiting on them p50 {}, p99 {}; spans without a CPU figure (ended on another thread): {unknown_spans}",
            calls_total as f64 / f64::from(measured),
            ms(percentile(&wait, 0.50)),
            ms(percentile(&wait, 0.99)),
        ),
        format!("  incident memory on: {seeded} incidents in the state store's snapshot, every event's history looked up and its incident recorded"),
        "  own CPU counts: normalize, enrich, plan, decide, the fixes' logic, audit record (JSON, SHA-256), notifications; a remote call, SDK or store alike, runs from the moment the client is handed it (building and signing the request) to its parsed answer; no log subscriber is installed (the function logs one JSON line per event)".into(),
        format!(
            "  the first pass (approvals and incident memory cold load, first connections; excluded): up to {:.0} µs thread CPU per event",
            first_pass_max.as_secs_f64() * 1e6
        ),
        format!(
            "  wall time per event against moto: p50 {}, p99 {}",
            ms(percentile(&wall, 0.50)),
            ms(percentile(&wall, 0.99)),
        ),
        format!("  outcomes per pass: {}", outcomes.join(", ")),
    ]
}

/// The bench's parts, each selectable by a filter argument
/// (`cargo bench --bench handler -- warm`); no filter runs all.
const PARTS: [&str; 3] = ["cold-start", "warm-memory", "cpu"];

fn main() {
    // `cargo bench` passes `--bench`; any other argument selects the parts whose name holds it.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let selected = |part: &str| filters.is_empty() || filters.iter().any(|f| part.contains(f));
    if !PARTS.iter().any(|p| selected(p)) {
        println!(
            "handler benchmark: no part matches {filters:?}; the parts are {}",
            PARTS.join(", ")
        );
        return;
    }
    let Some((endpoint, runtime)) = moto::bench_start("the handler benchmark") else {
        return;
    };
    let setup = match runtime.block_on(Setup::new(endpoint)) {
        Ok(s) => s,
        Err(e) => {
            println!("handler benchmark: setup on moto failed: {e}");
            std::process::exit(1);
        }
    };
    let mut report = Vec::new();
    if selected("cold-start") {
        report.extend(cold_start_corpus(&runtime, &setup));
        report.extend(cold_start(&runtime, &setup));
    }
    if selected("warm-memory") {
        report.extend(warm_instance_memory(&runtime, &setup));
    }
    if selected("cpu") {
        report.extend(cpu_per_event(&setup));
    }
    println!(
        "\nAlert handler (escher-alert against moto; the processes run {}):",
        alert_binary().display()
    );
    for line in report {
        println!("  {line}");
    }
}
