//! Auto Scaling on moto: groups of a launch template's instances.

use aws_sdk_autoscaling::types::LaunchTemplateSpecification;
use aws_sdk_ec2::types::{InstanceType, RequestLaunchTemplateData};

use super::ec2::AMI;
use super::sdk_error;
use crate::names::unique;

/// A new group of `desired` `instance_type` instances (at most `max`) in `zone`, from a
/// launch template of its own; returns its name.
pub async fn group(
    autoscaling: &aws_sdk_autoscaling::Client,
    ec2: &aws_sdk_ec2::Client,
    zone: &str,
    instance_type: &str,
    desired: i32,
    max: i32,
) -> Result<String, String> {
    let name = unique("escher-asg");
    ec2.create_launch_template()
        .launch_template_name(&name)
        .launch_template_data(
            RequestLaunchTemplateData::builder()
                .image_id(AMI)
                .instance_type(InstanceType::from(instance_type))
                .build(),
        )
        .send()
        .await
        .map_err(|e| sdk_error(&format!("CreateLaunchTemplate {name}"), e))?;
    autoscaling
        .create_auto_scaling_group()
        .auto_scaling_group_name(&name)
        .launch_template(
            LaunchTemplateSpecification::builder()
                .launch_template_name(&name)
                .version("$Latest")
                .build(),
        )
        .min_size(0)
        .max_size(max)
        .desired_capacity(desired)
        .availability_zones(zone)
        .send()
        .await
        .map_err(|e| sdk_error(&format!("CreateAutoScalingGroup {name}"), e))?;
    Ok(name)
}

/// The group's desired capacity now.
pub async fn desired(autoscaling: &aws_sdk_autoscaling::Client, name: &str) -> Result<i32, String> {
    let out = autoscaling
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(name)
        .send()
        .await
        .map_err(|e| sdk_error(&format!("DescribeAutoScalingGroups {name}"), e))?;
    out.auto_scaling_groups()
        .first()
        .and_then(|g| g.desired_capacity())
        .ok_or_else(|| format!("no group {name}"))
}
