//! The nightly scan's AWS checks ([`escher_core::scan::ScanCheck`]), through the AWS SDK.
//!
//! Each check reads one region with the same helpers the remediations use to judge a
//! resource (a bucket's public access, a group's world-open rules, an instance's CPU), so
//! the scan and the fix never disagree about what "public", "open" or "idle" means. Every
//! listing is paginated (`with_page_size` makes pages small in tests).

mod admin_ports;
mod cost;
mod databases;
mod ebs;
mod instance_usage;
mod public_buckets;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ec2::types::{Filter, Snapshot, Tag, Volume};
use escher_core::remediate::RequiredPermission;
use escher_core::scan::{Finding, FindingDraft, ScanCheck, ScanContext, ScanError};
use escher_core::{CloudProvider, EventType, Resource};
use serde_json::Value;

use crate::calls::{classify, CallError};
use crate::clients::AwsClients;

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

/// An EC2 resource (`kind`, its ARN `arn`) with its tags, named by its `Name` tag or else
/// its `id`, and `metadata` (a JSON object) for the report.
fn ec2_resource(kind: &str, arn: String, id: &str, tags: &[Tag], metadata: Value) -> Resource {
    let tags: BTreeMap<String, String> = tags
        .iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
        .collect();
    Resource {
        kind: kind.into(),
        id: arn,
        name: tags.get("Name").cloned().unwrap_or_else(|| id.to_string()),
        tags,
        metadata: match metadata {
            Value::Object(fields) => fields,
            _ => serde_json::Map::new(),
        },
    }
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
            Aws::check(&shared, public_buckets::PublicBuckets),
            Aws::check(&shared, ebs::Ebs),
            Aws::check(&shared, admin_ports::OpenAdminPorts),
            Aws::check(&shared, databases::UnencryptedDatabases),
            Aws::check(&shared, instance_usage::InstanceUsage),
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
            .ec2()
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
            .ec2()
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

/// What one regional AWS check adds to the rest: its id and how it finds its findings.
/// [`Aws`] makes it an [`escher_core::scan::ScanCheck`] (cloud, region-bound clients).
#[async_trait]
trait AwsCheck: Send + Sync + 'static {
    /// Stable id, part of every finding's key (`public_bucket`, `open_admin_port`, …).
    const ID: &'static str;

    /// The findings in one region.
    async fn find(&self, at: InRegion<'_>) -> Result<Vec<Finding>, ScanError>;
}

/// Where an [`AwsCheck`] looks: the scan it belongs to, clients bound to the region, the
/// region, and the night's context.
#[derive(Clone, Copy)]
struct InRegion<'a> {
    aws: &'a AwsScan,
    clients: &'a AwsClients,
    region: &'a str,
    scan: &'a ScanContext,
}

impl<'a> InRegion<'a> {
    fn parts(self) -> (&'a AwsScan, &'a AwsClients, &'a str, &'a ScanContext) {
        (self.aws, self.clients, self.region, self.scan)
    }
}

/// An [`AwsCheck`] with the scan it belongs to.
struct Aws<C> {
    scan: Arc<AwsScan>,
    check: C,
}

impl<C: AwsCheck> Aws<C> {
    fn check(scan: &Arc<AwsScan>, check: C) -> Arc<dyn ScanCheck> {
        Arc::new(Aws {
            scan: Arc::clone(scan),
            check,
        })
    }
}

#[async_trait]
impl<C: AwsCheck> ScanCheck for Aws<C> {
    fn id(&self) -> &'static str {
        C::ID
    }

    fn cloud(&self) -> CloudProvider {
        CloudProvider::Aws
    }

    async fn run(&self, region: &str, scan: &ScanContext) -> Result<Vec<Finding>, ScanError> {
        let clients = self.scan.clients.in_region(region);
        let at = InRegion {
            aws: &self.scan,
            clients: &clients,
            region,
            scan,
        };
        self.check.find(at).await
    }
}
