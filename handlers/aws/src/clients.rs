//! The SDK clients the remediations share, and the same clients pointed at another region.

use std::borrow::Cow;

use aws_config::{Region, SdkConfig};

use crate::config::s3_config;
use crate::sdk_meter::metered_client;
use escher_runtime::RemoteCallMeter;

/// One S3, EC2, CloudWatch, RDS, Auto Scaling, ECS, Lambda, CloudFormation and Cost Explorer client, built once; cloning shares them
/// (and their connection pools). Every call they make is metered by one [`RemoteCallMeter`].
#[derive(Debug, Clone)]
pub struct AwsClients {
    config: SdkConfig,
    meter: RemoteCallMeter,
    pub(crate) s3: aws_sdk_s3::Client,
    pub(crate) ec2: aws_sdk_ec2::Client,
    pub(crate) cloudwatch: aws_sdk_cloudwatch::Client,
    /// The scan's RDS check; building a client is cheap (it shares the configuration's HTTP
    /// client), so every region's set has one.
    pub(crate) rds: aws_sdk_rds::Client,
    /// scale_up_capacity's Auto Scaling groups.
    pub(crate) autoscaling: aws_sdk_autoscaling::Client,
    /// restart_service's ECS services.
    pub(crate) ecs: aws_sdk_ecs::Client,
    /// rollback_deployment's Lambda aliases.
    pub(crate) lambda: aws_sdk_lambda::Client,
    /// rollback_deployment's CloudFormation stacks.
    pub(crate) cloudformation: aws_sdk_cloudformation::Client,
    /// The scan's cost summary (a global API: used through the us-east-1 set).
    pub(crate) cost_explorer: aws_sdk_costexplorer::Client,
}

impl AwsClients {
    /// Clients whose calls are metered by a meter of their own.
    pub fn new(config: &SdkConfig) -> Self {
        Self::metered(config, &RemoteCallMeter::new())
    }

    /// Clients whose calls `meter` counts.
    pub fn metered(config: &SdkConfig, meter: &RemoteCallMeter) -> Self {
        AwsClients {
            config: config.clone(),
            meter: meter.clone(),
            s3: metered_client!(aws_sdk_s3, builder: s3_config(config), meter),
            ec2: metered_client!(aws_sdk_ec2, config, meter),
            cloudwatch: metered_client!(aws_sdk_cloudwatch, config, meter),
            rds: metered_client!(aws_sdk_rds, config, meter),
            autoscaling: metered_client!(aws_sdk_autoscaling, config, meter),
            ecs: metered_client!(aws_sdk_ecs, config, meter),
            lambda: metered_client!(aws_sdk_lambda, config, meter),
            cloudformation: metered_client!(aws_sdk_cloudformation, config, meter),
            cost_explorer: metered_client!(aws_sdk_costexplorer, config, meter),
        }
    }

    /// The meter counting these clients' calls.
    pub fn meter(&self) -> &RemoteCallMeter {
        &self.meter
    }

    /// The region these clients call (from the configuration chain).
    pub fn region(&self) -> Option<&str> {
        self.config.region().map(|r| r.as_ref())
    }

    /// Clients for the region an event happened in. Resources live in their own region and
    /// a finding aggregated by Security Hub can name another region than the handler's, so
    /// those get clients of their own (built from the same configuration, sharing its HTTP
    /// client and meter); the handler's own region and `global` reuse these.
    pub(crate) fn in_region(&self, region: &str) -> Cow<'_, AwsClients> {
        if region.is_empty() || region == "global" || Some(region) == self.region() {
            return Cow::Borrowed(self);
        }
        let config = self
            .config
            .to_builder()
            .region(Region::new(region.to_string()))
            .build();
        Cow::Owned(AwsClients::metered(&config, &self.meter))
    }
}
