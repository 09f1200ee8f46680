//! Google Cloud plugged into the cloud-neutral pipeline (`escher_runtime::CloudBindings`):
//! the fixes and label reader ([`GcpCloud`]), the CRITICAL / HIGH notices
//! ([`LoggedNotices`]) and the secret store ([`SecretManagerSecrets`]), all on the service
//! account the Cloud Run service runs as.
//!
//! Notices: Google Cloud has no topic that e-mails its subscribers, as SNS does. Cloud Run
//! ships every line the service writes to stdout to Cloud Logging, reading JSON lines as
//! structured entries; each CRITICAL / HIGH notice is one such line with an `escher_notice`
//! field, and a log-based alert policy per severity (filtering on
//! `jsonPayload.escher_notice.severity`, created by `extend`) e-mails the user. The "topic"
//! of a notice is its severity's name.
//!
//! Stores: opendal's `gcs` service already asks the metadata server for the service
//! account's token when no key file is configured, so `gcs://` stores need no token source.

use std::io::Write;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use escher_core::pipeline::notify::{CloudCallError, Notification, TopicPublisher};
use escher_runtime::{CloudBindings, RemoteCallMeter};
use serde_json::{json, Value};

use crate::cloud::GcpCloud;
use crate::rest::GcpClient;
use crate::secrets::SecretManagerSecrets;

/// The topic names the service's notices go to: the severities themselves.
pub const CRITICAL_NOTICES: &str = "CRITICAL";
pub const HIGH_NOTICES: &str = "HIGH";

/// Where notice lines are written: the process's stdout, or a test's buffer.
pub type NoticeSink = Arc<Mutex<Box<dyn Write + Send>>>;

/// CRITICAL / HIGH notices as structured log lines (see the module's doc).
pub struct LoggedNotices {
    sink: NoticeSink,
}

impl LoggedNotices {
    /// Notices on the process's stdout, where Cloud Run collects them.
    pub fn stdout() -> Self {
        LoggedNotices::to(Arc::new(Mutex::new(Box::new(std::io::stdout()))))
    }

    pub fn to(sink: NoticeSink) -> Self {
        LoggedNotices { sink }
    }

    fn write(&self, line: &Value, topic: &str) -> Result<(), CloudCallError> {
        let mut text = line.to_string();
        text.push('\n');
        let mut sink = self.sink.lock().unwrap_or_else(|e| e.into_inner());
        // One write of the whole line, so it never interleaves with the service's logs.
        sink.write_all(text.as_bytes())
            .and_then(|()| sink.flush())
            .map_err(|e| CloudCallError {
                operation: "write the notice to stdout".into(),
                target: format!("the {topic} notice"),
                message: e.to_string(),
                remedy: "the notice is kept in the inbox; check the service's logs".into(),
            })
    }
}

/// Cloud Logging's severity for a notice (`HIGH` is no log severity; `ERROR` is its rank).
fn log_severity(topic: &str) -> &'static str {
    if topic.eq_ignore_ascii_case(CRITICAL_NOTICES) {
        "CRITICAL"
    } else {
        "ERROR"
    }
}

/// The notice's log entry: `severity` and `message` are the fields Cloud Logging reads
/// from a JSON line; `escher_notice` is what the alert policies filter on and e-mail.
fn notice_line(topic: &str, subject: &str, n: &Notification) -> Value {
    let mut summary = format!("{}\n\n{}", n.happened, n.done);
    for line in &n.next {
        summary.push_str("\n\n");
        summary.push_str(line);
    }
    json!({
        "severity": log_severity(topic),
        "message": subject,
        "escher_notice": {
            "severity": topic.to_ascii_uppercase(),
            "title": n.title,
            "summary": summary,
            "event_id": n.event_id,
            "resource": n.resource_id,
            "project": n.account_id,
            "outcome": n.outcome,
        }
    })
}

