//! What the fix tests on moto share: AWS's fixes on moto's clients, events normalized from
//! payloads, a fix run and the assertions every fix's report must meet.
#![allow(dead_code)] // each test binary uses its own part of it

use escher_aws::{aws_fixes, AwsClients};
use escher_core::approvals::{Action, Conditions};
use escher_core::fixes::FixRegistry;
use escher_core::remediate::{Mode, Remediation, RemediationReport, RemediationRequest};
use escher_core::{Normalized, UnifiedEvent};
use escher_test_support::moto as kit;
use serde_json::Value;

/// moto, with AWS's fixes on its clients.
pub struct Moto {
    pub moto: kit::Moto,
    pub fixes: FixRegistry,
}

impl std::ops::Deref for Moto {
    type Target = kit::Moto;
    fn deref(&self) -> &kit::Moto {
        &self.moto
    }
}

impl Moto {
    /// AWS's fix for the pair, looked up as the pipeline does.
    pub fn fix(&self, action: Action, resource_type: &str) -> &dyn Remediation {
        self.fixes
            .lookup(action, resource_type)
            .unwrap_or_else(|| panic!("AWS registers a fix for {action} on {resource_type}"))
    }
}

/// Clients for moto in `region`, or `None` (with a notice) when the emulators are not running.
pub async fn moto(region: &str) -> Option<Moto> {
    let moto = kit::Moto::connect(region, "the AWS remediation tests").await?;
    Some(Moto {
        fixes: aws_fixes(AwsClients::new(&moto.config)),
        moto,
    })
}

pub fn normalize_one(payload: &Value) -> UnifiedEvent {
    match escher_core::normalize(payload.to_string().as_bytes()) {
        Ok(Normalized::Events(mut events)) if events.len() == 1 => events.remove(0),
        other => panic!("expected exactly one event, got {other:?}"),
    }
}

pub async fn run(
    fix: &dyn Remediation,
    event: &UnifiedEvent,
    action: Action,
    conditions: &Conditions,
    mode: Mode,
) -> RemediationReport {
    let request = RemediationRequest {
        event,
        action,
        conditions,
        mode,
    };
    fix.remediate(&request)
        .await
        .unwrap_or_else(|e| panic!("{action} on {}: {e}", event.resource.id))
}

pub fn assert_no_mutating_call(report: &RemediationReport) {
    let mutating: Vec<&str> = report
        .api_calls
        .iter()
        .filter(|c| c.mutating)
        .map(|c| c.operation.as_str())
        .collect();
    assert!(
        mutating.is_empty(),
        "dry run made mutating calls: {mutating:?}"
    );
    assert!(
        !report.api_calls.is_empty(),
        "a dry run still reads the resource"
    );
}

pub fn assert_verified(report: &RemediationReport) {
    let verification = report
        .verification
        .as_ref()
        .unwrap_or_else(|| panic!("no verification in {report:#?}"));
    assert!(
        verification.passed,
        "verification failed: {verification:#?}"
    );
}

pub fn operations(report: &RemediationReport) -> Vec<&str> {
    report
        .api_calls
        .iter()
        .map(|c| c.operation.as_str())
        .collect()
}
