//! `scale_up_capacity` for AWS: one step more capacity for a resource an alarm says is
//! running out, within the approval's limits (`escher_core::capacity`): an EBS volume that is
//! filling up (ModifyVolume, then the modification waited for and the size verified; the
//! notice says how to grow the file system), an RDS instance's allocated storage, an Auto
//! Scaling group's desired capacity (never past the group's maximum).
//!
//! Alarms on an instance's CPU or memory, or a database's memory, are not grown: a bigger
//! instance type or class needs a stop or a maintenance window, which an operator chooses.
//! What cannot be told for sure (which volume backs an NVMe device, whether a group's own
//! scaling policies will act) is left alone and said why.
//!
//! Each step tags the resource with the event it answered (`escher:scaled-up`), so a retried
//! event never grows it twice; an alarm already back to OK is not answered at all.

mod database;
mod group;
pub(crate) mod prices;
mod volume;

use async_trait::async_trait;
use escher_core::approvals::Action;
use escher_core::capacity::{plan_growth, Growth, GrowthAsk};
use escher_core::remediate::{
    FixDescription, Mode, Remediation, RemediationError, RemediationReport, RemediationRequest,
    RemediationStatus, RequiredPermission, Verification, VerificationCheck,
};
use escher_core::resource_types::aws as aws_types;

use crate::alarms::recovered_alarm;
use crate::calls::CallLog;
use crate::clients::AwsClients;
use crate::report::check;
use crate::target::metadata_str as text;
use crate::target::{IdOf, Target};

/// The tag a step leaves on the resource: `event=<event id> from=<size> to=<size>`.
pub(crate) const MARKER_TAG: &str = "escher:scaled-up";

const VOLUME: &str = "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:volume/*";
const DATABASE: &str = "arn:${AWS::Partition}:rds:${AWS::Region}:${AWS::AccountId}:db:*";
const GROUP: &str = "arn:${AWS::Partition}:autoscaling:${AWS::Region}:${AWS::AccountId}:autoScalingGroup:*:autoScalingGroupName/*";

pub(crate) const PERMISSIONS: &[RequiredPermission] = &[
    crate::alarms::describe_alarms(
        "scale_up_capacity reads whether the alarm is still firing (an alarm back to OK is not answered)",
    ),
    RequiredPermission {
        action: "ec2:DescribeInstances",
        resource: "*",
        why: "scale_up_capacity finds the volume behind an instance's disk alarm (Describe calls have no resource-level permissions)",
    },
    RequiredPermission {
        action: "ec2:DescribeVolumes",
        resource: "*",
        why: "scale_up_capacity reads a volume's size, type and tags (Describe calls have no resource-level permissions)",
    },
    RequiredPermission {
        action: "ec2:DescribeVolumesModifications",
        resource: "*",
        why: "scale_up_capacity waits for a volume's modification and respects EBS's one per 6 hours (Describe calls have no resource-level permissions)",
    },
    RequiredPermission {
        action: "ec2:ModifyVolume",
        resource: VOLUME,
        why: "scale_up_capacity grows a volume that is filling up, by one step within the approval's limits",
    },
    RequiredPermission {
        action: "ec2:CreateTags",
        resource: VOLUME,
        why: "scale_up_capacity tags a grown volume with the event it answered (escher:scaled-up), so a retry never grows it twice",
    },
    RequiredPermission {
        action: "rds:DescribeDBInstances",
        resource: DATABASE,
        why: "scale_up_capacity reads a database's allocated storage, status and tags",
    },
    RequiredPermission {
        action: "rds:ModifyDBInstance",
        resource: DATABASE,
        why: "scale_up_capacity grows a database's allocated storage by one step within the approval's limits",
    },
    RequiredPermission {
        action: "rds:AddTagsToResource",
        resource: DATABASE,
        why: "scale_up_capacity tags a grown database with the event it answered (escher:scaled-up)",
    },
    RequiredPermission {
        action: "autoscaling:DescribeAutoScalingGroups",
        resource: "*",
        why: "scale_up_capacity reads a group's desired, maximum and instance types (Describe calls have no resource-level permissions)",
    },
    RequiredPermission {
        action: "autoscaling:DescribePolicies",
        resource: "*",
        why: "scale_up_capacity leaves a group that scales itself by its policies alone (Describe calls have no resource-level permissions)",
    },
    RequiredPermission {
        action: "autoscaling:SetDesiredCapacity",
        resource: GROUP,
        why: "scale_up_capacity raises a group's desired capacity by one step, never past its maximum",
    },
    RequiredPermission {
        action: "autoscaling:CreateOrUpdateTags",
        resource: GROUP,
        why: "scale_up_capacity tags a grown group with the event it answered (escher:scaled-up)",
    },
];

