//! AWS Config: rule compliance changes, configuration item changes (also oversized ones),
//! delivered through EventBridge, SNS or unwrapped, and the payload Config sends to a custom
//! rule's Lambda (`invokingEvent`).
//!
//! - Compliance: `NON_COMPLIANT` → `compliance_violation`; `COMPLIANT` / `NOT_APPLICABLE` →
//!   `alarm_resolved` (the violation is cleared, there is no better-fitting type);
//!   `INSUFFICIENT_DATA` → `compliance_violation` at INFO (the rule could not judge).
//! - Configuration items: `ResourceDiscovered` → `resource_created`, `ResourceDeleted*` →
//!   `resource_deleted`, else `resource_changed`; except a security group whose ingress
//!   admits 0.0.0.0/0 or ::/0, which is `firewall_open` whatever changed (that state is what
//!   a reader must act on).
//! - A periodic rule invocation (snapshot delivered / scheduled) → `scheduled_scan`.
//! - Delivery notices (snapshot or history delivered to S3) describe nothing to act on: no event.

use crate::normalize::JsonAt;
use crate::resource_types::aws as aws_types;
use serde_json::Value;

use super::{
    arn_field, embedded_json, looks_like_region, need, pick_account, pick_region, put, resource,
    resource_kind, scalar_text, text, world_open_permissions, Origin, Raw,
};
use crate::event::{EventSource, EventType, Resource, Severity};
use crate::normalize::{
    resolve_inner_payload, tags_from, with_replaced, EventDraft, NormalizeError,
};

const MESSAGE_TYPES: &[&str] = &[
    "ComplianceChangeNotification",
    "ConfigurationItemChangeNotification",
    "OversizedConfigurationItemChangeNotification",
    "ConfigurationSnapshotDeliveryCompleted",
    "ConfigurationSnapshotDeliveryStarted",
    "ConfigurationSnapshotDeliveryFailed",
    "ConfigurationHistoryDeliveryCompleted",
    "ConfigRulesEvaluationStarted",
    "ScheduledNotification",
];

/// An AWS Config notification (the SNS message body or EventBridge detail).
pub(super) fn is_config_message(value: &Value) -> bool {
    text(value, "/messageType").is_some_and(|t| MESSAGE_TYPES.contains(&t))
}

/// One Config notification: `message` is the notification, `base` its path (for errors),
/// `raw` what the events keep.
pub(super) fn normalize_message(
    message: &Value,
    base: &str,
    raw: Raw<'_>,
    origin: &Origin,
) -> Result<Vec<EventDraft>, NormalizeError> {
    let message_type = text(message, "/messageType").unwrap_or_default();
    if message_type == "ComplianceChangeNotification"
        || message.get("newEvaluationResult").is_some()
    {
        return compliance_change(message, base, raw, origin).map(|d| vec![d]);
    }
    let diff = message.get("configurationItemDiff");
    if let Some(item) = message.get("configurationItem") {
        // Configuration notifications of version 1.0 carry a list of items.
        let list: Vec<(String, &Value)> = match item {
            Value::Array(list) => list
                .iter()
                .enumerate()
                .map(|(i, it)| (format!("{base}/configurationItem/{i}"), it))
                .collect(),
            _ => vec![(format!("{base}/configurationItem"), item)],
        };
        return list
            .into_iter()
            .map(|(item_base, it)| configuration_item(it, &item_base, diff, raw, origin))
            .collect();
    }
    if let Some(summary) = message.get("configurationItemSummary") {
        let mut draft = configuration_item(
            summary,
            &format!("{base}/configurationItemSummary"),
            None,
            raw,
            origin,
        )?;
        put(&mut draft.resource.metadata, "oversized", true);
        if let Some(location) = text(message, "/s3DeliverySummary/s3BucketLocation") {
            put(&mut draft.resource.metadata, "s3_location", location);
        }
        return Ok(vec![draft]);
    }
    if message_type.contains("ConfigurationItem") {
        need(message, "/configurationItem", base, &origin.envelope)?;
    }
    Ok(Vec::new())
}

