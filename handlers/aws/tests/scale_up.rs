//! `scale_up_capacity` on moto, through the real AWS SDK for Rust: a volume behind an
//! instance's disk alarm, a database's allocated storage and an Auto Scaling group, each
//! grown (and verified by the test's own reads), already fine (the alarm is back to OK, or
//! the event was answered before), over the approval's limits, and in a dry run.
//!
//! `tests/emulators.sh start` writes `ESCHER_TEST_AWS_ENDPOINT`; without it the tests print a
//! notice and return, unless `ESCHER_REQUIRE_EMULATORS=1`, when they fail.

mod common;

use common::{assert_no_mutating_call, assert_verified, moto, normalize_one, run};
use escher_core::approvals::{Action, Conditions};
use escher_core::remediate::{Mode, RemediationStatus};
use escher_core::{EventType, UnifiedEvent};
use escher_test_support::fixtures::aws;
use escher_test_support::moto::{autoscaling, cloudwatch, ec2, rds, ACCOUNT};
use escher_test_support::names::unique;
use serde_json::{json, Value};

const REGION: &str = "us-east-1";
const SCALE: Action = Action::ScaleUpCapacity;

fn capacity_event(
    name: &str,
    namespace: &str,
    metric: &str,
    dimensions: Value,
    above: bool,
) -> UnifiedEvent {
    let payload = aws::FiringAlarm {
        name,
        namespace,
        metric,
        dimensions,
        threshold: 85.0,
        above,
    }
    .payload(ACCOUNT, REGION);
    let event = normalize_one(&payload);
    assert_eq!(event.event_type, EventType::CapacityHigh, "{name}");
    event
}

fn disk_event(alarm: &str, instance: &str) -> UnifiedEvent {
    let event = capacity_event(
        alarm,
        "CWAgent",
        "disk_used_percent",
        json!({"InstanceId": instance, "path": "/", "device": "sda1", "fstype": "xfs"}),
        true,
    );
    assert_eq!(event.resource.kind, "ec2_instance");
    event
}

async fn volume_size(ec2: &aws_sdk_ec2::Client, volume: &str) -> (i32, Option<String>) {
    let out = ec2
        .describe_volumes()
        .volume_ids(volume)
        .send()
        .await
        .expect("DescribeVolumes");
    let v = &out.volumes()[0];
    let marker = v
        .tags()
        .iter()
        .find(|t| t.key() == Some("escher:scaled-up"))
        .and_then(|t| t.value().map(str::to_string));
    (v.size().unwrap_or_default(), marker)
}

#[tokio::test]
async fn a_filling_disk_gets_its_volume_grown_one_step_and_only_once() {
    let Some(moto) = moto(REGION).await else {
        return;
    };
    let fix = moto.fix(SCALE, "ec2_instance");
    let defaults = Conditions::default();

    // Fixed: the instance's root volume (8 GiB) grows by 20 %, rounded up to 10 GiB.
    let instance = moto.running_instance().await;
    let volume = ec2::root_volume(&moto.ec2, &instance)
        .await
        .expect("root volume");
    let event = disk_event(&unique("disk full"), &instance);
    let report = run(fix, &event, SCALE, &defaults, Mode::Apply).await;
    assert_eq!(report.status, RemediationStatus::Remediated, "{report:#?}");
    assert_verified(&report);
    let (size, marker) = volume_size(&moto.ec2, &volume).await;
    assert_eq!(size, 10);
    assert_eq!(
        marker.as_deref(),
        Some(format!("event={} from=8 to=10", event.event_id).as_str())
    );
    assert!(
        report.summary.contains("from 8 to 10 GiB"),
        "{}",
        report.summary
    );
    assert!(
        report
            .steps
            .iter()
            .any(|s| s.contains(&volume) && s.contains(&instance)),
        "{:?}",
        report.steps
    );
    assert!(
        report.next_steps.iter().any(|s| s.contains("growpart")),
        "{:?}",
        report.next_steps
    );
    assert!(report
        .undo
        .as_deref()
        .is_some_and(|u| u.contains("cannot shrink")));

    // The same event again (a retry): already grown for it, nothing changed.
    let again = run(fix, &event, SCALE, &defaults, Mode::Apply).await;
    assert_eq!(
        again.status,
        RemediationStatus::AlreadyCompliant,
        "{again:#?}"
    );
    assert_no_mutating_call(&again);
    assert_eq!(volume_size(&moto.ec2, &volume).await.0, 10);

    // Already fine: the alarm has recovered since it fired.
    let calm = moto.running_instance().await;
    let calm_volume = ec2::root_volume(&moto.ec2, &calm)
        .await
        .expect("root volume");
    let alarm = unique("disk recovered");
    cloudwatch::recovered_alarm(&moto.cloudwatch, &alarm, "CWAgent", "disk_used_percent")
        .await
        .expect("alarm");
    let ok = run(
        fix,
        &disk_event(&alarm, &calm),
        SCALE,
        &defaults,
        Mode::Apply,
    )
    .await;
    assert_eq!(ok.status, RemediationStatus::AlreadyCompliant, "{ok:#?}");
    assert!(ok.summary.contains("back to OK"), "{}", ok.summary);
    assert_no_mutating_call(&ok);
    assert_eq!(volume_size(&moto.ec2, &calm_volume).await, (8, None));

    // Dry run: says what it would do, changes nothing.
    let dry = run(
        fix,
        &disk_event(&unique("disk dry"), &calm),
        SCALE,
        &defaults,
        Mode::DryRun,
    )
    .await;
    assert_eq!(dry.status, RemediationStatus::WouldRemediate, "{dry:#?}");
    assert!(dry.summary.contains("from 8 to 10 GiB"), "{}", dry.summary);
    assert_no_mutating_call(&dry);
    assert_eq!(volume_size(&moto.ec2, &calm_volume).await, (8, None));

    // Over the limits: at the approval's largest size, and a step dearer than its budget.
    for (conditions, named) in [
        (
            Conditions {
                max_storage_gib: Some(8),
                ..Conditions::default()
            },
            "max_storage_gib",
        ),
        (
            Conditions {
                max_added_monthly_usd: Some(0.05),
                ..Conditions::default()
            },
            "max_added_monthly_usd",
        ),
    ] {
        let event = disk_event(&unique("disk over"), &calm);
        let refused = run(fix, &event, SCALE, &conditions, Mode::Apply).await;
        assert_eq!(refused.status, RemediationStatus::Skipped, "{refused:#?}");
        assert!(refused.summary.contains(named), "{}", refused.summary);
        assert_no_mutating_call(&refused);
    }
    assert_eq!(volume_size(&moto.ec2, &calm_volume).await, (8, None));
}

