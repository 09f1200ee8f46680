//! The `unused_storage` check: managed disks attached to nothing, and old snapshots whose
//! disk is gone, each with what it costs a month.

use std::collections::BTreeSet;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use escher_core::resource_types::azure as azure_types;
use escher_core::scan::{CheckScope, Finding, ScanCheck, ScanContext, ScanError};
use escher_core::{CloudProvider, EventType};
use serde_json::{json, Value};

use super::{
    disk_price_per_gib, resource_of, round_cents, text, AzureScan, LIST_DISKS, LIST_SNAPSHOTS,
    SNAPSHOT_PRICE_PER_GIB,
};

pub(super) struct UnusedStorage(pub AzureScan);

const SNAPSHOT: &str = "azure_snapshot";

fn size_gib(item: &Value) -> f64 {
    item.pointer("/properties/diskSizeGB")
        .and_then(Value::as_f64)
        .unwrap_or_default()
}

#[async_trait]
impl ScanCheck for UnusedStorage {
    fn id(&self) -> &'static str {
        "unused_storage"
    }

    fn cloud(&self) -> CloudProvider {
        CloudProvider::Azure
    }

    fn scope(&self) -> CheckScope {
        CheckScope::Account
    }

    async fn run(&self, _: &str, scan: &ScanContext) -> Result<Vec<Finding>, ScanError> {
        let disks = self.0.list(&LIST_DISKS, "Microsoft.Compute/disks").await?;
        let snapshots = self
            .0
            .list(&LIST_SNAPSHOTS, "Microsoft.Compute/snapshots")
            .await?;
        let mut findings = Vec::new();
        for disk in &disks {
            if !text(disk, "/properties/diskState")
                .is_some_and(|s| s.eq_ignore_ascii_case("Unattached"))
            {
                continue;
            }
            let size = size_gib(disk);
            let sku = text(disk, "/sku/name").unwrap_or("Standard_LRS");
            let resource = resource_of(
                azure_types::DISK,
                disk,
                json!({"size_gib": size, "sku": sku, "disk_state": "Unattached"}),
            );
            let mut draft = self.0.draft(
                "unattached_disk",
                disk,
                EventType::ResourceUnused,
                resource.clone(),
                format!(
                    "Managed disk {} ({size} GiB {sku}) is attached to nothing",
                    resource.name
                ),
            );
            draft.monthly_saving_usd = Some(round_cents(size * disk_price_per_gib(sku)));
            draft.manual_command = Some(format!(
                "az snapshot create --source {id} -g {group} -n {name}-final && az disk delete --ids {id}",
                id = resource.id,
                group = crate::ids::value_after(&resource.id, "resourceGroups").unwrap_or("<resource group>"),
                name = resource.name,
            ));
            draft.questions = vec![
                "Was this disk detached on purpose, to be attached again?".into(),
                "Is a snapshot enough to keep its data?".into(),
            ];
            findings.push(draft.finish(scan));
        }
        let live: BTreeSet<String> = disks
            .iter()
            .filter_map(|d| text(d, "/id"))
            .map(str::to_ascii_lowercase)
            .collect();
        let cutoff = scan.started_at - Duration::days(i64::from(scan.thresholds.snapshot_age_days));
        for snapshot in &snapshots {
            let created = text(snapshot, "/properties/timeCreated")
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc));
            let source = text(snapshot, "/properties/creationData/sourceResourceId");
            let orphaned = source.is_some_and(|s| !live.contains(&s.to_ascii_lowercase()));
            let old = created.is_some_and(|c| c < cutoff);
            if !orphaned || !old {
                continue;
            }
            let size = size_gib(snapshot);
            let resource = resource_of(
                SNAPSHOT,
                snapshot,
                json!({"size_gib": size, "source_disk": source, "created": created}),
            );
            let days = created
                .map(|c| (scan.started_at - c).num_days())
                .unwrap_or_default();
            let mut draft = self.0.draft(
                "old_snapshot",
                snapshot,
                EventType::ResourceUnused,
                resource.clone(),
                format!(
                    "Snapshot {} ({size} GiB, {days} days old) is of a disk that no longer exists",
                    resource.name
                ),
            );
            draft.monthly_saving_usd = Some(round_cents(size * SNAPSHOT_PRICE_PER_GIB));
            draft.manual_command = Some(format!("az snapshot delete --ids {}", resource.id));
            draft.questions = vec!["Is this snapshot a backup someone still needs?".into()];
            findings.push(draft.finish(scan));
        }
        Ok(findings)
    }
}
