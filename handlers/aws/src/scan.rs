//! The nightly scan's AWS checks ([`escher_core::scan::ScanCheck`]), through the AWS SDK.
//!
//! Each check reads one region with the same helpers the remediations use to judge a
//! resource (a bucket's public access, a group's world-open rules, an instance's CPU), so
//! the scan and the fix never disagree about what "public", "open" or "idle" means. Every
//! listing is paginated (`with_page_size` makes pages small in tests).

mod cost;

use escher_core::resource_types::aws as aws_types;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ec2::types::{Filter, Snapshot, Tag, Volume, VolumeState};
use chrono::{DateTime, Duration, Utc};
use escher_core::approvals::Action;
use escher_core::remediate::{RemediationError, RequiredPermission};
use escher_core::scan::{Finding, FindingDraft, ScanCheck, ScanContext, ScanError};
use escher_core::{CloudProvider, EventType, Resource};
use serde_json::{json, Value};

use crate::calls::{classify, CallError, CallLog};
use crate::clients::AwsClients;
use crate::idle_instance::{average_over, cpu_samples, judge, period_for, CpuSample, Idleness};
use crate::open_ingress::rules_of;
use crate::rightsizing::{size_down, SizeDown};
use crate::s3_public::read_state;
use crate::tags::AwsResourceTags;

/// What the scan reads, beyond what the remediations already need.
pub(crate) const PERMISSIONS: &[RequiredPermission] = &[
    RequiredPermission {
        action: "s3:ListAllMyBuckets",
        resource: "*",
        why: "the scan lists the account's buckets (ListBuckets has no resource-level permissions)",
    },
    RequiredPermission {
        action: "s3:GetBucketLocation",
        resource: "arn:${AWS::Partition}:s3:::*",
        why: "the scan attributes each bucket to its region",
    },
    RequiredPermission {
        action: "ec2:DescribeVolumes",
        resource: "*",
        why: "the scan finds unencrypted and unattached volumes (Describe calls have no resource-level permissions)",
    },
    RequiredPermission {
        action: "ec2:DescribeSnapshots",
        resource: "*",
        why: "the scan finds old snapshots of deleted volumes (Describe calls have no resource-level permissions)",
    },
    RequiredPermission {
        action: "ce:GetCostAndUsage",
        resource: "*",
        why: "the scan's cost summary reads yesterday's and this month's costs per service (Cost Explorer has no resource-level permissions)",
    },
    RequiredPermission {
        action: "rds:DescribeDBInstances",
        // Every region: the scan reads all the regions it is given, not only the stack's.
        resource: "arn:${AWS::Partition}:rds:*:${AWS::AccountId}:db:*",
        why: "the scan finds RDS instances whose storage is not encrypted",
    },
    RequiredPermission {
        action: "rds:DescribeDBClusters",
        resource: "arn:${AWS::Partition}:rds:*:${AWS::AccountId}:cluster:*",
        why: "the scan finds Aurora clusters whose storage is not encrypted",
    },
];

/// EBS list prices in USD per GB-month (us-east-1, 2026), by volume type; other regions
/// differ by a few percent, which is close enough to rank savings.
fn volume_price_per_gb(volume_type: &str) -> f64 {
    match volume_type {
        "gp3" => 0.08,
        "gp2" => 0.10,
        "io1" | "io2" => 0.125,
        "st1" => 0.045,
        "sc1" => 0.015,
        _ => 0.05,
    }
}

/// EBS snapshot storage, standard tier, USD per GB-month (an upper bound: snapshots are
/// incremental, so deleting one frees at most its volume's size).
const SNAPSHOT_PRICE_PER_GB: f64 = 0.05;

fn round_cents(usd: f64) -> f64 {
    (usd * 100.0).round() / 100.0
}

fn scan_error(e: CallError) -> ScanError {
    ScanError {
        message: match e.code() {
            Some("AccessDenied" | "UnauthorizedOperation" | "AccessDeniedException") => format!(
                "{}; the scan role needs this permission (escher-provision extend grants it)",
                e.message
            ),
            _ => e.message.clone(),
        },
        operation: e.operation.to_string(),
        resource: e.target,
        transient: e.transient,
    }
}

