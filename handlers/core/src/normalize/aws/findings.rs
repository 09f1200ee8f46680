//! Security findings: GuardDuty findings (EventBridge) and Security Hub findings in ASFF,
//! either "Findings - Imported" / "Findings - Custom Action" events (one event per finding)
//! or one bare finding.
//!
//! GuardDuty → `threat_detected`, severity by its 0–10 score: < 4 INFO, 4–6.9 MEDIUM,
//! 7–8.9 HIGH, ≥ 9 CRITICAL.
//!
//! Security Hub, severity from `Severity.Label` (INFORMATIONAL/LOW → INFO), type in order:
//! 1. archived, resolved or suppressed, or a `PASSED` control → `alarm_resolved`;
//! 2. from GuardDuty, or typed as a tactic/technique (`TTPs/...`) → `threat_detected`;
//! 3. a `FAILED` control we know ([`control_event_type`]) → `bucket_public`,
//!    `firewall_open` or `volume_unencrypted`;
//! 4. anything else (failed or not-evaluable controls, other products) → `compliance_violation`.

use crate::normalize::JsonAt;
use crate::resource_types::aws as aws_types;
use serde_json::{json, Value};

use super::{
    arn_field, field, items, need, number, pick_account, pick_region, put, resource, resource_kind,
    short_name, text, world_open_permissions, Origin, Raw,
};
use crate::event::{EventSource, EventType, Resource, Severity};
use crate::normalize::{json_kind, tags_from, with_replaced, EventDraft, NormalizeError};

/// GuardDuty's 0–10 score to our severity.
pub(super) fn guardduty_severity(score: f64) -> Severity {
    if score >= 9.0 {
        Severity::Critical
    } else if score >= 7.0 {
        Severity::High
    } else if score >= 4.0 {
        Severity::Medium
    } else {
        Severity::Info
    }
}

/// ASFF severity labels to ours.
pub(super) fn asff_severity(label: &str) -> Option<Severity> {
    match label.trim().to_ascii_uppercase().as_str() {
        "INFORMATIONAL" | "LOW" => Some(Severity::Info),
        "MEDIUM" => Some(Severity::Medium),
        "HIGH" => Some(Severity::High),
        "CRITICAL" => Some(Severity::Critical),
        _ => None,
    }
}

/// ASFF's 0–100 normalized score, for findings that carry no label (older findings).
fn asff_normalized_severity(score: f64) -> Severity {
    match score {
        s if s >= 90.0 => Severity::Critical,
        s if s >= 70.0 => Severity::High,
        s if s >= 40.0 => Severity::Medium,
        _ => Severity::Info,
    }
}

/// EventBridge "GuardDuty Finding".
pub(super) fn normalize_guardduty(
    detail: &Value,
    raw: Raw<'_>,
    origin: &Origin,
) -> Result<Vec<EventDraft>, NormalizeError> {
    let envelope = &origin.envelope;
    let finding_id = need(detail, "/id", "/detail", envelope)?;
    let finding_type = need(detail, "/type", "/detail", envelope)?;
    let account = pick_account([text(detail, "/accountId"), origin.account.as_deref()]);
    let region = pick_region([text(detail, "/region"), origin.region.as_deref()]);
    let mut draft = raw.draft(EventSource::AwsGuardDuty, EventType::ThreatDetected);
    let score = number(detail, "/severity");
    draft.source_severity = score.map(guardduty_severity);
    let finding_arn = text(detail, "/arn").unwrap_or(finding_id);
    draft.resource = guardduty_resource(detail, finding_arn, region.as_deref(), &account);
    let meta = &mut draft.resource.metadata;
    put(meta, "finding_id", finding_id);
    put(meta, "finding_arn", finding_arn);
    put(meta, "finding_type", finding_type);
    put(meta, "title", text(detail, "/title").unwrap_or_default());
    put(
        meta,
        "description",
        text(detail, "/description").unwrap_or_default(),
    );
    if let Some(score) = score {
        put(meta, "severity_score", score);
    }
    let action = detail.at("/service/action").unwrap_or(&Value::Null);
    put(
        meta,
        "action_type",
        text(action, "/actionType").unwrap_or_default(),
    );
    let remote_ip = action.as_object().and_then(|a| {
        a.values()
            .find_map(|v| text(v, "/remoteIpDetails/ipAddressV4"))
    });
    put(meta, "remote_ip", remote_ip.unwrap_or_default());
    if let Some(domain) = text(action, "/dnsRequestAction/domain") {
        put(meta, "domain", domain);
    }
    if let Some(api) = text(action, "/awsApiCallAction/api") {
        put(meta, "api", api);
    }
    copy_bool(meta, "sample", detail, "/service/additionalInfo/sample");
    copy_bool(meta, "archived", detail, "/service/archived");
    put(
        meta,
        "detector_id",
        text(detail, "/service/detectorId").unwrap_or_default(),
    );
    draft.time = text(detail, "/updatedAt")
        .or_else(|| text(detail, "/createdAt"))
        .map(str::to_string)
        .or_else(|| origin.time.clone());
    draft.id_parts = origin.delivery_id.iter().cloned().collect();
    draft.id_parts.push(finding_id.to_string());
    draft.account_id = account;
    draft.region = region;
    Ok(vec![draft])
}

