//! AWS payloads: EventBridge events, SNS deliveries (Lambda `Records` and the bare HTTP
//! notification), the CloudWatch alarm Lambda-action payload, raw CloudTrail records (alone
//! or as a log file's `Records`), bare Security Hub (ASFF) findings, AWS Config rule
//! invocations, and the classic alarm / Config messages found inside SNS.
//!
//! [`normalize`] only decides the shape; one submodule per source kind turns it into
//! [`EventDraft`]s, and this module finishes them, so that the ids of several items in one
//! payload are made distinct in one place.

mod alarm;
mod cloudformation;
mod cloudtrail;
mod config;
mod ecs;
mod eventbridge;
mod findings;
mod sns;

use crate::normalize::JsonAt;
use crate::resource_types::aws as aws_types;
use std::collections::{BTreeMap, BTreeSet};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::{dotted, json_kind, str_at, Cx, EventDraft, Handshake, NormalizeError, Normalized};
pub(super) use super::{snake_case, text};
use crate::event::{EventSource, EventType, Resource, UnifiedEvent};

/// The AWS shapes we know, found by their keys alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// `detail-type` + `source` + `detail`.
    EventBridge,
    /// Lambda's SNS event: `Records[].Sns` / `EventSource: aws:sns`.
    SnsRecords,
    /// An SNS HTTP(S) delivery: `Type` + `MessageId` + `TopicArn`.
    SnsNotification,
    /// A CloudTrail log file: `Records[]` of CloudTrail records.
    CloudTrailLog,
    /// `Records[]` from another AWS service (S3, SQS, DynamoDB streams, ...).
    OtherRecords,
    /// A CloudWatch alarm's Lambda action: `alarmData` + `source: aws.cloudwatch`.
    AlarmLambdaAction,
    /// One ASFF finding: `SchemaVersion` + `ProductArn` + `Id`.
    AsffFinding,
    /// An AWS Config custom-rule invocation: `invokingEvent` + `configRuleName`.
    ConfigRuleInvocation,
    /// One CloudTrail record without any envelope.
    CloudTrailRecord,
    /// The classic alarm JSON an alarm publishes to SNS, received unwrapped (SQS, email).
    ClassicAlarm,
    /// An AWS Config notification received unwrapped.
    ConfigNotification,
}

pub(crate) fn normalize(value: &Value, cx: &Cx) -> Option<Result<Normalized, NormalizeError>> {
    let shape = detect(value)?;
    Some(normalize_shape(shape, value).map(|outcome| match outcome {
        Outcome::Drafts(drafts) => Normalized::Events(finish_all(drafts, cx)),
        Outcome::Handshake(handshake) => Normalized::Handshake(handshake),
    }))
}

/// What a submodule produced: events to finish, or a delivery handshake.
pub(super) enum Outcome {
    Drafts(Vec<EventDraft>),
    Handshake(Handshake),
}

impl From<Vec<EventDraft>> for Outcome {
    fn from(drafts: Vec<EventDraft>) -> Self {
        Outcome::Drafts(drafts)
    }
}

fn detect(value: &Value) -> Option<Shape> {
    let obj = value.as_object()?;
    let has = |key: &str| obj.contains_key(key);
    let text = |key: &str| obj.get(key).and_then(Value::as_str);

    if text("detail-type").is_some() && text("source").is_some() && has("detail") {
        return Some(Shape::EventBridge);
    }
    if let Some(records) = obj.get("Records").and_then(Value::as_array) {
        let first = records.first()?;
        if records.iter().any(is_sns_record) {
            return Some(Shape::SnsRecords);
        }
        if is_cloudtrail_record(first) {
            return Some(Shape::CloudTrailLog);
        }
        let aws_source = ["eventSource", "EventSource"]
            .iter()
            .any(|k| str_at(first, &format!("/{k}")).is_some_and(|s| s.starts_with("aws:")));
        return aws_source.then_some(Shape::OtherRecords);
    }
    if matches!(
        text("Type"),
        Some("Notification" | "SubscriptionConfirmation" | "UnsubscribeConfirmation")
    ) && text("MessageId").is_some()
        && text("TopicArn").is_some()
    {
        return Some(Shape::SnsNotification);
    }
    if obj.get("alarmData").is_some_and(Value::is_object)
        && text("source") == Some("aws.cloudwatch")
    {
        return Some(Shape::AlarmLambdaAction);
    }
    if has("SchemaVersion") && text("ProductArn").is_some() && has("Id") {
        return Some(Shape::AsffFinding);
    }
    if has("invokingEvent") && text("configRuleName").is_some() {
        return Some(Shape::ConfigRuleInvocation);
    }
    if is_cloudtrail_record(value) {
        return Some(Shape::CloudTrailRecord);
    }
    if text("AlarmName").is_some() && text("NewStateValue").is_some() {
        return Some(Shape::ClassicAlarm);
    }
    if config::is_config_message(value) {
        return Some(Shape::ConfigNotification);
    }
    None
}

