//! The fix and check conformance suite (`escher_core::conformance`) on every Google Cloud fix
//! and nightly check, against the contract server held to Google's published discovery
//! documents. Each fix and each check has a scenario here; one registered without a scenario
//! fails the test. `encrypt_volume` never acts on Google Cloud (every persistent disk is
//! encrypted at rest), so it is held to that.

mod common;

use async_trait::async_trait;
use common::{bucket_event, disk_event, firewall_event, instance_event, server, PROJECT, ZONE};
use escher_core::approvals::{Action, Conditions};
use escher_core::conformance::{self, check_fix, check_scan_check, FixScenario, ScenarioError};
use escher_core::remediate::{ApiCall, Mode, RemediationRequest, RemediationStatus};
use escher_core::scan::{ReportSettings, ScanContext, ACCOUNT_WIDE};
use escher_core::UnifiedEvent;
use escher_gcp::scan::BILLING_ACCOUNT_PERMISSIONS;
use escher_gcp::{all_required_permissions, gcp_fixes, iam_permission, GcpScan, GcpScanSettings};
use escher_test_support::gcp_api::{
    GcpApi, GcpEstate, ESTATE_BILLING_ACCOUNT, ESTATE_EXPORT_TABLE,
};
use serde_json::json;

struct PublicBucket(GcpApi);

#[async_trait]
impl FixScenario for PublicBucket {
    async fn prepare(&self) -> Result<UnifiedEvent, ScenarioError> {
        Ok(bucket_event(&self.0.bucket("payments-exports", true)))
    }

    async fn change_back(&self, _event: &UnifiedEvent) -> Result<(), ScenarioError> {
        self.0.update_bucket("payments-exports", |bucket, policy| {
            bucket["iamConfiguration"]["publicAccessPrevention"] = json!("inherited");
            policy["bindings"]
                .as_array_mut()
                .expect("bindings")
                .push(json!({"role": "roles/storage.objectViewer", "members": ["allUsers"]}));
        });
        Ok(())
    }
}

struct OpenSsh(GcpApi);

fn ssh_anywhere() -> serde_json::Value {
    json!({"sourceRanges": ["0.0.0.0/0"], "allowed": [{"IPProtocol": "tcp", "ports": ["22"]}]})
}

#[async_trait]
impl FixScenario for OpenSsh {
    async fn prepare(&self) -> Result<UnifiedEvent, ScenarioError> {
        Ok(firewall_event(&self.0.firewall(
            PROJECT,
            "allow-ssh-anywhere",
            ssh_anywhere(),
        )))
    }

    async fn change_back(&self, event: &UnifiedEvent) -> Result<(), ScenarioError> {
        self.0
            .update_firewall(&event.resource.id, |rule| rule["disabled"] = json!(false));
        Ok(())
    }
}

struct IdleVm(GcpApi);

#[async_trait]
impl FixScenario for IdleVm {
    async fn prepare(&self) -> Result<UnifiedEvent, ScenarioError> {
        let vm = self.0.instance(PROJECT, ZONE, "batch-worker-3", "RUNNING");
        self.0.cpu(&vm, Some(0.8));
        Ok(instance_event(&vm))
    }

    async fn change_back(&self, event: &UnifiedEvent) -> Result<(), ScenarioError> {
        self.0.set_instance_status(&event.resource.id, "RUNNING");
        Ok(())
    }

    fn conditions(&self) -> Conditions {
        Conditions {
            min_idle_hours: Some(2.0),
            ..Conditions::default()
        }
    }
}

fn scenario(api: &GcpApi, action: Action) -> Option<Box<dyn FixScenario>> {
    match action {
        Action::MakeBucketPrivate => Some(Box::new(PublicBucket(api.clone()))),
        Action::RevokeOpenIngress => Some(Box::new(OpenSsh(api.clone()))),
        Action::StopIdleInstance => Some(Box::new(IdleVm(api.clone()))),
        _ => None,
    }
}

/// Fixes that never act on Google Cloud, because the platform already guarantees them.
const PLATFORM_GUARANTEED: [Action; 1] = [Action::EncryptVolume];

async fn conforms(action: Action) {
    let (api, client) = server().await;
    let fixes = gcp_fixes(client, None);
    let fix = fixes
        .fixes()
        .find(|f| f.action() == action)
        .expect("the fix is registered");
    let scenario = scenario(&api, action).expect("a scenario");
    match check_fix(fix, scenario.as_ref(), iam_permission).await {
        Ok(steps) => println!("{action}: {}", steps.join("; ")),
        Err(e) => panic!("{e}"),
    }
    assert_eq!(
        api.violations(),
        Vec::<String>::new(),
        "every request kept to the published discovery documents"
    );
}

#[tokio::test]
async fn every_registered_fix_has_a_scenario_here() {
    let (api, client) = server().await;
    let fixes = gcp_fixes(client, None);
    let without: Vec<Action> = conformance::actions(&fixes)
        .into_iter()
        .filter(|a| scenario(&api, *a).is_none() && !PLATFORM_GUARANTEED.contains(a))
        .collect();
    assert!(
        without.is_empty(),
        "no conformance scenario for {without:?}"
    );
}

#[tokio::test]
async fn make_bucket_private_conforms() {
    conforms(Action::MakeBucketPrivate).await;
}

#[tokio::test]
async fn revoke_open_ingress_conforms() {
    conforms(Action::RevokeOpenIngress).await;
}

