//! `stop_idle_instance` for Azure virtual machines: deallocate a VM only when Azure Monitor
//! shows it idle for the approval's `min_idle_hours` (every period's average `Percentage
//! CPU` below the threshold, with enough datapoints to say so; the rule is core's
//! [`escher_core::idleness`], the same as on every cloud). Deallocated, not just stopped: a
//! stopped VM still bills its compute. Its disks, NICs and configuration stay; `az vm start`
//! brings it back.

use async_trait::async_trait;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use escher_core::approvals::Action;
use escher_core::idleness::{judge, CpuSample, Idleness, DEFAULT_IDLE_CPU_PERCENT};
use escher_core::remediate::{
    FixDescription, Mode, Remediation, RemediationError, RemediationReport, RemediationRequest,
    RemediationStatus, RequiredPermission, Verification, VerificationCheck,
};
use escher_core::resource_types::azure as azure_types;
use escher_core::words::hours;
use escher_runtime::RemoteCallMeter;
use serde_json::Value;

use crate::arm::{ArmClient, ArmOperation, CallLog, HttpMethod};
use crate::ids;
use crate::target::arm_target;

const COMPUTE_API: &str = "2024-07-01";

pub(crate) const INSTANCE_VIEW: ArmOperation = ArmOperation {
    id: "VirtualMachines_InstanceView",
    method: HttpMethod::Get,
    api_version: COMPUTE_API,
    permission: "Microsoft.Compute/virtualMachines/read",
};
pub(crate) const DEALLOCATE: ArmOperation = ArmOperation {
    id: "VirtualMachines_Deallocate",
    method: HttpMethod::Post,
    api_version: COMPUTE_API,
    permission: "Microsoft.Compute/virtualMachines/deallocate/action",
};
pub(crate) const METRICS: ArmOperation = ArmOperation {
    id: "Metrics_List",
    method: HttpMethod::Get,
    api_version: "2023-10-01",
    permission: "Microsoft.Insights/metrics/read",
};

pub(crate) const PERMISSIONS: &[RequiredPermission] = &[
    RequiredPermission {
        action: "Microsoft.Compute/virtualMachines/read",
        resource: "subscription",
        why: "stop_idle_instance reads the VM's power state before and after deallocating it",
    },
    RequiredPermission {
        action: "Microsoft.Compute/virtualMachines/deallocate/action",
        resource: "subscription",
        why: "stop_idle_instance deallocates a VM confirmed idle (never deletes it)",
    },
    RequiredPermission {
        action: "Microsoft.Insights/metrics/read",
        resource: "subscription",
        why: "stop_idle_instance confirms idleness from the VM's Percentage CPU in Azure Monitor",
    },
];

const FIX: FixDescription = FixDescription {
    action: Action::StopIdleInstance,
    resource_types: &[azure_types::VM],
    permissions: PERMISSIONS,
};

/// Deallocates Azure VMs that Azure Monitor shows idle.
#[derive(Debug, Clone)]
pub struct IdleVmRemediation {
    arm: ArmClient,
    meter: Option<RemoteCallMeter>,
}

impl IdleVmRemediation {
    pub fn new(arm: ArmClient, meter: Option<RemoteCallMeter>) -> Self {
        IdleVmRemediation { arm, meter }
    }
}

/// The VM's power state code without its `PowerState/` prefix (`running`, `deallocated`).
fn power_state(instance_view: &Value) -> Option<String> {
    instance_view
        .get("statuses")
        .and_then(Value::as_array)?
        .iter()
        .filter_map(|s| s.get("code").and_then(Value::as_str))
        .find_map(|code| code.strip_prefix("PowerState/"))
        .map(str::to_string)
}

pub(crate) async fn read_power_state(
    arm: &ArmClient,
    vm: &str,
    log: &mut CallLog,
) -> Result<Option<String>, RemediationError> {
    let view = log
        .call(
            arm,
            &INSTANCE_VIEW,
            &format!("{vm}/instanceView"),
            &[],
            None,
        )
        .await
        .map_err(|e| log.fail(e))?;
    Ok(power_state(&view))
}

/// Azure Monitor's granularity for the window: 5-minute points up to a day, hourly beyond.
fn interval_for(window: Duration) -> (&'static str, i64) {
    if window <= Duration::hours(24) {
        ("PT5M", 300)
    } else {
        ("PT1H", 3600)
    }
}

/// The per-period average CPU of `resource` over `[start, end)`.
pub(crate) async fn cpu_samples(
    arm: &ArmClient,
    resource: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    interval: &str,
    log: &mut CallLog,
) -> Result<Vec<CpuSample>, RemediationError> {
    let timespan = format!(
        "{}/{}",
        start.to_rfc3339_opts(SecondsFormat::Secs, true),
        end.to_rfc3339_opts(SecondsFormat::Secs, true)
    );
    let answer = log
        .call(
            arm,
            &METRICS,
            &format!("{resource}/providers/Microsoft.Insights/metrics"),
            &[
                ("metricnames", "Percentage CPU"),
                ("timespan", &timespan),
                ("interval", interval),
                ("aggregation", "Average"),
            ],
            None,
        )
        .await
        .map_err(|e| log.fail(e))?;
    Ok(samples_of(&answer))
}

