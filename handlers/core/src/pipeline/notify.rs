//! Telling the right people, by severity (`policies/notifications.yaml`).
//!
//! CRITICAL and HIGH go to the cloud's topics (SNS, via [`TopicPublisher`]) and to Slack and
//! PagerDuty (HTTP, in their published formats); MEDIUM becomes an in-app notice under
//! `inbox/` in the state store (the laptop app reads it); INFO is kept under
//! `report-queue/` for the morning report. Webhook URLs and keys come from a
//! [`SecretSource`] (SSM SecureStrings on AWS), never from the environment or logs. A channel
//! that fails is recorded, and the notice is also put in the inbox so it is not lost.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use opendal::Operator;
use serde::{Deserialize, Serialize};

use super::audit::Outcome;
use crate::approvals::{Action, Decision};
use crate::remediate::{Mode, RemediationReport};
use crate::{Severity, UnifiedEvent};

const BUILT_IN: &str = include_str!("../../../../policies/notifications.yaml");
/// PagerDuty Events API v2.
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// The cloud's `critical` notification topic (SNS on AWS), whose e-mail and SMS
    /// subscribers are the on-call people. `sns_critical` is the older spelling.
    #[serde(alias = "sns_critical")]
    CriticalTopic,
    /// The `high` topic. `sns_high` is the older spelling.
    #[serde(alias = "sns_high")]
    HighTopic,
    Slack,
    Pagerduty,
    /// An in-app notice under `inbox/` in the state store.
    Inbox,
    /// Kept for the morning report under `report-queue/`.
    Report,
}

impl Channel {
    /// The spelling used in `policies/notifications.yaml` and audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::CriticalTopic => "critical_topic",
            Channel::HighTopic => "high_topic",
            Channel::Slack => "slack",
            Channel::Pagerduty => "pagerduty",
            Channel::Inbox => "inbox",
            Channel::Report => "report",
        }
    }
}

/// Which channels each severity goes to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationRouting {
    routes: BTreeMap<Severity, Vec<Channel>>,
}

impl NotificationRouting {
    pub fn built_in() -> &'static NotificationRouting {
        static ROUTING: std::sync::OnceLock<NotificationRouting> = std::sync::OnceLock::new();
        ROUTING.get_or_init(|| {
            // The file ships inside the binary and is checked by a unit test.
            serde_norway::from_str(BUILT_IN).unwrap_or(NotificationRouting {
                routes: BTreeMap::new(),
            })
        })
    }

    pub fn from_yaml(text: &str) -> Result<Self, serde_norway::Error> {
        serde_norway::from_str(text)
    }

    pub fn channels(&self, severity: Severity) -> &[Channel] {
        self.routes
            .get(&severity)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

/// Publishes to a notification topic (SNS on AWS).
#[async_trait]
pub trait TopicPublisher: Send + Sync {
    /// Returns the message id.
    async fn publish(
        &self,
        topic: &str,
        subject: &str,
        message: &str,
    ) -> Result<String, CloudCallError>;

    /// Publishes one notification; `subject` is its title as a topic subject allows. A cloud
    /// whose notices are structured records rather than e-mail text (a log line an alert
    /// policy filters on) reads the notification's fields; the others publish its text.
    async fn publish_notification(
        &self,
        topic: &str,
        subject: &str,
        notification: &Notification,
    ) -> Result<String, CloudCallError> {
        self.publish(topic, subject, &notification.text()).await
    }
}

/// Reads a secret (an SSM SecureString on AWS); `None` when it is not configured.
#[async_trait]
pub trait SecretSource: Send + Sync {
    async fn secret(&self, name: &str) -> Result<Option<String>, CloudCallError>;
}

/// A call to the cloud a channel relies on (the topic service, the secret store) failed.
/// It names the call, what it was about, and what the operator can check; never a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} on {target} failed: {message}; {remedy}")]
pub struct CloudCallError {
    /// The cloud's service and operation, e.g. `SNS Publish`.
    pub operation: String,
    /// The topic, secret name, … the call was about.
    pub target: String,
    /// The cloud's answer.
    pub message: String,
    /// What to check or change (permissions, the resource's existence).
    pub remedy: String,
}

/// Why one channel could not deliver; recorded as the channel's `detail`.
#[derive(Debug, thiserror::Error)]
enum DeliveryError {
    #[error(transparent)]
    Cloud(#[from] CloudCallError),
    /// A webhook (Slack, PagerDuty) refused or could not be reached; the URL is never shown.
    #[error("{0}")]
    Webhook(String),
    /// The state store (inbox, report queue) could not be written.
    #[error("{0}")]
    Store(String),
}

/// Where the channels deliver.
#[derive(Debug, Clone, Default)]
pub struct NotifyConfig {
    pub critical_topic: Option<String>,
    pub high_topic: Option<String>,
    /// Secret name of the Slack incoming-webhook URL.
    pub slack_webhook_secret: Option<String>,
    /// Secret name of the PagerDuty Events v2 routing key.
    pub pagerduty_key_secret: Option<String>,
    /// The PagerDuty endpoint ([`PAGERDUTY_EVENTS_URL`] unless testing).
    pub pagerduty_url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Sent,
    /// Dry run: would have been sent.
    WouldSend,
    /// The channel is not configured (no topic, no secret).
    NotConfigured,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::WouldSend => "would_send",
            DeliveryStatus::NotConfigured => "not_configured",
            DeliveryStatus::Failed => "failed",
        }
    }
}

