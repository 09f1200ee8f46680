//! `rollback_deployment` for AWS: a deployment that failed is rolled back to what ran before:
//! an ECS service to the task definition it ran before (its older deployment's, else the
//! family's previous active revision), verified by the service running it, steady; a Lambda
//! alias whose errors alarm fired to the version before the one it points at, verified by
//! the alias pointing there with no traffic split; a CloudFormation stack stuck after a
//! failed update to its last good state (`stack.rs`), verified by its status.
//!
//! Only a recent deployment is rolled back (the approval's `rollback_within_hours`, default
//! 24): an older one has had time to change data or callers, which a person should weigh. A
//! service ECS already moved off the failed deployment, or an alias whose alarm is back to
//! OK, is already fine. The step is recorded on the resource (`escher:rolled-back`), so a
//! retried event never rolls back twice.
//!
//! A task definition naming a task or execution role needs `iam:PassRole` on those roles to
//! be deployed; the functions' role does not hold it (passing roles is how privileges are
//! escalated), so such a rollback fails with what to grant, and the user decides.

mod alias;
mod service;
mod stack;

use std::time::Duration as StdDuration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use escher_core::approvals::Action;
use escher_core::remediate::{
    FixDescription, Mode, Remediation, RemediationError, RemediationReport, RemediationRequest,
    RemediationStatus, RequiredPermission, Verification, VerificationCheck,
};
use escher_core::resource_types::aws as aws_types;
use escher_core::UnifiedEvent;

use crate::alarms::recovered_alarm;
use crate::calls::CallLog;
use crate::clients::AwsClients;
use crate::report::check;
use crate::target::Target;

/// The tag a rollback leaves: `event=<id> from=<what ran> to=<what runs now>`.
pub(crate) const MARKER_TAG: &str = "escher:rolled-back";

const DEFAULT_WAIT: StdDuration = StdDuration::from_secs(40);
const POLL: StdDuration = StdDuration::from_secs(3);

const SERVICE: &str = "arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:service/*";
const FUNCTION: &str = "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:*";
const STACK: &str = "arn:${AWS::Partition}:cloudformation:${AWS::Region}:${AWS::AccountId}:stack/*";

pub(crate) const PERMISSIONS: &[RequiredPermission] = &[
    RequiredPermission {
        action: "ecs:DescribeServices",
        resource: SERVICE,
        why: "rollback_deployment reads a service's deployments, task definition and tags",
    },
    RequiredPermission {
        action: "ecs:DescribeTaskDefinition",
        resource: "*",
        why: "rollback_deployment checks that the task definition to go back to is still active (DescribeTaskDefinition has no resource-level permissions)",
    },
    RequiredPermission {
        action: "ecs:UpdateService",
        resource: SERVICE,
        why: "rollback_deployment puts a service back on the task definition it ran before a failed deployment",
    },
    RequiredPermission {
        action: "ecs:TagResource",
        resource: SERVICE,
        why: "rollback_deployment records the rollback on the service (escher:rolled-back), so a retry never rolls back twice",
    },
    crate::alarms::describe_alarms(
        "rollback_deployment reads whether an alias's errors alarm is still firing (an alarm back to OK is not answered)",
    ),
    RequiredPermission {
        action: "lambda:GetAlias",
        resource: FUNCTION,
        why: "rollback_deployment reads the version an alias points at and its traffic split",
    },
    RequiredPermission {
        action: "lambda:ListVersionsByFunction",
        resource: FUNCTION,
        why: "rollback_deployment finds the version before the one an alias points at",
    },
    RequiredPermission {
        action: "lambda:GetFunctionConfiguration",
        resource: FUNCTION,
        why: "rollback_deployment reads when the alias's version was published (only a recent deployment is rolled back)",
    },
    RequiredPermission {
        action: "lambda:ListTags",
        resource: FUNCTION,
        why: "rollback_deployment reads whether it already rolled the function's alias back for this event",
    },
    RequiredPermission {
        action: "lambda:UpdateAlias",
        resource: FUNCTION,
        why: "rollback_deployment points an alias back at the version before a failed deployment",
    },
    RequiredPermission {
        action: "lambda:TagResource",
        resource: FUNCTION,
        why: "rollback_deployment records the rollback on the function (escher:rolled-back), so a retry never rolls back twice",
    },
    RequiredPermission {
        action: "cloudformation:DescribeStacks",
        resource: STACK,
        why: "rollback_deployment reads a stack's status, service role and last update",
    },
    RequiredPermission {
        action: "cloudformation:ContinueUpdateRollback",
        resource: STACK,
        why: "rollback_deployment goes on with a stack's rollback that failed (UPDATE_ROLLBACK_FAILED), with the stack's own service role",
    },
    RequiredPermission {
        action: "cloudformation:RollbackStack",
        resource: STACK,
        why: "rollback_deployment rolls back a stack whose update failed with rollback disabled (UPDATE_FAILED), with the stack's own service role",
    },
];

