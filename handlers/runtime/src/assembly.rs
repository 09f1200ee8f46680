//! Building the pipeline a function runs, the same on every cloud: the three stores (each
//! metered), the approvals reader, the notifier's channels and the cloud's operations. A
//! cloud brings only its [`CloudBindings`].

use std::sync::Arc;

use escher_core::approvals::{ApprovalStore, ApprovalsReader, RemediationPolicy};
use escher_core::incidents::IncidentMemory;
use escher_core::pipeline::audit::AuditLog;
use escher_core::pipeline::notify::{Notifier, NotifyConfig, SecretSource, TopicPublisher};
use escher_core::pipeline::{CloudOperations, Pipeline, Redelivery};
use escher_core::store::{StorageTokenSource, StoreLocation};
use escher_core::{Normalizer, SeverityPolicy};

use crate::config::{HandlerConfig, HandlerError, PAGERDUTY_KEY_SECRET, SLACK_WEBHOOK_SECRET};
use crate::meter::RemoteCallMeter;

/// What a cloud plugs into the pipeline.
pub struct CloudBindings {
    /// The cloud's fixes and its reading of a resource's tags.
    pub cloud: Arc<dyn CloudOperations>,
    /// Where the critical and high topics are published (SNS on AWS); `None`: no topics.
    pub topics: Option<Arc<dyn TopicPublisher>>,
    /// The cloud's secret store (SSM Parameter Store on AWS); `None`: no Slack or PagerDuty.
    pub secrets: Option<Arc<dyn SecretSource>>,
    /// Bearer tokens for Azure Blob stores (a Function's managed identity); `None`: stores
    /// use the environment's keys or the cloud's own credential chain.
    pub store_tokens: Option<Arc<dyn StorageTokenSource>>,
    /// How the cloud's trigger retries a delivery (see [`Redelivery`]).
    pub redelivery: Redelivery,
}

/// Builds the pipeline once (per cold start, per CLI run): opens the three stores, each
/// metered by `meter`. Nothing is fetched yet; approvals load on the first event.
pub fn build_pipeline(
    config: &HandlerConfig,
    bindings: CloudBindings,
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
            .operator_with(bindings.store_tokens.clone())
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
    let mut notifier = Notifier::new(
        state.clone(),
        NotifyConfig {
            critical_topic: config.critical_topic.clone(),
            high_topic: config.high_topic.clone(),
            slack_webhook_secret: config.secret_name(SLACK_WEBHOOK_SECRET),
            pagerduty_key_secret: config.secret_name(PAGERDUTY_KEY_SECRET),
            pagerduty_url: config.pagerduty_url.clone(),
        },
    );
    notifier.topics = bindings.topics;
    notifier.secrets = bindings.secrets;
    Ok(Pipeline {
        normalizer: Normalizer::default(),
        severity: SeverityPolicy::built_in(),
        remediations: RemediationPolicy::built_in(),
        approvals: Arc::new(ApprovalsReader::new(approvals, config.approvals_refresh)),
        memory: Arc::new(IncidentMemory::new(state.clone())),
        claim_lease: config.claim_lease,
        redelivery: bindings.redelivery,
        state,
        audit: AuditLog::new(audit, config.audit_uri.clone()),
        cloud: bindings.cloud,
        notifier,
        mode: config.mode(),
    })
}
