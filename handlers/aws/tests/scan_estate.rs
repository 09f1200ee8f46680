//! The AWS scan over a 300-resource estate in two regions (`escher_test_support::estate`: public
//! and private buckets, unencrypted, unattached and snapshotted volumes, orphaned
//! snapshots, groups open on 22 / 443 / 5432 from 10/8, idle, busy and unmeasured
//! instances), with pages of 5 items (the smallest EC2 accepts), against moto: every
//! expected finding is reported exactly once by the checks themselves (before the scan's
//! merge by key could hide a page read twice), and nothing else.
//!
//! The estate has an account of its own, so "nothing else" is exact. moto cannot back-date
//! a snapshot, so the age rule runs at `snapshot_age_days: 0` (see `scan_checks.rs`).
//! `tests/emulators.sh start` writes `ESCHER_TEST_AWS_ENDPOINT`; without it the test prints
//! a notice and returns, unless `ESCHER_REQUIRE_EMULATORS=1`, when it fails.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use escher_aws::{AwsClients, AwsScan};
use escher_core::scan::{CheckScope, ScanContext, ScanThresholds};
use escher_test_support::estate::{Estate, REGIONS};
use escher_test_support::moto;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_finding_of_a_300_resource_estate_in_two_regions_is_reported_once_with_pages_of_5() {
    let Some(endpoint) = moto::endpoint("the estate scan test") else {
        return;
    };
    let started = Instant::now();
    let estate = Estate::build(&endpoint)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let built = started.elapsed();
    assert!(estate.resources >= 300, "{} resources", estate.resources);

    let scanner =
        AwsScan::new(AwsClients::new(&estate.sdk), estate.account.clone()).with_page_size(5);
    let context = ScanContext::new(ScanThresholds {
        snapshot_age_days: 0,
        ..ScanThresholds::default()
    });
    let scanning = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    // The regional checks: the account-wide cost summary reads billing data, not the
    // estate (moto_scan tests it with configured Cost Explorer results).
    for region in REGIONS {
        for check in scanner
            .checks()
            .into_iter()
            .filter(|c| c.scope() == CheckScope::Region)
        {
            let context = context.clone();
            tasks.spawn(async move {
                let id = check.id();
                (region, id, check.run(region, &context).await)
            });
        }
    }
    let mut reported: BTreeMap<String, usize> = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        let (region, check, result) = joined.expect("check task");
        let findings = result.unwrap_or_else(|e| panic!("{check} in {region}: {e}"));
        for finding in findings {
            assert_eq!(finding.event.region, region, "{}", finding.key);
            assert_eq!(finding.event.account_id, estate.account);
            *reported.entry(finding.key).or_default() += 1;
        }
    }
    let scanned = scanning.elapsed();

    let findings = estate
        .check_reported(&reported)
        .unwrap_or_else(|e| panic!("{e}"));
    let found: BTreeSet<&str> = reported.keys().map(String::as_str).collect();
    // Every check found something in both regions, so none is silently empty.
    for check in [
        "public_bucket",
        "unencrypted_volume",
        "unattached_volume",
        "orphaned_snapshot",
        "open_admin_port",
        "idle_instance",
    ] {
        for region in REGIONS {
            assert!(
                found.iter().any(|k| k.starts_with(&format!("{check}:"))
                    && (k.contains(&format!(":{region}:")) || k.contains(&format!("-{region}-")))),
                "{check} in {region}"
            );
        }
    }
    eprintln!(
        "estate: {} resources, {} findings; built in {:.1} s, scanned in {:.1} s",
        estate.resources,
        findings,
        built.as_secs_f64(),
        scanned.as_secs_f64()
    );
}
