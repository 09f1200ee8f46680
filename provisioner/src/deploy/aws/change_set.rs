//! CloudFormation change sets: what `extend` does with the stack it found, creating the
//! change set, waiting for it, reading its rows, and discarding one that is not executed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::bail;
use aws_sdk_cloudformation::types::{
    Capability, ChangeAction, ChangeSetStatus, ChangeSetType, Parameter, StackStatus,
};

use super::artifacts::TemplateSource;
use super::session::{AwsSession, StackInfo};
use crate::deploy::seam::{ChangeKind, Replacement, ResourceChange};

/// A change set [`create_change_set`] made, until it is executed or discarded.
pub(super) struct PendingChangeSet {
    /// Its ARN once CloudFormation answered (moto looks names up across stacks).
    pub(super) name: String,
    pub(super) kind: ChangeSetType,
}

/// Creates the change set (CREATE for a new stack, UPDATE otherwise) and waits until
/// CloudFormation has worked out its rows.
pub(super) async fn create_change_set(
    session: &AwsSession,
    change_set_type: ChangeSetType,
    template_source: &TemplateSource,
    parameter_values: &BTreeMap<String, String>,
) -> anyhow::Result<(PendingChangeSet, ChangeSetOutcome)> {
    let progress = |msg: &str| eprintln!("{msg}");
    let now = chrono::Utc::now();
    let change_set_name = format!(
        "escher-{}-{:03}",
        now.format("%Y%m%d%H%M%S"),
        now.timestamp_subsec_millis()
    );
    let mut create = session
        .cfn
        .create_change_set()
        .stack_name(&session.stack)
        .change_set_name(&change_set_name)
        .change_set_type(change_set_type.clone())
        .description("escher-provision extend")
        .set_parameters(Some(
            parameter_values
                .iter()
                .map(|(k, v)| parameter(k, v))
                .collect(),
        ))
        .capabilities(Capability::CapabilityIam)
        .capabilities(Capability::CapabilityNamedIam);
    create = match template_source {
        TemplateSource::Body(body) => create.template_body(body),
        TemplateSource::Url(url) => create.template_url(url),
    };
    progress(&format!(
        "creating change set {change_set_name} ({}) for {}",
        if change_set_type == ChangeSetType::Create {
            "new stack"
        } else {
            "update"
        },
        session.stack_label()
    ));
    let created = session.call(
        create.send().await,
        "cloudformation:CreateChangeSet",
        &session.stack_label(),
    );
    // From here on the change set is named by its ARN: moto looks names up across stacks.
    let change_set_name = match &created {
        Ok(out) => out.id().unwrap_or(&change_set_name).to_string(),
        Err(_) => change_set_name,
    };
    let outcome = match created {
        Ok(_) => wait_for_change_set(session, &change_set_name).await?,
        // Some CloudFormation implementations (moto) refuse an identical update up front.
        Err(e) if e.code() == Some("ValidationError") && is_no_change_reason(e.message()) => {
            ChangeSetOutcome::NoChanges
        }
        Err(e) => return Err(e.into()),
    };
    Ok((
        PendingChangeSet {
            name: change_set_name,
            kind: change_set_type,
        },
        outcome,
    ))
}

pub(super) fn parameter(key: &str, value: &str) -> Parameter {
    Parameter::builder()
        .parameter_key(key)
        .parameter_value(value)
        .build()
}

/// Refuses stacks that are busy or stuck, saying what to do.
/// What `extend` does with the stack it found, decided from its status alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StackPlan {
    /// No stack yet (or only the empty one an unexecuted change set leaves): a CREATE change set.
    Create,
    /// A working stack: an UPDATE change set.
    Update,
    /// Its first creation failed (ROLLBACK_COMPLETE): it cannot be updated, only deleted and
    /// created again, which needs the user's consent.
    Recreate,
}

/// Also refuses a stack that is busy or stuck in a failed state, saying what to do.
pub(super) fn stack_plan(label: &str, info: Option<&StackInfo>) -> anyhow::Result<StackPlan> {
    let Some(info) = info else {
        return Ok(StackPlan::Create);
    };
    let status = info.status.as_str();
    match &info.status {
        StackStatus::ReviewInProgress | StackStatus::DeleteComplete => Ok(StackPlan::Create),
        StackStatus::RollbackComplete => Ok(StackPlan::Recreate),
        _ if status.ends_with("_IN_PROGRESS") => bail!(
            "{label} is busy ({status}); wait until CloudFormation finishes, then run extend again"
        ),
        _ if status.ends_with("_FAILED") => bail!(
            "{label} is {status}{}; fix it in the CloudFormation console (for UPDATE_ROLLBACK_FAILED: `aws cloudformation continue-update-rollback`), then run extend again",
            info.status_reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ),
        _ => Ok(StackPlan::Update),
    }
}

pub(super) enum ChangeSetOutcome {
    Ready(Vec<ResourceChange>),
    NoChanges,
    Failed(String),
}