#[tokio::test]
async fn cpu_on_a_lone_instance_is_not_answered_with_a_bigger_type() {
    let Some(moto) = moto(REGION).await else {
        return;
    };
    let instance = moto.running_instance().await;
    let event = capacity_event(
        &unique("cpu high"),
        "AWS/EC2",
        "CPUUtilization",
        json!({"InstanceId": instance}),
        true,
    );
    let report = run(
        moto.fix(SCALE, "ec2_instance"),
        &event,
        SCALE,
        &Conditions::default(),
        Mode::Apply,
    )
    .await;
    assert_eq!(report.status, RemediationStatus::Skipped);
    assert!(
        report.summary.contains("stop and start"),
        "{}",
        report.summary
    );
    assert!(report.api_calls.is_empty(), "{:?}", report.api_calls);
}

async fn allocated(rds: &aws_sdk_rds::Client, id: &str) -> i32 {
    rds.describe_db_instances()
        .db_instance_identifier(id)
        .send()
        .await
        .expect("DescribeDBInstances")
        .db_instances()[0]
        .allocated_storage()
        .unwrap_or_default()
}

fn storage_event(alarm: &str, db: &str) -> UnifiedEvent {
    let event = capacity_event(
        alarm,
        "AWS/RDS",
        "FreeStorageSpace",
        json!({"DBInstanceIdentifier": db}),
        false,
    );
    assert_eq!(event.resource.kind, "rds_instance");
    event
}

#[tokio::test]
async fn a_database_running_out_of_storage_gets_more_within_the_limits() {
    let Some(moto) = moto(REGION).await else {
        return;
    };
    let rds = aws_sdk_rds::Client::new(&moto.config);
    let fix = moto.fix(SCALE, "rds_instance");
    let defaults = Conditions::default();

    let db = rds::db_instance(&rds, true, None, &[])
        .await
        .expect("database");
    let dry = run(
        fix,
        &storage_event(&unique("db dry"), &db),
        SCALE,
        &defaults,
        Mode::DryRun,
    )
    .await;
    assert_eq!(dry.status, RemediationStatus::WouldRemediate, "{dry:#?}");
    assert_no_mutating_call(&dry);
    assert_eq!(allocated(&rds, &db).await, 20);

    let event = storage_event(&unique("db full"), &db);
    let report = run(fix, &event, SCALE, &defaults, Mode::Apply).await;
    assert_eq!(report.status, RemediationStatus::Remediated, "{report:#?}");
    assert_verified(&report);
    assert_eq!(allocated(&rds, &db).await, 24);
    assert!(
        report.summary.contains("from 20 to 24 GiB"),
        "{}",
        report.summary
    );
    let again = run(fix, &event, SCALE, &defaults, Mode::Apply).await;
    assert_eq!(
        again.status,
        RemediationStatus::AlreadyCompliant,
        "{again:#?}"
    );
    assert_no_mutating_call(&again);

    // RDS takes no step under 10 %: 2 GiB on 20, more than a 21 GiB limit leaves room for.
    let small = rds::db_instance(&rds, true, None, &[])
        .await
        .expect("database");
    let tight = Conditions {
        max_storage_gib: Some(21),
        ..Conditions::default()
    };
    let refused = run(
        fix,
        &storage_event(&unique("db over"), &small),
        SCALE,
        &tight,
        Mode::Apply,
    )
    .await;
    assert_eq!(refused.status, RemediationStatus::Skipped, "{refused:#?}");
    assert!(
        refused.summary.contains("smallest step the cloud accepts"),
        "{}",
        refused.summary
    );
    assert_no_mutating_call(&refused);
    assert_eq!(allocated(&rds, &small).await, 20);

    let alarm = unique("db recovered");
    cloudwatch::recovered_alarm(&moto.cloudwatch, &alarm, "AWS/RDS", "FreeStorageSpace")
        .await
        .expect("alarm");
    let ok = run(
        fix,
        &storage_event(&alarm, &small),
        SCALE,
        &defaults,
        Mode::Apply,
    )
    .await;
    assert_eq!(ok.status, RemediationStatus::AlreadyCompliant, "{ok:#?}");
    assert_eq!(allocated(&rds, &small).await, 20);
}

