//! The `instance_usage` check: running VMs judged by their Cloud Monitoring CPU, read as
//! `stop_idle_instance` reads it: idle (every hour of `idle_days` below the idle threshold,
//! core's rule) or over-provisioned (average below `overprovisioned_cpu_percent` over its
//! window). A VM that is not `RUNNING` (stopped, suspended) is not judged.

use async_trait::async_trait;
use chrono::Duration;
use escher_core::approvals::Action;
use escher_core::idleness::{average_over, judge, Idleness};
use escher_core::resource_types::gcp as gcp_types;
use escher_core::scan::{CheckScope, Finding, ScanCheck, ScanContext, ScanError};
use escher_core::{CloudProvider, EventType};
use serde_json::{json, Value};

use super::{compute_name, region_of_zone, resource_of, scan_error, text, GcpScan, LIST_INSTANCES};
use crate::idle_instance::cpu_samples;
use crate::rest::CallLog;
use crate::target::Zonal;

pub(super) struct InstanceUsage(pub GcpScan);

/// Hourly points: a month of CPU in one listing.
const PERIOD_SECONDS: i64 = 3600;

/// Monitoring labels a VM's series by its numeric id, which Compute Engine sends as a string.
fn instance_id(instance: &Value) -> Option<String> {
    match instance.get("id")? {
        Value::String(id) => Some(id.clone()),
        Value::Number(id) => Some(id.to_string()),
        _ => None,
    }
}

#[async_trait]
impl ScanCheck for InstanceUsage {
    fn id(&self) -> &'static str {
        "instance_usage"
    }

    fn cloud(&self) -> CloudProvider {
        CloudProvider::Gcp
    }

    fn scope(&self) -> CheckScope {
        CheckScope::Account
    }

    async fn run(&self, _: &str, scan: &ScanContext) -> Result<Vec<Finding>, ScanError> {
        let scan_of = &self.0;
        let project = &scan_of.project;
        let mut log = CallLog::metered(scan_of.meter.as_ref());
        let instances = log
            .aggregated_list(
                &scan_of.client,
                &LIST_INSTANCES,
                &format!("projects/{project}/aggregated/instances"),
                &[],
                "instances",
            )
            .await
            .map_err(scan_error)?;
        let thresholds = &scan.thresholds;
        let days = thresholds.idle_days.max(thresholds.overprovisioned_days);
        let end = scan.started_at;
        let mut findings = Vec::new();
        for instance in &instances {
            if text(instance, "/status") != Some("RUNNING") {
                continue;
            }
            let (Some(id), Some(numeric_id)) = (compute_name(instance), instance_id(instance))
            else {
                continue;
            };
            let (Some(zone), Some(name)) = (
                crate::ids::value_after(&id, "zones"),
                crate::ids::value_after(&id, "instances"),
            ) else {
                continue;
            };
            let vm = Zonal {
                project: project.clone(),
                zone: zone.to_string(),
                name: name.to_string(),
            };
            let samples = cpu_samples(
                &scan_of.client,
                &vm,
                &numeric_id,
                end - Duration::days(i64::from(days)),
                end,
                PERIOD_SECONDS,
                &mut log,
            )
            .await
            .map_err(|e| ScanError::from_fix_read("monitoring.projects.timeSeries.list", &id, e))?;
            let machine_type = text(instance, "/machineType")
                .and_then(|t| t.rsplit('/').next())
                .unwrap_or("unknown machine type")
                .to_string();
            let resource = resource_of(
                gcp_types::GCE_INSTANCE,
                id.clone(),
                instance,
                json!({"machine_type": machine_type, "zone": vm.zone}),
            );
            let region = region_of_zone(&vm.zone).to_string();
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
                    let mut draft = scan_of.draft(
                        self.id(),
                        &region,
                        EventType::InstanceIdle,
                        resource,
                        format!(
                            "VM {name} ({machine_type}) averaged {average:.1} % CPU (busiest hour {peak:.1} %) over {} days",
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
                    let mut draft = scan_of.draft(
                        "overprovisioned_instance",
                        &region,
                        EventType::InstanceOverprovisioned,
                        resource,
                        format!(
                            "VM {name} ({machine_type}) averaged {average:.1} % CPU over {} days: a smaller machine type would do",
                            thresholds.overprovisioned_days
                        ),
                    );
                    draft.manual_command = Some(format!(
                        "gcloud compute instances stop {name} --zone {zone} --project {project} && gcloud compute instances set-machine-type {name} --zone {zone} --project {project} --machine-type <one size smaller> && gcloud compute instances start {name} --zone {zone} --project {project}"
                    ));
                    draft.questions = vec![
                        "Does its memory, not its CPU, set its size?".into(),
                        "Would the machine-type recommendation in the console agree?".into(),
                    ];
                    findings.push(draft.finish(scan));
                }
            }
        }
        Ok(findings)
    }
}
