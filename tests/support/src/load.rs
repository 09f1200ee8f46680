//! What every cloud's load bench shares (`handlers/{aws,azure,gcp}/benches/load.rs`): 1,000
//! distinct alerts (`ESCHER_LOAD_ALERTS` to change it), each delivered three times, in a
//! reproducible shuffle with 16 deliveries in flight, through one warm pipeline; a delivery
//! answered "retry" is delivered again, as the trigger would. Then the verdict a user relies
//! on, from the audit trail ([`audit_tally!`](crate::audit_tally)) and the resources
//! themselves: exactly one fix per alert, the other deliveries recorded as duplicates,
//! nothing lost, no fix twice, no fix unaudited, `audit verify` clean.
//!
//! A bench brings its cloud's alerts, how one delivery is handled, how to tell a resource
//! still in the state its alert reported, and the CPU it measured around [`deliver`].
//!
//! The nightly scan of a large estate (about 3,000 resources) is every cloud's too: its
//! checks' findings counted as the checks report them ([`count_reported`]), held to the
//! estate's ([`reported_once`]), and printed alike ([`LargeScan`]).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};

use crate::fault_suite::{AuditTally, REMEDIATED};
use crate::figures::Rng;

pub const DELIVERIES_PER_ALERT: usize = 3;
pub const IN_FLIGHT: usize = 16;
/// Redeliveries of one delivery answered "retry" before the bench gives up on it (Lambda
/// tries an asynchronous event three times in all; Event Grid and Pub/Sub keep trying).
pub const MAX_REDELIVERIES: usize = 5;
/// The wait before the first redelivery, doubled before each next one. The clouds wait
/// seconds to minutes (Lambda a minute, Event Grid 10 s, Pub/Sub's push backoff 10 s at
/// first); a bench cannot, but a copy answered "retry" because another copy holds the
/// claim must not be spent before that copy can finish, as it would be with no wait at all.
pub const FIRST_REDELIVERY_AFTER: Duration = Duration::from_millis(25);
const DEFAULT_ALERTS: usize = 1_000;
const DUPLICATE: &str = "duplicate";