fn copy_bool(meta: &mut serde_json::Map<String, Value>, key: &str, from: &Value, pointer: &str) {
    if let Some(b) = from.at(pointer).and_then(Value::as_bool) {
        put(meta, key, b);
    }
}

/// The resource a GuardDuty finding is about, by its `resourceType`.
fn guardduty_resource(
    detail: &Value,
    finding_arn: &str,
    region: Option<&str>,
    account: &str,
) -> Resource {
    let r = detail.get("resource").unwrap_or(&Value::Null);
    let kind_id = match text(r, "/resourceType").unwrap_or_default() {
        "Instance" => text(r, "/instanceDetails/instanceId")
            .map(|id| (aws_types::EC2_INSTANCE, id, r.at("/instanceDetails/tags"))),
        "AccessKey" => {
            text(r, "/accessKeyDetails/accessKeyId").map(|id| ("iam_access_key", id, None))
        }
        "S3Bucket" => text(r, "/s3BucketDetails/0/name")
            .map(|id| (aws_types::S3_BUCKET, id, r.at("/s3BucketDetails/0/tags"))),
        "EKSCluster" => text(r, "/eksClusterDetails/arn")
            .or_else(|| text(r, "/eksClusterDetails/name"))
            .map(|id| ("eks_cluster", id, r.at("/eksClusterDetails/tags"))),
        "RDSDBInstance" => text(r, "/rdsDbInstanceDetails/dbInstanceIdentifier").map(|id| {
            (
                aws_types::RDS_INSTANCE,
                id,
                r.at("/rdsDbInstanceDetails/tags"),
            )
        }),
        "Lambda" => text(r, "/lambdaDetails/functionArn")
            .or_else(|| text(r, "/lambdaDetails/functionName"))
            .map(|id| (aws_types::LAMBDA_FUNCTION, id, r.at("/lambdaDetails/tags"))),
        _ => None,
    };
    match kind_id {
        Some((kind, id, tags)) => {
            let mut res = resource(kind, id, region, account);
            res.tags = tags_from(tags);
            if kind == "iam_access_key" {
                if let Some(user) = text(r, "/accessKeyDetails/userName") {
                    res.name = user.to_string();
                    put(&mut res.metadata, "access_key_id", id);
                }
            }
            res
        }
        None => resource("guardduty_finding", finding_arn, None, ""),
    }
}

