//! The CloudWatch alarm behind an event, read again when a fix runs: an alarm already back
//! to OK means the problem cleared by itself, and a fix that would change something stops.

use aws_sdk_cloudwatch::types::StateValue;
use escher_core::remediate::{RemediationError, RequiredPermission, Verification};
use escher_core::UnifiedEvent;

use crate::calls::{Access, CallLog};
use crate::clients::AwsClients;
use crate::report::check;
use crate::target::metadata_str;

const DESCRIBE_ALARMS: &str = "cloudwatch:DescribeAlarms";
const ALARMS: &str = "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:*";

/// The permission to read the alarm, with why the fix does.
pub(crate) const fn describe_alarms(why: &'static str) -> RequiredPermission {
    RequiredPermission {
        action: DESCRIBE_ALARMS,
        resource: ALARMS,
        why,
    }
}

/// The alarm behind the event, when it is back to OK: its name and the check that says so
/// (the "already fine" answer of a fix).
pub(crate) async fn recovered_alarm(
    clients: &AwsClients,
    event: &UnifiedEvent,
    log: &mut CallLog,
) -> Result<Option<(String, Verification)>, RemediationError> {
    let name = metadata_str(event, "alarm_name");
    if name.is_empty() {
        return Ok(None);
    }
    let out = log
        .must(
            "cloudwatch",
            "DescribeAlarms",
            name,
            Access::Read,
            clients
                .cloudwatch()
                .describe_alarms()
                .alarm_names(name)
                .send(),
        )
        .await?;
    let ok = out
        .metric_alarms()
        .iter()
        .any(|a| a.alarm_name() == Some(name) && a.state_value() == Some(&StateValue::Ok));
    Ok(ok.then(|| {
        (
            name.to_string(),
            Verification::from_checks(vec![check("alarm state", "OK", "OK", true)]),
        )
    }))
}
