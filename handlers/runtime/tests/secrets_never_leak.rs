//! The promise to users: no secret ever appears in a log line, an audit record, a report, an
//! inbox notice or an error message.
//!
//! A function is built the way every cloud builds it ([`build_pipeline`]) and fed alerts of
//! every severity, so every channel (critical and high topics, Slack, PagerDuty, inbox,
//! report queue) delivers, through a Slack webhook and PagerDuty endpoint that answer 200,
//! answer 500, refuse the connection and hang; with a secret store that is down, a secret
//! that is not a URL, topics that refuse, a state store out of reach, fixes that are denied
//! or throttled by the cloud, a redelivery, and the nightly scan's report and summary. The
//! secrets are new each run, so finding one anywhere can only mean it leaked. Everything a
//! person or a log service could see is gathered and searched: every log line (JSON, as the
//! functions log, at TRACE), every object in the three stores, the incident memory, every
//! error, every channel's result, the rendered report, every topic message and every
//! outbound webhook body except PagerDuty's, which must carry its routing key.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use escher_core::approvals::{Action, Approval, ApprovalStore, Change, Conditions, Scope};
use escher_core::fixes::FixRegistry;
use escher_core::pipeline::audit::Outcome;
use escher_core::pipeline::notify::{
    Channel, CloudCallError, DeliveryStatus, Notification, NotificationResult, Notifier,
    NotifyConfig, SecretSource, TopicPublisher,
};
use escher_core::pipeline::{CloudOperations, Pipeline};
use escher_core::remediate::{
    FixDescription, Mode, Remediation, RemediationError, RemediationReport, RemediationRequest,
    RemediationStatus, Verification, VerificationCheck,
};
use escher_core::scan::{Finding, FindingDraft, ReportSettings, ScanCheck, ScanContext, ScanError};
use escher_core::{CloudProvider, EventType, Resource, Severity, UnifiedEvent};
use escher_runtime::{
    build_pipeline, CloudBindings, HandlerConfig, RemoteCallMeter, PAGERDUTY_KEY_SECRET,
    SLACK_WEBHOOK_SECRET,
};
use escher_scan::{ReportStore, ScanRun};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing_subscriber::util::SubscriberInitExt;

const PUBLIC_BUCKET: &str = include_str!(
    "../../../tests/fixtures/aws/cloudtrail-eventbridge-putbucketacl-allusers.expected.json"
);
const SECRETS_PREFIX: &str = "/escher/prod/";
const AWS_KEY_ID_SECRET: &str = "aws-access-key-id";
const AWS_SECRET_KEY_SECRET: &str = "aws-secret-access-key";
const AZURE_CLIENT_SECRET: &str = "azure-client-secret";
const GCP_KEY_SECRET: &str = "gcp-service-account-key";
const CRITICAL_TOPIC: &str = "arn:aws:sns:eu-west-1:210987654321:escher-critical";
const HIGH_TOPIC: &str = "arn:aws:sns:eu-west-1:210987654321:escher-high";

const UPPER_DIGITS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const HEX: &[u8] = b"0123456789abcdef";

/// `n` characters of `alphabet`, from the process's random hash keys (new keys per call).
/// Alphanumeric only, so a secret reads the same in JSON, Debug and URL encodings.
fn random(alphabet: &[u8], n: usize) -> String {
    (0..n)
        .map(|i| {
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_usize(i);
            char::from(alphabet[(hasher.finish() % alphabet.len() as u64) as usize])
        })
        .collect()
}

/// One run's secrets, shaped like the real ones.
struct Secrets {
    /// `/services/T…/B…/<24 chars>`: the secret part of a Slack incoming-webhook URL.
    slack_path: String,
    slack_token: String,
    pagerduty_key: String,
    aws_key_id: String,
    aws_secret_key: String,
    azure_client_secret: String,
    gcp_private_key: String,
    /// The random body of the GCP key (its armour lines are the same in every key).
    gcp_key_body: String,
}