fn remediation_scan_error(operation: &str, resource: &str, e: RemediationError) -> ScanError {
    ScanError {
        operation: operation.to_string(),
        resource: resource.to_string(),
        transient: e.is_transient(),
        message: e.to_string(),
    }
}

fn ec2_tags(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
        .collect()
}

fn name_or_id(tags: &BTreeMap<String, String>, id: &str) -> String {
    tags.get("Name").cloned().unwrap_or_else(|| id.to_string())
}

/// The AWS scan for one account: its checks share the SDK clients.
#[derive(Debug, Clone)]
pub struct AwsScan {
    clients: AwsClients,
    account_id: String,
    page_size: Option<i32>,
}

impl AwsScan {
    pub fn new(clients: AwsClients, account_id: impl Into<String>) -> Self {
        AwsScan {
            clients,
            account_id: account_id.into(),
            page_size: None,
        }
    }

    /// Pages of at most `size` items (EC2 accepts 5 to 1000); the default is the API's.
    pub fn with_page_size(mut self, size: i32) -> Self {
        self.page_size = Some(size);
        self
    }

    /// Every AWS check.
    pub fn checks(&self) -> Vec<Arc<dyn ScanCheck>> {
        let shared = Arc::new(self.clone());
        vec![
            Arc::new(PublicBuckets(Arc::clone(&shared))),
            Arc::new(Ebs(Arc::clone(&shared))),
            Arc::new(OpenAdminPorts(Arc::clone(&shared))),
            Arc::new(UnencryptedDatabases(Arc::clone(&shared))),
            Arc::new(InstanceUsage(Arc::clone(&shared))),
            Arc::new(cost::Cost(shared)),
        ]
    }

    fn draft(
        &self,
        check: &'static str,
        region: &str,
        event_type: EventType,
        resource: Resource,
        title: String,
    ) -> FindingDraft {
        FindingDraft {
            check,
            cloud: CloudProvider::Aws,
            account_id: self.account_id.clone(),
            region: region.to_string(),
            event_type,
            resource,
            title,
            action: None,
            manual_command: None,
            monthly_saving_usd: None,
            questions: Vec::new(),
        }
    }

    fn arn(&self, region: &str, kind: &str, id: &str) -> String {
        format!("arn:aws:ec2:{region}:{}:{kind}/{id}", self.account_id)
    }

    async fn volumes(&self, clients: &AwsClients, region: &str) -> Result<Vec<Volume>, ScanError> {
        let mut pages = clients
            .ec2
            .describe_volumes()
            .set_max_results(self.page_size)
            .into_paginator()
            .items()
            .send();
        let mut volumes = Vec::new();
        while let Some(volume) = pages.next().await {
            volumes.push(volume.map_err(|e| scan_error(classify("DescribeVolumes", region, &e)))?);
        }
        Ok(volumes)
    }

    async fn own_snapshots(
        &self,
        clients: &AwsClients,
        region: &str,
    ) -> Result<Vec<Snapshot>, ScanError> {
        let mut pages = clients
            .ec2
            .describe_snapshots()
            .owner_ids("self")
            // The same again as a filter: moto ignores `OwnerIds` (and lists the public
            // snapshots of its built-in AMIs, ~1 300 per region), but applies filters.
            .filters(
                Filter::builder()
                    .name("owner-id")
                    .values(&self.account_id)
                    .build(),
            )
            .set_max_results(self.page_size)
            .into_paginator()
            .items()
            .send();
        let mut snapshots = Vec::new();
        while let Some(snapshot) = pages.next().await {
            snapshots
                .push(snapshot.map_err(|e| scan_error(classify("DescribeSnapshots", region, &e)))?);
        }
        Ok(snapshots)
    }
}

/// Buckets anyone on the internet can read (ACL grants or a public policy not blocked).
struct PublicBuckets(Arc<AwsScan>);