/// One channel's result, for the audit record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationResult {
    pub channel: Channel,
    pub status: DeliveryStatus,
    /// Message id, object path, or the error (never a secret).
    pub detail: String,
}

/// The message, composed once and rendered per channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub event_id: String,
    pub severity: Severity,
    pub outcome: Outcome,
    pub title: String,
    /// What happened.
    pub happened: String,
    /// What was done, or why nothing was.
    pub done: String,
    /// How to approve the fix, or how to undo it.
    pub next: Vec<String>,
    pub resource_id: String,
    pub account_id: String,
    pub region: String,
    pub timestamp: chrono::DateTime<chrono::Utc>,
}

/// The `approvals add` command that would pre-approve `action` for exactly this resource.
pub fn approve_command(event: &UnifiedEvent, action: Action) -> String {
    format!(
        "escher-provision approvals add --action {action} --cloud {} --account {} --resource-type {} --resource '{}' --reason '...'",
        event.cloud_provider, event.account_id, event.resource.kind, event.resource.name
    )
}

impl Notification {
    pub fn compose(
        event: &UnifiedEvent,
        outcome: Outcome,
        action: Option<Action>,
        decision: Option<&Decision>,
        report: Option<&RemediationReport>,
    ) -> Notification {
        let resource = &event.resource;
        let happened = format!(
            "{} on {} {} ({}) in {} {} {}, reported by {} at {}.",
            event.event_type,
            resource.kind,
            resource.name,
            resource.id,
            event.cloud_provider,
            event.account_id,
            event.region,
            event.source,
            event.timestamp.to_rfc3339()
        );
        let mut next = Vec::new();
        let done = match (outcome, action) {
            (Outcome::ApprovalRequired, Some(action)) => {
                next.push(format!(
                    "To fix this kind of alert automatically: {}",
                    approve_command(event, action)
                ));
                let why = decision
                    .map(|d| d.explanation().to_string())
                    .unwrap_or_default();
                format!("Not fixed: {action} is not pre-approved for this resource.\n{why}")
                    .trim_end()
                    .to_string()
            }
            (Outcome::NotifyOnly, _) => {
                "No automatic fix exists for this kind of event; please review it.".into()
            }
            _ => match report {
                Some(report) => {
                    // Each fix words its own undo ("To undo …", "To reopen …").
                    if let Some(undo) = &report.undo {
                        next.push(undo.clone());
                    }
                    next.extend(report.next_steps.iter().cloned());
                    let verification = match &report.verification {
                        Some(v) if v.passed => {
                            format!(
                                " Checked afterwards: {} of {} checks passed.",
                                v.checks.len(),
                                v.checks.len()
                            )
                        }
                        Some(v) => format!(" Verification FAILED: {}.", v.failed_checks()),
                        None => String::new(),
                    };
                    format!("{}{verification}", report.summary)
                }
                None => format!("Outcome: {outcome}."),
            },
        };
        Notification {
            event_id: event.event_id.clone(),
            severity: event.severity,
            outcome,
            title: format!(
                "[{}] {} {}: {}",
                event.severity, event.event_type, outcome, resource.name
            ),
            happened,
            done,
            next,
            resource_id: resource.id.clone(),
            account_id: event.account_id.clone(),
            region: event.region.clone(),
            timestamp: event.timestamp,
        }
    }

