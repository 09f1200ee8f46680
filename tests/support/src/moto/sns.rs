//! SNS on moto, seen through SQS: a topic with a queue subscribed to it shows what SNS
//! delivered (moto delivers to SQS subscriptions; it sends no mail).

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value;

use super::sdk_error;

/// A topic and a queue, both named `name`, the queue subscribed to the topic; returns the
/// topic's ARN and the queue's URL.
pub async fn topic_with_queue(
    sns: &aws_sdk_sns::Client,
    sqs: &aws_sdk_sqs::Client,
    name: &str,
) -> Result<(String, String), String> {
    let topic = sns
        .create_topic()
        .name(name)
        .send()
        .await
        .map_err(|e| sdk_error(&format!("CreateTopic {name}"), e))?
        .topic_arn()
        .ok_or("CreateTopic returned no ARN")?
        .to_string();
    let queue = sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .map_err(|e| sdk_error(&format!("CreateQueue {name}"), e))?
        .queue_url()
        .ok_or("CreateQueue returned no URL")?
        .to_string();
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| sdk_error(&format!("GetQueueAttributes {queue}"), e))?
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .ok_or("GetQueueAttributes returned no QueueArn")?;
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(queue_arn)
        .send()
        .await
        .map_err(|e| sdk_error(&format!("Subscribe {queue} to {topic}"), e))?;
    Ok((topic, queue))
}

/// One SNS message as the subscribed queue received it.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivered {
    /// Empty when the message had none.
    pub subject: String,
    /// The message text (the whole body when it is not SNS's JSON envelope).
    pub message: String,
}

/// The messages waiting in `queue` (up to 10, waiting a second for them), taken off it.
pub async fn delivered(sqs: &aws_sdk_sqs::Client, queue: &str) -> Result<Vec<Delivered>, String> {
    let out = sqs
        .receive_message()
        .queue_url(queue)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .send()
        .await
        .map_err(|e| sdk_error(&format!("ReceiveMessage {queue}"), e))?;
    Ok(out
        .messages()
        .iter()
        .filter_map(|m| m.body())
        .map(|body| {
            let envelope: Value = serde_json::from_str(body).unwrap_or(Value::Null);
            Delivered {
                subject: envelope["Subject"].as_str().unwrap_or_default().to_string(),
                message: envelope["Message"]
                    .as_str()
                    .map_or_else(|| body.to_string(), str::to_string),
            }
        })
        .collect())
}
