//! `rollback_deployment` on CloudFormation stacks stuck after a failed update, through the
//! real AWS SDK for Rust against the CloudFormation stand-in (moto plays neither a stuck
//! stack nor the rollback calls; the stand-in holds every request to the published API
//! model): continued or started, verified by the stack's status, once per event; left alone
//! without a service role, past the approval's window, in states a rollback would make
//! worse; a rollback that fails again says what a person does next; dry run.

mod common;

use std::collections::BTreeMap;

use common::{assert_no_mutating_call, normalize_one, run};
use escher_aws::{aws_fixes, AwsClients};
use escher_core::approvals::{Action, Conditions};
use escher_core::remediate::{Mode, Remediation, RemediationReport, RemediationStatus};
use escher_core::{EventType, UnifiedEvent};
use escher_test_support::cloudformation::{CloudFormationStandIn, StackSeed};
use escher_test_support::fixtures::aws;

const ROLLBACK: Action = Action::RollbackDeployment;

struct Setup {
    cfn: CloudFormationStandIn,
    fixes: escher_core::fixes::FixRegistry,
}

impl Setup {
    async fn start() -> Setup {
        let cfn = CloudFormationStandIn::start().await;
        let fixes = aws_fixes(AwsClients::new(&cfn.config().await));
        Setup { cfn, fixes }
    }

    fn fix(&self) -> &dyn Remediation {
        self.fixes
            .lookup(ROLLBACK, "cloudformation_stack")
            .expect("AWS registers rollback_deployment for stacks")
    }

    /// The event CloudFormation sends about the seeded stack.
    fn event(&self, seed: StackSeed) -> UnifiedEvent {
        let status = seed.status.clone();
        let id = self.cfn.seed(seed);
        let event = normalize_one(&aws::stack_status_event(
            &id,
            &status,
            "123456789012",
            "us-east-1",
        ));
        assert_eq!(event.event_type, EventType::DeploymentFailed);
        assert_eq!(event.resource.kind, "cloudformation_stack");
        event
    }

    async fn apply(&self, event: &UnifiedEvent) -> RemediationReport {
        run(
            self.fix(),
            event,
            ROLLBACK,
            &Conditions::default(),
            Mode::Apply,
        )
        .await
    }

    fn assert_contract_kept(&self) {
        assert_eq!(self.cfn.violations(), Vec::<String>::new());
    }

    fn calls_of(&self, action: &str) -> Vec<BTreeMap<String, String>> {
        self.cfn.requests_of(action)
    }
}

#[tokio::test]
async fn a_stack_whose_rollback_failed_is_rolled_back_once_per_event() {
    let s = Setup::start().await;
    let event = s.event(StackSeed::stuck("checkout-api"));

    let report = s.apply(&event).await;
    assert_eq!(
        report.status,
        RemediationStatus::Remediated,
        "{}",
        report.summary
    );
    let verification = report.verification.as_ref().expect("verified");
    assert!(verification.passed, "{}", verification.failed_checks());
    assert!(report.summary.contains("(verified)"), "{}", report.summary);
    assert_eq!(s.cfn.status("checkout-api"), "UPDATE_ROLLBACK_COMPLETE");
    let continued = s.calls_of("ContinueUpdateRollback");
    assert_eq!(continued.len(), 1);
    assert_eq!(continued[0]["StackName"], event.resource.id);
    assert!(
        continued[0]["ClientRequestToken"].starts_with("escher-"),
        "the rollback carries the event's token: {:?}",
        continued[0]
    );
    assert!(
        !continued[0]
            .keys()
            .any(|k| k.starts_with("ResourcesToSkip")),
        "no resource is ever skipped: {:?}",
        continued[0]
    );

    let again = s.apply(&event).await;
    assert_eq!(
        again.status,
        RemediationStatus::AlreadyCompliant,
        "{}",
        again.summary
    );
    assert_no_mutating_call(&again);
    assert_eq!(s.calls_of("ContinueUpdateRollback").len(), 1);

    let verified = s
        .fix()
        .verify(&escher_core::remediate::RemediationRequest {
            event: &event,
            action: ROLLBACK,
            conditions: &Conditions::default(),
            mode: Mode::Apply,
        })
        .await
        .expect("verify");
    assert!(verified.passed, "{}", verified.failed_checks());
    s.assert_contract_kept();
}

