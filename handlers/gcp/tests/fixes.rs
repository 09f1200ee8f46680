//! Each Google Cloud fix against the contract server: a resource that needs it is fixed, one
//! that does not is left alone, a dry run changes nothing, a resource deleted since the alert
//! and a missing permission are answered with what to do, and throttling is waited out.

mod common;

use common::{bucket_event, firewall_event, instance_event, server, PROJECT, ZONE};
use escher_core::approvals::{Action, Conditions};
use escher_core::remediate::{
    Mode, RemediationError, RemediationReport, RemediationRequest, RemediationStatus,
};
use escher_core::UnifiedEvent;
use escher_gcp::{gcp_fixes, GcpClient};
use escher_test_support::gcp_api::GcpApi;
use serde_json::json;

async fn attempt(
    client: &GcpClient,
    event: &UnifiedEvent,
    action: Action,
    mode: Mode,
    conditions: &Conditions,
) -> Result<RemediationReport, RemediationError> {
    let fixes = gcp_fixes(client.clone(), None);
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
}

async fn run(
    client: &GcpClient,
    event: &UnifiedEvent,
    action: Action,
    mode: Mode,
) -> RemediationReport {
    attempt(client, event, action, mode, &idle_window())
        .await
        .expect("the fix ran")
}

fn idle_window() -> Conditions {
    Conditions {
        min_idle_hours: Some(2.0),
        ..Conditions::default()
    }
}

fn public_members(api: &GcpApi, bucket: &str) -> Vec<String> {
    let (_, policy) = api.bucket_state(bucket).expect("the bucket");
    policy["bindings"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|b| b["members"].as_array().cloned().unwrap_or_default())
        .filter_map(|m| m.as_str().map(str::to_string))
        .filter(|m| m.starts_with("all"))
        .collect()
}

