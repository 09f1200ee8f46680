//! The Azure checks on the Resource Manager stand-in: the conformance suite's check rules
//! (`escher_core::conformance::check_scan_check`) on every check, and a subscription of about
//! 300 resources in which each seeded problem is reported exactly once and nothing else is.

mod common;

use std::collections::BTreeSet;

use common::{stand_in, GROUP, SUBSCRIPTION};
use escher_azure::{azure_fixes, AzureScan};
use escher_core::conformance::check_scan_check;
use escher_core::scan::{ReportSettings, ScanContext, ACCOUNT_WIDE};
use escher_test_support::azure_arm::ArmDouble;
use serde_json::json;

fn open_rule(port: &str) -> serde_json::Value {
    json!({"protocol": "Tcp", "sourcePortRange": "*", "destinationPortRange": port,
           "sourceAddressPrefix": "Internet", "destinationAddressPrefix": "*",
           "access": "Allow", "priority": 200, "direction": "Inbound"})
}

/// What the estate holds that a check must report, by finding key.
struct Estate {
    expected: BTreeSet<String>,
    resources: usize,
}

/// About 300 resources: most fine, a few of each problem.
fn seed(double: &ArmDouble) -> Estate {
    let mut expected = BTreeSet::new();
    let mut resources = 0;
    for i in 0..100 {
        let nsg = double.nsg(SUBSCRIPTION, GROUP, &format!("nsg-{i:03}"));
        let port = if i % 10 == 0 { "3389" } else { "443" };
        double.security_rule(&nsg, "inbound", open_rule(port));
        if i % 10 == 0 {
            expected.insert(format!("open_admin_port:{nsg}"));
        }
        resources += 1;
    }
    for i in 0..20 {
        // Public: the account allows it and a container offers it. Not public: the account
        // refuses anonymous access (whatever the container says), or no container offers it.
        let allow = i % 4 != 1;
        let account =
            double.storage_account(SUBSCRIPTION, GROUP, &format!("store{i:03}"), Some(allow));
        let level = if i % 4 == 2 { "None" } else { "Blob" };
        double.blob_container(&account, "assets", level);
        if allow && level != "None" {
            expected.insert(format!("public_storage:{account}"));
        }
        resources += 2;
    }
    let mut disks = Vec::new();
    for i in 0..100 {
        let disk = double.disk(SUBSCRIPTION, GROUP, &format!("disk-{i:03}"));
        let state = if i % 10 == 3 {
            "Unattached"
        } else {
            "Attached"
        };
        double.update(&disk, |d| {
            d["properties"]["diskState"] = json!(state);
            d["properties"]["diskSizeGB"] = json!(128);
            d["sku"] = json!({"name": "Premium_LRS"});
        });
        if state == "Unattached" {
            expected.insert(format!("unattached_disk:{disk}"));
        }
        disks.push(disk);
        resources += 1;
    }
    for (i, live_disk) in disks.iter().take(40).enumerate() {
        // Old snapshots of deleted disks are reported; recent ones, or of live disks, not.
        let (source, age) = match i % 8 {
            0 => (format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}/providers/Microsoft.Compute/disks/deleted-{i}"), 200),
            1 => (format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}/providers/Microsoft.Compute/disks/deleted-{i}"), 10),
            _ => (live_disk.clone(), 400),
        };
        let snapshot = double.snapshot(SUBSCRIPTION, GROUP, &format!("snap-{i:03}"), &source, age);
        double.update(&snapshot, |s| s["properties"]["diskSizeGB"] = json!(64));
        if i % 8 == 0 {
            expected.insert(format!("old_snapshot:{snapshot}"));
        }
        resources += 1;
    }
    for i in 0..60 {
        let power = if i % 20 == 19 {
            "deallocated"
        } else {
            "running"
        };
        let vm = double.vm(SUBSCRIPTION, GROUP, &format!("vm-{i:03}"), power);
        let cpu = match i % 10 {
            1 => 0.7,  // idle
            2 => 14.0, // over-provisioned
            _ => 55.0,
        };
        double.cpu(&vm, Some(cpu));
        if power == "running" && i % 10 == 1 {
            expected.insert(format!("instance_usage:{vm}"));
        }
        if power == "running" && i % 10 == 2 {
            expected.insert(format!("overprovisioned_instance:{vm}"));
        }
        resources += 1;
    }
    // Cost: yesterday jumped from 100 to 400 USD (a spike); the month, projected, runs far
    // past the subscription's 1 000 USD budget.
    let today = chrono::Utc::now().date_naive();
    for back in 1..=40 {
        let day = today - chrono::Duration::days(back);
        let compute = if back == 1 { 400.0 } else { 100.0 };
        double.cost(day, "Virtual Machines", compute);
        double.cost(day, "Storage", 5.0);
    }
    double.budget(SUBSCRIPTION, "monthly", 1000.0);
    let subscription = format!("/subscriptions/{SUBSCRIPTION}");
    expected.insert(format!("cost_spike:{subscription}"));
    expected.insert(format!("budget_exceeded:{subscription}"));
    Estate {
        expected,
        resources,
    }
}

fn context() -> ScanContext {
    ScanContext::new(ReportSettings::built_in().thresholds.clone())
}

#[tokio::test]
async fn every_check_conforms() {
    let (double, arm) = stand_in().await;
    double.page_size(7);
    seed(&double);
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
    let estate = seed(&double);
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