#[tokio::test]
async fn an_update_that_failed_with_rollback_disabled_is_rolled_back() {
    let s = Setup::start().await;
    let event = s.event(StackSeed {
        status: "UPDATE_FAILED".into(),
        ..StackSeed::stuck("orders-api")
    });
    let report = s.apply(&event).await;
    assert_eq!(
        report.status,
        RemediationStatus::Remediated,
        "{}",
        report.summary
    );
    assert!(report.verification.as_ref().is_some_and(|v| v.passed));
    assert_eq!(s.calls_of("RollbackStack").len(), 1);
    assert!(s.calls_of("ContinueUpdateRollback").is_empty());
    assert_eq!(s.cfn.status("orders-api"), "UPDATE_ROLLBACK_COMPLETE");
    s.assert_contract_kept();
}

#[tokio::test]
async fn a_rollback_that_fails_again_says_what_a_person_does_next() {
    let s = Setup::start().await;
    let event = s.event(StackSeed {
        rollback_ends_in: "UPDATE_ROLLBACK_FAILED".into(),
        ..StackSeed::stuck("billing")
    });
    let report = s.apply(&event).await;
    assert_eq!(report.status, RemediationStatus::Remediated);
    assert!(!report.verification.as_ref().expect("checked").passed);
    assert!(
        report.summary.contains("failed again") && report.summary.contains("--resources-to-skip"),
        "{}",
        report.summary
    );
    s.assert_contract_kept();
}

#[tokio::test]
async fn stacks_a_rollback_cannot_help_are_left_to_people() {
    let s = Setup::start().await;
    let cases = [
        (
            StackSeed {
                role_arn: None,
                ..StackSeed::stuck("no-role")
            },
            RemediationStatus::Skipped,
            "no service role",
        ),
        (
            StackSeed {
                last_updated: chrono::Utc::now() - chrono::Duration::days(3),
                ..StackSeed::stuck("old-update")
            },
            RemediationStatus::Skipped,
            "rollback_within_hours",
        ),
        (
            StackSeed {
                status: "CREATE_FAILED".into(),
                ..StackSeed::stuck("new-stack")
            },
            RemediationStatus::Skipped,
            "deletes what it created",
        ),
        (
            StackSeed {
                status: "UPDATE_ROLLBACK_COMPLETE".into(),
                ..StackSeed::stuck("rolled-back")
            },
            RemediationStatus::AlreadyCompliant,
            "accepts updates again",
        ),
    ];
    for (seed, status, says) in cases {
        let name = seed.name.clone();
        let event = s.event(seed);
        let report = s.apply(&event).await;
        assert_eq!(report.status, status, "{name}: {}", report.summary);
        assert!(report.summary.contains(says), "{name}: {}", report.summary);
        assert_no_mutating_call(&report);
    }
    assert!(s.calls_of("ContinueUpdateRollback").is_empty());
    assert!(s.calls_of("RollbackStack").is_empty());
    s.assert_contract_kept();
}

#[tokio::test]
async fn a_dry_run_changes_nothing_and_a_gone_stack_is_already_fine() {
    let s = Setup::start().await;
    let event = s.event(StackSeed::stuck("dry"));
    let dry = run(
        s.fix(),
        &event,
        ROLLBACK,
        &Conditions::default(),
        Mode::DryRun,
    )
    .await;
    assert_eq!(
        dry.status,
        RemediationStatus::WouldRemediate,
        "{}",
        dry.summary
    );
    assert_no_mutating_call(&dry);
    assert_eq!(s.cfn.status("dry"), "UPDATE_ROLLBACK_FAILED");

    let mut gone = event.clone();
    gone.resource.id = gone.resource.id.replace("/dry/", "/deleted-meanwhile/");
    let report = s.apply(&gone).await;
    assert_eq!(
        report.status,
        RemediationStatus::AlreadyCompliant,
        "{}",
        report.summary
    );
    assert!(
        report.summary.contains("no longer exists"),
        "{}",
        report.summary
    );
    s.assert_contract_kept();
}