pub(super) async fn wait_for_change_set(
    session: &AwsSession,
    name: &str,
) -> anyhow::Result<ChangeSetOutcome> {
    let started = Instant::now();
    loop {
        let mut changes = Vec::new();
        let mut next: Option<String> = None;
        let mut status;
        let mut reason;
        loop {
            let out = session.call(
                session
                    .cfn
                    .describe_change_set()
                    .stack_name(&session.stack)
                    .change_set_name(name)
                    .set_next_token(next.clone())
                    .send()
                    .await,
                "cloudformation:DescribeChangeSet",
                &format!("change set {name} of {}", session.stack_label()),
            )?;
            status = out.status().cloned();
            reason = out.status_reason().map(str::to_string);
            for change in out.changes() {
                if let Some(rc) = change.resource_change() {
                    changes.push(ResourceChange {
                        action: match rc.action() {
                            Some(ChangeAction::Add) => ChangeKind::Add,
                            Some(ChangeAction::Modify) => ChangeKind::Modify,
                            Some(ChangeAction::Remove) => ChangeKind::Remove,
                            _ => ChangeKind::Other,
                        },
                        logical_id: rc.logical_resource_id().unwrap_or("?").to_string(),
                        resource_type: rc.resource_type().unwrap_or("?").to_string(),
                        replacement: match rc.replacement() {
                            Some(aws_sdk_cloudformation::types::Replacement::True) => {
                                Replacement::Yes
                            }
                            Some(aws_sdk_cloudformation::types::Replacement::Conditional) => {
                                Replacement::Conditional
                            }
                            _ => Replacement::No,
                        },
                    });
                }
            }
            next = out.next_token().map(str::to_string);
            if next.is_none() {
                break;
            }
        }
        match status {
            Some(ChangeSetStatus::CreateComplete) => return Ok(ChangeSetOutcome::Ready(changes)),
            Some(ChangeSetStatus::Failed) => {
                let reason = reason.unwrap_or_else(|| "no reason given".into());
                // CloudFormation reports a change set without changes as FAILED.
                if is_no_change_reason(&reason) {
                    return Ok(ChangeSetOutcome::NoChanges);
                }
                return Ok(ChangeSetOutcome::Failed(reason));
            }
            _ => {}
        }
        if started.elapsed() > Duration::from_secs(15 * 60) {
            bail!("change set {name} was not ready after 15 minutes; look at it in the CloudFormation console");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

pub(super) fn is_no_change_reason(reason: &str) -> bool {
    reason.contains("didn't contain changes") || reason.contains("No updates are to be performed")
}

/// Deletes an unexecuted change set; for a new stack also the empty REVIEW_IN_PROGRESS
/// stack CloudFormation made for it, so nothing is left behind.
pub(super) async fn discard_change_set(session: &AwsSession, name: &str, kind: &ChangeSetType) {
    let deleted = session
        .cfn
        .delete_change_set()
        .stack_name(&session.stack)
        .change_set_name(name)
        .send()
        .await;
    if let Err(e) = deleted {
        tracing::warn!("could not delete change set {name}: {e}");
    }
    if *kind == ChangeSetType::Create {
        if let Ok(Some(info)) = session.describe_stack().await {
            if info.status == StackStatus::ReviewInProgress {
                let _ = session
                    .cfn
                    .delete_stack()
                    .stack_name(&session.stack)
                    .send()
                    .await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn stack(status: &str) -> StackInfo {
        StackInfo {
            status: StackStatus::from(status),
            status_reason: Some("Resource creation cancelled".into()),
            last_updated: None,
            outputs: BTreeMap::new(),
            parameters: BTreeMap::new(),
        }
    }

    #[test]
    fn the_stack_status_decides_create_update_recreate_or_refusal() {
        let plan =
            |status: Option<&str>| stack_plan("stack escher-extend", status.map(stack).as_ref());
        assert_eq!(plan(None).unwrap(), StackPlan::Create);
        assert_eq!(plan(Some("REVIEW_IN_PROGRESS")).unwrap(), StackPlan::Create);
        assert_eq!(
            plan(Some("ROLLBACK_COMPLETE")).unwrap(),
            StackPlan::Recreate
        );
        for usable in [
            "CREATE_COMPLETE",
            "UPDATE_COMPLETE",
            "UPDATE_ROLLBACK_COMPLETE",
            "IMPORT_COMPLETE",
        ] {
            assert_eq!(plan(Some(usable)).unwrap(), StackPlan::Update, "{usable}");
        }
        let busy = plan(Some("UPDATE_IN_PROGRESS")).unwrap_err().to_string();
        assert!(
            busy.contains("busy (UPDATE_IN_PROGRESS)") && busy.contains("wait"),
            "{busy}"
        );
        let stuck = plan(Some("UPDATE_ROLLBACK_FAILED"))
            .unwrap_err()
            .to_string();
        assert!(
            stuck.contains("continue-update-rollback")
                && stuck.contains("Resource creation cancelled"),
            "{stuck}"
        );
        assert!(plan(Some("DELETE_FAILED")).is_err());
    }
    #[test]
    fn a_no_op_change_set_is_recognised_by_its_reason() {
        assert!(is_no_change_reason(
            "The submitted information didn't contain changes. Submit different information to create a change set."
        ));
        assert!(is_no_change_reason("No updates are to be performed."));
        assert!(!is_no_change_reason("Template format error"));
    }
}
