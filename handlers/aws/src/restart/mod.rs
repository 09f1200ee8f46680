//! `restart_service` for AWS: an unhealthy ECS service gets a new deployment (its tasks
//! replaced; verified by the running count returning to desired with the old deployment
//! gone), and an EC2 instance failing its own status check is rebooted (verified by both
//! status checks passing).
//!
//! Restarts are counted on the resource itself (the `escher:restarts` tag: the last event
//! answered and the times of the restarts in the past hour), so a crash loop is not fed past
//! the approval's `max_restarts_per_hour` and a retried event never restarts twice. What a
//! restart cannot cure is left to people and said why: a failed system check (the host's:
//! a stop and start moves the instance), an AWS Health notice, an ECS placement or
//! configuration failure.

mod instance;
mod service;

use std::time::Duration as StdDuration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use escher_core::approvals::Action;
use escher_core::remediate::{
    FixDescription, Mode, Remediation, RemediationError, RemediationReport, RemediationRequest,
    RemediationStatus, RequiredPermission, Verification, VerificationCheck,
};
use escher_core::resource_types::aws as aws_types;
use escher_core::{EventSource, UnifiedEvent};

use crate::alarms::recovered_alarm;
use crate::calls::CallLog;
use crate::clients::AwsClients;
use crate::report::check;
use crate::target::metadata_str;
use crate::target::Target;

/// The tag the restarts are counted in: `event=<last event id> at=<unix>,<unix>`.
pub(crate) const LEDGER_TAG: &str = "escher:restarts";

/// How long the fix waits for the resource to be healthy again before reporting it
/// unverified: within the alert function's default 60 s run.
const DEFAULT_WAIT: StdDuration = StdDuration::from_secs(40);
const POLL: StdDuration = StdDuration::from_secs(3);

const INSTANCE: &str = "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:instance/*";
const SERVICE: &str = "arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:service/*";

pub(crate) const PERMISSIONS: &[RequiredPermission] = &[
    crate::alarms::describe_alarms(
        "restart_service reads whether the alarm is still firing (an instance whose alarm is back to OK is not rebooted)",
    ),
    RequiredPermission {
        action: "ec2:DescribeInstances",
        resource: "*",
        why: "restart_service reads an instance's state and its restart count (Describe calls have no resource-level permissions)",
    },
    RequiredPermission {
        action: "ec2:DescribeInstanceStatus",
        resource: "*",
        why: "restart_service reads the status checks before and after a reboot (Describe calls have no resource-level permissions)",
    },
    RequiredPermission {
        action: "ec2:RebootInstances",
        resource: INSTANCE,
        why: "restart_service reboots an instance failing its own status check",
    },
    RequiredPermission {
        action: "ec2:CreateTags",
        resource: INSTANCE,
        why: "restart_service counts an instance's restarts on it (escher:restarts), so a crash loop is not fed",
    },
    RequiredPermission {
        action: "ecs:DescribeServices",
        resource: SERVICE,
        why: "restart_service reads a service's running and desired counts, deployments and restart count",
    },
    RequiredPermission {
        action: "ecs:UpdateService",
        resource: SERVICE,
        why: "restart_service starts a new deployment of an unhealthy service (force new deployment, same task definition)",
    },
    RequiredPermission {
        action: "ecs:TagResource",
        resource: SERVICE,
        why: "restart_service counts a service's restarts on it (escher:restarts), so a crash loop is not fed",
    },
];

const FIX: FixDescription = FixDescription {
    action: Action::RestartService,
    resource_types: &[aws_types::ECS_SERVICE, aws_types::EC2_INSTANCE],
    permissions: PERMISSIONS,
};

/// Restarts unhealthy ECS services and EC2 instances failing their own status check.
#[derive(Debug, Clone)]
pub struct RestartServiceRemediation {
    clients: AwsClients,
    wait: StdDuration,
}

impl RestartServiceRemediation {
    pub fn new(clients: AwsClients) -> Self {
        RestartServiceRemediation {
            clients,
            wait: DEFAULT_WAIT,
        }
    }

    /// How long to wait for the resource to be healthy after the restart.
    pub fn with_wait(mut self, wait: StdDuration) -> Self {
        self.wait = wait;
        self
    }
}

/// The restarts a resource's tag records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Ledger {
    pub last_event: String,
    pub times: Vec<i64>,
}

impl Ledger {
    pub(crate) fn parse(value: &str) -> Ledger {
        let fields = crate::tags::marker_fields(value);
        Ledger {
            last_event: fields
                .get("event")
                .map(|v| v.to_string())
                .unwrap_or_default(),
            times: fields
                .get("at")
                .map(|v| v.split(',').filter_map(|t| t.parse().ok()).collect())
                .unwrap_or_default(),
        }
    }

    pub(crate) fn value(&self) -> String {
        let times: Vec<String> = self.times.iter().map(i64::to_string).collect();
        format!("event={} at={}", self.last_event, times.join(","))
    }