/// EventBridge "Security Hub Findings - Imported / - Custom Action": one event per finding,
/// each keeping the envelope with `detail.findings` narrowed to its own finding.
pub(super) fn normalize_securityhub_event(
    raw: Raw<'_>,
    origin: &Origin,
) -> Result<Vec<EventDraft>, NormalizeError> {
    let event = raw.value();
    let findings = match event.at("/detail/findings") {
        Some(Value::Array(list)) => list,
        Some(other) => {
            return Err(NormalizeError::field(
                &origin.envelope,
                "detail.findings",
                format!("must be an array, found {}", json_kind(other)),
            ))
        }
        None => {
            return Err(NormalizeError::field(
                &origin.envelope,
                "detail.findings",
                "is missing",
            ))
        }
    };
    let action_name = text(event, "/detail/actionName");
    let mut drafts = Vec::new();
    for (index, finding) in findings.iter().enumerate() {
        // A lone finding keeps the envelope as it came; several each get the envelope
        // narrowed to their own finding.
        let draft = if findings.len() == 1 {
            raw.draft(EventSource::AwsSecurityHub, EventType::ComplianceViolation)
        } else {
            EventDraft::new(
                EventSource::AwsSecurityHub,
                EventType::ComplianceViolation,
                with_replaced(
                    event,
                    "/detail/findings",
                    Value::Array(vec![finding.clone()]),
                ),
            )
        };
        let base = format!("/detail/findings/{index}");
        let mut draft = asff_finding(finding, &base, draft, origin)?;
        draft.id_parts = origin.delivery_id.iter().cloned().collect();
        draft
            .id_parts
            .push(need(finding, "/Id", &base, &origin.envelope)?.to_string());
        if let Some(action) = action_name {
            put(&mut draft.resource.metadata, "custom_action", action);
        }
        drafts.push(draft);
    }
    Ok(drafts)
}

/// One ASFF finding with no envelope. Without a delivery id, the finding id and its update
/// time identify it (the same finding updated later is a new event).
pub(super) fn normalize_bare_finding(value: &Value) -> Result<Vec<EventDraft>, NormalizeError> {
    let origin = Origin::named("Security Hub finding (ASFF)");
    let draft =
        EventDraft::for_payload(EventSource::AwsSecurityHub, EventType::ComplianceViolation);
    let mut draft = asff_finding(value, "", draft, &origin)?;
    draft.id_parts = vec![
        need(value, "/Id", "", &origin.envelope)?.to_string(),
        text(value, "/UpdatedAt").unwrap_or_default().to_string(),
    ];
    Ok(vec![draft])
}

