//! The CloudWatch alarm behind an event, read again when a fix runs: an alarm already back
//! to OK means the problem cleared by itself, and a fix that would change something stops.

use aws_sdk_cloudwatch::types::StateValue;
use escher_core::remediate::{RemediationError, RequiredPermission};
use escher_core::UnifiedEvent;

use crate::calls::{Access, CallLog};
use crate::clients::AwsClients;

/// What reading the alarm needs, for each fix that does.
pub(crate) const DESCRIBE_ALARMS: &str = "cloudwatch:DescribeAlarms";
pub(crate) const ALARMS: &str =
    "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:*";

/// The permission, with why `fix` reads it.
pub(crate) const fn describe_alarms(why: &'static str) -> RequiredPermission {
    RequiredPermission {
        action: DESCRIBE_ALARMS,
        resource: ALARMS,
        why,
    }
}

/// A text field of the event's resource metadata, empty when absent.
pub(crate) fn metadata_text<'a>(event: &'a UnifiedEvent, key: &str) -> &'a str {
    event
        .resource
        .metadata
        .get(key)
        .and_then(|v| v.as_str())
        .unwrap_or_default()
}

/// Whether the alarm behind the event is back to OK (then the capacity is fine again).
pub(crate) async fn alarm_is_ok(
    clients: &AwsClients,
    event: &UnifiedEvent,
    log: &mut CallLog,
) -> Result<bool, RemediationError> {
    let name = metadata_text(event, "alarm_name");
    if name.is_empty() {
        return Ok(false);
    }
    let out = log
        .must(
            "cloudwatch",
            "DescribeAlarms",
            name,
            Access::Read,
            clients
                .cloudwatch
                .describe_alarms()
                .alarm_names(name)
                .send(),
        )
        .await?;
    Ok(out
        .metric_alarms()
        .iter()
        .any(|a| a.alarm_name() == Some(name) && a.state_value() == Some(&StateValue::Ok)))
}
