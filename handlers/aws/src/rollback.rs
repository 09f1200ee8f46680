//! `rollback_deployment` for AWS: an ECS service whose deployment failed is put back on the
//! task definition it ran before (the one its older deployment still runs, else the previous
//! revision of its family), verified by the service running it again, steady.
//!
//! Only a recent deployment is rolled back (the approval's `rollback_within_hours`, default
//! 24): an older one has had time to change data or callers, which a person should weigh. A
//! service ECS already moved off the failed deployment (its circuit breaker rolled it back,
//! or a newer deployment replaced it) is already fine. The step is recorded on the service
//! (`escher:rolled-back`), so a retried event never rolls back twice.
//!
//! A task definition naming a task or execution role needs `iam:PassRole` on those roles to
//! be deployed; the functions' role does not hold it (passing roles is how privileges are
//! escalated), so such a rollback fails with what to grant, and the user decides.

use std::time::Duration as StdDuration;

use async_trait::async_trait;
use aws_sdk_ecs::types::{Service, Tag};
use chrono::{DateTime, Duration, Utc};
use escher_core::approvals::Action;
use escher_core::remediate::{
    FixDescription, Mode, Remediation, RemediationError, RemediationReport, RemediationRequest,
    RemediationStatus, RequiredPermission, Verification, VerificationCheck,
};
use escher_core::resource_types::aws as aws_types;
use escher_core::UnifiedEvent;

use crate::alarms::metadata_text;
use crate::calls::{Access, CallLog};
use crate::clients::AwsClients;
use crate::ecs_service::{self, Counts};
use crate::report::check;
use crate::target::Target;

/// The tag a rollback leaves: `event=<id> from=<family:rev> to=<family:rev>`.
pub(crate) const MARKER_TAG: &str = "escher:rolled-back";

const DEFAULT_WAIT: StdDuration = StdDuration::from_secs(40);
const POLL: StdDuration = StdDuration::from_secs(3);

const SERVICE: &str = "arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:service/*";

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
];

const FIX: FixDescription = FixDescription {
    action: Action::RollbackDeployment,
    resource_types: &[aws_types::ECS_SERVICE],
    permissions: PERMISSIONS,
};

/// Rolls ECS services back from a failed deployment.
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

/// `family:rev` of a task definition ARN (or of `family:rev` itself).
fn short(task_definition: &str) -> &str {
    task_definition
        .rsplit_once("task-definition/")
        .map(|(_, s)| s)
        .unwrap_or(task_definition)
}

/// The step the service's tag records, if it answered `event_id`.
fn marker_for<'a>(service: &'a Service, event_id: &str) -> Option<(&'a str, &'a str)> {
    let value = ecs_service::tag(service, MARKER_TAG)?;
    let mut parts = value.split_whitespace().filter_map(|p| p.split_once('='));
    let (mut event, mut from, mut to) = (None, None, None);
    for (k, v) in parts.by_ref() {
        match k {
            "event" => event = Some(v),
            "from" => from = Some(v),
            "to" => to = Some(v),
            _ => {}
        }
    }
    (event? == event_id).then_some((from?, to?))
}

/// The task definition before the current one: an older deployment's, else the family's
/// previous revision when ECS still has it active.
async fn previous_task_definition(
    clients: &AwsClients,
    service: &Service,
    current: &str,
    log: &mut CallLog,
) -> Result<Option<String>, RemediationError> {
    if let Some(older) = service
        .deployments()
        .iter()
        .filter(|d| d.status() != Some("PRIMARY"))
        .filter_map(|d| d.task_definition())
        .find(|td| short(td) != short(current))
    {
        return Ok(Some(short(older).to_string()));
    }
    let Some((family, revision)) = short(current).rsplit_once(':') else {
        return Ok(None);
    };
    let Some(previous) = revision.parse::<u32>().ok().and_then(|r| r.checked_sub(1)) else {
        return Ok(None);
    };
    if previous == 0 {
        return Ok(None);
    }
    let wanted = format!("{family}:{previous}");
    let found = log
        .run(
            "ecs",
            "DescribeTaskDefinition",
            &wanted,
            Access::Read,
            clients
                .ecs
                .describe_task_definition()
                .task_definition(&wanted)
                .send(),
        )
        .await;
    Ok(match found {
        Ok(out) => out
            .task_definition()
            .filter(|td| td.status().is_none_or(|s| s.as_str() == "ACTIVE"))
            .map(|_| wanted),
        // ClientException: the revision was deregistered and deleted.
        Err(e) if e.code() == Some("ClientException") => None,
        Err(e) => return Err(log.fail(e)),
    })
}

async fn checks_after(
    clients: &AwsClients,
    cluster: &str,
    name: &str,
    to: &str,
    wait: StdDuration,
    log: &mut CallLog,
) -> Result<Vec<VerificationCheck>, RemediationError> {
    let started = std::time::Instant::now();
    loop {
        let service = ecs_service::describe(clients, cluster, name, log).await?;
        let running = service.task_definition().map(short).unwrap_or_default();
        let mut checks = vec![check("task definition", to, running, running == to)];
        checks.extend(Counts::of(&service).checks());
        if checks.iter().all(|c| c.passed) || started.elapsed() >= wait {
            return Ok(checks);
        }
        tokio::time::sleep(POLL.min(wait)).await;
    }
}

