//! `stop_idle_instance` for Compute Engine: stop a VM only when Cloud Monitoring shows it idle
//! for the approval's `min_idle_hours` (every period's mean
//! `compute.googleapis.com/instance/cpu/utilization` below the threshold, with enough
//! datapoints to say so; the rule is core's [`escher_core::idleness`], the same as on every
//! cloud). Stopped, not deleted: its disks and configuration stay, `gcloud compute instances
//! start` brings it back. The stop is a zonal operation, waited for before the VM is read back.

use async_trait::async_trait;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use escher_core::approvals::Action;
use escher_core::idleness::{judge, CpuSample, Idleness, DEFAULT_IDLE_CPU_PERCENT};
use escher_core::remediate::{
    FixDescription, Mode, Remediation, RemediationError, RemediationReport, RemediationRequest,
    RemediationStatus, RequiredPermission, Verification, VerificationCheck,
};
use escher_core::resource_types::gcp as gcp_types;
use escher_core::words::hours;
use escher_runtime::RemoteCallMeter;
use serde_json::Value;

use crate::rest::{CallLog, GcpClient, GcpOperation, HttpMethod, Service};
use crate::target::{self, Zonal};

pub(crate) const GET_INSTANCE: GcpOperation = GcpOperation {
    id: "compute.instances.get",
    service: Service::Compute,
    method: HttpMethod::Get,
    permission: "compute.instances.get",
    mutating: false,
    long_running: false,
};
pub(crate) const STOP_INSTANCE: GcpOperation = GcpOperation {
    id: "compute.instances.stop",
    service: Service::Compute,
    method: HttpMethod::Post,
    permission: "compute.instances.stop",
    mutating: true,
    long_running: true,
};
pub(crate) const LIST_TIME_SERIES: GcpOperation = GcpOperation {
    id: "monitoring.projects.timeSeries.list",
    service: Service::Monitoring,
    method: HttpMethod::Get,
    permission: "monitoring.timeSeries.list",
    mutating: false,
    long_running: false,
};

/// The metric Cloud Monitoring keeps for every VM (a fraction of its vCPUs, 0 to 1).
pub const CPU_METRIC: &str = "compute.googleapis.com/instance/cpu/utilization";

pub(crate) const PERMISSIONS: &[RequiredPermission] = &[
    RequiredPermission {
        action: "compute.instances.get",
        resource: "project",
        why: "stop_idle_instance reads the VM's status before and after stopping it",
    },
    RequiredPermission {
        action: "compute.instances.stop",
        resource: "project",
        why: "stop_idle_instance stops a VM confirmed idle (never deletes it)",
    },
    RequiredPermission {
        action: "compute.zoneOperations.get",
        resource: "project",
        why: "stop_idle_instance waits for the stop to finish",
    },
    RequiredPermission {
        action: "monitoring.timeSeries.list",
        resource: "project",
        why:
            "stop_idle_instance confirms idleness from the VM's CPU utilization in Cloud Monitoring",
    },
];

const FIX: FixDescription = FixDescription {
    action: Action::StopIdleInstance,
    resource_types: &[gcp_types::GCE_INSTANCE],
    permissions: PERMISSIONS,
};

/// Stops Compute Engine VMs that Cloud Monitoring shows idle.
#[derive(Debug, Clone)]
pub struct IdleInstanceRemediation {
    client: GcpClient,
    meter: Option<RemoteCallMeter>,
}

impl IdleInstanceRemediation {
    pub fn new(client: GcpClient, meter: Option<RemoteCallMeter>) -> Self {
        IdleInstanceRemediation { client, meter }
    }
}

/// The alignment period for the window: 5 minutes up to a day, hourly beyond (as on Azure).
fn period_for(window: Duration) -> i64 {
    if window <= Duration::hours(24) {
        300
    } else {
        3600
    }
}

