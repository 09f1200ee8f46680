//! The remediation contract between the cloud-neutral pipeline and each cloud's fixes.
//!
//! A cloud crate (`handlers/aws`, later Azure and GCP) implements [`Remediation`] once per
//! fix it can apply; the pipeline only sees this trait and the [`RemediationReport`] it
//! returns, which goes verbatim into the audit record and the notification. Every report
//! says what was done (the API calls), what was checked afterwards (the verification) and
//! how to undo it, because an operator must be able to explain and reverse every change.

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::approvals::{Action, Conditions};
use crate::event::UnifiedEvent;

/// Whether the fix is applied or only described.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Apply,
    /// Read-only calls are made (to say precisely what would change); nothing is modified.
    DryRun,
}

/// What the pipeline asks a remediation to do.
#[derive(Debug, Clone, Copy)]
pub struct RemediationRequest<'a> {
    pub event: &'a UnifiedEvent,
    pub action: Action,
    /// The conditions of the approval that allowed the fix (`min_idle_hours`, …); the
    /// defaults when the fix runs without an approval (dry run).
    pub conditions: &'a Conditions,
    pub mode: Mode,
}

/// One IAM permission a remediation needs, so the provisioner can grant exactly these and
/// nothing more (no `*` action).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RequiredPermission {
    /// The cloud's action name, e.g. `s3:PutBucketPublicAccessBlock`.
    pub action: &'static str,
    /// The narrowest resource pattern the cloud allows for it, e.g. `arn:${AWS::Partition}:s3:::*`
    /// (CloudFormation `Fn::Sub` syntax for AWS).
    pub resource: &'static str,
    /// Why the fix needs it (shown in `render` output and reviews of the role).
    pub why: &'static str,
}

/// A cloud API call made while remediating or verifying (written to the audit record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiCall {
    /// e.g. `s3`, `ec2`, `cloudwatch`.
    pub service: String,
    /// e.g. `PutPublicAccessBlock`.
    pub operation: String,
    /// The resource the call was about.
    pub target: String,
    /// `true` when the call changes something (what a dry run never makes).
    pub mutating: bool,
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    /// The cloud's error message when the call failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemediationStatus {
    /// The change was made (see `verification`).
    Remediated,
    /// The resource was already in the wanted state; nothing changed.
    AlreadyCompliant,
    /// A precondition of the fix did not hold (e.g. the instance is not idle); nothing changed.
    Skipped,
    /// Dry run: `steps` say what would have been done.
    WouldRemediate,
    /// This action is not implemented for this resource type; nothing changed.
    NotSupported,
}

/// One thing checked after the change, with what was expected and what was seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerificationCheck {
    pub name: String,
    pub expected: String,
    pub observed: String,
    pub passed: bool,
}

impl VerificationCheck {
    pub fn new(
        name: impl Into<String>,
        expected: impl Into<String>,
        observed: impl Into<String>,
        passed: bool,
    ) -> Self {
        VerificationCheck {
            name: name.into(),
            expected: expected.into(),
            observed: observed.into(),
            passed,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    pub passed: bool,
    pub checks: Vec<VerificationCheck>,
}

impl Verification {
    /// The names of the checks that did not pass, comma-separated.
    pub fn failed_checks(&self) -> String {
        self.checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn from_checks(checks: Vec<VerificationCheck>) -> Self {
        Verification {
            passed: !checks.is_empty() && checks.iter().all(|c| c.passed),
            checks,
        }
    }
}

/// A resource the fix created (an encrypted snapshot copy, a new volume), so it can be
/// found, audited and cleaned up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatedResource {
    pub kind: String,
    pub id: String,
}

/// What a remediation did, in the words the audit record and the notification use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemediationReport {
    pub action: Action,
    pub resource_id: String,
    pub status: RemediationStatus,
    /// One sentence for the notification: what happened or why nothing did.
    pub summary: String,
    /// What was done (or, in a dry run, would be done), in order.
    pub steps: Vec<String>,
    pub api_calls: Vec<ApiCall>,
    /// Present when the fix changed something (or was found already compliant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub created: Vec<CreatedResource>,
    /// What the operator should do next (e.g. swap the encrypted volume in).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub next_steps: Vec<String>,
    /// How to reverse the change, when the cloud allows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undo: Option<String>,
}

impl RemediationReport {
    /// A report on the request's resource with `status` and `summary`; the rest stays empty
    /// until the `with_*` methods fill it.
    pub fn new(
        request: &RemediationRequest<'_>,
        status: RemediationStatus,
        summary: impl Into<String>,
    ) -> Self {
        RemediationReport {
            action: request.action,
            resource_id: request.event.resource.id.clone(),
            status,
            summary: summary.into(),
            steps: Vec::new(),
            api_calls: Vec::new(),
            verification: None,
            created: Vec::new(),
            next_steps: Vec::new(),
            undo: None,
        }
    }

    pub fn with_steps(mut self, steps: Vec<String>) -> Self {
        self.steps = steps;
        self
    }

    pub fn with_calls(mut self, api_calls: Vec<ApiCall>) -> Self {
        self.api_calls = api_calls;
        self
    }

    pub fn with_verification(mut self, verification: impl Into<Option<Verification>>) -> Self {
        self.verification = verification.into();
        self
    }

