//! An EBS volume one step larger: ModifyVolume, then the modification waited for (the new
//! size is usable once it is `optimizing`), within EBS's one modification per 6 hours.

use std::time::Duration as StdDuration;

use aws_sdk_ec2::types::VolumeModificationState;
use chrono::{DateTime, Duration, Utc};
use escher_core::capacity::{GrowthAsk, GrowthLimits};
use escher_core::remediate::{RemediationError, VerificationCheck};
use escher_core::UnifiedEvent;

use super::{prices, Marker, Reading, Subject, MARKER_TAG};
use crate::calls::{Access, CallLog};
use crate::clients::AwsClients;
use crate::report::check;

/// EBS accepts one modification of a volume per 6 hours.
const MODIFICATION_COOLDOWN_HOURS: i64 = 6;

/// How long the fix waits for a modification to reach `optimizing` before reporting it
/// unverified: within the alert function's default 60 s run (EBS usually takes seconds).
const WAIT: StdDuration = StdDuration::from_secs(30);
const POLL: StdDuration = StdDuration::from_secs(3);

/// The largest size of a volume type, in GiB.
fn type_ceiling(volume_type: &str) -> u64 {
    match volume_type {
        "standard" => 1024,
        "io2" => 65_536,
        _ => 16_384,
    }
}

