//! `restart_service` on moto, through the real AWS SDK for Rust: an ECS service that cannot
//! keep its tasks up and an instance failing its status check, each restarted (and checked
//! by the test's own reads), already fine, over the approval's restarts per hour, in a dry
//! run, and left alone where a restart cannot help.
//!
//! `tests/emulators.sh start` writes `ESCHER_TEST_AWS_ENDPOINT`; without it the tests print a
//! notice and return, unless `ESCHER_REQUIRE_EMULATORS=1`, when they fail.

mod common;

use std::time::Duration as StdDuration;

use chrono::Utc;
use common::{assert_no_mutating_call, assert_verified, moto, normalize_one, run};
use escher_core::approvals::{Action, Conditions};
use escher_core::remediate::{Mode, RemediationStatus};
use escher_core::{EventType, UnifiedEvent};
use escher_test_support::fixtures::aws;
use escher_test_support::moto::{cloudwatch, ecs, ACCOUNT};
use escher_test_support::names::unique;
use serde_json::json;

const REGION: &str = "us-east-1";
const RESTART: Action = Action::RestartService;
const LEDGER_TAG: &str = "escher:restarts";

fn service_event(arn: &str, name: &str, level: &str) -> UnifiedEvent {
    let event = normalize_one(&aws::ecs_service_event(arn, name, level, ACCOUNT, REGION));
    assert_eq!(event.event_type, EventType::ServiceHealth);
    assert_eq!(event.resource.kind, "ecs_service");
    event
}

/// Plays ECS: once the fix started a new deployment, the service's tasks come up.
fn tasks_come_up_after_a_new_deployment(
    ecs_client: aws_sdk_ecs::Client,
    cluster: String,
    name: String,
) {
    tokio::spawn(async move {
        let (_, _, first) = ecs::counts(&ecs_client, &cluster, &name)
            .await
            .expect("counts");
        for _ in 0..200 {
            let (_, _, now) = ecs::counts(&ecs_client, &cluster, &name)
                .await
                .expect("counts");
            if now != first {
                ecs::settle(&ecs_client, &cluster, &name)
                    .await
                    .expect("settle");
                return;
            }
            tokio::time::sleep(StdDuration::from_millis(50)).await;
        }
    });
}

