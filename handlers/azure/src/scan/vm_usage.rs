//! The `instance_usage` check: running VMs judged by their Azure Monitor CPU: idle (every
//! hour of `idle_days` below the idle threshold, core's rule, as `stop_idle_instance` judges)
//! or over-provisioned (average below `overprovisioned_cpu_percent` over its window).

use async_trait::async_trait;
use chrono::Duration;
use escher_core::approvals::Action;
use escher_core::idleness::{average_over, judge, Idleness};
use escher_core::resource_types::azure as azure_types;
use escher_core::scan::{CheckScope, Finding, ScanCheck, ScanContext, ScanError};
use escher_core::{CloudProvider, EventType};
use serde_json::json;

use super::{resource_of, text, AzureScan, LIST_VMS};
use crate::arm::CallLog;
use crate::idle_vm::{cpu_samples, read_power_state};

pub(super) struct VmUsage(pub AzureScan);

/// Hourly points: a week or more of CPU in one request.
const PERIOD_SECONDS: i64 = 3600;

#[async_trait]
impl ScanCheck for VmUsage {
    fn id(&self) -> &'static str {
        "instance_usage"
    }

    fn cloud(&self) -> CloudProvider {
        CloudProvider::Azure
    }

    fn scope(&self) -> CheckScope {
        CheckScope::Account
    }

    async fn run(&self, _: &str, scan: &ScanContext) -> Result<Vec<Finding>, ScanError> {
        let vms = self
            .0
            .list(&LIST_VMS, "Microsoft.Compute/virtualMachines")
            .await?;
        let thresholds = &scan.thresholds;
        let mut findings = Vec::new();
        for vm in &vms {
            let Some(id) = text(vm, "/id") else { continue };
            let mut log = CallLog::metered(self.0.meter.as_ref());
            let power = read_power_state(&self.0.arm, id, &mut log)
                .await
                .map_err(|e| ScanError::from_fix_read("VirtualMachines_InstanceView", id, e))?;
            if power.as_deref() != Some("running") {
                continue;
            }
            let days = thresholds.idle_days.max(thresholds.overprovisioned_days);
            let end = scan.started_at;
            let samples = cpu_samples(
                &self.0.arm,
                id,
                end - Duration::days(i64::from(days)),
                end,
                "PT1H",
                &mut log,
            )
            .await
            .map_err(|e| ScanError::from_fix_read("Metrics_List", id, e))?;
            let size = text(vm, "/properties/hardwareProfile/vmSize").unwrap_or("unknown size");
            let resource = resource_of(azure_types::VM, vm, json!({"vm_size": size}));
            let idle_cut = end - Duration::days(i64::from(thresholds.idle_days));
            let idle_window: Vec<_> = samples
                .iter()
                .copied()
                .filter(|s| s.at >= idle_cut)
                .collect();
            let idle_hours = f64::from(thresholds.idle_days) * 24.0;
            match judge(
                &idle_window,
                thresholds.idle_cpu_percent,
                idle_hours,
                PERIOD_SECONDS,
            ) {
                Idleness::Idle { average, peak } => {
                    let mut draft = self.0.draft(
                        self.id(),
                        vm,
                        EventType::InstanceIdle,
                        resource,
                        format!(
                            "VM {} ({size}) averaged {average:.1} % CPU (busiest hour {peak:.1} %) over {} days",
                            text(vm, "/name").unwrap_or(id),
                            thresholds.idle_days
                        ),
                    );
                    draft.action = Some(Action::StopIdleInstance);
                    draft.questions =
                        vec!["Does anything run on it only now and then (a monthly job)?".into()];
                    findings.push(draft.finish(scan));
                }
                Idleness::NotIdle(_) => {
                    let hours = f64::from(thresholds.overprovisioned_days) * 24.0;
                    let Ok(average) = average_over(&samples, hours, PERIOD_SECONDS) else {
                        continue;
                    };
                    if average >= thresholds.overprovisioned_cpu_percent {
                        continue;
                    }
                    let name = text(vm, "/name").unwrap_or(id).to_string();
                    let mut draft = self.0.draft(
                        "overprovisioned_instance",
                        vm,
                        EventType::InstanceOverprovisioned,
                        resource,
                        format!(
                            "VM {name} ({size}) averaged {average:.1} % CPU over {} days: one size smaller would do",
                            thresholds.overprovisioned_days
                        ),
                    );
                    draft.manual_command = Some(format!(
                        "az vm list-vm-resize-options --ids {id} -o table   # then: az vm resize --ids {id} --size <one size smaller>"
                    ));
                    draft.questions = vec!["Does its memory, not its CPU, set its size?".into()];
                    findings.push(draft.finish(scan));
                }
            }
        }
        Ok(findings)
    }
}
