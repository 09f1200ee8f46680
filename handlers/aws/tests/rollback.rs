//! `rollback_deployment` on moto, through the real AWS SDK for Rust: an ECS service whose
//! deployment failed, put back on the task definition it ran before (and checked by the
//! test's own reads), already fine when ECS moved on, over the approval's window, with
//! nothing to go back to, and in a dry run.
//!
//! `tests/emulators.sh start` writes `ESCHER_TEST_AWS_ENDPOINT`; without it the tests print a
//! notice and return, unless `ESCHER_REQUIRE_EMULATORS=1`, when they fail.

mod common;

use std::time::Duration as StdDuration;

use common::{assert_no_mutating_call, assert_verified, moto, normalize_one, run};
use escher_core::approvals::{Action, Conditions};
use escher_core::remediate::{Mode, RemediationStatus};
use escher_core::{EventType, UnifiedEvent};
use escher_test_support::fixtures::{aws, set};
use escher_test_support::moto::{cloudwatch, ecs, lambda, ACCOUNT};
use escher_test_support::names::unique;
use serde_json::json;

const REGION: &str = "us-east-1";
const ROLLBACK: Action = Action::RollbackDeployment;

fn failed_deployment(arn: &str, deployment: &str) -> UnifiedEvent {
    let mut payload =
        aws::ecs_service_event(arn, "SERVICE_DEPLOYMENT_FAILED", "ERROR", ACCOUNT, REGION);
    set(&mut payload, "/detail/deploymentId", json!(deployment));
    let event = normalize_one(&payload);
    assert_eq!(event.event_type, EventType::DeploymentFailed);
    event
}

