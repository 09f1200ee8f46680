//! `escher-aws`: the fixes the AWS handler applies, through the AWS SDK for Rust.
//!
//! Each fix is one type implementing [`escher_core::remediate::Remediation`]:
//! [`S3PublicAccessRemediation`], [`OpenIngressRemediation`], [`IdleInstanceRemediation`],
//! [`VolumeEncryptionRemediation`], [`ScaleUpCapacityRemediation`], [`RestartServiceRemediation`], [`RollbackDeploymentRemediation`]. [`aws_fixes`] registers them once in core's
//! [`FixRegistry`], which the pipeline looks them up in by (action, resource type) and the
//! role's permissions are derived from (a pair with no fix is answered `not_supported` by
//! core); [`AwsResourceTags`] reads a resource's tags for the
//! pipeline's enrich step. Every call is recorded (`ApiCall`) and every SDK error is
//! classified as transient (retry the event) or final in one place (`calls`).
//!
//! [`sdk_meter`] meters every SDK call for `escher_runtime::meter` (count, wait, CPU inside
//! them), so the handler's own CPU per event can be told from the remote calls' (`make
//! bench`, and the function's log line per event).
//!
//! [`handler`] binds AWS into the cloud-neutral pipeline (the Lambda binaries `escher-alert`
//! and `escher-scan` and `escher-provision events handle` share [`build_pipeline`]).

mod alarms;
mod calls;
mod clients;
mod config;
mod ecs_service;
pub mod handler;
mod idle_instance;
mod open_ingress;
mod report;
mod restart;
mod rightsizing;
mod rollback;
mod s3_public;
mod scale_up;
mod scan;
pub mod sdk_meter;
mod tags;
mod target;
mod volume_encryption;

use std::sync::Arc;

use aws_config::SdkConfig;
use escher_core::approvals::Action;
use escher_core::fixes::{merge_permissions, FixRegistry};
use escher_core::remediate::{Remediation, RequiredPermission};

pub use calls::iam_action;
pub use clients::AwsClients;
pub use config::{load_sdk_config, s3_client, with_call_timeouts, CALL_ATTEMPT_TIMEOUT};
pub use handler::{
    aws_bindings, build_metered_pipeline, build_pipeline, AwsCloud, SnsTopicPublisher,
    SsmSecretSource,
};
pub use idle_instance::{IdleInstanceRemediation, DEFAULT_IDLE_CPU_PERCENT};
pub use open_ingress::OpenIngressRemediation;
pub use restart::RestartServiceRemediation;
pub use rollback::RollbackDeploymentRemediation;
pub use s3_public::S3PublicAccessRemediation;
pub use scale_up::ScaleUpCapacityRemediation;
pub use scan::AwsScan;
pub use tags::AwsResourceTags;
pub use volume_encryption::VolumeEncryptionRemediation;

/// Every AWS fix, built once per process (a Lambda cold start) from one set of SDK clients
/// (shared, so this is cheap): the registry the pipeline looks fixes up in.
pub fn aws_fixes(clients: AwsClients) -> FixRegistry {
    let fixes: [Arc<dyn Remediation>; 7] = [
        Arc::new(S3PublicAccessRemediation::new(clients.clone())),
        Arc::new(OpenIngressRemediation::new(clients.clone())),
        Arc::new(IdleInstanceRemediation::new(clients.clone())),
        Arc::new(VolumeEncryptionRemediation::new(clients.clone())),
        Arc::new(ScaleUpCapacityRemediation::new(clients.clone())),
        Arc::new(RestartServiceRemediation::new(clients.clone())),
        Arc::new(RollbackDeploymentRemediation::new(clients)),
    ];
    let mut registry = FixRegistry::new();
    for fix in fixes {
        if let Err(e) = registry.register(fix) {
            // The fixes above cover distinct pairs (a unit test checks it); should that ever
            // break, the later fix is left out and said so, rather than the handler failing.
            tracing::error!(error = %e, "an AWS fix was not registered");
        }
    }
    registry
}

/// The registry as the CLI asks it (what each fix needs, what it covers): building clients
/// makes no request, so it needs no account.
fn offline_fixes() -> FixRegistry {
    let offline = SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .build();
    aws_fixes(AwsClients::new(&offline))
}

/// Every (action, resource type) pair an AWS fix covers: what `approvals init` says an
/// approval does on AWS today.
pub fn fix_pairs() -> Vec<(Action, &'static str)> {
    offline_fixes().pairs()
}

/// The IAM permissions the functions' role needs, deduplicated and sorted by action then
/// resource: every registered fix's (derived from [`aws_fixes`]), the tag reads of the
/// enrich step, and the scan's reads; nothing more.
pub fn all_required_permissions() -> Vec<RequiredPermission> {
    let fixes = offline_fixes().required_permissions();
    // Last: where a fix already needs a permission, its reason is the one kept.
    merge_permissions([fixes.as_slice(), tags::PERMISSIONS, scan::PERMISSIONS])
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_config::{BehaviorVersion, Region};
    use escher_core::approvals::Action;

    #[test]
    fn every_fix_is_registered_for_its_pairs_and_nothing_else() {
        let config = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .build();
        let fixes = aws_fixes(AwsClients::new(&config));
        assert_eq!(fixes.fixes().count(), 7, "no fix was refused: {fixes:?}");
        assert_eq!(
            fixes.pairs(),
            [
                (Action::EncryptVolume, "ebs_volume"),
                (Action::MakeBucketPrivate, "s3_bucket"),
                (Action::RestartService, "ec2_instance"),
                (Action::RestartService, "ecs_service"),
                (Action::RevokeOpenIngress, "security_group"),
                (Action::RollbackDeployment, "cloudformation_stack"),
                (Action::RollbackDeployment, "ecs_service"),
                (Action::RollbackDeployment, "lambda_function"),
                (Action::ScaleUpCapacity, "autoscaling_group"),
                (Action::ScaleUpCapacity, "ebs_volume"),
                (Action::ScaleUpCapacity, "ec2_instance"),
                (Action::ScaleUpCapacity, "rds_instance"),
                (Action::StopIdleInstance, "ec2_instance"),
            ]
        );
        let bucket = fixes
            .lookup(Action::MakeBucketPrivate, "s3_bucket")
            .expect("the bucket fix");
        assert!(!bucket.required_permissions().is_empty());
        for (action, kind) in [
            (Action::MakeBucketPrivate, "ec2_instance"),
            (Action::RestartService, "rds_instance"),
            (Action::ScaleUpCapacity, "lambda_function"),
            (Action::RollbackDeployment, "ec2_instance"),
        ] {
            assert!(fixes.lookup(action, kind).is_none(), "{action} on {kind}");
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
            "ec2:ModifyVolume",
            "rds:ModifyDBInstance",
            "autoscaling:SetDesiredCapacity",
            "ec2:RebootInstances",
            "ecs:UpdateService",
            "ecs:DescribeTaskDefinition",
            "lambda:UpdateAlias",
        ] {
            assert!(actions.contains(&wanted), "missing {wanted}");
        }
    }
}
