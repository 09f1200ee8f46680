//! The AWS alert handler's assembly: what the cloud-neutral pipeline needs from AWS
//! ([`AwsCloud`], [`SnsTopicPublisher`], [`SsmSecretSource`]), the settings the function gets
//! from its environment ([`HandlerConfig`]), and [`build_pipeline`], the one place the
//! Lambda function and `escher-provision events handle` build their pipeline, so the laptop
//! runs exactly the code path the function runs.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use escher_core::approvals::{Action, ApprovalStore, ApprovalsReader, RemediationPolicy};
use escher_core::pipeline::audit::AuditLog;
use escher_core::pipeline::notify::{Notifier, NotifyConfig, SecretSource, TopicPublisher};
use escher_core::pipeline::{CloudOperations, Pipeline};
use escher_core::remediate::{Mode, Remediation, RemediationError};
use escher_core::store::{StoreError, StoreLocation};
use escher_core::{Normalizer, SeverityPolicy, UnifiedEvent};

use crate::remote_meter::{metered_client, RemoteCallMeter};
use crate::{AwsClients, AwsRemediations, AwsResourceTags};

/// SSM parameter (under `ESCHER_SSM_PREFIX`) holding the Slack incoming-webhook URL.
pub const SLACK_WEBHOOK_PARAMETER: &str = "slack-webhook-url";
/// SSM parameter (under `ESCHER_SSM_PREFIX`) holding the PagerDuty Events v2 routing key.
pub const PAGERDUTY_KEY_PARAMETER: &str = "pagerduty-routing-key";
/// How often the approvals manifest is re-checked when `ESCHER_APPROVALS_REFRESH_SECS` is unset.
pub const DEFAULT_APPROVALS_REFRESH: Duration = Duration::from_secs(60);

/// The AWS side of the pipeline: the remediations and the tag reader, sharing one set of
/// SDK clients.
#[derive(Debug, Clone)]
pub struct AwsCloud {
    remediations: AwsRemediations,
    tags: AwsResourceTags,
}

impl AwsCloud {
    pub fn new(clients: AwsClients) -> Self {
        AwsCloud {
            remediations: AwsRemediations::from_clients(clients.clone()),
            tags: AwsResourceTags::new(clients),
        }
    }
}

#[async_trait]
impl CloudOperations for AwsCloud {
    fn remediation(&self, action: Action, resource_type: &str) -> Option<&dyn Remediation> {
        // Unsupported pairs still get a fix that reports `not_supported` (audited, notified).
        Some(self.remediations.for_action(action, resource_type))
    }

    async fn resource_tags(
        &self,
        event: &UnifiedEvent,
    ) -> Result<Option<BTreeMap<String, String>>, RemediationError> {
        let resource = &event.resource;
        if !matches!(
            resource.kind.as_str(),
            "s3_bucket" | "ec2_instance" | "ebs_volume" | "security_group"
        ) {
            return Ok(None);
        }
        self.tags
            .tags(&resource.kind, &resource.id, &event.region)
            .await
            .map(Some)
    }
}

/// Publishes notifications to SNS topics.
#[derive(Debug, Clone)]
pub struct SnsTopicPublisher {
    client: aws_sdk_sns::Client,
    meter: RemoteCallMeter,
}

impl SnsTopicPublisher {
    pub fn new(config: &SdkConfig) -> Self {
        Self::metered(config, &RemoteCallMeter::new())
    }

    /// A publisher whose calls `meter` counts.
    pub fn metered(config: &SdkConfig, meter: &RemoteCallMeter) -> Self {
        SnsTopicPublisher {
            client: metered_client!(aws_sdk_sns, config, meter),
            meter: meter.clone(),
        }
    }
}

#[async_trait]
impl TopicPublisher for SnsTopicPublisher {
    async fn publish(&self, topic: &str, subject: &str, message: &str) -> Result<String, String> {
        let publish = self
            .client
            .publish()
            .topic_arn(topic)
            .subject(subject)
            .message(message)
            .send();
        let out = self
            .meter
            .call(publish)
            .await
            .map_err(|e| {
                format!(
                    "SNS Publish to {topic} failed: {}; check the topic exists and the role may sns:Publish to it",
                    aws_sdk_sns::error::DisplayErrorContext(&e)
                )
            })?;
        Ok(out.message_id().unwrap_or_default().to_string())
    }
}

/// Reads SecureString parameters from SSM Parameter Store, decrypted, once per process (a
/// Lambda cold start): a secret changed in SSM is picked up by the next cold start.
#[derive(Debug)]
pub struct SsmSecretSource {
    client: aws_sdk_ssm::Client,
    meter: RemoteCallMeter,
    cache: Mutex<HashMap<String, Option<String>>>,
}

impl SsmSecretSource {
    pub fn new(config: &SdkConfig) -> Self {
        Self::metered(config, &RemoteCallMeter::new())
    }

