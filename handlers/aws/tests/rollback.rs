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
use escher_test_support::moto::{ecs, ACCOUNT};
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
        nothing
            .summary
            .contains("no earlier active task definition"),
        "{}",
        nothing.summary
    );
    assert_no_mutating_call(&nothing);
    let _ = (cluster, name);
}
