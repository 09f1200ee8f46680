//! The SDK clients the remediations share, and the same clients pointed at another region.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use aws_config::{Region, SdkConfig};

use crate::config::s3_config;
use crate::sdk_meter::metered_client;
use escher_runtime::RemoteCallMeter;

/// One S3, EC2, CloudWatch, RDS, Auto Scaling, ECS, Lambda, CloudFormation and Cost Explorer
/// client, each built on its first call; cloning shares them (and their connection pools).
/// Every call they make is metered by one [`RemoteCallMeter`].
#[derive(Debug, Clone)]
pub struct AwsClients {
    config: SdkConfig,
    meter: RemoteCallMeter,
    built: Arc<Built>,
}

/// The clients built so far. An event calls one or two of the nine services, and building
/// the others would page in their code and cost start-up time for nothing (the laptop's
/// `events handle` and every cold start pay it).
#[derive(Debug, Default)]
struct Built {
    s3: OnceLock<aws_sdk_s3::Client>,
    ec2: OnceLock<aws_sdk_ec2::Client>,
    cloudwatch: OnceLock<aws_sdk_cloudwatch::Client>,
    rds: OnceLock<aws_sdk_rds::Client>,
    autoscaling: OnceLock<aws_sdk_autoscaling::Client>,
    ecs: OnceLock<aws_sdk_ecs::Client>,
    lambda: OnceLock<aws_sdk_lambda::Client>,
    cloudformation: OnceLock<aws_sdk_cloudformation::Client>,
    cost_explorer: OnceLock<aws_sdk_costexplorer::Client>,
}

/// The accessor of one client of [`Built`], building it on first use.
macro_rules! client {
    ($(#[$doc:meta])* $name:ident, $sdk:ident) => {
        $(#[$doc])*
        pub(crate) fn $name(&self) -> &$sdk::Client {
            self.built
                .$name
                .get_or_init(|| metered_client!($sdk, &self.config, &self.meter))
        }
    };
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
            built: Arc::default(),
        }
    }

    pub(crate) fn s3(&self) -> &aws_sdk_s3::Client {
        self.built.s3.get_or_init(
            || metered_client!(aws_sdk_s3, builder: s3_config(&self.config), &self.meter),
        )
    }

    client!(ec2, aws_sdk_ec2);
    client!(cloudwatch, aws_sdk_cloudwatch);
    client!(
        /// The scan's RDS check.
        rds,
        aws_sdk_rds
    );
    client!(
        /// scale_up_capacity's Auto Scaling groups.
        autoscaling,
        aws_sdk_autoscaling
    );
    client!(
        /// restart_service's ECS services.
        ecs,
        aws_sdk_ecs
    );
    client!(
        /// rollback_deployment's Lambda aliases.
        lambda,
        aws_sdk_lambda
    );
    client!(
        /// rollback_deployment's CloudFormation stacks.
        cloudformation,
        aws_sdk_cloudformation
    );
    client!(
        /// The scan's cost summary (a global API: used through the us-east-1 set).
        cost_explorer,
        aws_sdk_costexplorer
    );

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

#[cfg(test)]
mod tests {
    use super::*;
    use aws_config::BehaviorVersion;

    fn clients() -> AwsClients {
        AwsClients::new(
            &SdkConfig::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("eu-west-1"))
                .build(),
        )
    }

    #[test]
    fn a_client_is_built_at_its_first_use_and_shared_by_every_clone() {
        let clients = clients();
        let fix_copy = clients.clone();
        assert!(clients.built.s3.get().is_none(), "nothing built up front");
        assert!(std::ptr::eq(fix_copy.s3(), clients.s3()));
        assert!(clients.built.ec2.get().is_none(), "only the service called");
    }

    #[test]
    fn clients_for_another_region_call_that_region() {
        let clients = clients();
        assert!(matches!(clients.in_region("eu-west-1"), Cow::Borrowed(_)));
        let other = clients.in_region("ap-south-1");
        assert_eq!(other.region(), Some("ap-south-1"));
        assert_eq!(
            other.s3().config().region().map(|r| r.as_ref()),
            Some("ap-south-1")
        );
    }
}