const FIX: FixDescription = FixDescription {
    action: Action::RollbackDeployment,
    resource_types: &[
        aws_types::ECS_SERVICE,
        aws_types::LAMBDA_FUNCTION,
        aws_types::CLOUDFORMATION_STACK,
    ],
    permissions: PERMISSIONS,
};

/// Rolls ECS services and Lambda aliases back from a failed deployment.
#[derive(Debug, Clone)]
pub struct RollbackDeploymentRemediation {
    clients: AwsClients,
    wait: StdDuration,
}

impl RollbackDeploymentRemediation {
    pub fn new(clients: AwsClients) -> Self {
        RollbackDeploymentRemediation {
            clients,
            wait: DEFAULT_WAIT,
        }
    }
}

/// What a rollback goes back from and to, as the resource's tag records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Marker {
    pub event_id: String,
    pub from: String,
    pub to: String,
}

impl Marker {
    pub(crate) fn value(&self) -> String {
        format!("event={} from={} to={}", self.event_id, self.from, self.to)
    }

    pub(crate) fn parse(value: &str) -> Option<Marker> {
        let fields = crate::tags::marker_fields(value);
        Some(Marker {
            event_id: fields.get("event")?.to_string(),
            from: fields.get("from")?.to_string(),
            to: fields.get("to")?.to_string(),
        })
    }
}

/// What the fix read of the deployment it would roll back.
pub(crate) struct Reading {
    /// `service checkout (cluster prod)`, `alias live of checkout-api`.
    pub what: String,
    pub marker: Option<Marker>,
    /// Why the failed deployment is no longer running, when it is not.
    pub moved_on: Option<String>,
    /// What runs now (`family:rev`, a version number).
    pub current: String,
    /// What ran before, when there is one to go back to.
    pub previous: Option<String>,
    /// When what runs now was deployed.
    pub deployed_at: Option<DateTime<Utc>>,
}

pub(crate) enum Subject {
    Service { cluster: String, name: String },
    Alias { function: String, alias: String },
}

fn subject(event: &UnifiedEvent) -> Result<Subject, RemediationError> {
    let invalid = |problem: String| RemediationError::InvalidEvent {
        action: FIX.action,
        event_id: event.event_id.clone(),
        problem,
    };
    match event.resource.kind.as_str() {
        aws_types::ECS_SERVICE => crate::ecs_service::names(event)
            .map(|(cluster, name)| Subject::Service { cluster, name })
            .ok_or_else(|| {
                invalid(format!(
                    "the event names no ECS service (resource id `{}`); act by hand",
                    event.resource.id
                ))
            }),
        aws_types::LAMBDA_FUNCTION => alias::names(event)
            .map(|(function, alias)| Subject::Alias { function, alias })
            .ok_or_else(|| {
                invalid("the alarm names no alias of the function (its `Resource` dimension); only an alias is rolled back".into())
            }),
        other => Err(invalid(format!("rollback_deployment does not handle a {other}"))),
    }
}

async fn read(
    subject: &Subject,
    event: &UnifiedEvent,
    clients: &AwsClients,
    log: &mut CallLog,
) -> Result<Reading, RemediationError> {
    match subject {
        Subject::Service { cluster, name } => {
            service::read(clients, cluster, name, event, log).await
        }
        Subject::Alias { function, alias } => alias::read(clients, function, alias, log).await,
    }
}

async fn checks_after(
    subject: &Subject,
    clients: &AwsClients,
    to: &str,
    wait: StdDuration,
    log: &mut CallLog,
) -> Result<Vec<VerificationCheck>, RemediationError> {
    let started = std::time::Instant::now();
    loop {
        let checks = match subject {
            Subject::Service { cluster, name } => {
                service::checks(clients, cluster, name, to, log).await?
            }
            Subject::Alias { function, alias } => {
                alias::checks(clients, function, alias, to, log).await?
            }
        };
        if checks.iter().all(|c| c.passed) || started.elapsed() >= wait {
            return Ok(checks);
        }
        tokio::time::sleep(POLL.min(wait)).await;
    }
}