fn is_sns_record(record: &Value) -> bool {
    record.get("Sns").is_some_and(Value::is_object)
        || str_at(record, "/EventSource") == Some("aws:sns")
}

/// CloudTrail records name an `*.amazonaws.com` event source and an API call; the version or
/// time key tells them from other camelCase payloads that happen to have those two.
pub(super) fn is_cloudtrail_record(value: &Value) -> bool {
    str_at(value, "/eventSource").is_some_and(|s| s.ends_with(".amazonaws.com"))
        && str_at(value, "/eventName").is_some()
        && (value.get("eventVersion").is_some() || value.get("eventTime").is_some())
}

fn normalize_shape(shape: Shape, value: &Value) -> Result<Outcome, NormalizeError> {
    match shape {
        Shape::EventBridge => eventbridge::normalize(Raw::payload(value)).map(Outcome::from),
        Shape::SnsRecords => sns::normalize_records(value).map(Outcome::from),
        Shape::SnsNotification => sns::normalize_notification(value),
        Shape::CloudTrailLog => cloudtrail::normalize_log(value).map(Outcome::from),
        Shape::OtherRecords => {
            let source = str_at(value, "/Records/0/eventSource")
                .or_else(|| str_at(value, "/Records/0/EventSource"))
                .unwrap_or("unknown");
            Err(NormalizeError::unrecognized(
                format!("AWS Lambda event (Records from {source})"),
                "only SNS records and CloudTrail log records are normalized",
            ))
        }
        Shape::AlarmLambdaAction => alarm::normalize_lambda_action(value).map(Outcome::from),
        Shape::AsffFinding => findings::normalize_bare_finding(value).map(Outcome::from),
        Shape::ConfigRuleInvocation => config::normalize_rule_invocation(value).map(Outcome::from),
        Shape::CloudTrailRecord => {
            let origin = Origin::named("CloudTrail record");
            cloudtrail::normalize_record(value, "", Raw::payload(value), &origin).map(Outcome::from)
        }
        Shape::ClassicAlarm => {
            let origin = Origin::named("CloudWatch alarm message");
            alarm::normalize_classic(value, "", Raw::payload(value), &origin).map(Outcome::from)
        }
        Shape::ConfigNotification => {
            let origin = Origin::named("AWS Config notification");
            config::normalize_message(value, "", Raw::payload(value), &origin).map(Outcome::from)
        }
    }
}

/// Makes the ids of one payload's items distinct. Several items can carry the same source id
/// (the published SNS alarm sample repeats one `MessageId`); only then is the item's position
/// added, so a lone item keeps exactly the id its redelivery will get.
fn finish_all(mut drafts: Vec<EventDraft>, cx: &Cx) -> Vec<UnifiedEvent> {
    let mut seen = BTreeSet::new();
    for (index, draft) in drafts.iter_mut().enumerate() {
        if !seen.insert(draft.id_parts.clone()) {
            draft.id_parts.push(format!("item-{index}"));
            seen.insert(draft.id_parts.clone());
        }
    }
    drafts.into_iter().map(|d| cx.finish(d)).collect()
}

/// Facts of the delivery around an item, used when the item itself lacks them.
#[derive(Debug, Clone, Default)]
pub(super) struct Origin {
    /// Names the envelope in error messages.
    pub envelope: String,
    /// The delivery's own id (EventBridge `id`, SNS `MessageId`).
    pub delivery_id: Option<String>,
    pub account: Option<String>,
    pub region: Option<String>,
    pub time: Option<String>,
}

impl Origin {
    pub fn named(envelope: impl Into<String>) -> Self {
        Origin {
            envelope: envelope.into(),
            ..Origin::default()
        }
    }
}

// ---- small helpers shared by the AWS submodules ----

