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

mod work;

use std::time::Duration as StdDuration;

use async_trait::async_trait;
use aws_sdk_ec2::types::Volume;
use escher_core::approvals::Action;
use escher_core::remediate::{
    CreatedResource, FixDescription, Mode, Remediation, RemediationError, RemediationReport,
    RemediationRequest, RemediationStatus, RequiredPermission, Verification,
};
use escher_core::resource_types::aws as aws_types;

use crate::calls::CallLog;
use crate::clients::AwsClients;
use crate::report::check;
use crate::target::{volume_id, Target};
use work::{attachments, describe_volume, Work};

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

/// How long to wait for a snapshot (or its encrypted copy) to complete: both waits and the
/// calls around them fit in the alert function's default 60 s, so the function answers
/// before Lambda stops it. Snapshots of large volumes take longer: the event then fails as
/// transient (its claim released) and the retry continues with the tagged snapshot.
const DEFAULT_SNAPSHOT_WAIT: StdDuration = StdDuration::from_secs(20);
const FIRST_POLL: StdDuration = StdDuration::from_secs(2);
pub(crate) const MAX_POLL: StdDuration = StdDuration::from_secs(30);

/// Makes an encrypted copy of an unencrypted EBS volume.
#[derive(Debug, Clone)]
pub struct VolumeEncryptionRemediation {
    clients: AwsClients,
    snapshot_wait: StdDuration,
    first_poll: StdDuration,
}

impl VolumeEncryptionRemediation {
    /// One run on `source`: the calls it makes are logged, its resources tagged with the
    /// event's id.
    fn work<'a>(
        &self,
        request: &RemediationRequest<'_>,
        clients: &'a AwsClients,
        source: &str,
    ) -> Work<'a> {
        let event = request.event;
        Work {
            clients,
            log: CallLog::metered(clients.meter()),
            source: source.to_string(),
            event_id: event.event_id.clone(),
            region: clients.region().unwrap_or_default().to_string(),
            kms_key: event
                .resource
                .metadata
                .get("kms_key_id")
                .and_then(|v| v.as_str())
                .filter(|k| !k.is_empty())
                .map(str::to_string),
            snapshot_wait: self.snapshot_wait,
            first_poll: self.first_poll,
        }
    }

    pub fn new(clients: AwsClients) -> Self {
        VolumeEncryptionRemediation {
            clients,
            snapshot_wait: DEFAULT_SNAPSHOT_WAIT,
            first_poll: FIRST_POLL,
        }
    }

    /// Bounds the wait for each snapshot (default 20 s) and sets the first poll
    /// interval (it doubles up to 30 s).
    pub fn with_snapshot_wait(mut self, timeout: StdDuration, first_poll: StdDuration) -> Self {
        self.snapshot_wait = timeout;
        self.first_poll = first_poll;
        self
    }
}

/// What the fix will do to one volume, decided from the volume and the region's default
/// encryption before anything changes; it also words the report.
struct Plan {
    source: String,
    region: String,
    original: Volume,
    /// The volume itself needs an encrypted copy (it may already be encrypted when only
    /// the default encryption is to be turned on).
    copy: bool,
    turn_on_default: bool,
    steps: Vec<String>,
    next_steps: Vec<String>,
}

impl Plan {
    fn new(
        request: &RemediationRequest<'_>,
        work: &Work<'_>,
        original: Volume,
        default_on: bool,
    ) -> Plan {
        let (source, region) = (work.source.clone(), work.region.clone());
        let allow_default = request.conditions.enable_default_encryption();
        let mut next_steps = Vec::new();
        if !default_on && !allow_default {
            next_steps.push(format!(
                "Default EBS encryption is off in {region}, so new volumes can still be unencrypted; allow it in the approval (conditions.enable_default_encryption: true) or run: aws ec2 enable-ebs-encryption-by-default --region {region}"
            ));
        }
        let turn_on_default = allow_default && !default_on;
        let copy = original.encrypted() != Some(true);
        let key_words = work
            .kms_key
            .as_deref()
            .map(|k| format!("KMS key {k}"))
            .unwrap_or_else(|| "the account's default EBS KMS key".to_string());
        let shape = describe_volume(&original);
        let attached = attachments(&original);
        let mut steps = Vec::new();
        if copy {
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
                work.event_id
            ));
            steps.push(format!(
                "leave {source} untouched (not detached, not deleted)"
            ));
        }
        if turn_on_default {
            steps.push(format!("turn on default EBS encryption in {region}"));
        }
        Plan {
            source,
            region,
            original,
            copy,
            turn_on_default,
            steps,
            next_steps,
        }
    }

    fn nothing_to_do(&self) -> bool {
        !self.copy && !self.turn_on_default
    }

    /// What the operator does next: swap the copy in, delete the unencrypted snapshot.
    fn next_steps_after(&mut self, copy: Option<&str>, created: &[CreatedResource]) {
        let Some(copy) = copy else { return };
        let source = &self.source;
        let attached = attachments(&self.original);
        self.next_steps.insert(
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
            self.next_steps.push(format!(
                "Delete the unencrypted intermediate snapshot once the copy is in use (it holds the unencrypted data): aws ec2 delete-snapshot --snapshot-id {}",
                snapshots.join(" ")
            ));
        }
    }

    /// How to remove what was created (newest first) and turn default encryption off again.
    fn undo(&self, created: &[CreatedResource]) -> String {
        let region = &self.region;
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
        if self.turn_on_default {
            undo_parts.push(format!(
                "aws ec2 disable-ebs-encryption-by-default --region {region}"
            ));
        }
        format!(
            "{} itself was not changed. To remove what this created: {}",
            self.source,
            undo_parts.join("; ")
        )
    }

    fn summary(&self, copy: Option<&str>, verified: bool) -> String {
        let (source, region) = (&self.source, &self.region);
        let zone = self.original.availability_zone().unwrap_or_default();
        match (copy, verified) {
            (Some(copy), true) => format!(
                "Created encrypted copy {copy} of {source} in {zone}{}; verified. {source} is untouched: swap it in when convenient.",
                if self.turn_on_default { ", and turned on default EBS encryption" } else { "" }
            ),
            (None, true) => format!("{source} was already encrypted; turned on default EBS encryption in {region}; verified."),
            _ => format!("Encrypting {source} finished but verification failed; check the failed checks by hand."),
        }
    }
}

