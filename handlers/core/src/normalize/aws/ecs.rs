//! ECS service events from EventBridge: "ECS Service Action" and "ECS Deployment State
//! Change", about one service (the envelope's `resources`).
//!
//! Event-type rule (decided for the project):
//! - a service that cannot keep its tasks healthy (`SERVICE_TASK_START_IMPAIRED`,
//!   `SERVICE_DISCOVERY_INSTANCE_UNHEALTHY`, `VPC_LATTICE_TARGET_UNHEALTHY`) → `service_health`,
//!   marked `restartable` (a new deployment may bring it back);
//! - the other `WARN`/`ERROR` service actions (placement, configuration, throttling) →
//!   `service_health`, not restartable: a restart would not help, so `restart_service` leaves
//!   them to people and says why; `ERROR` ones are HIGH;
//! - `SERVICE_DEPLOYMENT_FAILED` → `deployment_failed`;
//! - steady states and completed deployments → `alarm_resolved`; other `INFO` → `resource_changed`.

use serde_json::Value;

use super::eventbridge::{base_draft, copy_replay, envelope_resources};
use super::{put, resource, text, Origin, Raw};
use crate::event::{EventSource, EventType, Severity};
use crate::normalize::{EventDraft, NormalizeError};
use crate::resource_types::aws as aws_types;

/// Service actions a new deployment of the service may cure.
const RESTARTABLE: &[&str] = &[
    "SERVICE_TASK_START_IMPAIRED",
    "SERVICE_DISCOVERY_INSTANCE_UNHEALTHY",
    "VPC_LATTICE_TARGET_UNHEALTHY",
];

pub(super) fn normalize_service_event(
    detail_type: &str,
    detail: &Value,
    raw: Raw<'_>,
    origin: &Origin,
) -> Result<Vec<EventDraft>, NormalizeError> {
    let name = super::need(detail, "/eventName", "/detail", &origin.envelope)?;
    let level = text(detail, "/eventType").unwrap_or_default();
    let (event_type, severity) = match (name, level) {
        ("SERVICE_DEPLOYMENT_FAILED", _) => (EventType::DeploymentFailed, None),
        (n, _) if n.ends_with("STEADY_STATE") || n == "SERVICE_DEPLOYMENT_COMPLETED" => {
            (EventType::AlarmResolved, Some(Severity::Info))
        }
        (_, "ERROR") => (EventType::ServiceHealth, Some(Severity::High)),
        (_, "WARN") => (EventType::ServiceHealth, None),
        _ => (EventType::ResourceChanged, Some(Severity::Info)),
    };
    let mut draft = base_draft(EventSource::AwsEcs, event_type, raw, origin);
    draft.source_severity = severity;
    let service = envelope_resources(raw.value())
        .into_iter()
        .find(|arn| arn.contains(":service/"))
        .or_else(|| text(detail, "/serviceArn"))
        .unwrap_or_default();
    draft.resource = resource(
        aws_types::ECS_SERVICE,
        service,
        draft.region.as_deref(),
        &draft.account_id,
    );
    let meta = &mut draft.resource.metadata;
    put(meta, "detail_type", detail_type);
    put(meta, "event_name", name);
    put(meta, "level", level);
    put(meta, "restartable", RESTARTABLE.contains(&name));
    for (key, pointer) in [
        ("cluster_arn", "/clusterArn"),
        ("reason", "/reason"),
        ("deployment_id", "/deploymentId"),
    ] {
        put(meta, key, text(detail, pointer).unwrap_or_default());
    }
    copy_replay(&mut draft, raw);
    Ok(vec![draft])
}