/// How many alerts: `ESCHER_LOAD_ALERTS`, else 1,000.
pub fn alerts() -> usize {
    std::env::var("ESCHER_LOAD_ALERTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_ALERTS)
}

/// One alert: the name its audit records give the resource, and its payload as the
/// trigger delivers it (every delivery the same bytes, as a redelivery is).
pub struct Alert {
    pub resource: String,
    pub payload: Arc<[u8]>,
}

/// How the deliveries went.
#[derive(Debug)]
pub struct Delivered {
    pub total: usize,
    pub wall: Duration,
    /// Deliveries made again after a "retry" answer.
    pub redelivered: usize,
    /// Deliveries still answered "retry" after [`MAX_REDELIVERIES`].
    pub failed: Vec<String>,
}

/// Every alert's deliveries in one shuffled order: copies of one alert are sometimes in
/// flight together and sometimes far apart.
pub fn shuffled(alerts: &[Alert]) -> Vec<Arc<[u8]>> {
    let mut deliveries: Vec<Arc<[u8]>> = alerts
        .iter()
        .flat_map(|a| std::iter::repeat_n(Arc::clone(&a.payload), DELIVERIES_PER_ALERT))
        .collect();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for i in (1..deliveries.len()).rev() {
        deliveries.swap(i, rng.below(i + 1));
    }
    deliveries
}

/// Delivers `deliveries` through `handle`, [`IN_FLIGHT`] at a time; an `Err` answer is
/// delivered again, up to [`MAX_REDELIVERIES`] times, after [`FIRST_REDELIVERY_AFTER`]
/// doubled each time.
pub async fn deliver<F, Fut>(deliveries: Vec<Arc<[u8]>>, handle: F) -> Delivered
where
    F: Fn(Arc<[u8]>) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let total = deliveries.len();
    let started = Instant::now();
    let handle = &handle;
    let answers: Vec<(usize, Result<(), String>)> = stream::iter(deliveries)
        .map(|payload| async move {
            let mut retried = 0;
            loop {
                match handle(Arc::clone(&payload)).await {
                    Ok(()) => return (retried, Ok(())),
                    Err(_) if retried < MAX_REDELIVERIES => {
                        tokio::time::sleep(FIRST_REDELIVERY_AFTER * (1u32 << retried)).await;
                        retried += 1;
                    }
                    Err(e) => return (retried, Err(e)),
                }
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    Delivered {
        total,
        wall: started.elapsed(),
        redelivered: answers.iter().map(|(r, _)| r).sum(),
        failed: answers.into_iter().filter_map(|(_, a)| a.err()).collect(),
    }
}

/// How many of `alerts`' resources `is_open` finds still as their alert reported them,
/// asked [`IN_FLIGHT`] at a time.
pub async fn still_open<F, Fut>(alerts: &[Alert], is_open: F) -> Result<usize, String>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<bool, String>>,
{
    let answers: Vec<Result<bool, String>> = stream::iter(alerts)
        .map(|a| is_open(a.resource.clone()))
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let mut open = 0;
    for answer in answers {
        open += usize::from(answer?);
    }
    Ok(open)
}

/// What the bench measured besides the deliveries: its thread's CPU over [`deliver`] and
/// the remote calls the pipeline made.
pub struct Spent {
    pub cpu: Duration,
    pub remote_calls: u64,
}

/// The printed figures, and each promise broken.
pub struct Figures {
    pub lines: Vec<String>,
    pub broken: Vec<String>,
}

impl Figures {
    /// A promise: `what` came out `got`, and must be `want`.
    pub fn expect(&mut self, what: &str, got: usize, want: usize) {
        let ok = got == want;
        self.lines.push(format!(
            "  {what}: {got} (expected {want}) {}",
            if ok { "PASS" } else { "FAIL" }
        ));
        if !ok {
            self.broken.push(format!("{what}: {got}, expected {want}"));
        }
    }
}

/// The verdict on one run: `title` says where the stores and resources were, `open_what`
/// what a resource still open is called (`buckets still public`).
pub fn judge(
    title: &str,
    open_what: &str,
    alerts: &[Alert],
    delivered: &Delivered,
    spent: &Spent,
    tally: &AuditTally,
    open: usize,
) -> Figures {
    let count = alerts.len();
    let total = delivered.total.max(1);
    let fixes = tally.total(REMEDIATED);
    let duplicates = tally.total(DUPLICATE);
    let double_fixes = alerts
        .iter()
        .filter(|a| tally.count(&a.resource, REMEDIATED) > 1)
        .count();
    let unfixed = alerts
        .iter()
        .filter(|a| tally.count(&a.resource, REMEDIATED) == 0)
        .count();
    // A resource fixed with no `remediated` record would be a fix nobody can trace.
    let unaudited = count.saturating_sub(open).saturating_sub(fixes);
    let lines = vec![
        format!(
            "load: {count} alerts × {DELIVERIES_PER_ALERT} deliveries = {}, {IN_FLIGHT} in flight, {title}",
            delivered.total
        ),
        format!(
            "  wall {:.1} s, {:.0} deliveries/s; redelivered after a retry answer: {}",
            delivered.wall.as_secs_f64(),
            delivered.total as f64 / delivered.wall.as_secs_f64().max(f64::EPSILON),
            delivered.redelivered
        ),
        format!(
            "  our CPU per delivery (pipeline, clients, stores; one thread): {:.2} ms ({:.1} s in all), {:.1} remote calls per delivery",
            spent.cpu.as_secs_f64() * 1e3 / total as f64,
            spent.cpu.as_secs_f64(),
            spent.remote_calls as f64 / total as f64
        ),
        format!(
            "  audit records {}: {fixes} remediated, {duplicates} duplicate",
            tally.records()
        ),
    ];
    let mut figures = Figures {
        lines,
        broken: Vec::new(),
    };
    figures.expect("fixes", fixes, count);
    figures.expect(
        "duplicate records",
        duplicates,
        count * (DELIVERIES_PER_ALERT - 1),
    );
    figures.expect("events lost (alert without a fix)", unfixed, 0);
    figures.expect(open_what, open, 0);
    figures.expect("double fixes", double_fixes, 0);
    figures.expect("unaudited fixes", unaudited, 0);
    figures.expect("deliveries that failed for good", delivered.failed.len(), 0);
    figures.expect("days audit verify found unclean", tally.unclean.len(), 0);
    for problem in delivered.failed.iter().take(3) {
        figures.lines.push(format!("    failed: {problem}"));
    }
    for problem in &tally.unclean {
        figures.lines.push(format!("    audit verify: {problem}"));
    }
    figures
}

impl From<Vec<String>> for Figures {
    /// Figures with no promise of their own to break (a measurement that checked what it
    /// measured before it printed).
    fn from(lines: Vec<String>) -> Self {
        Figures {
            lines,
            broken: Vec::new(),
        }
    }
}

/// Prints `bench`'s figures; exits non-zero when a promise was broken or the run could not
/// be made.
pub fn conclude(bench: &str, run: Result<Figures, String>) {
    match run {
        Ok(figures) => {
            for line in &figures.lines {
                println!("{line}");
            }
            if !figures.broken.is_empty() {
                eprintln!("{bench}: FAIL: {}", figures.broken.join("; "));
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("{bench}: could not run: {e}");
            std::process::exit(1);
        }
    }
}

/// Runs every one of `checks`, `concurrency` at a time, counting each finding's key as the
/// checks report it (`run` gives one check's keys): before any merge by key, so a page read
/// twice shows.
pub async fn count_reported<T, F, Fut>(
    checks: Vec<T>,
    concurrency: usize,
    run: F,
) -> Result<BTreeMap<String, usize>, String>
where
    F: Fn(T) -> Fut,
    Fut: Future<Output = Result<Vec<String>, String>>,
{
    let results: Vec<Result<Vec<String>, String>> = stream::iter(checks)
        .map(run)
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut reported = BTreeMap::new();
    for keys in results {
        for key in keys? {
            *reported.entry(key).or_default() += 1;
        }
    }
    Ok(reported)
}

/// `Ok(n)` when `reported` (finding key → times reported) holds each of `expected` exactly
/// once and nothing else; else what was reported twice, missed or unexpected.
pub fn reported_once(
    expected: &BTreeSet<String>,
    reported: &BTreeMap<String, usize>,
) -> Result<usize, String> {
    let twice: Vec<(&String, &usize)> = reported.iter().filter(|(_, n)| **n > 1).collect();
    let found: BTreeSet<&String> = reported.keys().collect();
    let expected: BTreeSet<&String> = expected.iter().collect();
    let missing: Vec<&&String> = expected.difference(&found).collect();
    let unexpected: Vec<&&String> = found.difference(&expected).collect();
    if twice.is_empty() && missing.is_empty() && unexpected.is_empty() {
        return Ok(found.len());
    }
    Err(format!(
        "reported more than once: {twice:?}\nmissing {} findings: {missing:#?}\nunexpected {} findings: {unexpected:#?}",
        missing.len(),
        unexpected.len()
    ))
}

/// A large-estate scan timed: once at concurrency 1 on a current-thread runtime (wall and
/// that thread's CPU), once at the shipped concurrency on a multi-thread runtime (wall).
pub struct TimedScan {
    pub findings: usize,
    pub serial_wall: Duration,
    pub serial_cpu: Duration,
    pub concurrency: usize,
    pub concurrent_wall: Duration,
}

/// Times `scan(concurrency)` (the findings, each held to the estate's) at concurrency 1 on a
/// thread of its own and at `concurrency` on a multi-thread runtime; `thread_cpu` reads the
/// calling thread's CPU time (`escher_runtime::ThreadCpu`). A warm-up pass is not worth its
/// minutes: the first connections are a few among thousands of calls.
pub fn time_scan<F, Fut>(
    scan: F,
    concurrency: usize,
    thread_cpu: impl Fn() -> Duration,
) -> Result<TimedScan, String>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<usize, String>>,
{
    let serial = one_thread()?;
    let (started, cpu) = (Instant::now(), thread_cpu());
    let findings = serial
        .block_on(scan(1))
        .map_err(|e| format!("concurrency 1: {e}"))?;
    let (serial_cpu, serial_wall) = (thread_cpu().saturating_sub(cpu), started.elapsed());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    let started = Instant::now();
    runtime
        .block_on(scan(concurrency))
        .map_err(|e| format!("concurrency {concurrency}: {e}"))?;
    Ok(TimedScan {
        findings,
        serial_wall,
        serial_cpu,
        concurrency,
        concurrent_wall: started.elapsed(),
    })
}

/// One large-estate scan's figures, printed alike on every cloud.
pub struct LargeScan<'a> {
    /// Where the estate lives and how it is listed (`one project on the contract server,
    /// pages of 100`).
    pub estate: &'a str,
    pub resources: usize,
    pub built: Duration,
    pub timed: TimedScan,
}

impl LargeScan<'_> {
    pub fn lines(&self, cloud: &str) -> Vec<String> {
        let secs = |d: Duration| format!("{:.2} s", d.as_secs_f64());
        let t = &self.timed;
        vec![
            format!(
                "{cloud} nightly scan of a large estate ({} resources, {}; {} findings, each reported exactly once; estate built in {}):",
                self.resources,
                self.estate,
                t.findings,
                secs(self.built)
            ),
            format!(
                "  concurrency 1, one thread: wall {}; our CPU {} ({:.0} % of it; {:.2} ms per resource)",
                secs(t.serial_wall),
                secs(t.serial_cpu),
                100.0 * t.serial_cpu.as_secs_f64() / t.serial_wall.as_secs_f64().max(f64::EPSILON),
                1000.0 * t.serial_cpu.as_secs_f64() / self.resources.max(1) as f64
            ),
            format!(
                "  concurrency {} (the shipped scan.concurrency), multi-thread runtime: wall {}",
                t.concurrency,
                secs(t.concurrent_wall)
            ),
        ]
    }
}

/// A current-thread runtime, as a function has: all of the pipeline's CPU is this thread's.
/// Emulators that live in the bench's process go on another runtime ([`beside`]).
pub fn one_thread() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))
}

