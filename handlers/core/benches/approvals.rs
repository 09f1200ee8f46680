//! How fast a handler decides, and how cheaply it loads the approvals on a cold start.
//!
//! - `decide` warm (index in memory) with 10, 1 000 and 100 000 approvals: criterion's
//!   estimate, then p50/p99 over single calls. Target: p99 ≤ 100 µs at 100 000.
//! - Cold load from moto S3 (the URI in `ESCHER_TEST_S3_URI`, set by `make bench`, which
//!   starts the emulators): wall time and requests made. Target: ≤ 2 GETs for the index data
//!   plus the manifest.
//!
//! The approvals are shaped like a large real store: an MSP-style estate of up to 1 000
//! accounts with ~100 approvals each (every one scoped to its account; half also to a
//! region, half to a resource type, some to resource globs or tags; a few expired or
//! revoked), plus the setup wizard's account-wide defaults. Events are drawn from the same
//! accounts, regions and resource types.

use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use criterion::Criterion;
use escher_core::approvals::{
    Action, Approval, ApprovalIndex, ApprovalStore, ApprovalsReader, Change, Conditions,
    NothingUsedYet, Scope, TagSelector, WizardDefaults,
};
use escher_core::{CloudProvider, UnifiedEvent};
use escher_test_support::figures::{percentile, Rng};

// Same allocator as every Escher binary (see the workspace Cargo.toml).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const REGIONS: [&str; 8] = [
    "us-east-1",
    "us-west-2",
    "eu-west-1",
    "eu-central-1",
    "ap-southeast-1",
    "ap-northeast-1",
    "sa-east-1",
    "ca-central-1",
];
const KINDS: [(&str, Action); 4] = [
    ("s3_bucket", Action::MakeBucketPrivate),
    ("security_group", Action::RevokeOpenIngress),
    ("ec2_instance", Action::StopIdleInstance),
    ("ebs_volume", Action::EncryptVolume),
];

fn at(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
        + chrono::Duration::days(day.into())
}

fn account(i: usize) -> String {
    format!("{:012}", 100_000_000_000u64 + i as u64)
}

fn approvals(count: usize) -> Vec<Approval> {
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let accounts = (count / 100).max(1);
    let mut out: Vec<Approval> = WizardDefaults::built_in()
        .choices
        .iter()
        .filter(|c| c.enabled)
        .map(|c| c.to_approval("wizard", at(0)))
        .collect();
    while out.len() < count {
        let (kind, action) = KINDS[rng.below(KINDS.len())];
        let mut scope = Scope {
            clouds: vec![CloudProvider::Aws],
            account_ids: vec![account(rng.below(accounts))],
            ..Scope::default()
        };
        if rng.chance(50) {
            scope.regions = vec![REGIONS[rng.below(REGIONS.len())].into()];
        }
        if rng.chance(50) {
            scope.resource_types = vec![kind.into()];
        }
        if rng.chance(20) {
            scope.resources = vec![format!("team-{}-*", rng.below(20))];
        }
        if rng.chance(20) {
            scope.tags = vec![TagSelector {
                key: "environment".into(),
                value: Some("dev".into()),
            }];
        }
        let day = rng.below(300) as u32;
        out.push(Approval {
            id: format!("apr-{:06}", out.len()),
            action,
            scope,
            conditions: Conditions {
                max_resources_per_day: rng.chance(30).then_some(10),
                ..Conditions::default()
            },
            approved_by: "ops".into(),
            approved_at: at(day),
            expires_at: rng.chance(10).then(|| at(day + 30)),
            reason: "generated for the benchmark".into(),
            revoked_at: rng.chance(5).then(|| at(day + 1)),
            revoked_by: None,
            revoke_reason: None,
        });
    }
    out.truncate(count);
    out
}

fn events(approval_count: usize, n: usize) -> Vec<(UnifiedEvent, Action)> {
    let mut rng = Rng(0xfeed_5678_1234_9abc);
    let accounts = (approval_count / 100).max(1);
    (0..n)
        .map(|i| {
            let (kind, action) = KINDS[rng.below(KINDS.len())];
            let event: UnifiedEvent = serde_json::from_value(serde_json::json!({
                "event_id": format!("aws-{i:032x}"),
                "event_type": "bucket_public", "severity": "HIGH", "cloud_provider": "aws",
                "account_id": account(rng.below(accounts)),
                "region": REGIONS[rng.below(REGIONS.len())],
                "resource": {"type": kind, "id": format!("team-{}-{i}", rng.below(20)),
                    "name": format!("team-{}-{i}", rng.below(20)),
                    "tags": {"environment": if rng.chance(50) { "dev" } else { "production" }},
                    "metadata": {}},
                "context": {}, "timestamp": "2026-11-02T08:00:00Z",
                "source": "aws.cloudtrail", "raw_event": {}, "schema_version": "1"
            }))
            .unwrap_or_else(|e| panic!("benchmark event: {e}"));
            (event, action)
        })
        .collect()
}

