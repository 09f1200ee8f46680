//! The `unencrypted_database` check: RDS instances and Aurora clusters whose storage is not encrypted.

use std::collections::BTreeMap;

use async_trait::async_trait;
use escher_core::resource_types::aws as aws_types;
use escher_core::scan::{Finding, ScanError};
use escher_core::{EventType, Resource};
use serde_json::json;

use super::*;
use crate::calls::classify;

/// RDS instances and Aurora clusters whose storage is not encrypted. RDS cannot encrypt a
/// database in place, so there is no Escher fix: the finding's command is the AWS CLI
/// sequence that makes an encrypted copy (snapshot → encrypted copy → restore).
pub(super) struct UnencryptedDatabases;

/// RDS accepts 20 to 100 records per page.
fn rds_page_size(size: Option<i32>) -> Option<i32> {
    size.map(|s| s.clamp(20, 100))
}

fn security_group_ids(groups: &[aws_sdk_rds::types::VpcSecurityGroupMembership]) -> Vec<String> {
    groups
        .iter()
        .filter_map(|g| g.vpc_security_group_id().map(str::to_string))
        .collect()
}

fn rds_tags(tags: &[aws_sdk_rds::types::Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
        .collect()
}

/// What the restore needs to land the copy where the original is: its subnet group and
/// security groups.
fn restore_placement(subnet_group: Option<&str>, security_groups: &[String]) -> String {
    let mut placement = String::new();
    if let Some(group) = subnet_group.filter(|g| !g.is_empty()) {
        placement.push_str(&format!(" --db-subnet-group-name {group}"));
    }
    if !security_groups.is_empty() {
        placement.push_str(&format!(
            " --vpc-security-group-ids {}",
            security_groups.join(" ")
        ));
    }
    placement
}

/// The encrypted copy of an RDS instance, with the AWS-managed RDS key (`alias/aws/rds`;
/// the reader may prefer a key of their own, one of the finding's questions).
fn encrypt_instance_command(
    region: &str,
    id: &str,
    class: &str,
    subnet_group: Option<&str>,
    security_groups: &[String],
) -> String {
    let plain = format!("{id}-before-encryption");
    let encrypted = format!("{id}-encrypted");
    let placement = restore_placement(subnet_group, security_groups);
    format!(
        "aws rds create-db-snapshot --region {region} --db-instance-identifier {id} --db-snapshot-identifier {plain} \
&& aws rds wait db-snapshot-available --region {region} --db-snapshot-identifier {plain} \
&& aws rds copy-db-snapshot --region {region} --source-db-snapshot-identifier {plain} --target-db-snapshot-identifier {encrypted} --kms-key-id alias/aws/rds \
&& aws rds wait db-snapshot-available --region {region} --db-snapshot-identifier {encrypted} \
&& aws rds restore-db-instance-from-db-snapshot --region {region} --db-instance-identifier {encrypted} --db-snapshot-identifier {encrypted} --db-instance-class {class}{placement}"
    )
}

/// The encrypted copy of an Aurora cluster; its instances are created in the restored
/// cluster afterwards (`aws rds create-db-instance --db-cluster-identifier …`).
fn encrypt_cluster_command(
    region: &str,
    id: &str,
    engine: &str,
    subnet_group: Option<&str>,
    security_groups: &[String],
) -> String {
    let plain = format!("{id}-before-encryption");
    let encrypted = format!("{id}-encrypted");
    let placement = restore_placement(subnet_group, security_groups);
    format!(
        "aws rds create-db-cluster-snapshot --region {region} --db-cluster-identifier {id} --db-cluster-snapshot-identifier {plain} \
&& aws rds wait db-cluster-snapshot-available --region {region} --db-cluster-snapshot-identifier {plain} \
&& aws rds copy-db-cluster-snapshot --region {region} --source-db-cluster-snapshot-identifier {plain} --target-db-cluster-snapshot-identifier {encrypted} --kms-key-id alias/aws/rds \
&& aws rds wait db-cluster-snapshot-available --region {region} --db-cluster-snapshot-identifier {encrypted} \
&& aws rds restore-db-cluster-from-snapshot --region {region} --db-cluster-identifier {encrypted} --snapshot-identifier {encrypted} --engine {engine}{placement}"
    )
}

fn database_questions() -> Vec<String> {
    vec![
        "Does the database hold personal or confidential data?".into(),
        "When can the application switch to the encrypted copy (its endpoint changes; writes after the snapshot must be replayed or paused)?".into(),
        "Should a customer-managed KMS key encrypt it instead of alias/aws/rds (needed to share snapshots with other accounts)?".into(),
    ]
}

#[async_trait]
impl AwsCheck for UnencryptedDatabases {
    const ID: &'static str = "unencrypted_database";

    async fn find(&self, at: InRegion<'_>) -> Result<Vec<Finding>, ScanError> {
        let (aws, clients, region, scan) = at.parts();
        let mut findings = Vec::new();
        let mut pages = clients
            .rds()
            .describe_db_instances()
            .set_max_records(rds_page_size(aws.page_size))
            .into_paginator()
            .items()
            .send();
        while let Some(db) = pages.next().await {
            let db = db.map_err(|e| scan_error(classify("DescribeDBInstances", region, &e)))?;
            // A cluster member's storage is the cluster's: reported once, as the cluster.
            if db.storage_encrypted() == Some(true) || db.db_cluster_identifier().is_some() {
                continue;
            }
            let Some(id) = db.db_instance_identifier() else {
                continue;
            };
            let class = db.db_instance_class().unwrap_or_default();
            let engine = db.engine().unwrap_or_default();
            let groups = security_group_ids(db.vpc_security_groups());
            let subnet_group = db.db_subnet_group().and_then(|g| g.db_subnet_group_name());
            let resource = Resource {
                kind: aws_types::RDS_INSTANCE.into(),
                id: db
                    .db_instance_arn()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("arn:aws:rds:{region}:{}:db:{id}", aws.account_id)),
                name: id.to_string(),
                tags: rds_tags(db.tag_list()),
                metadata: json!({
                    "db_instance_identifier": id,
                    "engine": engine,
                    "db_instance_class": class,
                    "allocated_storage_gib": db.allocated_storage(),
                    "multi_az": db.multi_az(),
                })
                .as_object()
                .cloned()
                .unwrap_or_default(),
            };
            let mut draft = aws.draft(
                Self::ID,
                region,
                EventType::VolumeUnencrypted,
                resource,
                format!("RDS instance {id} ({engine}, {class}) stores its data unencrypted"),
            );
            draft.manual_command = Some(encrypt_instance_command(
                region,
                id,
                class,
                subnet_group,
                &groups,
            ));
            draft.questions = database_questions();
            findings.push(draft.finish(scan));
        }
        let mut pages = clients
            .rds()
            .describe_db_clusters()
            .set_max_records(rds_page_size(aws.page_size))
            .into_paginator()
            .items()
            .send();
        while let Some(cluster) = pages.next().await {
            let cluster =
                cluster.map_err(|e| scan_error(classify("DescribeDBClusters", region, &e)))?;
            if cluster.storage_encrypted() == Some(true) {
                continue;
            }
            let Some(id) = cluster.db_cluster_identifier() else {
                continue;
            };
            let engine = cluster.engine().unwrap_or_default();
            let groups = security_group_ids(cluster.vpc_security_groups());
            let resource = Resource {
                kind: aws_types::RDS_CLUSTER.into(),
                id: cluster
                    .db_cluster_arn()
                    .map(str::to_string)
                    .unwrap_or_else(|| {
                        format!("arn:aws:rds:{region}:{}:cluster:{id}", aws.account_id)
                    }),
                name: id.to_string(),
                tags: rds_tags(cluster.tag_list()),
                metadata: json!({
                    "db_cluster_identifier": id,
                    "engine": engine,
                    "members": cluster
                        .db_cluster_members()
                        .iter()
                        .filter_map(|m| m.db_instance_identifier())
                        .collect::<Vec<_>>(),
                })
                .as_object()
                .cloned()
                .unwrap_or_default(),
            };
            let mut draft = aws.draft(
                Self::ID,
                region,
                EventType::VolumeUnencrypted,
                resource,
                format!("RDS cluster {id} ({engine}) stores its data unencrypted"),
            );
            draft.manual_command = Some(encrypt_cluster_command(
                region,
                id,
                engine,
                cluster.db_subnet_group(),
                &groups,
            ));
            draft.questions = database_questions();
            findings.push(draft.finish(scan));
        }
        Ok(findings)
    }
}
