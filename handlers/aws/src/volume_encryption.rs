//! `encrypt_volume` for EBS: EBS cannot encrypt a volume in place, so the fix makes an
//! encrypted copy next to it: snapshot the volume, copy the snapshot encrypted, create a
//! volume of the same type and size from the copy in the same Availability Zone, and tag
//! all three. The original is never detached or deleted (that interrupts whatever uses
//! it); swapping the copy in is the operator's next step. With the approval's
//! `enable_default_encryption`, the region's default EBS encryption is turned on too.
//!
//! Every created resource carries `escher:event-id`, so a retried event (after a snapshot
//! took longer than the wait allows) continues with what the first attempt created
//! instead of starting over.

use escher_core::resource_types::aws as aws_types;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use aws_sdk_ec2::types::{
    Filter, ResourceType, SnapshotState, Tag, TagSpecification, Volume, VolumeType,
};
use escher_core::approvals::Action;
use escher_core::remediate::{
    CreatedResource, Mode, Remediation, RemediationError, RemediationReport, RemediationRequest,
    RemediationStatus, RequiredPermission, Verification, VerificationCheck,
};

use crate::calls::{Access, CallLog};
use crate::clients::AwsClients;
use crate::report::check;
use crate::target::{expect_type, volume_id};

const VOLUME: &str = "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:volume/*";
// Snapshot ARNs carry no account id.
const SNAPSHOT: &str = "arn:${AWS::Partition}:ec2:${AWS::Region}::snapshot/*";
const KMS_KEY: &str = "arn:${AWS::Partition}:kms:${AWS::Region}:${AWS::AccountId}:key/*";

pub(crate) const PERMISSIONS: &[RequiredPermission] = &[
    RequiredPermission {
        action: "ec2:DescribeVolumes",
        resource: "*",
        why: "encrypt_volume reads the volume (type, size, zone, attachments) and verifies the copy (Describe calls have no resource-level permissions)",
    },
    RequiredPermission {
        action: "ec2:DescribeSnapshots",
        resource: "*",
        why: "encrypt_volume waits for its snapshots to complete (Describe calls have no resource-level permissions)",
    },
    RequiredPermission {
        action: "ec2:CreateSnapshot",
        resource: VOLUME,
        why: "encrypt_volume snapshots the unencrypted volume",
    },
    RequiredPermission {
        action: "ec2:CreateSnapshot",
        resource: SNAPSHOT,
        why: "encrypt_volume creates the snapshot of the unencrypted volume",
    },
    RequiredPermission {
        action: "ec2:CopySnapshot",
        resource: SNAPSHOT,
        why: "encrypt_volume copies the snapshot with encryption on",
    },
    RequiredPermission {
        action: "ec2:CreateVolume",
        resource: VOLUME,
        why: "encrypt_volume creates the encrypted volume",
    },
    RequiredPermission {
        action: "ec2:CreateVolume",
        resource: SNAPSHOT,
        why: "encrypt_volume creates the encrypted volume from the encrypted snapshot",
    },
    RequiredPermission {
        action: "ec2:CreateTags",
        resource: SNAPSHOT,
        why: "encrypt_volume tags its snapshots (escher:source-volume, escher:event-id) when creating them",
    },
    RequiredPermission {
        action: "ec2:CreateTags",
        resource: VOLUME,
        why: "encrypt_volume tags the encrypted volume (escher:source-volume, escher:event-id) when creating it",
    },
    RequiredPermission {
        action: "ec2:GetEbsEncryptionByDefault",
        resource: "*",
        why: "encrypt_volume reports whether new volumes are encrypted by default (an account setting: no resource-level permissions)",
    },
    RequiredPermission {
        action: "ec2:EnableEbsEncryptionByDefault",
        resource: "*",
        why: "encrypt_volume turns on default EBS encryption when the approval allows it (an account setting: no resource-level permissions)",
    },
    // The AWS managed key aws/ebs already lets EC2 use it for account principals; a customer
    // managed key (the account's EBS default, or `kms_key_id` in the event) needs these.
    RequiredPermission {
        action: "kms:DescribeKey",
        resource: KMS_KEY,
        why: "encrypt_volume's encrypted copy: EC2 resolves the KMS key",
    },
    RequiredPermission {
        action: "kms:CreateGrant",
        resource: KMS_KEY,
        why: "encrypt_volume's encrypted copy: EC2 holds a grant on the key for the volume's life",
    },
    RequiredPermission {
        action: "kms:GenerateDataKeyWithoutPlaintext",
        resource: KMS_KEY,
        why: "encrypt_volume's encrypted copy: EC2 creates the snapshot's data key",
    },
    RequiredPermission {
        action: "kms:Decrypt",
        resource: KMS_KEY,
        why: "encrypt_volume's encrypted copy: EC2 decrypts the data key to create the volume",
    },
    // Named one by one: the role never holds a wildcard action (`render` rejects them).
    RequiredPermission {
        action: "kms:ReEncryptFrom",
        resource: KMS_KEY,
        why: "encrypt_volume's encrypted copy: EC2 re-encrypts the data key when copying",
    },
    RequiredPermission {
        action: "kms:ReEncryptTo",
        resource: KMS_KEY,
        why: "encrypt_volume's encrypted copy: EC2 re-encrypts the data key when copying",
    },
];

