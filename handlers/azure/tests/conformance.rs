//! The fix conformance suite (`escher_core::conformance`) on every Azure fix, against the
//! Resource Manager stand-in that answers with Microsoft's published examples. Each fix has a
//! scenario here; a registered fix without one fails the test. `encrypt_volume` never acts on
//! Azure (the platform already encrypts every managed disk), so it is held to that instead.

mod common;

use async_trait::async_trait;
use common::{stand_in, write_event, GROUP, SUBSCRIPTION};
use escher_azure::{azure_fixes, role_action, ArmClient};
use escher_core::approvals::{Action, Conditions};
use escher_core::conformance::{self, check_fix, FixScenario, ScenarioError};
use escher_core::remediate::{Mode, RemediationRequest, RemediationStatus};
use escher_core::UnifiedEvent;
use escher_test_support::azure_arm::ArmDouble;
use serde_json::json;

struct PublicStorage(ArmDouble);

#[async_trait]
impl FixScenario for PublicStorage {
    async fn prepare(&self) -> Result<UnifiedEvent, ScenarioError> {
        let account = self
            .0
            .storage_account(SUBSCRIPTION, GROUP, "paymentsexports", Some(true));
        self.0.blob_container(&account, "invoices", "Blob");
        self.0.blob_container(&account, "internal", "None");
        Ok(write_event(
            &account,
            "Microsoft.Storage/storageAccounts/write",
        ))
    }

    async fn change_back(&self, event: &UnifiedEvent) -> Result<(), ScenarioError> {
        self.0.update(&event.resource.id, |a| {
            a["properties"]["allowBlobPublicAccess"] = json!(true)
        });
        Ok(())
    }
}

struct OpenRdp(ArmDouble);

fn rdp_rule() -> serde_json::Value {
    json!({
        "protocol": "Tcp", "sourcePortRange": "*", "destinationPortRange": "3389",
        "sourceAddressPrefix": "Internet", "destinationAddressPrefix": "*",
        "access": "Allow", "priority": 300, "direction": "Inbound"
    })
}

#[async_trait]
impl FixScenario for OpenRdp {
    async fn prepare(&self) -> Result<UnifiedEvent, ScenarioError> {
        let nsg = self.0.nsg(SUBSCRIPTION, GROUP, "payments-web-nsg");
        let rule = self.0.security_rule(&nsg, "rdp-anywhere", rdp_rule());
        // A web rule beside it that must survive.
        self.0.security_rule(
            &nsg,
            "https",
            json!({
                "protocol": "Tcp", "sourcePortRange": "*", "destinationPortRange": "443",
                "sourceAddressPrefix": "*", "destinationAddressPrefix": "*",
                "access": "Allow", "priority": 310, "direction": "Inbound"
            }),
        );
        Ok(write_event(
            &rule,
            "Microsoft.Network/networkSecurityGroups/securityRules/write",
        ))
    }

    async fn change_back(&self, event: &UnifiedEvent) -> Result<(), ScenarioError> {
        let nsg = escher_azure::ids::through(&event.resource.id, "networkSecurityGroups")
            .ok_or("the event names no group")?;
        self.0.security_rule(&nsg, "rdp-anywhere", rdp_rule());
        Ok(())
    }
}

struct IdleVm(ArmDouble);

#[async_trait]
impl FixScenario for IdleVm {
    async fn prepare(&self) -> Result<UnifiedEvent, ScenarioError> {
        let vm = self.0.vm(SUBSCRIPTION, GROUP, "batch-worker-3", "running");
        self.0.cpu(&vm, Some(0.8));
        Ok(write_event(&vm, "Microsoft.Compute/virtualMachines/write"))
    }

    async fn change_back(&self, event: &UnifiedEvent) -> Result<(), ScenarioError> {
        self.0.set_power_state(&event.resource.id, "running");
        Ok(())
    }

    fn conditions(&self) -> Conditions {
        Conditions {
            min_idle_hours: Some(2.0),
            ..Conditions::default()
        }
    }
}

fn scenario(double: &ArmDouble, action: Action) -> Option<Box<dyn FixScenario>> {
    match action {
        Action::MakeBucketPrivate => Some(Box::new(PublicStorage(double.clone()))),
        Action::RevokeOpenIngress => Some(Box::new(OpenRdp(double.clone()))),
        Action::StopIdleInstance => Some(Box::new(IdleVm(double.clone()))),
        _ => None,
    }
}

/// Fixes that never act on Azure, because the platform already guarantees what they ask.
const PLATFORM_GUARANTEED: [Action; 1] = [Action::EncryptVolume];

async fn conforms(action: Action) {
    let (double, arm) = stand_in().await;
    let fixes = azure_fixes(arm, None);
    let fix = fixes
        .fixes()
        .find(|f| f.action() == action)
        .expect("the fix is registered");
    let scenario = scenario(&double, action).expect("a scenario");
    match check_fix(fix, scenario.as_ref(), role_action).await {
        Ok(steps) => println!("{action}: {}", steps.join("; ")),
        Err(e) => panic!("{e}"),
    }
    assert_eq!(
        double.violations(),
        Vec::<String>::new(),
        "every request kept to the published contract"
    );
}

