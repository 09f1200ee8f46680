//! Azure system events delivered by Event Grid: Resource Manager operations, Policy
//! states, Blob storage, and Resource Notifications (health and resource changes).

use crate::normalize::JsonAt;
use crate::resource_types::azure as azure_types;
use serde_json::{Map, Value};

use super::arm::{resource_kind, ArmId};
use super::eventgrid::GridEvent;
use super::{
    operation_says_create, put, put_str, region_name, resource_from_id, subscription_of, text,
};
use crate::event::{EventSource, EventType, Severity};
use crate::normalize::{tags_from, EventDraft, NormalizeError};

/// The draft for one event, `None` for a recognised event that asks nothing of anyone
/// (a failed or cancelled operation changed nothing; a subscription was deleted).
pub(super) fn draft(event: &GridEvent) -> Result<Option<EventDraft>, NormalizeError> {
    let lower = event.event_type.to_ascii_lowercase();
    if let Some(operation) = lower.strip_prefix("microsoft.resources.resource") {
        return resource_operation(event, operation);
    }
    if let Some(state) = lower.strip_prefix("microsoft.policyinsights.policystate") {
        return policy_state(event, state).map(Some);
    }
    if let Some(storage_event) = lower.strip_prefix("microsoft.storage.") {
        return storage(event, storage_event);
    }
    if let Some(health) = lower.strip_prefix("microsoft.resourcenotifications.healthresources.") {
        return health_resource(event, health);
    }
    if let Some(change) = lower.strip_prefix("microsoft.resourcenotifications.resources.") {
        return resource_notification(event, change);
    }
    if lower == "microsoft.eventgrid.subscriptiondeletedevent" {
        return Ok(None);
    }
    Err(unsupported(event))
}

fn unsupported(event: &GridEvent) -> NormalizeError {
    NormalizeError::unrecognized(
        event.envelope(),
        "this event type is not supported (supported: Microsoft.Resources.Resource*, \
         Microsoft.PolicyInsights.PolicyState*, Microsoft.Storage.Blob*/Directory*, \
         Microsoft.ResourceNotifications.HealthResources.* and .Resources.*, \
         Microsoft.EventGrid.SubscriptionValidationEvent)",
    )
}

/// `Microsoft.Resources.Resource{Write,Delete,Action}{Success,Failure,Cancel}`.
fn resource_operation(
    event: &GridEvent,
    operation: &str,
) -> Result<Option<EventDraft>, NormalizeError> {
    let data = event.data;
    let operation_name =
        text(data, "/operationName").or_else(|| text(data, "/authorization/action"));
    let event_type = match operation {
        "writesuccess" if operation_says_create(operation_name) => EventType::ResourceCreated,
        // A write is create-or-update and Event Grid cannot tell which.
        "writesuccess" | "actionsuccess" => EventType::ResourceChanged,
        "deletesuccess" => EventType::ResourceDeleted,
        "writefailure"
            if operation_name.is_some_and(|op| {
                op.eq_ignore_ascii_case("Microsoft.Resources/deployments/write")
            }) =>
        {
            EventType::DeploymentFailed
        }
        "writefailure" | "writecancel" | "deletefailure" | "deletecancel" | "actionfailure"
        | "actioncancel" => return Ok(None),
        _ => return Err(unsupported(event)),
    };
    let resource_id = match text(data, "/resourceUri").or(event.subject) {
        Some(id) => id,
        None => return Err(event.field_error("/data/resourceUri", "is missing")),
    };
    let mut draft = event.draft(EventSource::AzureResources, event_type);
    draft.account_id = subscription_of(
        &[text(data, "/subscriptionId")],
        &[Some(resource_id), event.topic],
    );
    draft.resource = resource_from_id(resource_id);
    let meta = &mut draft.resource.metadata;
    put_str(meta, "operation_name", operation_name);
    put_str(meta, "status", text(data, "/status"));
    put_str(meta, "caller", caller(data));
    // Look the shared parent objects up once and read their fields relative to them.
    let evidence = data.at("/authorization/evidence").unwrap_or(&Value::Null);
    put_str(meta, "principal_id", text(evidence, "/principalId"));
    put_str(meta, "principal_type", text(evidence, "/principalType"));
    put_str(meta, "role", text(evidence, "/role"));
    let http = data.get("httpRequest").unwrap_or(&Value::Null);
    put_str(meta, "client_ip", text(http, "/clientIpAddress"));
    put_str(meta, "http_method", text(http, "/method"));
    put_str(meta, "correlation_id", text(data, "/correlationId"));
    put_str(meta, "tenant_id", text(data, "/tenantId"));
    put_str(meta, "topic", event.topic);
    Ok(Some(draft))
}