/// The VM's per-period mean CPU over `[start, end)`, in percent.
pub(crate) async fn cpu_samples(
    client: &GcpClient,
    vm: &Zonal,
    instance_id: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    period: i64,
    log: &mut CallLog,
) -> Result<Vec<CpuSample>, RemediationError> {
    let filter = format!(
        "metric.type = \"{CPU_METRIC}\" AND resource.labels.instance_id = \"{instance_id}\""
    );
    let (start, end) = (
        start.to_rfc3339_opts(SecondsFormat::Secs, true),
        end.to_rfc3339_opts(SecondsFormat::Secs, true),
    );
    let period = format!("{period}s");
    let series = log
        .list(
            client,
            &LIST_TIME_SERIES,
            &format!("projects/{}/timeSeries", vm.project),
            &[
                ("filter", &filter),
                ("interval.startTime", &start),
                ("interval.endTime", &end),
                ("aggregation.alignmentPeriod", &period),
                ("aggregation.perSeriesAligner", "ALIGN_MEAN"),
            ],
            "timeSeries",
        )
        .await
        .map_err(|e| log.fail(e))?;
    Ok(samples_of(&series))
}

/// Every point of every series, as percent (the metric is a fraction).
fn samples_of(series: &[Value]) -> Vec<CpuSample> {
    series
        .iter()
        .flat_map(|s| {
            s.get("points")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|point| {
            let at = point
                .pointer("/interval/endTime")
                .and_then(Value::as_str)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())?
                .with_timezone(&Utc);
            let value = point
                .pointer("/value/doubleValue")
                .and_then(Value::as_f64)?;
            Some(CpuSample {
                at,
                average: value * 100.0,
            })
        })
        .collect()
}

/// Statuses in which a VM no longer runs (or is on its way there).
fn stopped(status: &str) -> bool {
    matches!(status, "TERMINATED" | "STOPPING" | "STOPPED")
}

fn stopped_check(status: Option<&str>) -> VerificationCheck {
    VerificationCheck::new(
        "status",
        "TERMINATED or STOPPING",
        status.unwrap_or("unknown"),
        status.is_some_and(stopped),
    )
}

impl IdleInstanceRemediation {
    async fn read(&self, vm: &Zonal, log: &mut CallLog) -> Result<Value, RemediationError> {
        log.call(
            &self.client,
            &GET_INSTANCE,
            &vm.path("instances"),
            &[],
            None,
        )
        .await
        .map_err(|e| log.fail(e))
    }
}

fn status_of(instance: &Value) -> Option<&str> {
    instance.get("status").and_then(Value::as_str)
}