fn compliance_change(
    message: &Value,
    base: &str,
    raw: Raw<'_>,
    origin: &Origin,
) -> Result<EventDraft, NormalizeError> {
    let envelope = &origin.envelope;
    let compliance = need(
        message,
        "/newEvaluationResult/complianceType",
        base,
        envelope,
    )?;
    let qualifier = "/newEvaluationResult/evaluationResultIdentifier/evaluationResultQualifier";
    let resource_id = match text(message, "/resourceId") {
        Some(id) => id,
        None => need(message, &format!("{qualifier}/resourceId"), base, envelope)?,
    };
    let resource_type = text(message, "/resourceType")
        .or_else(|| text(message, &format!("{qualifier}/resourceType")))
        .unwrap_or_default();
    let rule = text(message, "/configRuleName")
        .or_else(|| text(message, &format!("{qualifier}/configRuleName")))
        .unwrap_or_default();
    let (event_type, severity) = match compliance {
        "NON_COMPLIANT" => (EventType::ComplianceViolation, None),
        "COMPLIANT" | "NOT_APPLICABLE" => (EventType::AlarmResolved, None),
        "INSUFFICIENT_DATA" => (EventType::ComplianceViolation, Some(Severity::Info)),
        other => {
            return Err(NormalizeError::field(
                envelope,
                crate::normalize::dotted(&format!("{base}/newEvaluationResult/complianceType")),
                format!("is `{other}`, expected NON_COMPLIANT, COMPLIANT, NOT_APPLICABLE or INSUFFICIENT_DATA"),
            ))
        }
    };
    let account = pick_account([text(message, "/awsAccountId"), origin.account.as_deref()]);
    let region = pick_region([
        text(message, "/awsRegion"),
        text(message, "/configRuleARN").and_then(|a| arn_field(a, 3)),
        origin.region.as_deref(),
    ]);
    let mut draft = raw.draft(EventSource::AwsConfig, event_type);
    draft.source_severity = severity;
    draft.resource = resource(
        &resource_kind(resource_type),
        resource_id,
        region.as_deref(),
        &account,
    );
    let meta = &mut draft.resource.metadata;
    put(meta, "config_rule_name", rule);
    put(
        meta,
        "config_rule_arn",
        text(message, "/configRuleARN").unwrap_or_default(),
    );
    put(meta, "resource_type", resource_type);
    put(meta, "compliance_type", compliance);
    put(
        meta,
        "previous_compliance_type",
        text(message, "/oldEvaluationResult/complianceType").unwrap_or_default(),
    );
    put(
        meta,
        "annotation",
        text(message, "/newEvaluationResult/annotation").unwrap_or_default(),
    );
    let ordering = text(
        message,
        "/newEvaluationResult/evaluationResultIdentifier/orderingTimestamp",
    );
    draft.time = text(message, "/newEvaluationResult/resultRecordedTime")
        .or(ordering)
        .or_else(|| text(message, "/notificationCreationTime"))
        .map(str::to_string)
        .or_else(|| origin.time.clone());
    draft.id_parts = origin.delivery_id.iter().cloned().collect();
    draft.id_parts.extend([
        rule.to_string(),
        resource_id.to_string(),
        ordering.unwrap_or_default().to_string(),
    ]);
    draft.account_id = account;
    draft.region = region;
    Ok(draft)
}