impl Secrets {
    fn new() -> Self {
        let slack_token = random(ALNUM, 24);
        let gcp_key_body = format!("MIIEvQIBADANBgkqhkiG9w0BAQEFAASC{}", random(ALNUM, 64));
        Secrets {
            slack_path: format!(
                "/services/T0{}/B0{}/{slack_token}",
                random(UPPER_DIGITS, 8),
                random(UPPER_DIGITS, 8)
            ),
            slack_token,
            pagerduty_key: random(HEX, 32),
            aws_key_id: format!("AKIA{}", random(UPPER_DIGITS, 16)),
            aws_secret_key: random(ALNUM, 40),
            azure_client_secret: format!("{}8Q~{}", random(ALNUM, 3), random(ALNUM, 33)),
            gcp_private_key: format!(
                "-----BEGIN PRIVATE KEY-----\n{gcp_key_body}\n{}\n-----END PRIVATE KEY-----\n",
                random(ALNUM, 64)
            ),
            gcp_key_body,
        }
    }

    /// The Slack webhook URL as stored, for a receiver at `base` (`https://hooks.slack.com`
    /// in production).
    fn slack_url(&self, base: &str) -> String {
        format!("{base}{}", self.slack_path)
    }

    /// What must never be seen: each secret whole, and distinctive parts of it (a log line
    /// that cut or re-encoded a secret still leaks its tail).
    fn needles(&self) -> Vec<(&'static str, String)> {
        let tail = |s: &str| s[s.len() - 16..].to_string();
        vec![
            ("Slack webhook path", self.slack_path.clone()),
            ("Slack webhook token", self.slack_token.clone()),
            (
                "Slack webhook URL, last 16",
                tail(&self.slack_url("https://hooks.slack.com")),
            ),
            ("PagerDuty routing key", self.pagerduty_key.clone()),
            ("PagerDuty routing key, last 16", tail(&self.pagerduty_key)),
            ("AWS access key id", self.aws_key_id.clone()),
            ("AWS access key id, last 16", tail(&self.aws_key_id)),
            ("AWS secret access key", self.aws_secret_key.clone()),
            ("AWS secret access key, last 16", tail(&self.aws_secret_key)),
            ("Azure client secret", self.azure_client_secret.clone()),
            (
                "Azure client secret, last 16",
                tail(&self.azure_client_secret),
            ),
            ("GCP private key body", self.gcp_key_body.clone()),
            ("GCP private key, last 16", tail(self.gcp_key_body.as_str())),
        ]
    }
}

/// The JSON log lines of everything the test runs, as a function writes them.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("logs").extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

impl Logs {
    /// Captures every event and span field down to TRACE on this thread (the tests run on
    /// one thread, so every task of the pipeline logs here), in the functions' JSON format.
    fn capture(&self) -> impl Drop {
        tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing_subscriber::filter::LevelFilter::TRACE)
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(self.clone())
            .finish()
            .set_default()
    }

    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().expect("logs"))
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// Everything a person, a log service or a chat could see, with where it came from.
#[derive(Default)]
struct Evidence {
    texts: Vec<(String, String)>,
    objects: usize,
    errors: usize,
    results: Vec<NotificationResult>,
    outbound: usize,
}

impl Evidence {
    fn add(&mut self, place: impl Into<String>, text: impl Into<String>) {
        self.texts.push((place.into(), text.into()));
    }

    fn error(&mut self, place: &str, error: &(impl std::fmt::Display + std::fmt::Debug)) {
        self.errors += 1;
        self.add(format!("{place} (message)"), error.to_string());
        self.add(format!("{place} (debug)"), format!("{error:?}"));
    }

    fn results(&mut self, place: &str, results: &[NotificationResult]) {
        self.add(format!("{place}: channel results"), format!("{results:?}"));
        self.results.extend_from_slice(results);
    }

    /// Every object under every path of `store`, read back as text.
    async fn store(&mut self, name: &str, store: &opendal::Operator) {
        let entries = store
            .list_with("/")
            .recursive(true)
            .await
            .unwrap_or_else(|e| panic!("cannot list the {name} store: {e}"));
        for entry in entries.iter().filter(|e| e.metadata().is_file()) {
            let body = store
                .read(entry.path())
                .await
                .unwrap_or_else(|e| panic!("cannot read {name}:{}: {e}", entry.path()));
            self.objects += 1;
            self.add(
                format!("{name} store: {}", entry.path()),
                String::from_utf8_lossy(&body.to_vec()).into_owned(),
            );
        }
    }

    /// Each place a secret was found, with the text around it.
    fn leaks(&self, secrets: &Secrets) -> Vec<String> {
        let mut leaks = Vec::new();
        for (what, needle) in secrets.needles() {
            for (place, text) in &self.texts {
                if let Some(at) = text.find(&needle) {
                    let around: String = text[..at]
                        .chars()
                        .rev()
                        .take(80)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .chain(text[at..].chars().take(needle.len() + 40))
                        .collect();
                    leaks.push(format!("{what} in {place}: …{around}…"));
                }
            }
        }
        leaks
    }
}

