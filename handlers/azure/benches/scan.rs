//! What the nightly scan costs on Azure, against the Resource Manager stand-in (no Azure
//! account): every Azure check over the subscription of `escher_test_support::azure_arm::
//! AzureEstate` ten times over (about 3,400 resources: security groups, storage accounts and
//! their containers, disks, snapshots, VMs with their CPU, forty days of cost and a budget),
//! listed in pages of 100. Every finding must be reported exactly once by the checks
//! themselves (counted before the scan's merge by key could hide a page read twice), or the
//! bench says so instead of a figure.
//!
//! - Concurrency 1 on a current-thread runtime: the wall time and that thread's CPU (the
//!   checks, the Resource Manager client, HTTP, parsing the answers). The stand-in runs on a
//!   thread of its own, so its work is not counted as ours.
//! - The shipped `scan.concurrency` (`policies/report.yaml`) on a multi-thread runtime, as
//!   the function runs it: the wall time.

use std::sync::Arc;
use std::time::Instant;

use escher_azure::{managed_identity_on, ArmClient, AzureScan};
use escher_core::scan::{ReportSettings, ScanCheck, ScanContext, ACCOUNT_WIDE};
use escher_runtime::ThreadCpu;
use escher_test_support::azure_arm::{ArmDouble, AzureEstate};
use escher_test_support::load::{self, Figures, LargeScan};

const SUBSCRIPTION: &str = "6f1c2d3e-4a5b-4c6d-8e7f-901a2b3c4d5e";
const GROUP: &str = "estate-rg";
/// The large estate's size, as a multiple of the estate the scan test seeds.
const LARGE_SCALE: usize = 10;
const PAGE_SIZE: usize = 100;

/// Every Azure check, on a client of the calling runtime.
fn checks(double: &ArmDouble) -> Result<Vec<Arc<dyn ScanCheck>>, String> {
    let http = reqwest::Client::new();
    let identity = managed_identity_on(http.clone()).map_err(|e| e.to_string())?;
    let arm = ArmClient::on(http, double.endpoint(), identity);
    Ok(AzureScan::new(arm, SUBSCRIPTION, None).checks())
}

/// Every check, `concurrency` at a time: the findings, each held to the estate's.
async fn findings_once(
    double: &ArmDouble,
    estate: &AzureEstate,
    concurrency: usize,
) -> Result<usize, String> {
    let context = ScanContext::new(ReportSettings::built_in().thresholds.clone());
    let reported = load::count_reported(checks(double)?, concurrency, |check| {
        let context = context.clone();
        async move {
            let findings = check
                .run(ACCOUNT_WIDE, &context)
                .await
                .map_err(|e| format!("the {} check failed: {e}", check.id()))?;
            Ok(findings.into_iter().map(|f| f.key).collect())
        }
    })
    .await?;
    estate.check_reported(&reported)
}

fn large_estate() -> Result<Vec<String>, String> {
    let beside = load::beside()?;
    let double = beside.block_on(ArmDouble::start());
    // SAFETY: the stand-in's thread reads no environment; nothing else runs yet.
    unsafe { double.serve_identity_to_this_process() };
    double.page_size(PAGE_SIZE);
    let building = Instant::now();
    let estate = AzureEstate::seed_scaled(&double, SUBSCRIPTION, GROUP, LARGE_SCALE);
    let built = building.elapsed();

    let concurrency = ReportSettings::built_in().scan.concurrency;
    let timed = load::time_scan(
        |concurrency| findings_once(&double, &estate, concurrency),
        concurrency,
        || ThreadCpu::now().total,
    )?;
    let violations = double.violations();
    if !violations.is_empty() {
        return Err(format!(
            "calls outside Microsoft's published API: {violations:?}"
        ));
    }
    let estate_where =
        format!("one subscription on the Resource Manager stand-in, pages of {PAGE_SIZE}");
    Ok(LargeScan {
        estate: &estate_where,
        resources: estate.resources,
        built,
        timed,
    }
    .lines("Azure"))
}

fn main() {
    load::conclude("Azure scan benchmark", large_estate().map(Figures::from));
}