#[async_trait]
impl ScanCheck for PublicBuckets {
    fn id(&self) -> &'static str {
        "public_bucket"
    }

    fn cloud(&self) -> CloudProvider {
        CloudProvider::Aws
    }

    async fn run(&self, region: &str, scan: &ScanContext) -> Result<Vec<Finding>, ScanError> {
        let aws = &self.0;
        let clients = aws.clients.in_region(region);
        // No page size here: moto honours MaxBuckets but never returns the continuation
        // token, so small pages would silently drop buckets. Without it S3 returns up to
        // 10 000 buckets per page (the default quota) and the paginator follows any token.
        let mut pages = clients.s3.list_buckets().into_paginator().items().send();
        let mut names = Vec::new();
        while let Some(bucket) = pages.next().await {
            let bucket = bucket.map_err(|e| scan_error(classify("ListBuckets", region, &e)))?;
            let Some(name) = bucket.name() else { continue };
            let home = match bucket.bucket_region() {
                Some(r) => r.to_string(),
                None => bucket_region(&clients, name).await?,
            };
            if home == region {
                names.push(name.to_string());
            }
        }
        let tags = AwsResourceTags::new(clients.clone().into_owned());
        let mut findings = Vec::new();
        for name in names {
            let mut log = CallLog::metered(clients.meter());
            let state = read_state(&clients, &name, &mut log)
                .await
                .map_err(|e| remediation_scan_error("read public access", &name, e))?;
            let reasons = state.public_reasons();
            if reasons.is_empty() {
                continue;
            }
            let tags = tags
                .tags(aws_types::S3_BUCKET, &name, region)
                .await
                .map_err(|e| remediation_scan_error("GetBucketTagging", &name, e))?;
            let resource = Resource {
                kind: aws_types::S3_BUCKET.into(),
                id: format!("arn:aws:s3:::{name}"),
                name: name.clone(),
                tags,
                metadata: json!({ "public_because": reasons })
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            };
            let mut draft = aws.draft(
                "public_bucket",
                region,
                EventType::BucketPublic,
                resource,
                format!("S3 bucket {name} is public: {}", reasons.join("; ")),
            );
            draft.action = Some(Action::MakeBucketPrivate);
            draft.questions = vec![
                format!("Does anything serve files from {name} publicly on purpose (a website, a CDN origin)?"),
                "Who reads this bucket, and can they use signed URLs or a role instead?".into(),
            ];
            findings.push(draft.finish(scan));
        }
        Ok(findings)
    }
}

/// The region a bucket lives in; S3 reports us-east-1 as no location at all.
async fn bucket_region(clients: &AwsClients, bucket: &str) -> Result<String, ScanError> {
    let out = clients
        .s3
        .get_bucket_location()
        .bucket(bucket)
        .send()
        .await
        .map_err(|e| scan_error(classify("GetBucketLocation", bucket, &e)))?;
    Ok(out
        .location_constraint()
        .map(|c| c.as_str())
        .filter(|c| !c.is_empty())
        .unwrap_or("us-east-1")
        .to_string())
}

/// EBS from one listing of the volumes: unencrypted volumes, unattached volumes, and old
/// snapshots whose volume is gone.
struct Ebs(Arc<AwsScan>);

