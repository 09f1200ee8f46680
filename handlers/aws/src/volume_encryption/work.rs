//! The EBS calls of `encrypt_volume`: reading the volume and the account's default
//! encryption, each step of the encrypted copy (snapshot, encrypted copy of the snapshot,
//! volume from it; each tagged, so a retried event picks up what an earlier attempt made),
//! waiting for snapshots, and checking the copy and the original afterwards.

use std::time::Duration as StdDuration;

use aws_sdk_ec2::types::{
    Filter, ResourceType, SnapshotState, Tag, TagSpecification, Volume, VolumeType,
};
use escher_core::remediate::{CreatedResource, RemediationError, VerificationCheck};
use escher_core::resource_types::aws as aws_types;

use super::{MAX_POLL, TAG_EVENT_ID, TAG_SOURCE_VOLUME, TAG_STAGE};
use crate::calls::{Access, CallLog};
use crate::clients::AwsClients;
use crate::report::check;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    SourceSnapshot,
    EncryptedSnapshot,
    EncryptedVolume,
}

impl Stage {
    fn tag(self) -> &'static str {
        match self {
            Stage::SourceSnapshot => "source-snapshot",
            Stage::EncryptedSnapshot => "encrypted-snapshot",
            Stage::EncryptedVolume => "encrypted-volume",
        }
    }
}

fn tags(resource: ResourceType, source: &str, event_id: &str, stage: Stage) -> TagSpecification {
    let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
    TagSpecification::builder()
        .resource_type(resource)
        .tags(tag(TAG_SOURCE_VOLUME, source))
        .tags(tag(TAG_EVENT_ID, event_id))
        .tags(tag(TAG_STAGE, stage.tag()))
        .build()
}

fn filters(source: &str, event_id: &str, stage: Stage) -> Vec<Filter> {
    let filter = |k: &str, v: &str| Filter::builder().name(format!("tag:{k}")).values(v).build();
    vec![
        filter(TAG_SOURCE_VOLUME, source),
        filter(TAG_EVENT_ID, event_id),
        filter(TAG_STAGE, stage.tag()),
    ]
}

pub(super) fn describe_volume(v: &Volume) -> String {
    format!(
        "{} GiB {} in {}",
        v.size().unwrap_or_default(),
        v.volume_type().map(|t| t.as_str()).unwrap_or("?"),
        v.availability_zone().unwrap_or("?")
    )
}

