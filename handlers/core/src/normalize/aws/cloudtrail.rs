//! CloudTrail records: EventBridge "AWS API Call via CloudTrail", a bare record, or a log
//! file's `Records`. One API call gives one event per resource it touched (RunInstances
//! launching two instances gives two).
//!
//! Classification:
//! - S3 `PutBucketAcl` granting AllUsers/AuthenticatedUsers (grant or canned ACL),
//!   `PutBucketPolicy` with an unconditioned `Allow` to principal `*`, and
//!   `DeleteBucketPublicAccessBlock` / `PutBucketPublicAccessBlock` turning any of the four
//!   protections off (also the account-level variants) → `bucket_public`; the same calls
//!   that do not open anything → `resource_changed`.
//! - EC2 `AuthorizeSecurityGroupIngress` from 0.0.0.0/0 or ::/0 → `firewall_open`.
//! - `CreateVolume` unencrypted, `DisableEbsEncryptionByDefault` → `volume_unencrypted`.
//! - `RunInstances`, `Create*` → `resource_created`; `Delete*` / `Terminate*` →
//!   `resource_deleted`, except deletes of a part of a resource that survives (bucket
//!   sub-configurations, tags, inline policies) → `resource_changed`; other writes →
//!   `resource_changed`.
//! - Calls that failed (`errorCode`) or only read change nothing: no event.
//!
//! The event id comes from CloudTrail's `eventID`, so the same call seen through
//! EventBridge and in a log file is recognised as one.

use crate::normalize::JsonAt;
use crate::resource_types::aws as aws_types;
use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::{
    embedded_json, field, is_cloudtrail_record, items, need, pick_account, pick_region, put,
    resource, resource_kind, text, world_open_permissions, Origin, Raw,
};
use crate::event::{EventSource, EventType, Resource};
use crate::normalize::{tags_from, EventDraft, NormalizeError};

/// A CloudTrail log file (`{"Records": [...]}`): one record after the other.
pub(super) fn normalize_log(value: &Value) -> Result<Vec<EventDraft>, NormalizeError> {
    let origin = Origin::named("CloudTrail log file");
    let mut drafts = Vec::new();
    for (index, record) in items(value.get("Records")).into_iter().enumerate() {
        let base = format!("/Records/{index}");
        if !is_cloudtrail_record(record) {
            need(record, "/eventName", &base, &origin.envelope)?;
            need(record, "/eventSource", &base, &origin.envelope)?;
        }
        drafts.extend(normalize_record(
            record,
            &base,
            Raw::part(record, &base),
            &origin,
        )?);
    }
    Ok(drafts)
}

/// One API call. `record` is the CloudTrail record, `base` its path (for errors), `raw` what
/// the events keep (the EventBridge event, or the record itself).
pub(super) fn normalize_record(
    record: &Value,
    base: &str,
    raw: Raw<'_>,
    origin: &Origin,
) -> Result<Vec<EventDraft>, NormalizeError> {
    let envelope = &origin.envelope;
    let name = need(record, "/eventName", base, envelope)?;
    let event_source = need(record, "/eventSource", base, envelope)?;
    if text(record, "/errorCode").is_some() || is_read_only(record, name) {
        return Ok(Vec::new());
    }
    // Read `userIdentity` once; several fields below come from it.
    let identity = record.get("userIdentity").unwrap_or(&Value::Null);
    let account = pick_account([
        text(record, "/recipientAccountId"),
        text(identity, "/accountId"),
        origin.account.as_deref(),
    ]);
    let region = pick_region([text(record, "/awsRegion"), origin.region.as_deref()]);
    let call = Call {
        name,
        service: event_source.trim_end_matches(".amazonaws.com"),
        record,
        params: record.get("requestParameters").unwrap_or(&Value::Null),
        response: record.get("responseElements").unwrap_or(&Value::Null),
        account: &account,
        region: region.as_deref(),
    };
    let targets = classify(&call);
    let many = targets.len() > 1;
    let call_id = text(record, "/eventID")
        .map(str::to_string)
        .or_else(|| origin.delivery_id.clone());
    // The same for every target of the call: read once, outside the loop.
    let principal_arn = text(identity, "/arn").unwrap_or_default();
    let principal_type = text(identity, "/type").unwrap_or_default();
    let invoked_by = text(identity, "/invokedBy").unwrap_or_default();
    let source_ip = text(record, "/sourceIPAddress").unwrap_or_default();
    let user_agent = text(record, "/userAgent").unwrap_or_default();
    let time = text(record, "/eventTime")
        .map(str::to_string)
        .or_else(|| origin.time.clone());
    let mut drafts = Vec::new();
    for (event_type, mut res) in targets {
        let meta = &mut res.metadata;
        put(meta, "event_name", name);
        put(meta, "event_source", event_source);
        put(meta, "principal_arn", principal_arn);
        put(meta, "principal_type", principal_type);
        put(meta, "invoked_by", invoked_by);
        put(meta, "source_ip", source_ip);
        put(meta, "user_agent", user_agent);
        let mut draft = raw.draft(EventSource::AwsCloudTrail, event_type);
        draft.id_parts = call_id.iter().cloned().collect();
        if many {
            draft.id_parts.push(res.id.clone());
        }
        draft.resource = res;
        draft.account_id = account.clone();
        draft.region = region.clone();
        draft.time = time.clone();
        drafts.push(draft);
    }
    Ok(drafts)
}

