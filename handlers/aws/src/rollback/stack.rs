//! A CloudFormation stack stuck after a failed update, taken back to its last good state:
//! `UPDATE_ROLLBACK_FAILED` (the update failed and so did its rollback) gets
//! `ContinueUpdateRollback`, `UPDATE_FAILED` (an update run with rollback disabled) gets
//! `RollbackStack`; verified by the stack reaching `UPDATE_ROLLBACK_COMPLETE`.
//!
//! CloudFormation rolls back with the stack's service role, or else with the caller's own
//! rights. The functions' role holds only what Escher's fixes need, so a rollback of a stack
//! without a service role would fail resource by resource and leave it stuck again: such a
//! stack is left to people, with the command to run. No resource is ever skipped
//! (`ResourcesToSkip` gives up on a resource's state, a person's call).
//!
//! The stack's status is the record: a retried event finds it rolling back or rolled back,
//! and the client request token (from the event id) makes CloudFormation itself start a
//! rollback once per event.

use std::time::{Duration as StdDuration, Instant};

use aws_sdk_cloudformation::types::{Stack, StackStatus};
use chrono::{DateTime, Utc};
use escher_core::remediate::{
    Mode, RemediationError, RemediationReport, RemediationRequest, RemediationStatus, Verification,
    VerificationCheck,
};

use super::POLL;
use crate::calls::{Access, CallLog};
use crate::clients::AwsClients;
use crate::report::check;

/// The status a rollback ends in when it worked.
const ROLLED_BACK: &str = "UPDATE_ROLLBACK_COMPLETE";

/// How CloudFormation is asked to take a stuck stack back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rollback {
    /// `UPDATE_ROLLBACK_FAILED`: go on with the rollback that failed.
    Continue,
    /// `UPDATE_FAILED` (rollback was disabled): roll the update back.
    Start,
}

impl Rollback {
    fn operation(self) -> &'static str {
        match self {
            Rollback::Continue => "ContinueUpdateRollback",
            Rollback::Start => "RollbackStack",
        }
    }

    fn command(self, region: &str, stack: &str) -> String {
        let verb = match self {
            Rollback::Continue => "continue-update-rollback",
            Rollback::Start => "rollback-stack",
        };
        format!("aws cloudformation {verb} --region {region} --stack-name {stack}")
    }
}

/// A client request token for `event_id` (letters, digits and hyphens, at most 128).
fn request_token(event_id: &str) -> String {
    let cleaned: String = event_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("escher-{cleaned}").chars().take(128).collect()
}

/// The stack as DescribeStacks answers, or `None` when it no longer exists.
async fn describe(
    clients: &AwsClients,
    stack: &str,
    log: &mut CallLog,
) -> Result<Option<Stack>, RemediationError> {
    let call = clients
        .cloudformation()
        .describe_stacks()
        .stack_name(stack)
        .send();
    match log
        .run(
            "cloudformation",
            "DescribeStacks",
            stack,
            Access::Read,
            call,
        )
        .await
    {
        Ok(out) => Ok(out.stacks().first().cloned()),
        // CloudFormation answers a missing stack with a ValidationError naming it.
        Err(e) if e.code() == Some("ValidationError") && e.message.contains("does not exist") => {
            Ok(None)
        }
        Err(e) => Err(log.fail(e)),
    }
}

fn status_of(stack: &Stack) -> &str {
    stack
        .stack_status()
        .map(StackStatus::as_str)
        .unwrap_or("unknown")
}

fn reason_of(stack: &Stack) -> String {
    stack
        .stack_status_reason()
        .map(|r| format!(" ({})", r.trim()))
        .unwrap_or_default()
}

fn status_check(stack: Option<&Stack>) -> VerificationCheck {
    let observed = stack.map_or("the stack no longer exists".to_string(), |s| {
        format!("{}{}", status_of(s), reason_of(s))
    });
    let passed = stack.is_some_and(|s| status_of(s) == ROLLED_BACK);
    check("stack status", ROLLED_BACK, observed, passed)
}

/// Reads the stack until it leaves `*_IN_PROGRESS` or `wait` has passed.
async fn settle(
    clients: &AwsClients,
    stack: &str,
    wait: StdDuration,
    log: &mut CallLog,
) -> Result<Option<Stack>, RemediationError> {
    let started = Instant::now();
    loop {
        let now = describe(clients, stack, log).await?;
        let running = now
            .as_ref()
            .is_some_and(|s| status_of(s).ends_with("_IN_PROGRESS"));
        if !running || started.elapsed() >= wait {
            return Ok(now);
        }
        tokio::time::sleep(POLL.min(wait)).await;
    }
}

pub(super) async fn verify(
    clients: &AwsClients,
    stack: &str,
    log: &mut CallLog,
) -> Result<Verification, RemediationError> {
    let now = describe(clients, stack, log).await?;
    Ok(Verification::from_checks(vec![status_check(now.as_ref())]))
}