    /// The restarts in the hour before `now`.
    pub(crate) fn in_last_hour(&self, now: DateTime<Utc>) -> usize {
        let since = now.timestamp() - 3600;
        self.times.iter().filter(|t| **t > since).count()
    }

    /// The ledger after a restart for `event_id` at `now` (older than an hour forgotten).
    pub(crate) fn after_restart(&self, event_id: &str, now: DateTime<Utc>) -> Ledger {
        let since = now.timestamp() - 3600;
        let mut times: Vec<i64> = self.times.iter().copied().filter(|t| *t > since).collect();
        times.push(now.timestamp());
        Ledger {
            last_event: event_id.to_string(),
            times,
        }
    }
}

/// What the fix read of the resource it would restart.
#[derive(Debug, Clone)]
pub(crate) struct Reading {
    /// `service checkout (cluster prod)`: how notices name it.
    pub what: String,
    pub ledger: Ledger,
    /// Healthy now (the service steady, the checks passing), with what was seen.
    pub healthy: Option<String>,
    /// Why it must not be restarted (not running, a system check failing), when so.
    pub not_now: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Subject {
    Service { cluster: String, service: String },
    Instance(String),
}

enum Resolved {
    Restart(Subject),
    Leave(String),
}

fn resolve(event: &UnifiedEvent) -> Result<Resolved, RemediationError> {
    let invalid = |problem: String| RemediationError::InvalidEvent {
        action: FIX.action,
        event_id: event.event_id.clone(),
        problem,
    };
    Ok(match event.resource.kind.as_str() {
        aws_types::ECS_SERVICE => {
            let restartable = event
                .resource
                .metadata
                .get("restartable")
                .and_then(|v| v.as_bool())
                .unwrap_or(true);
            if !restartable {
                let name = metadata_str(event, "event_name");
                let reason = metadata_str(event, "reason");
                let said = if reason.is_empty() {
                    name.to_string()
                } else {
                    format!("{name}: {reason}")
                };
                return Ok(Resolved::Leave(format!(
                    "ECS reported {said}; new tasks would fail the same way, so the service is left to you"
                )));
            }
            let (cluster, service) = crate::ecs_service::names(event).ok_or_else(|| {
                invalid(format!(
                    "the event names no ECS service (resource id `{}`); act by hand",
                    event.resource.id
                ))
            })?;
            Resolved::Restart(Subject::Service { cluster, service })
        }
        aws_types::EC2_INSTANCE => {
            let metric = metadata_str(event, "metric_name");
            if event.source == EventSource::AwsHealth {
                return Ok(Resolved::Leave(
                    "an AWS Health notice about an instance (retirement, maintenance) needs a stop and start at a time you choose, which Escher leaves to you".into(),
                ));
            }
            if metric == "StatusCheckFailed_System" {
                return Ok(Resolved::Leave(
                    "the system status check is the host's: a reboot does not help, a stop and start moves the instance to healthy hardware (instance-store data is lost), which Escher leaves to you".into(),
                ));
            }
            if !metric.starts_with("StatusCheckFailed") {
                return Ok(Resolved::Leave(format!(
                    "only an instance failing its status check is rebooted; this alert is about {}",
                    if metric.is_empty() {
                        "something else"
                    } else {
                        metric
                    }
                )));
            }
            Resolved::Restart(Subject::Instance(crate::target::instance_id(
                event, FIX.action,
            )?))
        }
        other => {
            return Err(invalid(format!(
                "restart_service does not handle a {other}"
            )))
        }
    })
}

async fn read(
    subject: &Subject,
    clients: &AwsClients,
    log: &mut CallLog,
) -> Result<Reading, RemediationError> {
    match subject {
        Subject::Service { cluster, service } => {
            service::read(clients, cluster, service, log).await
        }
        Subject::Instance(id) => instance::read(clients, id, log).await,
    }
}

/// The checks after a restart, polled until they pass or `wait` is over.
async fn checks_after(
    subject: &Subject,
    clients: &AwsClients,
    wait: StdDuration,
    log: &mut CallLog,
) -> Result<Vec<VerificationCheck>, RemediationError> {
    let started = std::time::Instant::now();
    loop {
        let checks = match subject {
            Subject::Service { cluster, service } => {
                service::checks(clients, cluster, service, log).await?
            }
            Subject::Instance(id) => instance::checks(clients, id, log).await?,
        };
        if checks.iter().all(|c| c.passed) || started.elapsed() >= wait {
            return Ok(checks);
        }
        tokio::time::sleep(POLL.min(wait)).await;
    }
}

#[async_trait]
impl Remediation for RestartServiceRemediation {
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
        let subject = match resolve(request.event)? {
            Resolved::Restart(subject) => subject,
            Resolved::Leave(why) => {
                return Ok(Verification::from_checks(vec![check(
                    "restarted",
                    "a restart for this event",
                    why,
                    false,
                )]))
            }
        };
        let reading = read(&subject, clients, &mut log).await?;
        if reading.ledger.last_event != request.event.event_id {
            return Ok(Verification::from_checks(vec![check(
                "restarted",
                format!("a restart for event {}", request.event.event_id),
                format!("none recorded on {}", reading.what),
                false,
            )]));
        }
        Ok(Verification::from_checks(
            checks_after(&subject, clients, StdDuration::ZERO, &mut log).await?,
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
        let subject = match resolve(event)? {
            Resolved::Restart(subject) => subject,
            Resolved::Leave(why) => {
                return Ok(report(
                    RemediationStatus::Skipped,
                    format!("Not restarted: {why}."),
                    log,
                ))
            }
        };
        let reading = read(&subject, clients, &mut log).await?;
        let what = reading.what.clone();
        if reading.ledger.last_event == event.event_id {
            let checks = checks_after(&subject, clients, StdDuration::ZERO, &mut log).await?;
            return Ok(report(
                RemediationStatus::AlreadyCompliant,
                format!("{what} was already restarted for this event; nothing changed."),
                log,
            )
            .with_verification(Verification::from_checks(checks)));
        }
        if let Some(seen) = &reading.healthy {
            return Ok(report(
                RemediationStatus::AlreadyCompliant,
                format!("{what} is healthy again ({seen}); not restarted."),
                log,
            )
            .with_verification(Verification::from_checks(vec![check(
                "healthy",
                "healthy",
                seen.clone(),
                true,
            )])));
        }
        let recovered = match subject {
            Subject::Instance(_) => recovered_alarm(clients, event, &mut log).await?,
            Subject::Service { .. } => None,
        };
        if let Some((name, verification)) = recovered {
            return Ok(report(
                RemediationStatus::AlreadyCompliant,
                format!("The alarm {name} is back to OK; {what} was not rebooted."),
                log,
            )
            .with_verification(verification));
        }
        if let Some(why) = &reading.not_now {
            return Ok(report(
                RemediationStatus::Skipped,
                format!("{what} was not restarted: {why}."),
                log,
            ));
        }
        let now = Utc::now();
        let limit = request.conditions.max_restarts_per_hour();
        let recent = reading.ledger.in_last_hour(now);
        if recent >= limit as usize {
            return Ok(report(
                RemediationStatus::Skipped,
                format!(
                    "{what} was not restarted: it was restarted {recent} time(s) in the last hour and the approval allows {limit} (max_restarts_per_hour); restarting again would feed a crash loop, a person must look."
                ),
                log,
            ));
        }
        let how = match &subject {
            Subject::Service { .. } => {
                "start a new deployment of it (same task definition: every task replaced)"
            }
            Subject::Instance(_) => {
                "reboot it (an operating-system restart; its disks and addresses stay)"
            }
        };
        let steps = vec![
            format!("{what}: {how}"),
            format!(
                "count the restart on it ({LEDGER_TAG}: {} in the last hour, the approval allows {limit})",
                recent + 1
            ),
        ];
        if request.mode == Mode::DryRun {
            return Ok(report(
                RemediationStatus::WouldRemediate,
                format!("Dry run: would restart {what}."),
                log,
            )
            .with_steps(steps.into_iter().map(|s| format!("would {s}")).collect()));
        }
        let ledger = reading.ledger.after_restart(&event.event_id, now);
        match &subject {
            Subject::Service { cluster, service } => {
                service::restart(clients, cluster, service, &ledger, &mut log).await?
            }
            Subject::Instance(id) => instance::restart(clients, id, &ledger, &mut log).await?,
        }
        let verification =
            Verification::from_checks(checks_after(&subject, clients, self.wait, &mut log).await?);
        let summary = if verification.passed {
            format!("Restarted {what}; it is healthy again (verified).")
        } else {
            format!(
                "Restarted {what}, but after {} s {} did not pass yet; look at it.",
                self.wait.as_secs(),
                verification.failed_checks()
            )
        };
        Ok(report(RemediationStatus::Remediated, summary, log)
            .with_steps(steps)
            .with_verification(verification)
            .with_undo(Some(
                "A restart cannot be undone; nothing was changed in the resource's configuration"
                    .to_string(),
            )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ledger_counts_the_last_hour_and_reads_back() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let ledger = Ledger::parse("event=aws-1 at=1799990000,1799999000");
        assert_eq!(ledger.last_event, "aws-1");
        assert_eq!(ledger.in_last_hour(now), 1);
        let next = ledger.after_restart("aws-2", now);
        assert_eq!(next.value(), "event=aws-2 at=1799999000,1800000000");
        assert_eq!(Ledger::parse(&next.value()), next);
        assert_eq!(Ledger::parse("by hand"), Ledger::default());
    }
}