/// The datapoints that carry an average (Azure Monitor leaves it out where the VM was off).
fn samples_of(answer: &Value) -> Vec<CpuSample> {
    answer
        .get("value")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|metric| {
            metric
                .get("timeseries")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .flat_map(|series| {
            series
                .get("data")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|point| {
            let at = point
                .get("timeStamp")
                .and_then(Value::as_str)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())?
                .with_timezone(&Utc);
            let average = point.get("average").and_then(Value::as_f64)?;
            Some(CpuSample { at, average })
        })
        .collect()
}

fn deallocated_check(state: Option<&str>) -> VerificationCheck {
    VerificationCheck::new(
        "power state",
        "deallocated",
        state.unwrap_or("unknown"),
        state == Some("deallocated"),
    )
}

#[async_trait]
impl Remediation for IdleVmRemediation {
    fn description(&self) -> &'static FixDescription {
        &FIX
    }

    async fn remediate(
        &self,
        request: &RemediationRequest<'_>,
    ) -> Result<RemediationReport, RemediationError> {
        let vm = arm_target(request, "virtualMachines")?;
        let name = ids::name(&vm);
        let mut log = CallLog::metered(self.meter.as_ref());
        let state = read_power_state(&self.arm, &vm, &mut log).await?;
        match state.as_deref() {
            Some("deallocated") | Some("deallocating") => {
                return Ok(RemediationReport::new(
                    request,
                    RemediationStatus::AlreadyCompliant,
                    format!("VM {name} is already deallocated; nothing was changed."),
                )
                .with_calls(log.into_calls())
                .with_verification(Verification::from_checks(vec![deallocated_check(Some(
                    "deallocated",
                ))])));
            }
            Some("running") | Some("stopped") => {}
            other => {
                return Ok(RemediationReport::new(
                    request,
                    RemediationStatus::Skipped,
                    format!(
                        "VM {name} is {}; only a running or stopped VM is deallocated.",
                        other.unwrap_or("in an unknown power state")
                    ),
                )
                .with_calls(log.into_calls()));
            }
        }
        let window_hours = request.conditions.min_idle_hours();
        let window = request.conditions.idle_window();
        let (interval, period) = interval_for(window);
        let end = Utc::now();
        let samples = cpu_samples(&self.arm, &vm, end - window, end, interval, &mut log).await?;
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
                format!("Would deallocate VM {name}: {evidence}."),
            )
            .with_calls(log.into_calls()));
        }
        log.call(
            &self.arm,
            &DEALLOCATE,
            &format!("{vm}/deallocate"),
            &[],
            None,
        )
        .await
        .map_err(|e| log.fail(e))?;
        let after = read_power_state(&self.arm, &vm, &mut log).await?;
        let verification = Verification::from_checks(vec![deallocated_check(after.as_deref())]);
        let (status, summary) = if verification.passed {
            (
                RemediationStatus::Remediated,
                format!("Deallocated idle VM {name}: {evidence}."),
            )
        } else {
            (
                RemediationStatus::Skipped,
                format!(
                    "Asked Azure to deallocate VM {name}, but it reads as {}.",
                    after.as_deref().unwrap_or("unknown")
                ),
            )
        };
        Ok(RemediationReport::new(request, status, summary)
            .with_steps(vec![format!("Deallocated VM {name} ({evidence})")])
            .with_calls(log.into_calls())
            .with_verification(verification)
            .with_next_steps(vec![format!(
                "Its public IP changes on start unless it is static; its disks still bill while it is deallocated."
            )])
            .with_undo(format!(
                "To start it again: az vm start -g {} -n {name}",
                ids::value_after(&vm, "resourceGroups").unwrap_or("<resource group>")
            )))
    }

    async fn verify(
        &self,
        request: &RemediationRequest<'_>,
    ) -> Result<Verification, RemediationError> {
        let vm = arm_target(request, "virtualMachines")?;
        let mut log = CallLog::metered(self.meter.as_ref());
        let state = read_power_state(&self.arm, &vm, &mut log).await?;
        Ok(Verification::from_checks(vec![deallocated_check(
            state.as_deref(),
        )]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_power_state_is_read_from_the_instance_view() {
        let view = json!({"statuses": [
            {"code": "ProvisioningState/succeeded"},
            {"code": "PowerState/running", "displayStatus": "VM running"}
        ]});
        assert_eq!(power_state(&view).as_deref(), Some("running"));
        assert_eq!(power_state(&json!({"statuses": []})), None);
    }

    #[test]
    fn datapoints_without_an_average_are_gaps_not_zeros() {
        let answer = json!({"value": [{"timeseries": [{"data": [
            {"timeStamp": "2026-12-03T00:00:00Z", "average": 1.5},
            {"timeStamp": "2026-12-03T00:05:00Z"},
            {"timeStamp": "2026-12-03T00:10:00Z", "average": 0.5}
        ]}]}]});
        let samples = samples_of(&answer);
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[1].average, 0.5);
    }

    #[test]
    fn long_windows_ask_for_hourly_points() {
        assert_eq!(interval_for(Duration::hours(2)), ("PT5M", 300));
        assert_eq!(interval_for(Duration::days(14)), ("PT1H", 3600));
    }
}
