//! An ECS service back on the task definition it ran before a failed deployment.

use aws_sdk_ecs::types::Service;
use chrono::{DateTime, Utc};
use escher_core::remediate::{RemediationError, VerificationCheck};
use escher_core::UnifiedEvent;

use super::{Marker, Reading, MARKER_TAG};
use crate::calls::{Access, CallLog};
use crate::clients::AwsClients;
use crate::ecs_service::{self, Counts};
use crate::report::check;
use crate::target::metadata_str;

/// `family:rev` of a task definition ARN (or of `family:rev` itself).
fn short(task_definition: &str) -> &str {
    task_definition
        .rsplit_once("task-definition/")
        .map(|(_, s)| s)
        .unwrap_or(task_definition)
}

pub(super) async fn read(
    clients: &AwsClients,
    cluster: &str,
    name: &str,
    event: &UnifiedEvent,
    log: &mut CallLog,
) -> Result<Reading, RemediationError> {
    let service = ecs_service::describe(clients, cluster, name, log).await?;
    let primary = service
        .deployments()
        .iter()
        .find(|d| d.status() == Some("PRIMARY"));
    let failed = metadata_str(event, "deployment_id");
    let primary_id = primary.and_then(|d| d.id()).unwrap_or_default();
    let what = format!("service {name} (cluster {cluster})");
    let moved_on = (!failed.is_empty() && !primary_id.is_empty() && primary_id != failed).then(|| {
        format!(
            "ECS already moved {what} off the failed deployment {failed} (its deployment now is {primary_id})"
        )
    });
    let current = short(service.task_definition().unwrap_or_default()).to_string();
    let previous = previous_task_definition(clients, &service, &current, log).await?;
    Ok(Reading {
        what,
        marker: ecs_service::tag(&service, MARKER_TAG).and_then(Marker::parse),
        moved_on,
        current,
        previous,
        deployed_at: primary
            .and_then(|d| d.created_at())
            .and_then(|t| DateTime::<Utc>::from_timestamp(t.secs(), 0)),
    })
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
        .find(|td| short(td) != current)
    {
        return Ok(Some(short(older).to_string()));
    }
    let Some((family, revision)) = current.rsplit_once(':') else {
        return Ok(None);
    };
    let previous = match revision.parse::<u32>() {
        Ok(r) if r > 1 => r - 1,
        _ => return Ok(None),
    };
    let wanted = format!("{family}:{previous}");
    let found = log
        .run(
            "ecs",
            "DescribeTaskDefinition",
            &wanted,
            Access::Read,
            clients
                .ecs()
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
        // The revision was deregistered and deleted.
        Err(e) if e.code() == Some("ClientException") => None,
        Err(e) => return Err(log.fail(e)),
    })
}

pub(super) async fn roll_back(
    clients: &AwsClients,
    cluster: &str,
    name: &str,
    marker: &Marker,
    log: &mut CallLog,
) -> Result<(), RemediationError> {
    let updated = log
        .run(
            "ecs",
            "UpdateService",
            name,
            Access::Write,
            clients
                .ecs()
                .update_service()
                .cluster(cluster)
                .service(name)
                .task_definition(&marker.to)
                .send(),
        )
        .await;
    let updated = match updated {
        Ok(out) => out,
        Err(mut e) => {
            if e.code() == Some("AccessDeniedException") && e.message.contains("PassRole") {
                e.message = format!(
                    "{}; {} names an IAM role, and deploying it needs iam:PassRole on that role, which Escher's role is not given: grant it for that role to let Escher roll this service back",
                    e.message, marker.to
                );
            }
            return Err(log.fail(e));
        }
    };
    let arn = updated
        .service()
        .and_then(|s| s.service_arn())
        .unwrap_or_default();
    ecs_service::set_tag(clients, arn, name, MARKER_TAG, &marker.value(), log).await
}

/// The service on `to`, its tasks running, the failed deployment drained.
pub(super) async fn checks(
    clients: &AwsClients,
    cluster: &str,
    name: &str,
    to: &str,
    log: &mut CallLog,
) -> Result<Vec<VerificationCheck>, RemediationError> {
    let service = ecs_service::describe(clients, cluster, name, log).await?;
    let running = short(service.task_definition().unwrap_or_default());
    let mut checks = vec![check("task definition", to, running, running == to)];
    checks.extend(Counts::of(&service).checks());
    Ok(checks)
}
