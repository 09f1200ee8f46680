//! The Google Cloud checks on the contract server: each check finds its seeded problem and
//! none of the good neighbours beside it, a denied listing fails only its own check and names
//! the permission, the cost check says what to set when no billing export is configured, and
//! a project of about 300 resources over three zones, listed in small pages, reports each
//! seeded problem exactly once and nothing else.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{server, PROJECT, ZONE};
use escher_core::scan::{run_scan, ReportSettings, ScanCheck, ScanContext, ACCOUNT_WIDE};
use escher_core::EventType;
use escher_gcp::{GcpClient, GcpScan, GcpScanSettings};
use escher_test_support::gcp_api::{
    GcpApi, GcpEstate, ESTATE_BILLING_ACCOUNT, ESTATE_EXPORT_TABLE,
};
use serde_json::json;

fn context() -> ScanContext {
    ScanContext::new(ReportSettings::built_in().thresholds.clone())
}

fn configured() -> GcpScanSettings {
    GcpScanSettings {
        billing_export_table: Some(ESTATE_EXPORT_TABLE.into()),
        billing_account: Some(ESTATE_BILLING_ACCOUNT.into()),
    }
}

fn check(client: &GcpClient, settings: GcpScanSettings, id: &str) -> std::sync::Arc<dyn ScanCheck> {
    GcpScan::new(client.clone(), PROJECT, settings, None)
        .checks()
        .into_iter()
        .find(|c| c.id() == id)
        .unwrap_or_else(|| panic!("no {id} check"))
}

/// The keys one check reports, asserting every request kept to the discovery documents.
async fn keys_of(api: &GcpApi, client: &GcpClient, id: &str) -> BTreeSet<String> {
    let findings = check(client, configured(), id)
        .run(ACCOUNT_WIDE, &context())
        .await
        .unwrap_or_else(|e| panic!("the {id} check ran: {e}"));
    assert!(api.violations().is_empty(), "{:?}", api.violations());
    findings.into_iter().map(|f| f.key).collect()
}

#[tokio::test]
async fn a_bucket_granting_all_users_is_found_and_a_private_one_is_not() {
    let (api, client) = server().await;
    api.page_size(1);
    let public = api.bucket("shop-public-exports", true);
    api.bucket("shop-private-ledger", false);
    // allAuthenticatedUsers is anyone with a Google account: public too.
    let authenticated = api.bucket("shop-any-account", false);
    api.update_bucket("shop-any-account", |_, policy| {
        policy["bindings"].as_array_mut().expect("bindings").push(
            json!({"role": "roles/storage.objectViewer", "members": ["allAuthenticatedUsers"]}),
        );
    });
    let keys = keys_of(&api, &client, "public_bucket").await;
    assert_eq!(
        keys,
        BTreeSet::from([
            format!("public_bucket:{public}"),
            format!("public_bucket:{authenticated}")
        ])
    );
    let findings = check(&client, configured(), "public_bucket")
        .run(ACCOUNT_WIDE, &context())
        .await
        .expect("ran");
    let finding = findings
        .iter()
        .find(|f| f.event.resource.id == public)
        .expect("the public bucket");
    assert_eq!(finding.event.event_type, EventType::BucketPublic);
    assert_eq!(finding.event.resource.kind, "gcs_bucket");
    assert_eq!(finding.event.region, "europe-west3");
    assert!(
        finding
            .title
            .contains("allUsers (roles/storage.objectViewer)")
            && finding
                .title
                .contains("public access prevention is inherited"),
        "{}",
        finding.title
    );
    assert!(
        finding
            .command
            .contains("approvals add --action make_bucket_private --cloud gcp"),
        "{}",
        finding.command
    );
}

