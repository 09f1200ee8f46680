//! The `resource.type` values (`UnifiedEvent.resource.type`) that the normalizers produce
//! and that the clouds' fixes, tag readers, checks and approvals match on, each named once.
//! Types a normalizer derives from the cloud's own type name (`azure_<singular>`, …) are not
//! listed; the ones code matches on are.

/// Amazon Web Services.
pub mod aws {
    pub const S3_BUCKET: &str = "s3_bucket";
    pub const EC2_INSTANCE: &str = "ec2_instance";
    pub const EBS_VOLUME: &str = "ebs_volume";
    pub const EBS_SNAPSHOT: &str = "ebs_snapshot";
    pub const SECURITY_GROUP: &str = "security_group";
    pub const RDS_INSTANCE: &str = "rds_instance";
    pub const RDS_CLUSTER: &str = "rds_cluster";
    pub const IAM_USER: &str = "iam_user";
    pub const LAMBDA_FUNCTION: &str = "lambda_function";
    pub const CLOUDWATCH_ALARM: &str = "cloudwatch_alarm";
    pub const AUTOSCALING_GROUP: &str = "autoscaling_group";
    pub const ECS_SERVICE: &str = "ecs_service";
    pub const CLOUDFORMATION_STACK: &str = "cloudformation_stack";
    /// The account itself (cost and account-wide findings).
    pub const ACCOUNT: &str = "aws_account";
}

/// Microsoft Azure.
pub mod azure {
    pub const VM: &str = "azure_vm";
    pub const NSG: &str = "azure_nsg";
    pub const NSG_RULE: &str = "azure_nsg_rule";
    pub const DISK: &str = "azure_disk";
    pub const STORAGE_ACCOUNT: &str = "azure_storage_account";
    pub const BLOB_CONTAINER: &str = "azure_blob_container";
    pub const SUBSCRIPTION: &str = "azure_subscription";
    pub const RESOURCE_GROUP: &str = "azure_resource_group";
    /// A resource whose ARM type could not be read.
    pub const RESOURCE: &str = "azure_resource";
}

/// Google Cloud.
pub mod gcp {
    pub const GCS_BUCKET: &str = "gcs_bucket";
    pub const GCE_INSTANCE: &str = "gce_instance";
    pub const GCE_FIREWALL: &str = "gce_firewall";
    pub const GCE_DISK: &str = "gce_disk";
    pub const PROJECT: &str = "gcp_project";
    /// A resource whose type could not be read.
    pub const RESOURCE: &str = "gcp_resource";
}
