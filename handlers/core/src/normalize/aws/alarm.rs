//! CloudWatch alarms in their three deliveries: the EventBridge "CloudWatch Alarm State
//! Change" / "Configuration Change" events, the alarm's Lambda-action payload (`alarmData`),
//! and the classic JSON message an alarm publishes to SNS. All three are read into one
//! [`Alarm`] so the event-type rule below exists once.
//!
//! Event-type rule (decided for the project):
//! - state `ALARM` → `capacity_high` when every metric the alarm watches is a capacity metric
//!   ([`CAPACITY_METRICS`]) and the breach is on the side that means "running out" (above the
//!   threshold for a utilisation, below it for free space/memory; an anomaly band breached
//!   on the other side is only unusual, not full), otherwise `metric_alarm`;
//! - state `ALARM` on one instance's `StatusCheckFailed*` → `service_health`, HIGH;
//! - state `ALARM` on a Lambda alias's `Errors` (a deployment alarm) → `deployment_failed`;
//! - `OK` → `alarm_resolved`;
//! - `INSUFFICIENT_DATA` → `metric_alarm` with source severity MEDIUM (the alarm went blind);
//! - composite alarms follow the same states but are never `capacity_high` (they watch
//!   other alarms, not a metric).
//! - "Alarm Configuration Change" → `resource_created` / `resource_deleted` /
//!   `resource_changed` by its `operation`, about the alarm itself.
//!
//! The resource is the one obvious resource in the metrics' dimensions (a single
//! `InstanceId`, `VolumeId`, ...), else the alarm itself (`cloudwatch_alarm`).

use crate::normalize::JsonAt;
use crate::resource_types::aws as aws_types;
use aws_lambda_events::event::cloudwatch_alarms::CloudWatchAlarm;
use aws_lambda_events::event::sns::CloudWatchAlarmPayload;
use serde_json::{json, Map, Value};

use super::{
    arn_field, embedded_json, field, items, need, number, pick_account, pick_region, put, resource,
    text, typed, Origin, Raw, Skipped,
};
use crate::event::{EventSource, EventType, Severity};
use crate::normalize::{EventDraft, NormalizeError};

/// Which side of a threshold a breach is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Above,
    Below,
    Unknown,
}

/// Metrics whose breach means a resource is running out of CPU, memory or storage, with the
/// side that means so. Deliberately short: a metric not listed gives `metric_alarm`, which
/// is never wrong, only less specific. (Idle-time metrics such as `VolumeIdleTime` are not
/// capacity: a high value means an unused resource.)
const CAPACITY_METRICS: &[(&str, Side)] = &[
    ("CPUUtilization", Side::Above),
    ("MemoryUtilization", Side::Above),
    ("mem_used_percent", Side::Above),
    ("disk_used_percent", Side::Above),
    ("swap_used_percent", Side::Above),
    ("FreeStorageSpace", Side::Below),
    ("FreeableMemory", Side::Below),
    ("FreeLocalStorage", Side::Below),
];

/// Dimensions that name one resource, and our kind for it.
const DIMENSION_KINDS: &[(&str, &str)] = &[
    ("InstanceId", aws_types::EC2_INSTANCE),
    ("VolumeId", aws_types::EBS_VOLUME),
    ("DBInstanceIdentifier", aws_types::RDS_INSTANCE),
    ("AutoScalingGroupName", aws_types::AUTOSCALING_GROUP),
    ("FunctionName", aws_types::LAMBDA_FUNCTION),
    ("BucketName", aws_types::S3_BUCKET),
    ("TableName", "dynamodb_table"),
    ("QueueName", "sqs_queue"),
];

#[derive(Debug, Clone, Default)]
struct Metric {
    namespace: Option<String>,
    name: String,
    dimensions: Vec<(String, String)>,
    stat: Option<String>,
    period: Option<f64>,
}