#[async_trait]
impl ScanCheck for Ebs {
    fn id(&self) -> &'static str {
        "ebs"
    }

    fn cloud(&self) -> CloudProvider {
        CloudProvider::Aws
    }

    async fn run(&self, region: &str, scan: &ScanContext) -> Result<Vec<Finding>, ScanError> {
        let aws = &self.0;
        let clients = aws.clients.in_region(region);
        let volumes = aws.volumes(&clients, region).await?;
        let mut findings = Vec::new();
        for volume in &volumes {
            let Some(id) = volume.volume_id() else {
                continue;
            };
            let tags = ec2_tags(volume.tags());
            let size = volume.size().unwrap_or_default();
            let kind = volume
                .volume_type()
                .map(|t| t.as_str().to_string())
                .unwrap_or_default();
            let resource = Resource {
                kind: aws_types::EBS_VOLUME.into(),
                id: aws.arn(region, "volume", id),
                name: name_or_id(&tags, id),
                tags,
                metadata: json!({
                    "volume_id": id,
                    "size_gib": size,
                    "volume_type": kind,
                    "state": volume.state().map(|s| s.as_str()),
                })
                .as_object()
                .cloned()
                .unwrap_or_default(),
            };
            if volume.encrypted() != Some(true) {
                let mut draft = aws.draft(
                    "unencrypted_volume",
                    region,
                    EventType::VolumeUnencrypted,
                    resource.clone(),
                    format!("EBS volume {id} ({size} GiB {kind}) is not encrypted"),
                );
                draft.action = Some(Action::EncryptVolume);
                draft.questions = vec![
                    "Does the volume hold personal or confidential data?".into(),
                    "Can its instance take the short stop the encrypted copy needs?".into(),
                ];
                findings.push(draft.finish(scan));
            }
            if volume.state() == Some(&VolumeState::Available) {
                let saving = round_cents(f64::from(size) * volume_price_per_gb(&kind));
                let mut draft = aws.draft(
                    "unattached_volume",
                    region,
                    EventType::ResourceUnused,
                    resource,
                    format!("EBS volume {id} ({size} GiB {kind}) is attached to nothing"),
                );
                draft.monthly_saving_usd = Some(saving);
                draft.manual_command = Some(format!(
                    "aws ec2 create-snapshot --region {region} --volume-id {id} --description 'before deleting the unattached volume' && aws ec2 delete-volume --region {region} --volume-id {id}"
                ));
                draft.questions = vec![
                    "Was this volume detached on purpose, to be attached again?".into(),
                    "Is a snapshot enough to keep its data?".into(),
                ];
                findings.push(draft.finish(scan));
            }
        }
        let existing: BTreeSet<&str> = volumes.iter().filter_map(|v| v.volume_id()).collect();
        let cutoff = scan.started_at - Duration::days(i64::from(scan.thresholds.snapshot_age_days));
        for snapshot in aws.own_snapshots(&clients, region).await? {
            let (Some(id), Some(started)) = (snapshot.snapshot_id(), snapshot.start_time()) else {
                continue;
            };
            let volume = snapshot.volume_id().unwrap_or_default();
            let Some(started) = DateTime::<Utc>::from_timestamp(started.secs(), 0) else {
                continue;
            };
            if existing.contains(volume) || started > cutoff {
                continue;
            }
            let size = snapshot.volume_size().unwrap_or_default();
            let age_days = (scan.started_at - started).num_days();
            let tags = ec2_tags(snapshot.tags());
            let resource = Resource {
                kind: aws_types::EBS_SNAPSHOT.into(),
                id: format!("arn:aws:ec2:{region}::snapshot/{id}"),
                name: name_or_id(&tags, id),
                tags,
                metadata: json!({
                    "snapshot_id": id,
                    "volume_id": volume,
                    "size_gib": size,
                    "started": started.to_rfc3339(),
                    "age_days": age_days,
                })
                .as_object()
                .cloned()
                .unwrap_or_default(),
            };
            let mut draft = aws.draft(
                "orphaned_snapshot",
                region,
                EventType::ResourceUnused,
                resource,
                format!(
                    "EBS snapshot {id} ({size} GiB) is {age_days} days old and its volume {volume} is gone"
                ),
            );
            draft.monthly_saving_usd = Some(round_cents(f64::from(size) * SNAPSHOT_PRICE_PER_GB));
            draft.manual_command = Some(format!(
                "aws ec2 delete-snapshot --region {region} --snapshot-id {id}"
            ));
            draft.questions = vec![
                "Is this snapshot a backup someone must keep (compliance, retention)?".into(),
                "Is an AMI still built from it?".into(),
            ];
            findings.push(draft.finish(scan));
        }
        Ok(findings)
    }
}