pub(super) async fn remediate(
    request: &RemediationRequest<'_>,
    clients: &AwsClients,
    mut log: CallLog,
    wait: StdDuration,
) -> Result<RemediationReport, RemediationError> {
    let event = request.event;
    let id = event.resource.id.as_str();
    let name = if event.resource.name.is_empty() {
        id
    } else {
        event.resource.name.as_str()
    };
    let what = format!("stack {name}");
    let report = |status, summary: String, log: CallLog| {
        RemediationReport::new(request, status, summary).with_calls(log.into_calls())
    };

    let Some(stack) = describe(clients, id, &mut log).await? else {
        return Ok(report(
            RemediationStatus::AlreadyCompliant,
            format!("The {what} no longer exists; nothing rolled back."),
            log,
        )
        .with_verification(Verification::from_checks(vec![status_check(None)])));
    };
    let status = status_of(&stack).to_string();
    let rollback = match status.as_str() {
        "UPDATE_ROLLBACK_FAILED" => Rollback::Continue,
        "UPDATE_FAILED" => Rollback::Start,
        "UPDATE_ROLLBACK_IN_PROGRESS" | "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS" => {
            // Started by a delivery of this event before, or by a person: wait for it.
            let now = settle(clients, id, wait, &mut log).await?;
            let check = status_check(now.as_ref());
            let summary = if check.passed {
                format!("The {what} was already rolling back; it is now {ROLLED_BACK}; nothing else done.")
            } else {
                format!(
                    "The {what} was already rolling back; after {} s it is {}; look at it.",
                    wait.as_secs(),
                    check.observed
                )
            };
            return Ok(report(RemediationStatus::AlreadyCompliant, summary, log)
                .with_verification(Verification::from_checks(vec![check])));
        }
        s if s.ends_with("_COMPLETE") && !s.starts_with("DELETE") => {
            return Ok(report(
                RemediationStatus::AlreadyCompliant,
                format!("The {what} is {s}: it accepts updates again; nothing rolled back."),
                log,
            )
            .with_verification(Verification::from_checks(vec![check(
                "stack status",
                "not stuck after a failed update",
                s,
                true,
            )])));
        }
        s => {
            let why = match s {
                "CREATE_FAILED" | "ROLLBACK_FAILED" | "ROLLBACK_IN_PROGRESS" => {
                    "rolling back a failed creation deletes what it created"
                }
                "DELETE_FAILED" => "a failed delete needs to know what blocked it",
                "IMPORT_ROLLBACK_FAILED" => "a failed import needs its resources looked at",
                _ => "only a stack stuck after a failed update is rolled back",
            };
            return Ok(report(
                RemediationStatus::Skipped,
                format!(
                    "The {what} is {s}{}; it was left to people: {why}.",
                    reason_of(&stack)
                ),
                log,
            ));
        }
    };
    let command = rollback.command(&event.region, name);
    if stack.role_arn().is_none() {
        return Ok(report(
            RemediationStatus::Skipped,
            format!(
                "The {what} is {status}{} but has no service role: CloudFormation would roll it back with Escher's own permissions, which cover only its fixes. Roll it back yourself with a role that can manage its resources: `{command} --role-arn <role ARN>` (the stack keeps that role, so Escher can roll it back the next time).",
                reason_of(&stack)
            ),
            log,
        ));
    }
    let within = request.conditions.rollback_within_hours();
    let window = request.conditions.rollback_window();
    let updated_at = stack
        .last_updated_time()
        .or(stack.creation_time())
        .and_then(|t| DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos()));
    if let Some(at) = updated_at.filter(|at| Utc::now() - *at > window) {
        return Ok(report(
            RemediationStatus::Skipped,
            format!(
                "The {what} is {status}; its update began at {}, longer ago than the approval's {} (rollback_within_hours); rolling back now needs a person's judgement: `{command}`.",
                at.format("%Y-%m-%d %H:%M UTC"),
                escher_core::words::hours(within)
            ),
            log,
        ));
    }
    let step = format!(
        "roll the {what} back to its last good state ({} from {status}, with the stack's service role)",
        rollback.operation()
    );
    if request.mode == Mode::DryRun {
        return Ok(report(
            RemediationStatus::WouldRemediate,
            format!("Dry run: would roll the {what} back ({status} → {ROLLED_BACK})."),
            log,
        )
        .with_steps(vec![format!("would {step}")]));
    }
    let token = request_token(&event.event_id);
    let cf = &clients.cloudformation();
    let operation = rollback.operation();
    match rollback {
        Rollback::Continue => {
            let call = cf
                .continue_update_rollback()
                .stack_name(id)
                .client_request_token(&token)
                .send();
            log.must("cloudformation", operation, id, Access::Write, call)
                .await?;
        }
        Rollback::Start => {
            let call = cf
                .rollback_stack()
                .stack_name(id)
                .client_request_token(&token)
                .send();
            log.must("cloudformation", operation, id, Access::Write, call)
                .await?;
        }
    }
    let now = settle(clients, id, wait, &mut log).await?;
    let verification = Verification::from_checks(vec![status_check(now.as_ref())]);
    let summary = match now.as_ref().map(status_of) {
        _ if verification.passed => {
            format!("Rolled the {what} back from {status} to {ROLLED_BACK} (verified).")
        }
        Some("UPDATE_ROLLBACK_FAILED") => format!(
            "Asked CloudFormation to roll the {what} back, but the rollback failed again{}. A resource it cannot restore needs a person: fix it by hand, or skip it with `{command} --resources-to-skip <logical id>`.",
            now.as_ref().map(reason_of).unwrap_or_default()
        ),
        _ => format!(
            "Asked CloudFormation to roll the {what} back; after {} s {}; look at it.",
            wait.as_secs(),
            verification.failed_checks()
        ),
    };
    Ok(report(RemediationStatus::Remediated, summary, log)
        .with_steps(vec![step])
        .with_verification(verification)
        .with_next_steps(vec![format!(
            "re-run the update once its cause is fixed; CloudFormation's events say which resource failed: aws cloudformation describe-stack-events --region {} --stack-name {name}",
            event.region
        )]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_token_is_what_cloudformation_accepts() {
        let token = request_token("aws-08fc:71/15");
        assert_eq!(token, "escher-aws-08fc-71-15");
        assert!(request_token(&"x".repeat(300)).len() <= 128);
    }
}