#[tokio::test]
async fn only_an_enabled_ingress_rule_open_to_the_internet_on_an_admin_port_is_found() {
    let (api, client) = server().await;
    api.page_size(2);
    let ssh = api.firewall(
        PROJECT,
        "allow-ssh-anywhere",
        json!({"sourceRanges": ["0.0.0.0/0"], "allowed": [{"IPProtocol": "tcp", "ports": ["22"]}]}),
    );
    let all = api.firewall(
        PROJECT,
        "allow-everything-v6",
        json!({"sourceRanges": ["::/0"], "allowed": [{"IPProtocol": "all"}]}),
    );
    for (name, fields) in [
        (
            "allow-https",
            json!({"sourceRanges": ["0.0.0.0/0"], "allowed": [{"IPProtocol": "tcp", "ports": ["443"]}]}),
        ),
        (
            "allow-ssh-office",
            json!({"sourceRanges": ["203.0.113.0/24"], "allowed": [{"IPProtocol": "tcp", "ports": ["22"]}]}),
        ),
        (
            "old-rdp",
            json!({"sourceRanges": ["0.0.0.0/0"], "allowed": [{"IPProtocol": "tcp", "ports": ["3389"]}], "disabled": true}),
        ),
        (
            "egress-ssh",
            json!({"direction": "EGRESS", "destinationRanges": ["0.0.0.0/0"], "allowed": [{"IPProtocol": "tcp", "ports": ["22"]}]}),
        ),
    ] {
        api.firewall(PROJECT, name, fields);
    }
    // Another project's rule is not this project's.
    api.firewall(
        "another-project",
        "allow-ssh-anywhere",
        json!({"sourceRanges": ["0.0.0.0/0"], "allowed": [{"IPProtocol": "tcp", "ports": ["22"]}]}),
    );
    let keys = keys_of(&api, &client, "open_admin_port").await;
    assert_eq!(
        keys,
        BTreeSet::from([
            format!("open_admin_port:{ssh}"),
            format!("open_admin_port:{all}")
        ])
    );
    let findings = check(&client, configured(), "open_admin_port")
        .run(ACCOUNT_WIDE, &context())
        .await
        .expect("ran");
    let everything = findings
        .iter()
        .find(|f| f.event.resource.id == all)
        .expect("the open rule");
    assert!(
        everything.title.contains("SSH (22)") && everything.title.contains("RDP (3389)"),
        "{}",
        everything.title
    );
    assert_eq!(everything.event.event_type, EventType::FirewallOpen);
}

#[tokio::test]
async fn an_unattached_disk_and_an_old_snapshot_of_a_deleted_disk_are_found_with_their_cost() {
    let (api, client) = server().await;
    api.page_size(1);
    let loose = api.disk(PROJECT, ZONE, "scratch-after-migration", None);
    api.update_disk(&loose, |d| d["sizeGb"] = json!("500"));
    let attached = api.disk(PROJECT, "us-central1-f", "web-1-boot", None);
    api.update_disk(&attached, |d| {
        d["users"] = json!([format!(
            "https://www.googleapis.com/compute/v1/projects/{PROJECT}/zones/us-central1-f/instances/web-1"
        )])
    });
    let gone = format!("projects/{PROJECT}/zones/{ZONE}/disks/decommissioned-db");
    let old = api.snapshot(PROJECT, "decommissioned-db-2026-01", &gone, 120, 200);
    api.snapshot(PROJECT, "decommissioned-db-last", &gone, 120, 5);
    api.snapshot(PROJECT, "web-1-boot-weekly", &attached, 40, 300);
    let keys = keys_of(&api, &client, "unused_storage").await;
    assert_eq!(
        keys,
        BTreeSet::from([
            format!("unattached_disk:{loose}"),
            format!("old_snapshot:{old}")
        ])
    );
    let findings = check(&client, configured(), "unused_storage")
        .run(ACCOUNT_WIDE, &context())
        .await
        .expect("ran");
    let disk = findings
        .iter()
        .find(|f| f.check == "unattached_disk")
        .expect("the disk");
    // 500 GB of pd-balanced at the reference region's 0.10 USD per GB-month.
    assert_eq!(disk.monthly_saving_usd, Some(50.0));
    assert_eq!(disk.event.region, "europe-west3");
    assert!(
        disk.command
            .contains("gcloud compute disks delete scratch-after-migration --zone europe-west3-b"),
        "{}",
        disk.command
    );
    let snapshot = findings
        .iter()
        .find(|f| f.check == "old_snapshot")
        .expect("the snapshot");
    // 120 GB stored at 0.05 USD per GB-month.
    assert_eq!(snapshot.monthly_saving_usd, Some(6.0));
    assert!(
        snapshot.title.contains("decommissioned-db"),
        "{}",
        snapshot.title
    );
}