/// The raw form of the item being normalized, and where it sits in the payload as
/// received: the event's `raw_event` is then the parsed payload itself, or its part at that
/// pointer, moved rather than copied (copies of large payloads cost more than parsing them).
#[derive(Debug, Clone, Copy)]
pub(super) struct Raw<'a> {
    value: &'a Value,
    /// JSON pointer of `value` in the payload; empty for the whole payload.
    pointer: &'a str,
}

impl<'a> Raw<'a> {
    /// The payload as the caller owns it: events get `raw_event` from whoever owns it (the
    /// normalizer for the top level, `resolve_inner_payload` for a decoded inner message).
    pub fn payload(value: &'a Value) -> Self {
        Raw { value, pointer: "" }
    }

    /// The part of the payload at `pointer` (one record of a log file).
    pub fn part(value: &'a Value, pointer: &'a str) -> Self {
        Raw { value, pointer }
    }

    pub fn value(self) -> &'a Value {
        self.value
    }

    pub fn draft(self, source: EventSource, event_type: EventType) -> EventDraft {
        if self.pointer.is_empty() {
            EventDraft::for_payload(source, event_type)
        } else {
            EventDraft::for_part(source, event_type, self.pointer.to_string())
        }
    }
}

/// Accepts any JSON and keeps none of it: lets the crate's envelope types be read for their
/// small fields (id, account, time) without copying the large body (`detail`, `alarmData`).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Skipped;

impl<'de> serde::Deserialize<'de> for Skipped {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(deserializer).map(|_| Skipped)
    }
}

impl serde::Serialize for Skipped {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_unit()
    }
}

/// A typed view when the payload matches the `aws_lambda_events` model. Real published
/// payloads deviate (placeholder or space-broken timestamps, an SNS `Message` that is an
/// object, ...), so every caller has a `Value` fallback and `None` is never an error.
pub(super) fn typed<T: DeserializeOwned>(value: &Value) -> Option<T> {
    T::deserialize(value).ok()
}

/// A string or number at a JSON pointer, as text (AWS sends ports, ids and severities both ways).
pub(super) fn scalar_text(value: &Value, pointer: &str) -> Option<String> {
    match value.at(pointer)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A number at a JSON pointer, also when sent as a numeric string.
pub(super) fn number(value: &Value, pointer: &str) -> Option<f64> {
    match value.at(pointer)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The items of a field that AWS sends as one object, a list, or CloudTrail's `{"items": [...]}`.
pub(super) fn items(value: Option<&Value>) -> Vec<&Value> {
    let Some(value) = value else {
        return Vec::new();
    };
    match value {
        Value::Array(list) => list.iter().collect(),
        Value::Object(obj) => match obj.get("items").or_else(|| obj.get("item")) {
            Some(Value::Array(list)) => list.iter().collect(),
            Some(_) => Vec::new(),
            None if obj.is_empty() => Vec::new(),
            None => vec![value],
        },
        _ => Vec::new(),
    }
}

/// A JSON document carried as a string (SNS `Message`, `invokingEvent`, `reasonData`), parsed;
/// an object or array passes through unchanged.
pub(super) fn embedded_json(value: &Value) -> Option<Value> {
    match value {
        Value::String(s) => crate::normalize::parse_embedded(s.trim().as_bytes())
            .filter(|parsed| parsed.is_object() || parsed.is_array()),
        Value::Object(_) | Value::Array(_) => Some(value.clone()),
        _ => None,
    }
}

pub(super) fn is_account_id(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
}

/// The first real 12-digit account among the candidates; failing that the first non-blank
/// one (published samples use placeholders such as `EXAMPLE`, still better than nothing).
pub(super) fn pick_account<'a>(candidates: impl IntoIterator<Item = Option<&'a str>>) -> String {
    let present: Vec<&str> = candidates
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    present
        .iter()
        .find(|s| is_account_id(s))
        .or_else(|| present.first())
        .map(|s| (*s).to_string())
        .unwrap_or_default()
}

/// `us-east-1`, `us-gov-west-1`, `cn-north-1`: lowercase words joined by dashes, ending in a
/// digit. Rejects placeholders (`REGION`, `EXAMPLE`) and display names (`US East (N. Virginia)`).
pub(super) fn looks_like_region(text: &str) -> bool {
    text.contains('-')
        && text.bytes().last().is_some_and(|b| b.is_ascii_digit())
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

pub(super) fn pick_region<'a>(
    candidates: impl IntoIterator<Item = Option<&'a str>>,
) -> Option<String> {
    candidates
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|s| looks_like_region(s))
        .map(str::to_string)
}