/// Who did it: the UPN for users, the app id for service principals.
fn caller(data: &Value) -> Option<&str> {
    let claims = data.get("claims")?.as_object()?;
    [
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn",
        "upn",
        "unique_name",
        "name",
        "appid",
    ]
    .iter()
    .find_map(|key| claims.get(*key)?.as_str().filter(|s| !s.trim().is_empty()))
}

/// Built-in policy definitions whose violation is one of the problems Escher fixes, by the
/// definition's id (its last segment, the same in every tenant).
const POLICY_PROBLEMS: &[(&str, EventType)] = &[
    // "Storage account public access should be disallowed".
    (
        "4fa4b6c0-31ca-4c0d-b10d-24b96f62a751",
        EventType::BucketPublic,
    ),
];

/// What a non-compliant state means: the problem its built-in definition names, else a
/// compliance violation to notify.
fn violation_of(definition_id: &str) -> EventType {
    let id = definition_id.rsplit('/').next().unwrap_or_default();
    POLICY_PROBLEMS
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(id))
        .map(|(_, problem)| *problem)
        .unwrap_or(EventType::ComplianceViolation)
}

/// `Microsoft.PolicyInsights.PolicyState{Created,Changed,Deleted}`.
///
/// NonCompliant is a violation. Compliant after a change means a violation was fixed
/// (`alarm_resolved`); a first evaluation that is compliant, a deleted state, or any other
/// state (Exempt, Conflicting, Unknown…) is only a `resource_changed` note.
fn policy_state(event: &GridEvent, state: &str) -> Result<EventDraft, NormalizeError> {
    let data = event.data;
    let compliance = match state {
        "created" | "changed" => Some(event.required("/data/complianceState")?),
        "deleted" => text(data, "/complianceState"),
        _ => return Err(unsupported(event)),
    };
    let lower = compliance.map(str::to_ascii_lowercase);
    let event_type = match (state, lower.as_deref()) {
        ("created" | "changed", Some("noncompliant")) => {
            violation_of(text(data, "/policyDefinitionId").unwrap_or_default())
        }
        ("changed", Some("compliant")) => EventType::AlarmResolved,
        _ => EventType::ResourceChanged,
    };
    let Some(resource_id) = event.subject else {
        return Err(event.field_error("/subject", "is missing (it names the evaluated resource)"));
    };
    let mut draft = event.draft(EventSource::AzurePolicy, event_type);
    draft.account_id = subscription_of(
        &[text(data, "/subscriptionId")],
        &[Some(resource_id), event.topic],
    );
    draft.resource = resource_from_id(resource_id);
    let meta = &mut draft.resource.metadata;
    put_str(meta, "compliance_state", compliance);
    put_str(
        meta,
        "compliance_reason_code",
        text(data, "/complianceReasonCode"),
    );
    put_str(
        meta,
        "policy_assignment_id",
        text(data, "/policyAssignmentId"),
    );
    put_str(
        meta,
        "policy_definition_id",
        text(data, "/policyDefinitionId"),
    );
    put_str(
        meta,
        "policy_definition_reference_id",
        text(data, "/policyDefinitionReferenceId"),
    );
    put_str(meta, "evaluated_at", text(data, "/timestamp"));
    put_str(meta, "topic", event.topic);
    Ok(draft)
}

/// `Microsoft.Storage.*` blob and directory events. The resource is the blob itself (what
/// a scan or quarantine acts on), its id the account id + the subject; the account and
/// container are in metadata.
fn storage(event: &GridEvent, storage_event: &str) -> Result<Option<EventDraft>, NormalizeError> {
    let event_type = match storage_event {
        "blobcreated" | "directorycreated" => EventType::ResourceCreated,
        "blobdeleted" | "directorydeleted" => EventType::ResourceDeleted,
        "blobtierchanged" | "blobrenamed" | "directoryrenamed" => EventType::ResourceChanged,
        _ => return Err(unsupported(event)),
    };
    let account_id = match event.topic {
        Some(topic) => topic,
        None => {
            return Err(event.field_error(
                event.topic_field(),
                "is missing (it names the storage account)",
            ))
        }
    };
    let subject = event.required("/subject")?;
    let data = event.data;
    let account = ArmId::parse(account_id);
    // Blob names may hold `/`: everything after `/blobs/` is the name.
    let (container, blob) = match subject.split_once("/containers/") {
        Some((_, rest)) => match rest.split_once("/blobs/") {
            Some((container, blob)) => (Some(container), Some(blob)),
            None => (Some(rest), None),
        },
        None => (None, None),
    };
    let mut draft = event.draft(EventSource::AzureStorage, event_type);
    draft.account_id = subscription_of(&[], &[Some(account_id)]);
    draft.resource.kind = if blob.is_some() || container.is_none() {
        "azure_blob".into()
    } else {
        azure_types::BLOB_CONTAINER.into()
    };
    draft.resource.id = format!("{}{}", account_id.trim_end_matches('/'), subject);
    draft.resource.name = blob.or(container).unwrap_or(subject).to_string();
    let meta = &mut draft.resource.metadata;
    put_str(meta, "storage_account", account.name);
    put_str(meta, "storage_account_id", Some(account_id));
    put_str(meta, "container", container);
    put_str(meta, "url", text(data, "/url"));
    put_str(meta, "api", text(data, "/api"));
    put_str(meta, "content_type", text(data, "/contentType"));
    put(meta, "content_length", data.get("contentLength"));
    put_str(meta, "blob_type", text(data, "/blobType"));
    put_str(meta, "access_tier", text(data, "/accessTier"));
    put_str(meta, "e_tag", text(data, "/eTag"));
    put_str(meta, "destination_url", text(data, "/destinationUrl"));
    Ok(Some(draft))
}