const FIX: FixDescription = FixDescription {
    action: Action::EncryptVolume,
    resource_types: &[aws_types::EBS_VOLUME],
    permissions: PERMISSIONS,
};

#[async_trait]
impl Remediation for VolumeEncryptionRemediation {
    fn description(&self) -> &'static FixDescription {
        &FIX
    }

    async fn verify(
        &self,
        request: &RemediationRequest<'_>,
    ) -> Result<Verification, RemediationError> {
        let event = request.event;
        let target = Target::of(request, &FIX, &self.clients, volume_id)?;
        let source = target.id.clone();
        let mut work = self.work(request, &target.clients, &source);
        let Some(original) = work.volume(&source).await? else {
            return Ok(Verification::from_checks(vec![check(
                "volume exists",
                source.clone(),
                "not found",
                false,
            )]));
        };
        let mut checks = Vec::new();
        if original.encrypted() == Some(true) {
            checks.push(check("volume encrypted", "true", "true", true));
        } else {
            // The encrypted copy this event's fix made, found by its tags.
            match work.earlier_volume().await? {
                Some(copy) => {
                    let copy = copy.volume_id().unwrap_or_default().to_string();
                    checks.extend(work.verify_copy(&copy, &original).await?);
                }
                None => checks.push(check(
                    "encrypted volume exists",
                    format!(
                        "an encrypted copy of {source} tagged {TAG_EVENT_ID}={}",
                        event.event_id
                    ),
                    "not found",
                    false,
                )),
            }
        }
        if request.conditions.enable_default_encryption() {
            let on = work.default_encryption().await?;
            checks.push(check(
                "default EBS encryption",
                "on",
                if on { "on" } else { "off" },
                on,
            ));
        }
        Ok(Verification::from_checks(checks))
    }

    async fn remediate(
        &self,
        request: &RemediationRequest<'_>,
    ) -> Result<RemediationReport, RemediationError> {
        let target = Target::of(request, &FIX, &self.clients, volume_id)?;
        let source = target.id.clone();
        let mut work = self.work(request, &target.clients, &source);

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
        let mut plan = Plan::new(request, &work, original, default_on);

        if plan.nothing_to_do() {
            return Ok(RemediationReport::new(
                request,
                RemediationStatus::AlreadyCompliant,
                format!("Volume {source} is already encrypted; nothing changed."),
            )
            .with_calls(work.log.into_calls())
            .with_verification(Verification::from_checks(vec![check(
                "volume encrypted",
                "true",
                "true",
                true,
            )]))
            .with_next_steps(plan.next_steps));
        }
        // Handled before (a second delivery after the first was audited, or a retry after
        // the copy was made): the copy made for this event is the fix; nothing to redo.
        if plan.copy && !plan.turn_on_default {
            if let Some(copy) = work.earlier_volume().await? {
                let copy = copy.volume_id().unwrap_or_default().to_string();
                let verification =
                    Verification::from_checks(work.verify_copy(&copy, &plan.original).await?);
                let created = vec![CreatedResource {
                    kind: aws_types::EBS_VOLUME.into(),
                    id: copy.clone(),
                }];
                plan.next_steps_after(Some(&copy), &created);
                return Ok(RemediationReport::new(
                    request,
                    RemediationStatus::AlreadyCompliant,
                    format!("The encrypted copy {copy} of {source} made for this event already exists; nothing changed."),
                )
                .with_calls(work.log.into_calls())
                .with_verification(verification)
                .with_created(created)
                .with_next_steps(plan.next_steps));
            }
        }
        if request.mode == Mode::DryRun {
            return Ok(RemediationReport::new(
                request,
                RemediationStatus::WouldRemediate,
                format!(
                    "Dry run: would create an encrypted copy of {source} ({}); {source} would stay as it is.",
                    describe_volume(&plan.original)
                ),
            )
            .with_steps(plan.steps.iter().map(|s| format!("would {s}")).collect())
            .with_calls(work.log.into_calls())
            .with_next_steps(plan.next_steps));
        }

        let mut created = Vec::new();
        let mut checks = Vec::new();
        let copy = if plan.copy {
            let copy = work.encrypted_copy(&plan.original, &mut created).await?;
            checks.extend(work.verify_copy(&copy, &plan.original).await?);
            Some(copy)
        } else {
            None
        };
        if plan.turn_on_default {
            checks.push(work.enable_default_encryption().await?);
        }
        let verification = Verification::from_checks(checks);
        plan.next_steps_after(copy.as_deref(), &created);
        let summary = plan.summary(copy.as_deref(), verification.passed);
        let undo = plan.undo(&created);
        Ok(
            RemediationReport::new(request, RemediationStatus::Remediated, summary)
                .with_steps(plan.steps)
                .with_calls(work.log.into_calls())
                .with_verification(verification)
                .with_created(created)
                .with_next_steps(plan.next_steps)
                .with_undo(undo),
        )
    }
}