    /// Plain text for e-mail/SMS topics.
    pub fn text(&self) -> String {
        let mut text = format!("{}\n\n{}\n\n{}", self.title, self.happened, self.done);
        for line in &self.next {
            text.push_str("\n\n");
            text.push_str(line);
        }
        text.push_str(&format!("\n\nEvent id: {}", self.event_id));
        text
    }

    /// A Slack incoming-webhook message (`text` fallback plus Block Kit blocks).
    pub fn slack(&self) -> serde_json::Value {
        let mut blocks = vec![
            serde_json::json!({"type": "header", "text": {"type": "plain_text", "text": truncate(&self.title, 150)}}),
            serde_json::json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&self.happened, 3000)}}),
            serde_json::json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&self.done, 3000)}}),
        ];
        for line in &self.next {
            blocks.push(serde_json::json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(line, 3000)}}));
        }
        blocks.push(serde_json::json!({"type": "context", "elements": [{"type": "mrkdwn", "text": format!("event `{}`", self.event_id)}]}));
        serde_json::json!({"text": self.title, "blocks": blocks})
    }

    /// A PagerDuty Events API v2 trigger; the event id is the dedup key, so a redelivery
    /// does not open a second incident.
    pub fn pagerduty(&self, routing_key: &str) -> serde_json::Value {
        let severity = match self.severity {
            Severity::Critical => "critical",
            Severity::High => "error",
            Severity::Medium => "warning",
            Severity::Info => "info",
        };
        serde_json::json!({
            "routing_key": routing_key,
            "event_action": "trigger",
            "dedup_key": self.event_id,
            "payload": {
                "summary": truncate(&self.title, 1024),
                "source": self.resource_id,
                "severity": severity,
                "timestamp": self.timestamp.to_rfc3339(),
                "group": self.account_id,
                "class": self.outcome.as_str(),
                "custom_details": {
                    "happened": self.happened,
                    "done": self.done,
                    "next": self.next,
                    "region": self.region,
                }
            }
        })
    }
}

/// Where INFO notices wait for the morning report.
pub const REPORT_QUEUE: &str = "report-queue/";

/// `report-queue/<day queued>/<HHMMSS.mmm>Z-<event id>.json`: filed by when it was queued
/// (not by the event's own time, which may be older), so the report reads only the days
/// since its previous run and the file name alone says whether a notice is past that
/// report's watermark.
pub fn report_queue_path(queued_at: chrono::DateTime<chrono::Utc>, event_id: &str) -> String {
    format!(
        "{REPORT_QUEUE}{}/{}Z-{event_id}.json",
        queued_at.format("%Y-%m-%d"),
        queued_at.format("%H%M%S%.3f")
    )
}

