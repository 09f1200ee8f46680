//! What the nightly scan costs, against moto (`ESCHER_TEST_AWS_ENDPOINT`, set by `make
//! bench`, which starts the emulators): every regional AWS check (the cost summary reads billing data, not the estate) over the 304-resource estate of
//! `escher_test_support::estate` in two regions, pages of 5, built once per bench run.
//!
//! - Our CPU vs waiting on the API: the scan at concurrency 1 on a current-thread runtime,
//!   so every task (checks, SDK, HTTP connections) runs on one thread; its CPU time
//!   (`CLOCK_THREAD_CPUTIME_ID`) is ours, and wall − CPU is the time spent waiting for
//!   moto's answers (moto's own work included: it runs on the same 2 cores).
//! - The wall time at the shipped concurrency (`scan.concurrency` in `policies/report.yaml`)
//!   on a multi-thread runtime, as the function runs it.
//!
//! A warm-up pass (first connections) is excluded; p50 over the passes after it. Every pass
//! must report exactly the estate's findings, or the bench says so instead of a figure.
//!
//! Then the same estate ten times over (about 3,000 resources, `ESCHER_BENCH_LARGE_ESTATE=0`
//! skips it), scanned with the checks' own page size: every finding reported exactly once
//! by the checks themselves (counted before the scan's merge by key could hide a page read
//! twice), with the wall time and our CPU of one pass on one thread and of one pass at the
//! shipped concurrency.
//! Without moto the bench prints a notice and measures nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use escher_aws::{AwsClients, AwsScan};
use escher_core::scan::{
    run_scan, CheckScope, ReportSettings, ScanCheck, ScanContext, ScanThresholds,
};
use escher_test_support::estate::{Estate, REGIONS};
use escher_test_support::load::{self, LargeScan};
use escher_test_support::moto;

const PASSES: usize = 5;

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// The regional checks: the account-wide cost summary reads billing data (one call a
/// night), not the estate, and the estate's account has none in moto.
fn checks(estate: &Estate) -> Vec<Arc<dyn ScanCheck>> {
    AwsScan::new(AwsClients::new(&estate.sdk), estate.account.clone())
        .with_page_size(5)
        .checks()
        .into_iter()
        .filter(|c| c.scope() == CheckScope::Region)
        .collect()
}

/// The large estate's size, as a multiple of the estate.
const LARGE_SCALE: usize = 10;

fn regions() -> Vec<String> {
    REGIONS.map(String::from).to_vec()
}

/// One scan; the snapshot age rule at 0 days, as in the estate test (moto cannot back-date).
async fn scan(
    checks: &[Arc<dyn ScanCheck>],
    concurrency: usize,
    estate: &Estate,
) -> Result<(), String> {
    let context = ScanContext::new(ScanThresholds {
        snapshot_age_days: 0,
        ..ScanThresholds::default()
    });
    let outcome = run_scan(checks, &regions(), concurrency, &context).await;
    if let Some(failure) = outcome.failures.first() {
        return Err(format!(
            "{} in {} failed: {}",
            failure.check, failure.region, failure.error
        ));
    }
    if outcome.findings.len() != estate.expected.len() {
        return Err(format!(
            "{} findings instead of the estate's {}",
            outcome.findings.len(),
            estate.expected.len()
        ));
    }
    Ok(())
}

/// Concurrency 1 on one thread: (wall, CPU) per pass.
fn serial(estate: &Estate) -> Result<Vec<(Duration, Duration)>, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    // Clients of this runtime's own, so their connections' work runs on this thread.
    let checks = runtime.block_on(async { checks(estate) });
    let mut passes = Vec::new();
    for pass in 0..=PASSES {
        let started = Instant::now();
        let cpu = escher_runtime::ThreadCpu::now();
        runtime
            .block_on(scan(&checks, 1, estate))
            .map_err(|e| format!("pass {pass}: {e}"))?;
        let (cpu, wall) = (
            escher_runtime::ThreadCpu::now().since(&cpu).total,
            started.elapsed(),
        );
        if pass > 0 {
            passes.push((wall, cpu));
        }
    }
    Ok(passes)
}

/// The shipped concurrency on a multi-thread runtime: wall per pass.
fn concurrent(
    runtime: &tokio::runtime::Runtime,
    estate: &Estate,
    concurrency: usize,
) -> Result<Vec<Duration>, String> {
    let checks = runtime.block_on(async { checks(estate) });
    let mut passes = Vec::new();
    for pass in 0..=PASSES {
        let started = Instant::now();
        runtime
            .block_on(scan(&checks, concurrency, estate))
            .map_err(|e| format!("pass {pass}: {e}"))?;
        if pass > 0 {
            passes.push(started.elapsed());
        }
    }
    Ok(passes)
}

