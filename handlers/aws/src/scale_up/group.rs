//! An Auto Scaling group's desired capacity one step higher, never past the group's maximum
//! (nor the approval's `max_instances`). A group with scaling policies scales itself, and a
//! raise would fight them, so it is left to them.

use aws_sdk_autoscaling::types::{AutoScalingGroup, Tag};
use escher_core::capacity::{GrowthAsk, GrowthLimits};
use escher_core::remediate::{RemediationError, VerificationCheck};
use escher_core::UnifiedEvent;

use super::{prices, Marker, Reading, MARKER_TAG};
use crate::calls::{Access, CallError, CallLog};
use crate::clients::AwsClients;
use crate::report::check;

/// The group's name: the alarm's `AutoScalingGroupName`, else the resource's name.
pub(super) fn name(event: &UnifiedEvent) -> Result<String, RemediationError> {
    event
        .resource
        .metadata
        .get("dimensions")
        .and_then(|d| d.get("AutoScalingGroupName"))
        .and_then(|v| v.as_str())
        .or(Some(event.resource.name.as_str()))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or_else(|| RemediationError::InvalidEvent {
            action: escher_core::approvals::Action::ScaleUpCapacity,
            event_id: event.event_id.clone(),
            problem:
                "the event names no Auto Scaling group; fix the alarm's dimensions or act by hand"
                    .into(),
        })
}

async fn describe(
    clients: &AwsClients,
    name: &str,
    log: &mut CallLog,
) -> Result<AutoScalingGroup, RemediationError> {
    let out = log
        .must(
            "autoscaling",
            "DescribeAutoScalingGroups",
            name,
            Access::Read,
            clients
                .autoscaling()
                .describe_auto_scaling_groups()
                .auto_scaling_group_names(name)
                .send(),
        )
        .await?;
    out.auto_scaling_groups()
        .iter()
        .find(|g| g.auto_scaling_group_name() == Some(name))
        .cloned()
        .ok_or_else(|| {
            log.fail(CallError {
                operation: "DescribeAutoScalingGroups",
                target: name.to_string(),
                code: None,
                transient: false,
                message: format!(
                    "Auto Scaling group {name} was not found (deleted since the alarm?)"
                ),
            })
        })
}

fn count(value: Option<i32>) -> u64 {
    value
        .and_then(|v| u64::try_from(v).ok())
        .unwrap_or_default()
}

pub(super) async fn read(
    clients: &AwsClients,
    name: &str,
    limits: &GrowthLimits,
    log: &mut CallLog,
) -> Result<Reading, RemediationError> {
    let group = describe(clients, name, log).await?;
    let desired = count(group.desired_capacity());
    let group_max = count(group.max_size());
    let policies = log
        .must(
            "autoscaling",
            "DescribePolicies",
            name,
            Access::Read,
            clients
                .autoscaling()
                .describe_policies()
                .auto_scaling_group_name(name)
                .send(),
        )
        .await?;
    let policy_names: Vec<String> = policies
        .scaling_policies()
        .iter()
        .filter_map(|p| p.policy_name().map(str::to_string))
        .collect();
    let not_now = if !policy_names.is_empty() {
        Some(format!(
            "it scales itself by its policies ({}), which a raise by hand would fight",
            crate::report::join_words(&policy_names)
        ))
    } else if group.status().is_some_and(|s| s.contains("Delete")) {
        Some("it is being deleted".to_string())
    } else {
        None
    };
    let (ceiling, ceiling_source) = match limits.max_instances.map(u64::from) {
        Some(max) if max < group_max => (max, "the approval's max_instances".to_string()),
        _ => (group_max, format!("the group's maximum size ({group_max})")),
    };
    // The dearest instance type in the group is what one more instance is priced at.
    let mut types: Vec<&str> = group
        .instances()
        .iter()
        .filter_map(|i| i.instance_type())
        .collect();
    types.sort_unstable();
    types.dedup();
    let unit_monthly_usd = if types.is_empty() {
        None
    } else {
        types
            .iter()
            .map(|t| prices::instance_month(t))
            .try_fold(0.0_f64, |dearest, price| price.map(|p| dearest.max(p)))
    };
    let shown = if types.is_empty() {
        "no running instances".to_string()
    } else {
        types.join(", ")
    };
    Ok(Reading {
        what: format!("Auto Scaling group {name} ({shown})"),
        marker: group
            .tags()
            .iter()
            .find(|t| t.key() == Some(MARKER_TAG))
            .and_then(|t| Marker::parse(t.value()?)),
        not_now,
        ask: GrowthAsk {
            current: desired,
            unit: "instances",
            ceiling,
            ceiling_source,
            min_step: 1,
            unit_monthly_usd,
        },
    })
}

pub(super) async fn grow(
    clients: &AwsClients,
    name: &str,
    marker: &Marker,
    log: &mut CallLog,
) -> Result<(), RemediationError> {
    log.must(
        "autoscaling",
        "SetDesiredCapacity",
        name,
        Access::Write,
        clients
            .autoscaling()
            .set_desired_capacity()
            .auto_scaling_group_name(name)
            .desired_capacity(i32::try_from(marker.to).unwrap_or(i32::MAX))
            .honor_cooldown(false)
            .send(),
    )
    .await?;
    log.must(
        "autoscaling",
        "CreateOrUpdateTags",
        name,
        Access::Write,
        clients
            .autoscaling()
            .create_or_update_tags()
            .tags(
                Tag::builder()
                    .resource_id(name)
                    .resource_type("auto-scaling-group")
                    .key(MARKER_TAG)
                    .value(marker.value())
                    .propagate_at_launch(false)
                    .build(),
            )
            .send(),
    )
    .await?;
    Ok(())
}

pub(super) async fn checks_after(
    clients: &AwsClients,
    name: &str,
    to: u64,
    log: &mut CallLog,
) -> Result<Vec<VerificationCheck>, RemediationError> {
    let group = describe(clients, name, log).await?;
    let desired = count(group.desired_capacity());
    let max = count(group.max_size());
    Ok(vec![
        check(
            "desired capacity",
            format!("at least {to}"),
            desired.to_string(),
            desired >= to,
        ),
        check(
            "within the group's maximum",
            format!("at most {max}"),
            desired.to_string(),
            desired <= max,
        ),
    ])
}