/// The cloud's secret store as a function reads it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Vault {
    /// Serves every secret; the webhooks point at the base URL given.
    Serves,
    /// The Slack secret holds the host and path but no scheme (a paste that lost `https://`).
    SlackIsNotAUrl,
    /// The secret store refuses every read.
    Down,
}

struct TestSecretSource {
    secrets: Arc<Secrets>,
    vault: Vault,
    webhook_base: String,
}

#[async_trait]
impl SecretSource for TestSecretSource {
    async fn secret(&self, name: &str) -> Result<Option<String>, CloudCallError> {
        if self.vault == Vault::Down {
            return Err(CloudCallError {
                operation: "SSM GetParameter".into(),
                target: name.into(),
                message: "AccessDeniedException: User: arn:aws:sts::210987654321:assumed-role/escher-alert/escher-alert is not authorized to perform: ssm:GetParameter".into(),
                remedy: "check that the function's role may read the parameter and decrypt it with its KMS key".into(),
            });
        }
        let Some(name) = name.strip_prefix(SECRETS_PREFIX) else {
            return Ok(None);
        };
        let s = &self.secrets;
        Ok(Some(match name {
            SLACK_WEBHOOK_SECRET if self.vault == Vault::SlackIsNotAUrl => {
                format!("hooks.slack.com{}", s.slack_path)
            }
            SLACK_WEBHOOK_SECRET => s.slack_url(&self.webhook_base),
            PAGERDUTY_KEY_SECRET => s.pagerduty_key.clone(),
            AWS_KEY_ID_SECRET => s.aws_key_id.clone(),
            AWS_SECRET_KEY_SECRET => s.aws_secret_key.clone(),
            AZURE_CLIENT_SECRET => s.azure_client_secret.clone(),
            GCP_KEY_SECRET => s.gcp_private_key.clone(),
            _ => return Ok(None),
        }))
    }
}

/// The notification topics: keep what they were given, or refuse it.
#[derive(Default)]
struct Topics {
    refuse: bool,
    published: Mutex<Vec<String>>,
}

#[async_trait]
impl TopicPublisher for Topics {
    async fn publish(
        &self,
        topic: &str,
        subject: &str,
        message: &str,
    ) -> Result<String, CloudCallError> {
        if self.refuse {
            return Err(CloudCallError {
                operation: "SNS Publish".into(),
                target: topic.into(),
                message:
                    "AuthorizationError: the topic's policy does not allow this role to publish"
                        .into(),
                remedy: "add sns:Publish for the function's role to the topic policy".into(),
            });
        }
        let mut published = self.published.lock().expect("topics");
        published.push(format!("{topic}\n{subject}\n{message}"));
        Ok(format!("message-{}", published.len()))
    }
}

/// How the webhook endpoints answer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Answer {
    Ok,
    /// 500, its body repeating the request, as some gateways' error pages do: whatever the
    /// notifier makes of a failed answer must not carry the request's secrets along.
    ServerError,
    /// Reads the request and never answers.
    Hangs,
}

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Received {
    path: String,
    body: String,
}