/// Every regional check in every region, `concurrency` at a time, with the checks' own page
/// size: each finding's key counted as the checks report it, then compared with the
/// estate's, so a finding reported twice or missed is an error, not a figure.
async fn findings_once(estate: &Estate, concurrency: usize) -> Result<usize, String> {
    let checks: Vec<Arc<dyn ScanCheck>> =
        AwsScan::new(AwsClients::new(&estate.sdk), estate.account.clone())
            .checks()
            .into_iter()
            .filter(|c| c.scope() == CheckScope::Region)
            .collect();
    let context = ScanContext::new(ScanThresholds {
        snapshot_age_days: 0,
        ..ScanThresholds::default()
    });
    let pairs: Vec<(Arc<dyn ScanCheck>, &str)> = REGIONS
        .iter()
        .flat_map(|region| checks.iter().map(move |c| (Arc::clone(c), *region)))
        .collect();
    let reported = load::count_reported(pairs, concurrency, |(check, region)| {
        let context = context.clone();
        async move {
            let findings = check
                .run(region, &context)
                .await
                .map_err(|e| format!("{} in {region} failed: {e}", check.id()))?;
            Ok(findings.into_iter().map(|f| f.key).collect())
        }
    })
    .await?;
    estate.check_reported(&reported)
}

/// The large estate, built on `runtime`: one pass on one thread at concurrency 1 (wall, our
/// CPU), one at the shipped concurrency on a multi-thread runtime (wall).
fn large_estate(
    runtime: &tokio::runtime::Runtime,
    endpoint: &str,
    concurrency: usize,
) -> Result<(), String> {
    let building = Instant::now();
    let estate = runtime
        .block_on(Estate::build_scaled(endpoint, LARGE_SCALE))
        .map_err(|e| format!("building the large estate on moto failed: {e}"))?;
    let built = building.elapsed();
    let timed = load::time_scan(
        |concurrency| findings_once(&estate, concurrency),
        concurrency,
        || escher_runtime::ThreadCpu::now().total,
    )?;
    let estate_where = format!(
        "in {}, against moto, the checks' own page size",
        REGIONS.join(" and ")
    );
    let figures = LargeScan {
        estate: &estate_where,
        resources: estate.resources,
        built,
        timed,
    };
    println!();
    for line in figures.lines("AWS") {
        println!("{line}");
    }
    Ok(())
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument selects nothing here.
    let Some((endpoint, runtime)) = moto::bench_start("the scan benchmark") else {
        return;
    };
    let building = Instant::now();
    let estate = match runtime.block_on(Estate::build(&endpoint)) {
        Ok(estate) => estate,
        Err(e) => {
            println!("scan benchmark: building the estate on moto failed: {e}");
            std::process::exit(1);
        }
    };
    let built = building.elapsed();
    let concurrency = ReportSettings::built_in().scan.concurrency;
    let serial = match serial(&estate) {
        Ok(p) => p,
        Err(e) => {
            println!("scan benchmark, concurrency 1: {e}");
            std::process::exit(1);
        }
    };
    let concurrent = match concurrent(&runtime, &estate, concurrency) {
        Ok(p) => p,
        Err(e) => {
            println!("scan benchmark, concurrency {concurrency}: {e}");
            std::process::exit(1);
        }
    };
    let wall = median(serial.iter().map(|(w, _)| *w).collect());
    let cpu = median(serial.iter().map(|(_, c)| *c).collect());
    let waiting = median(serial.iter().map(|(w, c)| w.saturating_sub(*c)).collect());
    println!(
        "\nNightly scan (every regional AWS check, {} resources in {}, pages of 5, {} findings; against moto; p50 of {PASSES} passes after a warm-up; estate built in {}):",
        estate.resources,
        REGIONS.join(" and "),
        estate.expected.len(),
        secs(built),
    );
    println!(
        "  concurrency 1, one thread: wall {}; our CPU {} ({:.0} % of it); waiting on the API {}",
        secs(wall),
        secs(cpu),
        100.0 * cpu.as_secs_f64() / wall.as_secs_f64().max(f64::EPSILON),
        secs(waiting),
    );
    println!("  counted as ours: the checks' logic, findings, and in-process work for every call (request building, SigV4 signing, HTTP, parsing the answers); no log subscriber is installed");
    println!(
        "  concurrency {concurrency} (the shipped scan.concurrency), multi-thread runtime: wall {} (min {}, max {})",
        secs(median(concurrent.clone())),
        secs(concurrent.iter().copied().min().unwrap_or_default()),
        secs(concurrent.iter().copied().max().unwrap_or_default()),
    );
    if std::env::var("ESCHER_BENCH_LARGE_ESTATE").as_deref() == Ok("0") {
        println!("\nThe large estate is skipped (ESCHER_BENCH_LARGE_ESTATE=0).");
        return;
    }
    if let Err(e) = large_estate(&runtime, &endpoint, concurrency) {
        println!("scan benchmark, large estate: {e}");
        std::process::exit(1);
    }
}