/// Field `index` of an ARN (`arn:partition:service:region:account:resource`), if non-blank.
pub(super) fn arn_field(arn: &str, index: usize) -> Option<&str> {
    if !arn.starts_with("arn:") {
        return None;
    }
    arn.split(':')
        .nth(index)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// The ARN of a resource of our `kind`, when one can be built from its short id.
pub(super) fn build_arn(kind: &str, id: &str, region: &str, account: &str) -> Option<String> {
    if id.starts_with("arn:") {
        return Some(id.to_string());
    }
    let p = partition(region);
    let global = match kind {
        aws_types::S3_BUCKET => Some(format!("arn:{p}:s3:::{id}")),
        aws_types::IAM_USER if !account.is_empty() => {
            Some(format!("arn:{p}:iam::{account}:user/{id}"))
        }
        "iam_role" if !account.is_empty() => Some(format!("arn:{p}:iam::{account}:role/{id}")),
        _ => None,
    };
    if global.is_some() {
        return global;
    }
    if region.is_empty() || account.is_empty() {
        return None;
    }
    let prefix = |service: &str| format!("arn:{p}:{service}:{region}:{account}");
    Some(match kind {
        aws_types::EC2_INSTANCE => format!("{}:instance/{id}", prefix("ec2")),
        aws_types::EBS_VOLUME => format!("{}:volume/{id}", prefix("ec2")),
        aws_types::SECURITY_GROUP => format!("{}:security-group/{id}", prefix("ec2")),
        aws_types::RDS_INSTANCE => format!("{}:db:{id}", prefix("rds")),
        aws_types::LAMBDA_FUNCTION => format!("{}:function:{id}", prefix("lambda")),
        "dynamodb_table" => format!("{}:table/{id}", prefix("dynamodb")),
        "sqs_queue" => format!("{}:{id}", prefix("sqs")),
        aws_types::CLOUDWATCH_ALARM => format!("{}:alarm:{id}", prefix("cloudwatch")),
        _ => return None,
    })
}

/// A resource from our kind and the cloud's id: `id` becomes an ARN where one can be built,
/// `name` the short id (the last path segment of an ARN).
pub(super) fn resource(kind: &str, id: &str, region: Option<&str>, account: &str) -> Resource {
    let full = build_arn(kind, id, region.unwrap_or(""), account).unwrap_or_else(|| id.to_string());
    Resource {
        kind: kind.to_string(),
        name: short_name(id).to_string(),
        id: full,
        tags: BTreeMap::new(),
        metadata: Map::new(),
    }
}

/// `arn:aws:ec2:r:a:instance/i-1` → `i-1`; `arn:aws:s3:::b` → `b`; a plain id stays as it is.
pub(super) fn short_name(id: &str) -> &str {
    if !id.starts_with("arn:") {
        return id;
    }
    let resource = id.splitn(6, ':').nth(5).unwrap_or(id);
    match resource.rsplit_once('/') {
        Some((_, last)) if !last.is_empty() => last,
        _ => match resource.rsplit_once(':') {
            Some((_, last)) if !last.is_empty() => last,
            _ => resource,
        },
    }
}

/// Our snake_case resource kind for an AWS type name, in any of the spellings AWS uses:
/// CloudFormation (`AWS::EC2::Instance`, old Config's `AWS::EC2::VOLUME`), ASFF
/// (`AwsEc2Instance`). Common types get the project's names; others a derived one.
pub(super) fn resource_kind(type_name: &str) -> String {
    let key: String = type_name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let known = match key.as_str() {
        "awss3bucket" => aws_types::S3_BUCKET,
        "awsec2instance" => aws_types::EC2_INSTANCE,
        "awsec2volume" => aws_types::EBS_VOLUME,
        "awsec2securitygroup" => aws_types::SECURITY_GROUP,
        "awsrdsdbinstance" => aws_types::RDS_INSTANCE,
        "awsautoscalingautoscalinggroup" => aws_types::AUTOSCALING_GROUP,
        "awsecsservice" => aws_types::ECS_SERVICE,
        "awscloudformationstack" => aws_types::CLOUDFORMATION_STACK,
        "awsiamuser" => aws_types::IAM_USER,
        "awsiamrole" => "iam_role",
        "awsiamaccesskey" => "iam_access_key",
        "awslambdafunction" => aws_types::LAMBDA_FUNCTION,
        "awsdynamodbtable" => "dynamodb_table",
        "awssqsqueue" => "sqs_queue",
        "awsaccount" => aws_types::ACCOUNT,
        "awscloudtrailtrail" => "cloudtrail_trail",
        "awsconfigconfigrule" => "config_rule",
        _ => "",
    };
    if !known.is_empty() {
        return known.to_string();
    }
    let parts: Vec<&str> = type_name.split("::").filter(|p| !p.is_empty()).collect();
    match parts.as_slice() {
        [_, service, kind] => format!("{}_{}", service.to_ascii_lowercase(), snake_case(kind)),
        _ => {
            let bare = type_name.strip_prefix("Aws").unwrap_or(type_name);
            let snake = snake_case(bare);
            if snake.is_empty() {
                "aws_resource".to_string()
            } else {
                snake
            }
        }
    }
}

/// Inserts a metadata entry unless it carries nothing (null, blank text, empty list/object).
pub(super) fn put(meta: &mut Map<String, Value>, key: &str, value: impl Into<Value>) {
    let value = value.into();
    let empty = match &value {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    };
    if !empty {
        meta.insert(key.to_string(), value);
    }
}

/// The non-blank string at `pointer` inside `item`, or an error naming the field by its full
/// path from the payload root (`base` is where `item` sits, e.g. `/Records/0/Sns/Message`).
pub(super) fn need<'a>(
    item: &'a Value,
    pointer: &str,
    base: &str,
    envelope: &str,
) -> Result<&'a str, NormalizeError> {
    let problem = match item.at(pointer) {
        Some(Value::String(s)) if !s.trim().is_empty() => return Ok(s),
        Some(Value::String(_)) => "is empty".to_string(),
        Some(other) => format!("must be a string, found {}", json_kind(other)),
        None => "is missing".to_string(),
    };
    Err(NormalizeError::field(
        envelope,
        dotted(&format!("{base}{pointer}")),
        problem,
    ))
}

