//! The AWS remediations against moto server, through the real AWS SDK for Rust.
//!
//! Each test creates its own resources (unique names, so tests run in parallel on one moto
//! and never reset it), builds its event by normalizing a realistic payload (the shapes of
//! `tests/fixtures/aws`, with the test's names substituted) through `escher_core::normalize`
//! (proving the normalizers' metadata is enough for the fix), runs the fix and then checks
//! the resources with its own SDK calls, not only the report.
//!
//! `tests/emulators.sh start` writes `ESCHER_TEST_AWS_ENDPOINT`; without it the tests print a
//! notice and return, unless `ESCHER_REQUIRE_EMULATORS=1`, when they fail.

use std::time::Duration as StdDuration;

use aws_sdk_ec2::types::{InstanceStateName, IpPermission, IpRange, Ipv6Range};
use aws_sdk_s3::types::{Permission, Type};
use chrono::Duration;
use escher_aws::{aws_fixes, AwsClients, AwsResourceTags, VolumeEncryptionRemediation};
use escher_core::approvals::{Action, Conditions};
use escher_core::fixes::not_supported;
use escher_core::remediate::{Mode, RemediationRequest, RemediationStatus};
use escher_core::{EventType, UnifiedEvent};
use escher_test_support::fixtures::{aws, set};
use escher_test_support::moto::{ec2, ACCOUNT as MOTO_ACCOUNT};
use escher_test_support::names::unique;
use serde_json::json;

const REGION: &str = "us-east-1";
/// The one test that turns on default EBS encryption works in its own region, since that
/// is a region-wide account setting every other volume test would see.
const DEFAULT_ENCRYPTION_REGION: &str = "eu-west-2";

mod common;
use common::{
    assert_no_mutating_call, assert_verified, moto, normalize_one, operations, run, Moto,
};

// ---------------------------------------------------------------- S3

/// The EventBridge CloudTrail PutBucketAcl event (fixture shape) for `bucket`.
fn put_bucket_acl_event(bucket: &str) -> UnifiedEvent {
    let event = normalize_one(&aws::put_bucket_acl(bucket, MOTO_ACCOUNT, REGION));
    assert_eq!(event.event_type, EventType::BucketPublic);
    assert_eq!(event.resource.kind, "s3_bucket");
    event
}

