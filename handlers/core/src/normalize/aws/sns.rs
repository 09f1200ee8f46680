//! SNS deliveries: Lambda's `Records[].Sns` and the bare HTTP(S) notification. The `Message`
//! (a JSON string, or an object as AWS Config's documentation shows it) may be a CloudWatch
//! alarm, an AWS Config notification, or an EventBridge event; one event per record.
//! A subscription confirmation is a handshake the endpoint must answer.

use aws_lambda_events::event::sns::SnsMessageObj;
use serde_json::Value;

use super::Skipped;
use super::{
    alarm, arn_field, config, embedded_json, eventbridge, items, need, text, typed, Origin,
    Outcome, Raw,
};
use crate::event::CloudProvider;
use crate::normalize::{
    required_str, resolve_inner_payload, with_replaced, EventDraft, Handshake, NormalizeError,
};

/// Lambda's SNS event: every record in order.
pub(super) fn normalize_records(value: &Value) -> Result<Vec<EventDraft>, NormalizeError> {
    let mut drafts = Vec::new();
    for (index, record) in items(value.get("Records")).into_iter().enumerate() {
        let base = format!("/Records/{index}/Sns");
        let Some(sns) = record.get("Sns") else {
            return Err(NormalizeError::field(
                "SNS Lambda event",
                format!("Records[{index}].Sns"),
                "is missing",
            ));
        };
        drafts.extend(notification(sns, &base, |message| {
            with_replaced(record, "/Sns/Message", message)
        })?);
    }
    Ok(drafts)
}

/// An SNS HTTP(S) delivery: a notification, or a (un)subscription confirmation.
pub(super) fn normalize_notification(value: &Value) -> Result<Outcome, NormalizeError> {
    let topic = text(value, "/TopicArn").unwrap_or_default();
    match text(value, "/Type").unwrap_or_default() {
        "SubscriptionConfirmation" => {
            let envelope = format!("SNS subscription confirmation (topic {topic})");
            let token = required_str(value, "/Token", &envelope)?;
            Ok(Outcome::Handshake(Handshake {
                cloud_provider: CloudProvider::Aws,
                kind: "sns_subscription_confirmation".into(),
                validation_code: token.to_string(),
                validation_url: text(value, "/SubscribeURL").map(str::to_string),
            }))
        }
        // The endpoint was unsubscribed: nothing to act on and nothing to answer.
        "UnsubscribeConfirmation" => Ok(Outcome::Drafts(Vec::new())),
        _ => {
            let drafts = notification(value, "", |message| {
                with_replaced(value, "/Message", message)
            })?;
            Ok(Outcome::Drafts(drafts))
        }
    }
}

/// One SNS message. `with_message` returns the event's raw form with the decoded message in
/// place of the string; it is built once, after the drafts, and moved into them.
fn notification(
    sns: &Value,
    base: &str,
    with_message: impl FnOnce(Value) -> Value,
) -> Result<Vec<EventDraft>, NormalizeError> {
    // The crate's type accepts both a string and an object `Message` as a `Value`; it rejects
    // records without the signature fields (test invocations), which are then read as JSON.
    let (message_id, topic, timestamp) = match typed::<SnsMessageObj<Skipped>>(sns) {
        Some(m) => (
            Some(m.message_id),
            m.topic_arn,
            Some(m.timestamp.to_rfc3339()),
        ),
        None => (
            text(sns, "/MessageId").map(str::to_string),
            text(sns, "/TopicArn").unwrap_or_default().to_string(),
            text(sns, "/Timestamp").map(str::to_string),
        ),
    };
    let envelope = format!("SNS notification (topic {topic})");
    let message_value = sns.get("Message").unwrap_or(&Value::Null);
    if message_value.is_null() {
        need(sns, "/Message", base, &envelope)?;
    }
    let Some(message) = embedded_json(message_value) else {
        return Err(NormalizeError::unrecognized(
            envelope,
            "its Message is not JSON (a plain-text message carries no alarm or Config data)",
        ));
    };
    let origin = Origin {
        envelope,
        delivery_id: message_id,
        account: arn_field(&topic, 4).map(str::to_string),
        region: arn_field(&topic, 3).map(str::to_string),
        time: timestamp,
    };
    let message_base = format!("{base}/Message");
    if text(&message, "/AlarmName").is_some() && message.get("NewStateValue").is_some() {
        let mut drafts =
            alarm::normalize_classic(&message, &message_base, Raw::payload(&message), &origin)?;
        resolve_inner_payload(&mut drafts, with_message(message));
        return Ok(drafts);
    }
    if config::is_config_message(&message) {
        let mut drafts =
            config::normalize_message(&message, &message_base, Raw::payload(&message), &origin)?;
        resolve_inner_payload(&mut drafts, with_message(message));
        return Ok(drafts);
    }
    // EventBridge → SNS: the inner event has its own id and is kept as it is, so it gets the
    // same event id as when EventBridge delivers it directly.
    if text(&message, "/detail-type").is_some()
        && text(&message, "/source").is_some()
        && message.get("detail").is_some()
    {
        let mut drafts = eventbridge::normalize(Raw::payload(&message))?;
        resolve_inner_payload(&mut drafts, message);
        return Ok(drafts);
    }
    Err(NormalizeError::unrecognized(
        origin.envelope,
        "its Message is neither a CloudWatch alarm, an AWS Config notification nor an EventBridge event",
    ))
}