/// What any of the three deliveries says about one alarm transition.
#[derive(Debug, Clone, Default)]
struct Alarm {
    name: String,
    arn: Option<String>,
    description: Option<String>,
    state: String,
    previous_state: Option<String>,
    reason: Option<String>,
    /// The state's `reasonData`, parsed (it is a JSON string on the wire).
    reason_data: Option<Value>,
    state_time: Option<String>,
    metrics: Vec<Metric>,
    /// The expression whose result the alarm watches (metric math, anomaly band).
    expression: Option<String>,
    alarm_rule: Option<String>,
    threshold: Option<f64>,
    comparison: Option<String>,
    suppressed_by: Option<String>,
}

impl Alarm {
    fn is_composite(&self) -> bool {
        self.alarm_rule.is_some()
            || (self.metrics.is_empty()
                && self
                    .reason_data
                    .as_ref()
                    .is_some_and(|r| r.get("triggeringAlarms").is_some()))
    }

    fn kind(&self) -> &'static str {
        match &self.expression {
            _ if self.is_composite() => "composite",
            Some(e) if e.contains("ANOMALY_DETECTION_BAND") => "anomaly_detection",
            Some(_) => "metric_math",
            None => "metric",
        }
    }

    /// Which side of the threshold the current state's datapoints are on.
    fn breach_side(&self) -> Side {
        if let Some(op) = &self.comparison {
            if op.starts_with("GreaterThan") {
                return Side::Above;
            }
            if op.starts_with("LessThan") && !op.contains("OrGreaterThan") {
                return Side::Below;
            }
        }
        // Anomaly bands: compare the last datapoint with the band edges.
        if let Some(data) = &self.reason_data {
            let last = |key: &str| {
                data.get(key)
                    .and_then(Value::as_array)
                    .and_then(|a| a.last())
                    .and_then(Value::as_f64)
            };
            if let (Some(point), Some(upper), Some(lower)) = (
                last("recentDatapoints"),
                last("recentUpperThresholds"),
                last("recentLowerThresholds"),
            ) {
                return if point > upper {
                    Side::Above
                } else if point < lower {
                    Side::Below
                } else {
                    Side::Unknown
                };
            }
        }
        let reason = self.reason.as_deref().unwrap_or_default();
        // "1 datapoint [...] was less than", "3 out of the last 3 datapoints [...] were less than".
        let says = |was: &str, were: &str| reason.contains(was) || reason.contains(were);
        match (
            says("was greater than", "were greater than"),
            says("was less than", "were less than"),
        ) {
            (true, false) => Side::Above,
            (false, true) => Side::Below,
            _ => Side::Unknown,
        }
    }

    fn is_capacity(&self) -> bool {
        if self.is_composite() || self.metrics.is_empty() {
            return false;
        }
        let sides: Vec<Side> = self
            .metrics
            .iter()
            .filter_map(|m| {
                CAPACITY_METRICS
                    .iter()
                    .find(|(name, _)| *name == m.name)
                    .map(|(_, side)| *side)
            })
            .collect();
        let Some(&wanted) = sides.first() else {
            return false;
        };
        if sides.len() != self.metrics.len() || sides.iter().any(|s| *s != wanted) {
            return false;
        }
        // Without a stated direction (e.g. a test alarm's free-text reason) the metric alone decides.
        let side = self.breach_side();
        side == Side::Unknown || side == wanted
    }

    /// One EC2 instance's CPU below a fixed threshold: the instance does nothing while it
    /// costs money (what `stop_idle_instance` fixes, once the CPU history confirms it). An
    /// anomaly band's lower edge means unusual, not idle, and stays `metric_alarm`.
    fn is_idle_instance(&self) -> bool {
        match self.metrics.as_slice() {
            [only] if self.kind() == "metric" => {
                only.name == "CPUUtilization"
                    && only.namespace.as_deref().is_none_or(|n| n == "AWS/EC2")
                    && only.dimensions.iter().any(|(k, _)| k == "InstanceId")
                    && self.breach_side() == Side::Below
            }
            _ => false,
        }
    }

    /// An EC2 instance failing its status checks (`StatusCheckFailed`, `_Instance`,
    /// `_System` on one `InstanceId`): the instance is unhealthy, which `restart_service`
    /// answers (a reboot for the instance's own check).
    fn is_status_check(&self) -> bool {
        match self.metrics.as_slice() {
            [only] if self.kind() == "metric" => {
                only.name.starts_with("StatusCheckFailed")
                    && only.dimensions.iter().any(|(k, _)| k == "InstanceId")
                    && self.breach_side() != Side::Below
            }
            _ => false,
        }
    }

    /// A Lambda alias's `Errors` above a threshold (`FunctionName` with `Resource` =
    /// `<function>:<alias>`): the alarm a deployment of the alias is watched by (the SAM /
    /// CodeDeploy deployment-alarm pattern), so a deployment that fails it is `deployment_failed`;
    /// the rollback itself checks that the alias's version is a recent deployment.
    fn is_alias_errors(&self) -> bool {
        match self.metrics.as_slice() {
            [only] if self.kind() == "metric" => {
                let dimension = |key: &str| {
                    only.dimensions
                        .iter()
                        .find(|(k, _)| k == key)
                        .map(|(_, v)| v.as_str())
                };
                let qualified = match (dimension("FunctionName"), dimension("Resource")) {
                    (Some(function), Some(resource)) => resource
                        .strip_prefix(function)
                        .and_then(|rest| rest.strip_prefix(':'))
                        .is_some_and(|q| !q.is_empty() && !q.bytes().all(|b| b.is_ascii_digit())),
                    _ => false,
                };
                only.name == "Errors"
                    && only.namespace.as_deref().is_none_or(|n| n == "AWS/Lambda")
                    && qualified
                    && self.breach_side() != Side::Below
            }
            _ => false,
        }
    }

    fn event_type(
        &self,
        state_pointer: &str,
        envelope: &str,
    ) -> Result<(EventType, Option<Severity>), NormalizeError> {
        Ok(match self.state.as_str() {
            "ALARM" if self.is_idle_instance() => (EventType::InstanceIdle, None),
            // An instance failing its checks is unreachable or about to be.
            "ALARM" if self.is_status_check() => (EventType::ServiceHealth, Some(Severity::High)),
            "ALARM" if self.is_alias_errors() => (EventType::DeploymentFailed, None),
            "ALARM" if self.is_capacity() => (EventType::CapacityHigh, None),
            "ALARM" => (EventType::MetricAlarm, None),
            "OK" => (EventType::AlarmResolved, None),
            "INSUFFICIENT_DATA" => (EventType::MetricAlarm, Some(Severity::Medium)),
            other => {
                return Err(NormalizeError::field(
                    envelope,
                    crate::normalize::dotted(state_pointer),
                    format!("is `{other}`, expected ALARM, OK or INSUFFICIENT_DATA"),
                ))
            }
        })
    }

    /// The single resource the alarm's dimensions name, if there is exactly one.
    fn dimension_resource(&self) -> Option<(&'static str, &str)> {
        let mut found: Vec<(&'static str, &str)> = Vec::new();
        for metric in &self.metrics {
            for (key, value) in &metric.dimensions {
                if let Some((_, kind)) = DIMENSION_KINDS.iter().find(|(k, _)| k == key) {
                    if !found.iter().any(|(_, v)| *v == value.as_str()) {
                        found.push((kind, value.as_str()));
                    }
                }
            }
        }
        match found.as_slice() {
            [only] => Some(*only),
            _ => None,
        }
    }

    fn metadata(&self, meta: &mut Map<String, Value>) {
        put(meta, "alarm_name", self.name.as_str());
        put(meta, "alarm_arn", self.arn.clone().unwrap_or_default());
        put(meta, "alarm_kind", self.kind());
        put(
            meta,
            "description",
            self.description.clone().unwrap_or_default(),
        );
        put(meta, "state", self.state.as_str());
        put(
            meta,
            "previous_state",
            self.previous_state.clone().unwrap_or_default(),
        );
        put(meta, "reason", self.reason.clone().unwrap_or_default());
        match self.metrics.as_slice() {
            [only] => {
                put(meta, "metric_name", only.name.as_str());
                put(
                    meta,
                    "namespace",
                    only.namespace.clone().unwrap_or_default(),
                );
                put(meta, "dimensions", dimensions_json(&only.dimensions));
                put(meta, "statistic", only.stat.clone().unwrap_or_default());
                if let Some(period) = only.period {
                    put(meta, "period", period);
                }
            }
            [] => {}
            many => {
                let list: Vec<Value> = many
                    .iter()
                    .map(|m| {
                        json!({
                            "metric_name": m.name,
                            "namespace": m.namespace,
                            "dimensions": dimensions_json(&m.dimensions),
                            "statistic": m.stat,
                        })
                    })
                    .collect();
                put(meta, "metrics", list);
            }
        }
        put(
            meta,
            "expression",
            self.expression.clone().unwrap_or_default(),
        );
        if let Some(threshold) = self.threshold {
            put(meta, "threshold", threshold);
        }
        put(
            meta,
            "comparison_operator",
            self.comparison.clone().unwrap_or_default(),
        );
        put(
            meta,
            "alarm_rule",
            self.alarm_rule.clone().unwrap_or_default(),
        );
        let triggering: Vec<Value> = self
            .reason_data
            .as_ref()
            .map(|r| items(r.get("triggeringAlarms")))
            .unwrap_or_default()
            .into_iter()
            .filter_map(|a| text(a, "/arn"))
            .map(|a| Value::String(a.to_string()))
            .collect();
        put(meta, "triggering_alarms", triggering);
        put(
            meta,
            "actions_suppressed_by",
            self.suppressed_by.clone().unwrap_or_default(),
        );
    }
}