const FIX: FixDescription = FixDescription {
    action: Action::ScaleUpCapacity,
    resource_types: &[
        aws_types::EBS_VOLUME,
        aws_types::EC2_INSTANCE,
        aws_types::RDS_INSTANCE,
        aws_types::AUTOSCALING_GROUP,
    ],
    permissions: PERMISSIONS,
};

/// Grows volumes, databases' storage and Auto Scaling groups that run out of capacity.
#[derive(Debug, Clone)]
pub struct ScaleUpCapacityRemediation {
    clients: AwsClients,
}

impl ScaleUpCapacityRemediation {
    pub fn new(clients: AwsClients) -> Self {
        ScaleUpCapacityRemediation { clients }
    }
}

/// The step a resource's tag says was taken, and for which event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Marker {
    pub event_id: String,
    pub from: u64,
    pub to: u64,
}

impl Marker {
    pub(crate) fn value(&self) -> String {
        format!("event={} from={} to={}", self.event_id, self.from, self.to)
    }

    pub(crate) fn parse(value: &str) -> Option<Marker> {
        let fields = crate::tags::marker_fields(value);
        Some(Marker {
            event_id: fields.get("event")?.to_string(),
            from: fields.get("from")?.parse().ok()?,
            to: fields.get("to")?.parse().ok()?,
        })
    }
}

/// What the fix read of the resource it would grow.
#[derive(Debug, Clone)]
pub(crate) struct Reading {
    /// `volume vol-1 (gp3)`: how notices name it.
    pub what: String,
    /// The step its tag records, if any.
    pub marker: Option<Marker>,
    /// Why it must not be changed now (busy, grows by itself), when so.
    pub not_now: Option<String>,
    /// Its size, ceiling, smallest step and unit price.
    pub ask: GrowthAsk,
}

/// The resource a `capacity_high` event asks to grow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Subject {
    Volume {
        id: String,
        /// The instance and device of a disk alarm the volume was found from.
        found_from: Option<(String, String)>,
    },
    Database(String),
    Group(String),
}

impl Subject {
    fn unit(&self) -> &'static str {
        match self {
            Subject::Group(_) => "instances",
            _ => "GiB",
        }
    }
}

/// The metrics a disk-space alarm on an instance watches (the CloudWatch agent's, and the
/// older monitoring scripts').
const DISK_METRICS: &[&str] = &["disk_used_percent", "DiskSpaceUtilization"];

/// A `Skipped` report's reason when the event asks for something this fix leaves to people.
enum Resolved {
    Grow(Subject),
    Leave(String),
}

async fn resolve(
    request: &RemediationRequest<'_>,
    clients: &AwsClients,
    log: &mut CallLog,
) -> Result<Resolved, RemediationError> {
    let event = request.event;
    let id_of = |f: IdOf| f(event, FIX.action);
    let metric = text(event, "metric_name");
    Ok(match event.resource.kind.as_str() {
        aws_types::EBS_VOLUME => Resolved::Grow(Subject::Volume {
            id: id_of(crate::target::volume_id)?,
            found_from: None,
        }),
        aws_types::EC2_INSTANCE if DISK_METRICS.contains(&metric) => {
            let instance = id_of(crate::target::instance_id)?;
            match volume::behind_disk_alarm(clients, &instance, event, log).await? {
                Ok(subject) => Resolved::Grow(subject),
                Err(why) => Resolved::Leave(why),
            }
        }
        aws_types::EC2_INSTANCE => Resolved::Leave(format!(
            "the alarm watches the instance's {}; a bigger instance type needs a stop and start, which Escher leaves to you",
            if metric.is_empty() { "metrics" } else { metric }
        )),
        aws_types::RDS_INSTANCE if metric == "FreeStorageSpace" || metric.is_empty() => {
            Resolved::Grow(Subject::Database(database::identifier(event)?))
        }
        aws_types::RDS_INSTANCE => Resolved::Leave(format!(
            "the alarm watches the database's {metric}; a bigger instance class needs a maintenance window, which Escher leaves to you"
        )),
        aws_types::AUTOSCALING_GROUP => Resolved::Grow(Subject::Group(group::name(event)?)),
        other => {
            return Err(RemediationError::InvalidEvent {
                action: FIX.action,
                event_id: event.event_id.clone(),
                problem: format!("scale_up_capacity does not handle a {other}"),
            })
        }
    })
}