/// A Slack, PagerDuty and cloud API stand-in on 127.0.0.1. The cloud API (`/cloud/…`)
/// denies buckets named `denied-…`, throttles `throttled-…` and accepts the rest.
#[derive(Clone)]
struct Receiver {
    base: String,
    answer: Arc<Mutex<Answer>>,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a local port for the receiver");
        let receiver = Receiver {
            base: format!("http://{}", listener.local_addr().expect("address")),
            answer: Arc::new(Mutex::new(Answer::Ok)),
            received: Arc::default(),
        };
        let serving = receiver.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serving.clone().serve(socket));
            }
        });
        receiver
    }

    fn answer(&self, answer: Answer) {
        *self.answer.lock().expect("answer") = answer;
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().expect("received").clone()
    }

    async fn serve(self, mut socket: tokio::net::TcpStream) {
        let mut request = Vec::new();
        let mut buffer = [0u8; 8192];
        let (head, body_start) = loop {
            let Ok(n) = socket.read(&mut buffer).await else {
                return;
            };
            if n == 0 {
                return;
            }
            request.extend_from_slice(&buffer[..n]);
            if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                break (
                    String::from_utf8_lossy(&request[..end]).into_owned(),
                    end + 4,
                );
            }
        };
        let length: usize = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .unwrap_or(0);
        while request.len() < body_start + length {
            match socket.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => request.extend_from_slice(&buffer[..n]),
            }
        }
        let path = head
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string();
        let body = String::from_utf8_lossy(&request[body_start..]).into_owned();
        self.received.lock().expect("received").push(Received {
            path: path.clone(),
            body: body.clone(),
        });
        let answer = *self.answer.lock().expect("answer");
        let (status, reply) = if path.starts_with("/cloud/") {
            if body.contains("denied-") {
                (
                    "403 Forbidden",
                    "<Error><Code>AccessDenied</Code></Error>".to_string(),
                )
            } else if body.contains("throttled-") {
                (
                    "503 Slow Down",
                    "<Error><Code>SlowDown</Code></Error>".to_string(),
                )
            } else {
                ("200 OK", String::new())
            }
        } else {
            match answer {
                Answer::Ok => ("200 OK", "ok".to_string()),
                Answer::ServerError => (
                    "500 Internal Server Error",
                    format!("upstream failed for POST {path}: {body}"),
                ),
                Answer::Hangs => {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    return;
                }
            }
        };
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
            reply.len()
        );
        let _ = socket.write_all(response.as_bytes()).await;
    }
}

/// A base URL where nothing listens: connections are refused.
async fn closed_port() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a local port");
    let address = listener.local_addr().expect("address");
    drop(listener);
    format!("http://{address}")
}

/// The cloud's fix for a public bucket: it reads its credentials from the secret store
/// (as a cloud's SDK adapter does) and calls the cloud's API with them; the cloud's answer,
/// as the HTTP client words it, is the fix's error.
struct CloudApiFix {
    secrets: Arc<dyn SecretSource>,
    api: String,
    http: reqwest::Client,
}

#[async_trait]
impl Remediation for CloudApiFix {
    fn description(&self) -> &'static FixDescription {
        &FixDescription {
            action: Action::MakeBucketPrivate,
            resource_types: &["s3_bucket"],
            permissions: &[],
        }
    }

    async fn remediate(
        &self,
        request: &RemediationRequest<'_>,
    ) -> Result<RemediationReport, RemediationError> {
        let bucket = &request.event.resource.name;
        let credential = |name: &str| {
            let name = format!("{SECRETS_PREFIX}{name}");
            async move {
                self.secrets
                    .secret(&name)
                    .await
                    .ok()
                    .flatten()
                    .unwrap_or_default()
            }
        };
        let key_id = credential(AWS_KEY_ID_SECRET).await;
        let secret_key = credential(AWS_SECRET_KEY_SECRET).await;
        let answer = self
            .http
            .put(format!("{}/cloud/PutPublicAccessBlock", self.api))
            .header(
                "authorization",
                format!("AWS4-HMAC-SHA256 Credential={key_id}/20240507/eu-west-1/s3/aws4_request, Signature={secret_key}"),
            )
            .body(format!("{{\"bucket\": \"{bucket}\"}}"))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status);
        if let Err(e) = answer {
            let transient = e.status().is_some_and(|s| s.is_server_error());
            return Err(RemediationError::of_call(
                transient,
                "PutPublicAccessBlock",
                bucket.clone(),
                e.to_string(),
                vec![],
            ));
        }
        Ok(RemediationReport::new(
            request,
            RemediationStatus::Remediated,
            format!("blocked public access on {bucket}"),
        )
        .with_verification(Verification::from_checks(vec![VerificationCheck::new(
            "block_public_acls",
            "true",
            "true",
            true,
        )]))
        .with_undo(format!(
            "To undo: turn off the public access block on {bucket}"
        )))
    }

    async fn verify(
        &self,
        _request: &RemediationRequest<'_>,
    ) -> Result<Verification, RemediationError> {
        Ok(Verification::from_checks(vec![]))
    }
}

struct TestCloud {
    fixes: FixRegistry,
}

#[async_trait]
impl CloudOperations for TestCloud {
    fn fixes(&self) -> &FixRegistry {
        &self.fixes
    }
    async fn resource_tags(
        &self,
        _event: &UnifiedEvent,
    ) -> Result<Option<BTreeMap<String, String>>, RemediationError> {
        Ok(None)
    }
}

/// The night's check: one public bucket, whose fix is pre-approved.
struct PublicBuckets;

