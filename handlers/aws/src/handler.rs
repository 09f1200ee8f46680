//! What the cloud-neutral pipeline needs from AWS ([`AwsCloud`], [`SnsTopicPublisher`],
//! [`SsmSecretSource`]), bound together by [`aws_bindings`]; the settings and the assembly
//! itself are `escher_runtime`'s.

use escher_core::resource_types::aws as aws_types;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use aws_config::SdkConfig;
use escher_core::fixes::FixRegistry;
use escher_core::pipeline::notify::{CloudCallError, SecretSource, TopicPublisher};
use escher_core::pipeline::{CloudOperations, Pipeline};
use escher_core::remediate::RemediationError;
use escher_core::UnifiedEvent;
use escher_runtime::{CloudBindings, HandlerConfig, HandlerError, RemoteCallMeter};

use crate::sdk_meter::metered_client;
use crate::{aws_fixes, AwsClients, AwsResourceTags};

/// The AWS side of the pipeline: the fixes and the tag reader, sharing one set of SDK
/// clients.
#[derive(Debug, Clone)]
pub struct AwsCloud {
    fixes: FixRegistry,
    tags: AwsResourceTags,
}

impl AwsCloud {
    pub fn new(clients: AwsClients) -> Self {
        AwsCloud {
            fixes: aws_fixes(clients.clone()),
            tags: AwsResourceTags::new(clients),
        }
    }
}

#[async_trait]
impl CloudOperations for AwsCloud {
    fn fixes(&self) -> &FixRegistry {
        &self.fixes
    }

    async fn resource_tags(
        &self,
        event: &UnifiedEvent,
    ) -> Result<Option<BTreeMap<String, String>>, RemediationError> {
        let resource = &event.resource;
        if !matches!(
            resource.kind.as_str(),
            aws_types::S3_BUCKET
                | aws_types::EC2_INSTANCE
                | aws_types::EBS_VOLUME
                | aws_types::SECURITY_GROUP
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
    /// Built on the first notice (most events send none through SNS).
    client: OnceLock<aws_sdk_sns::Client>,
    config: SdkConfig,
    meter: RemoteCallMeter,
}

impl SnsTopicPublisher {
    pub fn new(config: &SdkConfig) -> Self {
        Self::metered(config, &RemoteCallMeter::new())
    }

    /// A publisher whose calls `meter` counts.
    pub fn metered(config: &SdkConfig, meter: &RemoteCallMeter) -> Self {
        SnsTopicPublisher {
            client: OnceLock::new(),
            config: config.clone(),
            meter: meter.clone(),
        }
    }

    fn client(&self) -> &aws_sdk_sns::Client {
        self.client
            .get_or_init(|| metered_client!(aws_sdk_sns, &self.config, &self.meter))
    }
}

#[async_trait]
impl TopicPublisher for SnsTopicPublisher {
    async fn publish(
        &self,
        topic: &str,
        subject: &str,
        message: &str,
    ) -> Result<String, CloudCallError> {
        let publish = self
            .client()
            .publish()
            .topic_arn(topic)
            .subject(subject)
            .message(message)
            .send();
        let out = self.meter.call(publish).await.map_err(|e| CloudCallError {
            operation: "SNS Publish".into(),
            target: topic.to_string(),
            message: aws_sdk_sns::error::DisplayErrorContext(&e).to_string(),
            remedy: "check the topic exists and the role may sns:Publish to it".into(),
        })?;
        Ok(out.message_id().unwrap_or_default().to_string())
    }
}

/// Reads SecureString parameters from SSM Parameter Store, decrypted, once per process (a
/// Lambda cold start): a secret changed in SSM is picked up by the next cold start.
#[derive(Debug)]
pub struct SsmSecretSource {
    /// Built on the first secret read (only channels with secrets read any).
    client: OnceLock<aws_sdk_ssm::Client>,
    config: SdkConfig,
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
            client: OnceLock::new(),
            config: config.clone(),
            meter: meter.clone(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn client(&self) -> &aws_sdk_ssm::Client {
        self.client
            .get_or_init(|| metered_client!(aws_sdk_ssm, &self.config, &self.meter))
    }

    fn cached(&self, name: &str) -> Option<Option<String>> {
        self.cache.lock().ok()?.get(name).cloned()
    }
}

#[async_trait]
impl SecretSource for SsmSecretSource {
    async fn secret(&self, name: &str) -> Result<Option<String>, CloudCallError> {
        if let Some(value) = self.cached(name) {
            return Ok(value);
        }
        let get = self
            .client()
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
                return Err(CloudCallError {
                    operation: "SSM GetParameter".into(),
                    target: name.to_string(),
                    message: aws_sdk_ssm::error::DisplayErrorContext(&e).to_string(),
                    remedy: "check the parameter exists and the role may ssm:GetParameter and kms:Decrypt it".into(),
                })
            }
        };
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(name.to_string(), value.clone());
        }
        Ok(value)
    }
}

/// The AWS side of the pipeline, every SDK client metered by `meter`: the fixes and tag
/// reader, SNS for the topics, SSM Parameter Store for the secrets; every attempt of a call
/// bounded ([`with_call_timeouts`](crate::with_call_timeouts)).
pub fn aws_bindings(sdk: &SdkConfig, meter: &RemoteCallMeter) -> CloudBindings {
    let sdk = &crate::config::with_call_timeouts(sdk);
    CloudBindings {
        cloud: Arc::new(AwsCloud::new(AwsClients::metered(sdk, meter))),
        topics: Some(Arc::new(SnsTopicPublisher::metered(sdk, meter))),
        secrets: Some(Arc::new(SsmSecretSource::metered(sdk, meter))),
        store_tokens: None,
        redelivery: escher_core::pipeline::Redelivery::PerDelivery,
    }
}

/// The AWS handler's pipeline: [`escher_runtime::build_pipeline`] with [`aws_bindings`].
/// The one place the Lambda functions and `escher-provision events handle` build it, so
/// the laptop runs exactly the code path the function runs.
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
    escher_runtime::build_pipeline(config, aws_bindings(sdk, meter), meter)
}
