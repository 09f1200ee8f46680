//! The Azure checks on the Resource Manager stand-in: the conformance suite's check rules
//! (`escher_core::conformance::check_scan_check`) on every check, and a subscription of about
//! 300 resources in which each seeded problem is reported exactly once and nothing else is.

mod common;

use std::collections::BTreeSet;

use common::{stand_in, GROUP, SUBSCRIPTION};
use escher_azure::{azure_fixes, AzureScan};
use escher_core::conformance::check_scan_check;
use escher_core::scan::{ReportSettings, ScanContext, ACCOUNT_WIDE};
use escher_test_support::azure_arm::AzureEstate;

fn context() -> ScanContext {
    ScanContext::new(ReportSettings::built_in().thresholds.clone())
}

#[tokio::test]
async fn every_check_conforms() {
    let (double, arm) = stand_in().await;
    double.page_size(7);
    AzureEstate::seed(&double, SUBSCRIPTION, GROUP);
    let fixes = azure_fixes(arm.clone(), None);
    let scan = AzureScan::new(arm, SUBSCRIPTION, None);
    let context = context();
    for check in scan.checks() {
        match check_scan_check(check.as_ref(), &fixes, ACCOUNT_WIDE, &context).await {
            Ok(found) => println!("{}: {found} findings", check.id()),
            Err(e) => panic!("{e}"),
        }
    }
    assert!(double.violations().is_empty(), "{:?}", double.violations());
}

#[tokio::test]
async fn a_300_resource_subscription_reports_each_problem_once() {
    let (double, arm) = stand_in().await;
    double.page_size(50);
    let estate = AzureEstate::seed(&double, SUBSCRIPTION, GROUP);
    assert!(estate.resources >= 300, "{}", estate.resources);
    let scan = AzureScan::new(arm, SUBSCRIPTION, None);
    let context = context();
    let mut keys = Vec::new();
    for check in scan.checks() {
        let findings = check
            .run(ACCOUNT_WIDE, &context)
            .await
            .expect("the check ran");
        for finding in findings {
            assert_eq!(finding.event.account_id, SUBSCRIPTION);
            if check.id() != "cost" {
                assert_ne!(
                    finding.event.region, "global",
                    "attributed to the resource's location"
                );
            }
            keys.push(finding.key);
        }
    }
    let unique: BTreeSet<String> = keys.iter().cloned().collect();
    assert_eq!(unique.len(), keys.len(), "no finding twice");
    assert_eq!(unique, estate.expected);
    assert!(double.violations().is_empty(), "{:?}", double.violations());
}