async fn read(
    subject: &Subject,
    clients: &AwsClients,
    request: &RemediationRequest<'_>,
    log: &mut CallLog,
) -> Result<Reading, RemediationError> {
    let limits = request.conditions.growth_limits();
    match subject {
        Subject::Volume { id, .. } => volume::read(clients, id, &limits, log).await,
        Subject::Database(id) => database::read(clients, id, &limits, log).await,
        Subject::Group(name) => group::read(clients, name, &limits, log).await,
    }
}

/// The checks after a step: the size reached, as the resource reports it now.
async fn checks_after(
    subject: &Subject,
    clients: &AwsClients,
    to: u64,
    log: &mut CallLog,
) -> Result<Vec<VerificationCheck>, RemediationError> {
    match subject {
        Subject::Volume { id, .. } => volume::checks_after(clients, id, to, log).await,
        Subject::Database(id) => database::checks_after(clients, id, to, log).await,
        Subject::Group(name) => group::checks_after(clients, name, to, log).await,
    }
}

#[async_trait]
impl Remediation for ScaleUpCapacityRemediation {
    fn description(&self) -> &'static FixDescription {
        &FIX
    }

    async fn verify(
        &self,
        request: &RemediationRequest<'_>,
    ) -> Result<Verification, RemediationError> {
        let target = Target::of(request, &FIX, &self.clients, |e, _| {
            Ok(e.resource.id.clone())
        })?;
        let (clients, mut log) = (&target.clients, target.log());
        let subject = match resolve(request, clients, &mut log).await? {
            Resolved::Grow(subject) => subject,
            Resolved::Leave(why) => {
                return Ok(Verification::from_checks(vec![check(
                    "grown",
                    "a step for this event",
                    why,
                    false,
                )]))
            }
        };
        let reading = read(&subject, clients, request, &mut log).await?;
        Ok(Verification::from_checks(
            match reading
                .marker
                .as_ref()
                .filter(|m| m.event_id == request.event.event_id)
            {
                Some(m) => checks_after(&subject, clients, m.to, &mut log).await?,
                None => vec![check(
                    "grown",
                    format!("a step for event {}", request.event.event_id),
                    format!("none recorded on {}", reading.what),
                    false,
                )],
            },
        ))
    }

    async fn remediate(
        &self,
        request: &RemediationRequest<'_>,
    ) -> Result<RemediationReport, RemediationError> {
        let event = request.event;
        let target = Target::of(request, &FIX, &self.clients, |e, _| {
            Ok(e.resource.id.clone())
        })?;
        let (clients, mut log) = (&target.clients, target.log());
        let report = |status, summary: String, log: CallLog| {
            RemediationReport::new(request, status, summary).with_calls(log.into_calls())
        };
        let subject = match resolve(request, clients, &mut log).await? {
            Resolved::Grow(subject) => subject,
            Resolved::Leave(why) => {
                return Ok(report(
                    RemediationStatus::Skipped,
                    format!("Not scaled: {why}."),
                    log,
                ))
            }
        };
        let reading = read(&subject, clients, request, &mut log).await?;
        let what = reading.what.clone();
        let unit = subject.unit();

        if let Some(done) = reading
            .marker
            .as_ref()
            .filter(|m| m.event_id == event.event_id)
        {
            let verification = Verification::from_checks(
                checks_after(&subject, clients, done.to, &mut log).await?,
            );
            return Ok(report(
                RemediationStatus::AlreadyCompliant,
                format!(
                    "{what} was already grown for this event ({} → {} {unit}); nothing changed.",
                    done.from, done.to
                ),
                log,
            )
            .with_verification(verification));
        }
        if let Some((name, verification)) = recovered_alarm(clients, event, &mut log).await? {
            return Ok(report(
                RemediationStatus::AlreadyCompliant,
                format!(
                    "The alarm {name} is back to OK; {what} was left at {} {unit}.",
                    reading.ask.current
                ),
                log,
            )
            .with_verification(verification));
        }
        if let Some(why) = &reading.not_now {
            return Ok(report(
                RemediationStatus::Skipped,
                format!("{what} was not scaled: {why}."),
                log,
            ));
        }
        let limits = request.conditions.growth_limits();
        let growth = match plan_growth(&reading.ask, &limits) {
            Ok(growth) => growth,
            Err(refused) => {
                return Ok(report(
                    RemediationStatus::Skipped,
                    format!("{what} was not scaled: {refused}."),
                    log,
                )
                .with_steps(vec![format!(
                    "limits: step {} %, {}; at most ${:.2} a month more",
                    limits.max_step_percent,
                    reading.ask.ceiling_source,
                    limits.max_added_monthly_usd
                )]))
            }
        };
        let step = describe_step(&subject, &what, &growth, &limits);
        if request.mode == Mode::DryRun {
            return Ok(report(
                RemediationStatus::WouldRemediate,
                format!(
                    "Dry run: would grow {what} from {} to {} {unit}.",
                    growth.from, growth.to
                ),
                log,
            )
            .with_steps(step.into_iter().map(|s| format!("would {s}")).collect()));
        }

        let marker = Marker {
            event_id: event.event_id.clone(),
            from: growth.from,
            to: growth.to,
        };
        match &subject {
            Subject::Volume { id, .. } => volume::grow(clients, id, &marker, &mut log).await?,
            Subject::Database(id) => database::grow(clients, id, &marker, &mut log).await?,
            Subject::Group(name) => group::grow(clients, name, &marker, &mut log).await?,
        }
        let verification =
            Verification::from_checks(checks_after(&subject, clients, growth.to, &mut log).await?);
        let summary = if verification.passed {
            format!(
                "Grew {what} from {} to {} {unit} (about ${:.2} a month more); verified.",
                growth.from, growth.to, growth.added_monthly_usd
            )
        } else {
            format!(
                "Asked AWS to grow {what} from {} to {} {unit}, but {} did not pass yet; check it by hand.",
                growth.from,
                growth.to,
                verification.failed_checks()
            )
        };
        let region = &event.region;
        Ok(report(RemediationStatus::Remediated, summary, log)
            .with_steps(step)
            .with_verification(verification)
            .with_next_steps(next_steps(&subject, region))
            .with_undo(undo(&subject, region, &growth)))
    }
}

