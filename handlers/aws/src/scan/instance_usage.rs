//! The `instance_usage` check: idle and over-provisioned instances, judged by their CloudWatch CPU.

use async_trait::async_trait;
use aws_sdk_ec2::types::Filter;
use chrono::Duration;
use escher_core::approvals::Action;
use escher_core::resource_types::aws as aws_types;
use escher_core::scan::{Finding, ScanContext, ScanError};
use escher_core::{EventType, Resource};
use serde_json::{json, Value};

use super::*;
use crate::calls::{classify, CallLog};
use crate::clients::AwsClients;
use escher_core::idleness::{average_over, judge, CpuSample, Idleness};

use crate::idle_instance::{cpu_samples, period_for};
use crate::rightsizing::{size_down, SizeDown};

/// Running instances, judged by their CloudWatch CPU: idle (every period of `idle_days`
/// below `idle_cpu_percent`, the `stop_idle_instance` judgement) or, when not idle,
/// over-provisioned (average over `overprovisioned_days` below
/// `overprovisioned_cpu_percent`, with one size down in the family). One check for both,
/// so an idle instance is never also reported as over-provisioned.
pub(super) struct InstanceUsage;

#[async_trait]
impl AwsCheck for InstanceUsage {
    const ID: &'static str = "instance_usage";

    async fn find(&self, at: InRegion<'_>) -> Result<Vec<Finding>, ScanError> {
        let (aws, clients, region, scan) = at.parts();
        let mut pages = clients
            .ec2()
            .describe_instances()
            .filters(
                Filter::builder()
                    .name("instance-state-name")
                    .values("running")
                    .build(),
            )
            .set_max_results(aws.page_size)
            .into_paginator()
            .items()
            .send();
        let mut findings = Vec::new();
        while let Some(reservation) = pages.next().await {
            let reservation =
                reservation.map_err(|e| scan_error(classify("DescribeInstances", region, &e)))?;
            for instance in reservation.instances() {
                let Some(id) = instance.instance_id() else {
                    continue;
                };
                let instance_type = instance
                    .instance_type()
                    .map(|t| t.as_str().to_string())
                    .unwrap_or_default();
                let resource = ec2_resource(
                    aws_types::EC2_INSTANCE,
                    aws.arn(region, "instance", id),
                    id,
                    instance.tags(),
                    Value::Null,
                );
                let seen = SeenInstance {
                    aws,
                    clients,
                    region,
                    scan,
                    id,
                    instance_type: &instance_type,
                };
                let finding = match seen.idle_finding(resource.clone()).await? {
                    Some(finding) => Some(finding),
                    None => seen.oversized_finding(resource).await?,
                };
                findings.extend(finding);
            }
        }
        Ok(findings)
    }
}

/// One running instance being judged by its CPU.
struct SeenInstance<'a> {
    aws: &'a AwsScan,
    clients: &'a AwsClients,
    region: &'a str,
    scan: &'a ScanContext,
    id: &'a str,
    instance_type: &'a str,
}