#[async_trait]
impl ScanCheck for PublicBuckets {
    fn id(&self) -> &'static str {
        "s3_public_bucket"
    }
    fn cloud(&self) -> CloudProvider {
        CloudProvider::Aws
    }
    async fn run(&self, region: &str, scan: &ScanContext) -> Result<Vec<Finding>, ScanError> {
        Ok(vec![FindingDraft {
            check: "s3_public_bucket",
            cloud: CloudProvider::Aws,
            account_id: "210987654321".into(),
            region: region.into(),
            event_type: EventType::BucketPublic,
            resource: Resource {
                kind: "s3_bucket".into(),
                id: "arn:aws:s3:::nightly-exports".into(),
                name: "nightly-exports".into(),
                ..Resource::default()
            },
            title: "bucket nightly-exports is public".into(),
            action: Some(Action::MakeBucketPrivate),
            manual_command: None,
            monthly_saving_usd: None,
            questions: vec![],
        }
        .finish(scan)])
    }
}

/// The three stores of one deployment, in a temporary folder.
struct Stores {
    _dir: tempfile::TempDir,
    state: String,
    audit: String,
    approvals: String,
}

impl Stores {
    async fn new() -> Stores {
        let dir = tempfile::tempdir().expect("temp dir");
        let uri = |name: &str| format!("fs://{}", dir.path().join(name).display());
        let stores = Stores {
            state: uri("state"),
            audit: uri("audit"),
            approvals: uri("approvals"),
            _dir: dir,
        };
        ApprovalStore::open(&stores.approvals)
            .expect("approvals store")
            .apply(
                &Change::Init {
                    approvals: vec![Approval {
                        id: "apr-public-buckets".into(),
                        action: Action::MakeBucketPrivate,
                        scope: Scope::default(),
                        conditions: Conditions::default(),
                        approved_by: "ana".into(),
                        approved_at: Utc::now() - chrono::Duration::minutes(5),
                        expires_at: None,
                        reason: "public buckets are never intended".into(),
                        revoked_at: None,
                        revoked_by: None,
                        revoke_reason: None,
                    }],
                },
                "ana",
            )
            .await
            .expect("approve");
        stores
    }

    fn operator(uri: &str) -> opendal::Operator {
        escher_core::store::open(uri).expect("store")
    }
}

/// How one function of the deployment meets the outside world.
struct Path {
    name: &'static str,
    answer: Answer,
    /// The webhooks' endpoints refuse connections.
    refused: bool,
    vault: Vault,
    topics_refuse: bool,
}

/// The function as every cloud builds it, its webhooks at `webhook_base`.
fn function(
    stores: &Stores,
    secrets: &Arc<Secrets>,
    receiver: &Receiver,
    webhook_base: &str,
    vault: Vault,
    topics: Arc<Topics>,
) -> Pipeline {
    let env = BTreeMap::from([
        ("ESCHER_STATE_URI", stores.state.clone()),
        ("ESCHER_AUDIT_URI", stores.audit.clone()),
        ("ESCHER_APPROVALS_URI", stores.approvals.clone()),
        ("ESCHER_SECRETS_PREFIX", SECRETS_PREFIX.to_string()),
        ("ESCHER_CRITICAL_TOPIC", CRITICAL_TOPIC.to_string()),
        ("ESCHER_HIGH_TOPIC", HIGH_TOPIC.to_string()),
        ("ESCHER_PAGERDUTY_URL", format!("{webhook_base}/v2/enqueue")),
    ]);
    let config =
        HandlerConfig::from_lookup(|name| env.get(name).cloned()).expect("the function's settings");
    let source: Arc<dyn SecretSource> = Arc::new(TestSecretSource {
        secrets: secrets.clone(),
        vault,
        webhook_base: webhook_base.to_string(),
    });
    let fix = CloudApiFix {
        secrets: source.clone(),
        api: receiver.base.clone(),
        http: reqwest::Client::new(),
    };
    let bindings = CloudBindings {
        cloud: Arc::new(TestCloud {
            fixes: FixRegistry::new().with(Arc::new(fix)).expect("one fix"),
        }),
        topics: Some(topics),
        secrets: Some(source),
        store_tokens: None,
        redelivery: escher_core::pipeline::Redelivery::PerDelivery,
    };
    build_pipeline(&config, bindings, &RemoteCallMeter::new()).expect("pipeline")
}