/// One configuration item (or the summary of an oversized one).
fn configuration_item(
    item: &Value,
    base: &str,
    diff: Option<&Value>,
    raw: Raw<'_>,
    origin: &Origin,
) -> Result<EventDraft, NormalizeError> {
    let envelope = &origin.envelope;
    let resource_id = need(item, "/resourceId", base, envelope)?;
    let resource_type = text(item, "/resourceType").unwrap_or_default();
    let status = text(item, "/configurationItemStatus").unwrap_or_default();
    let change_type = diff
        .and_then(|d| text(d, "/changeType"))
        .or_else(|| text(item, "/changeType"))
        .unwrap_or_default();
    let account = pick_account([
        text(item, "/awsAccountId"),
        text(item, "/accountId"),
        origin.account.as_deref(),
    ]);
    // Version 1.0 items have no region, only an availability zone (`us-west-2b`).
    let zone_region = text(item, "/availabilityZone")
        .and_then(|z| z.strip_suffix(|c: char| c.is_ascii_lowercase()));
    let region = pick_region([
        text(item, "/awsRegion"),
        zone_region,
        origin.region.as_deref(),
    ]);
    let kind = resource_kind(resource_type);
    // Version 1.0 items put the availability zone where the service belongs
    // (`arn:aws:us-west-2b:...`); such an ARN is rebuilt from the id instead.
    let arn = text(item, "/ARN")
        .or_else(|| text(item, "/arn"))
        .filter(|a| {
            !arn_field(a, 2).is_some_and(|service| {
                looks_like_region(service.trim_end_matches(|c: char| c.is_ascii_lowercase()))
            })
        });
    let mut res: Resource = resource(
        &kind,
        arn.unwrap_or(resource_id),
        region.as_deref(),
        &account,
    );
    res.name = text(item, "/resourceName")
        .unwrap_or(resource_id)
        .to_string();
    res.tags = tags_from(item.get("tags"));
    let deleted = status.starts_with("ResourceDeleted") || change_type == "DELETE";
    let open = if kind == aws_types::SECURITY_GROUP && !deleted {
        world_open_permissions(item.at("/configuration/ipPermissions"))
    } else {
        Vec::new()
    };
    let event_type = if !open.is_empty() {
        EventType::FirewallOpen
    } else if deleted {
        EventType::ResourceDeleted
    } else if status == "ResourceDiscovered" || change_type == "CREATE" {
        EventType::ResourceCreated
    } else {
        EventType::ResourceChanged
    };
    let meta = &mut res.metadata;
    put(meta, "resource_type", resource_type);
    put(meta, "configuration_item_status", status);
    put(meta, "change_type", change_type);
    let changed: Vec<Value> = diff
        .and_then(|d| d.get("changedProperties"))
        .and_then(Value::as_object)
        .map(|props| props.keys().cloned().map(Value::String).collect())
        .unwrap_or_default();
    put(meta, "changed_properties", changed);
    let state_id = scalar_text(item, "/configurationStateId")
        .or_else(|| scalar_text(item, "/configurationStateID"));
    put(
        meta,
        "configuration_state_id",
        state_id.clone().unwrap_or_default(),
    );
    if !open.is_empty() {
        put(meta, "group_id", resource_id);
        put(meta, "open_permissions", open);
    }
    let mut draft = raw.draft(EventSource::AwsConfig, event_type);
    draft.resource = res;
    draft.time = text(item, "/configurationItemCaptureTime")
        .map(str::to_string)
        .or_else(|| origin.time.clone());
    draft.id_parts = origin.delivery_id.iter().cloned().collect();
    draft.id_parts.extend([
        arn.unwrap_or(resource_id).to_string(),
        state_id.unwrap_or_default(),
    ]);
    draft.account_id = account;
    draft.region = region;
    Ok(draft)
}

