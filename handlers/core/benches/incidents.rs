//! What the incident memory costs a handler, at 100 000 incidents (a busy estate's year):
//!
//! - the look-up every event makes (same resource and event type in 30 days, the latest of
//!   them, the principal elsewhere) over a snapshot and 200 pending incidents: criterion's
//!   estimate, then p50/p99 over single calls. Target: p99 ≤ 100 µs.
//! - a cold reader's load of the snapshot: its size, and the time to open it from the packed
//!   bytes (the GET itself is the store's).
//! - a compaction's fold of 256 pending incidents into the snapshot.
//!
//! The incidents are shaped like a real estate's: 5 000 resources in 50 accounts, a few
//! resources and principals far more often involved than the rest.

use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use criterion::Criterion;
use escher_core::approvals::Action;
use escher_core::incidents::{Incident, IncidentIndex, IncidentMemory};
use escher_core::pipeline::audit::Outcome;
use escher_core::{CloudProvider, EventType, Severity, UnifiedEvent};
use escher_test_support::figures::{percentile, Rng};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const INCIDENTS: usize = 100_000;
const PENDING: usize = 200;

const TYPES: [(EventType, &str, Action); 3] = [
    (
        EventType::BucketPublic,
        "s3_bucket",
        Action::MakeBucketPrivate,
    ),
    (
        EventType::FirewallOpen,
        "security_group",
        Action::RevokeOpenIngress,
    ),
    (
        EventType::InstanceIdle,
        "ec2_instance",
        Action::StopIdleInstance,
    ),
];

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 2, 0, 0)
        .single()
        .expect("time")
}

fn incident(rng: &mut Rng, n: usize) -> Incident {
    let resource = rng.skewed(5_000);
    let (event_type, kind, action) = TYPES[resource % TYPES.len()];
    let account = format!("{:012}", 100_000_000_000u64 + (resource % 50) as u64);
    Incident {
        event_id: format!("aws-bench-{n}"),
        handled_at: now() - chrono::Duration::minutes((rng.next_u64() % (365 * 24 * 60)) as i64),
        cloud: CloudProvider::Aws,
        account_id: account.clone(),
        region: "eu-west-1".into(),
        resource_type: kind.into(),
        resource_id: format!("arn:aws:{kind}:eu-west-1:{account}:r-{resource}"),
        resource_name: format!("r-{resource}"),
        event_type,
        severity: Severity::High,
        principal: Some(format!("arn:aws:iam::{account}:user/p{}", rng.skewed(400))),
        action: Some(action),
        outcome: if rng.next_u64().is_multiple_of(4) {
            Outcome::ApprovalRequired
        } else {
            Outcome::Remediated
        },
        summary: format!("{action} on r-{resource}"),
        handled_in_ms: Some(40 + rng.next_u64() % 2000),
        audit_path: format!("audit/bench/{n}.json"),
    }
}

fn event_for(i: &Incident) -> UnifiedEvent {
    let mut event: UnifiedEvent = serde_json::from_value(serde_json::json!({
        "event_id": "aws-bench-now",
        "event_type": i.event_type,
        "severity": "HIGH",
        "cloud_provider": "aws",
        "account_id": i.account_id,
        "region": i.region,
        "resource": {"type": i.resource_type, "id": i.resource_id, "name": i.resource_name,
                     "tags": {}, "metadata": {}},
        "context": {},
        "timestamp": now(),
        "source": "aws.cloudtrail",
        "raw_event": {},
        "schema_version": "1"
    }))
    .expect("event");
    if let Some(p) = &i.principal {
        event
            .resource
            .metadata
            .insert("principal_arn".into(), p.clone().into());
    }
    event
}

fn main() {
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let all: Vec<Incident> = (0..INCIDENTS + PENDING)
        .map(|n| incident(&mut rng, n))
        .collect();
    let (snapshot, pending) = all.split_at(INCIDENTS);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let memory = IncidentMemory::new(escher_core::store::open("memory://").expect("store"));
    let built = Instant::now();
    runtime
        .block_on(memory.replace_with(snapshot.to_vec(), &[]))
        .expect("snapshot");
    let build_time = built.elapsed();
    for i in pending {
        runtime.block_on(memory.record(i)).expect("record");
    }
    let view = runtime.block_on(memory.view()).expect("view");
    assert_eq!(view.len(), (INCIDENTS + PENDING) as u64);
    let events: Vec<UnifiedEvent> = all.iter().step_by(97).map(event_for).collect();

    let mut criterion = Criterion::default()
        .configure_from_args()
        .measurement_time(Duration::from_secs(5));
    let mut k = 0usize;
    criterion.bench_function("incident history, 100 000 incidents + 200 pending", |b| {
        b.iter(|| {
            k = (k + 1) % events.len();
            black_box(view.history(&events[k], now()).expect("history"))
        })
    });

    let mut times: Vec<Duration> = Vec::with_capacity(events.len() * 3);
    let mut said = 0usize;
    for _ in 0..3 {
        for event in &events {
            let t = Instant::now();
            let history = view.history(event, now()).expect("history");
            times.push(t.elapsed());
            said += usize::from(history.is_some());
        }
    }
    times.sort();

    let index = IncidentIndex::build(snapshot).expect("build");
    let pack = index.pack().expect("pack");
    let opened = Instant::now();
    let reopened = IncidentIndex::unpack(&pack).expect("unpack");
    let open_time = opened.elapsed();
    assert_eq!(reopened.len(), INCIDENTS as u64);
    let folded = Instant::now();
    let bigger = index.with_added(&all[..256]).expect("fold");
    let fold_time = folded.elapsed();
    assert_eq!(bigger.len(), INCIDENTS as u64 + 256);

    println!("\nIncident memory ({INCIDENTS} incidents in the snapshot, {PENDING} pending):");
    println!(
        "  history look-up: p50 {:.1} µs, p99 {:.1} µs (target p99 ≤ 100 µs) over {} events, {} with something to say",
        percentile(&times, 0.50).as_secs_f64() * 1e6,
        percentile(&times, 0.99).as_secs_f64() * 1e6,
        times.len(),
        said
    );
    println!(
        "  snapshot: {:.1} MB packed, opened in {:.1} ms; built from scratch in {:.2} s; 256 pending folded in {:.0} ms",
        pack.len() as f64 / 1e6,
        open_time.as_secs_f64() * 1e3,
        build_time.as_secs_f64(),
        fold_time.as_secs_f64() * 1e3
    );
}