/// The public-bucket alert as a new event of `severity` on bucket `bucket`.
fn alert(template: &UnifiedEvent, bucket: &str, severity: Severity) -> UnifiedEvent {
    let mut event = template.clone();
    event.event_id = format!("aws-{}", random(HEX, 32));
    event.severity = severity;
    event.resource.name = bucket.to_string();
    event.resource.id = format!("arn:aws:s3:::{bucket}");
    event
}

#[tokio::test]
async fn no_channel_store_log_or_error_shows_a_secret_in_any_path() {
    let logs = Logs::default();
    let _capture = logs.capture();
    let secrets = Arc::new(Secrets::new());
    let stores = Stores::new().await;
    let receiver = Receiver::start().await;
    let refused = closed_port().await;
    let template: UnifiedEvent = serde_json::from_value(
        serde_json::from_str::<serde_json::Value>(PUBLIC_BUCKET).expect("fixture")["events"][0]
            .clone(),
    )
    .expect("a normalized event");
    let mut evidence = Evidence::default();
    let mut topics_published = Vec::new();

    let paths = [
        Path {
            name: "webhooks answer 200",
            answer: Answer::Ok,
            refused: false,
            vault: Vault::Serves,
            topics_refuse: false,
        },
        Path {
            name: "webhooks answer 500",
            answer: Answer::ServerError,
            refused: false,
            vault: Vault::Serves,
            topics_refuse: false,
        },
        Path {
            name: "webhooks refuse the connection",
            answer: Answer::Ok,
            refused: true,
            vault: Vault::Serves,
            topics_refuse: false,
        },
        Path {
            name: "webhooks hang",
            answer: Answer::Hangs,
            refused: false,
            vault: Vault::Serves,
            topics_refuse: false,
        },
        Path {
            name: "secret store and topics down",
            answer: Answer::Ok,
            refused: false,
            vault: Vault::Down,
            topics_refuse: true,
        },
        Path {
            name: "Slack secret is not a URL",
            answer: Answer::Ok,
            refused: false,
            vault: Vault::SlackIsNotAUrl,
            topics_refuse: false,
        },
    ];
    for path in &paths {
        receiver.answer(path.answer);
        let base = if path.refused {
            refused.as_str()
        } else {
            receiver.base.as_str()
        };
        let topics = Arc::new(Topics {
            refuse: path.topics_refuse,
            ..Topics::default()
        });
        let pipeline = function(
            &stores,
            &secrets,
            &receiver,
            base,
            path.vault,
            topics.clone(),
        );
        // A hanging webhook costs the notifier's whole timeout: one CRITICAL event (Slack
        // and PagerDuty at once) is enough there.
        let severities: &[Severity] = if path.answer == Answer::Hangs {
            &[Severity::Critical]
        } else {
            &[
                Severity::Critical,
                Severity::High,
                Severity::Medium,
                Severity::Info,
            ]
        };
        for &severity in severities {
            let event = alert(&template, &format!("exports-{severity}"), severity);
            let place = format!("{} / {severity}", path.name);
            let result = pipeline
                .handle_finding(event)
                .await
                .unwrap_or_else(|e| panic!("{place}: {e}"));
            evidence.results(&place, &result.record.notifications);
            evidence.add(format!("{place}: event result"), format!("{result:?}"));
        }
        topics_published.extend(topics.published.lock().expect("topics").drain(..));
    }

    // Fixes the cloud denies or throttles, a redelivery, and a notice the state store
    // cannot take, with every webhook answering.
    receiver.answer(Answer::Ok);
    let topics = Arc::new(Topics::default());
    let pipeline = function(
        &stores,
        &secrets,
        &receiver,
        &receiver.base,
        Vault::Serves,
        topics.clone(),
    );
    let denied = alert(&template, "denied-exports", Severity::Critical);
    let result = pipeline
        .handle_finding(denied.clone())
        .await
        .expect("a denied fix is a final failure, audited");
    assert_eq!(result.outcome, Outcome::Failed, "{:#?}", result.steps);
    evidence.results("denied fix", &result.record.notifications);
    evidence.add("denied fix: event result", format!("{result:?}"));
    let again = pipeline
        .handle_finding(denied)
        .await
        .expect("a redelivery is a duplicate");
    assert_eq!(again.outcome, Outcome::Duplicate);
    evidence.add("redelivery: event result", format!("{again:?}"));
    let throttled = pipeline
        .handle_finding(alert(&template, "throttled-exports", Severity::High))
        .await
        .expect_err("a throttled fix is retried");
    evidence.error("throttled fix", &throttled);

    let unreachable_state = escher_core::store::open(&format!(
        "s3://escher/state?region=eu-west-1&endpoint={refused}"
    ))
    .expect("store");
    let mut notifier = Notifier::new(
        unreachable_state,
        NotifyConfig {
            slack_webhook_secret: Some(format!("{SECRETS_PREFIX}{SLACK_WEBHOOK_SECRET}")),
            pagerduty_key_secret: Some(format!("{SECRETS_PREFIX}{PAGERDUTY_KEY_SECRET}")),
            ..NotifyConfig::default()
        },
    );
    notifier.secrets = pipeline.notifier.secrets.clone();
    for severity in [Severity::Medium, Severity::Info] {
        let event = alert(&template, "exports-unstored", severity);
        let notice = Notification::compose(&event, Outcome::NotifyOnly, None, None, None);
        let results = notifier.send(&notice, Mode::Apply).await;
        evidence.results(&format!("state store out of reach / {severity}"), &results);
    }

    // The night: a pre-approved finding fixed, the critical alerts and INFO notices of the
    // day in the report, the summary sent on the alert channels.
    let report_store = ReportStore::new(Stores::operator(&stores.state), stores.state.clone());
    let night = ScanRun {
        checks: vec![Arc::new(PublicBuckets)],
        regions: vec!["eu-west-1".into()],
        settings: ReportSettings::built_in(),
        store: &report_store,
        pipeline: Some(&pipeline),
        audit: Some(&pipeline.audit),
    }
    .run()
    .await
    .expect("the nightly scan");
    assert_eq!(night.report.handled.len(), 1, "{:?}", night.report.handled);
    assert!(
        !night.notified.is_empty(),
        "the night's summary went out: {:?}",
        night.report.summary
    );
    evidence.results("morning report summary", &night.notified);
    evidence.add("morning report", format!("{:?}", night.report));
    evidence.add(
        "morning report (markdown)",
        escher_scan::render_markdown(&night.report).expect("markdown"),
    );
    evidence.add(
        "morning report (html)",
        escher_scan::render_html(&night.report).expect("html"),
    );
    topics_published.extend(topics.published.lock().expect("topics").drain(..));

    // What the channels carried out of the function.
    let received = receiver.received();
    let pagerduty: Vec<&Received> = received
        .iter()
        .filter(|r| r.path == "/v2/enqueue")
        .collect();
    let slack: Vec<&Received> = received
        .iter()
        .filter(|r| r.path == secrets.slack_path)
        .collect();
    // The secrets really were used: otherwise finding none proves nothing.
    assert!(
        !pagerduty.is_empty()
            && pagerduty
                .iter()
                .all(|r| r.body.contains(&secrets.pagerduty_key)),
        "PagerDuty was sent its routing key: {pagerduty:?}"
    );
    assert!(!slack.is_empty(), "Slack was posted at its secret URL");
    assert!(
        received
            .iter()
            .filter(|r| r.path.starts_with("/cloud/"))
            .count()
            > 0,
        "the fix called its cloud"
    );
    for request in received.iter().filter(|r| r.path != "/v2/enqueue") {
        evidence.outbound += 1;
        evidence.add(format!("request body to {}", request.path), &request.body);
    }
    for message in topics_published {
        evidence.outbound += 1;
        evidence.add("topic message", message);
    }

    // Every path leaves results on every channel, sent and failed.
    let seen: BTreeSet<(Channel, &str)> = evidence
        .results
        .iter()
        .map(|r| (r.channel, r.status.as_str()))
        .collect();
    for channel in [
        Channel::CriticalTopic,
        Channel::HighTopic,
        Channel::Slack,
        Channel::Pagerduty,
        Channel::Inbox,
        Channel::Report,
    ] {
        for status in [DeliveryStatus::Sent, DeliveryStatus::Failed] {
            assert!(
                seen.contains(&(channel, status.as_str())),
                "{} was never {}: {seen:?}",
                channel.as_str(),
                status.as_str()
            );
        }
    }

    for (name, uri) in [
        ("state", &stores.state),
        ("audit", &stores.audit),
        ("approvals", &stores.approvals),
    ] {
        evidence.store(name, &Stores::operator(uri)).await;
    }
    // Snapshots of the memory are compressed index files: read what they hold.
    let incidents = pipeline
        .memory
        .view()
        .await
        .expect("memory")
        .all()
        .expect("incidents");
    assert!(!incidents.is_empty());
    evidence.add("incident memory", format!("{incidents:?}"));

    drop(_capture);
    let lines = logs.lines();
    assert!(
        lines.iter().any(|l| l.contains("notification failed")),
        "the failed channels were logged: {lines:#?}"
    );
    assert_nothing_leaked(evidence, &lines, &secrets);
}