pub(crate) const TAG_SOURCE_VOLUME: &str = "escher:source-volume";
pub(crate) const TAG_EVENT_ID: &str = "escher:event-id";
/// Which of the three resources this is, so a retry finds each one.
pub(crate) const TAG_STAGE: &str = "escher:stage";

/// How long to wait for a snapshot (or its encrypted copy) to complete. Snapshots of large
/// volumes take longer than a Lambda may run: after this the event fails as transient and
/// the retry continues with the tagged snapshot.
const DEFAULT_SNAPSHOT_WAIT: StdDuration = StdDuration::from_secs(600);
const FIRST_POLL: StdDuration = StdDuration::from_secs(2);
const MAX_POLL: StdDuration = StdDuration::from_secs(30);

/// Makes an encrypted copy of an unencrypted EBS volume.
#[derive(Debug, Clone)]
pub struct VolumeEncryptionRemediation {
    clients: AwsClients,
    snapshot_wait: StdDuration,
    first_poll: StdDuration,
}

impl VolumeEncryptionRemediation {
    pub fn new(clients: AwsClients) -> Self {
        VolumeEncryptionRemediation {
            clients,
            snapshot_wait: DEFAULT_SNAPSHOT_WAIT,
            first_poll: FIRST_POLL,
        }
    }

