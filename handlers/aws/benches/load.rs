//! The AWS alert handler under load, against moto (`make bench` starts it): 1,000 distinct
//! public-bucket alerts (`ESCHER_LOAD_ALERTS` to change it), each delivered three times, in a
//! shuffled order with 16 deliveries in flight, through one warm pipeline with its stores on
//! moto S3 and every bucket's fix approved. A delivery answered "retry" is delivered again,
//! as Lambda would.
//!
//! What a user relies on is checked, not assumed: exactly one fix per alert (the audit trail
//! holds one `remediated` record per bucket and two `duplicate`s), nothing lost (every bucket
//! private afterwards), no fix unaudited, and `audit verify` clean. Printed: the throughput,
//! the wall time, and this process's CPU per delivery (the pipeline, the SDK and the store
//! clients: everything but moto), measured on the one thread that runs them all, as a
//! function does. A broken promise prints FAIL and exits non-zero.
//!
//! Without moto the bench prints a notice and measures nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::types::{BucketCannedAcl, Permission, Type};
use chrono::Utc;
use escher_aws::{build_metered_pipeline, load_sdk_config};
use escher_core::approvals::{Action, Approval, ApprovalStore, Change, Conditions, Scope};
use escher_core::pipeline::audit::{AuditLog, Outcome};
use escher_runtime::{HandlerConfig, RemoteCallMeter, ThreadCpu};
use escher_test_support::emulator;
use escher_test_support::fixtures::aws::put_bucket_acl;
use escher_test_support::moto::{self, s3, ACCOUNT};
use escher_test_support::names::unique;
use futures::stream::{self, StreamExt};

// The allocator escher-alert ships with, so the CPU measured here is the function's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const REGION: &str = "eu-west-1";
const DEFAULT_ALERTS: usize = 1_000;
const DELIVERIES_PER_ALERT: usize = 3;
const IN_FLIGHT: usize = 16;
/// Redeliveries of one delivery answered "retry" before the bench gives up on it (Lambda
/// tries an asynchronous event three times in all).
const MAX_REDELIVERIES: usize = 5;

fn sdk_error<E: std::error::Error>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("{what}: {}", aws_sdk_s3::error::DisplayErrorContext(&e))
}

/// A reproducible shuffle (xorshift), so copies of one alert are sometimes in flight
/// together and sometimes far apart.
fn shuffle<T>(items: &mut [T]) {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in (1..items.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        items.swap(i, (state % (i as u64 + 1)) as usize);
    }
}

async fn make_public(client: &aws_sdk_s3::Client, bucket: &str) -> Result<(), String> {
    s3::create_bucket(client, bucket, REGION, Some(BucketCannedAcl::PublicRead)).await
}

async fn is_public(client: &aws_sdk_s3::Client, bucket: &str) -> Result<bool, String> {
    let acl = client
        .get_bucket_acl()
        .bucket(bucket)
        .send()
        .await
        .map_err(sdk_error("GetBucketAcl"))?;
    Ok(acl.grants().iter().any(|g| {
        g.grantee().is_some_and(|who| {
            *who.r#type() == Type::Group
                && who.uri().is_some_and(|u| u.ends_with("/global/AllUsers"))
        }) && g.permission() != Some(&Permission::WriteAcp)
    }))
}

struct Figures {
    lines: Vec<String>,
    broken: Vec<String>,
}