/// RDS instances and Aurora clusters whose storage is not encrypted. RDS cannot encrypt a
/// database in place, so there is no Escher fix: the finding's command is the AWS CLI
/// sequence that makes an encrypted copy (snapshot → encrypted copy → restore).
struct UnencryptedDatabases(Arc<AwsScan>);

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
impl ScanCheck for UnencryptedDatabases {
    fn id(&self) -> &'static str {
        "unencrypted_database"
    }

    fn cloud(&self) -> CloudProvider {
        CloudProvider::Aws
    }

    async fn run(&self, region: &str, scan: &ScanContext) -> Result<Vec<Finding>, ScanError> {
        let aws = &self.0;
        let clients = aws.clients.in_region(region);
        let mut findings = Vec::new();
        let mut pages = clients
            .rds
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
                "unencrypted_database",
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
            .rds
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
                "unencrypted_database",
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

/// Security groups with an admin or database port open to 0.0.0.0/0 or ::/0.
struct OpenAdminPorts(Arc<AwsScan>);

#[async_trait]
impl ScanCheck for OpenAdminPorts {
    fn id(&self) -> &'static str {
        "open_admin_port"
    }

    fn cloud(&self) -> CloudProvider {
        CloudProvider::Aws
    }

    async fn run(&self, region: &str, scan: &ScanContext) -> Result<Vec<Finding>, ScanError> {
        let aws = &self.0;
        let clients = aws.clients.in_region(region);
        let mut pages = clients
            .ec2
            .describe_security_groups()
            .set_max_results(aws.page_size)
            .into_paginator()
            .items()
            .send();
        let ports = &scan.thresholds.admin_ports;
        let mut findings = Vec::new();
        while let Some(group) = pages.next().await {
            let group =
                group.map_err(|e| scan_error(classify("DescribeSecurityGroups", region, &e)))?;
            let Some(group_id) = group.group_id() else {
                continue;
            };
            let open: Vec<_> = rules_of(group.ip_permissions())
                .into_iter()
                .filter(|rule| rule.is_world_open())
                .filter_map(|rule| {
                    let exposed: Vec<u16> = ports
                        .iter()
                        .copied()
                        .filter(|p| covers(&rule, *p))
                        .collect();
                    (!exposed.is_empty()).then_some((rule, exposed))
                })
                .collect();
            if open.is_empty() {
                continue;
            }
            let exposed: BTreeSet<u16> = open.iter().flat_map(|(_, p)| p.clone()).collect();
            // The shape the normalizers write and `revoke_open_ingress` reads, so an approved
            // fix revokes exactly these rules.
            let permissions: Vec<Value> = open
                .iter()
                .map(|(rule, _)| {
                    json!({
                        "protocol": rule.protocol,
                        "from_port": rule.from_port,
                        "to_port": rule.to_port,
                        "cidrs": [rule.cidr],
                    })
                })
                .collect();
            let words: Vec<String> = open.iter().map(|(rule, _)| rule.words()).collect();
            let tags = ec2_tags(group.tags());
            let name = group.group_name().unwrap_or(group_id).to_string();
            let resource = Resource {
                kind: aws_types::SECURITY_GROUP.into(),
                id: aws.arn(region, "security-group", group_id),
                name: name.clone(),
                tags,
                metadata: json!({
                    "group_id": group_id,
                    "vpc_id": group.vpc_id(),
                    "open_permissions": permissions,
                    "admin_ports": exposed,
                })
                .as_object()
                .cloned()
                .unwrap_or_default(),
            };
            let ports_text: Vec<String> = exposed.iter().map(u16::to_string).collect();
            let mut draft = aws.draft(
                "open_admin_port",
                region,
                EventType::FirewallOpen,
                resource,
                format!(
                    "Security group {name} ({group_id}) opens port {} to the internet: {}",
                    ports_text.join(", "),
                    words.join("; ")
                ),
            );
            draft.action = Some(Action::RevokeOpenIngress);
            draft.questions = vec![
                "Who connects on these ports, and from which addresses?".into(),
                "Could they use Session Manager or a VPN instead?".into(),
            ];
            findings.push(draft.finish(scan));
        }
        Ok(findings)
    }
}

fn covers(rule: &crate::open_ingress::Rule, port: u16) -> bool {
    let port = i32::from(port);
    match (rule.protocol.as_str(), rule.from_port, rule.to_port) {
        ("-1", _, _) => true,
        ("tcp" | "udp", Some(from), Some(to)) => from <= port && port <= to,
        _ => false,
    }
}