#[tokio::test]
async fn public_read_bucket_is_made_private_keeping_the_owner_grant() {
    let Some(moto) = moto(REGION).await else {
        return;
    };
    let bucket = moto.public_bucket("escher-public").await;
    assert!(
        !moto.public_grants(&bucket).await.is_empty(),
        "setup: bucket is public-read"
    );
    let event = put_bucket_acl_event(&bucket);
    let fix = moto.fix(Action::MakeBucketPrivate, "s3_bucket");

    let report = run(
        fix,
        &event,
        Action::MakeBucketPrivate,
        &Conditions::default(),
        Mode::Apply,
    )
    .await;

    assert_eq!(report.status, RemediationStatus::Remediated, "{report:#?}");
    assert_verified(&report);
    let ops = operations(&report);
    for op in [
        "PutPublicAccessBlock",
        "PutBucketAcl",
        "GetBucketPolicyStatus",
    ] {
        assert!(ops.contains(&op), "{op} missing from {ops:?}");
    }
    assert!(report.summary.contains(&bucket), "{}", report.summary);
    // Checked with our own calls, not only the report.
    let block = moto
        .s3
        .get_public_access_block()
        .bucket(&bucket)
        .send()
        .await
        .expect("public access block");
    let block = block
        .public_access_block_configuration()
        .expect("configuration");
    assert_eq!(
        [
            block.block_public_acls(),
            block.ignore_public_acls(),
            block.block_public_policy(),
            block.restrict_public_buckets()
        ],
        [Some(true); 4]
    );
    assert!(moto.public_grants(&bucket).await.is_empty());
    let acl = moto
        .s3
        .get_bucket_acl()
        .bucket(&bucket)
        .send()
        .await
        .expect("acl");
    let owner = acl.owner().and_then(|o| o.id()).expect("owner").to_string();
    assert!(
        acl.grants()
            .iter()
            .any(|g| g.grantee().and_then(|e| e.id()) == Some(owner.as_str())
                && g.permission() == Some(&Permission::FullControl)
                && g.grantee().map(|e| e.r#type()) == Some(&Type::CanonicalUser)),
        "owner's FULL_CONTROL grant was removed: {:?}",
        acl.grants()
    );
    // The undo restores exactly what was there.
    let undo = report.undo.expect("undo");
    assert!(
        undo.contains(&format!("put-bucket-acl --bucket {bucket}")),
        "{undo}"
    );
    assert!(
        undo.contains("uri=http://acs.amazonaws.com/groups/global/AllUsers"),
        "{undo}"
    );
    assert!(undo.contains(&format!("id={owner}")), "{undo}");
}

#[tokio::test]
async fn private_bucket_is_already_compliant_and_untouched() {
    let Some(moto) = moto(REGION).await else {
        return;
    };
    let bucket = moto.public_bucket("escher-public").await;
    let event = put_bucket_acl_event(&bucket);
    let fix = moto.fix(Action::MakeBucketPrivate, "s3_bucket");
    run(
        fix,
        &event,
        Action::MakeBucketPrivate,
        &Conditions::default(),
        Mode::Apply,
    )
    .await;

    // The same event again (e.g. a second alert about the same bucket).
    let again = run(
        fix,
        &event,
        Action::MakeBucketPrivate,
        &Conditions::default(),
        Mode::Apply,
    )
    .await;

    assert_eq!(
        again.status,
        RemediationStatus::AlreadyCompliant,
        "{again:#?}"
    );
    assert_verified(&again);
    assert!(
        again.api_calls.iter().all(|c| !c.mutating),
        "{:?}",
        operations(&again)
    );
    assert!(again.undo.is_none());
}

#[tokio::test]
async fn bucket_dry_run_changes_nothing_and_says_what_it_would_do() {
    let Some(moto) = moto(REGION).await else {
        return;
    };
    let bucket = moto.public_bucket("escher-public").await;
    let event = put_bucket_acl_event(&bucket);
    let fix = moto.fix(Action::MakeBucketPrivate, "s3_bucket");

    let report = run(
        fix,
        &event,
        Action::MakeBucketPrivate,
        &Conditions::default(),
        Mode::DryRun,
    )
    .await;

    assert_eq!(
        report.status,
        RemediationStatus::WouldRemediate,
        "{report:#?}"
    );
    assert_no_mutating_call(&report);
    let steps = report.steps.join("\n");
    assert!(
        steps.contains(&format!(
            "would turn on BlockPublicAcls, IgnorePublicAcls, BlockPublicPolicy and RestrictPublicBuckets on bucket {bucket}"
        )),
        "{steps}"
    );
    assert!(
        steps.contains("would remove grant READ to AllUsers"),
        "{steps}"
    );
    assert!(
        !moto.public_grants(&bucket).await.is_empty(),
        "dry run removed a grant"
    );
    let block = moto
        .s3
        .get_public_access_block()
        .bucket(&bucket)
        .send()
        .await;
    assert!(
        block.is_err()
            || block.as_ref().is_ok_and(|b| b
                .public_access_block_configuration()
                .and_then(|c| c.block_public_acls())
                != Some(true)),
        "dry run turned on the public access block"
    );
}

// ---------------------------------------------------------------- security groups

#[tokio::test]
async fn only_the_world_open_rules_the_event_names_are_revoked() {
    let Some(moto) = moto(REGION).await else {
        return;
    };
    let tcp = |port: i32| {
        IpPermission::builder()
            .ip_protocol("tcp")
            .from_port(port)
            .to_port(port)
    };
    let permissions = vec![
        tcp(22)
            .ip_ranges(
                IpRange::builder()
                    .cidr_ip("0.0.0.0/0")
                    .description("temp debug")
                    .build(),
            )
            .ipv6_ranges(Ipv6Range::builder().cidr_ipv6("::/0").build())
            .build(),
        tcp(443)
            .ip_ranges(IpRange::builder().cidr_ip("10.0.0.0/8").build())
            .build(),
        // Open to the world too, but not what the event is about: must stay.
        tcp(8080)
            .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
            .build(),
    ];
    let group = ec2::security_group(&moto.ec2, &unique("escher-sg"), &[], permissions)
        .await
        .expect("group");

    // The CloudTrail record of the call that opened 22 (and added 443), fixture shape.
    let mut payload = aws::authorize_ingress(&group, 22, MOTO_ACCOUNT, REGION);
    set(
        &mut payload,
        "/requestParameters/ipPermissions/items/1/ipRanges/items/0/cidrIp",
        json!("10.0.0.0/8"),
    );
    let event = normalize_one(&payload);
    assert_eq!(event.event_type, EventType::FirewallOpen);

    let fix = moto.fix(Action::RevokeOpenIngress, &event.resource.kind);
    let dry = run(
        fix,
        &event,
        Action::RevokeOpenIngress,
        &Conditions::default(),
        Mode::DryRun,
    )
    .await;
    assert_eq!(dry.status, RemediationStatus::WouldRemediate);
    assert_no_mutating_call(&dry);

    let report = run(
        fix,
        &event,
        Action::RevokeOpenIngress,
        &Conditions::default(),
        Mode::Apply,
    )
    .await;

    assert_eq!(report.status, RemediationStatus::Remediated, "{report:#?}");
    assert_verified(&report);
    assert_eq!(
        ingress_left(&moto, &group).await,
        ["443 10.0.0.0/8", "8080 0.0.0.0/0"]
    );
    assert!(
        report
            .next_steps
            .iter()
            .any(|s| s.contains("tcp port 8080 from 0.0.0.0/0")),
        "the untouched world-open rule is not reported: {:?}",
        report.next_steps
    );
    let undo = report.undo.expect("undo");
    assert!(
        undo.contains(&format!(
            "authorize-security-group-ingress --region {REGION} --group-id {group}"
        )),
        "{undo}"
    );
    assert!(
        undo.contains("\"CidrIpv6\":\"::/0\"") && undo.contains("\"Description\":\"temp debug\""),
        "{undo}"
    );
}

/// The group's ingress rules as `<port> <cidr>`, sorted.
async fn ingress_left(moto: &Moto, group: &str) -> Vec<String> {
    let rules = ec2::ingress_rules(&moto.ec2, group)
        .await
        .expect("describe");
    let mut left: Vec<String> = rules
        .iter()
        .flat_map(|p| {
            let port = p.from_port().unwrap_or_default();
            p.ip_ranges()
                .iter()
                .filter_map(move |r| r.cidr_ip().map(|c| format!("{port} {c}")))
                .chain(
                    p.ipv6_ranges()
                        .iter()
                        .filter_map(move |r| r.cidr_ipv6().map(|c| format!("{port} {c}"))),
                )
        })
        .collect();
    left.sort();
    left
}

#[tokio::test]
async fn a_world_open_rule_is_narrowed_to_the_networks_the_approval_keeps() {
    let Some(moto) = moto(REGION).await else {
        return;
    };
    let permissions = vec![IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(22)
        .to_port(22)
        .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
        .ipv6_ranges(Ipv6Range::builder().cidr_ipv6("::/0").build())
        .build()];
    let group = ec2::security_group(&moto.ec2, &unique("escher-sg"), &[], permissions)
        .await
        .expect("group");
    let event = normalize_one(&aws::authorize_ingress(&group, 22, MOTO_ACCOUNT, REGION));
    let conditions = Conditions {
        keep_networks: vec!["203.0.113.0/24".into()],
        ..Conditions::default()
    };
    let fix = moto.fix(Action::RevokeOpenIngress, &event.resource.kind);

    let dry = run(
        fix,
        &event,
        Action::RevokeOpenIngress,
        &conditions,
        Mode::DryRun,
    )
    .await;
    assert_eq!(dry.status, RemediationStatus::WouldRemediate);
    assert_no_mutating_call(&dry);
    assert!(
        dry.steps
            .iter()
            .any(|s| s.contains("would allow ingress tcp port 22 from 203.0.113.0/24")),
        "{:?}",
        dry.steps
    );

    let report = run(
        fix,
        &event,
        Action::RevokeOpenIngress,
        &conditions,
        Mode::Apply,
    )
    .await;
    assert_eq!(report.status, RemediationStatus::Remediated, "{report:#?}");
    assert_verified(&report);
    // IPv4 narrowed to the kept network; IPv6 has no kept network, so it is only revoked.
    assert_eq!(ingress_left(&moto, &group).await, ["22 203.0.113.0/24"]);
    assert!(
        report
            .summary
            .contains("keeping access from 203.0.113.0/24"),
        "{}",
        report.summary
    );
    let undo = report.undo.expect("undo");
    assert!(undo.contains("revoke-security-group-ingress"), "{undo}");

    // Run again: the kept rule is not added twice, nothing is open to the world.
    let again = run(
        fix,
        &event,
        Action::RevokeOpenIngress,
        &conditions,
        Mode::Apply,
    )
    .await;
    assert_eq!(again.status, RemediationStatus::AlreadyCompliant);
    assert_eq!(ingress_left(&moto, &group).await, ["22 203.0.113.0/24"]);
}

// ---------------------------------------------------------------- idle instances

/// The EventBridge alarm state change (fixture shape) of a "CPU below `threshold` %" alarm
/// on `instance`.
fn low_cpu_alarm_event(instance: &str, threshold: f64) -> UnifiedEvent {
    let event = normalize_one(&aws::low_cpu_alarm(
        instance,
        threshold,
        MOTO_ACCOUNT,
        REGION,
    ));
    assert_eq!(event.resource.kind, "ec2_instance");
    event
}

#[tokio::test]
async fn idle_instance_is_stopped() {
    let Some(moto) = moto(REGION).await else {
        return;
    };
    let instance = moto.running_instance().await;
    // 10 % is the alarm's own threshold: 7 % is idle by it (though above the default 5 %),
    // so the fix must take the threshold from the event.
    let event = low_cpu_alarm_event(&instance, 10.0);
    let conditions = Conditions {
        min_idle_hours: Some(2.0),
        ..Conditions::default()
    };
    moto.put_cpu(&instance, 7.0, Duration::hours(2)).await;
    let fix = moto.fix(Action::StopIdleInstance, "ec2_instance");

    let dry = run(
        fix,
        &event,
        Action::StopIdleInstance,
        &conditions,
        Mode::DryRun,
    )
    .await;
    assert_eq!(dry.status, RemediationStatus::WouldRemediate, "{dry:#?}");
    assert_no_mutating_call(&dry);
    assert_eq!(
        moto.instance_state(&instance).await,
        InstanceStateName::Running
    );

    let report = run(
        fix,
        &event,
        Action::StopIdleInstance,
        &conditions,
        Mode::Apply,
    )
    .await;

    assert_eq!(report.status, RemediationStatus::Remediated, "{report:#?}");
    assert_verified(&report);
    assert!(
        report.summary.contains("average CPU 7.0 %"),
        "{}",
        report.summary
    );
    assert!(report.summary.contains("below 10 %"), "{}", report.summary);
    assert!(matches!(
        moto.instance_state(&instance).await,
        InstanceStateName::Stopping | InstanceStateName::Stopped
    ));
    assert!(report.undo.expect("undo").contains(&format!(
        "start-instances --region {REGION} --instance-ids {instance}"
    )));
}

#[tokio::test]
async fn busy_instance_is_not_stopped_and_the_reason_is_given() {
    let Some(moto) = moto(REGION).await else {
        return;
    };
    let instance = moto.running_instance().await;
    let event = low_cpu_alarm_event(&instance, 5.0);
    moto.put_cpu(&instance, 37.2, Duration::hours(2)).await;
    let fix = moto.fix(Action::StopIdleInstance, "ec2_instance");

    let report = run(
        fix,
        &event,
        Action::StopIdleInstance,
        &Conditions::default(),
        Mode::Apply,
    )
    .await;

    assert_eq!(report.status, RemediationStatus::Skipped, "{report:#?}");
    assert!(
        report
            .summary
            .contains("average CPU 37.2 % over the last 2 h, above 5 %"),
        "{}",
        report.summary
    );
    assert!(report.api_calls.iter().all(|c| !c.mutating));
    assert_eq!(
        moto.instance_state(&instance).await,
        InstanceStateName::Running
    );
}

#[tokio::test]
async fn instance_without_cpu_datapoints_is_not_stopped() {
    let Some(moto) = moto(REGION).await else {
        return;
    };
    let instance = moto.running_instance().await;
    let event = low_cpu_alarm_event(&instance, 5.0);
    let fix = moto.fix(Action::StopIdleInstance, "ec2_instance");

    let report = run(
        fix,
        &event,
        Action::StopIdleInstance,
        &Conditions::default(),
        Mode::Apply,
    )
    .await;

    assert_eq!(report.status, RemediationStatus::Skipped, "{report:#?}");
    assert!(
        report
            .summary
            .contains("no CPU datapoints in the last 2 h: cannot confirm idleness"),
        "{}",
        report.summary
    );
    assert_eq!(
        moto.instance_state(&instance).await,
        InstanceStateName::Running
    );
}

#[tokio::test]
async fn stopped_instance_is_already_compliant_without_reading_metrics() {
    let Some(moto) = moto(REGION).await else {
        return;
    };
    let instance = moto.running_instance().await;
    moto.ec2
        .stop_instances()
        .instance_ids(&instance)
        .send()
        .await
        .expect("stop");
    let event = low_cpu_alarm_event(&instance, 5.0);
    let fix = moto.fix(Action::StopIdleInstance, "ec2_instance");

    let report = run(
        fix,
        &event,
        Action::StopIdleInstance,
        &Conditions::default(),
        Mode::Apply,
    )
    .await;

    assert_eq!(
        report.status,
        RemediationStatus::AlreadyCompliant,
        "{report:#?}"
    );
    assert_verified(&report);
    assert_eq!(operations(&report), ["DescribeInstances"]);
}

// ---------------------------------------------------------------- volumes

/// The EventBridge CloudTrail event of an unencrypted `CreateVolume` of `volume`.
fn create_volume_event(volume: &str, zone: &str, region: &str) -> UnifiedEvent {
    let event = normalize_one(&aws::create_volume(volume, zone, MOTO_ACCOUNT, region));
    assert_eq!(event.event_type, EventType::VolumeUnencrypted);
    assert_eq!(event.resource.kind, "ebs_volume");
    event
}

async fn unencrypted_volume(moto: &Moto, zone: &str) -> String {
    ec2::create_volume(&moto.ec2, zone, 8, false)
        .await
        .expect("create volume")
}

async fn default_encryption(moto: &Moto) -> bool {
    moto.ec2
        .get_ebs_encryption_by_default()
        .send()
        .await
        .expect("get default encryption")
        .ebs_encryption_by_default()
        .unwrap_or(false)
}

fn fast(moto: &Moto) -> VolumeEncryptionRemediation {
    VolumeEncryptionRemediation::new(AwsClients::new(&moto.config))
        .with_snapshot_wait(StdDuration::from_secs(60), StdDuration::from_millis(200))
}

#[tokio::test]
async fn unencrypted_attached_volume_gets_an_encrypted_copy_and_stays_as_it_was() {
    let Some(moto) = moto(REGION).await else {
        return;
    };
    let zone = format!("{REGION}a");
    let instance = moto.running_instance().await;
    let volume = unencrypted_volume(&moto, &zone).await;
    moto.ec2
        .attach_volume()
        .volume_id(&volume)
        .instance_id(&instance)
        .device("/dev/sdf")
        .send()
        .await
        .expect("attach");
    let event = create_volume_event(&volume, &zone, REGION);
    let fix = fast(&moto);
    let conditions = Conditions::default(); // default encryption not allowed

    let dry = run(
        &fix,
        &event,
        Action::EncryptVolume,
        &conditions,
        Mode::DryRun,
    )
    .await;
    assert_eq!(dry.status, RemediationStatus::WouldRemediate, "{dry:#?}");
    assert_no_mutating_call(&dry);

    let report = run(
        &fix,
        &event,
        Action::EncryptVolume,
        &conditions,
        Mode::Apply,
    )
    .await;

    assert_eq!(report.status, RemediationStatus::Remediated, "{report:#?}");
    assert_verified(&report);
    let kinds: Vec<&str> = report.created.iter().map(|c| c.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["ebs_snapshot", "ebs_snapshot_encrypted", "ebs_volume"]
    );
    let copy_id = &report.created[2].id;
    let described = moto
        .ec2
        .describe_volumes()
        .volume_ids(copy_id)
        .volume_ids(&volume)
        .send()
        .await
        .expect("describe volumes");
    let copy = described
        .volumes()
        .iter()
        .find(|v| v.volume_id() == Some(copy_id))
        .expect("copy exists");
    assert_eq!(copy.encrypted(), Some(true));
    assert_eq!(copy.availability_zone(), Some(zone.as_str()));
    assert_eq!(copy.size(), Some(8));
    let tag = |k: &str| {
        copy.tags()
            .iter()
            .find(|t| t.key() == Some(k))
            .and_then(|t| t.value())
            .map(str::to_string)
    };
    assert_eq!(
        tag("escher:source-volume").as_deref(),
        Some(volume.as_str())
    );
    assert_eq!(
        tag("escher:event-id").as_deref(),
        Some(event.event_id.as_str())
    );
    let snapshots = moto
        .ec2
        .describe_snapshots()
        .snapshot_ids(&report.created[0].id)
        .snapshot_ids(&report.created[1].id)
        .send()
        .await
        .expect("describe snapshots");
    for snapshot in snapshots.snapshots() {
        assert!(
            snapshot
                .tags()
                .iter()
                .any(|t| t.key() == Some("escher:source-volume")
                    && t.value() == Some(volume.as_str())),
            "snapshot {:?} not tagged",
            snapshot.snapshot_id()
        );
    }
    // Moto gap: CopySnapshot ignores `Encrypted=true` (the copy keeps the source's
    // encryption), so the encrypted copy's `encrypted` flag cannot be checked here; the
    // volume made from it is checked above, and CreateVolume asks for encryption itself.
    // The original: still there, still unencrypted, still attached where it was.
    let original = described
        .volumes()
        .iter()
        .find(|v| v.volume_id() == Some(volume.as_str()))
        .expect("original still exists");
    assert_eq!(original.encrypted(), Some(false));
    let attachment = &original.attachments()[0];
    assert_eq!(attachment.instance_id(), Some(instance.as_str()));
    assert_eq!(attachment.device(), Some("/dev/sdf"));
    assert!(
        report.next_steps[0].contains(&format!(
            "attach-volume --volume-id {copy_id} --instance-id {instance} --device /dev/sdf"
        )),
        "{:?}",
        report.next_steps
    );
    // Not allowed by the approval: the account default stays off, and the user is told.
    assert!(!default_encryption(&moto).await);
    assert!(!operations(&report).contains(&"EnableEbsEncryptionByDefault"));
    assert!(report
        .next_steps
        .iter()
        .any(|s| s.contains("enable_default_encryption")));
}

#[tokio::test]
async fn default_ebs_encryption_is_turned_on_only_when_the_approval_allows_it() {
    let Some(moto) = moto(DEFAULT_ENCRYPTION_REGION).await else {
        return;
    };
    // Only this test touches this region's setting; start from "off" whatever an earlier
    // run against the same moto left.
    moto.ec2
        .disable_ebs_encryption_by_default()
        .send()
        .await
        .expect("disable default encryption");
    let zone = format!("{DEFAULT_ENCRYPTION_REGION}a");
    let volume = unencrypted_volume(&moto, &zone).await;
    // The handler's clients are in REGION: the event's region must steer the calls.
    let Some(home) = self::moto(REGION).await else {
        return;
    };
    let fix = fast(&home);
    let event = create_volume_event(&volume, &zone, DEFAULT_ENCRYPTION_REGION);
    let allowed = Conditions {
        enable_default_encryption: Some(true),
        ..Conditions::default()
    };

    let dry = run(&fix, &event, Action::EncryptVolume, &allowed, Mode::DryRun).await;
    assert_no_mutating_call(&dry);
    assert!(
        dry.steps.iter().any(|s| s
            == &format!("would turn on default EBS encryption in {DEFAULT_ENCRYPTION_REGION}")),
        "{:?}",
        dry.steps
    );
    assert!(!default_encryption(&moto).await, "dry run turned it on");

    let report = run(&fix, &event, Action::EncryptVolume, &allowed, Mode::Apply).await;

    assert_eq!(report.status, RemediationStatus::Remediated, "{report:#?}");
    assert_verified(&report);
    assert!(operations(&report).contains(&"EnableEbsEncryptionByDefault"));
    assert!(default_encryption(&moto).await);
    let undo = report.undo.expect("undo");
    assert!(
        undo.contains(&format!(
            "disable-ebs-encryption-by-default --region {DEFAULT_ENCRYPTION_REGION}"
        )),
        "{undo}"
    );
}

// ---------------------------------------------------------------- not supported, tags, wiring

#[tokio::test]
async fn unsupported_actions_report_not_supported_without_calls() {
    let Some(moto) = moto(REGION).await else {
        return;
    };
    let instance = moto.running_instance().await;
    let event = low_cpu_alarm_event(&instance, 5.0);
    for action in [
        Action::RollbackDeployment,
        // A known fix on a resource type it does not handle.
        Action::MakeBucketPrivate,
    ] {
        assert!(
            moto.fixes.lookup(action, &event.resource.kind).is_none(),
            "{action}"
        );
        let report = not_supported(&RemediationRequest {
            event: &event,
            action,
            conditions: &Conditions::default(),
            mode: Mode::Apply,
        });
        assert_eq!(report.status, RemediationStatus::NotSupported, "{action}");
        assert!(
            report
                .summary
                .starts_with(&format!("{action} is not supported yet for ec2_instance")),
            "{}",
            report.summary
        );
        assert!(report.api_calls.is_empty());
    }
}

#[tokio::test]
async fn resource_tags_are_read_for_enrichment() {
    let Some(moto) = moto(REGION).await else {
        return;
    };
    let tags = AwsResourceTags::new(AwsClients::new(&moto.config));
    let bucket = moto.public_bucket("escher-public").await;
    assert!(tags
        .tags("s3_bucket", &format!("arn:aws:s3:::{bucket}"), REGION)
        .await
        .expect("untagged bucket")
        .is_empty());
    moto.s3
        .put_bucket_tagging()
        .bucket(&bucket)
        .tagging(
            aws_sdk_s3::types::Tagging::builder()
                .tag_set(
                    aws_sdk_s3::types::Tag::builder()
                        .key("environment")
                        .value("prod")
                        .build()
                        .expect("tag"),
                )
                .build()
                .expect("tagging"),
        )
        .send()
        .await
        .expect("tag bucket");
    let read = tags
        .tags("s3_bucket", &bucket, REGION)
        .await
        .expect("bucket tags");
    assert_eq!(read.get("environment").map(String::as_str), Some("prod"));

    let instance = moto.running_instance().await;
    moto.ec2
        .create_tags()
        .resources(&instance)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("data-classification")
                .value("pii")
                .build(),
        )
        .send()
        .await
        .expect("tag instance");
    let arn = format!("arn:aws:ec2:{REGION}:{MOTO_ACCOUNT}:instance/{instance}");
    let read = tags
        .tags("ec2_instance", &arn, REGION)
        .await
        .expect("instance tags");
    assert_eq!(
        read.get("data-classification").map(String::as_str),
        Some("pii")
    );
}

/// The remote-call meter behind the function's per-event log line and `make bench`: every
/// SDK call a fix makes is counted (the same calls the audit record lists), and so is every
/// store request; the CPU figures are complete on a current-thread runtime.
#[tokio::test]
async fn the_meter_counts_every_sdk_call_and_store_request() {
    let Some(moto) = moto(REGION).await else {
        return;
    };
    let meter = escher_runtime::RemoteCallMeter::new();
    let fixes = aws_fixes(AwsClients::metered(&moto.config, &meter));
    let bucket = moto.public_bucket("escher-public").await;
    let before = meter.snapshot();
    let report = run(
        fixes
            .lookup(Action::MakeBucketPrivate, "s3_bucket")
            .expect("the bucket fix"),
        &put_bucket_acl_event(&bucket),
        Action::MakeBucketPrivate,
        &Conditions::default(),
        Mode::Apply,
    )
    .await;
    assert_eq!(report.status, RemediationStatus::Remediated);
    let fix = meter.snapshot().since(&before);
    assert_eq!(fix.sdk_calls, report.api_calls.len() as u64, "{fix:?}");
    assert_eq!(fix.store_requests, 0);
    assert!(fix.wait > StdDuration::ZERO, "{fix:?}");
    assert!(fix.cpu_in_calls > StdDuration::ZERO, "{fix:?}");
    assert!(fix.cpu_in_transmit <= fix.cpu_in_calls, "{fix:?}");
    assert_eq!(fix.cpu_unknown_spans, 0, "{fix:?}");

    let Ok(uri) = std::env::var("ESCHER_TEST_S3_URI") else {
        return;
    };
    let store = escher_core::store::open(&uri)
        .expect("store")
        .layer(meter.store_layer());
    let path = format!("{}.json", unique("meter"));
    let before = meter.snapshot();
    store.write(&path, b"{}".to_vec()).await.expect("write");
    assert_eq!(store.read(&path).await.expect("read").to_vec(), b"{}");
    store.delete(&path).await.expect("delete");
    let requests = meter.snapshot().since(&before);
    assert_eq!(
        (requests.store_requests, requests.sdk_calls),
        (3, 0),
        "{requests:?}"
    );
    assert!(requests.wait > StdDuration::ZERO, "{requests:?}");
    // The operations (request building and signing included) hold their transmissions.
    assert!(
        requests.cpu_in_transmit <= requests.cpu_in_calls,
        "{requests:?}"
    );
    assert_eq!(requests.cpu_unknown_spans, 0, "{requests:?}");
}