fn group_event(alarm: &str, group: &str) -> UnifiedEvent {
    let event = capacity_event(
        alarm,
        "AWS/EC2",
        "CPUUtilization",
        json!({"AutoScalingGroupName": group}),
        true,
    );
    assert_eq!(event.resource.kind, "autoscaling_group");
    event
}

#[tokio::test]
async fn a_busy_group_gets_one_more_instance_never_past_its_maximum() {
    let Some(moto) = moto(REGION).await else {
        return;
    };
    let asg = aws_sdk_autoscaling::Client::new(&moto.config);
    let fix = moto.fix(SCALE, "autoscaling_group");
    let defaults = Conditions::default();
    let zone = format!("{REGION}a");
    let desired = |name: String| {
        let asg = asg.clone();
        async move { autoscaling::desired(&asg, &name).await.expect("desired") }
    };

    let group = autoscaling::group(&asg, &moto.ec2, &zone, "t3.micro", 2, 3)
        .await
        .expect("group");
    let dry = run(
        fix,
        &group_event(&unique("asg dry"), &group),
        SCALE,
        &defaults,
        Mode::DryRun,
    )
    .await;
    assert_eq!(dry.status, RemediationStatus::WouldRemediate, "{dry:#?}");
    assert_no_mutating_call(&dry);
    assert_eq!(desired(group.clone()).await, 2);

    let event = group_event(&unique("asg busy"), &group);
    let report = run(fix, &event, SCALE, &defaults, Mode::Apply).await;
    assert_eq!(report.status, RemediationStatus::Remediated, "{report:#?}");
    assert_verified(&report);
    assert_eq!(desired(group.clone()).await, 3);
    assert!(
        report
            .undo
            .as_deref()
            .is_some_and(|u| u.contains("--desired-capacity 2")),
        "{:?}",
        report.undo
    );
    let again = run(fix, &event, SCALE, &defaults, Mode::Apply).await;
    assert_eq!(
        again.status,
        RemediationStatus::AlreadyCompliant,
        "{again:#?}"
    );

    // Now at its maximum of 3: the next alarm is refused, naming the group's limit.
    let refused = run(
        fix,
        &group_event(&unique("asg max"), &group),
        SCALE,
        &defaults,
        Mode::Apply,
    )
    .await;
    assert_eq!(refused.status, RemediationStatus::Skipped, "{refused:#?}");
    assert!(
        refused.summary.contains("maximum size (3)"),
        "{}",
        refused.summary
    );
    assert_no_mutating_call(&refused);
    assert_eq!(desired(group.clone()).await, 3);

    // A group with scaling policies scales itself; a recovered alarm needs nothing.
    let governed = autoscaling::group(&asg, &moto.ec2, &zone, "t3.micro", 1, 4)
        .await
        .expect("group");
    asg.put_scaling_policy()
        .auto_scaling_group_name(&governed)
        .policy_name("cpu-target")
        .policy_type("SimpleScaling")
        .adjustment_type("ChangeInCapacity")
        .scaling_adjustment(1)
        .send()
        .await
        .expect("PutScalingPolicy");
    let left = run(
        fix,
        &group_event(&unique("asg policy"), &governed),
        SCALE,
        &defaults,
        Mode::Apply,
    )
    .await;
    assert_eq!(left.status, RemediationStatus::Skipped, "{left:#?}");
    assert!(left.summary.contains("cpu-target"), "{}", left.summary);
    assert_eq!(desired(governed.clone()).await, 1);

    let calm = autoscaling::group(&asg, &moto.ec2, &zone, "t3.micro", 1, 4)
        .await
        .expect("group");
    let alarm = unique("asg recovered");
    cloudwatch::recovered_alarm(&moto.cloudwatch, &alarm, "AWS/EC2", "CPUUtilization")
        .await
        .expect("alarm");
    let ok = run(
        fix,
        &group_event(&alarm, &calm),
        SCALE,
        &defaults,
        Mode::Apply,
    )
    .await;
    assert_eq!(ok.status, RemediationStatus::AlreadyCompliant, "{ok:#?}");
    assert_eq!(desired(calm).await, 1);
}