    /// A secret source whose calls `meter` counts.
    pub fn metered(config: &SdkConfig, meter: &RemoteCallMeter) -> Self {
        SsmSecretSource {
            client: metered_client!(aws_sdk_ssm, config, meter),
            meter: meter.clone(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, name: &str) -> Option<Option<String>> {
        self.cache.lock().ok()?.get(name).cloned()
    }
}

#[async_trait]
impl SecretSource for SsmSecretSource {
    async fn secret(&self, name: &str) -> Result<Option<String>, String> {
        if let Some(value) = self.cached(name) {
            return Ok(value);
        }
        let get = self
            .client
            .get_parameter()
            .name(name)
            .with_decryption(true)
            .send();
        let value = match self.meter.call(get).await {
            Ok(out) => out.parameter().and_then(|p| p.value()).map(str::to_string),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_parameter_not_found()) =>
            {
                None
            }
            // The error names the parameter, never its value.
            Err(e) => {
                return Err(format!(
                    "SSM GetParameter {name} failed: {}; check the parameter exists and the role may ssm:GetParameter and kms:Decrypt it",
                    aws_sdk_ssm::error::DisplayErrorContext(&e)
                ))
            }
        };
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(name.to_string(), value.clone());
        }
        Ok(value)
    }
}

/// The handler's settings: what the function's environment holds (see
/// `templates/aws/partials/function.yaml.hbs`), or the CLI's flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerConfig {
    /// `ESCHER_STATE_URI`: markers, blast-radius counters, inbox, report queue.
    pub state_uri: String,
    /// `ESCHER_APPROVALS_URI`.
    pub approvals_uri: String,
    /// `ESCHER_AUDIT_URI`.
    pub audit_uri: String,
    /// `ESCHER_SSM_PREFIX` (e.g. `/escher/<stack>/`): the Slack and PagerDuty secrets live
    /// under it; `None` turns both channels off.
    pub ssm_prefix: Option<String>,
    /// `ESCHER_CRITICAL_TOPIC_ARN`.
    pub critical_topic_arn: Option<String>,
    /// `ESCHER_HIGH_TOPIC_ARN`.
    pub high_topic_arn: Option<String>,
    /// `ESCHER_DRY_RUN` (`true`/`1`/`yes`): everything but the change.
    pub dry_run: bool,
    /// `ESCHER_PAGERDUTY_URL`: the Events API v2 endpoint (tests point it at a receiver).
    pub pagerduty_url: Option<String>,
    /// `ESCHER_APPROVALS_REFRESH_SECS` (default 60).
    pub approvals_refresh: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("{name} is not set; the function's template sets it (for a local run, pass the matching flag or export it)")]
    MissingSetting { name: &'static str },
    #[error("{name}={value:?} is not valid: {expected}")]
    InvalidSetting {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("cannot open the {which} store: {source}")]
    Store {
        which: &'static str,
        #[source]
        source: Box<StoreError>,
    },
}

