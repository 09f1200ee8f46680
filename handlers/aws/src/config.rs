//! Building the SDK configuration and clients the same way in the Lambda, the CLI and the
//! tests: the standard AWS chain (`AWS_REGION`, `AWS_PROFILE`, `AWS_ENDPOINT_URL`, the
//! container or instance role), so pointing everything at an emulator is one variable.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

/// Loads the SDK configuration from the standard chain. `region` and `endpoint_url` (e.g.
/// `--region` / `--endpoint-url` flags, or a test's emulator) win over the environment when
/// given.
pub async fn load_sdk_config(region: Option<&str>, endpoint_url: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_string()));
    }
    if let Some(endpoint) = endpoint_url {
        loader = loader.endpoint_url(endpoint);
    }
    loader.load().await
}

/// How long one attempt of an SDK call the handler makes may take. The SDK's defaults bound
/// only the connection (3.1 s): a service that accepts a request and never answers would
/// hold the function until Lambda stops it, with the event claimed and nothing audited. An
/// attempt past this is abandoned and retried by the SDK, then the event is retried.
pub const CALL_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);

/// `config` with every attempt of a call bounded by [`CALL_ATTEMPT_TIMEOUT`], unless it
/// bounds attempts already (a test's shorter timeout is kept).
pub fn with_call_timeouts(config: &SdkConfig) -> SdkConfig {
    let current = config.timeout_config();
    if current.is_some_and(|t| t.operation_attempt_timeout().is_some()) {
        return config.clone();
    }
    let mut timeouts = TimeoutConfig::builder().operation_attempt_timeout(CALL_ATTEMPT_TIMEOUT);
    if let Some(connect) = current.and_then(|t| t.connect_timeout()) {
        timeouts = timeouts.connect_timeout(connect);
    }
    if let Some(read) = current.and_then(|t| t.read_timeout()) {
        timeouts = timeouts.read_timeout(read);
    }
    if let Some(operation) = current.and_then(|t| t.operation_timeout()) {
        timeouts = timeouts.operation_timeout(operation);
    }
    config.to_builder().timeout_config(timeouts.build()).build()
}

/// An S3 client for `config`. With an endpoint override (moto, MinIO, a VPC endpoint URL)
/// requests use path-style addressing, because virtual-host names such as
/// `bucket.127.0.0.1` do not resolve there.
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(s3_config(config).build())
}

/// The S3 client configuration [`s3_client`] builds from.
pub(crate) fn s3_config(config: &SdkConfig) -> aws_sdk_s3::config::Builder {
    let builder = aws_sdk_s3::config::Builder::from(config);
    if config.endpoint_url().is_some() {
        builder.force_path_style(true)
    } else {
        builder
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(config: &SdkConfig) -> Option<Duration> {
        config
            .timeout_config()
            .and_then(|t| t.operation_attempt_timeout())
    }

    #[test]
    fn every_call_attempt_is_bounded_and_a_shorter_bound_is_kept() {
        let defaults = SdkConfig::builder()
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_millis(3100))
                    .build(),
            )
            .build();
        let bounded = with_call_timeouts(&defaults);
        assert_eq!(attempt(&bounded), Some(CALL_ATTEMPT_TIMEOUT));
        assert_eq!(
            bounded.timeout_config().and_then(|t| t.connect_timeout()),
            Some(Duration::from_millis(3100)),
            "the connection timeout is kept"
        );
        let short = SdkConfig::builder()
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_attempt_timeout(Duration::from_millis(800))
                    .build(),
            )
            .build();
        assert_eq!(
            attempt(&with_call_timeouts(&short)),
            Some(Duration::from_millis(800))
        );
    }
}