fn is_read_only(record: &Value, name: &str) -> bool {
    const READ_PREFIXES: &[&str] = &[
        "Get", "List", "Describe", "Head", "Lookup", "Search", "BatchGet",
    ];
    record.get("readOnly").and_then(Value::as_bool) == Some(true)
        || READ_PREFIXES.iter().any(|p| name.starts_with(p))
}

struct Call<'a> {
    name: &'a str,
    /// `s3`, `ec2`, `iam`, ... (the event source without `.amazonaws.com`).
    service: &'a str,
    record: &'a Value,
    params: &'a Value,
    response: &'a Value,
    account: &'a str,
    region: Option<&'a str>,
}

impl Call<'_> {
    fn resource(&self, kind: &str, id: &str) -> Resource {
        resource(kind, id, self.region, self.account)
    }

    fn bucket(&self) -> Resource {
        self.resource(
            aws_types::S3_BUCKET,
            text(self.params, "/bucketName").unwrap_or_default(),
        )
    }

    fn account_resource(&self) -> Resource {
        self.resource(aws_types::ACCOUNT, self.account)
    }
}

fn classify(call: &Call) -> Vec<(EventType, Resource)> {
    match (call.service, call.name) {
        ("s3", "PutBucketAcl") => vec![bucket_acl(call)],
        ("s3", "PutBucketPolicy") => vec![bucket_policy(call)],
        ("s3", "DeleteBucketPublicAccessBlock") => {
            let mut res = call.bucket();
            put(&mut res.metadata, "public_access_block", "deleted");
            vec![(EventType::BucketPublic, res)]
        }
        ("s3", "PutBucketPublicAccessBlock") => vec![public_access_block(call, call.bucket())],
        ("s3" | "s3control", "DeleteAccountPublicAccessBlock") => {
            let mut res = call.account_resource();
            put(&mut res.metadata, "public_access_block", "deleted");
            vec![(EventType::BucketPublic, res)]
        }
        ("s3" | "s3control", "PutAccountPublicAccessBlock") => {
            vec![public_access_block(call, call.account_resource())]
        }
        ("ec2", "AuthorizeSecurityGroupIngress") => vec![security_group_ingress(call)],
        ("ec2", "CreateVolume") => vec![create_volume(call)],
        ("ec2", "DisableEbsEncryptionByDefault") => {
            let mut res = call.account_resource();
            put(&mut res.metadata, "ebs_encryption_by_default", false);
            vec![(EventType::VolumeUnencrypted, res)]
        }
        _ => {
            let event_type = verb_type(call.name);
            targets(call)
                .into_iter()
                .map(|res| (event_type, res))
                .collect()
        }
    }
}