#[async_trait]
impl Remediation for RollbackDeploymentRemediation {
    fn description(&self) -> &'static FixDescription {
        &FIX
    }

    async fn verify(
        &self,
        request: &RemediationRequest<'_>,
    ) -> Result<Verification, RemediationError> {
        let target = Target::of(request, &FIX, &self.clients, |e, _| {
            Ok(e.resource.id.clone())
        })?;
        let (clients, mut log) = (&target.clients, target.log());
        if request.event.resource.kind == aws_types::CLOUDFORMATION_STACK {
            return stack::verify(clients, &request.event.resource.id, &mut log).await;
        }
        let subject = subject(request.event)?;
        let reading = read(&subject, request.event, clients, &mut log).await?;
        let Some(marker) = reading
            .marker
            .filter(|m| m.event_id == request.event.event_id)
        else {
            return Ok(Verification::from_checks(vec![check(
                "rolled back",
                format!("a rollback for event {}", request.event.event_id),
                format!("none recorded on {}", reading.what),
                false,
            )]));
        };
        Ok(Verification::from_checks(
            checks_after(&subject, clients, &marker.to, StdDuration::ZERO, &mut log).await?,
        ))
    }

    async fn remediate(
        &self,
        request: &RemediationRequest<'_>,
    ) -> Result<RemediationReport, RemediationError> {
        let event = request.event;
        let target = Target::of(request, &FIX, &self.clients, |e, _| {
            Ok(e.resource.id.clone())
        })?;
        let (clients, mut log) = (&target.clients, target.log());
        let report = |status, summary: String, log: CallLog| {
            RemediationReport::new(request, status, summary).with_calls(log.into_calls())
        };
        if event.resource.kind == aws_types::CLOUDFORMATION_STACK {
            return stack::remediate(request, clients, log, self.wait).await;
        }
        let subject = subject(event)?;
        let reading = read(&subject, event, clients, &mut log).await?;
        let what = reading.what.clone();

        if let Some(done) = reading
            .marker
            .as_ref()
            .filter(|m| m.event_id == event.event_id)
        {
            let checks =
                checks_after(&subject, clients, &done.to, StdDuration::ZERO, &mut log).await?;
            return Ok(report(
                RemediationStatus::AlreadyCompliant,
                format!(
                    "{what} was already rolled back for this event ({} → {}); nothing changed.",
                    done.from, done.to
                ),
                log,
            )
            .with_verification(Verification::from_checks(checks)));
        }
        if let Some(seen) = &reading.moved_on {
            return Ok(report(
                RemediationStatus::AlreadyCompliant,
                format!("{seen}; nothing rolled back."),
                log,
            )
            .with_verification(Verification::from_checks(vec![check(
                "failed deployment",
                "no longer running",
                seen.clone(),
                true,
            )])));
        }
        if let Some((name, verification)) = recovered_alarm(clients, event, &mut log).await? {
            return Ok(report(
                RemediationStatus::AlreadyCompliant,
                format!("The alarm {name} is back to OK; {what} was not rolled back."),
                log,
            )
            .with_verification(verification));
        }
        let from = reading.current.clone();
        let Some(previous) = reading.previous.clone() else {
            return Ok(report(
                RemediationStatus::Skipped,
                format!("{what} was not rolled back: there is nothing earlier than {from} to go back to."),
                log,
            ));
        };
        let within = request.conditions.rollback_within_hours();
        let window = request.conditions.rollback_window();
        if let Some(at) = reading.deployed_at.filter(|at| Utc::now() - *at > window) {
            return Ok(report(
                RemediationStatus::Skipped,
                format!(
                    "{what} was not rolled back: {from} was deployed at {}, longer ago than the approval's {} (rollback_within_hours); going back now needs a person's judgement.",
                    at.format("%Y-%m-%d %H:%M UTC"),
                    escher_core::words::hours(within)
                ),
                log,
            ));
        }
        let steps = vec![
            format!("put {what} back from {from} to {previous} (what ran before)"),
            format!("record it on the resource ({MARKER_TAG})"),
        ];
        if request.mode == Mode::DryRun {
            return Ok(report(
                RemediationStatus::WouldRemediate,
                format!("Dry run: would roll {what} back from {from} to {previous}."),
                log,
            )
            .with_steps(steps.into_iter().map(|s| format!("would {s}")).collect()));
        }
        let marker = Marker {
            event_id: event.event_id.clone(),
            from: from.clone(),
            to: previous.clone(),
        };
        let undo = match &subject {
            Subject::Service { cluster, name } => {
                service::roll_back(clients, cluster, name, &marker, &mut log).await?;
                format!(
                    "aws ecs update-service --region {} --cluster {cluster} --service {name} --task-definition {from}",
                    event.region
                )
            }
            Subject::Alias { function, alias } => {
                alias::roll_back(clients, function, alias, &marker, &mut log).await?;
                format!(
                    "aws lambda update-alias --region {} --function-name {function} --name {alias} --function-version {from}",
                    event.region
                )
            }
        };
        let verification = Verification::from_checks(
            checks_after(&subject, clients, &previous, self.wait, &mut log).await?,
        );
        let summary = if verification.passed {
            format!("Rolled {what} back from {from} to {previous} (verified).")
        } else {
            format!(
                "Rolled {what} back from {from} to {previous}, but after {} s {} did not pass yet; look at it.",
                self.wait.as_secs(),
                verification.failed_checks()
            )
        };
        Ok(report(RemediationStatus::Remediated, summary, log)
            .with_steps(steps)
            .with_verification(verification)
            .with_undo(Some(undo)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_reads_back_what_was_written() {
        let m = Marker {
            event_id: "aws-9".into(),
            from: "web:7".into(),
            to: "web:6".into(),
        };
        assert_eq!(Marker::parse(&m.value()), Some(m));
        assert_eq!(Marker::parse("event=aws-9 from=7"), None);
    }
}
