//! What the nightly scan costs on Google Cloud, against the contract server (no Google
//! account): every Google Cloud check over the project of `escher_test_support::gcp_api::
//! GcpEstate` ten times over (about 3,000 resources: buckets, firewall rules, disks over three
//! zones, snapshots, VMs with their CPU, forty days of billing export and a budget), listed in
//! pages of 100. Every finding must be reported exactly once by the checks
//! themselves (counted before the scan's merge by key could hide a page read twice), or the
//! bench says so instead of a figure.
//!
//! - Concurrency 1 on a current-thread runtime: the wall time and that thread's CPU (the
//!   checks, the Google API client, HTTP, parsing the answers). The contract server runs on a
//!   thread of its own, so its work is not counted as ours.
//! - The shipped `scan.concurrency` (`policies/report.yaml`) on a multi-thread runtime, as
//!   the function runs it: the wall time.

use std::sync::Arc;
use std::time::Instant;

use escher_core::scan::{ReportSettings, ScanCheck, ScanContext, ACCOUNT_WIDE};
use escher_gcp::{Endpoints, GcpClient, GcpScan, GcpScanSettings, StaticToken};
use escher_runtime::ThreadCpu;
use escher_test_support::gcp_api::{
    GcpApi, GcpEstate, ESTATE_BILLING_ACCOUNT, ESTATE_EXPORT_TABLE,
};
use escher_test_support::load::{self, Figures, LargeScan};

const PROJECT: &str = "shop-prod-4711";
/// The large estate's size, as a multiple of the estate the scan test seeds.
const LARGE_SCALE: usize = 10;
const PAGE_SIZE: usize = 100;

/// Every Google Cloud check, the cost check reading the estate's billing export, on a
/// client of the calling runtime.
fn checks(api: &GcpApi) -> Vec<Arc<dyn ScanCheck>> {
    let client = GcpClient::new(
        Endpoints::all_at(api.endpoint()),
        Arc::new(StaticToken::new(GcpApi::TEST_TOKEN)),
    );
    let settings = GcpScanSettings {
        billing_export_table: Some(ESTATE_EXPORT_TABLE.into()),
        billing_account: Some(ESTATE_BILLING_ACCOUNT.into()),
    };
    GcpScan::new(client, PROJECT, settings, None).checks()
}

/// Every check, `concurrency` at a time: the findings, each held to the estate's.
async fn findings_once(
    api: &GcpApi,
    estate: &GcpEstate,
    concurrency: usize,
) -> Result<usize, String> {
    let context = ScanContext::new(ReportSettings::built_in().thresholds.clone());
    let reported = load::count_reported(checks(api), concurrency, |check| {
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
    let api = beside.block_on(GcpApi::start());
    api.page_size(PAGE_SIZE);
    let building = Instant::now();
    let estate = GcpEstate::seed_scaled(&api, PROJECT, LARGE_SCALE);
    let built = building.elapsed();

    let concurrency = ReportSettings::built_in().scan.concurrency;
    let timed = load::time_scan(
        |concurrency| findings_once(&api, &estate, concurrency),
        concurrency,
        || ThreadCpu::now().total,
    )?;
    let violations = api.violations();
    if !violations.is_empty() {
        return Err(format!(
            "calls outside Google's published discovery documents: {violations:?}"
        ));
    }
    let estate_where =
        format!("one project over three zones on the contract server, pages of {PAGE_SIZE}");
    Ok(LargeScan {
        estate: &estate_where,
        resources: estate.resources,
        built,
        timed,
    }
    .lines("Google Cloud"))
}

fn main() {
    load::conclude(
        "Google Cloud scan benchmark",
        large_estate().map(Figures::from),
    );
}