pub(super) fn attachments(v: &Volume) -> Vec<(String, String)> {
    v.attachments()
        .iter()
        .map(|a| {
            (
                a.instance_id().unwrap_or_default().to_string(),
                a.device().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// One run of the fix on one volume: the calls made so far and what the resources are
/// tagged with.
pub(super) struct Work<'a> {
    pub(super) clients: &'a AwsClients,
    pub(super) log: CallLog,
    pub(super) source: String,
    pub(super) event_id: String,
    pub(super) region: String,
    /// The KMS key the approval's event names; `None`: the account's default EBS key.
    pub(super) kms_key: Option<String>,
    pub(super) snapshot_wait: StdDuration,
    pub(super) first_poll: StdDuration,
}

impl Work<'_> {
    pub(super) async fn volume(&mut self, id: &str) -> Result<Option<Volume>, RemediationError> {
        let out = self
            .log
            .run(
                "ec2",
                "DescribeVolumes",
                id,
                Access::Read,
                self.clients.ec2().describe_volumes().volume_ids(id).send(),
            )
            .await;
        match out {
            Ok(out) => Ok(out
                .volumes()
                .iter()
                .find(|v| v.volume_id() == Some(id))
                .cloned()),
            Err(e) if e.code() == Some("InvalidVolume.NotFound") => Ok(None),
            Err(e) => Err(self.log.fail(e)),
        }
    }

    /// A snapshot this event created earlier (a retry), if any.
    pub(super) async fn earlier_snapshot(
        &mut self,
        stage: Stage,
    ) -> Result<Option<String>, RemediationError> {
        let out = self
            .log
            .must(
                "ec2",
                "DescribeSnapshots",
                &self.source,
                Access::Read,
                self.clients
                    .ec2()
                    .describe_snapshots()
                    .owner_ids("self")
                    .set_filters(Some(filters(&self.source, &self.event_id, stage)))
                    .send(),
            )
            .await?;
        Ok(out
            .snapshots()
            .iter()
            .filter(|s| s.state() != Some(&SnapshotState::Error))
            .find_map(|s| s.snapshot_id().map(str::to_string)))
    }

    pub(super) async fn earlier_volume(&mut self) -> Result<Option<Volume>, RemediationError> {
        let out = self
            .log
            .must(
                "ec2",
                "DescribeVolumes",
                &self.source,
                Access::Read,
                self.clients
                    .ec2()
                    .describe_volumes()
                    .set_filters(Some(filters(
                        &self.source,
                        &self.event_id,
                        Stage::EncryptedVolume,
                    )))
                    .send(),
            )
            .await?;
        Ok(out.volumes().first().cloned())
    }

    /// Polls until the snapshot completes, doubling the interval, within `limit`.
    pub(super) async fn wait_for(
        &mut self,
        snapshot: &str,
        limit: StdDuration,
        first_poll: StdDuration,
    ) -> Result<(), RemediationError> {
        let started = std::time::Instant::now();
        let mut interval = first_poll;
        loop {
            let out = self
                .log
                .must(
                    "ec2",
                    "DescribeSnapshots",
                    snapshot,
                    Access::Read,
                    self.clients
                        .ec2()
                        .describe_snapshots()
                        .snapshot_ids(snapshot)
                        .send(),
                )
                .await?;
            let found = out
                .snapshots()
                .iter()
                .find(|s| s.snapshot_id() == Some(snapshot));
            let (state, progress, message) = match found {
                Some(s) => (
                    s.state().cloned(),
                    s.progress().unwrap_or("?").to_string(),
                    s.state_message().unwrap_or_default().to_string(),
                ),
                None => (None, "?".to_string(), "not found".to_string()),
            };
            match state {
                Some(SnapshotState::Completed) => return Ok(()),
                Some(SnapshotState::Pending) => {}
                other => {
                    return Err(RemediationError::Failed {
                        operation: "DescribeSnapshots".into(),
                        resource: snapshot.to_string(),
                        message: format!(
                        "snapshot of {} is {} ({message}); delete it and handle the event again",
                        self.source,
                        other
                            .map(|s| s.as_str().to_string())
                            .unwrap_or_else(|| "missing".into())
                    ),
                        api_calls: self.log.calls().to_vec(),
                    })
                }
            }
            if started.elapsed() + interval > limit {
                return Err(RemediationError::Transient {
                    operation: "DescribeSnapshots".into(),
                    resource: snapshot.to_string(),
                    message: format!(
                        "snapshot of {} still pending ({progress}) after {} s; the retry continues with this snapshot",
                        self.source,
                        started.elapsed().as_secs()
                    ),
                    api_calls: self.log.calls().to_vec(),
                });
            }
            tokio::time::sleep(interval).await;
            interval = (interval * 2).min(MAX_POLL);
        }
    }

    pub(super) async fn default_encryption(&mut self) -> Result<bool, RemediationError> {
        let region = self.clients.region().unwrap_or("the region").to_string();
        let out = self
            .log
            .must(
                "ec2",
                "GetEbsEncryptionByDefault",
                &region,
                Access::Read,
                self.clients.ec2().get_ebs_encryption_by_default().send(),
            )
            .await?;
        Ok(out.ebs_encryption_by_default().unwrap_or(false))
    }

    /// The encrypted copy of `original` (steps 1-3), or the one an earlier attempt for this
    /// event made; what was created is added to `created`.
    pub(super) async fn encrypted_copy(
        &mut self,
        original: &Volume,
        created: &mut Vec<CreatedResource>,
    ) -> Result<String, RemediationError> {
        let copy = match self.earlier_volume().await? {
            Some(v) => v.volume_id().unwrap_or_default().to_string(),
            None => {
                let snapshot = self.source_snapshot().await?;
                created.push(CreatedResource {
                    kind: aws_types::EBS_SNAPSHOT.into(),
                    id: snapshot.clone(),
                });
                self.wait_for(&snapshot, self.snapshot_wait, self.first_poll)
                    .await?;
                let encrypted = self.encrypted_snapshot(&snapshot).await?;
                created.push(CreatedResource {
                    kind: "ebs_snapshot_encrypted".into(),
                    id: encrypted.clone(),
                });
                self.wait_for(&encrypted, self.snapshot_wait, self.first_poll)
                    .await?;
                self.volume_from(&encrypted, original).await?
            }
        };
        created.push(CreatedResource {
            kind: aws_types::EBS_VOLUME.into(),
            id: copy.clone(),
        });
        Ok(copy)
    }

    /// Step 1: snapshot the original (or reuse the one a failed attempt made).
    async fn source_snapshot(&mut self) -> Result<String, RemediationError> {
        if let Some(s) = self.earlier_snapshot(Stage::SourceSnapshot).await? {
            return Ok(s);
        }
        let (source, event_id) = (self.source.clone(), self.event_id.clone());
        let out = self
            .log
            .must(
                "ec2",
                "CreateSnapshot",
                &source,
                Access::Write,
                self.clients
                    .ec2()
                    .create_snapshot()
                    .volume_id(&source)
                    .description(format!(
                        "Escher: unencrypted snapshot of {source} for event {event_id}"
                    ))
                    .tag_specifications(tags(
                        ResourceType::Snapshot,
                        &source,
                        &event_id,
                        Stage::SourceSnapshot,
                    ))
                    .send(),
            )
            .await?;
        Ok(out.snapshot_id().unwrap_or_default().to_string())
    }

    /// Step 2: copy the snapshot encrypted (or reuse the copy a failed attempt made).
    async fn encrypted_snapshot(&mut self, snapshot: &str) -> Result<String, RemediationError> {
        if let Some(s) = self.earlier_snapshot(Stage::EncryptedSnapshot).await? {
            return Ok(s);
        }
        let (source, event_id) = (self.source.clone(), self.event_id.clone());
        let out = self
            .log
            .must(
                "ec2",
                "CopySnapshot",
                snapshot,
                Access::Write,
                self.clients
                    .ec2()
                    .copy_snapshot()
                    .source_region(&self.region)
                    .source_snapshot_id(snapshot)
                    .encrypted(true)
                    .set_kms_key_id(self.kms_key.clone())
                    .description(format!(
                        "Escher: encrypted copy of {snapshot} ({source}) for event {event_id}"
                    ))
                    .tag_specifications(tags(
                        ResourceType::Snapshot,
                        &source,
                        &event_id,
                        Stage::EncryptedSnapshot,
                    ))
                    .send(),
            )
            .await?;
        Ok(out.snapshot_id().unwrap_or_default().to_string())
    }

    /// Step 3: a volume like the original (type, size, IOPS, throughput, zone), from the
    /// encrypted copy.
    async fn volume_from(
        &mut self,
        encrypted: &str,
        original: &Volume,
    ) -> Result<String, RemediationError> {
        let volume_type = original.volume_type().cloned().unwrap_or(VolumeType::Gp3);
        let (iops, throughput) = match volume_type {
            VolumeType::Gp3 => (original.iops(), original.throughput()),
            VolumeType::Io1 | VolumeType::Io2 => (original.iops(), None),
            _ => (None, None),
        };
        let (source, event_id) = (self.source.clone(), self.event_id.clone());
        let out = self
            .log
            .must(
                "ec2",
                "CreateVolume",
                encrypted,
                Access::Write,
                self.clients
                    .ec2()
                    .create_volume()
                    .availability_zone(original.availability_zone().unwrap_or_default())
                    .snapshot_id(encrypted)
                    .volume_type(volume_type)
                    .set_size(original.size())
                    .set_iops(iops)
                    .set_throughput(throughput)
                    .encrypted(true)
                    .set_kms_key_id(self.kms_key.clone())
                    .tag_specifications(tags(
                        ResourceType::Volume,
                        &source,
                        &event_id,
                        Stage::EncryptedVolume,
                    ))
                    .send(),
            )
            .await?;
        Ok(out.volume_id().unwrap_or_default().to_string())
    }

    /// The checks after the copy: it exists, is encrypted, in the original's zone, of its
    /// type and size, tagged; and the original is exactly as it was.
    pub(super) async fn verify_copy(
        &mut self,
        copy_volume: &str,
        original: &Volume,
    ) -> Result<Vec<VerificationCheck>, RemediationError> {
        let source = self.source.clone();
        let zone = original.availability_zone().unwrap_or_default().to_string();
        let shape = describe_volume(original);
        let attached = attachments(original);
        let mut checks = Vec::new();
        let copy = self.volume(copy_volume).await?;
        checks.push(check(
            "encrypted volume exists",
            copy_volume.to_string(),
            copy.as_ref()
                .and_then(|v| v.state())
                .map(|s| s.as_str().to_string())
                .unwrap_or_else(|| "not found".into()),
            copy.is_some(),
        ));
        if let Some(copy) = &copy {
            checks.push(check(
                "encrypted",
                "true",
                copy.encrypted().unwrap_or(false).to_string(),
                copy.encrypted() == Some(true),
            ));
            checks.push(check(
                "availability zone",
                zone.clone(),
                copy.availability_zone().unwrap_or_default(),
                copy.availability_zone() == Some(zone.as_str()),
            ));
            checks.push(check(
                "type and size",
                shape,
                describe_volume(copy),
                copy.size() == original.size() && copy.volume_type() == original.volume_type(),
            ));
            let tagged = |k: &str, v: &str| {
                copy.tags()
                    .iter()
                    .any(|t| t.key() == Some(k) && t.value() == Some(v))
            };
            checks.push(check(
                "tags",
                format!(
                    "{TAG_SOURCE_VOLUME}={source}, {TAG_EVENT_ID}={}",
                    self.event_id
                ),
                copy.tags()
                    .iter()
                    .map(|t| {
                        format!(
                            "{}={}",
                            t.key().unwrap_or_default(),
                            t.value().unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                tagged(TAG_SOURCE_VOLUME, &source) && tagged(TAG_EVENT_ID, &self.event_id),
            ));
        }
        let original_now = self.volume(&source).await?;
        checks.push(check(
            "original volume untouched",
            format!("{source} unencrypted, attachments {:?}", attached),
            original_now
                .as_ref()
                .map(|v| {
                    format!(
                        "{source} encrypted={}, attachments {:?}",
                        v.encrypted().unwrap_or(false),
                        attachments(v)
                    )
                })
                .unwrap_or_else(|| "not found".into()),
            original_now
                .as_ref()
                .is_some_and(|v| attachments(v) == attached),
        ));
        Ok(checks)
    }

    /// Turns on the region's default EBS encryption and checks it is on.
    pub(super) async fn enable_default_encryption(
        &mut self,
    ) -> Result<VerificationCheck, RemediationError> {
        let region = self.region.clone();
        let out = self
            .log
            .must(
                "ec2",
                "EnableEbsEncryptionByDefault",
                &region,
                Access::Write,
                self.clients.ec2().enable_ebs_encryption_by_default().send(),
            )
            .await?;
        let _ = out.ebs_encryption_by_default();
        let now_on = self.default_encryption().await?;
        Ok(check(
            "default EBS encryption",
            "on",
            if now_on { "on" } else { "off" },
            now_on,
        ))
    }
}