impl SeenInstance<'_> {
    /// The CPU datapoints of the last `days`, with the window in hours and the period
    /// they were asked at.
    async fn cpu(&self, days: u32) -> Result<(Vec<CpuSample>, f64, i64), ScanError> {
        let window = Duration::days(i64::from(days));
        let period = period_for(window);
        let mut log = CallLog::metered(self.clients.meter());
        let samples = cpu_samples(self.clients, self.id, window, period, &mut log)
            .await
            .map_err(|e| ScanError::from_fix_read("GetMetricStatistics", self.id, e))?;
        Ok((samples, window.num_hours() as f64, period))
    }

    async fn idle_finding(&self, mut resource: Resource) -> Result<Option<Finding>, ScanError> {
        let SeenInstance {
            aws,
            region,
            scan,
            id,
            instance_type,
            ..
        } = *self;
        let thresholds = &scan.thresholds;
        let (samples, window_hours, period) = self.cpu(thresholds.idle_days).await?;
        let Idleness::Idle { average, peak } =
            judge(&samples, thresholds.idle_cpu_percent, window_hours, period)
        else {
            return Ok(None);
        };
        resource.metadata = json!({
            "instance_id": id,
            "instance_type": instance_type,
            "average_cpu_percent": round_cents(average),
            "peak_cpu_percent": round_cents(peak),
            // What `stop_idle_instance` reads as the alarm's threshold, so an approved stop
            // judges idleness by the same number.
            "metric_name": "CPUUtilization",
            "comparison_operator": "LessThanThreshold",
            "threshold": thresholds.idle_cpu_percent,
        })
        .as_object()
        .cloned()
        .unwrap_or_default();
        let mut draft = aws.draft(
        "idle_instance",
        region,
        EventType::InstanceIdle,
        resource,
        format!(
            "EC2 instance {id} ({instance_type}) averaged {average:.1} % CPU over {} days (peak {peak:.1} %)",
            thresholds.idle_days
        ),
    );
        draft.action = Some(Action::StopIdleInstance);
        draft.questions = vec![
            "Is this a standby or a batch host that is idle by design?".into(),
            "Would a smaller instance or a schedule do?".into(),
        ];
        Ok(Some(draft.finish(scan)))
    }

    async fn oversized_finding(
        &self,
        mut resource: Resource,
    ) -> Result<Option<Finding>, ScanError> {
        let SeenInstance {
            aws,
            region,
            scan,
            id,
            instance_type,
            ..
        } = *self;
        let thresholds = &scan.thresholds;
        let (samples, window_hours, period) = self.cpu(thresholds.overprovisioned_days).await?;
        // Too few datapoints (a new instance, one often stopped) prove nothing either way.
        let Ok(average) = average_over(&samples, window_hours, period) else {
            return Ok(None);
        };
        if average >= thresholds.overprovisioned_cpu_percent {
            return Ok(None);
        }
        let days = thresholds.overprovisioned_days;
        let (to, saving, saving_words) = match size_down(instance_type, average) {
            SizeDown::Keep => return Ok(None),
            SizeDown::Priced {
                to,
                monthly_saving_usd,
                projected_cpu_percent,
                price_region,
                price_date,
            } => {
                let words = format!(
                "saving ${monthly_saving_usd:.2} a month at {price_region} on-demand prices ({price_date}); about {projected_cpu_percent:.0} % CPU there"
            );
                (to, Some(monthly_saving_usd), words)
            }
            SizeDown::Unpriced { to } => {
                let words = format!(
                "{instance_type} is not in Escher's price table, so no saving is given (check that the family offers {to})"
            );
                (to, None, words)
            }
        };
        resource.metadata = json!({
            "instance_id": id,
            "instance_type": instance_type,
            "suggested_type": to,
            "average_cpu_percent": round_cents(average),
            "window_days": days,
        })
        .as_object()
        .cloned()
        .unwrap_or_default();
        let mut draft = aws.draft(
        "overprovisioned_instance",
        region,
        EventType::InstanceOverprovisioned,
        resource,
        format!(
            "EC2 instance {id} ({instance_type}) averaged {average:.1} % CPU over {days} days: {to} would do, {saving_words}"
        ),
    );
        draft.monthly_saving_usd = saving;
        draft.manual_command = Some(resize_command(region, id, &to));
        draft.questions = vec![
        "Is its memory use below what the smaller size has (CloudWatch shows memory only with the agent)?".into(),
        "Are there peaks this window does not show (month end, seasonal traffic)?".into(),
        "Can it take the stop and start the change needs?".into(),
    ];
        Ok(Some(draft.finish(scan)))
    }
}

/// Stop, change the type, start: EC2 changes an instance's type only while it is stopped.
fn resize_command(region: &str, id: &str, to: &str) -> String {
    format!(
        "aws ec2 stop-instances --region {region} --instance-ids {id} \
&& aws ec2 wait instance-stopped --region {region} --instance-ids {id} \
&& aws ec2 modify-instance-attribute --region {region} --instance-id {id} --instance-type Value={to} \
&& aws ec2 start-instances --region {region} --instance-ids {id}"
    )
}