/// When the notice at `path` was queued, from its path; `None` for a path not written by
/// [`report_queue_path`].
pub fn report_queue_time(path: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let rest = path.strip_prefix(REPORT_QUEUE)?;
    let (day, name) = rest.split_once('/')?;
    let (time, _event) = name.split_once("Z-")?;
    let at = chrono::NaiveDateTime::parse_from_str(&format!("{day} {time}"), "%Y-%m-%d %H%M%S%.3f")
        .ok()?;
    Some(at.and_utc())
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Sends a notification to the channels its severity routes to.
#[derive(Clone)]
pub struct Notifier {
    pub routing: NotificationRouting,
    pub config: NotifyConfig,
    pub topics: Option<Arc<dyn TopicPublisher>>,
    pub secrets: Option<Arc<dyn SecretSource>>,
    pub state: Operator,
    /// Built on the first webhook post: building it loads the system's root certificates,
    /// which was a quarter of the function's cold start, and most events post nothing.
    http: Arc<OnceLock<reqwest::Client>>,
}

impl Notifier {
    pub fn new(state: Operator, config: NotifyConfig) -> Self {
        Notifier {
            routing: NotificationRouting::built_in().clone(),
            config,
            topics: None,
            secrets: None,
            state,
            http: Arc::default(),
        }
    }

    /// The HTTP client for Slack and PagerDuty, shared by the notifier's clones.
    pub fn http(&self) -> &reqwest::Client {
        self.http.get_or_init(reqwest::Client::new)
    }

    pub async fn send(&self, notification: &Notification, mode: Mode) -> Vec<NotificationResult> {
        // The channels do not depend on each other: a CRITICAL event's topic, Slack and
        // PagerDuty go out together, in one round trip rather than three.
        let mut results =
            futures::future::join_all(self.routing.channels(notification.severity).iter().map(
                |&channel| async move {
                    if mode == Mode::DryRun {
                        NotificationResult {
                            channel,
                            status: DeliveryStatus::WouldSend,
                            detail: "dry run".into(),
                        }
                    } else {
                        self.deliver(channel, notification).await
                    }
                },
            ))
            .await;
        let failed = results.iter().any(|r| r.status == DeliveryStatus::Failed);
        let in_inbox = results.iter().any(|r| r.channel == Channel::Inbox);
        if failed && !in_inbox {
            // A notice that could not go out must still reach someone.
            results.push(self.deliver(Channel::Inbox, notification).await);
        }
        results
    }

    async fn deliver(&self, channel: Channel, n: &Notification) -> NotificationResult {
        let outcome = match channel {
            Channel::CriticalTopic => self.topic(self.config.critical_topic.as_deref(), n).await,
            Channel::HighTopic => self.topic(self.config.high_topic.as_deref(), n).await,
            Channel::Slack => self.slack(n).await,
            Channel::Pagerduty => self.pagerduty(n).await,
            Channel::Inbox => {
                let path = format!(
                    "inbox/{}/{}.json",
                    n.timestamp.format("%Y-%m-%d"),
                    n.event_id
                );
                self.store(path, n).await
            }
            Channel::Report => {
                self.store(report_queue_path(chrono::Utc::now(), &n.event_id), n)
                    .await
            }
        };
        let (status, detail) = match outcome {
            Ok(Some(detail)) => (DeliveryStatus::Sent, detail),
            Ok(None) => (DeliveryStatus::NotConfigured, "not configured".to_string()),
            Err(e) => {
                tracing::warn!(?channel, error = %e, "notification failed");
                (DeliveryStatus::Failed, e.to_string())
            }
        };
        NotificationResult {
            channel,
            status,
            detail,
        }
    }

    async fn topic(
        &self,
        topic: Option<&str>,
        n: &Notification,
    ) -> Result<Option<String>, DeliveryError> {
        let (Some(topic), Some(topics)) = (topic, &self.topics) else {
            return Ok(None);
        };
        // SNS subjects: ASCII, at most 100 characters.
        let subject: String = truncate(&n.title, 100)
            .chars()
            .map(|c| {
                if c.is_ascii() && !c.is_control() {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        Ok(Some(topics.publish_notification(topic, &subject, n).await?))
    }

    async fn secret(&self, name: Option<&str>) -> Result<Option<String>, DeliveryError> {
        match (name, &self.secrets) {
            (Some(name), Some(secrets)) => Ok(secrets.secret(name).await?),
            _ => Ok(None),
        }
    }

    async fn post(
        &self,
        url: &str,
        body: &serde_json::Value,
    ) -> Result<reqwest::StatusCode, DeliveryError> {
        let response = self
            .http()
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .timeout(std::time::Duration::from_secs(10))
            .send()
            .await
            // The URL may hold a secret (Slack webhooks do): never print it.
            .map_err(|e| DeliveryError::Webhook(format!("request failed: {}", e.without_url())))?;
        let status = response.status();
        if status.is_success() {
            Ok(status)
        } else {
            Err(DeliveryError::Webhook(format!("answered HTTP {status}")))
        }
    }

    async fn slack(&self, n: &Notification) -> Result<Option<String>, DeliveryError> {
        let Some(url) = self
            .secret(self.config.slack_webhook_secret.as_deref())
            .await?
        else {
            return Ok(None);
        };
        self.post(&url, &n.slack())
            .await
            .map(|s| Some(format!("webhook answered {s}")))
    }

    async fn pagerduty(&self, n: &Notification) -> Result<Option<String>, DeliveryError> {
        let Some(key) = self
            .secret(self.config.pagerduty_key_secret.as_deref())
            .await?
        else {
            return Ok(None);
        };
        let url = self
            .config
            .pagerduty_url
            .as_deref()
            .unwrap_or(PAGERDUTY_EVENTS_URL);
        self.post(url, &n.pagerduty(&key))
            .await
            .map(|s| Some(format!("Events API answered {s}, dedup_key {}", n.event_id)))
    }

    async fn store(&self, path: String, n: &Notification) -> Result<Option<String>, DeliveryError> {
        let body = serde_json::to_vec_pretty(n)
            .map_err(|e| DeliveryError::Store(format!("cannot serialize the notice: {e}")))?;
        self.state
            .write(&path, body)
            .await
            .map_err(|e| DeliveryError::Store(format!("cannot write {path}: {e}")))?;
        Ok(Some(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_routing_follows_the_severity_ladder() {
        let routing =
            NotificationRouting::from_yaml(BUILT_IN).expect("policies/notifications.yaml");
        assert_eq!(
            routing.channels(Severity::Critical),
            [Channel::CriticalTopic, Channel::Slack, Channel::Pagerduty]
        );
        assert_eq!(
            routing.channels(Severity::High),
            [Channel::HighTopic, Channel::Slack]
        );
        assert_eq!(routing.channels(Severity::Medium), [Channel::Inbox]);
        assert_eq!(routing.channels(Severity::Info), [Channel::Report]);
    }

    /// Routing files and audit records written with the SNS-named channels still read.
    #[test]
    fn the_older_channel_spellings_are_still_read() {
        let old = NotificationRouting::from_yaml(
            "routes:\n  CRITICAL: [sns_critical, slack]\n  HIGH: [sns_high]\n",
        )
        .expect("old spelling");
        assert_eq!(
            old.channels(Severity::Critical),
            [Channel::CriticalTopic, Channel::Slack]
        );
        assert_eq!(old.channels(Severity::High), [Channel::HighTopic]);
        let result: NotificationResult = serde_json::from_str(
            r#"{"channel": "sns_critical", "status": "sent", "detail": "m-1"}"#,
        )
        .expect("an old audit record's notification");
        assert_eq!(result.channel, Channel::CriticalTopic);
    }

    /// Holds every caller at one barrier: a channel that waits there holds up the others
    /// unless all of them are sent at once.
    struct Rendezvous(Arc<tokio::sync::Barrier>);

    #[async_trait]
    impl TopicPublisher for Rendezvous {
        async fn publish(&self, _: &str, _: &str, _: &str) -> Result<String, CloudCallError> {
            self.0.wait().await;
            Ok("message-1".into())
        }
    }

    #[async_trait]
    impl SecretSource for Rendezvous {
        async fn secret(&self, name: &str) -> Result<Option<String>, CloudCallError> {
            self.0.wait().await;
            // Port 9 (discard) refuses connections here: the webhook posts fail at once.
            Ok(Some(match name {
                "slack-webhook" => "http://127.0.0.1:9/slack".into(),
                _ => "routing-key".into(),
            }))
        }
    }

    #[tokio::test]
    async fn a_critical_notice_goes_to_every_channel_at_once() {
        let barrier = Arc::new(tokio::sync::Barrier::new(3));
        let mut notifier = Notifier::new(
            crate::store::open("memory://").expect("memory"),
            NotifyConfig {
                critical_topic: Some("arn:aws:sns:eu-west-1:111111111111:critical".into()),
                slack_webhook_secret: Some("slack-webhook".into()),
                pagerduty_key_secret: Some("pagerduty-key".into()),
                pagerduty_url: Some("http://127.0.0.1:9/v2/enqueue".into()),
                ..NotifyConfig::default()
            },
        );
        notifier.topics = Some(Arc::new(Rendezvous(barrier.clone())));
        notifier.secrets = Some(Arc::new(Rendezvous(barrier)));
        let notification = Notification {
            event_id: "aws-00ff".into(),
            severity: Severity::Critical,
            outcome: Outcome::Remediated,
            title: "Public bucket made private".into(),
            happened: "s3 bucket was public".into(),
            done: "made private".into(),
            next: vec!["undo: …".into()],
            resource_id: "arn:aws:s3:::customer-exports".into(),
            account_id: "111111111111".into(),
            region: "eu-west-1".into(),
            timestamp: chrono::Utc::now(),
        };
        let results = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            notifier.send(&notification, Mode::Apply),
        )
        .await
        .expect("the channels waited for each other: they were sent one after another");
        let channels: Vec<Channel> = results.iter().map(|r| r.channel).collect();
        // In routing order, and the failed webhooks put the notice in the inbox as well.
        assert_eq!(
            channels,
            [
                Channel::CriticalTopic,
                Channel::Slack,
                Channel::Pagerduty,
                Channel::Inbox
            ]
        );
        let statuses: Vec<DeliveryStatus> = results.iter().map(|r| r.status).collect();
        assert_eq!(
            statuses,
            [
                DeliveryStatus::Sent,
                DeliveryStatus::Failed,
                DeliveryStatus::Failed,
                DeliveryStatus::Sent
            ],
            "{results:?}"
        );
    }

    #[test]
    fn names_are_the_serde_spellings() {
        for channel in [
            Channel::CriticalTopic,
            Channel::HighTopic,
            Channel::Slack,
            Channel::Pagerduty,
            Channel::Inbox,
            Channel::Report,
        ] {
            assert_eq!(
                serde_json::to_value(channel).expect("json"),
                channel.as_str()
            );
        }
        for status in [
            DeliveryStatus::Sent,
            DeliveryStatus::WouldSend,
            DeliveryStatus::NotConfigured,
            DeliveryStatus::Failed,
        ] {
            assert_eq!(serde_json::to_value(status).expect("json"), status.as_str());
        }
    }

    #[test]
    fn a_queued_notice_is_filed_by_the_time_it_was_queued() {
        let at: chrono::DateTime<chrono::Utc> = "2026-11-30T23:59:58.250Z".parse().expect("time");
        let path = report_queue_path(at, "aws-00ff");
        assert_eq!(path, "report-queue/2026-11-30/235958.250Z-aws-00ff.json");
        assert_eq!(report_queue_time(&path), Some(at));
        assert_eq!(
            report_queue_time("report-queue/2026-11-30/aws-00ff.json"),
            None
        );
        assert_eq!(
            report_queue_time("inbox/2026-11-30/235958.250Z-a.json"),
            None
        );
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary() {
        assert_eq!(truncate("ééééé", 3), "éé…");
        assert_eq!(truncate("short", 10), "short");
    }
}