    /// Bounds the wait for each snapshot (default 10 minutes) and sets the first poll
    /// interval (it doubles up to 30 s).
    pub fn with_snapshot_wait(mut self, timeout: StdDuration, first_poll: StdDuration) -> Self {
        self.snapshot_wait = timeout;
        self.first_poll = first_poll;
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
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

fn describe_volume(v: &Volume) -> String {
    format!(
        "{} GiB {} in {}",
        v.size().unwrap_or_default(),
        v.volume_type().map(|t| t.as_str()).unwrap_or("?"),
        v.availability_zone().unwrap_or("?")
    )
}

fn attachments(v: &Volume) -> Vec<(String, String)> {
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

struct Work<'a> {
    clients: &'a AwsClients,
    log: CallLog,
    source: String,
    event_id: String,
}

impl Work<'_> {
    async fn volume(&mut self, id: &str) -> Result<Option<Volume>, RemediationError> {
        let out = self
            .log
            .run(
                "ec2",
                "DescribeVolumes",
                id,
                Access::Read,
                self.clients.ec2.describe_volumes().volume_ids(id).send(),
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
    async fn earlier_snapshot(&mut self, stage: Stage) -> Result<Option<String>, RemediationError> {
        let out = self
            .log
            .must(
                "ec2",
                "DescribeSnapshots",
                &self.source,
                Access::Read,
                self.clients
                    .ec2
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

    async fn earlier_volume(&mut self) -> Result<Option<Volume>, RemediationError> {
        let out = self
            .log
            .must(
                "ec2",
                "DescribeVolumes",
                &self.source,
                Access::Read,
                self.clients
                    .ec2
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
    async fn wait_for(
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
                        .ec2
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
                });
            }
            tokio::time::sleep(interval).await;
            interval = (interval * 2).min(MAX_POLL);
        }
    }

    async fn default_encryption(&mut self) -> Result<bool, RemediationError> {
        let region = self.clients.region().unwrap_or("the region").to_string();
        let out = self
            .log
            .must(
                "ec2",
                "GetEbsEncryptionByDefault",
                &region,
                Access::Read,
                self.clients.ec2.get_ebs_encryption_by_default().send(),
            )
            .await?;
        Ok(out.ebs_encryption_by_default().unwrap_or(false))
    }
}

#[async_trait]
impl Remediation for VolumeEncryptionRemediation {
    fn action(&self) -> Action {
        Action::EncryptVolume
    }

    fn resource_types(&self) -> &'static [&'static str] {
        &[aws_types::EBS_VOLUME]
    }

    fn required_permissions(&self) -> &'static [RequiredPermission] {
        PERMISSIONS
    }

    async fn remediate(
        &self,
        request: &RemediationRequest<'_>,
    ) -> Result<RemediationReport, RemediationError> {
        let event = request.event;
        expect_type(event, self.action(), aws_types::EBS_VOLUME)?;
        let source = volume_id(event, self.action())?;
        let clients = self.clients.in_region(&event.region);
        let region = clients.region().unwrap_or_default().to_string();
        let mut work = Work {
            clients: &clients,
            log: CallLog::metered(clients.meter()),
            source: source.clone(),
            event_id: event.event_id.clone(),
        };
        let kms_key = event
            .resource
            .metadata
            .get("kms_key_id")
            .and_then(|v| v.as_str())
            .filter(|k| !k.is_empty())
            .map(str::to_string);
        let key_words = kms_key
            .as_deref()
            .map(|k| format!("KMS key {k}"))
            .unwrap_or_else(|| "the account's default EBS KMS key".to_string());
        let allow_default = request.conditions.enable_default_encryption();
        let mk_report = |status,
                         summary: String,
                         steps: Vec<String>,
                         log: CallLog,
                         verification: Option<Verification>,
                         created: Vec<CreatedResource>,
                         next_steps: Vec<String>,
                         undo: Option<String>| RemediationReport {
            action: Action::EncryptVolume,
            resource_id: event.resource.id.clone(),
            status,
            summary,
            steps,
            api_calls: log.into_calls(),
            verification,
            created,
            next_steps,
            undo,
        };

        let Some(original) = work.volume(&source).await? else {
            return Err(RemediationError::Failed {
                operation: "DescribeVolumes".into(),
                resource: source.clone(),
                message: format!(
                    "volume {source} does not exist (deleted since the event?); nothing to encrypt"
                ),
                api_calls: work.log.into_calls(),
            });
        };
        let default_on = work.default_encryption().await?;
        let mut next_steps = Vec::new();
        if !default_on && !allow_default {
            next_steps.push(format!(
                "Default EBS encryption is off in {region}, so new volumes can still be unencrypted; allow it in the approval (conditions.enable_default_encryption: true) or run: aws ec2 enable-ebs-encryption-by-default --region {region}"
            ));
        }
        let turn_on_default = allow_default && !default_on;

        if original.encrypted() == Some(true) && !turn_on_default {
            return Ok(mk_report(
                RemediationStatus::AlreadyCompliant,
                format!("Volume {source} is already encrypted; nothing changed."),
                Vec::new(),
                work.log,
                Some(Verification::from_checks(vec![check(
                    "volume encrypted",
                    "true",
                    "true",
                    true,
                )])),
                Vec::new(),
                next_steps,
                None,
            ));
        }

        let zone = original.availability_zone().unwrap_or_default().to_string();
        let shape = describe_volume(&original);
        let attached = attachments(&original);
        let mut steps = Vec::new();
        if original.encrypted() != Some(true) {
            steps.push(format!(
                "snapshot {source} ({shape}{})",
                if attached.is_empty() {
                    ", not attached".to_string()
                } else {
                    format!(
                        ", attached to {}",
                        attached
                            .iter()
                            .map(|(i, d)| format!("{i} at {d}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            ));
            steps.push(format!("copy the snapshot encrypted with {key_words}"));
            steps.push(format!(
                "create an encrypted {shape} volume from the encrypted copy, tagged {TAG_SOURCE_VOLUME}={source} and {TAG_EVENT_ID}={}",
                event.event_id
            ));
            steps.push(format!(
                "leave {source} untouched (not detached, not deleted)"
            ));
        }
        if turn_on_default {
            steps.push(format!("turn on default EBS encryption in {region}"));
        }

        if request.mode == Mode::DryRun {
            return Ok(mk_report(
                RemediationStatus::WouldRemediate,
                format!("Dry run: would create an encrypted copy of {source} ({shape}); {source} would stay as it is."),
                steps.into_iter().map(|s| format!("would {s}")).collect(),
                work.log,
                None,
                Vec::new(),
                next_steps,
                None,
            ));
        }

        let mut created = Vec::new();
        let mut checks: Vec<VerificationCheck> = Vec::new();
        let mut new_volume_id = None;
        if original.encrypted() != Some(true) {
            let copy_volume = match work.earlier_volume().await? {
                Some(v) => v.volume_id().unwrap_or_default().to_string(),
                None => {
                    // 1. Snapshot the original (or reuse the one a failed attempt made).
                    let snapshot = match work.earlier_snapshot(Stage::SourceSnapshot).await? {
                        Some(s) => s,
                        None => {
                            let out = work
                                .log
                                .must(
                                    "ec2",
                                    "CreateSnapshot",
                                    &source,
                                    Access::Write,
                                    clients
                                        .ec2
                                        .create_snapshot()
                                        .volume_id(&source)
                                        .description(format!(
                                            "Escher: unencrypted snapshot of {source} for event {}",
                                            event.event_id
                                        ))
                                        .tag_specifications(tags(
                                            ResourceType::Snapshot,
                                            &source,
                                            &event.event_id,
                                            Stage::SourceSnapshot,
                                        ))
                                        .send(),
                                )
                                .await?;
                            out.snapshot_id().unwrap_or_default().to_string()
                        }
                    };
                    created.push(CreatedResource {
                        kind: aws_types::EBS_SNAPSHOT.into(),
                        id: snapshot.clone(),
                    });
                    work.wait_for(&snapshot, self.snapshot_wait, self.first_poll)
                        .await?;

                    // 2. Copy it encrypted.
                    let encrypted = match work.earlier_snapshot(Stage::EncryptedSnapshot).await? {
                        Some(s) => s,
                        None => {
                            let out = work
                                .log
                                .must(
                                    "ec2",
                                    "CopySnapshot",
                                    &snapshot,
                                    Access::Write,
                                    clients
                                        .ec2
                                        .copy_snapshot()
                                        .source_region(&region)
                                        .source_snapshot_id(&snapshot)
                                        .encrypted(true)
                                        .set_kms_key_id(kms_key.clone())
                                        .description(format!(
                                            "Escher: encrypted copy of {snapshot} ({source}) for event {}",
                                            event.event_id
                                        ))
                                        .tag_specifications(tags(
                                            ResourceType::Snapshot,
                                            &source,
                                            &event.event_id,
                                            Stage::EncryptedSnapshot,
                                        ))
                                        .send(),
                                )
                                .await?;
                            out.snapshot_id().unwrap_or_default().to_string()
                        }
                    };
                    created.push(CreatedResource {
                        kind: "ebs_snapshot_encrypted".into(),
                        id: encrypted.clone(),
                    });
                    work.wait_for(&encrypted, self.snapshot_wait, self.first_poll)
                        .await?;

                    // 3. A volume like the original, from the encrypted copy.
                    let volume_type = original.volume_type().cloned().unwrap_or(VolumeType::Gp3);
                    let (iops, throughput) = match volume_type {
                        VolumeType::Gp3 => (original.iops(), original.throughput()),
                        VolumeType::Io1 | VolumeType::Io2 => (original.iops(), None),
                        _ => (None, None),
                    };
                    let out = work
                        .log
                        .must(
                            "ec2",
                            "CreateVolume",
                            &encrypted,
                            Access::Write,
                            clients
                                .ec2
                                .create_volume()
                                .availability_zone(&zone)
                                .snapshot_id(&encrypted)
                                .volume_type(volume_type)
                                .set_size(original.size())
                                .set_iops(iops)
                                .set_throughput(throughput)
                                .encrypted(true)
                                .set_kms_key_id(kms_key.clone())
                                .tag_specifications(tags(
                                    ResourceType::Volume,
                                    &source,
                                    &event.event_id,
                                    Stage::EncryptedVolume,
                                ))
                                .send(),
                        )
                        .await?;
                    out.volume_id().unwrap_or_default().to_string()
                }
            };
            created.push(CreatedResource {
                kind: aws_types::EBS_VOLUME.into(),
                id: copy_volume.clone(),
            });

            // Verify the copy, and that the original is exactly as it was.
            let copy = work.volume(&copy_volume).await?;
            checks.push(check(
                "encrypted volume exists",
                copy_volume.clone(),
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
                    shape.clone(),
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
                        event.event_id
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
                    tagged(TAG_SOURCE_VOLUME, &source) && tagged(TAG_EVENT_ID, &event.event_id),
                ));
            }
            let original_now = work.volume(&source).await?;
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
            new_volume_id = Some(copy_volume);
        }

        if turn_on_default {
            let out = work
                .log
                .must(
                    "ec2",
                    "EnableEbsEncryptionByDefault",
                    &region,
                    Access::Write,
                    clients.ec2.enable_ebs_encryption_by_default().send(),
                )
                .await?;
            let _ = out.ebs_encryption_by_default();
            let now_on = work.default_encryption().await?;
            checks.push(check(
                "default EBS encryption",
                "on",
                if now_on { "on" } else { "off" },
                now_on,
            ));
        }

        if let Some(copy) = &new_volume_id {
            next_steps.insert(
                0,
                if attached.is_empty() {
                    format!("{copy} is an encrypted copy of {source}; point whatever uses {source} at {copy}, then delete {source}: aws ec2 delete-volume --volume-id {source}")
                } else {
                    let (instance, device) = &attached[0];
                    format!(
                        "Swap in the encrypted copy (needs a short stop of {instance}): aws ec2 stop-instances --instance-ids {instance}; aws ec2 detach-volume --volume-id {source}; aws ec2 attach-volume --volume-id {copy} --instance-id {instance} --device {device}; aws ec2 start-instances --instance-ids {instance}; check the application, then delete {source}"
                    )
                },
            );
            let snapshots: Vec<&str> = created
                .iter()
                .filter(|c| c.kind == aws_types::EBS_SNAPSHOT)
                .map(|c| c.id.as_str())
                .collect();
            if !snapshots.is_empty() {
                next_steps.push(format!(
                    "Delete the unencrypted intermediate snapshot once the copy is in use (it holds the unencrypted data): aws ec2 delete-snapshot --snapshot-id {}",
                    snapshots.join(" ")
                ));
            }
        }
        let verification = Verification::from_checks(checks);
        let mut undo_parts: Vec<String> = created
            .iter()
            .rev()
            .map(|c| {
                if c.kind == aws_types::EBS_VOLUME {
                    format!(
                        "aws ec2 delete-volume --region {region} --volume-id {}",
                        c.id
                    )
                } else {
                    format!(
                        "aws ec2 delete-snapshot --region {region} --snapshot-id {}",
                        c.id
                    )
                }
            })
            .collect();
        if turn_on_default {
            undo_parts.push(format!(
                "aws ec2 disable-ebs-encryption-by-default --region {region}"
            ));
        }
        let undo = format!(
            "{source} itself was not changed. To remove what this created: {}",
            undo_parts.join("; ")
        );
        let summary = match (&new_volume_id, verification.passed) {
            (Some(copy), true) => format!(
                "Created encrypted copy {copy} of {source} in {zone}{}; verified. {source} is untouched: swap it in when convenient.",
                if turn_on_default { ", and turned on default EBS encryption" } else { "" }
            ),
            (None, true) => format!("{source} was already encrypted; turned on default EBS encryption in {region}; verified."),
            _ => format!("Encrypting {source} finished but verification failed; check the failed checks by hand."),
        };
        Ok(mk_report(
            RemediationStatus::Remediated,
            summary,
            steps,
            work.log,
            Some(verification),
            created,
            next_steps,
            Some(undo),
        ))
    }
}