fn set(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

impl HandlerConfig {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, HandlerError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup` (the environment, or a test's map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, HandlerError> {
        let required =
            |name: &'static str| set(lookup(name)).ok_or(HandlerError::MissingSetting { name });
        let dry_run = match set(lookup("ESCHER_DRY_RUN")) {
            None => false,
            Some(v) => parse_bool(&v).ok_or(HandlerError::InvalidSetting {
                name: "ESCHER_DRY_RUN",
                value: v,
                expected: "true/false, 1/0 or yes/no",
            })?,
        };
        let approvals_refresh = match set(lookup("ESCHER_APPROVALS_REFRESH_SECS")) {
            None => DEFAULT_APPROVALS_REFRESH,
            Some(v) => {
                Duration::from_secs(v.trim().parse().map_err(|_| HandlerError::InvalidSetting {
                    name: "ESCHER_APPROVALS_REFRESH_SECS",
                    value: v.clone(),
                    expected: "a whole number of seconds",
                })?)
            }
        };
        Ok(HandlerConfig {
            state_uri: required("ESCHER_STATE_URI")?,
            approvals_uri: required("ESCHER_APPROVALS_URI")?,
            audit_uri: required("ESCHER_AUDIT_URI")?,
            ssm_prefix: set(lookup("ESCHER_SSM_PREFIX")),
            critical_topic_arn: set(lookup("ESCHER_CRITICAL_TOPIC_ARN")),
            high_topic_arn: set(lookup("ESCHER_HIGH_TOPIC_ARN")),
            dry_run,
            pagerduty_url: set(lookup("ESCHER_PAGERDUTY_URL")),
            approvals_refresh,
        })
    }

    /// The full SSM parameter name of one secret, when a prefix is configured.
    pub fn secret_name(&self, parameter: &str) -> Option<String> {
        self.ssm_prefix
            .as_ref()
            .map(|prefix| format!("{prefix}{parameter}"))
    }

    pub fn mode(&self) -> Mode {
        if self.dry_run {
            Mode::DryRun
        } else {
            Mode::Apply
        }
    }
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" => Some(true),
        "0" | "false" | "no" => Some(false),
        _ => None,
    }
}

/// Builds the pipeline once (per cold start, per CLI run): opens the three stores and builds
/// every SDK client. Nothing is fetched yet; approvals load on the first event.
pub fn build_pipeline(config: &HandlerConfig, sdk: &SdkConfig) -> Result<Pipeline, HandlerError> {
    build_metered_pipeline(config, sdk, &RemoteCallMeter::new())
}

/// [`build_pipeline`], with every SDK call and store request metered by `meter` (the
/// function logs per event how many remote calls it made and how long it waited on them).
pub fn build_metered_pipeline(
    config: &HandlerConfig,
    sdk: &SdkConfig,
    meter: &RemoteCallMeter,
) -> Result<Pipeline, HandlerError> {
    let location = |which: &'static str, uri: &str| {
        uri.parse::<StoreLocation>()
            .map_err(|source| HandlerError::Store {
                which,
                source: Box::new(source),
            })
    };
    let open_at = |which: &'static str, location: &StoreLocation| {
        location
            .operator()
            .map(|operator| operator.layer(meter.store_layer()))
            .map_err(|source| HandlerError::Store {
                which,
                source: Box::new(source),
            })
    };
    let open = |which: &'static str, uri: &str| open_at(which, &location(which, uri)?);
    let state = open("state", &config.state_uri)?;
    let audit = open("audit", &config.audit_uri)?;
    let approvals_location = location("approvals", &config.approvals_uri)?;
    let approvals = ApprovalStore::with_operator(
        open_at("approvals", &approvals_location)?,
        approvals_location.to_string(),
    );
    let clients = AwsClients::metered(sdk, meter);
    let mut notifier = Notifier::new(
        state.clone(),
        NotifyConfig {
            critical_topic: config.critical_topic_arn.clone(),
            high_topic: config.high_topic_arn.clone(),
            slack_webhook_secret: config.secret_name(SLACK_WEBHOOK_PARAMETER),
            pagerduty_key_secret: config.secret_name(PAGERDUTY_KEY_PARAMETER),
            pagerduty_url: config.pagerduty_url.clone(),
        },
    );
    notifier.topics = Some(Arc::new(SnsTopicPublisher::metered(sdk, meter)));
    notifier.secrets = Some(Arc::new(SsmSecretSource::metered(sdk, meter)));
    Ok(Pipeline {
        normalizer: Normalizer::default(),
        severity: SeverityPolicy::built_in(),
        remediations: RemediationPolicy::built_in(),
        approvals: Arc::new(ApprovalsReader::new(approvals, config.approvals_refresh)),
        state,
        audit: AuditLog::new(audit, config.audit_uri.clone()),
        cloud: Arc::new(AwsCloud::new(clients)),
        notifier,
        mode: config.mode(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    const STORES: [(&str, &str); 3] = [
        ("ESCHER_STATE_URI", "memory://"),
        ("ESCHER_APPROVALS_URI", "memory://"),
        ("ESCHER_AUDIT_URI", "memory://"),
    ];

    #[test]
    fn the_function_environment_gives_the_settings() {
        let mut env = STORES.to_vec();
        env.extend([
            ("ESCHER_SSM_PREFIX", "/escher/prod/"),
            ("ESCHER_CRITICAL_TOPIC_ARN", "arn:aws:sns:eu-west-1:1:c"),
            ("ESCHER_DRY_RUN", "yes"),
            ("ESCHER_APPROVALS_REFRESH_SECS", "5"),
        ]);
        let config = HandlerConfig::from_lookup(lookup(&env)).expect("config");
        assert_eq!(config.mode(), Mode::DryRun);
        assert_eq!(config.approvals_refresh, Duration::from_secs(5));
        assert_eq!(config.high_topic_arn, None);
        assert_eq!(
            config.secret_name(SLACK_WEBHOOK_PARAMETER).as_deref(),
            Some("/escher/prod/slack-webhook-url")
        );
        let defaults = HandlerConfig::from_lookup(lookup(&STORES)).expect("config");
        assert_eq!(defaults.mode(), Mode::Apply);
        assert_eq!(defaults.approvals_refresh, DEFAULT_APPROVALS_REFRESH);
        assert_eq!(defaults.secret_name(PAGERDUTY_KEY_PARAMETER), None);
    }

    #[test]
    fn a_missing_store_or_a_bad_value_is_named() {
        let err = HandlerConfig::from_lookup(lookup(&STORES[..2])).expect_err("no audit");
        assert!(err.to_string().contains("ESCHER_AUDIT_URI"), "{err}");
        let mut env = STORES.to_vec();
        env.push(("ESCHER_DRY_RUN", "maybe"));
        let err = HandlerConfig::from_lookup(lookup(&env)).expect_err("bad bool");
        assert!(
            err.to_string().contains("ESCHER_DRY_RUN=\"maybe\""),
            "{err}"
        );
    }
}
