//! EventBridge envelopes: reads the envelope, routes on `detail-type`, and handles the small
//! bodies itself (EC2 instance state, EBS volume notifications, AWS Health, Scheduled Event).

use crate::resource_types::aws as aws_types;
use aws_lambda_events::event::cloudwatch_events::{
    ec2::InstanceStateChange, health, CloudWatchEvent,
};
use serde_json::Value;

use super::Skipped;
use super::{
    alarm, arn_field, cloudtrail, config, findings, items, need, pick_account, pick_region, put,
    resource, text, typed, Origin, Raw,
};
use crate::event::{EventSource, EventType, Severity};
use crate::normalize::{json_kind, str_at, tags_from, EventDraft, NormalizeError};

/// One EventBridge event (also when it arrived inside an SNS message).
pub(super) fn normalize(raw: Raw<'_>) -> Result<Vec<EventDraft>, NormalizeError> {
    let event = raw.value();
    let source = str_at(event, "/source").unwrap_or_default();
    let detail_type = str_at(event, "/detail-type").unwrap_or_default();
    let origin = origin(event, source, detail_type);
    let detail = event.get("detail").unwrap_or(&Value::Null);
    if !detail.is_object() {
        return Err(NormalizeError::field(
            &origin.envelope,
            "detail",
            format!("must be an object, found {}", json_kind(detail)),
        ));
    }
    match detail_type {
        "CloudWatch Alarm State Change" => {
            alarm::normalize_state_change(detail, "/detail", raw, &origin)
        }
        "CloudWatch Alarm Configuration Change" => {
            alarm::normalize_config_change(detail, "/detail", raw, &origin)
        }
        // The envelope's `source` is the called service (`aws.s3`), not CloudTrail.
        "AWS API Call via CloudTrail" => {
            cloudtrail::normalize_record(detail, "/detail", raw, &origin)
        }
        "EC2 Instance State-change Notification" => instance_state(detail, raw, &origin),
        "EBS Volume Notification" => ebs_volume(detail, raw, &origin),
        "Config Rules Compliance Change" | "Config Configuration Item Change" => {
            config::normalize_message(detail, "/detail", raw, &origin)
        }
        "GuardDuty Finding" => findings::normalize_guardduty(detail, raw, &origin),
        "Security Hub Findings - Imported" | "Security Hub Findings - Custom Action" => {
            findings::normalize_securityhub_event(raw, &origin)
        }
        "AWS Health Event" | "AWS Health Abuse Event" => health_event(detail, raw, &origin),
        "ECS Service Action" | "ECS Deployment State Change" => {
            super::ecs::normalize_service_event(detail_type, detail, raw, &origin)
        }
        "CloudFormation Stack Status Change" => {
            super::cloudformation::normalize_stack_status(detail, raw, &origin)
        }
        "Scheduled Event" => scheduled(raw, &origin),
        _ => Err(NormalizeError::unrecognized(
            origin.envelope,
            "this source and detail-type are not normalized",
        )),
    }
}

fn origin(event: &Value, source: &str, detail_type: &str) -> Origin {
    let envelope = format!("EventBridge event (source {source}, detail-type {detail_type})");
    // The crate's envelope type rejects the placeholder `time` of the published EBS samples;
    // the same fields are then read from the JSON.
    let (id, account, region, time) = match typed::<CloudWatchEvent<Skipped>>(event) {
        Some(ev) => (ev.id, ev.account_id, ev.region, Some(ev.time.to_rfc3339())),
        None => (
            text(event, "/id").map(str::to_string),
            text(event, "/account").map(str::to_string),
            text(event, "/region").map(str::to_string),
            text(event, "/time").map(str::to_string),
        ),
    };
    Origin {
        envelope,
        delivery_id: id,
        account,
        region,
        time,
    }
}