#[tokio::test]
async fn an_idle_and_an_over_provisioned_vm_are_found_and_busy_or_stopped_ones_are_not() {
    let (api, client) = server().await;
    api.page_size(200);
    let vm = |name: &str, status: &str, cpu: f64| {
        let vm = api.instance(PROJECT, ZONE, name, status);
        api.cpu(&vm, Some(cpu));
        vm
    };
    let idle = vm("batch-worker-3", "RUNNING", 0.8);
    let oversized = vm("reporting-db", "RUNNING", 12.0);
    vm("checkout-api", "RUNNING", 62.0);
    vm("old-batch", "TERMINATED", 0.5);
    // No datapoints: not provably idle, so not reported.
    let unmeasured = api.instance(PROJECT, ZONE, "new-vm", "RUNNING");
    api.cpu(&unmeasured, None);
    let keys = keys_of(&api, &client, "instance_usage").await;
    assert_eq!(
        keys,
        BTreeSet::from([
            format!("instance_usage:{idle}"),
            format!("overprovisioned_instance:{oversized}")
        ])
    );
    let findings = check(&client, configured(), "instance_usage")
        .run(ACCOUNT_WIDE, &context())
        .await
        .expect("ran");
    let idle = findings
        .iter()
        .find(|f| f.check == "instance_usage")
        .expect("idle");
    assert_eq!(idle.event.event_type, EventType::InstanceIdle);
    assert!(idle.title.contains("averaged 0.8 % CPU"), "{}", idle.title);
    assert!(
        idle.command.contains("--action stop_idle_instance"),
        "{}",
        idle.command
    );
    let oversized = findings
        .iter()
        .find(|f| f.check == "overprovisioned_instance")
        .expect("over-provisioned");
    assert!(oversized.command.contains("set-machine-type reporting-db"));
    // The stopped VM was judged from the listing alone: CPU was read for the four running
    // VMs only.
    let measured: BTreeSet<String> = api
        .requests()
        .iter()
        .filter(|r| r.operation.as_deref() == Some("monitoring.projects.timeSeries.list"))
        .flat_map(|r| r.query.clone())
        .filter(|(k, _)| k == "filter")
        .map(|(_, filter)| filter)
        .collect();
    assert_eq!(measured.len(), 4, "{measured:?}");
}

#[tokio::test]
async fn the_cost_summary_comes_from_the_billing_export_and_the_budget_from_the_budget_api() {
    let (api, client) = server().await;
    let estate = GcpEstate::seed(&api, PROJECT);
    let cost = check(&client, configured(), "cost");
    let output = cost.output(ACCOUNT_WIDE, &context()).await.expect("ran");
    assert!(api.violations().is_empty(), "{:?}", api.violations());
    let summary = output.cost.expect("a cost summary");
    // Another project's 9 000 USD a day on the same export are not this project's.
    assert_eq!(summary.yesterday_amount, 405.0);
    assert_eq!(summary.day_before_amount, 105.0);
    assert!(summary.spike);
    assert_eq!(summary.monthly_budget, Some(1000.0));
    let keys: BTreeSet<String> = output.findings.iter().map(|f| f.key.clone()).collect();
    let expected: BTreeSet<String> = estate
        .expected
        .iter()
        .filter(|k| k.starts_with("cost_spike:") || k.starts_with("budget_exceeded:"))
        .cloned()
        .collect();
    // On the 1st the month so far is yesterday's month: both flags still hold.
    assert_eq!(keys, expected);
    // The budget's own thresholds, against the forecast.
    assert!(
        summary
            .flags
            .iter()
            .any(|f| f.starts_with("Budget \"shop monthly\"") && f.contains("100 % threshold")),
        "{:?}",
        summary.flags
    );
    let query = api
        .requests()
        .into_iter()
        .find(|r| r.operation.as_deref() == Some("bigquery.jobs.query"))
        .expect("one query");
    let body = query.body.expect("a body");
    assert_eq!(body["useLegacySql"], false);
    assert!(body["query"]
        .as_str()
        .is_some_and(|q| q.contains(&format!("`{ESTATE_EXPORT_TABLE}`")) && !q.contains(PROJECT)));
}