#[tokio::test]
async fn every_registered_fix_has_a_scenario_here() {
    let (double, arm) = stand_in().await;
    let fixes = azure_fixes(arm, None);
    let without: Vec<Action> = conformance::actions(&fixes)
        .into_iter()
        .filter(|a| scenario(&double, *a).is_none() && !PLATFORM_GUARANTEED.contains(a))
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
async fn encrypt_volume_says_the_platform_already_encrypts_and_changes_nothing() {
    let (double, arm) = stand_in().await;
    let disk = double.disk(SUBSCRIPTION, GROUP, "batch-worker-3-os");
    let event = write_event(&disk, "Microsoft.Compute/disks/write");
    let fixes = azure_fixes(arm, None);
    let fix = fixes
        .lookup(Action::EncryptVolume, &event.resource.kind)
        .expect("registered for managed disks");
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
        assert!(
            report.summary.contains("encrypted at rest"),
            "{}",
            report.summary
        );
        assert!(report.api_calls.iter().all(|c| !c.mutating), "{mode}");
        assert!(report.verification.is_some_and(|v| v.passed));
        for call in &report.api_calls {
            assert!(fix
                .required_permissions()
                .iter()
                .any(|p| p.action == role_action(call)));
        }
    }
    assert!(double.violations().is_empty(), "{:?}", double.violations());
}

#[tokio::test]
async fn a_busy_vm_is_left_running_with_the_reason() {
    let (double, arm) = stand_in().await;
    let vm = double.vm(SUBSCRIPTION, GROUP, "api-1", "running");
    double.cpu(&vm, Some(37.5));
    let event = write_event(&vm, "Microsoft.Compute/virtualMachines/write");
    let report = run(&arm, &event, Action::StopIdleInstance, Mode::Apply).await;
    assert_eq!(report.status, RemediationStatus::Skipped);
    assert!(report.summary.contains("above 5 %"), "{}", report.summary);
    assert_eq!(double.power_state(&vm).as_deref(), Some("running"));

    let quiet = double.vm(SUBSCRIPTION, GROUP, "api-2", "running");
    double.cpu(&quiet, None);
    let event = write_event(&quiet, "Microsoft.Compute/virtualMachines/write");
    let report = run(&arm, &event, Action::StopIdleInstance, Mode::Apply).await;
    assert_eq!(
        report.status,
        RemediationStatus::Skipped,
        "no data is never idle"
    );
    assert!(
        report.summary.contains("no CPU datapoints"),
        "{}",
        report.summary
    );
    assert_eq!(double.power_state(&quiet).as_deref(), Some("running"));
}

#[tokio::test]
async fn a_rule_that_also_serves_the_web_is_narrowed_not_deleted() {
    let (double, arm) = stand_in().await;
    let nsg = double.nsg(SUBSCRIPTION, GROUP, "edge-nsg");
    double.security_rule(
        &nsg,
        "mixed",
        json!({
            "protocol": "*", "sourcePortRange": "*", "destinationPortRanges": ["22", "443"],
            "sourceAddressPrefix": "0.0.0.0/0", "destinationAddressPrefix": "*",
            "access": "Allow", "priority": 200, "direction": "Inbound"
        }),
    );
    let event = write_event(&nsg, "Microsoft.Network/networkSecurityGroups/write");
    let report = run(&arm, &event, Action::RevokeOpenIngress, Mode::Apply).await;
    assert_eq!(
        report.status,
        RemediationStatus::Remediated,
        "{}",
        report.summary
    );
    let group = double.resource(&nsg).expect("the group");
    let rules = group["properties"]["securityRules"]
        .as_array()
        .expect("rules");
    assert_eq!(rules.len(), 1);
    assert_eq!(
        rules[0]["properties"]["destinationPortRanges"],
        json!(["443"])
    );
    assert!(report
        .undo
        .is_some_and(|u| u.contains("--destination-port-ranges 22 443")));
    assert!(double.violations().is_empty(), "{:?}", double.violations());
}

#[tokio::test]
async fn an_admin_rule_is_narrowed_to_the_networks_the_approval_keeps() {
    let (double, arm) = stand_in().await;
    let nsg = double.nsg(SUBSCRIPTION, GROUP, "office-nsg");
    double.security_rule(&nsg, "rdp-anywhere", rdp_rule());
    let event = write_event(&nsg, "Microsoft.Network/networkSecurityGroups/write");
    let conditions = Conditions {
        keep_networks: vec!["203.0.113.0/24".into()],
        ..Conditions::default()
    };
    let report = run_with(
        &arm,
        &event,
        Action::RevokeOpenIngress,
        Mode::Apply,
        &conditions,
    )
    .await;
    assert_eq!(
        report.status,
        RemediationStatus::Remediated,
        "{}",
        report.summary
    );
    let group = double.resource(&nsg).expect("the group");
    let rules = group["properties"]["securityRules"]
        .as_array()
        .expect("rules");
    assert_eq!(rules.len(), 1, "the rule is kept, not deleted");
    assert_eq!(
        rules[0]["properties"]["sourceAddressPrefixes"],
        json!(["203.0.113.0/24"])
    );
    assert!(rules[0]["properties"].get("sourceAddressPrefix").is_none());
    assert!(report
        .steps
        .iter()
        .any(|s| s.contains("Narrowed rule rdp-anywhere to 203.0.113.0/24")));
    assert!(double.violations().is_empty(), "{:?}", double.violations());
}

async fn run(
    arm: &ArmClient,
    event: &UnifiedEvent,
    action: Action,
    mode: Mode,
) -> escher_core::remediate::RemediationReport {
    run_with(arm, event, action, mode, &Conditions::default()).await
}

async fn run_with(
    arm: &ArmClient,
    event: &UnifiedEvent,
    action: Action,
    mode: Mode,
    conditions: &Conditions,
) -> escher_core::remediate::RemediationReport {
    let fixes = azure_fixes(arm.clone(), None);
    let fix = fixes
        .lookup(action, &event.resource.kind)
        .unwrap_or_else(|| panic!("{action} on {}", event.resource.kind));
    fix.remediate(&RemediationRequest {
        event,
        action,
        conditions,
        mode,
    })
    .await
    .expect("the fix ran")
}