async fn ledger(ecs_client: &aws_sdk_ecs::Client, arn: &str) -> Option<String> {
    ecs_client
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .expect("ListTagsForResource")
        .tags()
        .iter()
        .find(|t| t.key() == Some(LEDGER_TAG))
        .and_then(|t| t.value().map(str::to_string))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_impaired_ecs_service_gets_a_new_deployment_within_the_hourly_limit() {
    let Some(moto) = moto(REGION).await else {
        return;
    };
    let ecs_client = aws_sdk_ecs::Client::new(&moto.config);
    let fix = moto.fix(RESTART, "ecs_service");
    let defaults = Conditions::default();

    // moto starts none of the 2 tasks: the service is impaired.
    let (cluster, name, arn) = ecs::service(&ecs_client, 2).await.expect("service");
    let (_, _, before) = ecs::counts(&ecs_client, &cluster, &name).await.unwrap();

    let dry = run(
        fix,
        &service_event(&arn, "SERVICE_TASK_START_IMPAIRED", "WARN"),
        RESTART,
        &defaults,
        Mode::DryRun,
    )
    .await;
    assert_eq!(dry.status, RemediationStatus::WouldRemediate, "{dry:#?}");
    assert_no_mutating_call(&dry);
    assert_eq!(
        ecs::counts(&ecs_client, &cluster, &name).await.unwrap().2,
        before
    );

    let event = service_event(&arn, "SERVICE_TASK_START_IMPAIRED", "WARN");
    tasks_come_up_after_a_new_deployment(ecs_client.clone(), cluster.clone(), name.clone());
    let report = run(fix, &event, RESTART, &defaults, Mode::Apply).await;
    assert_eq!(report.status, RemediationStatus::Remediated, "{report:#?}");
    assert_verified(&report);
    let (running, desired, after) = ecs::counts(&ecs_client, &cluster, &name).await.unwrap();
    assert_ne!(after, before, "a new deployment was started");
    assert_eq!((running, desired), (2, 2));
    assert!(
        ledger(&ecs_client, &arn)
            .await
            .is_some_and(|l| l.starts_with(&format!("event={} at=", event.event_id))),
        "the restart is counted on the service"
    );

    let again = run(fix, &event, RESTART, &defaults, Mode::Apply).await;
    assert_eq!(
        again.status,
        RemediationStatus::AlreadyCompliant,
        "{again:#?}"
    );
    assert_no_mutating_call(&again);

    // Healthy now: a later alert about it is already fine.
    let later = run(
        fix,
        &service_event(&arn, "SERVICE_DISCOVERY_INSTANCE_UNHEALTHY", "WARN"),
        RESTART,
        &defaults,
        Mode::Apply,
    )
    .await;
    assert_eq!(
        later.status,
        RemediationStatus::AlreadyCompliant,
        "{later:#?}"
    );
    assert!(later.summary.contains("healthy again"), "{}", later.summary);
    assert_eq!(
        ecs::counts(&ecs_client, &cluster, &name).await.unwrap().2,
        after
    );
}

#[tokio::test]
async fn a_service_restarted_too_often_or_failing_placement_is_left_to_people() {
    let Some(moto) = moto(REGION).await else {
        return;
    };
    let ecs_client = aws_sdk_ecs::Client::new(&moto.config);
    let fix = moto.fix(RESTART, "ecs_service");
    let (cluster, name, arn) = ecs::service(&ecs_client, 2).await.expect("service");
    let (_, _, before) = ecs::counts(&ecs_client, &cluster, &name).await.unwrap();

    // Restarted 10 minutes ago already; the approval allows one an hour.
    let ten_minutes_ago = Utc::now().timestamp() - 600;
    ecs_client
        .tag_resource()
        .resource_arn(&arn)
        .tags(
            aws_sdk_ecs::types::Tag::builder()
                .key(LEDGER_TAG)
                .value(format!("event=aws-earlier at={ten_minutes_ago}"))
                .build(),
        )
        .send()
        .await
        .expect("TagResource");
    let once = Conditions {
        max_restarts_per_hour: Some(1),
        ..Conditions::default()
    };
    let refused = run(
        fix,
        &service_event(&arn, "SERVICE_TASK_START_IMPAIRED", "WARN"),
        RESTART,
        &once,
        Mode::Apply,
    )
    .await;
    assert_eq!(refused.status, RemediationStatus::Skipped, "{refused:#?}");
    assert!(
        refused.summary.contains("max_restarts_per_hour"),
        "{}",
        refused.summary
    );
    assert!(
        refused.summary.contains("crash loop"),
        "{}",
        refused.summary
    );
    assert_no_mutating_call(&refused);

    // Tasks that cannot be placed would not be placed after a restart either.
    let placement = service_event(&arn, "SERVICE_TASK_PLACEMENT_FAILURE", "ERROR");
    let left = run(
        fix,
        &placement,
        RESTART,
        &Conditions::default(),
        Mode::Apply,
    )
    .await;
    assert_eq!(left.status, RemediationStatus::Skipped, "{left:#?}");
    assert!(
        left.summary.contains("SERVICE_TASK_PLACEMENT_FAILURE"),
        "{}",
        left.summary
    );
    assert!(left.api_calls.is_empty());
    assert_eq!(
        ecs::counts(&ecs_client, &cluster, &name).await.unwrap().2,
        before
    );
}

fn status_check_event(alarm: &str, instance: &str, metric: &str) -> UnifiedEvent {
    let event = normalize_one(
        &aws::FiringAlarm {
            name: alarm,
            namespace: "AWS/EC2",
            metric,
            dimensions: json!({"InstanceId": instance}),
            threshold: 1.0,
            above: true,
        }
        .payload(ACCOUNT, REGION),
    );
    assert_eq!(event.event_type, EventType::ServiceHealth);
    event
}

async fn instance_ledger(moto: &common::Moto, instance: &str) -> Option<String> {
    moto.ec2
        .describe_instances()
        .instance_ids(instance)
        .send()
        .await
        .expect("DescribeInstances")
        .reservations()[0]
        .instances()[0]
        .tags()
        .iter()
        .find(|t| t.key() == Some(LEDGER_TAG))
        .and_then(|t| t.value().map(str::to_string))
}

#[tokio::test]
async fn an_instance_failing_its_status_check_is_rebooted_and_checked() {
    let Some(moto) = moto(REGION).await else {
        return;
    };
    let fix = moto.fix(RESTART, "ec2_instance");
    let defaults = Conditions::default();
    let instance = moto.running_instance().await;

    let dry = run(
        fix,
        &status_check_event(
            &unique("check dry"),
            &instance,
            "StatusCheckFailed_Instance",
        ),
        RESTART,
        &defaults,
        Mode::DryRun,
    )
    .await;
    assert_eq!(dry.status, RemediationStatus::WouldRemediate, "{dry:#?}");
    assert_no_mutating_call(&dry);
    assert_eq!(instance_ledger(&moto, &instance).await, None);

    let event = status_check_event(
        &unique("check failed"),
        &instance,
        "StatusCheckFailed_Instance",
    );
    let report = run(fix, &event, RESTART, &defaults, Mode::Apply).await;
    assert_eq!(report.status, RemediationStatus::Remediated, "{report:#?}");
    assert_verified(&report);
    assert!(report
        .api_calls
        .iter()
        .any(|c| c.operation == "RebootInstances" && c.mutating));
    assert!(instance_ledger(&moto, &instance)
        .await
        .is_some_and(|l| l.starts_with(&format!("event={}", event.event_id))));
    let again = run(fix, &event, RESTART, &defaults, Mode::Apply).await;
    assert_eq!(
        again.status,
        RemediationStatus::AlreadyCompliant,
        "{again:#?}"
    );
    assert_no_mutating_call(&again);

    // A second failure within the hour is within the default 2; a third is not.
    let second = run(
        fix,
        &status_check_event(&unique("check failed"), &instance, "StatusCheckFailed"),
        RESTART,
        &defaults,
        Mode::Apply,
    )
    .await;
    assert_eq!(second.status, RemediationStatus::Remediated, "{second:#?}");
    let third = run(
        fix,
        &status_check_event(&unique("check failed"), &instance, "StatusCheckFailed"),
        RESTART,
        &defaults,
        Mode::Apply,
    )
    .await;
    assert_eq!(third.status, RemediationStatus::Skipped, "{third:#?}");
    assert!(
        third.summary.contains("2 time(s) in the last hour"),
        "{}",
        third.summary
    );
    assert_no_mutating_call(&third);

    // Already fine: the alarm has recovered.
    let calm = moto.running_instance().await;
    let alarm = unique("check recovered");
    cloudwatch::recovered_alarm(
        &moto.cloudwatch,
        &alarm,
        "AWS/EC2",
        "StatusCheckFailed_Instance",
    )
    .await
    .expect("alarm");
    let ok = run(
        fix,
        &status_check_event(&alarm, &calm, "StatusCheckFailed_Instance"),
        RESTART,
        &defaults,
        Mode::Apply,
    )
    .await;
    assert_eq!(ok.status, RemediationStatus::AlreadyCompliant, "{ok:#?}");
    assert_no_mutating_call(&ok);

    // The host's check: a reboot would not help.
    let system = run(
        fix,
        &status_check_event(&unique("system check"), &calm, "StatusCheckFailed_System"),
        RESTART,
        &defaults,
        Mode::Apply,
    )
    .await;
    assert_eq!(system.status, RemediationStatus::Skipped, "{system:#?}");
    assert!(
        system.summary.contains("stop and start"),
        "{}",
        system.summary
    );
    assert!(system.api_calls.is_empty());
    assert_eq!(instance_ledger(&moto, &calm).await, None);
}