#[tokio::test]
async fn without_a_billing_export_the_report_says_what_to_set_and_lists_the_budgets() {
    let (api, client) = server().await;
    api.budget(
        ESTATE_BILLING_ACCOUNT,
        "shop monthly",
        Some(PROJECT),
        1000.0,
    );
    let budgets_only = GcpScanSettings {
        billing_export_table: None,
        billing_account: Some(ESTATE_BILLING_ACCOUNT.into()),
    };
    let error = check(&client, budgets_only, "cost")
        .output(ACCOUNT_WIDE, &context())
        .await
        .expect_err("no cost without an export");
    assert!(
        error
            .message
            .starts_with("not configured — set ESCHER_GCP_BILLING_EXPORT_TABLE"),
        "{}",
        error.message
    );
    assert!(
        error.message.contains(
            "\"shop monthly\" (1000.00 USD a month, alerts at 50 %, 90 %, 100 % forecast)"
        ),
        "{}",
        error.message
    );
    assert!(!error.transient);
    // What the report's "Not scanned" section prints after "global cost: ".
    assert!(
        error.to_string().starts_with(&format!(
            "billing export on projects/{PROJECT} failed: not configured — set"
        )),
        "{error}"
    );
    let nothing = check(&client, GcpScanSettings::default(), "cost")
        .output(ACCOUNT_WIDE, &context())
        .await
        .expect_err("not configured");
    assert!(
        nothing.message.contains("set ESCHER_GCP_BILLING_ACCOUNT"),
        "{}",
        nothing.message
    );
    assert!(
        api.requests()
            .iter()
            .all(|r| r.operation.as_deref() != Some("bigquery.jobs.query")),
        "no query without a table"
    );
    assert!(api.violations().is_empty(), "{:?}", api.violations());
}

#[tokio::test]
async fn a_denied_listing_fails_its_check_naming_the_permission_and_the_scan_goes_on() {
    let (api, client) = server().await;
    let estate = GcpEstate::seed(&api, PROJECT);
    api.deny("compute.firewalls.list");
    api.deny("billing.budgets.list");
    let checks = GcpScan::new(client, PROJECT, configured(), None).checks();
    let outcome = run_scan(&checks, &["global".to_string()], 2, &context()).await;
    assert_eq!(outcome.failures.len(), 1, "{:?}", outcome.failures);
    let failure = &outcome.failures[0];
    assert_eq!(failure.check, "open_admin_port");
    assert_eq!(failure.error.operation, "compute.firewalls.list");
    assert!(
        failure
            .error
            .message
            .contains("grant compute.firewalls.list to the service account"),
        "{}",
        failure.error.message
    );
    let keys: BTreeSet<String> = outcome.findings.iter().map(|f| f.key.clone()).collect();
    let others: BTreeSet<String> = estate
        .expected
        .iter()
        // Without the budget there is nothing to be over.
        .filter(|k| !k.starts_with("open_admin_port:") && !k.starts_with("budget_exceeded:"))
        .cloned()
        .collect();
    assert_eq!(keys, others, "every other check still reported");
    // Budgets refused: the summary stays, with a line saying why it has no budget.
    let summary = outcome.cost.expect("a cost summary");
    assert!(
        summary
            .flags
            .iter()
            .any(|f| f.contains("grant billing.budgets.list")),
        "{:?}",
        summary.flags
    );
}