#[async_trait]
impl Remediation for IdleInstanceRemediation {
    fn description(&self) -> &'static FixDescription {
        &FIX
    }

    async fn remediate(
        &self,
        request: &RemediationRequest<'_>,
    ) -> Result<RemediationReport, RemediationError> {
        let vm = target::zonal(request, "instances")?;
        let name = vm.name.clone();
        let mut log = CallLog::metered(self.meter.as_ref());
        let instance = self.read(&vm, &mut log).await?;
        match status_of(&instance) {
            Some(status) if stopped(status) => {
                return Ok(RemediationReport::new(
                    request,
                    RemediationStatus::AlreadyCompliant,
                    format!("VM {name} is already stopped ({status}); nothing was changed."),
                )
                .with_calls(log.into_calls())
                .with_verification(Verification::from_checks(vec![stopped_check(Some(status))])));
            }
            Some("RUNNING") => {}
            other => {
                return Ok(RemediationReport::new(
                    request,
                    RemediationStatus::Skipped,
                    format!(
                        "VM {name} is {}; only a running VM is stopped.",
                        other.unwrap_or("in an unknown status")
                    ),
                )
                .with_calls(log.into_calls()));
            }
        }
        // Monitoring labels a VM's series by its numeric id, not its name.
        let instance_id = match instance.get("id") {
            Some(Value::String(id)) => id.clone(),
            Some(Value::Number(id)) => id.to_string(),
            _ => {
                return Ok(RemediationReport::new(
                    request,
                    RemediationStatus::Skipped,
                    format!("VM {name} was left running: Compute Engine gave no instance id to look its CPU up by."),
                )
                .with_calls(log.into_calls()))
            }
        };
        let window_hours = request.conditions.min_idle_hours();
        let window = Duration::seconds((window_hours * 3600.0) as i64);
        let period = period_for(window);
        let end = Utc::now();
        let samples = cpu_samples(
            &self.client,
            &vm,
            &instance_id,
            end - window,
            end,
            period,
            &mut log,
        )
        .await?;
        let threshold = DEFAULT_IDLE_CPU_PERCENT;
        let (average, peak) = match judge(&samples, threshold, window_hours, period) {
            Idleness::NotIdle(reason) => {
                return Ok(RemediationReport::new(
                    request,
                    RemediationStatus::Skipped,
                    format!("VM {name} was left running: {reason}."),
                )
                .with_calls(log.into_calls()));
            }
            Idleness::Idle { average, peak } => (average, peak),
        };
        let evidence = format!(
            "CPU averaged {average:.1} % (peak period {peak:.1} %) over the last {}, below {threshold} %",
            hours(window_hours)
        );
        if request.mode == Mode::DryRun {
            return Ok(RemediationReport::new(
                request,
                RemediationStatus::WouldRemediate,
                format!("Would stop VM {name}: {evidence}."),
            )
            .with_calls(log.into_calls()));
        }
        log.call(
            &self.client,
            &STOP_INSTANCE,
            &format!("{}/stop", vm.path("instances")),
            &[],
            None,
        )
        .await
        .map_err(|e| log.fail(e))?;
        let after = self.read(&vm, &mut log).await?;
        let status = status_of(&after);
        let verification = Verification::from_checks(vec![stopped_check(status)]);
        let (outcome, summary) = if verification.passed {
            (
                RemediationStatus::Remediated,
                format!("Stopped idle VM {name}: {evidence}."),
            )
        } else {
            (
                RemediationStatus::Skipped,
                format!(
                    "Asked Compute Engine to stop VM {name}, but it reads as {}.",
                    status.unwrap_or("unknown")
                ),
            )
        };
        Ok(RemediationReport::new(request, outcome, summary)
            .with_steps(vec![format!("Stopped VM {name} ({evidence})")])
            .with_calls(log.into_calls())
            .with_verification(verification)
            .with_next_steps(vec![
                "Its ephemeral external IP changes on start unless it is reserved; its persistent disks still bill while it is stopped.".to_string(),
            ])
            .with_undo(format!(
                "To start it again: gcloud compute instances start {name} --zone {} --project {}",
                vm.zone, vm.project
            )))
    }

    async fn verify(
        &self,
        request: &RemediationRequest<'_>,
    ) -> Result<Verification, RemediationError> {
        let vm = target::zonal(request, "instances")?;
        let mut log = CallLog::metered(self.meter.as_ref());
        let instance = self.read(&vm, &mut log).await?;
        Ok(Verification::from_checks(vec![stopped_check(status_of(
            &instance,
        ))]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn utilization_is_read_as_percent_and_points_without_a_value_are_gaps() {
        let series = [json!({"points": [
            {"interval": {"startTime": "2026-12-03T00:00:00Z", "endTime": "2026-12-03T00:05:00Z"}, "value": {"doubleValue": 0.015}},
            {"interval": {"endTime": "2026-12-03T00:10:00Z"}, "value": {}},
            {"interval": {"endTime": "2026-12-03T00:15:00Z"}, "value": {"doubleValue": 0.005}}
        ]})];
        let samples = samples_of(&series);
        assert_eq!(samples.len(), 2);
        assert!((samples[0].average - 1.5).abs() < 1e-9);
    }

    #[test]
    fn only_a_stopped_or_stopping_vm_passes() {
        assert!(stopped_check(Some("TERMINATED")).passed);
        assert!(stopped_check(Some("STOPPING")).passed);
        assert!(!stopped_check(Some("RUNNING")).passed);
        assert!(!stopped_check(None).passed);
        assert_eq!(period_for(Duration::days(14)), 3600);
    }
}
