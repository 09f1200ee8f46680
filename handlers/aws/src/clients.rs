//! The SDK clients the remediations share, and the same clients pointed at another region.

use std::borrow::Cow;

use aws_config::{Region, SdkConfig};

use crate::config::s3_client;

/// One S3, EC2, CloudWatch and RDS client, built once; cloning shares them (and their
/// connection pools).
#[derive(Debug, Clone)]
pub struct AwsClients {
    config: SdkConfig,
    pub(crate) s3: aws_sdk_s3::Client,
    pub(crate) ec2: aws_sdk_ec2::Client,
    pub(crate) cloudwatch: aws_sdk_cloudwatch::Client,
    /// The scan's RDS check; building a client is cheap (it shares the configuration's HTTP
    /// client), so every region's set has one.
    pub(crate) rds: aws_sdk_rds::Client,
    /// The scan's cost summary (a global API: used through the us-east-1 set).
    pub(crate) cost_explorer: aws_sdk_costexplorer::Client,
}

impl AwsClients {
    pub fn new(config: &SdkConfig) -> Self {
        AwsClients {
            config: config.clone(),
            s3: s3_client(config),
            ec2: aws_sdk_ec2::Client::new(config),
            cloudwatch: aws_sdk_cloudwatch::Client::new(config),
            rds: aws_sdk_rds::Client::new(config),
            cost_explorer: aws_sdk_costexplorer::Client::new(config),
        }
    }

    /// The region these clients call (from the configuration chain).
    pub fn region(&self) -> Option<&str> {
        self.config.region().map(|r| r.as_ref())
    }

    /// Clients for the region an event happened in. Resources live in their own region and
    /// a finding aggregated by Security Hub can name another region than the handler's, so
    /// those get clients of their own (built from the same configuration, sharing its HTTP
    /// client); the handler's own region and `global` reuse these.
    pub(crate) fn in_region(&self, region: &str) -> Cow<'_, AwsClients> {
        if region.is_empty() || region == "global" || Some(region) == self.region() {
            return Cow::Borrowed(self);
        }
        let config = self
            .config
            .to_builder()
            .region(Region::new(region.to_string()))
            .build();
        Cow::Owned(AwsClients::new(&config))
    }
}
