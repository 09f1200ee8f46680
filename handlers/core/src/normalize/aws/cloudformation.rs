//! CloudFormation "Stack Status Change" events from EventBridge, about one stack (the
//! detail's `stack-id`).
//!
//! Event-type rule (decided for the project):
//! - a stack stuck after a failed update (`UPDATE_ROLLBACK_FAILED`: the rollback itself
//!   failed; `UPDATE_FAILED`: the update ran with rollback disabled) → `deployment_failed`:
//!   the stack accepts no update until it is rolled back, which `rollback_deployment` can do;
//! - the other failures (`CREATE_FAILED`, `ROLLBACK_FAILED`, `DELETE_FAILED`,
//!   `IMPORT_ROLLBACK_FAILED`, …) → `deployment_failed` too, for people: rolling back a failed
//!   creation deletes what it created, a failed delete needs to know what blocked it, so the
//!   fix leaves them and says why;
//! - a failed update or creation that CloudFormation already rolled back
//!   (`UPDATE_ROLLBACK_COMPLETE`, `ROLLBACK_COMPLETE`) → `deployment_failed`, MEDIUM: the stack is
//!   usable again, but what was deployed did not take;
//! - everything else (progress, success) → `resource_changed`, INFO.

use serde_json::Value;

use super::eventbridge::{base_draft, copy_replay};
use super::{put, resource, text, Origin, Raw};
use crate::event::{EventSource, EventType, Severity};
use crate::normalize::{EventDraft, NormalizeError};
use crate::resource_types::aws as aws_types;

/// Stack statuses a rollback takes out of: the stack accepts no update until then.
const STUCK_AFTER_FAILED_UPDATE: &[&str] = &["UPDATE_ROLLBACK_FAILED", "UPDATE_FAILED"];

/// Statuses CloudFormation reaches after rolling a failed operation back by itself.
const ROLLED_BACK: &[&str] = &["UPDATE_ROLLBACK_COMPLETE", "ROLLBACK_COMPLETE"];

pub(super) fn normalize_stack_status(
    detail: &Value,
    raw: Raw<'_>,
    origin: &Origin,
) -> Result<Vec<EventDraft>, NormalizeError> {
    let stack_id = super::need(detail, "/stack-id", "/detail", &origin.envelope)?;
    let status = super::need(
        detail,
        "/status-details/status",
        "/detail",
        &origin.envelope,
    )?;
    let (event_type, severity) = if ROLLED_BACK.contains(&status) {
        (EventType::DeploymentFailed, Some(Severity::Medium))
    } else if status.ends_with("_FAILED") {
        (EventType::DeploymentFailed, None)
    } else {
        (EventType::ResourceChanged, Some(Severity::Info))
    };
    let mut draft = base_draft(EventSource::AwsCloudFormation, event_type, raw, origin);
    draft.source_severity = severity;
    draft.resource = resource(
        aws_types::CLOUDFORMATION_STACK,
        stack_id,
        draft.region.as_deref(),
        &draft.account_id,
    );
    // `arn:…:stack/<name>/<uuid>`: the name, not the uuid, is what people know.
    if let Some(name) = stack_name(stack_id) {
        draft.resource.name = name.to_string();
    }
    let meta = &mut draft.resource.metadata;
    put(meta, "stack_status", status);
    put(
        meta,
        "status_reason",
        text(detail, "/status-details/status-reason").unwrap_or_default(),
    );
    put(
        meta,
        "client_request_token",
        text(detail, "/client-request-token").unwrap_or_default(),
    );
    put(
        meta,
        "stuck_after_failed_update",
        STUCK_AFTER_FAILED_UPDATE.contains(&status),
    );
    copy_replay(&mut draft, raw);
    Ok(vec![draft])
}

/// The stack's name in its id (`arn:aws:cloudformation:r:a:stack/<name>/<uuid>`).
fn stack_name(stack_id: &str) -> Option<&str> {
    let (_, rest) = stack_id.split_once(":stack/")?;
    let name = rest.split('/').next()?;
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::stack_name;

    #[test]
    fn a_stack_id_names_its_stack() {
        assert_eq!(
            stack_name("arn:aws:cloudformation:eu-west-1:1:stack/web-prod/6a7e8feb-b491"),
            Some("web-prod")
        );
        assert_eq!(stack_name("web-prod"), None);
    }
}
