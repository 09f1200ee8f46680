//! The `unused_storage` check: persistent disks attached to no VM (no `users`), and old
//! snapshots whose disk is gone (as on AWS and Azure: a snapshot of a live disk is its backup),
//! each with what it costs a month at the shipped prices.

use std::collections::BTreeSet;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use escher_core::resource_types::gcp as gcp_types;
use escher_core::scan::{CheckScope, Finding, ScanCheck, ScanContext, ScanError};
use escher_core::{CloudProvider, EventType};
use serde_json::{json, Value};

use super::prices::{disk_gb_month, snapshot_gb_month};
use super::{
    compute_name, region_of_zone, resource_of, round_cents, scan_error, text, GcpScan, GLOBAL,
    LIST_DISKS, LIST_SNAPSHOTS,
};
use crate::rest::CallLog;

pub(super) struct UnusedStorage(pub GcpScan);

/// Resource type of a Compute Engine snapshot (no fix acts on one).
const SNAPSHOT: &str = "gce_snapshot";

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// An int64 field, which Compute Engine sends as a string.
fn number(item: &Value, pointer: &str) -> Option<f64> {
    match item.pointer(pointer)? {
        Value::String(s) => s.parse().ok(),
        other => other.as_f64(),
    }
}

/// The last segment of a URL field (`…/zones/europe-west3-b` → `europe-west3-b`).
fn last_segment<'a>(item: &'a Value, pointer: &str) -> Option<&'a str> {
    text(item, pointer).and_then(|u| u.rsplit('/').next())
}

#[async_trait]
impl ScanCheck for UnusedStorage {
    fn id(&self) -> &'static str {
        "unused_storage"
    }

    fn cloud(&self) -> CloudProvider {
        CloudProvider::Gcp
    }

    fn scope(&self) -> CheckScope {
        CheckScope::Account
    }

    async fn run(&self, _: &str, scan: &ScanContext) -> Result<Vec<Finding>, ScanError> {
        let scan_of = &self.0;
        let project = &scan_of.project;
        let mut log = CallLog::metered(scan_of.meter.as_ref());
        let disks = log
            .aggregated_list(
                &scan_of.client,
                &LIST_DISKS,
                &format!("projects/{project}/aggregated/disks"),
                &[],
                "disks",
            )
            .await
            .map_err(scan_error)?;
        let snapshots = log
            .list(
                &scan_of.client,
                &LIST_SNAPSHOTS,
                &format!("projects/{project}/global/snapshots"),
                &[],
                "items",
            )
            .await
            .map_err(scan_error)?;
        let mut findings = Vec::new();
        for disk in &disks {
            let attached = disk
                .get("users")
                .and_then(Value::as_array)
                .is_some_and(|users| !users.is_empty());
            let (Some(id), Some(zone)) = (compute_name(disk), last_segment(disk, "/zone")) else {
                continue;
            };
            if attached {
                continue;
            }
            let region = region_of_zone(zone);
            let size = number(disk, "/sizeGb").unwrap_or_default();
            let kind = last_segment(disk, "/type").unwrap_or("pd-standard");
            let resource = resource_of(
                gcp_types::GCE_DISK,
                id,
                disk,
                json!({"size_gb": size, "disk_type": kind, "zone": zone}),
            );
            let name = resource.name.clone();
            let mut draft = scan_of.draft(
                "unattached_disk",
                region,
                EventType::ResourceUnused,
                resource,
                format!("Persistent disk {name} ({size} GB {kind}) is attached to no VM"),
            );
            draft.monthly_saving_usd = Some(round_cents(size * disk_gb_month(region, kind)));
            draft.manual_command = Some(format!(
                "gcloud compute snapshots create {name}-final --source-disk {name} --source-disk-zone {zone} --project {project} && gcloud compute disks delete {name} --zone {zone} --project {project}"
            ));
            draft.questions = vec![
                "Was this disk detached on purpose, to be attached again?".into(),
                "Is a snapshot enough to keep its data?".into(),
            ];
            findings.push(draft.finish(scan));
        }
        let live: BTreeSet<String> = disks.iter().filter_map(compute_name).collect();
        let cutoff = scan.started_at - Duration::days(i64::from(scan.thresholds.snapshot_age_days));
        for snapshot in &snapshots {
            let created = text(snapshot, "/creationTimestamp")
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc));
            let source = text(snapshot, "/sourceDisk").map(crate::ids::relative);
            let orphaned = source.is_some_and(|s| !live.contains(s));
            let (Some(created), Some(id)) = (created, compute_name(snapshot)) else {
                continue;
            };
            if !orphaned || created >= cutoff {
                continue;
            }
            let stored_gb = number(snapshot, "/storageBytes").unwrap_or_default() / GIB;
            let age = (scan.started_at - created).num_days();
            let resource = resource_of(
                SNAPSHOT,
                id,
                snapshot,
                json!({
                    "stored_gb": round_cents(stored_gb),
                    "age_days": age,
                    "source_disk": source,
                }),
            );
            let name = resource.name.clone();
            let mut draft = scan_of.draft(
                "old_snapshot",
                GLOBAL,
                EventType::ResourceUnused,
                resource,
                format!(
                    "Snapshot {name} ({stored_gb:.1} GB stored) is {age} days old and its disk {} is gone",
                    source.and_then(|s| s.rsplit('/').next()).unwrap_or("(unknown)")
                ),
            );
            // Snapshots are stored in a multi-region or region; the reference price ranks them.
            draft.monthly_saving_usd = Some(round_cents(stored_gb * snapshot_gb_month(GLOBAL)));
            draft.manual_command = Some(format!(
                "gcloud compute snapshots delete {name} --project {project}"
            ));
            draft.questions = vec![
                "Is this snapshot kept for a restore or an audit?".into(),
                "Would an archive snapshot or a retention policy do?".into(),
            ];
            findings.push(draft.finish(scan));
        }
        Ok(findings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int64_fields_are_read_from_strings_or_numbers() {
        let item = json!({"sizeGb": "200", "storageBytes": 1073741824u64});
        assert_eq!(number(&item, "/sizeGb"), Some(200.0));
        assert_eq!(number(&item, "/storageBytes"), Some(GIB));
        assert_eq!(number(&item, "/missing"), None);
    }
}