    pub fn with_created(mut self, created: Vec<CreatedResource>) -> Self {
        self.created = created;
        self
    }

    pub fn with_next_steps(mut self, next_steps: Vec<String>) -> Self {
        self.next_steps = next_steps;
        self
    }

    pub fn with_undo(mut self, undo: impl Into<Option<String>>) -> Self {
        self.undo = undo.into();
        self
    }
}

/// Why a remediation could not run to the end.
#[derive(Debug, thiserror::Error)]
pub enum RemediationError {
    /// Throttling, a timeout, the service unavailable: the event must be retried.
    #[error("{operation} on {resource} failed temporarily: {message}; the event will be retried")]
    Transient {
        operation: String,
        resource: String,
        message: String,
        /// Calls made before the failure: a change among them may have been applied, and
        /// the retry's record must say so (it may find the resource already compliant).
        api_calls: Vec<ApiCall>,
    },
    /// Access denied, resource gone, invalid request: retrying will not help.
    #[error("{operation} on {resource} failed: {message}")]
    Failed {
        operation: String,
        resource: String,
        message: String,
        /// Calls made before the failure, so the audit record shows partial work.
        api_calls: Vec<ApiCall>,
    },
    /// The event lacks what the fix needs (e.g. no security group id).
    #[error("cannot {action} for event {event_id}: {problem}")]
    InvalidEvent {
        action: Action,
        event_id: String,
        problem: String,
    },
}

impl RemediationError {
    /// A failed cloud call as the pipeline sees it: retry the event when `transient`, else a
    /// final failure that keeps `api_calls` (the calls so far) for the audit record.
    pub fn of_call(
        transient: bool,
        operation: impl Into<String>,
        resource: impl Into<String>,
        message: impl Into<String>,
        api_calls: Vec<ApiCall>,
    ) -> Self {
        let (operation, resource, message) = (operation.into(), resource.into(), message.into());
        if transient {
            RemediationError::Transient {
                operation,
                resource,
                message,
                api_calls,
            }
        } else {
            RemediationError::Failed {
                operation,
                resource,
                message,
                api_calls,
            }
        }
    }

    /// Whether the whole event should be retried (Lambda retry, then the DLQ).
    pub fn is_transient(&self) -> bool {
        matches!(self, RemediationError::Transient { .. })
    }

    /// The changing calls a transient failure came after (answered or not: a change whose
    /// answer was lost may still have been applied).
    pub fn changes_attempted(&self) -> Vec<ApiCall> {
        match self {
            RemediationError::Transient { api_calls, .. } => {
                api_calls.iter().filter(|c| c.mutating).cloned().collect()
            }
            _ => Vec::new(),
        }
    }
}

/// What a fix is, declared once: the action it takes, the resource types it handles and
/// the permissions it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixDescription {
    pub action: Action,
    /// The `resource.type` values this fix knows how to handle.
    pub resource_types: &'static [&'static str],
    pub permissions: &'static [RequiredPermission],
}

/// One fix for one cloud. Implementations are stateless apart from their SDK clients.
#[async_trait]
pub trait Remediation: Send + Sync {
    fn description(&self) -> &'static FixDescription;

    fn action(&self) -> Action {
        self.description().action
    }

    /// The `resource.type` values this fix knows how to handle.
    fn resource_types(&self) -> &'static [&'static str] {
        self.description().resource_types
    }

    fn required_permissions(&self) -> &'static [RequiredPermission] {
        self.description().permissions
    }

    async fn remediate(
        &self,
        request: &RemediationRequest<'_>,
    ) -> Result<RemediationReport, RemediationError>;

    /// Checks, changing nothing, that the request's resource is as this fix leaves it: the
    /// checks its report gives after a change, read again now. A resource changed back
    /// since fails them. (The conformance suite calls it on its own; a fix's report after
    /// a change holds the same checks.)
    async fn verify(
        &self,
        request: &RemediationRequest<'_>,
    ) -> Result<Verification, RemediationError>;
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Apply => "apply",
            Mode::DryRun => "dry-run",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(passed: bool) -> VerificationCheck {
        VerificationCheck {
            name: "block_public_acls".into(),
            expected: "true".into(),
            observed: passed.to_string(),
            passed,
        }
    }

    #[test]
    fn verification_passes_only_when_every_check_passed() {
        assert!(Verification::from_checks(vec![check(true), check(true)]).passed);
        assert!(!Verification::from_checks(vec![check(true), check(false)]).passed);
        // Nothing checked is not a pass: a fix must prove itself.
        assert!(!Verification::from_checks(vec![]).passed);
    }

    #[test]
    fn only_transient_errors_ask_for_a_retry() {
        let transient = RemediationError::Transient {
            operation: "StopInstances".into(),
            resource: "i-0abc".into(),
            message: "Throttling".into(),
            api_calls: vec![],
        };
        let failed = RemediationError::Failed {
            operation: "StopInstances".into(),
            resource: "i-0abc".into(),
            message: "UnauthorizedOperation".into(),
            api_calls: vec![],
        };
        assert!(transient.is_transient());
        assert!(!failed.is_transient());
        assert!(transient.to_string().contains("i-0abc"));
    }
}
