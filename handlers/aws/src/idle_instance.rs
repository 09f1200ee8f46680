//! `stop_idle_instance` for EC2: stop an instance only when CloudWatch shows it idle for the
//! approval's `min_idle_hours`: every 5-minute average of `AWS/EC2` `CPUUtilization` in that
//! window below the threshold, with enough datapoints to say so. Anything less certain
//! (no datapoints, a gap, one busy period) leaves the instance running and says why. The
//! instance is stopped, never terminated: its volumes and configuration stay.

use async_trait::async_trait;
use aws_sdk_cloudwatch::primitives::DateTime as AwsDateTime;
use aws_sdk_cloudwatch::types::{Dimension, Statistic};
use aws_sdk_ec2::types::InstanceStateName;
use chrono::{DateTime, Duration, Utc};
use escher_core::approvals::Action;
use escher_core::remediate::{
    FixDescription, Mode, Remediation, RemediationError, RemediationReport, RemediationRequest,
    RemediationStatus, RequiredPermission, Verification,
};
use escher_core::resource_types::aws as aws_types;
use escher_core::UnifiedEvent;

use crate::calls::{Access, CallLog};
use crate::clients::AwsClients;
use crate::report::check;
use crate::target::{instance_id, Target};
pub use escher_core::idleness::DEFAULT_IDLE_CPU_PERCENT;
use escher_core::idleness::{judge, CpuSample, Idleness};
use escher_core::words::hours;

pub(crate) const PERMISSIONS: &[RequiredPermission] = &[
    RequiredPermission {
        action: "ec2:DescribeInstances",
        resource: "*",
        why: "stop_idle_instance reads the instance state before and after stopping (Describe calls have no resource-level permissions)",
    },
    RequiredPermission {
        action: "ec2:StopInstances",
        resource: "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:instance/*",
        why: "stop_idle_instance stops an instance confirmed idle (never terminates it)",
    },
    RequiredPermission {
        action: "cloudwatch:GetMetricStatistics",
        resource: "*",
        why: "stop_idle_instance confirms idleness from AWS/EC2 CPUUtilization (CloudWatch metric reads have no resource-level permissions)",
    },
];

/// CloudWatch's basic-monitoring granularity for EC2.
const PERIOD_SECONDS: i64 = 300;

/// GetMetricStatistics returns at most this many datapoints per call.
const MAX_DATAPOINTS: i64 = 1440;

/// Stops EC2 instances that CloudWatch shows idle.
#[derive(Debug, Clone)]
pub struct IdleInstanceRemediation {
    clients: AwsClients,
}

impl IdleInstanceRemediation {
    pub fn new(clients: AwsClients) -> Self {
        IdleInstanceRemediation { clients }
    }
}

/// The idle threshold: the event's own when it comes from a "CPU below N" alarm on
/// `CPUUtilization` (the user chose N when creating the alarm), else the default.
fn threshold_of(event: &UnifiedEvent) -> (f64, &'static str) {
    let meta = &event.resource.metadata;
    let text = |k: &str| meta.get(k).and_then(|v| v.as_str()).unwrap_or_default();
    let stated = meta.get("threshold").and_then(|v| v.as_f64());
    // EventBridge alarm events carry no comparison operator; their reason says the side.
    let below = match text("comparison_operator") {
        "" => text("reason").contains("less than the threshold"),
        op => op.starts_with("LessThan"),
    };
    match stated {
        Some(t) if text("metric_name") == "CPUUtilization" && below && t > 0.0 && t <= 100.0 => {
            (t, "the alarm's threshold")
        }
        _ => (DEFAULT_IDLE_CPU_PERCENT, "the default idle threshold"),
    }
}

pub(crate) fn period_for(window: Duration) -> i64 {
    let seconds = window.num_seconds().max(0) as u64;
    let needed = seconds.div_ceil(MAX_DATAPOINTS as u64);
    // CloudWatch periods are multiples of 60 s.
    PERIOD_SECONDS.max((needed.div_ceil(60) * 60) as i64)
}

async fn instance_state(
    clients: &AwsClients,
    instance: &str,
    log: &mut CallLog,
) -> Result<Option<InstanceStateName>, RemediationError> {
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
    Ok(out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .find(|i| i.instance_id() == Some(instance))
        .and_then(|i| i.state())
        .and_then(|s| s.name())
        .cloned())
}

pub(crate) async fn cpu_samples(
    clients: &AwsClients,
    instance: &str,
    window: Duration,
    period: i64,
    log: &mut CallLog,
) -> Result<Vec<CpuSample>, RemediationError> {
    let end = Utc::now();
    let start = end - window;
    let out = log
        .must(
            "cloudwatch",
            "GetMetricStatistics",
            instance,
            Access::Read,
            clients
                .cloudwatch()
                .get_metric_statistics()
                .namespace("AWS/EC2")
                .metric_name("CPUUtilization")
                .dimensions(
                    Dimension::builder()
                        .name("InstanceId")
                        .value(instance)
                        .build(),
                )
                .start_time(AwsDateTime::from_secs(start.timestamp()))
                .end_time(AwsDateTime::from_secs(end.timestamp()))
                .period(i32::try_from(period).unwrap_or(i32::MAX))
                .statistics(Statistic::Average)
                .send(),
        )
        .await?;
    let mut samples: Vec<CpuSample> = out
        .datapoints()
        .iter()
        .filter_map(|d| {
            Some(CpuSample {
                at: DateTime::from_timestamp(d.timestamp()?.secs(), 0)?,
                average: d.average()?,
            })
        })
        .collect();
    samples.sort_by_key(|s| s.at);
    Ok(samples)
}