async fn run(endpoint: &str, alerts: usize) -> Result<Figures, String> {
    let sdk = load_sdk_config(Some(REGION), Some(endpoint)).await;
    let client = s3::client(&sdk);
    let stores = unique("escher-load-stores");
    s3::create_bucket(&client, &stores, REGION, None).await?;
    let uri = |prefix: &str| moto::store_uri(endpoint, REGION, &stores, prefix);
    let approval = Approval {
        id: "apr-load".into(),
        action: Action::MakeBucketPrivate,
        scope: Scope::default(),
        conditions: Conditions::default(),
        approved_by: "load bench".into(),
        approved_at: Utc::now() - chrono::Duration::minutes(5),
        expires_at: None,
        reason: "every public bucket is made private".into(),
        revoked_at: None,
        revoked_by: None,
        revoke_reason: None,
    };
    ApprovalStore::open(&uri("approvals"))
        .map_err(|e| e.to_string())?
        .apply(
            &Change::Init {
                approvals: vec![approval],
            },
            "load bench",
        )
        .await
        .map_err(|e| e.to_string())?;

    let run_id = unique("load");
    let buckets: Vec<String> = (0..alerts).map(|i| format!("{run_id}-{i}")).collect();
    let made: Vec<Result<(), String>> = stream::iter(&buckets)
        .map(|b| make_public(&client, b))
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    made.into_iter().collect::<Result<Vec<()>, String>>()?;

    let env: BTreeMap<&str, String> = [
        ("ESCHER_STATE_URI", uri("state")),
        ("ESCHER_AUDIT_URI", uri("audit")),
        ("ESCHER_APPROVALS_URI", uri("approvals")),
    ]
    .into_iter()
    .collect();
    let config =
        HandlerConfig::from_lookup(|name| env.get(name).cloned()).map_err(|e| e.to_string())?;
    let meter = RemoteCallMeter::new();
    let pipeline =
        Arc::new(build_metered_pipeline(&config, &sdk, &meter).map_err(|e| e.to_string())?);

    let mut deliveries: Vec<Vec<u8>> = Vec::with_capacity(alerts * DELIVERIES_PER_ALERT);
    for bucket in &buckets {
        let payload = put_bucket_acl(bucket, ACCOUNT, REGION)
            .to_string()
            .into_bytes();
        for _ in 0..DELIVERIES_PER_ALERT {
            deliveries.push(payload.clone());
        }
    }
    shuffle(&mut deliveries);
    let total = deliveries.len();

    let (started, cpu_before, calls_before) = (Instant::now(), ThreadCpu::now(), meter.snapshot());
    let answers: Vec<(usize, Result<(), String>)> = stream::iter(deliveries)
        .map(|payload| {
            let pipeline = Arc::clone(&pipeline);
            async move {
                let mut retried = 0;
                loop {
                    match pipeline.handle(&payload).await {
                        Ok(_) => return (retried, Ok(())),
                        // Every pipeline error asks for a redelivery.
                        Err(_) if retried < MAX_REDELIVERIES => retried += 1,
                        Err(e) => return (retried, Err(e.to_string())),
                    }
                }
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let wall = started.elapsed();
    let cpu = ThreadCpu::now().since(&cpu_before);
    let calls = meter.snapshot().since(&calls_before);
    let redelivered: usize = answers.iter().map(|(r, _)| r).sum();
    let failed: Vec<&String> = answers
        .iter()
        .filter_map(|(_, a)| a.as_ref().err())
        .collect();

    // What the audit trail says happened, per bucket.
    let audit = escher_core::store::open(&uri("audit")).map_err(|e| e.to_string())?;
    let log = AuditLog::new(audit, uri("audit"));
    let mut per_bucket: BTreeMap<String, BTreeMap<&'static str, usize>> = BTreeMap::new();
    let mut unclean = Vec::new();
    for day in log.days().await.map_err(|e| e.to_string())? {
        for record in log.records(day).await.map_err(|e| e.to_string())? {
            let bucket = record
                .event
                .as_ref()
                .map(|e| e.resource.name.clone())
                .unwrap_or_default();
            *per_bucket
                .entry(bucket)
                .or_default()
                .entry(record.outcome.as_str())
                .or_default() += 1;
        }
        let verified = log.verify_day(day).await.map_err(|e| e.to_string())?;
        if !verified.is_clean() {
            unclean.push(format!("{day}: {verified:?}"));
        }
    }
    let count = |outcome: Outcome| -> usize {
        per_bucket
            .values()
            .map(|o| o.get(outcome.as_str()).copied().unwrap_or(0))
            .sum()
    };
    let (fixes, duplicates) = (count(Outcome::Remediated), count(Outcome::Duplicate));
    let records: usize = per_bucket.values().flat_map(|o| o.values()).sum();
    let double_fixes = per_bucket
        .values()
        .filter(|o| o.get(Outcome::Remediated.as_str()).copied().unwrap_or(0) > 1)
        .count();
    let still_public: Vec<Result<bool, String>> = stream::iter(&buckets)
        .map(|b| is_public(&client, b))
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let still_public = still_public
        .into_iter()
        .collect::<Result<Vec<bool>, String>>()?
        .into_iter()
        .filter(|p| *p)
        .count();
    let unfixed_alerts = buckets
        .iter()
        .filter(|b| {
            per_bucket
                .get(*b)
                .and_then(|o| o.get(Outcome::Remediated.as_str()))
                .is_none()
        })
        .count();
    // A bucket made private with no `remediated` record would be a fix nobody can trace.
    let unaudited = alerts.saturating_sub(still_public).saturating_sub(fixes);

    let per_delivery = |d: Duration| d / total.max(1) as u32;
    let mut lines = vec![
        format!(
            "load: {alerts} alerts × {DELIVERIES_PER_ALERT} deliveries = {total}, {IN_FLIGHT} in flight, stores and buckets on moto"
        ),
        format!(
            "  wall {:.1} s, {:.0} deliveries/s; redelivered after a retry answer: {redelivered}",
            wall.as_secs_f64(),
            total as f64 / wall.as_secs_f64().max(f64::EPSILON)
        ),
        format!(
            "  our CPU per delivery (pipeline, SDK, store clients; one thread): {:.2} ms ({:.1} s in all), {:.1} remote calls per delivery",
            per_delivery(cpu.total).as_secs_f64() * 1e3,
            cpu.total.as_secs_f64(),
            calls.calls() as f64 / total.max(1) as f64
        ),
        format!("  audit records {records}: {fixes} remediated, {duplicates} duplicate"),
    ];
    let mut broken = Vec::new();
    let mut expect = |what: &str, got: usize, want: usize| {
        let ok = got == want;
        lines.push(format!(
            "  {what}: {got} (expected {want}) {}",
            if ok { "PASS" } else { "FAIL" }
        ));
        if !ok {
            broken.push(format!("{what}: {got}, expected {want}"));
        }
    };
    expect("fixes", fixes, alerts);
    expect(
        "duplicate records",
        duplicates,
        alerts * (DELIVERIES_PER_ALERT - 1),
    );
    expect("events lost (alert without a fix)", unfixed_alerts, 0);
    expect("buckets still public", still_public, 0);
    expect("double fixes", double_fixes, 0);
    expect("unaudited fixes", unaudited, 0);
    expect("deliveries that failed for good", failed.len(), 0);
    expect("days audit verify found unclean", unclean.len(), 0);
    for problem in failed.iter().take(3) {
        lines.push(format!("    failed: {problem}"));
    }
    for problem in &unclean {
        lines.push(format!("    audit verify: {problem}"));
    }
    Ok(Figures { lines, broken })
}

fn main() {
    let Some(endpoint) = moto::endpoint("the load bench") else {
        return;
    };
    let alerts = std::env::var("ESCHER_LOAD_ALERTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_ALERTS);
    // One thread, as a function has: all of our CPU is this thread's.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            emulator::notice(&format!("the load bench: cannot start a runtime: {e}"));
            return;
        }
    };
    match runtime.block_on(run(&endpoint, alerts)) {
        Ok(figures) => {
            for line in &figures.lines {
                println!("{line}");
            }
            if !figures.broken.is_empty() {
                eprintln!("load: FAIL: {}", figures.broken.join("; "));
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("load: could not run: {e}");
            std::process::exit(1);
        }
    }
}