#[tokio::test]
async fn stop_idle_instance_conforms() {
    conforms(Action::StopIdleInstance).await;
}

#[tokio::test]
async fn encrypt_volume_says_google_already_encrypts_and_changes_nothing() {
    let (api, client) = server().await;
    let fixes = gcp_fixes(client, None);
    for (disk, words) in [
        (
            api.disk(PROJECT, ZONE, "batch-worker-3-boot", None),
            "Google-managed keys",
        ),
        (
            api.disk(
                PROJECT,
                ZONE,
                "ledger-data",
                Some(
                    "projects/shop-prod-4711/locations/europe-west3/keyRings/prod/cryptoKeys/disks",
                ),
            ),
            "your Cloud KMS key",
        ),
    ] {
        let event = disk_event(&disk);
        let fix = fixes
            .lookup(Action::EncryptVolume, &event.resource.kind)
            .expect("registered for persistent disks");
        let conditions = Conditions::default();
        for mode in [Mode::DryRun, Mode::Apply] {
            let report = fix
                .remediate(&RemediationRequest {
                    event: &event,
                    action: Action::EncryptVolume,
                    conditions: &conditions,
                    mode,
                })
                .await
                .expect("answered");
            assert_eq!(report.status, RemediationStatus::AlreadyCompliant, "{mode}");
            assert!(report.summary.contains(words), "{}", report.summary);
            assert!(report.api_calls.iter().all(|c| !c.mutating), "{mode}");
            assert!(report.verification.is_some_and(|v| v.passed));
            for call in &report.api_calls {
                assert!(fix
                    .required_permissions()
                    .iter()
                    .any(|p| p.action == iam_permission(call)));
            }
        }
    }
    assert!(api.violations().is_empty(), "{:?}", api.violations());
}

/// What each nightly check must find in the seeded project (`GcpEstate`): the names it
/// reports under. A check listed in `GcpScan::checks` without a line here fails the suite.
const CHECK_SCENARIOS: &[(&str, &[&str])] = &[
    ("public_bucket", &["public_bucket"]),
    ("open_admin_port", &["open_admin_port"]),
    ("unused_storage", &["unattached_disk", "old_snapshot"]),
    (
        "instance_usage",
        &["instance_usage", "overprovisioned_instance"],
    ),
    ("cost", &["cost_spike", "budget_exceeded"]),
];

#[tokio::test]
async fn every_check_conforms_and_finds_its_scenario() {
    let (api, client) = server().await;
    // Every listing in a few pages (a month of hourly CPU is 720 points: 15 pages).
    api.page_size(50);
    let estate = GcpEstate::seed(&api, PROJECT);
    let fixes = gcp_fixes(client.clone(), None);
    let settings = GcpScanSettings {
        billing_export_table: Some(ESTATE_EXPORT_TABLE.into()),
        billing_account: Some(ESTATE_BILLING_ACCOUNT.into()),
    };
    let context = ScanContext::new(ReportSettings::built_in().thresholds.clone());
    let checks = GcpScan::new(client, PROJECT, settings, None).checks();
    let without: Vec<&str> = checks
        .iter()
        .map(|c| c.id())
        .filter(|id| !CHECK_SCENARIOS.iter().any(|(check, _)| check == id))
        .collect();
    assert!(
        without.is_empty(),
        "no conformance scenario for {without:?}"
    );
    for check in &checks {
        let (_, names) = CHECK_SCENARIOS
            .iter()
            .find(|(id, _)| *id == check.id())
            .expect("a scenario");
        let found = check_scan_check(check.as_ref(), &fixes, ACCOUNT_WIDE, &context)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let expected = estate
            .expected
            .iter()
            .filter(|key| names.iter().any(|n| key.starts_with(&format!("{n}:"))))
            .count();
        assert!(
            expected > 0,
            "the estate seeds something for {}",
            check.id()
        );
        assert_eq!(found, expected, "{} findings", check.id());
    }
    assert!(api.violations().is_empty(), "{:?}", api.violations());
}

#[tokio::test]
async fn the_role_covers_every_call_the_scan_makes() {
    let (api, client) = server().await;
    GcpEstate::seed(&api, PROJECT);
    let settings = GcpScanSettings {
        billing_export_table: Some(ESTATE_EXPORT_TABLE.into()),
        billing_account: Some(ESTATE_BILLING_ACCOUNT.into()),
    };
    let context = ScanContext::new(ReportSettings::built_in().thresholds.clone());
    for check in GcpScan::new(client, PROJECT, settings, None).checks() {
        check.output(ACCOUNT_WIDE, &context).await.expect("ran");
    }
    let granted: Vec<&str> = all_required_permissions()
        .iter()
        .chain(BILLING_ACCOUNT_PERMISSIONS)
        .map(|p| p.action)
        .collect();
    let mut methods: Vec<String> = api
        .requests()
        .into_iter()
        .filter_map(|r| r.operation)
        .collect();
    methods.sort();
    methods.dedup();
    assert!(methods.len() >= 8, "{methods:?}");
    for method in methods {
        let permission = iam_permission(&ApiCall {
            service: String::new(),
            operation: method.clone(),
            target: String::new(),
            mutating: false,
            started_at: chrono::Utc::now(),
            duration_ms: 0,
            error: None,
        });
        assert!(
            granted.contains(&permission.as_str()),
            "{method} needs {permission}, which the role does not grant"
        );
    }
}