/// Fills `draft` (whose raw event the caller chose) from one finding, type included.
fn asff_finding(
    finding: &Value,
    base: &str,
    mut draft: EventDraft,
    origin: &Origin,
) -> Result<EventDraft, NormalizeError> {
    let envelope = &origin.envelope;
    let finding_id = need(finding, "/Id", base, envelope)?;
    let product_arn = text(finding, "/ProductArn").unwrap_or_default();
    let first_resource = finding.at("/Resources/0").unwrap_or(&Value::Null);
    let account = pick_account([text(finding, "/AwsAccountId"), origin.account.as_deref()]);
    let region = pick_region([
        text(finding, "/Region"),
        text(first_resource, "/Region"),
        arn_field(product_arn, 3),
        origin.region.as_deref(),
    ]);
    let label = text(finding, "/Severity/Label")
        .or_else(|| product_field(finding, "aws/securityhub/SeverityLabel"))
        .or_else(|| text(finding, "/FindingProviderFields/Severity/Label"));
    let severity = label
        .and_then(asff_severity)
        .or_else(|| number(finding, "/Severity/Normalized").map(asff_normalized_severity));
    let compliance = text(finding, "/Compliance/Status").unwrap_or_default();
    let control = control_id(finding);
    let config_rule = related_config_rule(finding);
    let event_type = asff_event_type(
        finding,
        product_arn,
        compliance,
        control.as_deref(),
        config_rule.as_deref(),
    );
    draft.event_type = event_type;
    draft.source_severity = severity;
    draft.resource = asff_resource(first_resource, finding_id, region.as_deref(), &account);
    let meta = &mut draft.resource.metadata;
    put(meta, "finding_id", finding_id);
    put(meta, "title", text(finding, "/Title").unwrap_or_default());
    put(
        meta,
        "description",
        text(finding, "/Description").unwrap_or_default(),
    );
    put(
        meta,
        "product_name",
        text(finding, "/ProductName")
            .or_else(|| product_field(finding, "aws/securityhub/ProductName"))
            .unwrap_or_default(),
    );
    put(meta, "product_arn", product_arn);
    put(
        meta,
        "generator_id",
        text(finding, "/GeneratorId").unwrap_or_default(),
    );
    put(meta, "control_id", control.unwrap_or_default());
    if let Some(types) = finding.get("Types") {
        put(meta, "finding_types", types.clone());
    }
    put(meta, "severity_label", label.unwrap_or_default());
    put(meta, "compliance_status", compliance);
    put(
        meta,
        "workflow_status",
        text(finding, "/Workflow/Status")
            .or_else(|| text(finding, "/WorkflowState"))
            .unwrap_or_default(),
    );
    put(
        meta,
        "record_state",
        text(finding, "/RecordState").unwrap_or_default(),
    );
    put(
        meta,
        "remediation_url",
        text(finding, "/Remediation/Recommendation/Url").unwrap_or_default(),
    );
    put(meta, "config_rule", config_rule.unwrap_or_default());
    if event_type == EventType::FirewallOpen {
        let open =
            world_open_permissions(first_resource.at("/Details/AwsEc2SecurityGroup/IpPermissions"));
        put(
            meta,
            "group_id",
            text(first_resource, "/Details/AwsEc2SecurityGroup/GroupId").unwrap_or_default(),
        );
        put(meta, "open_permissions", open);
    }
    draft.time = text(finding, "/UpdatedAt")
        .or_else(|| text(finding, "/LastObservedAt"))
        .or_else(|| text(finding, "/CreatedAt"))
        .map(str::to_string)
        .or_else(|| origin.time.clone());
    draft.account_id = account;
    draft.region = region;
    Ok(draft)
}

fn asff_event_type(
    finding: &Value,
    product_arn: &str,
    compliance: &str,
    control: Option<&str>,
    config_rule: Option<&str>,
) -> EventType {
    let workflow = text(finding, "/Workflow/Status")
        .or_else(|| text(finding, "/WorkflowState"))
        .unwrap_or_default();
    if text(finding, "/RecordState") == Some("ARCHIVED")
        || matches!(workflow, "RESOLVED" | "SUPPRESSED")
        || compliance == "PASSED"
    {
        return EventType::AlarmResolved;
    }
    let from_guardduty = product_arn.ends_with("/guardduty")
        || text(finding, "/ProductName") == Some("GuardDuty")
        || product_field(finding, "aws/securityhub/ProductName") == Some("GuardDuty");
    let is_ttp = items(finding.get("Types"))
        .into_iter()
        .filter_map(Value::as_str)
        .any(|t| t.starts_with("TTPs/"));
    if from_guardduty || is_ttp {
        return EventType::ThreatDetected;
    }
    if compliance == "FAILED" {
        let standard = text(finding, "/GeneratorId").unwrap_or_default();
        let by_control = control.and_then(|c| control_event_type(standard, c));
        let by_rule = config_rule.and_then(config_rule_event_type);
        if let Some(event_type) = by_control.or(by_rule) {
            return event_type;
        }
    }
    EventType::ComplianceViolation
}

/// A non-blank `ProductFields` entry. Its keys contain `/`, which a JSON pointer must escape
/// as `~1`, and escaped pointers take `Value::pointer`'s allocating path; a direct lookup
/// avoids that.
fn product_field<'a>(finding: &'a Value, key: &str) -> Option<&'a str> {
    finding
        .get("ProductFields")?
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

/// The control a finding reports on: the consolidated id (`S3.8`), else the standard's own.
fn control_id(finding: &Value) -> Option<String> {
    [
        "/Compliance/SecurityControlId",
        "/ProductFields/ControlId",
        "/ProductFields/RuleId",
    ]
    .iter()
    .find_map(|p| text(finding, p))
    .map(str::to_string)
}