#[tokio::test]
async fn a_300_resource_project_reports_each_problem_once() {
    let (api, client) = server().await;
    api.page_size(25);
    let estate = GcpEstate::seed(&api, PROJECT);
    assert!(estate.resources >= 300, "{}", estate.resources);
    let checks = GcpScan::new(client, PROJECT, configured(), None).checks();
    let outcome = run_scan(&checks, &["global".to_string()], 4, &context()).await;
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    let mut reported: BTreeMap<String, usize> = BTreeMap::new();
    for check in &checks {
        for finding in check
            .run(ACCOUNT_WIDE, &context())
            .await
            .expect("the check ran")
        {
            assert_eq!(finding.event.account_id, PROJECT);
            *reported.entry(finding.key).or_default() += 1;
        }
    }
    match estate.check_reported(&reported) {
        Ok(found) => println!(
            "{found} findings, each once, in {} resources",
            estate.resources
        ),
        Err(difference) => panic!("{difference}"),
    }
    assert_eq!(outcome.findings.len(), estate.expected.len());
    // The listings really were paged, over every zone.
    let pages = |operation: &str| {
        api.requests()
            .iter()
            .filter(|r| {
                r.operation.as_deref() == Some(operation)
                    && r.query.iter().any(|(k, _)| k == "pageToken")
            })
            .count()
    };
    for operation in [
        "storage.buckets.list",
        "compute.firewalls.list",
        "compute.disks.aggregatedList",
        "compute.instances.aggregatedList",
        "compute.snapshots.list",
    ] {
        assert!(pages(operation) > 0, "{operation} was read in one page");
    }
    assert!(api.violations().is_empty(), "{:?}", api.violations());
}

#[tokio::test]
async fn a_finding_with_a_fix_is_one_the_fix_takes_and_corrects() {
    use escher_core::approvals::Conditions;
    use escher_core::remediate::{Mode, RemediationRequest, RemediationStatus};

    let (api, client) = server().await;
    api.bucket("shop-public-exports", true);
    api.firewall(
        PROJECT,
        "allow-ssh-anywhere",
        json!({"sourceRanges": ["0.0.0.0/0"], "allowed": [{"IPProtocol": "tcp", "ports": ["22"]}]}),
    );
    let idle = api.instance(PROJECT, ZONE, "batch-worker-3", "RUNNING");
    api.cpu(&idle, Some(0.8));
    let fixes = escher_gcp::gcp_fixes(client.clone(), None);
    let mut fixed = Vec::new();
    for check in GcpScan::new(client, PROJECT, GcpScanSettings::default(), None).checks() {
        if check.id() == "cost" {
            continue;
        }
        for finding in check.run(ACCOUNT_WIDE, &context()).await.expect("ran") {
            let action = finding.action.expect("each of these findings has a fix");
            let fix = fixes
                .lookup(action, &finding.event.resource.kind)
                .expect("registered for the finding's resource type");
            let report = fix
                .remediate(&RemediationRequest {
                    event: &finding.event,
                    action,
                    conditions: &Conditions::default(),
                    mode: Mode::Apply,
                })
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", finding.key));
            assert_eq!(
                report.status,
                RemediationStatus::Remediated,
                "{}: {}",
                finding.key,
                report.summary
            );
            fixed.push(finding.check);
        }
    }
    fixed.sort();
    assert_eq!(
        fixed,
        ["instance_usage", "open_admin_port", "public_bucket"]
    );
    assert_eq!(api.instance_status(&idle).as_deref(), Some("TERMINATED"));
    assert!(api.violations().is_empty(), "{:?}", api.violations());
}
