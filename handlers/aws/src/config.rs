//! Building the SDK configuration and clients the same way in the Lambda, the CLI and the
//! tests: the standard AWS chain (`AWS_REGION`, `AWS_PROFILE`, `AWS_ENDPOINT_URL`, the
//! container or instance role), so pointing everything at an emulator is one variable.

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