/// What Config sends to a custom rule's Lambda. The rule is the outermost id, and its name
/// goes into every event's metadata.
pub(super) fn normalize_rule_invocation(value: &Value) -> Result<Vec<EventDraft>, NormalizeError> {
    let rule_name = text(value, "/configRuleName").unwrap_or_default();
    let rule_arn = text(value, "/configRuleArn");
    let envelope = format!("AWS Config rule invocation (rule {rule_name})");
    let invoking = value.get("invokingEvent").unwrap_or(&Value::Null);
    let Some(event) = embedded_json(invoking) else {
        let problem = match invoking {
            Value::String(s) => match serde_json::from_str::<Value>(s) {
                Err(e) => format!("is not valid JSON: {e}"),
                Ok(_) => "must hold a JSON object".to_string(),
            },
            other => format!(
                "must be a JSON string or object, found {}",
                crate::normalize::json_kind(other)
            ),
        };
        return Err(NormalizeError::field(envelope, "invokingEvent", problem));
    };
    let origin = Origin {
        envelope,
        delivery_id: Some(rule_arn.unwrap_or(rule_name).to_string()),
        account: text(value, "/accountId").map(str::to_string),
        region: rule_arn.and_then(|a| arn_field(a, 3)).map(str::to_string),
        time: text(&event, "/notificationCreationTime").map(str::to_string),
    };
    let message_type = text(&event, "/messageType").unwrap_or_default();
    let mut drafts = match message_type {
        "ScheduledNotification"
        | "ConfigurationSnapshotDeliveryCompleted"
        | "ConfigurationSnapshotDeliveryStarted" => {
            vec![periodic_trigger(
                value,
                &event,
                Raw::payload(&event),
                &origin,
            )]
        }
        _ if event.get("configurationItem").is_some()
            || event.get("configurationItemSummary").is_some() =>
        {
            normalize_message(&event, "/invokingEvent", Raw::payload(&event), &origin)?
        }
        _ => {
            return Err(NormalizeError::unrecognized(
                origin.envelope,
                format!("its invokingEvent messageType `{message_type}` is not normalized"),
            ))
        }
    };
    // The kept event is the invocation with its JSON strings decoded in place, so it reads
    // as one document; built once and moved into the drafts.
    let mut raw = with_replaced(value, "/invokingEvent", event);
    if let Some(params) = value.get("ruleParameters").and_then(embedded_json) {
        if let Some(obj) = raw.as_object_mut() {
            obj.insert("ruleParameters".into(), params);
        }
    }
    resolve_inner_payload(&mut drafts, raw);
    for draft in &mut drafts {
        let meta = &mut draft.resource.metadata;
        put(meta, "config_rule_name", rule_name);
        put(meta, "config_rule_arn", rule_arn.unwrap_or_default());
        if let Some(left) = value.get("eventLeftScope").and_then(Value::as_bool) {
            put(meta, "event_left_scope", left);
        }
    }
    Ok(drafts)
}

/// A periodic rule run: the trigger for a compliance scan of the account.
fn periodic_trigger(
    invocation: &Value,
    event: &Value,
    raw: Raw<'_>,
    origin: &Origin,
) -> EventDraft {
    let mut draft = raw.draft(EventSource::AwsConfig, EventType::ScheduledScan);
    let account = pick_account([origin.account.as_deref()]);
    let region = pick_region([origin.region.as_deref()]);
    let rule_id = text(invocation, "/configRuleArn")
        .or_else(|| text(invocation, "/configRuleName"))
        .unwrap_or_default();
    draft.resource = resource("config_rule", rule_id, region.as_deref(), &account);
    draft.resource.name = text(invocation, "/configRuleName")
        .unwrap_or_default()
        .to_string();
    let meta = &mut draft.resource.metadata;
    put(
        meta,
        "message_type",
        text(event, "/messageType").unwrap_or_default(),
    );
    put(
        meta,
        "config_snapshot_id",
        text(event, "/configSnapshotId").unwrap_or_default(),
    );
    let location = match (text(event, "/s3Bucket"), text(event, "/s3ObjectKey")) {
        (Some(bucket), Some(key)) => format!("s3://{bucket}/{key}"),
        _ => String::new(),
    };
    put(meta, "s3_location", location);
    draft.time = origin.time.clone();
    draft.id_parts = origin.delivery_id.iter().cloned().collect();
    draft.id_parts.push(origin.time.clone().unwrap_or_default());
    draft.account_id = account;
    draft.region = region;
    draft
}