/// Credentials pasted into a store URI (in the query, or as `user:password@`) are refused,
/// and neither the refusal nor anything after it repeats them.
#[tokio::test]
async fn credentials_pasted_into_a_store_uri_are_never_repeated() {
    let logs = Logs::default();
    let _capture = logs.capture();
    let secrets = Secrets::new();
    let stores = Stores::new().await;
    let refused = closed_port().await;
    let template: UnifiedEvent = serde_json::from_value(
        serde_json::from_str::<serde_json::Value>(PUBLIC_BUCKET).expect("fixture")["events"][0]
            .clone(),
    )
    .expect("a normalized event");
    let mut evidence = Evidence::default();
    let audit_uris = [
        format!(
            "s3://escher/audit?region=eu-west-1&aws_access_key_id={}&aws_secret_access_key={}",
            secrets.aws_key_id, secrets.aws_secret_key
        ),
        format!(
            "s3://{}:{}@escher/audit?region=eu-west-1&endpoint={refused}",
            secrets.aws_key_id, secrets.aws_secret_key
        ),
        format!(
            "azblob://audit/escher?account=escherprod&client_secret={}",
            secrets.azure_client_secret
        ),
        format!("gcs://escher/audit?credential={}", secrets.gcp_key_body),
    ];
    for uri in &audit_uris {
        let env = BTreeMap::from([
            ("ESCHER_STATE_URI", stores.state.clone()),
            ("ESCHER_AUDIT_URI", uri.clone()),
            ("ESCHER_APPROVALS_URI", stores.approvals.clone()),
        ]);
        let config = HandlerConfig::from_lookup(|name| env.get(name).cloned()).expect("settings");
        let bindings = CloudBindings {
            cloud: Arc::new(TestCloud {
                fixes: FixRegistry::new(),
            }),
            topics: None,
            secrets: None,
            store_tokens: None,
            redelivery: escher_core::pipeline::Redelivery::PerDelivery,
        };
        match build_pipeline(&config, bindings, &RemoteCallMeter::new()) {
            Err(e) => evidence.error("the function's start", &e),
            Ok(pipeline) => {
                // Accepted: what the function then says about its audit store must not
                // repeat it either.
                let event = alert(&template, "exports", Severity::High);
                match pipeline.handle_finding(event).await {
                    Err(e) => evidence.error("an event's audit write", &e),
                    Ok(result) => evidence.add("event result", format!("{result:?}")),
                }
            }
        }
    }
    assert_eq!(
        evidence.errors,
        audit_uris.len(),
        "every URI led to an error"
    );
    for (name, uri) in [("state", &stores.state), ("approvals", &stores.approvals)] {
        evidence.store(name, &Stores::operator(uri)).await;
    }
    drop(_capture);
    let lines = logs.lines();
    assert_nothing_leaked(evidence, &lines, &secrets);
}

/// What was searched, for the test's output (`--nocapture`).
/// Adds the captured log lines to what was collected, prints the counts, and fails naming
/// every place a secret showed up.
fn assert_nothing_leaked(mut evidence: Evidence, lines: &[String], secrets: &Secrets) {
    for (n, line) in lines.iter().enumerate() {
        evidence.add(format!("log line {}", n + 1), line);
    }
    report(&evidence, lines.len());
    let leaks = evidence.leaks(secrets);
    assert!(
        leaks.is_empty(),
        "secrets leaked ({}):\n{}",
        leaks.len(),
        leaks.join("\n")
    );
}

fn report(evidence: &Evidence, log_lines: usize) {
    println!("searched for secrets          count");
    println!("log lines (JSON, TRACE)    {log_lines:>8}");
    println!("store objects              {:>8}", evidence.objects);
    println!("errors (message + debug)   {:>8}", evidence.errors);
    let failed = evidence
        .results
        .iter()
        .filter(|r| r.status == DeliveryStatus::Failed)
        .count();
    println!("channel results            {:>8}", evidence.results.len());
    println!("  of them failed, detail   {failed:>8}");
    println!("outbound messages          {:>8}", evidence.outbound);
    println!("texts in all               {:>8}", evidence.texts.len());
}
