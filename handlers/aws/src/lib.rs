//! `escher-aws`: the fixes the AWS handler applies, through the AWS SDK for Rust.
//!
//! Each fix is one type implementing [`escher_core::remediate::Remediation`]:
//! [`S3PublicAccessRemediation`], [`OpenIngressRemediation`], [`IdleInstanceRemediation`],
//! [`VolumeEncryptionRemediation`], and [`UnsupportedRemediation`] for the actions AWS has no
//! fix for yet. [`AwsRemediations`] builds them once from one `SdkConfig` and picks the one
//! for an (action, resource type) pair; [`AwsResourceTags`] reads a resource's tags for the
//! pipeline's enrich step. Every call is recorded (`ApiCall`) and every SDK error is
//! classified as transient (retry the event) or final in one place (`calls`).
//!
//! [`sdk_meter`] meters every SDK call for `escher_runtime::meter` (count, wait, CPU inside
//! them), so the handler's own CPU per event can be told from the remote calls' (`make
//! bench`, and the function's log line per event).
//!
//! [`handler`] binds AWS into the cloud-neutral pipeline (the Lambda binaries `escher-alert`
//! and `escher-scan` and `escher-provision events handle` share [`build_pipeline`]).

mod calls;
mod clients;
mod config;
pub mod handler;
mod idle_instance;
mod open_ingress;
mod report;
mod rightsizing;
mod s3_public;
mod scan;
pub mod sdk_meter;
mod tags;
mod target;
mod unsupported;
mod volume_encryption;

use std::collections::BTreeSet;

use aws_config::SdkConfig;
use escher_core::approvals::Action;
use escher_core::remediate::{Remediation, RequiredPermission};

pub use clients::AwsClients;
pub use config::{load_sdk_config, s3_client};
pub use handler::{
    aws_bindings, build_metered_pipeline, build_pipeline, AwsCloud, SnsTopicPublisher,
    SsmSecretSource,
};
pub use idle_instance::{IdleInstanceRemediation, DEFAULT_IDLE_CPU_PERCENT};
pub use open_ingress::OpenIngressRemediation;
pub use s3_public::S3PublicAccessRemediation;
pub use scan::AwsScan;
pub use tags::AwsResourceTags;
pub use unsupported::UnsupportedRemediation;
pub use volume_encryption::VolumeEncryptionRemediation;

/// Every AWS remediation, built once per process (a Lambda cold start) from one SDK
/// configuration; the SDK clients inside are shared, so this is cheap to clone.
#[derive(Debug, Clone)]
pub struct AwsRemediations {
    bucket: S3PublicAccessRemediation,
    ingress: OpenIngressRemediation,
    idle: IdleInstanceRemediation,
    volume: VolumeEncryptionRemediation,
    unsupported: [UnsupportedRemediation; Action::ALL.len()],
}

impl AwsRemediations {
    pub fn new(config: &SdkConfig) -> Self {
        Self::from_clients(AwsClients::new(config))
    }

    pub fn from_clients(clients: AwsClients) -> Self {
        AwsRemediations {
            bucket: S3PublicAccessRemediation::new(clients.clone()),
            ingress: OpenIngressRemediation::new(clients.clone()),
            idle: IdleInstanceRemediation::new(clients.clone()),
            volume: VolumeEncryptionRemediation::new(clients),
            unsupported: Action::ALL.map(UnsupportedRemediation::new),
        }
    }

    /// The fix for `action` on a resource of `resource_type` (`UnifiedEvent.resource.type`);
    /// a pair AWS has no fix for gets an [`UnsupportedRemediation`], which reports
    /// `NotSupported` rather than failing.
    pub fn for_action(&self, action: Action, resource_type: &str) -> &dyn Remediation {
        let supported: [&dyn Remediation; 4] =
            [&self.bucket, &self.ingress, &self.idle, &self.volume];
        supported
            .into_iter()
            .find(|r| r.action() == action && r.resource_types().contains(&resource_type))
            .unwrap_or_else(|| self.unsupported_for(action))
    }