fn dimensions_json(dimensions: &[(String, String)]) -> Value {
    Value::Object(
        dimensions
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// Reads the camelCase shape shared by EventBridge `detail` and the Lambda action's `alarmData`.
fn alarm_from_data(data: &Value, base: &str, envelope: &str) -> Result<Alarm, NormalizeError> {
    let name = need(data, "/alarmName", base, envelope)?.to_string();
    let state = need(data, "/state/value", base, envelope)?.to_string();
    let reason_data = data.at("/state/reasonData").and_then(embedded_json);
    let config = data.get("configuration").unwrap_or(&Value::Null);
    let mut metrics = Vec::new();
    let mut expression = None;
    for entry in items(config.get("metrics")) {
        if let Some(stat) = entry.get("metricStat") {
            let metric = stat.get("metric").unwrap_or(&Value::Null);
            let dimensions = metric
                .get("dimensions")
                .and_then(Value::as_object)
                .map(|d| {
                    d.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect()
                })
                .unwrap_or_default();
            metrics.push(Metric {
                namespace: text(metric, "/namespace").map(str::to_string),
                name: text(metric, "/name").unwrap_or_default().to_string(),
                dimensions,
                stat: text(stat, "/stat").map(str::to_string),
                period: number(stat, "/period"),
            });
        } else if entry.get("returnData").and_then(Value::as_bool) != Some(false) {
            expression = expression.or_else(|| text(entry, "/expression").map(str::to_string));
        }
    }
    // The previous state's `reasonData` is another JSON document to parse, needed only
    // when the current one states no threshold.
    let threshold = reason_data
        .as_ref()
        .and_then(|r| number(r, "/threshold"))
        .or_else(|| {
            let previous = data
                .at("/previousState/reasonData")
                .and_then(embedded_json)?;
            number(&previous, "/threshold")
        });
    Ok(Alarm {
        name,
        arn: None,
        description: text(config, "/description").map(str::to_string),
        state,
        previous_state: text(data, "/previousState/value").map(str::to_string),
        reason: text(data, "/state/reason").map(str::to_string),
        reason_data,
        state_time: text(data, "/state/timestamp").map(str::to_string),
        metrics,
        expression,
        alarm_rule: text(config, "/alarmRule").map(str::to_string),
        threshold,
        comparison: None,
        suppressed_by: text(data, "/state/actionsSuppressedBy").map(str::to_string),
    })
}

/// Reads the classic PascalCase message (`AlarmName`, `NewStateValue`, `Trigger`).
fn alarm_from_classic(
    message: &Value,
    base: &str,
    envelope: &str,
) -> Result<Alarm, NormalizeError> {
    if let Some(payload) = typed::<CloudWatchAlarmPayload>(message) {
        let trigger = &payload.trigger;
        let mut metrics = Vec::new();
        let mut expression = None;
        if let Some(name) = trigger.metric_name.clone() {
            metrics.push(Metric {
                namespace: trigger.namespace.clone(),
                name,
                dimensions: trigger
                    .dimensions
                    .iter()
                    .map(|d| (d.name.clone(), d.value.clone()))
                    .collect(),
                stat: trigger.statistic.clone(),
                period: Some(trigger.period as f64),
            });
        }
        for query in &trigger.metrics {
            match &query.metric_stat {
                Some(stat) => metrics.push(Metric {
                    namespace: stat.metric.namespace.clone(),
                    name: stat.metric.metric_name.clone().unwrap_or_default(),
                    dimensions: stat
                        .metric
                        .dimensions
                        .iter()
                        .map(|d| (d.name.clone(), d.value.clone()))
                        .collect(),
                    stat: Some(stat.stat.clone()),
                    period: Some(stat.period as f64),
                }),
                None if query.return_data => {
                    expression = expression.or_else(|| query.expression.clone());
                }
                None => {}
            }
        }
        return Ok(Alarm {
            name: payload.alarm_name,
            arn: Some(payload.alarm_arn).filter(|a| !a.is_empty()),
            description: Some(payload.alarm_description).filter(|d| !d.is_empty()),
            state: payload.new_state_value,
            previous_state: Some(payload.old_state_value).filter(|s| !s.is_empty()),
            reason: Some(payload.new_state_reason).filter(|s| !s.is_empty()),
            reason_data: None,
            state_time: Some(payload.state_change_time).filter(|s| !s.is_empty()),
            metrics,
            expression,
            alarm_rule: text(message, "/AlarmRule").map(str::to_string),
            threshold: Some(trigger.threshold),
            comparison: Some(trigger.comparison_operator.clone()).filter(|c| !c.is_empty()),
            suppressed_by: None,
        });
    }
    // Composite alarms and trimmed messages have no (or a partial) `Trigger`.
    let name = need(message, "/AlarmName", base, envelope)?.to_string();
    let state = need(message, "/NewStateValue", base, envelope)?.to_string();
    let trigger = message.get("Trigger").unwrap_or(&Value::Null);
    let classic_dimensions = |list: Option<&Value>| -> Vec<(String, String)> {
        items(list)
            .into_iter()
            .filter_map(|d| {
                let key = field(d, &["name", "Name"])?.as_str()?;
                let value = field(d, &["value", "Value"])?.as_str()?;
                Some((key.to_string(), value.to_string()))
            })
            .collect()
    };
    let mut metrics = Vec::new();
    let mut expression = None;
    if let Some(name) = text(trigger, "/MetricName") {
        metrics.push(Metric {
            namespace: text(trigger, "/Namespace").map(str::to_string),
            name: name.to_string(),
            dimensions: classic_dimensions(trigger.get("Dimensions")),
            stat: text(trigger, "/Statistic").map(str::to_string),
            period: number(trigger, "/Period"),
        });
    }
    for query in items(trigger.get("Metrics")) {
        match query.get("MetricStat") {
            Some(stat) => metrics.push(Metric {
                namespace: text(stat, "/Metric/Namespace").map(str::to_string),
                name: text(stat, "/Metric/MetricName")
                    .unwrap_or_default()
                    .to_string(),
                dimensions: classic_dimensions(stat.at("/Metric/Dimensions")),
                stat: text(stat, "/Stat").map(str::to_string),
                period: number(stat, "/Period"),
            }),
            None if query.get("ReturnData").and_then(Value::as_bool) != Some(false) => {
                expression = expression.or_else(|| text(query, "/Expression").map(str::to_string));
            }
            None => {}
        }
    }
    Ok(Alarm {
        name,
        arn: text(message, "/AlarmArn").map(str::to_string),
        description: text(message, "/AlarmDescription").map(str::to_string),
        state,
        previous_state: text(message, "/OldStateValue").map(str::to_string),
        reason: text(message, "/NewStateReason").map(str::to_string),
        reason_data: None,
        state_time: text(message, "/StateChangeTime").map(str::to_string),
        metrics,
        expression,
        alarm_rule: text(message, "/AlarmRule").map(str::to_string),
        threshold: number(trigger, "/Threshold"),
        comparison: text(trigger, "/ComparisonOperator").map(str::to_string),
        suppressed_by: None,
    })
}

/// Builds the event for one alarm transition.
fn alarm_draft(
    alarm: &Alarm,
    state_pointer: &str,
    raw: Raw<'_>,
    origin: &Origin,
    account: String,
    region: Option<String>,
) -> Result<EventDraft, NormalizeError> {
    let (event_type, severity) = alarm.event_type(state_pointer, &origin.envelope)?;
    let mut draft = raw.draft(EventSource::AwsCloudWatch, event_type);
    draft.source_severity = severity;
    draft.resource = match alarm.dimension_resource() {
        Some((kind, id)) => resource(kind, id, region.as_deref(), &account),
        None => {
            let id = alarm.arn.as_deref().unwrap_or(alarm.name.as_str());
            let mut res = resource(aws_types::CLOUDWATCH_ALARM, id, region.as_deref(), &account);
            res.name = alarm.name.clone();
            res
        }
    };
    alarm.metadata(&mut draft.resource.metadata);
    draft.time = alarm.state_time.clone().or_else(|| origin.time.clone());
    draft.id_parts = match &origin.delivery_id {
        Some(id) => vec![id.clone()],
        // No delivery id (Lambda action, unwrapped message): the alarm and the moment of its
        // transition identify it, and a retry repeats both.
        None => vec![
            alarm.arn.clone().unwrap_or_else(|| alarm.name.clone()),
            alarm.state.clone(),
            alarm.state_time.clone().unwrap_or_default(),
        ],
    };
    draft.account_id = account;
    draft.region = region;
    Ok(draft)
}

/// EventBridge "CloudWatch Alarm State Change".
pub(super) fn normalize_state_change(
    detail: &Value,
    base: &str,
    raw: Raw<'_>,
    origin: &Origin,
) -> Result<Vec<EventDraft>, NormalizeError> {
    let mut alarm = alarm_from_data(detail, base, &origin.envelope)?;
    alarm.arn = super::text(raw.value(), "/resources/0").map(str::to_string);
    let account = pick_account([origin.account.as_deref()]);
    let region = pick_region([origin.region.as_deref()]);
    let draft = alarm_draft(
        &alarm,
        &format!("{base}/state/value"),
        raw,
        origin,
        account,
        region,
    )?;
    Ok(vec![draft])
}

/// EventBridge "CloudWatch Alarm Configuration Change": the alarm itself was created,
/// updated or deleted.
pub(super) fn normalize_config_change(
    detail: &Value,
    base: &str,
    raw: Raw<'_>,
    origin: &Origin,
) -> Result<Vec<EventDraft>, NormalizeError> {
    let name = need(detail, "/alarmName", base, &origin.envelope)?;
    let operation = text(detail, "/operation").unwrap_or_default();
    let event_type = match operation {
        "create" => EventType::ResourceCreated,
        "delete" => EventType::ResourceDeleted,
        _ => EventType::ResourceChanged,
    };
    let account = pick_account([origin.account.as_deref()]);
    let region = pick_region([origin.region.as_deref()]);
    let mut draft = raw.draft(EventSource::AwsCloudWatch, event_type);
    let arn = text(raw.value(), "/resources/0").unwrap_or(name);
    draft.resource = resource(
        aws_types::CLOUDWATCH_ALARM,
        arn,
        region.as_deref(),
        &account,
    );
    draft.resource.name = name.to_string();
    let config = detail
        .get("configuration")
        .or_else(|| detail.get("previousConfiguration"))
        .unwrap_or(&Value::Null);
    let meta = &mut draft.resource.metadata;
    put(meta, "alarm_name", name);
    put(meta, "operation", operation);
    put(
        meta,
        "state",
        text(detail, "/state/value").unwrap_or_default(),
    );
    put(
        meta,
        "description",
        text(config, "/description").unwrap_or_default(),
    );
    put(
        meta,
        "alarm_rule",
        text(config, "/alarmRule").unwrap_or_default(),
    );
    if let Some(metrics) = config.get("metrics") {
        put(meta, "metrics", metrics.clone());
    }
    draft.time = text(config, "/timestamp")
        .or_else(|| text(detail, "/state/timestamp"))
        .map(str::to_string)
        .or_else(|| origin.time.clone());
    draft.id_parts = origin.delivery_id.iter().cloned().collect();
    draft.account_id = account;
    draft.region = region;
    Ok(vec![draft])
}

/// The payload a CloudWatch alarm sends to a Lambda action.
pub(super) fn normalize_lambda_action(value: &Value) -> Result<Vec<EventDraft>, NormalizeError> {
    let envelope = "CloudWatch alarm Lambda action";
    // The crate's type rejects the published sample (spaces inside its timestamps), so its
    // fields are read from the JSON when it does not parse.
    let (account, arn, region, time) = match typed::<CloudWatchAlarm<Skipped, Skipped>>(value) {
        Some(a) => (
            a.account_id,
            a.alarm_arn,
            a.region,
            Some(a.time.to_rfc3339()),
        ),
        None => (
            text(value, "/accountId").map(str::to_string),
            text(value, "/alarmArn").map(str::to_string),
            text(value, "/region").map(str::to_string),
            text(value, "/time").map(str::to_string),
        ),
    };
    let origin = Origin {
        envelope: envelope.to_string(),
        delivery_id: None,
        account,
        region,
        time,
    };
    let data = value.get("alarmData").unwrap_or(&Value::Null);
    let mut alarm = alarm_from_data(data, "/alarmData", envelope)?;
    alarm.arn = arn;
    let arn_text = alarm.arn.as_deref().unwrap_or_default();
    let account = pick_account([origin.account.as_deref(), arn_field(arn_text, 4)]);
    let region = pick_region([origin.region.as_deref(), arn_field(arn_text, 3)]);
    let draft = alarm_draft(
        &alarm,
        "/alarmData/state/value",
        Raw::payload(value),
        &origin,
        account,
        region,
    )?;
    Ok(vec![draft])
}

/// The classic alarm message (from SNS, or unwrapped). `message` is the parsed message,
/// `base` its path in the payload (for errors), `raw` what the event keeps.
pub(super) fn normalize_classic(
    message: &Value,
    base: &str,
    raw: Raw<'_>,
    origin: &Origin,
) -> Result<Vec<EventDraft>, NormalizeError> {
    let alarm = alarm_from_classic(message, base, &origin.envelope)?;
    let arn_text = alarm.arn.as_deref().unwrap_or_default();
    let account = pick_account([
        text(message, "/AWSAccountId"),
        arn_field(arn_text, 4),
        origin.account.as_deref(),
    ]);
    // `Region` here is a display name ("US East (N. Virginia)"); the ARN has the code.
    let region = pick_region([
        arn_field(arn_text, 3),
        text(message, "/Region"),
        origin.region.as_deref(),
    ]);
    let draft = alarm_draft(
        &alarm,
        &format!("{base}/NewStateValue"),
        raw,
        origin,
        account,
        region,
    )?;
    Ok(vec![draft])
}