/// A runtime of its own for the stand-ins that live in the bench's process (their servers
/// spawned from `block_on` on it run on its thread), so their CPU is not counted as ours.
pub fn beside() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the stand-ins' runtime: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(resource: &str) -> Alert {
        Alert {
            resource: resource.into(),
            payload: Arc::from(resource.as_bytes()),
        }
    }

    fn delivered(total: usize) -> Delivered {
        Delivered {
            total,
            wall: Duration::from_secs(1),
            redelivered: 0,
            failed: Vec::new(),
        }
    }

    fn spent() -> Spent {
        Spent {
            cpu: Duration::from_millis(30),
            remote_calls: 60,
        }
    }

    #[test]
    fn every_alert_is_delivered_three_times_in_a_mixed_order() {
        let alerts: Vec<Alert> = (0..50).map(|i| alert(&format!("r{i}"))).collect();
        let deliveries = shuffled(&alerts);
        assert_eq!(deliveries.len(), 150);
        for a in &alerts {
            let copies = deliveries.iter().filter(|d| **d == a.payload).count();
            assert_eq!(copies, DELIVERIES_PER_ALERT, "{}", a.resource);
        }
        let in_order: Vec<Arc<[u8]>> = alerts
            .iter()
            .flat_map(|a| std::iter::repeat_n(Arc::clone(&a.payload), 3))
            .collect();
        assert_ne!(deliveries, in_order);
    }

    #[tokio::test]
    async fn a_delivery_answered_retry_is_made_again_until_it_is_handled_or_given_up() {
        let tries = std::sync::Mutex::new(std::collections::BTreeMap::<Vec<u8>, usize>::new());
        let alerts = [alert("flaky"), alert("broken")];
        let run = deliver(shuffled(&alerts), |payload| {
            let n = {
                let mut tries = tries.lock().unwrap();
                let n = tries.entry(payload.to_vec()).or_default();
                *n += 1;
                *n
            };
            async move {
                match &*payload {
                    b"flaky" if n == 1 => Err("throttled".to_string()),
                    b"flaky" => Ok(()),
                    _ => Err("refused".to_string()),
                }
            }
        })
        .await;
        assert_eq!(run.total, 6);
        // The flaky alert's first delivery once; each of broken's three every time.
        assert_eq!(run.redelivered, 1 + 3 * MAX_REDELIVERIES);
        assert_eq!(run.failed, vec!["refused"; 3]);
    }

    #[test]
    fn one_fix_and_two_duplicates_per_alert_pass_and_anything_else_fails() {
        let alerts = [alert("a"), alert("b")];
        let mut tally = AuditTally::default();
        for a in &alerts {
            tally.add(&a.resource, REMEDIATED);
            tally.add(&a.resource, DUPLICATE);
            tally.add(&a.resource, DUPLICATE);
        }
        let kept = judge("t", "open", &alerts, &delivered(6), &spent(), &tally, 0);
        assert!(kept.broken.is_empty(), "{:?}", kept.broken);
        assert!(
            kept.lines.iter().any(|l| l.contains("5.00 ms")),
            "{:?}",
            kept.lines
        );

        // b fixed twice (one duplicate missing), a resource left open.
        let mut twice = AuditTally::default();
        for outcome in [REMEDIATED, DUPLICATE, DUPLICATE] {
            twice.add("a", outcome);
        }
        for outcome in [REMEDIATED, REMEDIATED, DUPLICATE] {
            twice.add("b", outcome);
        }
        let broken = judge("t", "open", &alerts, &delivered(6), &spent(), &twice, 1).broken;
        assert_eq!(
            broken,
            [
                "fixes: 3, expected 2",
                "duplicate records: 3, expected 4",
                "open: 1, expected 0",
                "double fixes: 1, expected 0"
            ]
        );

        // Nothing recorded for b, b left as it was: lost, not unaudited.
        let mut lost = AuditTally::default();
        for outcome in [REMEDIATED, DUPLICATE, DUPLICATE] {
            lost.add("a", outcome);
        }
        lost.unclean.push("2026-12-05: broken chain".into());
        let broken = judge("t", "open", &alerts, &delivered(6), &spent(), &lost, 1).broken;
        assert!(broken.contains(&"events lost (alert without a fix): 1, expected 0".to_string()));
        assert!(!broken.iter().any(|b| b.starts_with("unaudited")));
        assert!(broken.contains(&"days audit verify found unclean: 1, expected 0".to_string()));
    }

    #[tokio::test]
    async fn findings_are_counted_as_the_checks_report_them_and_held_to_the_estate() {
        let checks = vec![vec!["a", "b"], vec!["b"], vec![]];
        let reported = count_reported(checks, 2, |keys| async move {
            Ok(keys.into_iter().map(String::from).collect())
        })
        .await
        .unwrap();
        assert_eq!(reported.get("b"), Some(&2));
        let expected: BTreeSet<String> = ["a", "b", "c"].map(String::from).into();
        let difference = reported_once(&expected, &reported).unwrap_err();
        assert!(difference.contains("\"b\", 2"), "{difference}");
        assert!(difference.contains("missing 1 findings"), "{difference}");
        let once: BTreeMap<String, usize> = [("a".to_string(), 1), ("b".to_string(), 1)].into();
        let expected: BTreeSet<String> = ["a", "b"].map(String::from).into();
        assert_eq!(reported_once(&expected, &once), Ok(2));
        let failed = count_reported(vec![1], 1, |_| async {
            Err::<Vec<String>, _>("denied".to_string())
        })
        .await;
        assert_eq!(failed, Err("denied".to_string()));
    }

    #[test]
    fn a_resource_fixed_without_a_record_is_an_unaudited_fix() {
        let alerts = [alert("a")];
        let tally = AuditTally::default();
        let broken = judge("t", "open", &alerts, &delivered(3), &spent(), &tally, 0).broken;
        assert!(
            broken.contains(&"unaudited fixes: 1, expected 0".to_string()),
            "{broken:?}"
        );
    }
}