fn describe_step(
    subject: &Subject,
    what: &str,
    growth: &Growth,
    limits: &escher_core::capacity::GrowthLimits,
) -> Vec<String> {
    let unit = subject.unit();
    let mut steps = Vec::new();
    if let Subject::Volume {
        found_from: Some((instance, device)),
        ..
    } = subject
    {
        steps.push(format!("found {what} behind {device} of {instance}"));
    }
    steps.push(format!(
        "grow {what} from {} to {} {unit} (+{} {unit}, about ${:.2} a month more at list prices; limits: step {} %, at most ${:.2} a month more)",
        growth.from,
        growth.to,
        growth.added(),
        growth.added_monthly_usd,
        limits.max_step_percent,
        limits.max_added_monthly_usd
    ));
    steps.push(format!(
        "tag it {MARKER_TAG} so this event never grows it twice"
    ));
    steps
}

fn next_steps(subject: &Subject, region: &str) -> Vec<String> {
    match subject {
        Subject::Volume { id, found_from } => {
            let on = match found_from {
                Some((instance, device)) => format!(" on {instance} ({device})"),
                None => String::new(),
            };
            vec![format!(
                "Grow the file system{on} to use the new space: `sudo growpart /dev/<disk> <partition>`, then `sudo resize2fs /dev/<partition>` (ext4) or `sudo xfs_growfs -d <mount point>` (XFS); `aws ec2 describe-volumes-modifications --region {region} --volume-ids {id}` shows when the volume is optimized"
            )]
        }
        Subject::Database(id) => vec![format!(
            "RDS applies the new storage over the next minutes without downtime; `aws rds describe-db-instances --region {region} --db-instance-identifier {id}` shows when it is done. Consider storage autoscaling (MaxAllocatedStorage) so it grows by itself"
        )],
        Subject::Group(name) => vec![format!(
            "The group launches the new instances over the next minutes; `aws autoscaling describe-auto-scaling-groups --region {region} --auto-scaling-group-names {name}` shows them"
        )],
    }
}

fn undo(subject: &Subject, region: &str, growth: &Growth) -> String {
    match subject {
        Subject::Volume { .. } => "EBS volumes cannot shrink: to go back, create a smaller volume and copy the data onto it".to_string(),
        Subject::Database(_) => "RDS allocated storage cannot shrink: to go back, restore a snapshot into a smaller instance".to_string(),
        Subject::Group(name) => format!(
            "aws autoscaling set-desired-capacity --region {region} --auto-scaling-group-name {name} --desired-capacity {}",
            growth.from
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_reads_back_what_was_written() {
        let m = Marker {
            event_id: "aws-1f2e".into(),
            from: 100,
            to: 120,
        };
        assert_eq!(m.value(), "event=aws-1f2e from=100 to=120");
        assert_eq!(Marker::parse(&m.value()), Some(m));
        assert_eq!(Marker::parse("event=x from=1"), None);
        assert_eq!(Marker::parse("written by hand"), None);
    }
}