/// A field under any of several spellings (AWS mixes `ipProtocol` and `IpProtocol`).
pub(super) fn field<'a>(value: &'a Value, names: &[&str]) -> Option<&'a Value> {
    names
        .iter()
        .find_map(|n| value.get(*n))
        .filter(|v| !v.is_null())
}

/// The ingress permissions of a security group that admit the whole internet, in the three
/// spellings AWS uses (CloudTrail `{"items": [...]}`, Config items, ASFF PascalCase), each as
/// `{protocol, from_port, to_port, cidrs}` for a reader or a remediation.
pub(super) fn world_open_permissions(permissions: Option<&Value>) -> Vec<Value> {
    let mut open = Vec::new();
    for perm in items(permissions) {
        let mut cidrs: Vec<String> = Vec::new();
        let range_lists = [
            "ipRanges",
            "ipv4Ranges",
            "ipv6Ranges",
            "IpRanges",
            "Ipv6Ranges",
        ];
        for list in range_lists.iter().filter_map(|k| perm.get(*k)) {
            for range in items(Some(list)) {
                let cidr = match range {
                    Value::String(s) => Some(s.as_str()),
                    other => field(other, &["cidrIp", "cidrIpv6", "CidrIp", "CidrIpv6"])
                        .and_then(Value::as_str),
                };
                if let Some(cidr) = cidr.filter(|c| is_world_cidr(c)) {
                    if !cidrs.iter().any(|c| c == cidr) {
                        cidrs.push(cidr.to_string());
                    }
                }
            }
        }
        if cidrs.is_empty() {
            continue;
        }
        let protocol = field(perm, &["ipProtocol", "IpProtocol"])
            .map(|p| match p {
                Value::String(s) if s == "-1" => "all".to_string(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .unwrap_or_else(|| "all".to_string());
        let mut entry = Map::new();
        entry.insert("protocol".into(), Value::String(protocol));
        if let Some(port) = field(perm, &["fromPort", "FromPort"]) {
            entry.insert("from_port".into(), port.clone());
        }
        if let Some(port) = field(perm, &["toPort", "ToPort"]) {
            entry.insert("to_port".into(), port.clone());
        }
        entry.insert(
            "cidrs".into(),
            Value::Array(cidrs.into_iter().map(Value::String).collect()),
        );
        open.push(Value::Object(entry));
    }
    open
}

/// CIDRs that mean "anyone on the internet".
pub(super) fn is_world_cidr(cidr: &str) -> bool {
    matches!(cidr.trim(), "0.0.0.0/0" | "::/0")
}

#[cfg(test)]
mod tests;