/// Running instances, judged by their CloudWatch CPU: idle (every period of `idle_days`
/// below `idle_cpu_percent`, the `stop_idle_instance` judgement) or, when not idle,
/// over-provisioned (average over `overprovisioned_days` below
/// `overprovisioned_cpu_percent`, with one size down in the family). One check for both,
/// so an idle instance is never also reported as over-provisioned.
struct InstanceUsage(Arc<AwsScan>);

#[async_trait]
impl ScanCheck for InstanceUsage {
    fn id(&self) -> &'static str {
        "instance_usage"
    }

    fn cloud(&self) -> CloudProvider {
        CloudProvider::Aws
    }

    async fn run(&self, region: &str, scan: &ScanContext) -> Result<Vec<Finding>, ScanError> {
        let aws = &self.0;
        let clients = aws.clients.in_region(region);
        let mut pages = clients
            .ec2
            .describe_instances()
            .filters(
                Filter::builder()
                    .name("instance-state-name")
                    .values("running")
                    .build(),
            )
            .set_max_results(aws.page_size)
            .into_paginator()
            .items()
            .send();
        let mut findings = Vec::new();
        while let Some(reservation) = pages.next().await {
            let reservation =
                reservation.map_err(|e| scan_error(classify("DescribeInstances", region, &e)))?;
            for instance in reservation.instances() {
                let Some(id) = instance.instance_id() else {
                    continue;
                };
                let tags = ec2_tags(instance.tags());
                let instance_type = instance
                    .instance_type()
                    .map(|t| t.as_str().to_string())
                    .unwrap_or_default();
                let resource = Resource {
                    kind: aws_types::EC2_INSTANCE.into(),
                    id: aws.arn(region, "instance", id),
                    name: name_or_id(&tags, id),
                    tags,
                    metadata: serde_json::Map::new(),
                };
                let seen = SeenInstance {
                    aws,
                    clients: &clients,
                    region,
                    scan,
                    id,
                    instance_type: &instance_type,
                };
                let finding = match seen.idle_finding(resource.clone()).await? {
                    Some(finding) => Some(finding),
                    None => seen.oversized_finding(resource).await?,
                };
                findings.extend(finding);
            }
        }
        Ok(findings)
    }
}

/// One running instance being judged by its CPU.
struct SeenInstance<'a> {
    aws: &'a AwsScan,
    clients: &'a AwsClients,
    region: &'a str,
    scan: &'a ScanContext,
    id: &'a str,
    instance_type: &'a str,
}