/// The volume behind an instance's disk-space alarm: the instance's only EBS volume, or the
/// one attached at the alarm's `device` (`xvda1` → `/dev/xvda`), or its root volume when the
/// alarm watches `/`. `Err` says why it cannot be told (NVMe names carry no mapping).
pub(super) async fn behind_disk_alarm(
    clients: &AwsClients,
    instance: &str,
    event: &UnifiedEvent,
    log: &mut CallLog,
) -> Result<Result<Subject, String>, RemediationError> {
    let dimension = |key: &str| {
        event
            .resource
            .metadata
            .get("dimensions")
            .and_then(|d| d.get(key))
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let (device, path) = (dimension("device"), dimension("path"));
    let out = log
        .must(
            "ec2",
            "DescribeInstances",
            instance,
            Access::Read,
            clients
                .ec2()
                .describe_instances()
                .instance_ids(instance)
                .send(),
        )
        .await?;
    let Some(found) = out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .find(|i| i.instance_id() == Some(instance))
    else {
        return Ok(Err(format!("instance {instance} was not found")));
    };
    let volumes: Vec<(&str, &str)> = found
        .block_device_mappings()
        .iter()
        .filter_map(|m| Some((m.device_name()?, m.ebs()?.volume_id()?)))
        .collect();
    let trimmed = device.trim_end_matches(|c: char| c.is_ascii_digit());
    let wanted = [format!("/dev/{device}"), format!("/dev/{trimmed}")];
    let by_device = volumes
        .iter()
        .find(|(name, _)| !device.is_empty() && wanted.iter().any(|w| w == name));
    let root = found.root_device_name();
    let by_root = volumes
        .iter()
        .find(|(name, _)| path == "/" && Some(*name) == root);
    let chosen = match (volumes.as_slice(), by_device, by_root) {
        ([only], _, _) => Some(*only),
        (_, Some(v), _) | (_, None, Some(v)) => Some(*v),
        _ => None,
    };
    let seen = if device.is_empty() {
        "the alarm names no device".to_string()
    } else {
        format!("device {device}")
    };
    Ok(match chosen {
        Some((name, volume)) => Ok(Subject::Volume {
            id: volume.to_string(),
            found_from: Some((instance.to_string(), if device.is_empty() { name.to_string() } else { device })),
        }),
        None => Err(format!(
            "instance {instance} has {} EBS volumes and {seen} cannot be matched to one of them (NVMe names carry no mapping); put the alarm on the volume or grow it by hand",
            volumes.len()
        )),
    })
}

pub(super) async fn read(
    clients: &AwsClients,
    id: &str,
    limits: &GrowthLimits,
    log: &mut CallLog,
) -> Result<Reading, RemediationError> {
    let out = log
        .must(
            "ec2",
            "DescribeVolumes",
            id,
            Access::Read,
            clients.ec2().describe_volumes().volume_ids(id).send(),
        )
        .await?;
    let Some(volume) = out.volumes().iter().find(|v| v.volume_id() == Some(id)) else {
        return Err(log.fail(crate::calls::CallError {
            operation: "DescribeVolumes",
            target: id.to_string(),
            code: None,
            transient: false,
            message: format!("volume {id} was not found (deleted since the alarm?)"),
        }));
    };
    let volume_type = volume
        .volume_type()
        .map(|t| t.as_str().to_string())
        .unwrap_or_default();
    let current = u64::try_from(volume.size().unwrap_or_default()).unwrap_or_default();
    let marker = volume
        .tags()
        .iter()
        .find(|t| t.key() == Some(MARKER_TAG))
        .and_then(|t| Marker::parse(t.value()?));
    let type_max = type_ceiling(&volume_type);
    let (ceiling, ceiling_source) = if type_max < limits.max_storage_gib {
        (type_max, format!("the largest {volume_type} volume"))
    } else {
        (
            limits.max_storage_gib,
            "the approval's max_storage_gib".to_string(),
        )
    };
    let not_now = recent_modification(clients, id, log).await?;
    Ok(Reading {
        what: format!("volume {id} ({volume_type})"),
        marker,
        not_now,
        ask: GrowthAsk {
            current,
            unit: "GiB",
            ceiling,
            ceiling_source,
            min_step: 1,
            unit_monthly_usd: prices::ebs_gib_month(&volume_type),
        },
    })
}

/// Why the volume cannot be modified now: a modification still running, or one started
/// less than 6 hours ago.
async fn recent_modification(
    clients: &AwsClients,
    id: &str,
    log: &mut CallLog,
) -> Result<Option<String>, RemediationError> {
    let out = log
        .must(
            "ec2",
            "DescribeVolumesModifications",
            id,
            Access::Read,
            clients
                .ec2()
                .describe_volumes_modifications()
                .volume_ids(id)
                .send(),
        )
        .await?;
    let now = Utc::now();
    for m in out.volumes_modifications() {
        let started = m
            .start_time()
            .and_then(|t| DateTime::<Utc>::from_timestamp(t.secs(), 0));
        if m.modification_state() == Some(&VolumeModificationState::Modifying) {
            return Ok(Some("a modification of it is still running".to_string()));
        }
        if let Some(at) =
            started.filter(|at| now - *at < Duration::hours(MODIFICATION_COOLDOWN_HOURS))
        {
            return Ok(Some(format!(
                "it was modified at {} and EBS allows the next change {MODIFICATION_COOLDOWN_HOURS} hours after that",
                at.format("%Y-%m-%d %H:%M UTC")
            )));
        }
    }
    Ok(None)
}

pub(super) async fn grow(
    clients: &AwsClients,
    id: &str,
    marker: &Marker,
    log: &mut CallLog,
) -> Result<(), RemediationError> {
    let to = i32::try_from(marker.to).unwrap_or(i32::MAX);
    log.must(
        "ec2",
        "ModifyVolume",
        id,
        Access::Write,
        clients.ec2().modify_volume().volume_id(id).size(to).send(),
    )
    .await?;
    crate::tags::set_ec2_tag(clients, id, MARKER_TAG, &marker.value(), log).await
}

/// The volume's size, and its modification at least `optimizing` (waited for).
pub(super) async fn checks_after(
    clients: &AwsClients,
    id: &str,
    to: u64,
    log: &mut CallLog,
) -> Result<Vec<VerificationCheck>, RemediationError> {
    let started = std::time::Instant::now();
    let state = loop {
        let out = log
            .must(
                "ec2",
                "DescribeVolumesModifications",
                id,
                Access::Read,
                clients
                    .ec2()
                    .describe_volumes_modifications()
                    .volume_ids(id)
                    .send(),
            )
            .await?;
        let state = out
            .volumes_modifications()
            .iter()
            .filter(|m| m.target_size().and_then(|s| u64::try_from(s).ok()) == Some(to))
            .filter_map(|m| m.modification_state().cloned())
            .next_back();
        let settled = matches!(
            state,
            Some(VolumeModificationState::Optimizing | VolumeModificationState::Completed)
        );
        if settled || state == Some(VolumeModificationState::Failed) || started.elapsed() >= WAIT {
            break state;
        }
        tokio::time::sleep(POLL).await;
    };
    let out = log
        .must(
            "ec2",
            "DescribeVolumes",
            id,
            Access::Read,
            clients.ec2().describe_volumes().volume_ids(id).send(),
        )
        .await?;
    let size = out
        .volumes()
        .iter()
        .find(|v| v.volume_id() == Some(id))
        .and_then(|v| v.size())
        .and_then(|s| u64::try_from(s).ok())
        .unwrap_or_default();
    Ok(vec![
        check(
            "modification",
            "optimizing or completed",
            state
                .as_ref()
                .map(|s| s.as_str().to_string())
                .unwrap_or_else(|| "none found".to_string()),
            matches!(
                state,
                Some(VolumeModificationState::Optimizing | VolumeModificationState::Completed)
            ),
        ),
        check(
            "size",
            format!("at least {to} GiB"),
            format!("{size} GiB"),
            size >= to,
        ),
    ])
}