fn decide_warm(c: &mut Criterion) -> Vec<String> {
    let now = at(320);
    let mut report = Vec::new();
    for count in [10usize, 1_000, 100_000] {
        let build_started = Instant::now();
        let index = ApprovalIndex::build(approvals(count)).unwrap_or_else(|e| panic!("build: {e}"));
        let build = build_started.elapsed();
        let sample = events(count, 2_000);
        let mut group = c.benchmark_group("approvals");
        let mut i = 0usize;
        group.bench_function(format!("decide/{count}"), |b| {
            b.iter(|| {
                let (event, action) = &sample[i % sample.len()];
                i += 1;
                black_box(index.decide(event, *action, now, &NothingUsedYet))
            })
        });
        group.finish();
        // p50/p99 over single calls, after a warm-up pass.
        for (event, action) in &sample {
            black_box(index.decide(event, *action, now, &NothingUsedYet).ok());
        }
        let mut times = Vec::with_capacity(sample.len() * 5);
        let mut candidates = 0usize;
        for _ in 0..5 {
            for (event, action) in &sample {
                let started = Instant::now();
                let decision = index.decide(event, *action, now, &NothingUsedYet);
                times.push(started.elapsed());
                candidates += decision
                    .map(|d| d.explanation().candidates.len())
                    .unwrap_or(0);
            }
        }
        times.sort();
        report.push(format!(
            "decide warm, {count:>7} approvals: p50 {:>7.1} µs, p99 {:>7.1} µs (target p99 ≤ 100 µs); {:.1} candidates listed per decision; index built in {:.2} s",
            percentile(&times, 0.50).as_secs_f64() * 1e6,
            percentile(&times, 0.99).as_secs_f64() * 1e6,
            candidates as f64 / times.len() as f64,
            build.as_secs_f64(),
        ));
    }
    report
}

fn cold_load() -> Vec<String> {
    let Ok(base) = std::env::var("ESCHER_TEST_S3_URI") else {
        return vec![
            "NOTICE: ESCHER_TEST_S3_URI not set; cold load from moto S3 runs under `make bench`"
                .into(),
        ];
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return vec![format!("cannot start a runtime: {e}")],
    };
    let mut report = Vec::new();
    for count in [1_000usize, 100_000] {
        let (path, query) = base.split_once('?').unwrap_or((&base, ""));
        let uri = format!(
            "{path}/bench-{count}-{}-{}?{query}",
            std::process::id(),
            Utc::now().timestamp_nanos_opt().unwrap_or_default()
        );
        let line = runtime.block_on(async {
            let writer = ApprovalStore::open(&uri).map_err(|e| e.to_string())?;
            let published = writer
                .apply(&Change::Init { approvals: approvals(count) }, "bench")
                .await
                .map_err(|e| e.to_string())?;
            // A fresh store and reader: what a handler's cold start does.
            let store = ApprovalStore::open(&uri).map_err(|e| e.to_string())?;
            let reader = ApprovalsReader::new(store, Duration::from_secs(60));
            let (event, action) = &events(count, 1)[0];
            let started = Instant::now();
            reader
                .decide(event, *action, at(320), &NothingUsedYet)
                .await
                .map_err(|e| e.to_string())?;
            let elapsed = started.elapsed();
            let counts = reader.store().request_counts();
            let gets = counts.gets.load(std::sync::atomic::Ordering::Relaxed);
            let heads = counts.heads.load(std::sync::atomic::Ordering::Relaxed);
            Ok::<String, String>(format!(
                "cold load from moto S3, {count:>7} approvals ({:.1} MB index): {:.0} ms to the first decision, {gets} GET ({} for index data, 1 manifest) + {heads} HEAD (target ≤ 2 GETs for index data plus the manifest)",
                published.manifest.size as f64 / 1e6,
                elapsed.as_secs_f64() * 1e3,
                gets.saturating_sub(1),
            ))
        });
        report.push(line.unwrap_or_else(|e| format!("cold load, {count} approvals: failed: {e}")));
    }
    report
}

fn main() {
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let mut report = decide_warm(&mut criterion);
    report.extend(cold_load());
    criterion.final_summary();
    println!("\nApprovals:");
    for line in report {
        println!("  {line}");
    }
}
