//! EC2 on moto: instances and their root volumes, volumes, snapshots, security groups.

use aws_sdk_ec2::types::{
    Instance, InstanceStateName, InstanceType, IpPermission, IpRange, ResourceType, Tag,
    TagSpecification, VolumeType,
};
use aws_sdk_ec2::Client;

use super::sdk_error;

/// An image moto ships in every region and account.
pub const AMI: &str = "ami-12c6146b";

/// Runs one instance of `instance_type` (e.g. `t3.micro`); returns its id.
pub async fn run_instance(ec2: &Client, instance_type: &str) -> Result<String, String> {
    let out = ec2
        .run_instances()
        .image_id(AMI)
        .instance_type(InstanceType::from(instance_type))
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .map_err(|e| sdk_error("RunInstances", e))?;
    out.instances()
        .first()
        .and_then(|i| i.instance_id())
        .map(str::to_string)
        .ok_or_else(|| "RunInstances returned no instance".into())
}

/// What moto says of `instance`.
async fn describe(ec2: &Client, instance: &str) -> Result<Instance, String> {
    let described = ec2
        .describe_instances()
        .instance_ids(instance)
        .send()
        .await
        .map_err(|e| sdk_error(&format!("DescribeInstances {instance}"), e))?;
    described
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .next()
        .cloned()
        .ok_or_else(|| format!("DescribeInstances knows no {instance}"))
}

/// The root volume of `instance`: moto gives every instance one, unencrypted and attached.
pub async fn root_volume(ec2: &Client, instance: &str) -> Result<String, String> {
    describe(ec2, instance)
        .await?
        .block_device_mappings()
        .iter()
        .find_map(|m| m.ebs()?.volume_id())
        .map(str::to_string)
        .ok_or_else(|| format!("instance {instance} has no root volume"))
}

/// The state `instance` is in.
pub async fn instance_state(ec2: &Client, instance: &str) -> Result<InstanceStateName, String> {
    describe(ec2, instance)
        .await?
        .state()
        .and_then(|s| s.name())
        .cloned()
        .ok_or_else(|| format!("instance {instance} has no state"))
}

/// A gp3 volume of `size_gib` in `zone`, encrypted or not; returns its id.
pub async fn create_volume(
    ec2: &Client,
    zone: &str,
    size_gib: i32,
    encrypted: bool,
) -> Result<String, String> {
    let out = ec2
        .create_volume()
        .availability_zone(zone)
        .size(size_gib)
        .volume_type(VolumeType::Gp3)
        .encrypted(encrypted)
        .send()
        .await
        .map_err(|e| sdk_error("CreateVolume", e))?;
    out.volume_id()
        .map(str::to_string)
        .ok_or_else(|| "CreateVolume returned no volume id".into())
}

/// A snapshot of `volume`; returns its id.
pub async fn create_snapshot(ec2: &Client, volume: &str) -> Result<String, String> {
    let out = ec2
        .create_snapshot()
        .volume_id(volume)
        .send()
        .await
        .map_err(|e| sdk_error("CreateSnapshot", e))?;
    out.snapshot_id()
        .map(str::to_string)
        .ok_or_else(|| "CreateSnapshot returned no snapshot id".into())
}

/// An ingress rule: TCP `port` from `cidr`.
pub fn tcp(port: i32, cidr: &str) -> IpPermission {
    IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(port)
        .to_port(port)
        .ip_ranges(IpRange::builder().cidr_ip(cidr).build())
        .build()
}

/// The ingress rules of security group `group`, as moto has them now.
pub async fn ingress_rules(ec2: &Client, group: &str) -> Result<Vec<IpPermission>, String> {
    let described = ec2
        .describe_security_groups()
        .group_ids(group)
        .send()
        .await
        .map_err(|e| sdk_error(&format!("DescribeSecurityGroups {group}"), e))?;
    described
        .security_groups()
        .first()
        .map(|g| g.ip_permissions().to_vec())
        .ok_or_else(|| format!("DescribeSecurityGroups knows no {group}"))
}

/// A security group named `name`, tagged with `tags`, allowing `ingress`; returns its id.
pub async fn security_group(
    ec2: &Client,
    name: &str,
    tags: &[(&str, &str)],
    ingress: Vec<IpPermission>,
) -> Result<String, String> {
    let tagging = (!tags.is_empty()).then(|| {
        let mut spec = TagSpecification::builder().resource_type(ResourceType::SecurityGroup);
        for (k, v) in tags {
            spec = spec.tags(Tag::builder().key(*k).value(*v).build());
        }
        vec![spec.build()]
    });
    let out = ec2
        .create_security_group()
        .group_name(name)
        .description("escher test")
        .set_tag_specifications(tagging)
        .send()
        .await
        .map_err(|e| sdk_error(&format!("CreateSecurityGroup {name}"), e))?;
    let id = out
        .group_id()
        .ok_or("CreateSecurityGroup returned no id")?
        .to_string();
    if !ingress.is_empty() {
        ec2.authorize_security_group_ingress()
            .group_id(&id)
            .set_ip_permissions(Some(ingress))
            .send()
            .await
            .map_err(|e| sdk_error(&format!("AuthorizeSecurityGroupIngress {id}"), e))?;
    }
    Ok(id)
}