/// The envelope's `resources` ARNs.
pub(super) fn envelope_resources(event: &Value) -> Vec<&str> {
    event
        .get("resources")
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

pub(super) fn base_draft(
    source: EventSource,
    event_type: EventType,
    raw: Raw<'_>,
    origin: &Origin,
) -> EventDraft {
    let mut draft = raw.draft(source, event_type);
    draft.account_id = pick_account([origin.account.as_deref()]);
    draft.region = pick_region([origin.region.as_deref()]);
    draft.time = origin.time.clone();
    draft.id_parts = origin.delivery_id.iter().cloned().collect();
    draft
}

fn instance_state(
    detail: &Value,
    raw: Raw<'_>,
    origin: &Origin,
) -> Result<Vec<EventDraft>, NormalizeError> {
    // Documented spelling first; an archive-replay sample spells the key `instance_id`.
    let (instance_id, state) = match typed::<InstanceStateChange>(detail) {
        Some(change) => (change.instance_id, change.state),
        None => {
            let pointer = if detail.get("instance_id").is_some() {
                "/instance_id"
            } else {
                "/instance-id"
            };
            let id = need(detail, pointer, "/detail", &origin.envelope)?;
            let state = need(detail, "/state", "/detail", &origin.envelope)?;
            (id.to_string(), state.to_string())
        }
    };
    let mut draft = base_draft(
        EventSource::AwsEc2,
        EventType::InstanceStateChanged,
        raw,
        origin,
    );
    let arn = envelope_resources(raw.value())
        .into_iter()
        .find(|arn| arn.ends_with(&format!("instance/{instance_id}")));
    draft.resource = resource(
        aws_types::EC2_INSTANCE,
        arn.unwrap_or(&instance_id),
        draft.region.as_deref(),
        &draft.account_id,
    );
    put(&mut draft.resource.metadata, "state", state);
    copy_replay(&mut draft, raw);
    Ok(vec![draft])
}

/// An archive replay re-sends old events; a reader should know the alert is not live.
pub(super) fn copy_replay(draft: &mut EventDraft, raw: Raw<'_>) {
    if let Some(name) = text(raw.value(), "/replay-name") {
        put(&mut draft.resource.metadata, "replay_name", name);
    }
}

/// EBS volume operations. `createVolume` that became `available` created a volume,
/// `deleteVolume` removed one; anything else (attach, detach, modify, and every failure) is a
/// change of the volume. A failed operation is usually a KMS key that was disabled or is
/// pending deletion, which leaves data unreachable, so it is raised to MEDIUM.
fn ebs_volume(
    detail: &Value,
    raw: Raw<'_>,
    origin: &Origin,
) -> Result<Vec<EventDraft>, NormalizeError> {
    let operation = need(detail, "/event", "/detail", &origin.envelope)?;
    let result = text(detail, "/result").unwrap_or_default();
    let event_type = match (operation, result) {
        ("createVolume", "available") => EventType::ResourceCreated,
        ("deleteVolume", _) if result != "failed" => EventType::ResourceDeleted,
        _ => EventType::ResourceChanged,
    };
    let mut draft = base_draft(EventSource::AwsEc2, event_type, raw, origin);
    if result == "failed" {
        draft.source_severity = Some(Severity::Medium);
    }
    let arns = envelope_resources(raw.value());
    let volume = arns.iter().find(|a| a.contains(":volume/")).copied();
    draft.resource = resource(
        aws_types::EBS_VOLUME,
        volume.unwrap_or_default(),
        draft.region.as_deref(),
        &draft.account_id,
    );
    let meta = &mut draft.resource.metadata;
    put(meta, "operation", operation);
    put(meta, "result", result);
    put(meta, "cause", text(detail, "/cause").unwrap_or_default());
    put(
        meta,
        "request_id",
        text(detail, "/request-id").unwrap_or_default(),
    );
    if let Some(key) = arns.iter().find(|a| a.contains(":key/")) {
        put(meta, "kms_key_arn", *key);
    }
    copy_replay(&mut draft, raw);
    Ok(vec![draft])
}

/// AWS Health: one event per Health event. The resource is the affected entity when there is
/// exactly one, else the Health event itself. Open issues are HIGH, account notifications
/// and closed events INFO, scheduled changes keep the policy default.
fn health_event(
    detail: &Value,
    raw: Raw<'_>,
    origin: &Origin,
) -> Result<Vec<EventDraft>, NormalizeError> {
    let (type_code, category, service, description) = match typed::<health::Event>(detail) {
        Some(ev) => {
            let description = ev
                .event_description
                .iter()
                .find(|d| d.language.starts_with("en"))
                .or_else(|| ev.event_description.first())
                .map(|d| d.latest_description.clone());
            (
                ev.event_type_code,
                ev.event_type_category,
                ev.service,
                description,
            )
        }
        None => (
            need(detail, "/eventTypeCode", "/detail", &origin.envelope)?.to_string(),
            text(detail, "/eventTypeCategory")
                .unwrap_or_default()
                .to_string(),
            text(detail, "/service").unwrap_or_default().to_string(),
            text(detail, "/eventDescription/0/latestDescription").map(str::to_string),
        ),
    };
    let status = text(detail, "/statusCode").unwrap_or_default();
    let mut draft = base_draft(
        EventSource::AwsHealth,
        EventType::ServiceHealth,
        raw,
        origin,
    );
    draft.source_severity = match (category.as_str(), status) {
        (_, "closed") | ("accountNotification", _) => Some(Severity::Info),
        ("issue", _) => Some(Severity::High),
        _ => None,
    };
    let entities = items(detail.get("affectedEntities"));
    let entity_values: Vec<&str> = entities
        .iter()
        .filter_map(|e| text(e, "/entityValue"))
        .collect();
    let event_arn = text(detail, "/eventArn").unwrap_or_default();
    draft.resource = match (entity_values.as_slice(), entities.first()) {
        ([only], Some(entity)) => {
            let kind = entity_kind(only);
            let mut res = resource(&kind, only, draft.region.as_deref(), &draft.account_id);
            res.tags = tags_from(entity.get("tags"));
            res
        }
        _ => {
            let mut res = resource("health_event", event_arn, None, "");
            res.name = type_code.clone();
            res
        }
    };
    let meta = &mut draft.resource.metadata;
    put(meta, "event_arn", event_arn);
    put(meta, "service", service);
    put(meta, "event_type_code", type_code);
    put(meta, "event_type_category", category);
    put(meta, "status_code", status);
    put(
        meta,
        "start_time",
        text(detail, "/startTime").unwrap_or_default(),
    );
    put(
        meta,
        "end_time",
        text(detail, "/endTime").unwrap_or_default(),
    );
    put(meta, "description", description.unwrap_or_default());
    put(
        meta,
        "affected_entities",
        entity_values
            .iter()
            .map(|v| Value::String((*v).to_string()))
            .collect::<Vec<_>>(),
    );
    Ok(vec![draft])
}

/// Our kind for a Health entity value: EC2 ids by prefix, ARNs by service.
fn entity_kind(entity: &str) -> String {
    let by_prefix = [
        ("i-", aws_types::EC2_INSTANCE),
        ("vol-", aws_types::EBS_VOLUME),
        ("sg-", aws_types::SECURITY_GROUP),
    ];
    if let Some((_, kind)) = by_prefix.iter().find(|(p, _)| entity.starts_with(p)) {
        return (*kind).to_string();
    }
    match arn_field(entity, 2) {
        Some("s3") => aws_types::S3_BUCKET.into(),
        Some("rds") => aws_types::RDS_INSTANCE.into(),
        Some("lambda") => aws_types::LAMBDA_FUNCTION.into(),
        Some("ec2") if entity.contains(":instance/") => aws_types::EC2_INSTANCE.into(),
        Some("ec2") if entity.contains(":volume/") => aws_types::EBS_VOLUME.into(),
        Some(service) => format!("{service}_resource"),
        None => "aws_resource".into(),
    }
}

/// A schedule rule fired: the trigger for a periodic scan.
fn scheduled(raw: Raw<'_>, origin: &Origin) -> Result<Vec<EventDraft>, NormalizeError> {
    let mut draft = base_draft(
        EventSource::AwsEvents,
        EventType::ScheduledScan,
        raw,
        origin,
    );
    let rule = envelope_resources(raw.value())
        .first()
        .copied()
        .unwrap_or_default();
    draft.resource = resource("events_rule", rule, None, "");
    put(&mut draft.resource.metadata, "rule_arn", rule);
    Ok(vec![draft])
}