/// The event type an API verb implies for the resource it names.
fn verb_type(name: &str) -> EventType {
    // Deleting a part of a resource leaves the resource in place.
    let partial_delete = (name.starts_with("DeleteBucket") && name != "DeleteBucket")
        || ["Tags", "Tagging", "Policy"]
            .iter()
            .any(|suffix| name.ends_with(suffix));
    if name == "RunInstances" || name.starts_with("Create") {
        EventType::ResourceCreated
    } else if (name.starts_with("Delete") || name.starts_with("Terminate")) && !partial_delete {
        EventType::ResourceDeleted
    } else {
        EventType::ResourceChanged
    }
}

/// Request keys that name one resource, and our kind for it.
const PARAM_KINDS: &[(&str, &str)] = &[
    ("bucketName", aws_types::S3_BUCKET),
    ("groupId", aws_types::SECURITY_GROUP),
    ("volumeId", aws_types::EBS_VOLUME),
    ("instanceId", aws_types::EC2_INSTANCE),
    ("dBInstanceIdentifier", aws_types::RDS_INSTANCE),
    ("functionName", aws_types::LAMBDA_FUNCTION),
    ("tableName", "dynamodb_table"),
    ("roleName", "iam_role"),
    ("userName", aws_types::IAM_USER),
];

/// The resources a call acted on: EC2 instance sets (one each), a known id in the request or
/// response, CloudTrail's own `resources` list, else whatever ARN/name the request carries.
fn targets(call: &Call) -> Vec<Resource> {
    let instances: Vec<&str> = [call.response, call.params]
        .iter()
        .flat_map(|v| items(v.get("instancesSet")))
        .filter_map(|i| text(i, "/instanceId"))
        .fold(Vec::new(), |mut acc, id| {
            if !acc.contains(&id) {
                acc.push(id);
            }
            acc
        });
    if !instances.is_empty() {
        return instances
            .into_iter()
            .map(|id| {
                let mut res = call.resource(aws_types::EC2_INSTANCE, id);
                res.tags = instance_tags(call, id);
                res
            })
            .collect();
    }
    for source in [call.params, call.response] {
        if let Some((kind, id)) = PARAM_KINDS
            .iter()
            .find_map(|(key, kind)| Some((*kind, text(source, &format!("/{key}"))?)))
        {
            let mut res = call.resource(kind, id);
            res.tags = tag_list(source.get("tagSpecificationSet"), None);
            return vec![res];
        }
    }
    if let Some(listed) = items(call.record.get("resources"))
        .into_iter()
        .find(|r| text(r, "/ARN").is_some())
    {
        let kind = text(listed, "/type")
            .map(resource_kind)
            .unwrap_or_else(|| format!("{}_resource", call.service));
        return vec![call.resource(&kind, text(listed, "/ARN").unwrap_or_default())];
    }
    let id = call
        .params
        .as_object()
        .and_then(|params| {
            let suffixes = ["Arn", "ARN", "Name", "Id"];
            params.iter().find_map(|(key, value)| {
                let is_id = suffixes.iter().any(|s| key.ends_with(s));
                value.as_str().filter(|v| is_id && !v.is_empty())
            })
        })
        .unwrap_or_default();
    vec![call.resource(&format!("{}_resource", call.service), id)]
}

/// Tags given at launch (`tagSpecificationSet`) or present on the launched instance.
fn instance_tags(call: &Call, instance_id: &str) -> BTreeMap<String, String> {
    let mut tags = tag_list(call.params.get("tagSpecificationSet"), Some("instance"));
    if let Some(instance) = items(call.response.get("instancesSet"))
        .into_iter()
        .find(|i| text(i, "/instanceId") == Some(instance_id))
    {
        tags.extend(tag_list(instance.get("tagSet"), None));
    }
    tags
}

