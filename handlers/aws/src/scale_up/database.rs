//! An RDS instance's allocated storage one step larger (applied immediately, without
//! downtime). RDS takes a storage change of at least 10 %, one per 6 hours, and only on an
//! `available` instance; an instance with storage autoscaling grows by itself, and Aurora's
//! storage is the cluster's, so those are left alone.

use aws_sdk_rds::types::{DbInstance, Tag};
use escher_core::capacity::{GrowthAsk, GrowthLimits};
use escher_core::remediate::{RemediationError, VerificationCheck};
use escher_core::UnifiedEvent;

use super::{prices, Marker, Reading, MARKER_TAG};
use crate::calls::{Access, CallError, CallLog};
use crate::clients::AwsClients;
use crate::report::check;

/// RDS's largest allocated storage for most engines, in GiB.
const RDS_MAX_GIB: u64 = 65_536;

/// The instance identifier: the alarm's `DBInstanceIdentifier`, the ARN's last part, or the name.
pub(super) fn identifier(event: &UnifiedEvent) -> Result<String, RemediationError> {
    let from_dimension = event
        .resource
        .metadata
        .get("dimensions")
        .and_then(|d| d.get("DBInstanceIdentifier"))
        .and_then(|v| v.as_str());
    let from_arn = event.resource.id.rsplit_once(":db:").map(|(_, id)| id);
    from_dimension
        .or(from_arn)
        .or(Some(event.resource.name.as_str()))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or_else(|| RemediationError::InvalidEvent {
            action: escher_core::approvals::Action::ScaleUpCapacity,
            event_id: event.event_id.clone(),
            problem: format!(
                "the event names no database (resource id `{}`); fix the alarm's dimensions or act by hand",
                event.resource.id
            ),
        })
}

async fn describe(
    clients: &AwsClients,
    id: &str,
    log: &mut CallLog,
) -> Result<DbInstance, RemediationError> {
    let out = log
        .must(
            "rds",
            "DescribeDBInstances",
            id,
            Access::Read,
            clients
                .rds()
                .describe_db_instances()
                .db_instance_identifier(id)
                .send(),
        )
        .await?;
    out.db_instances()
        .iter()
        .find(|d| d.db_instance_identifier() == Some(id))
        .cloned()
        .ok_or_else(|| {
            log.fail(CallError {
                operation: "DescribeDBInstances",
                target: id.to_string(),
                code: None,
                transient: false,
                message: format!("database {id} was not found (deleted since the alarm?)"),
            })
        })
}

fn gib(value: Option<i32>) -> u64 {
    value
        .and_then(|v| u64::try_from(v).ok())
        .unwrap_or_default()
}

pub(super) async fn read(
    clients: &AwsClients,
    id: &str,
    limits: &GrowthLimits,
    log: &mut CallLog,
) -> Result<Reading, RemediationError> {
    let db = describe(clients, id, log).await?;
    let storage_type = db.storage_type().unwrap_or("gp2").to_string();
    let multi_az = db.multi_az().unwrap_or(false);
    let current = gib(db.allocated_storage());
    let engine = db.engine().unwrap_or_default();
    let status = db.db_instance_status().unwrap_or_default();
    let autoscaling_max = gib(db.max_allocated_storage());
    let not_now = if engine.starts_with("aurora") {
        Some("Aurora storage belongs to the cluster and grows by itself".to_string())
    } else if autoscaling_max > current {
        Some(format!(
            "storage autoscaling is on (up to {autoscaling_max} GiB), so RDS grows it by itself"
        ))
    } else if status != "available" {
        Some(format!(
            "it is `{status}`; RDS changes storage only on an available instance"
        ))
    } else if db
        .pending_modified_values()
        .and_then(|p| p.allocated_storage())
        .is_some()
    {
        Some("a storage change is already pending".to_string())
    } else {
        None
    };
    let (ceiling, ceiling_source) = if RDS_MAX_GIB < limits.max_storage_gib {
        (RDS_MAX_GIB, "RDS's largest storage".to_string())
    } else {
        (
            limits.max_storage_gib,
            "the approval's max_storage_gib".to_string(),
        )
    };
    let az = if multi_az { ", Multi-AZ" } else { "" };
    Ok(Reading {
        what: format!("database {id} ({storage_type}{az})"),
        marker: db
            .tag_list()
            .iter()
            .find(|t| t.key() == Some(MARKER_TAG))
            .and_then(|t| Marker::parse(t.value()?)),
        not_now,
        ask: GrowthAsk {
            current,
            unit: "GiB",
            ceiling,
            ceiling_source,
            // RDS refuses a storage increase of less than 10 %.
            min_step: current.div_ceil(10).max(1),
            unit_monthly_usd: prices::rds_gib_month(&storage_type, multi_az),
        },
    })
}

pub(super) async fn grow(
    clients: &AwsClients,
    id: &str,
    marker: &Marker,
    log: &mut CallLog,
) -> Result<(), RemediationError> {
    let db = log
        .must(
            "rds",
            "ModifyDBInstance",
            id,
            Access::Write,
            clients
                .rds()
                .modify_db_instance()
                .db_instance_identifier(id)
                .allocated_storage(i32::try_from(marker.to).unwrap_or(i32::MAX))
                .apply_immediately(true)
                .send(),
        )
        .await?;
    let arn = db
        .db_instance()
        .and_then(|d| d.db_instance_arn())
        .unwrap_or_default()
        .to_string();
    log.must(
        "rds",
        "AddTagsToResource",
        id,
        Access::Write,
        clients
            .rds()
            .add_tags_to_resource()
            .resource_name(arn)
            .tags(Tag::builder().key(MARKER_TAG).value(marker.value()).build())
            .send(),
    )
    .await?;
    Ok(())
}

/// The allocated storage reached, or RDS applying it (it takes minutes; the change is
/// accepted once it shows as pending or the instance is modifying).
pub(super) async fn checks_after(
    clients: &AwsClients,
    id: &str,
    to: u64,
    log: &mut CallLog,
) -> Result<Vec<VerificationCheck>, RemediationError> {
    let db = describe(clients, id, log).await?;
    let allocated = gib(db.allocated_storage());
    let pending = gib(db
        .pending_modified_values()
        .and_then(|p| p.allocated_storage()));
    let (observed, passed) = if allocated >= to {
        (format!("{allocated} GiB"), true)
    } else if pending >= to {
        (
            format!("{allocated} GiB, {pending} GiB being applied"),
            true,
        )
    } else {
        (format!("{allocated} GiB"), false)
    };
    Ok(vec![check(
        "allocated storage",
        format!("at least {to} GiB (or being applied)"),
        observed,
        passed,
    )])
}