/// Plays ECS: once the service is on another task definition, its tasks come up.
fn tasks_come_up_after_the_change(client: aws_sdk_ecs::Client, cluster: String, name: String) {
    tokio::spawn(async move {
        let first = ecs::task_definition(&client, &cluster, &name)
            .await
            .expect("describe");
        for _ in 0..200 {
            let now = ecs::task_definition(&client, &cluster, &name)
                .await
                .expect("describe");
            if now != first {
                ecs::settle(&client, &cluster, &name).await.expect("settle");
                return;
            }
            tokio::time::sleep(StdDuration::from_millis(50)).await;
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_ecs_deployment_goes_back_to_the_task_definition_before() {
    let Some(moto) = moto(REGION).await else {
        return;
    };
    let client = aws_sdk_ecs::Client::new(&moto.config);
    let fix = moto.fix(ROLLBACK, "ecs_service");
    let defaults = Conditions::default();

    // Revision 2 deployed over revision 1; its 2 tasks never start.
    let (cluster, name, arn) = ecs::service_with_revisions(&client, 2, 2)
        .await
        .expect("service");
    let (_, _, deployment) = ecs::counts(&client, &cluster, &name).await.unwrap();
    let on = |td: String| {
        td.rsplit_once('/')
            .map(|(_, s)| s.to_string())
            .unwrap_or(td)
    };
    let before = on(ecs::task_definition(&client, &cluster, &name)
        .await
        .unwrap());
    assert!(before.ends_with(":2"), "{before}");

    let dry = run(
        fix,
        &failed_deployment(&arn, &deployment),
        ROLLBACK,
        &defaults,
        Mode::DryRun,
    )
    .await;
    assert_eq!(dry.status, RemediationStatus::WouldRemediate, "{dry:#?}");
    assert_no_mutating_call(&dry);
    assert_eq!(
        on(ecs::task_definition(&client, &cluster, &name)
            .await
            .unwrap()),
        before
    );

    // Past the approval's window: a person decides.
    let tight = Conditions {
        rollback_within_hours: Some(0.0),
        ..Conditions::default()
    };
    tokio::time::sleep(StdDuration::from_millis(1100)).await;
    let late = run(
        fix,
        &failed_deployment(&arn, &deployment),
        ROLLBACK,
        &tight,
        Mode::Apply,
    )
    .await;
    assert_eq!(late.status, RemediationStatus::Skipped, "{late:#?}");
    assert!(
        late.summary.contains("rollback_within_hours"),
        "{}",
        late.summary
    );
    assert_no_mutating_call(&late);

    let event = failed_deployment(&arn, &deployment);
    tasks_come_up_after_the_change(client.clone(), cluster.clone(), name.clone());
    let report = run(fix, &event, ROLLBACK, &defaults, Mode::Apply).await;
    assert_eq!(report.status, RemediationStatus::Remediated, "{report:#?}");
    assert_verified(&report);
    let after = on(ecs::task_definition(&client, &cluster, &name)
        .await
        .unwrap());
    assert_eq!(after, before.replace(":2", ":1"));
    assert!(
        report
            .undo
            .as_deref()
            .is_some_and(|u| u.contains(&format!("--task-definition {before}"))),
        "{:?}",
        report.undo
    );
    let again = run(fix, &event, ROLLBACK, &defaults, Mode::Apply).await;
    assert_eq!(
        again.status,
        RemediationStatus::AlreadyCompliant,
        "{again:#?}"
    );
    assert_no_mutating_call(&again);
}

#[tokio::test]
async fn a_deployment_ecs_moved_on_from_or_with_nothing_before_it_is_left_alone() {
    let Some(moto) = moto(REGION).await else {
        return;
    };
    let client = aws_sdk_ecs::Client::new(&moto.config);
    let fix = moto.fix(ROLLBACK, "ecs_service");
    let defaults = Conditions::default();

    let (cluster, name, arn) = ecs::service_with_revisions(&client, 2, 1)
        .await
        .expect("service");
    let moved_on = run(
        fix,
        &failed_deployment(&arn, "ecs-svc/1234567890"),
        ROLLBACK,
        &defaults,
        Mode::Apply,
    )
    .await;
    assert_eq!(
        moved_on.status,
        RemediationStatus::AlreadyCompliant,
        "{moved_on:#?}"
    );
    assert!(
        moved_on.summary.contains("already moved"),
        "{}",
        moved_on.summary
    );
    assert_no_mutating_call(&moved_on);

    let (first, only_name, only_arn) = ecs::service_with_revisions(&client, 1, 1)
        .await
        .expect("service");
    let (_, _, deployment) = ecs::counts(&client, &first, &only_name).await.unwrap();
    let nothing = run(
        fix,
        &failed_deployment(&only_arn, &deployment),
        ROLLBACK,
        &defaults,
        Mode::Apply,
    )
    .await;
    assert_eq!(nothing.status, RemediationStatus::Skipped, "{nothing:#?}");
    assert!(
        nothing.summary.contains("nothing earlier than"),
        "{}",
        nothing.summary
    );
    assert_no_mutating_call(&nothing);
    let _ = (cluster, name);
}

fn alias_errors(alarm: &str, function: &str, alias: &str) -> UnifiedEvent {
    let event = normalize_one(
        &aws::FiringAlarm {
            name: alarm,
            namespace: "AWS/Lambda",
            metric: "Errors",
            dimensions: json!({"FunctionName": function, "Resource": format!("{function}:{alias}")}),
            threshold: 5.0,
            above: true,
        }
        .payload(ACCOUNT, REGION),
    );
    assert_eq!(event.event_type, EventType::DeploymentFailed);
    assert_eq!(event.resource.kind, "lambda_function");
    event
}

#[tokio::test]
async fn a_lambda_alias_failing_after_a_release_goes_back_to_the_version_before() {
    let Some(moto) = moto(REGION).await else {
        return;
    };
    let lambda = aws_sdk_lambda::Client::new(&moto.config);
    let fix = moto.fix(ROLLBACK, "lambda_function");
    let defaults = Conditions::default();
    let version = |function: String| {
        let lambda = lambda.clone();
        async move {
            lambda::alias_version(&lambda, &function, "live")
                .await
                .expect("alias")
        }
    };

    let function = lambda::function_with_alias(&lambda, &moto.config, ACCOUNT, 3, "live")
        .await
        .expect("function");
    assert_eq!(version(function.clone()).await, "3");
    let dry = run(
        fix,
        &alias_errors(&unique("live errors"), &function, "live"),
        ROLLBACK,
        &defaults,
        Mode::DryRun,
    )
    .await;
    assert_eq!(dry.status, RemediationStatus::WouldRemediate, "{dry:#?}");
    assert!(dry.summary.contains("from 3 to 2"), "{}", dry.summary);
    assert_no_mutating_call(&dry);
    assert_eq!(version(function.clone()).await, "3");

    let event = alias_errors(&unique("live errors"), &function, "live");
    let report = run(fix, &event, ROLLBACK, &defaults, Mode::Apply).await;
    assert_eq!(report.status, RemediationStatus::Remediated, "{report:#?}");
    assert_verified(&report);
    assert_eq!(version(function.clone()).await, "2");
    assert!(
        report
            .undo
            .as_deref()
            .is_some_and(|u| u.contains("--function-version 3")),
        "{:?}",
        report.undo
    );
    let again = run(fix, &event, ROLLBACK, &defaults, Mode::Apply).await;
    assert_eq!(
        again.status,
        RemediationStatus::AlreadyCompliant,
        "{again:#?}"
    );
    assert_no_mutating_call(&again);
    assert_eq!(version(function.clone()).await, "2");

    // Already fine: the alarm recovered. Past the window: a person decides. Nothing before
    // version 1.
    let other = lambda::function_with_alias(&lambda, &moto.config, ACCOUNT, 2, "live")
        .await
        .expect("function");
    let alarm = unique("live recovered");
    cloudwatch::recovered_alarm(&moto.cloudwatch, &alarm, "AWS/Lambda", "Errors")
        .await
        .expect("alarm");
    let ok = run(
        fix,
        &alias_errors(&alarm, &other, "live"),
        ROLLBACK,
        &defaults,
        Mode::Apply,
    )
    .await;
    assert_eq!(ok.status, RemediationStatus::AlreadyCompliant, "{ok:#?}");
    tokio::time::sleep(StdDuration::from_millis(1100)).await;
    let tight = Conditions {
        rollback_within_hours: Some(0.0),
        ..Conditions::default()
    };
    let late = run(
        fix,
        &alias_errors(&unique("live errors"), &other, "live"),
        ROLLBACK,
        &tight,
        Mode::Apply,
    )
    .await;
    assert_eq!(late.status, RemediationStatus::Skipped, "{late:#?}");
    assert!(
        late.summary.contains("rollback_within_hours"),
        "{}",
        late.summary
    );
    assert_no_mutating_call(&late);
    assert_eq!(version(other).await, "2");

    let first = lambda::function_with_alias(&lambda, &moto.config, ACCOUNT, 1, "live")
        .await
        .expect("function");
    let nothing = run(
        fix,
        &alias_errors(&unique("live errors"), &first, "live"),
        ROLLBACK,
        &defaults,
        Mode::Apply,
    )
    .await;
    assert_eq!(nothing.status, RemediationStatus::Skipped, "{nothing:#?}");
    assert!(
        nothing.summary.contains("nothing earlier than 1"),
        "{}",
        nothing.summary
    );
}