fn state_words(state: &Option<InstanceStateName>) -> String {
    state
        .as_ref()
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|| "not found".to_string())
}

/// The fix's one check: the instance is stopping or stopped.
fn stopped_check(state: &Option<InstanceStateName>) -> Verification {
    Verification::from_checks(vec![check(
        "instance state",
        "stopping or stopped",
        state_words(state),
        matches!(
            state,
            Some(InstanceStateName::Stopping | InstanceStateName::Stopped)
        ),
    )])
}

const FIX: FixDescription = FixDescription {
    action: Action::StopIdleInstance,
    resource_types: &[aws_types::EC2_INSTANCE],
    permissions: PERMISSIONS,
};

#[async_trait]
impl Remediation for IdleInstanceRemediation {
    fn description(&self) -> &'static FixDescription {
        &FIX
    }

    async fn verify(
        &self,
        request: &RemediationRequest<'_>,
    ) -> Result<Verification, RemediationError> {
        let target = Target::of(request, &FIX, &self.clients, instance_id)?;
        let (clients, instance, mut log) = (&target.clients, target.id.clone(), target.log());
        let state = instance_state(clients, &instance, &mut log).await?;
        Ok(stopped_check(&state))
    }

    async fn remediate(
        &self,
        request: &RemediationRequest<'_>,
    ) -> Result<RemediationReport, RemediationError> {
        let event = request.event;
        let target = Target::of(request, &FIX, &self.clients, instance_id)?;
        let (clients, instance, mut log) = (&target.clients, target.id.clone(), target.log());
        let report = |status, summary: String, steps, calls, verification, undo: Option<String>| {
            RemediationReport::new(request, status, summary)
                .with_steps(steps)
                .with_calls(calls)
                .with_verification(verification)
                .with_undo(undo)
        };

        let state = instance_state(clients, &instance, &mut log).await?;
        match &state {
            Some(InstanceStateName::Running) => {}
            Some(InstanceStateName::Stopped | InstanceStateName::Stopping) => {
                let observed = state_words(&state);
                return Ok(report(
                    RemediationStatus::AlreadyCompliant,
                    format!("Instance {instance} is already {observed}; nothing changed."),
                    Vec::new(),
                    log.into_calls(),
                    Some(Verification::from_checks(vec![check(
                        "instance state",
                        "stopping or stopped",
                        observed,
                        true,
                    )])),
                    None,
                ));
            }
            _ => {
                let observed = state_words(&state);
                return Ok(report(
                    RemediationStatus::Skipped,
                    format!("Instance {instance} is {observed}, not running; nothing to stop."),
                    Vec::new(),
                    log.into_calls(),
                    None,
                    None,
                ));
            }
        }

        let window_hours = request.conditions.min_idle_hours();
        let window = request.conditions.idle_window();
        let period = period_for(window);
        let (threshold, threshold_source) = threshold_of(event);
        let samples = cpu_samples(clients, &instance, window, period, &mut log).await?;
        let (average, peak) = match judge(&samples, threshold, window_hours, period) {
            Idleness::NotIdle(reason) => {
                return Ok(report(
                    RemediationStatus::Skipped,
                    format!("Instance {instance} was not stopped: {reason}."),
                    vec![format!(
                        "checked AWS/EC2 CPUUtilization of {instance} over the last {} against {threshold} % ({threshold_source})",
                        hours(window_hours)
                    )],
                    log.into_calls(),
                    None,
                    None,
                ));
            }
            Idleness::Idle { average, peak } => (average, peak),
        };
        let evidence = format!(
            "average CPU {average:.1} % over the last {} ({} datapoints, busiest {}-minute period {peak:.1} %), below {threshold} % ({threshold_source})",
            hours(window_hours),
            samples.len(),
            period / 60
        );
        let steps = vec![
            format!("confirmed {instance} idle: {evidence}"),
            format!("stop {instance} (not terminate: its volumes and settings stay)"),
        ];
        if request.mode == Mode::DryRun {
            return Ok(report(
                RemediationStatus::WouldRemediate,
                format!("Dry run: would stop idle instance {instance} ({evidence})."),
                steps.into_iter().map(|s| format!("would {s}")).collect(),
                log.into_calls(),
                None,
                None,
            ));
        }

        log.must(
            "ec2",
            "StopInstances",
            &instance,
            Access::Write,
            clients
                .ec2()
                .stop_instances()
                .instance_ids(&instance)
                .send(),
        )
        .await?;
        let after = instance_state(clients, &instance, &mut log).await?;
        let verification = stopped_check(&after);
        let stopped = verification.passed;
        let summary = if stopped {
            format!("Stopped idle instance {instance} ({evidence}); verified.")
        } else {
            format!(
                "Asked EC2 to stop {instance}, but it is {}; check it by hand.",
                state_words(&after)
            )
        };
        Ok(report(
            RemediationStatus::Remediated,
            summary,
            steps,
            log.into_calls(),
            Some(verification),
            Some(format!(
                "To start it again: aws ec2 start-instances --region {} --instance-ids {instance}   (it gets a new public IPv4 address unless it has an Elastic IP; instance-store data is gone)",
                event.region
            )),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_windows_use_longer_periods_within_the_datapoint_limit() {
        assert_eq!(period_for(Duration::hours(2)), 300);
        let week = period_for(Duration::days(7));
        assert!(week % 60 == 0 && Duration::days(7).num_seconds() / week <= MAX_DATAPOINTS);
    }
}