#[async_trait]
impl TopicPublisher for LoggedNotices {
    async fn publish(
        &self,
        topic: &str,
        subject: &str,
        message: &str,
    ) -> Result<String, CloudCallError> {
        // Only reached for text without a notification (none of the pipeline's notices).
        let line = json!({
            "severity": log_severity(topic),
            "message": subject,
            "escher_notice": {"severity": topic.to_ascii_uppercase(), "title": subject, "summary": message},
        });
        self.write(&line, topic)?;
        Ok(format!("escher_notice/{}", topic.to_ascii_uppercase()))
    }

    async fn publish_notification(
        &self,
        topic: &str,
        subject: &str,
        notification: &Notification,
    ) -> Result<String, CloudCallError> {
        self.write(&notice_line(topic, subject, notification), topic)?;
        Ok(format!(
            "escher_notice/{}/{}",
            topic.to_ascii_uppercase(),
            notification.event_id
        ))
    }
}

/// Everything Google Cloud plugs into the pipeline, on one client: notices to `notices`,
/// secrets from Secret Manager in `project`.
pub fn gcp_bindings(
    client: GcpClient,
    project: &str,
    notices: LoggedNotices,
    meter: Option<RemoteCallMeter>,
) -> CloudBindings {
    CloudBindings {
        cloud: Arc::new(GcpCloud::new(client.clone(), meter)),
        topics: Some(Arc::new(notices)),
        secrets: Some(Arc::new(SecretManagerSecrets::new(client, project))),
        store_tokens: None,
        redelivery: escher_core::pipeline::Redelivery::PerMessage,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use escher_core::pipeline::audit::Outcome;
    use escher_core::Severity;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("buffer").write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_notice_is_one_structured_log_line_the_alert_policy_can_filter_on() {
        let buffer = Buffer::default();
        let notices = LoggedNotices::to(Arc::new(Mutex::new(Box::new(buffer.clone()))));
        let notification = Notification {
            event_id: "evt-42".into(),
            severity: Severity::Critical,
            outcome: Outcome::Remediated,
            title: "Public bucket crm-exports made private".into(),
            happened: "crm-exports was readable by anyone.".into(),
            done: "allUsers removed; public access prevention enforced.".into(),
            next: vec!["Undo: escher-provision undo evt-42".into()],
            resource_id: "projects/_/buckets/crm-exports".into(),
            account_id: "shop-prod-4711".into(),
            region: "europe-west3".into(),
            timestamp: chrono::Utc::now(),
        };
        let id = notices
            .publish_notification(
                CRITICAL_NOTICES,
                "Public bucket crm-exports made private",
                &notification,
            )
            .await
            .expect("written");
        assert_eq!(id, "escher_notice/CRITICAL/evt-42");
        let written = String::from_utf8(buffer.0.lock().expect("buffer").clone()).expect("text");
        assert_eq!(written.matches('\n').count(), 1, "one line: {written}");
        let line: Value = serde_json::from_str(written.trim()).expect("JSON");
        assert_eq!(line["severity"], "CRITICAL");
        let notice = &line["escher_notice"];
        assert_eq!(notice["severity"], "CRITICAL");
        assert_eq!(notice["event_id"], "evt-42");
        assert_eq!(notice["resource"], "projects/_/buckets/crm-exports");
        assert_eq!(notice["title"], "Public bucket crm-exports made private");
        assert!(notice["summary"]
            .as_str()
            .expect("summary")
            .contains("Undo:"));
        notices
            .publish_notification(HIGH_NOTICES, "s", &notification)
            .await
            .expect("written");
        let written = String::from_utf8(buffer.0.lock().expect("buffer").clone()).expect("text");
        let high: Value =
            serde_json::from_str(written.lines().nth(1).expect("a second line")).expect("JSON");
        assert_eq!(high["severity"], "ERROR", "Cloud Logging has no HIGH");
        assert_eq!(high["escher_notice"]["severity"], "HIGH");
    }
}