/// `Microsoft.ResourceNotifications.HealthResources.{AvailabilityStatusChanged,ResourceAnnotated}`:
/// Resource Health about one resource. A resource back to `Available` says so at INFO
/// (nobody needs paging for a recovery); other changes keep the service_health default.
fn health_resource(event: &GridEvent, health: &str) -> Result<Option<EventDraft>, NormalizeError> {
    if !matches!(health, "availabilitystatuschanged" | "resourceannotated") {
        return Err(unsupported(event));
    }
    let data = event.data;
    let props = data.at("/resourceInfo/properties").unwrap_or(&Value::Null);
    let Some(target) = text(props, "/targetResourceId").or(event.subject) else {
        return Err(event.field_error(
            "/data/resourceInfo/properties/targetResourceId",
            "is missing",
        ));
    };
    let mut draft = event.draft(EventSource::AzureHealth, EventType::ServiceHealth);
    draft.account_id = subscription_of(&[], &[Some(target), event.topic]);
    draft.resource = resource_from_id(target);
    if let Some(target_type) = text(props, "/targetResourceType") {
        draft.resource.kind = resource_kind(target_type);
    }
    draft.region = text(data, "/resourceInfo/location").and_then(region_name);
    let availability = text(props, "/availabilityState");
    if availability.is_some_and(|a| a.eq_ignore_ascii_case("Available")) {
        draft.source_severity = Some(Severity::Info);
    }
    let meta = &mut draft.resource.metadata;
    put_str(meta, "availability_state", availability);
    put_str(
        meta,
        "previous_availability_state",
        text(props, "/previousAvailabilityState"),
    );
    for (key, field) in [
        ("annotation_name", "/annotationName"),
        ("title", "/title"),
        ("summary", "/summary"),
        ("reason", "/reason"),
        ("reason_type", "/reasonType"),
        ("context", "/context"),
        ("category", "/category"),
        ("occurred_time", "/occurredTime"),
    ] {
        put_str(meta, key, text(props, field));
    }
    put_str(meta, "health_event_id", text(data, "/resourceInfo/id"));
    Ok(Some(draft))
}

/// `Microsoft.ResourceNotifications.Resources.{CreatedOrUpdated,Deleted}`: Azure Resource
/// Graph change notifications, which carry the resource's location and tags.
fn resource_notification(
    event: &GridEvent,
    change: &str,
) -> Result<Option<EventDraft>, NormalizeError> {
    let event_type = match change {
        "createdorupdated" => EventType::ResourceChanged,
        "deleted" => EventType::ResourceDeleted,
        _ => return Err(unsupported(event)),
    };
    let data = event.data;
    let info = data.get("resourceInfo").unwrap_or(&Value::Null);
    let Some(resource_id) = text(info, "/id").or(event.subject) else {
        return Err(event.field_error("/data/resourceInfo/id", "is missing"));
    };
    let mut draft = event.draft(EventSource::AzureResources, event_type);
    draft.account_id = subscription_of(&[], &[Some(resource_id), event.topic]);
    draft.resource = resource_from_id(resource_id);
    if let Some(kind) = text(info, "/type") {
        draft.resource.kind = resource_kind(kind);
    }
    if let Some(name) = text(info, "/name") {
        draft.resource.name = name.to_string();
    }
    draft.resource.tags = tags_from(info.get("tags"));
    draft.region = text(info, "/location").and_then(region_name);
    let meta: &mut Map<String, Value> = &mut draft.resource.metadata;
    put_str(
        meta,
        "resource_event_time",
        text(data, "/operationalInfo/resourceEventTime"),
    );
    put(meta, "properties", info.get("properties"));
    put_str(meta, "topic", event.topic);
    Ok(Some(draft))
}
