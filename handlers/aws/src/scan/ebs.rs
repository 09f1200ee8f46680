//! The `ebs` check: unencrypted volumes, unattached volumes and old snapshots of deleted volumes, from one listing.

use std::collections::BTreeSet;

use async_trait::async_trait;
use aws_sdk_ec2::types::VolumeState;
use chrono::{DateTime, Duration, Utc};
use escher_core::approvals::Action;
use escher_core::resource_types::aws as aws_types;
use escher_core::scan::{Finding, ScanError};
use escher_core::EventType;
use serde_json::json;

use super::*;

/// EBS from one listing of the volumes: unencrypted volumes, unattached volumes, and old
/// snapshots whose volume is gone.
pub(super) struct Ebs;

#[async_trait]
impl AwsCheck for Ebs {
    const ID: &'static str = "ebs";

    async fn find(&self, at: InRegion<'_>) -> Result<Vec<Finding>, ScanError> {
        let (aws, clients, region, scan) = at.parts();
        let volumes = aws.volumes(clients, region).await?;
        let mut findings = Vec::new();
        for volume in &volumes {
            let Some(id) = volume.volume_id() else {
                continue;
            };
            let size = volume.size().unwrap_or_default();
            let kind = volume
                .volume_type()
                .map(|t| t.as_str().to_string())
                .unwrap_or_default();
            let resource = ec2_resource(
                aws_types::EBS_VOLUME,
                aws.arn(region, "volume", id),
                id,
                volume.tags(),
                json!({
                    "volume_id": id,
                    "size_gib": size,
                    "volume_type": kind,
                    "state": volume.state().map(|s| s.as_str()),
                }),
            );
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
        for snapshot in aws.own_snapshots(clients, region).await? {
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
            let resource = ec2_resource(
                aws_types::EBS_SNAPSHOT,
                format!("arn:aws:ec2:{region}::snapshot/{id}"),
                id,
                snapshot.tags(),
                json!({
                    "snapshot_id": id,
                    "volume_id": volume,
                    "size_gib": size,
                    "started": started.to_rfc3339(),
                    "age_days": age_days,
                }),
            );
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