/// Tags from CloudTrail's `{"items": [{"resourceType": ..., "tags": [{key, value}]}]}` or a
/// plain `{"items": [{key, value}]}` tag set.
fn tag_list(value: Option<&Value>, resource_type: Option<&str>) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::new();
    for entry in items(value) {
        match entry.get("tags") {
            Some(list) => {
                if resource_type.is_none_or(|t| text(entry, "/resourceType") == Some(t)) {
                    let pairs: Vec<Value> = items(Some(list)).into_iter().cloned().collect();
                    tags.extend(tags_from(Some(&Value::Array(pairs))));
                }
            }
            None => tags.extend(tags_from(Some(&Value::Array(vec![entry.clone()])))),
        }
    }
    tags
}

const PUBLIC_GROUPS: &[(&str, &str)] = &[
    ("groups/global/AllUsers", "AllUsers"),
    ("groups/global/AuthenticatedUsers", "AuthenticatedUsers"),
];

fn public_group(uri: &str) -> Option<&'static str> {
    PUBLIC_GROUPS
        .iter()
        .find(|(needle, _)| uri.contains(needle))
        .map(|(_, name)| *name)
}

/// A bucket ACL is public when it grants to AllUsers/AuthenticatedUsers (an ACL body or
/// `x-amz-grant-*` headers) or uses a public canned ACL.
fn bucket_acl(call: &Call) -> (EventType, Resource) {
    let mut res = call.bucket();
    let mut public_grants = Vec::new();
    let grants = call
        .params
        .at("/AccessControlPolicy/AccessControlList/Grant");
    for grant in items(grants) {
        let uri = field(grant, &["Grantee"])
            .and_then(|g| field(g, &["URI", "uri"]))
            .and_then(Value::as_str)
            .unwrap_or_default();
        if let Some(group) = public_group(uri) {
            let permission = text(grant, "/Permission").unwrap_or("unknown");
            public_grants.push(json!({"grantee": group, "permission": permission}));
        }
    }
    if let Some(headers) = call.params.as_object() {
        for (key, value) in headers
            .iter()
            .filter(|(k, _)| k.starts_with("x-amz-grant-"))
        {
            let permission = key.trim_start_matches("x-amz-grant-");
            for header in header_values(value) {
                if let Some(group) = public_group(header) {
                    public_grants.push(json!({"grantee": group, "permission": permission}));
                }
            }
        }
    }
    let canned: Vec<&str> = header_values(call.params.get("x-amz-acl").unwrap_or(&Value::Null));
    let public_canned = canned.iter().find(|acl| {
        matches!(
            **acl,
            "public-read" | "public-read-write" | "authenticated-read"
        )
    });
    put(
        &mut res.metadata,
        "canned_acl",
        canned.first().copied().unwrap_or_default(),
    );
    if public_grants.is_empty() && public_canned.is_none() {
        return (EventType::ResourceChanged, res);
    }
    put(&mut res.metadata, "public_grants", public_grants);
    (EventType::BucketPublic, res)
}