fn names(event: &UnifiedEvent) -> Result<(String, String), RemediationError> {
    ecs_service::names(event).ok_or_else(|| RemediationError::InvalidEvent {
        action: FIX.action,
        event_id: event.event_id.clone(),
        problem: format!(
            "the event names no ECS service (resource id `{}`); act by hand",
            event.resource.id
        ),
    })
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
        let (cluster, name) = names(request.event)?;
        let service = ecs_service::describe(clients, &cluster, &name, &mut log).await?;
        let Some((_, to)) = marker_for(&service, &request.event.event_id) else {
            return Ok(Verification::from_checks(vec![check(
                "rolled back",
                format!("a rollback for event {}", request.event.event_id),
                format!("none recorded on service {name}"),
                false,
            )]));
        };
        let to = to.to_string();
        Ok(Verification::from_checks(
            checks_after(clients, &cluster, &name, &to, StdDuration::ZERO, &mut log).await?,
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
        let (cluster, name) = names(event)?;
        let what = format!("service {name} (cluster {cluster})");
        let service = ecs_service::describe(clients, &cluster, &name, &mut log).await?;

        if let Some((from, to)) = marker_for(&service, &event.event_id) {
            let (from, to) = (from.to_string(), to.to_string());
            let checks =
                checks_after(clients, &cluster, &name, &to, StdDuration::ZERO, &mut log).await?;
            return Ok(report(
                RemediationStatus::AlreadyCompliant,
                format!("{what} was already rolled back for this event ({from} → {to}); nothing changed."),
                log,
            )
            .with_verification(Verification::from_checks(checks)));
        }
        let primary = service
            .deployments()
            .iter()
            .find(|d| d.status() == Some("PRIMARY"));
        let failed = metadata_text(event, "deployment_id");
        let primary_id = primary.and_then(|d| d.id()).unwrap_or_default();
        if !failed.is_empty() && !primary_id.is_empty() && primary_id != failed {
            return Ok(report(
                RemediationStatus::AlreadyCompliant,
                format!(
                    "ECS already moved {what} off the failed deployment {failed} (its deployment now is {primary_id}); nothing rolled back."
                ),
                log,
            )
            .with_verification(Verification::from_checks(vec![check(
                "current deployment",
                format!("not {failed}"),
                primary_id.to_string(),
                true,
            )])));
        }
        let current = service.task_definition().unwrap_or_default().to_string();
        let Some(previous) =
            previous_task_definition(clients, &service, &current, &mut log).await?
        else {
            return Ok(report(
                RemediationStatus::Skipped,
                format!(
                    "{what} was not rolled back: there is no earlier active task definition than {} to go back to.",
                    short(&current)
                ),
                log,
            ));
        };
        let within = request.conditions.rollback_within_hours();
        let deployed_at = primary
            .and_then(|d| d.created_at())
            .and_then(|t| DateTime::<Utc>::from_timestamp(t.secs(), 0));
        let window = Duration::seconds((within * 3600.0).round() as i64);
        if let Some(at) = deployed_at.filter(|at| Utc::now() - *at > window) {
            return Ok(report(
                RemediationStatus::Skipped,
                format!(
                    "{what} was not rolled back: its deployment is from {}, longer ago than the approval's {} (rollback_within_hours); going back now needs a person's judgement.",
                    at.format("%Y-%m-%d %H:%M UTC"),
                    escher_core::words::hours(within)
                ),
                log,
            ));
        }
        let from = short(&current).to_string();
        let steps = vec![
            format!(
                "put {what} back from {from} to {previous} (the task definition it ran before)"
            ),
            format!("record it on the service ({MARKER_TAG})"),
        ];
        if request.mode == Mode::DryRun {
            return Ok(report(
                RemediationStatus::WouldRemediate,
                format!("Dry run: would roll {what} back from {from} to {previous}."),
                log,
            )
            .with_steps(steps.into_iter().map(|s| format!("would {s}")).collect()));
        }
        let updated = log
            .run(
                "ecs",
                "UpdateService",
                &name,
                Access::Write,
                clients
                    .ecs
                    .update_service()
                    .cluster(&cluster)
                    .service(&name)
                    .task_definition(&previous)
                    .send(),
            )
            .await;
        let updated = match updated {
            Ok(out) => out,
            Err(mut e) => {
                if e.code() == Some("AccessDeniedException") && e.message.contains("PassRole") {
                    e.message = format!(
                        "{}; {previous} names an IAM role, and deploying it needs iam:PassRole on that role, which Escher's role is not given: grant it for that role to let Escher roll this service back",
                        e.message
                    );
                }
                return Err(log.fail(e));
            }
        };
        let arn = updated
            .service()
            .and_then(|s| s.service_arn())
            .unwrap_or_default()
            .to_string();
        log.must(
            "ecs",
            "TagResource",
            &name,
            Access::Write,
            clients
                .ecs
                .tag_resource()
                .resource_arn(arn)
                .tags(
                    Tag::builder()
                        .key(MARKER_TAG)
                        .value(format!(
                            "event={} from={from} to={previous}",
                            event.event_id
                        ))
                        .build(),
                )
                .send(),
        )
        .await?;
        let verification = Verification::from_checks(
            checks_after(clients, &cluster, &name, &previous, self.wait, &mut log).await?,
        );
        let summary = if verification.passed {
            format!("Rolled {what} back from {from} to {previous}; it is steady on it (verified).")
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
            .with_undo(Some(format!(
                "aws ecs update-service --region {} --cluster {cluster} --service {name} --task-definition {from}",
                event.region
            ))))
    }
}