fn prevention(api: &GcpApi, bucket: &str) -> String {
    let (resource, _) = api.bucket_state(bucket).expect("the bucket");
    resource["iamConfiguration"]["publicAccessPrevention"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn no_violations(api: &GcpApi) {
    assert_eq!(api.violations(), Vec::<String>::new());
}

// ---- make_bucket_private ----

#[tokio::test]
async fn a_public_bucket_is_made_private_and_verified() {
    let (api, client) = server().await;
    let event = bucket_event(&api.bucket("web-assets", true));
    let dry = run(&client, &event, Action::MakeBucketPrivate, Mode::DryRun).await;
    assert_eq!(dry.status, RemediationStatus::WouldRemediate);
    assert!(
        dry.summary
            .contains("allUsers holds roles/storage.objectViewer"),
        "{}",
        dry.summary
    );
    assert_eq!(
        public_members(&api, "web-assets"),
        ["allUsers"],
        "a dry run changes nothing"
    );
    assert_eq!(prevention(&api, "web-assets"), "inherited");

    let report = run(&client, &event, Action::MakeBucketPrivate, Mode::Apply).await;
    assert_eq!(
        report.status,
        RemediationStatus::Remediated,
        "{}",
        report.summary
    );
    assert!(public_members(&api, "web-assets").is_empty());
    assert_eq!(prevention(&api, "web-assets"), "enforced");
    let (_, policy) = api.bucket_state("web-assets").expect("the bucket");
    assert!(
        policy["bindings"]
            .to_string()
            .contains("projectOwner:shop-prod-4711"),
        "the other bindings are kept: {policy}"
    );
    assert!(report.verification.as_ref().is_some_and(|v| v.passed));
    let undo = report.undo.expect("an undo");
    assert!(
        undo.contains("--member=allUsers --role=roles/storage.objectViewer"),
        "{undo}"
    );
    let written = api
        .requests()
        .into_iter()
        .find(|r| r.operation.as_deref() == Some("storage.buckets.setIamPolicy"))
        .expect("the policy was written");
    assert_eq!(
        written.body.expect("a body")["etag"],
        "CAE=",
        "written back with the etag read"
    );
    no_violations(&api);
}

#[tokio::test]
async fn a_private_bucket_is_left_alone() {
    let (api, client) = server().await;
    let event = bucket_event(&api.bucket("ledger", false));
    api.update_bucket("ledger", |b, _| {
        b["iamConfiguration"]["publicAccessPrevention"] = json!("enforced")
    });
    let report = run(&client, &event, Action::MakeBucketPrivate, Mode::Apply).await;
    assert_eq!(report.status, RemediationStatus::AlreadyCompliant);
    assert!(report.api_calls.iter().all(|c| !c.mutating));
    no_violations(&api);
}

#[tokio::test]
async fn a_bucket_deleted_since_the_alert_is_a_final_failure_saying_so() {
    let (api, client) = server().await;
    let event = bucket_event("projects/_/buckets/gone-since");
    let error = attempt(
        &client,
        &event,
        Action::MakeBucketPrivate,
        Mode::Apply,
        &Conditions::default(),
    )
    .await
    .expect_err("nothing to fix");
    assert!(!error.is_transient());
    let text = error.to_string();
    assert!(text.contains("b/gone-since"), "{text}");
    assert!(text.contains("deleted since the alert"), "{text}");
    no_violations(&api);
}

#[tokio::test]
async fn a_missing_permission_is_named_so_it_can_be_granted() {
    let (api, client) = server().await;
    let event = bucket_event(&api.bucket("web-assets", true));
    api.deny("storage.buckets.setIamPolicy");
    let error = attempt(
        &client,
        &event,
        Action::MakeBucketPrivate,
        Mode::Apply,
        &Conditions::default(),
    )
    .await
    .expect_err("denied");
    assert!(!error.is_transient());
    let text = error.to_string();
    assert!(
        text.contains("storage.buckets.setIamPolicy on b/web-assets/iam"),
        "{text}"
    );
    assert!(
        text.contains("grant storage.buckets.setIamPolicy to the service account"),
        "{text}"
    );
    match error {
        RemediationError::Failed { api_calls, .. } => assert!(
            api_calls.iter().any(|c| c.error.is_some()),
            "the audit record keeps the failed call"
        ),
        other => panic!("{other}"),
    }
    no_violations(&api);
}

#[tokio::test]
async fn throttling_is_waited_out() {
    let (api, client) = server().await;
    let event = bucket_event(&api.bucket("web-assets", true));
    api.throttle(2, 0);
    let report = run(&client, &event, Action::MakeBucketPrivate, Mode::Apply).await;
    assert_eq!(
        report.status,
        RemediationStatus::Remediated,
        "{}",
        report.summary
    );
    assert_eq!(
        api.requests().iter().filter(|r| r.status == 429).count(),
        2,
        "both throttled answers were retried"
    );
    no_violations(&api);
}

// ---- revoke_open_ingress ----

#[tokio::test]
async fn an_admin_only_rule_is_disabled_and_a_mixed_one_keeps_its_other_ports() {
    let (api, client) = server().await;
    let ssh = api.firewall(
        PROJECT,
        "allow-ssh-anywhere",
        json!({"sourceRanges": ["0.0.0.0/0"], "allowed": [{"IPProtocol": "tcp", "ports": ["22"]}]}),
    );
    let event = firewall_event(&ssh);
    let dry = run(&client, &event, Action::RevokeOpenIngress, Mode::DryRun).await;
    assert_eq!(dry.status, RemediationStatus::WouldRemediate);
    assert!(
        dry.summary.contains(
            "Would change firewall rule allow-ssh-anywhere to be disabled (it opens SSH (22)"
        ),
        "{}",
        dry.summary
    );
    assert_eq!(api.firewall_rule(&ssh).expect("rule")["disabled"], false);
    let report = run(&client, &event, Action::RevokeOpenIngress, Mode::Apply).await;
    assert_eq!(
        report.status,
        RemediationStatus::Remediated,
        "{}",
        report.summary
    );
    assert_eq!(
        api.firewall_rule(&ssh).expect("rule")["disabled"],
        true,
        "kept, disabled"
    );
    assert!(report
        .undo
        .is_some_and(|u| u.contains("allow-ssh-anywhere --project shop-prod-4711 --no-disabled")));

    let mixed = api.firewall(
        PROJECT,
        "web-and-rdp",
        json!({"sourceRanges": ["0.0.0.0/0", "::/0"], "allowed": [{"IPProtocol": "tcp", "ports": ["443", "3389"]}]}),
    );
    let report = run(
        &client,
        &firewall_event(&mixed),
        Action::RevokeOpenIngress,
        Mode::Apply,
    )
    .await;
    assert_eq!(
        report.status,
        RemediationStatus::Remediated,
        "{}",
        report.summary
    );
    let rule = api.firewall_rule(&mixed).expect("rule");
    assert_eq!(
        rule["allowed"],
        json!([{"IPProtocol": "tcp", "ports": ["443"]}])
    );
    assert_eq!(rule["disabled"], false, "the web port stays open");
    no_violations(&api);
}

#[tokio::test]
async fn an_admin_rule_is_narrowed_to_the_networks_the_approval_keeps() {
    let (api, client) = server().await;
    let rdp = api.firewall(
        PROJECT,
        "rdp-anywhere",
        json!({"sourceRanges": ["0.0.0.0/0"], "allowed": [{"IPProtocol": "tcp", "ports": ["3389"]}]}),
    );
    let conditions = Conditions {
        keep_networks: vec!["203.0.113.0/24".into()],
        ..Conditions::default()
    };
    let report = attempt(
        &client,
        &firewall_event(&rdp),
        Action::RevokeOpenIngress,
        Mode::Apply,
        &conditions,
    )
    .await
    .expect("fixed");
    assert_eq!(
        report.status,
        RemediationStatus::Remediated,
        "{}",
        report.summary
    );
    let rule = api.firewall_rule(&rdp).expect("rule");
    assert_eq!(rule["sourceRanges"], json!(["203.0.113.0/24"]));
    assert_eq!(rule["disabled"], false);
    no_violations(&api);
}

#[tokio::test]
async fn a_rule_open_only_to_the_office_is_left_alone() {
    let (api, client) = server().await;
    let office = api.firewall(
        PROJECT,
        "ssh-office",
        json!({"sourceRanges": ["203.0.113.0/24"], "allowed": [{"IPProtocol": "tcp", "ports": ["22"]}]}),
    );
    let report = run(
        &client,
        &firewall_event(&office),
        Action::RevokeOpenIngress,
        Mode::Apply,
    )
    .await;
    assert_eq!(report.status, RemediationStatus::AlreadyCompliant);
    assert!(report.api_calls.iter().all(|c| !c.mutating));
    no_violations(&api);
}

#[tokio::test]
async fn a_firewall_change_that_fails_says_what_compute_engine_answered() {
    let (api, client) = server().await;
    let ssh = api.firewall(
        PROJECT,
        "allow-ssh-anywhere",
        json!({"sourceRanges": ["0.0.0.0/0"], "allowed": [{"IPProtocol": "tcp", "ports": ["22"]}]}),
    );
    api.fail_next_operation("The network is being deleted.");
    let error = attempt(
        &client,
        &firewall_event(&ssh),
        Action::RevokeOpenIngress,
        Mode::Apply,
        &Conditions::default(),
    )
    .await
    .expect_err("the operation failed");
    let text = error.to_string();
    assert!(text.contains("compute.firewalls.patch"), "{text}");
    assert!(text.contains("The network is being deleted."), "{text}");
    assert_eq!(api.firewall_rule(&ssh).expect("rule")["disabled"], false);
    no_violations(&api);
}

#[tokio::test]
async fn a_denied_firewall_update_names_the_permission() {
    let (api, client) = server().await;
    let ssh = api.firewall(
        PROJECT,
        "allow-ssh-anywhere",
        json!({"sourceRanges": ["0.0.0.0/0"], "allowed": [{"IPProtocol": "tcp", "ports": ["22"]}]}),
    );
    api.deny("compute.firewalls.update");
    let error = attempt(
        &client,
        &firewall_event(&ssh),
        Action::RevokeOpenIngress,
        Mode::Apply,
        &Conditions::default(),
    )
    .await
    .expect_err("denied");
    assert!(
        error.to_string().contains("grant compute.firewalls.update"),
        "{error}"
    );
    no_violations(&api);
}

// ---- stop_idle_instance ----

#[tokio::test]
async fn an_idle_vm_is_stopped_after_its_operation_ends() {
    let (api, client) = server().await;
    let vm = api.instance(PROJECT, ZONE, "batch-worker-3", "RUNNING");
    api.cpu(&vm, Some(0.8));
    api.lro_polls(3);
    api.page_size(7);
    let event = instance_event(&vm);
    let dry = run(&client, &event, Action::StopIdleInstance, Mode::DryRun).await;
    assert_eq!(
        dry.status,
        RemediationStatus::WouldRemediate,
        "{}",
        dry.summary
    );
    assert_eq!(api.instance_status(&vm).as_deref(), Some("RUNNING"));
    let report = run(&client, &event, Action::StopIdleInstance, Mode::Apply).await;
    assert_eq!(
        report.status,
        RemediationStatus::Remediated,
        "{}",
        report.summary
    );
    assert!(
        report.summary.contains("CPU averaged 0.8 %"),
        "{}",
        report.summary
    );
    assert_eq!(api.instance_status(&vm).as_deref(), Some("TERMINATED"));
    let waits = api
        .requests()
        .iter()
        .filter(|r| r.operation.as_deref() == Some("compute.zoneOperations.wait"))
        .count();
    assert_eq!(waits, 4, "three polls while running, then DONE");
    let pages = api
        .requests()
        .iter()
        .filter(|r| r.operation.as_deref() == Some("monitoring.projects.timeSeries.list"))
        .count();
    assert!(
        pages >= 2 * 4,
        "24 five-minute points in pages of 7, each run: {pages}"
    );
    assert!(report.undo.is_some_and(
        |u| u.contains("gcloud compute instances start batch-worker-3 --zone europe-west3-b")
    ));
    no_violations(&api);
}

#[tokio::test]
async fn a_busy_or_unmeasured_vm_is_left_running_with_the_reason() {
    let (api, client) = server().await;
    let busy = api.instance(PROJECT, ZONE, "api-1", "RUNNING");
    api.cpu(&busy, Some(37.5));
    let report = run(
        &client,
        &instance_event(&busy),
        Action::StopIdleInstance,
        Mode::Apply,
    )
    .await;
    assert_eq!(report.status, RemediationStatus::Skipped);
    assert!(report.summary.contains("above 5 %"), "{}", report.summary);
    assert_eq!(api.instance_status(&busy).as_deref(), Some("RUNNING"));

    let quiet = api.instance(PROJECT, ZONE, "api-2", "RUNNING");
    api.cpu(&quiet, None);
    let report = run(
        &client,
        &instance_event(&quiet),
        Action::StopIdleInstance,
        Mode::Apply,
    )
    .await;
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
    assert_eq!(api.instance_status(&quiet).as_deref(), Some("RUNNING"));
    no_violations(&api);
}

#[tokio::test]
async fn a_stopped_vm_is_already_fine_and_a_deleted_one_says_so() {
    let (api, client) = server().await;
    let stopped = api.instance(PROJECT, ZONE, "old-batch", "TERMINATED");
    let report = run(
        &client,
        &instance_event(&stopped),
        Action::StopIdleInstance,
        Mode::Apply,
    )
    .await;
    assert_eq!(report.status, RemediationStatus::AlreadyCompliant);
    let gone = format!("projects/{PROJECT}/zones/{ZONE}/instances/deleted-vm");
    let error = attempt(
        &client,
        &instance_event(&gone),
        Action::StopIdleInstance,
        Mode::Apply,
        &idle_window(),
    )
    .await
    .expect_err("gone");
    assert!(
        error.to_string().contains("deleted since the alert"),
        "{error}"
    );
    no_violations(&api);
}

#[tokio::test]
async fn a_denied_stop_names_the_permission_and_throttling_is_waited_out() {
    let (api, client) = server().await;
    let vm = api.instance(PROJECT, ZONE, "batch-worker-4", "RUNNING");
    api.cpu(&vm, Some(1.0));
    api.deny("compute.instances.stop");
    let error = attempt(
        &client,
        &instance_event(&vm),
        Action::StopIdleInstance,
        Mode::Apply,
        &idle_window(),
    )
    .await
    .expect_err("denied");
    assert!(
        error.to_string().contains("grant compute.instances.stop"),
        "{error}"
    );
    assert_eq!(api.instance_status(&vm).as_deref(), Some("RUNNING"));

    let (api, client) = server().await;
    let vm = api.instance(PROJECT, ZONE, "batch-worker-5", "RUNNING");
    api.cpu(&vm, Some(1.0));
    api.throttle(1, 0);
    let report = run(
        &client,
        &instance_event(&vm),
        Action::StopIdleInstance,
        Mode::Apply,
    )
    .await;
    assert_eq!(
        report.status,
        RemediationStatus::Remediated,
        "{}",
        report.summary
    );
    no_violations(&api);
}