/// Well-known controls whose failure we can name precisely. Security Hub control ids
/// (AFSBP and consolidated) are unique; CIS rule numbers differ between benchmark versions,
/// so they are matched together with the version in the generator id.
fn control_event_type(generator: &str, control: &str) -> Option<EventType> {
    if generator.contains("cis-aws-foundations-benchmark") {
        return match (generator.contains("/v/1.2.0/"), control) {
            (true, "4.1" | "4.2") => Some(EventType::FirewallOpen),
            (false, "2.1.5" | "2.1.4") => Some(EventType::BucketPublic),
            (false, "2.2.1") => Some(EventType::VolumeUnencrypted),
            (false, "5.2" | "5.3") if generator.contains("/v/3.0.0/") => {
                Some(EventType::FirewallOpen)
            }
            _ => None,
        };
    }
    match control {
        "S3.1" | "S3.2" | "S3.3" | "S3.8" | "S3.19" => Some(EventType::BucketPublic),
        "EC2.13" | "EC2.14" | "EC2.18" | "EC2.19" | "EC2.53" | "EC2.54" => {
            Some(EventType::FirewallOpen)
        }
        "EC2.3" | "EC2.7" => Some(EventType::VolumeUnencrypted),
        _ => None,
    }
}

/// The AWS Config managed rule behind a control (`securityhub-restricted-ssh-9412a869` →
/// `restricted-ssh`), named by Security Hub in `ProductFields`.
fn related_config_rule(finding: &Value) -> Option<String> {
    let name = product_field(finding, "RelatedAWSResources:0/name")?;
    let name = name.strip_prefix("securityhub-").unwrap_or(name);
    let trimmed = match name.rsplit_once('-') {
        Some((head, tail)) if tail.len() == 8 && tail.bytes().all(|b| b.is_ascii_hexdigit()) => {
            head
        }
        _ => name,
    };
    Some(trimmed.to_string())
}

fn config_rule_event_type(rule: &str) -> Option<EventType> {
    match rule {
        "s3-bucket-public-read-prohibited"
        | "s3-bucket-public-write-prohibited"
        | "s3-bucket-level-public-access-prohibited"
        | "s3-account-level-public-access-blocks"
        | "s3-account-level-public-access-blocks-periodic" => Some(EventType::BucketPublic),
        "restricted-ssh"
        | "restricted-common-ports"
        | "vpc-sg-open-only-to-authorized-ports"
        | "vpc-sg-port-restriction-check" => Some(EventType::FirewallOpen),
        "encrypted-volumes" | "ec2-ebs-encryption-by-default" => Some(EventType::VolumeUnencrypted),
        _ => None,
    }
}

/// The finding's first resource; a finding about no resource is about itself.
fn asff_resource(first: &Value, finding_id: &str, region: Option<&str>, account: &str) -> Resource {
    let Some(id) = text(first, "/Id") else {
        return resource("securityhub_finding", finding_id, None, "");
    };
    let kind = text(first, "/Type")
        .map(resource_kind)
        .unwrap_or_else(|| "aws_resource".into());
    let mut res = resource(&kind, id, region, account);
    res.name = match kind.as_str() {
        // `AWS::::Account:111111111111` names the account by its number.
        aws_types::ACCOUNT => id.rsplit(':').next().unwrap_or(id).to_string(),
        "iam_access_key" => text(first, "/Details/AwsIamAccessKey/UserName")
            .or_else(|| text(first, "/Details/AwsIamAccessKey/PrincipalName"))
            .unwrap_or(id)
            .to_string(),
        _ => field(first, &["Details"])
            .and_then(|d| {
                d.as_object()?
                    .values()
                    .find_map(|v| text(v, "/GroupName").or_else(|| text(v, "/Name")))
            })
            .unwrap_or_else(|| short_name(id))
            .to_string(),
    };
    res.tags = tags_from(first.get("Tags"));
    let partition = text(first, "/Partition").unwrap_or_default();
    if !partition.is_empty() && partition != "aws" {
        put(&mut res.metadata, "partition", json!(partition));
    }
    res
}