    fn unsupported_for(&self, action: Action) -> &dyn Remediation {
        // `unsupported` holds one entry per `Action::ALL`, in that order.
        let index = Action::ALL
            .iter()
            .position(|a| *a == action)
            .unwrap_or_default();
        &self.unsupported[index]
    }

    /// Every remediation this crate can apply, for listing and for the role.
    pub fn all(&self) -> [&dyn Remediation; 4] {
        [&self.bucket, &self.ingress, &self.idle, &self.volume]
    }
}

/// The IAM permissions of every AWS remediation, deduplicated and sorted by action then
/// resource: what the handler's role needs, and nothing more.
pub fn all_required_permissions() -> Vec<RequiredPermission> {
    let lists: [&'static [RequiredPermission]; 6] = [
        s3_public::PERMISSIONS,
        open_ingress::PERMISSIONS,
        idle_instance::PERMISSIONS,
        volume_encryption::PERMISSIONS,
        tags::PERMISSIONS,
        // Last: where a remediation already needs a permission, its reason is the one kept.
        scan::PERMISSIONS,
    ];
    let mut seen = BTreeSet::new();
    let mut all: Vec<RequiredPermission> = lists
        .into_iter()
        .flatten()
        .filter(|p| seen.insert((p.action, p.resource)))
        .copied()
        .collect();
    all.sort_by(|a, b| (a.action, a.resource).cmp(&(b.action, b.resource)));
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_config::{BehaviorVersion, Region};

    #[test]
    fn pairs_without_a_fix_get_the_not_supported_one() {
        let config = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .build();
        let fixes = AwsRemediations::new(&config);
        let bucket = fixes.for_action(Action::MakeBucketPrivate, "s3_bucket");
        assert_eq!(bucket.resource_types(), ["s3_bucket"]);
        assert!(!bucket.required_permissions().is_empty());
        for (action, kind) in [
            (Action::MakeBucketPrivate, "ec2_instance"),
            (Action::RestartService, "ec2_instance"),
            (Action::ScaleUpCapacity, "rds_instance"),
            (Action::RollbackDeployment, "lambda_function"),
        ] {
            let fix = fixes.for_action(action, kind);
            assert_eq!(fix.action(), action);
            assert!(fix.resource_types().is_empty(), "{action} on {kind}");
            assert!(fix.required_permissions().is_empty());
        }
    }

    #[test]
    fn permissions_are_sorted_unique_and_never_a_wildcard_action() {
        let all = all_required_permissions();
        assert!(all
            .windows(2)
            .all(|w| (w[0].action, w[0].resource) < (w[1].action, w[1].resource)));
        for p in &all {
            assert!(!p.action.contains('*'), "{p:?}");
            assert!(
                p.action
                    .split_once(':')
                    .is_some_and(|(svc, op)| !svc.is_empty() && !op.is_empty()),
                "{p:?}"
            );
            assert!(!p.why.is_empty(), "{p:?}");
            // `*` only where AWS has no resource-level permission, and then the why says so.
            if p.resource == "*" {
                assert!(p.why.contains("no resource-level"), "{p:?}");
            } else {
                assert!(p.resource.starts_with("arn:${AWS::Partition}:"), "{p:?}");
            }
        }
        let actions: Vec<&str> = all.iter().map(|p| p.action).collect();
        for wanted in [
            "s3:PutBucketPublicAccessBlock",
            "s3:GetBucketPublicAccessBlock",
            "s3:GetBucketAcl",
            "s3:PutBucketAcl",
            "s3:GetBucketPolicyStatus",
            "ec2:RevokeSecurityGroupIngress",
            "ec2:DescribeSecurityGroups",
            "ec2:StopInstances",
            "ec2:DescribeInstances",
            "cloudwatch:GetMetricStatistics",
            "ec2:CreateSnapshot",
            "ec2:CopySnapshot",
            "ec2:CreateVolume",
            "ec2:CreateTags",
            "ec2:EnableEbsEncryptionByDefault",
            "ec2:GetEbsEncryptionByDefault",
        ] {
            assert!(actions.contains(&wanted), "missing {wanted}");
        }
    }
}