/// Request headers arrive as a string or a list of strings.
fn header_values(value: &Value) -> Vec<&str> {
    match value {
        Value::String(s) => vec![s.as_str()],
        Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// A policy statement is public when it allows principal `*` with no condition: a
/// condition (source VPC, org id, ...) usually narrows it to known callers.
fn bucket_policy(call: &Call) -> (EventType, Resource) {
    let mut res = call.bucket();
    let policy = call
        .params
        .get("bucketPolicy")
        .or_else(|| call.params.get("policy"))
        .and_then(embedded_json);
    let statements = policy
        .as_ref()
        .map(|p| items(p.get("Statement")))
        .unwrap_or_default();
    let public: Vec<Value> = statements
        .into_iter()
        .filter(|s| text(s, "/Effect") == Some("Allow"))
        .filter(|s| s.get("Principal").is_some_and(is_wildcard_principal))
        .filter(|s| match s.get("Condition") {
            None | Some(Value::Null) => true,
            Some(Value::Object(c)) => c.is_empty(),
            Some(_) => false,
        })
        .map(|s| {
            json!({
                "sid": s.get("Sid").cloned().unwrap_or(Value::Null),
                "action": s.get("Action").cloned().unwrap_or(Value::Null),
            })
        })
        .collect();
    if public.is_empty() {
        return (EventType::ResourceChanged, res);
    }
    put(&mut res.metadata, "public_statements", public);
    (EventType::BucketPublic, res)
}

fn is_wildcard_principal(principal: &Value) -> bool {
    match principal {
        Value::String(s) => s == "*",
        Value::Array(list) => list.iter().any(is_wildcard_principal),
        Value::Object(map) => map.values().any(is_wildcard_principal),
        _ => false,
    }
}

/// Turning off any of the four public-access protections weakens it.
fn public_access_block(call: &Call, mut res: Resource) -> (EventType, Resource) {
    const FLAGS: &[&str] = &[
        "BlockPublicAcls",
        "IgnorePublicAcls",
        "BlockPublicPolicy",
        "RestrictPublicBuckets",
    ];
    let config = call
        .params
        .get("PublicAccessBlockConfiguration")
        .unwrap_or(&Value::Null);
    let disabled: Vec<Value> = FLAGS
        .iter()
        .filter(|flag| match config.get(**flag) {
            Some(Value::Bool(on)) => !on,
            Some(Value::String(s)) => s.eq_ignore_ascii_case("false"),
            _ => false,
        })
        .map(|flag| Value::String((*flag).to_string()))
        .collect();
    if disabled.is_empty() {
        return (EventType::ResourceChanged, res);
    }
    put(&mut res.metadata, "disabled_protections", disabled);
    (EventType::BucketPublic, res)
}

/// Ingress rules from the whole internet open the group; the older call form puts one rule's
/// fields directly in the request.
fn security_group_ingress(call: &Call) -> (EventType, Resource) {
    let group = text(call.params, "/groupId")
        .or_else(|| text(call.params, "/groupName"))
        .unwrap_or_default();
    let mut res = call.resource(aws_types::SECURITY_GROUP, group);
    let mut open = world_open_permissions(call.params.get("ipPermissions"));
    if open.is_empty() {
        let mut flat = Map::new();
        for key in ["ipProtocol", "fromPort", "toPort"] {
            if let Some(v) = call.params.get(key) {
                flat.insert(key.to_string(), v.clone());
            }
        }
        if let Some(cidr) = call.params.get("cidrIp") {
            flat.insert("ipRanges".into(), Value::Array(vec![cidr.clone()]));
        }
        open = world_open_permissions(Some(&Value::Array(vec![Value::Object(flat)])));
    }
    put(&mut res.metadata, "group_id", group);
    if open.is_empty() {
        return (EventType::ResourceChanged, res);
    }
    let ports: Vec<Value> = open
        .iter()
        .map(|p| match (p.get("from_port"), p.get("to_port")) {
            (Some(from), Some(to)) if from == to => from.clone(),
            (Some(from), Some(to)) => Value::String(format!("{from}-{to}")),
            _ => Value::String("all".into()),
        })
        .collect();
    let protocols: Vec<Value> = open
        .iter()
        .filter_map(|p| p.get("protocol").cloned())
        .collect();
    let mut cidrs: Vec<Value> = open
        .iter()
        .flat_map(|p| items(p.get("cidrs")).into_iter().cloned())
        .collect();
    cidrs.dedup();
    put(&mut res.metadata, "ports", ports);
    put(&mut res.metadata, "protocols", protocols);
    put(&mut res.metadata, "cidrs", cidrs);
    put(&mut res.metadata, "open_permissions", open);
    (EventType::FirewallOpen, res)
}

fn create_volume(call: &Call) -> (EventType, Resource) {
    let id = text(call.response, "/volumeId").unwrap_or_default();
    let mut res = call.resource(aws_types::EBS_VOLUME, id);
    res.tags = tag_list(call.params.get("tagSpecificationSet"), Some("volume"));
    let encrypted = [call.response, call.params]
        .iter()
        .find_map(|v| v.get("encrypted").and_then(Value::as_bool));
    if let Some(encrypted) = encrypted {
        put(&mut res.metadata, "encrypted", encrypted);
    }
    match encrypted {
        Some(false) => (EventType::VolumeUnencrypted, res),
        _ => (EventType::ResourceCreated, res),
    }
}