impl SeenInstance<'_> {
    /// The CPU datapoints of the last `days`, with the window in hours and the period
    /// they were asked at.
    async fn cpu(&self, days: u32) -> Result<(Vec<CpuSample>, f64, i64), ScanError> {
        let window = Duration::days(i64::from(days));
        let period = period_for(window);
        let mut log = CallLog::metered(self.clients.meter());
        let samples = cpu_samples(self.clients, self.id, window, period, &mut log)
            .await
            .map_err(|e| remediation_scan_error("GetMetricStatistics", self.id, e))?;
        Ok((samples, window.num_hours() as f64, period))
    }

    async fn idle_finding(&self, mut resource: Resource) -> Result<Option<Finding>, ScanError> {
        let SeenInstance {
            aws,
            region,
            scan,
            id,
            instance_type,
            ..
        } = *self;
        let thresholds = &scan.thresholds;
        let (samples, window_hours, period) = self.cpu(thresholds.idle_days).await?;
        let Idleness::Idle { average, peak } =
            judge(&samples, thresholds.idle_cpu_percent, window_hours, period)
        else {
            return Ok(None);
        };
        resource.metadata = json!({
            "instance_id": id,
            "instance_type": instance_type,
            "average_cpu_percent": round_cents(average),
            "peak_cpu_percent": round_cents(peak),
            // What `stop_idle_instance` reads as the alarm's threshold, so an approved stop
            // judges idleness by the same number.
            "metric_name": "CPUUtilization",
            "comparison_operator": "LessThanThreshold",
            "threshold": thresholds.idle_cpu_percent,
        })
        .as_object()
        .cloned()
        .unwrap_or_default();
        let mut draft = aws.draft(
        "idle_instance",
        region,
        EventType::InstanceIdle,
        resource,
        format!(
            "EC2 instance {id} ({instance_type}) averaged {average:.1} % CPU over {} days (peak {peak:.1} %)",
            thresholds.idle_days
        ),
    );
        draft.action = Some(Action::StopIdleInstance);
        draft.questions = vec![
            "Is this a standby or a batch host that is idle by design?".into(),
            "Would a smaller instance or a schedule do?".into(),
        ];
        Ok(Some(draft.finish(scan)))
    }

    async fn oversized_finding(
        &self,
        mut resource: Resource,
    ) -> Result<Option<Finding>, ScanError> {
        let SeenInstance {
            aws,
            region,
            scan,
            id,
            instance_type,
            ..
        } = *self;
        let thresholds = &scan.thresholds;
        let (samples, window_hours, period) = self.cpu(thresholds.overprovisioned_days).await?;
        // Too few datapoints (a new instance, one often stopped) prove nothing either way.
        let Ok(average) = average_over(&samples, window_hours, period) else {
            return Ok(None);
        };
        if average >= thresholds.overprovisioned_cpu_percent {
            return Ok(None);
        }
        let days = thresholds.overprovisioned_days;
        let (to, saving, saving_words) = match size_down(instance_type, average) {
            SizeDown::Keep => return Ok(None),
            SizeDown::Priced {
                to,
                monthly_saving_usd,
                projected_cpu_percent,
                price_region,
                price_date,
            } => {
                let words = format!(
                "saving ${monthly_saving_usd:.2} a month at {price_region} on-demand prices ({price_date}); about {projected_cpu_percent:.0} % CPU there"
            );
                (to, Some(monthly_saving_usd), words)
            }
            SizeDown::Unpriced { to } => {
                let words = format!(
                "{instance_type} is not in Escher's price table, so no saving is given (check that the family offers {to})"
            );
                (to, None, words)
            }
        };
        resource.metadata = json!({
            "instance_id": id,
            "instance_type": instance_type,
            "suggested_type": to,
            "average_cpu_percent": round_cents(average),
            "window_days": days,
        })
        .as_object()
        .cloned()
        .unwrap_or_default();
        let mut draft = aws.draft(
        "overprovisioned_instance",
        region,
        EventType::InstanceOverprovisioned,
        resource,
        format!(
            "EC2 instance {id} ({instance_type}) averaged {average:.1} % CPU over {days} days: {to} would do, {saving_words}"
        ),
    );
        draft.monthly_saving_usd = saving;
        draft.manual_command = Some(resize_command(region, id, &to));
        draft.questions = vec![
        "Is its memory use below what the smaller size has (CloudWatch shows memory only with the agent)?".into(),
        "Are there peaks this window does not show (month end, seasonal traffic)?".into(),
        "Can it take the stop and start the change needs?".into(),
    ];
        Ok(Some(draft.finish(scan)))
    }
}

/// Stop, change the type, start: EC2 changes an instance's type only while it is stopped.
fn resize_command(region: &str, id: &str, to: &str) -> String {
    format!(
        "aws ec2 stop-instances --region {region} --instance-ids {id} \
&& aws ec2 wait instance-stopped --region {region} --instance-ids {id} \
&& aws ec2 modify-instance-attribute --region {region} --instance-id {id} --instance-type Value={to} \
&& aws ec2 start-instances --region {region} --instance-ids {id}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(protocol: &str, from: Option<i32>, to: Option<i32>) -> crate::open_ingress::Rule {
        crate::open_ingress::Rule {
            protocol: protocol.into(),
            from_port: from,
            to_port: to,
            cidr: "0.0.0.0/0".into(),
            description: None,
        }
    }

    #[test]
    fn a_rule_covers_the_ports_in_its_range_and_all_traffic_covers_every_port() {
        assert!(covers(&rule("tcp", Some(22), Some(22)), 22));
        assert!(covers(&rule("tcp", Some(0), Some(65535)), 3389));
        assert!(!covers(&rule("tcp", Some(80), Some(443)), 22));
        assert!(covers(&rule("-1", None, None), 5432));
        assert!(!covers(&rule("icmp", Some(-1), Some(-1)), 22));
    }
}
