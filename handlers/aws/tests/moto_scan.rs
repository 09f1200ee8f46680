//! The nightly scan's AWS checks against moto server, through the real AWS SDK for Rust.
//!
//! The test builds a small estate over two regions of its own (no other test uses them),
//! scans both with pages of 5 items, and checks that every finding about the estate appears
//! once, with the right severity and command, and nothing else about it. moto is shared
//! and never reset, so findings about resources an earlier run left behind are ignored by
//! resource id.
//!
//! moto stamps a snapshot's `StartTime` with the creation time and has no way to back-date
//! it, so the "older than N days" rule is tested with `snapshot_age_days: 0` (and the same
//! snapshot is shown not to be reported at the shipped 90 days).
//!
//! `tests/emulators.sh start` writes `ESCHER_TEST_AWS_ENDPOINT`; without it the test prints
//! a notice and returns, unless `ESCHER_REQUIRE_EMULATORS=1`, when it fails.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};

use aws_config::SdkConfig;
use aws_sdk_cloudwatch::primitives::DateTime as AwsDateTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use aws_sdk_ec2::types::{
    InstanceType, IpPermission, IpRange, Ipv6Range, ResourceType, Tag, TagSpecification, VolumeType,
};
use aws_sdk_s3::types::{
    BucketCannedAcl, BucketLocationConstraint, CreateBucketConfiguration, Tagging,
};
use chrono::{Duration, Utc};
use escher_aws::{load_sdk_config, s3_client, AwsClients, AwsScan};
use escher_core::approvals::Action;
use escher_core::scan::{run_scan, Finding, ScanContext, ScanThresholds};
use escher_core::{CloudProvider, EventSource, EventType, Severity};

const MOTO_ACCOUNT: &str = "123456789012";
/// Regions no other test touches, so the scan sees only this file's resources there.
const REGION_A: &str = "ap-southeast-2";
const REGION_B: &str = "ca-central-1";
/// An image moto ships in every region.
const AMI: &str = "ami-12c6146b";

struct Moto {
    s3: aws_sdk_s3::Client,
    ec2: aws_sdk_ec2::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
}

async fn endpoint() -> Option<String> {
    match std::env::var("ESCHER_TEST_AWS_ENDPOINT") {
        Ok(endpoint) => Some(endpoint),
        Err(_) if std::env::var_os("ESCHER_REQUIRE_EMULATORS").is_some() => {
            panic!("ESCHER_TEST_AWS_ENDPOINT is not set although the emulators were started (see tests/emulators.sh)")
        }
        Err(_) => {
            eprintln!("NOTICE: ESCHER_TEST_AWS_ENDPOINT not set; the AWS scan tests run under `make test`, which starts moto");
            None
        }
    }
}

async fn config(endpoint: &str, region: &str) -> SdkConfig {
    load_sdk_config(Some(region), Some(endpoint)).await
}

fn clients(config: &SdkConfig) -> Moto {
    Moto {
        s3: s3_client(config),
        ec2: aws_sdk_ec2::Client::new(config),
        cloudwatch: aws_sdk_cloudwatch::Client::new(config),
    }
}

fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        Utc::now().timestamp_micros() % 1_000_000_000,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// What the scan must report about one resource.
#[derive(Debug, Clone, PartialEq)]
struct Expected {
    check: &'static str,
    severity: Severity,
    event_type: EventType,
    action: Option<Action>,
}

fn expect(
    check: &'static str,
    severity: Severity,
    event_type: EventType,
    action: Option<Action>,
) -> Expected {
    Expected {
        check,
        severity,
        event_type,
        action,
    }
}

async fn bucket(moto: &Moto, region: &str, acl: Option<BucketCannedAcl>, pii: bool) -> String {
    let name = unique("escher-scan");
    moto.s3
        .create_bucket()
        .bucket(&name)
        .create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region))
                .build(),
        )
        .set_acl(acl)
        .send()
        .await
        .expect("create bucket");
    if pii {
        moto.s3
            .put_bucket_tagging()
            .bucket(&name)
            .tagging(
                Tagging::builder()
                    .tag_set(
                        aws_sdk_s3::types::Tag::builder()
                            .key("data-classification")
                            .value("pii")
                            .build()
                            .expect("tag"),
                    )
                    .build()
                    .expect("tagging"),
            )
            .send()
            .await
            .expect("tag bucket");
    }
    name
}

fn tags(resource: ResourceType, pairs: &[(&str, &str)]) -> TagSpecification {
    let mut spec = TagSpecification::builder().resource_type(resource);
    for (k, v) in pairs {
        spec = spec.tags(Tag::builder().key(*k).value(*v).build());
    }
    spec.build()
}

async fn volume(moto: &Moto, zone: &str, encrypted: bool) -> String {
    moto.ec2
        .create_volume()
        .availability_zone(zone)
        .size(10)
        .volume_type(VolumeType::Gp3)
        .encrypted(encrypted)
        .send()
        .await
        .expect("create volume")
        .volume_id()
        .expect("volume id")
        .to_string()
}

async fn snapshot(moto: &Moto, volume: &str) -> String {
    moto.ec2
        .create_snapshot()
        .volume_id(volume)
        .send()
        .await
        .expect("create snapshot")
        .snapshot_id()
        .expect("snapshot id")
        .to_string()
}

async fn group(moto: &Moto, permissions: Vec<IpPermission>, tag: &[(&str, &str)]) -> String {
    let id = moto
        .ec2
        .create_security_group()
        .group_name(unique("escher-scan-sg"))
        .description("scan estate")
        .set_tag_specifications(
            (!tag.is_empty()).then(|| vec![tags(ResourceType::SecurityGroup, tag)]),
        )
        .send()
        .await
        .expect("create group")
        .group_id()
        .expect("group id")
        .to_string();
    if !permissions.is_empty() {
        moto.ec2
            .authorize_security_group_ingress()
            .group_id(&id)
            .set_ip_permissions(Some(permissions))
            .send()
            .await
            .expect("authorize");
    }
    id
}

fn tcp(port: i32, cidr: &str) -> IpPermission {
    IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(port)
        .to_port(port)
        .ip_ranges(IpRange::builder().cidr_ip(cidr).build())
        .build()
}

/// A running instance and its root volume (moto gives every instance an unencrypted one).
async fn instance(moto: &Moto) -> (String, String) {
    let out = moto
        .ec2
        .run_instances()
        .image_id(AMI)
        .instance_type(InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .expect("run instance");
    let instance = &out.instances()[0];
    let id = instance.instance_id().expect("instance id").to_string();
    let described = moto
        .ec2
        .describe_instances()
        .instance_ids(&id)
        .send()
        .await
        .expect("describe instance");
    let root = described
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .flat_map(|i| i.block_device_mappings())
        .find_map(|m| m.ebs()?.volume_id())
        .expect("root volume")
        .to_string();
    (id, root)
}

/// One `AWS/EC2` `CPUUtilization` datapoint every 5 minutes over the last `days`.
async fn put_cpu(moto: &Moto, instance: &str, days: i64, value: f64) {
    let now = Utc::now();
    let data: Vec<MetricDatum> = (1..=days * 24 * 12)
        .map(|i| {
            let at = now - Duration::minutes(5 * i) + Duration::seconds(30);
            MetricDatum::builder()
                .metric_name("CPUUtilization")
                .dimensions(
                    Dimension::builder()
                        .name("InstanceId")
                        .value(instance)
                        .build(),
                )
                .timestamp(AwsDateTime::from_secs(at.timestamp()))
                .value(value)
                .unit(StandardUnit::Percent)
                .build()
        })
        .collect();
    for chunk in data.chunks(500) {
        moto.cloudwatch
            .put_metric_data()
            .namespace("AWS/EC2")
            .set_metric_data(Some(chunk.to_vec()))
            .send()
            .await
            .expect("put metric data");
    }
}

fn thresholds(snapshot_age_days: u32) -> ScanThresholds {
    ScanThresholds {
        snapshot_age_days,
        ..ScanThresholds::default()
    }
}

/// The findings about `ids` (resource ids end with them), by (check, id).
fn about<'a>(findings: &'a [Finding], ids: &[String]) -> BTreeMap<(String, String), &'a Finding> {
    findings
        .iter()
        .filter_map(|f| {
            let id = ids.iter().find(|id| {
                f.event.resource.id.ends_with(&format!("/{id}"))
                    || f.event.resource.id.ends_with(&format!(":::{id}"))
            })?;
            Some(((f.check.clone(), id.clone()), f))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_finding_of_the_estate_appears_once_with_its_severity_and_command() {
    let Some(endpoint) = endpoint().await else {
        return;
    };
    let a = clients(&config(&endpoint, REGION_A).await);
    let b = clients(&config(&endpoint, REGION_B).await);
    let zone_a = format!("{REGION_A}a");
    let mut expected: BTreeMap<(String, String), Expected> = BTreeMap::new();
    let mut estate: Vec<String> = Vec::new();
    let mut want = |check: &'static str, id: &str, e: Expected| {
        assert_eq!(check, e.check);
        expected.insert((check.to_string(), id.to_string()), e);
    };

    // Buckets: public by ACL, public with PII (CRITICAL), private, and one in region B.
    let public = bucket(&a, REGION_A, Some(BucketCannedAcl::PublicRead), false).await;
    let pii = bucket(&a, REGION_A, Some(BucketCannedAcl::PublicRead), true).await;
    let private = bucket(&a, REGION_A, None, false).await;
    let public_b = bucket(&b, REGION_B, Some(BucketCannedAcl::PublicRead), false).await;
    let bucket_finding = expect(
        "public_bucket",
        Severity::High,
        EventType::BucketPublic,
        Some(Action::MakeBucketPrivate),
    );
    want("public_bucket", &public, bucket_finding.clone());
    want("public_bucket", &public_b, bucket_finding);
    want(
        "public_bucket",
        &pii,
        expect(
            "public_bucket",
            Severity::Critical,
            EventType::BucketPublic,
            Some(Action::MakeBucketPrivate),
        ),
    );
    estate.extend([public, pii, private, public_b.clone()]);

    // Volumes: seven unattached unencrypted ones (more than one page of 5), an encrypted
    // unattached one.
    for _ in 0..7 {
        let id = volume(&a, &zone_a, false).await;
        want(
            "unencrypted_volume",
            &id,
            expect(
                "unencrypted_volume",
                Severity::Medium,
                EventType::VolumeUnencrypted,
                Some(Action::EncryptVolume),
            ),
        );
        want(
            "unattached_volume",
            &id,
            expect(
                "unattached_volume",
                Severity::Info,
                EventType::ResourceUnused,
                None,
            ),
        );
        estate.push(id);
    }
    let encrypted = volume(&a, &zone_a, true).await;
    want(
        "unattached_volume",
        &encrypted,
        expect(
            "unattached_volume",
            Severity::Info,
            EventType::ResourceUnused,
            None,
        ),
    );
    estate.push(encrypted.clone());

    // Snapshots: one of a volume since deleted (reported at 0 days), one of a live volume.
    let doomed = volume(&a, &zone_a, true).await;
    let orphan = snapshot(&a, &doomed).await;
    a.ec2
        .delete_volume()
        .volume_id(&doomed)
        .send()
        .await
        .expect("delete volume");
    let kept = snapshot(&a, &encrypted).await;
    want(
        "orphaned_snapshot",
        &orphan,
        expect(
            "orphaned_snapshot",
            Severity::Info,
            EventType::ResourceUnused,
            None,
        ),
    );
    estate.extend([orphan.clone(), kept]);

    // Security groups: six open on 22 to the world (over a page), one all traffic from ::/0
    // tagged production (CRITICAL), one open on 443 only, one with PostgreSQL from 10/8.
    let open_group = expect(
        "open_admin_port",
        Severity::High,
        EventType::FirewallOpen,
        Some(Action::RevokeOpenIngress),
    );
    for _ in 0..6 {
        let id = group(&a, vec![tcp(22, "0.0.0.0/0")], &[]).await;
        want("open_admin_port", &id, open_group.clone());
        estate.push(id);
    }
    let everything = IpPermission::builder()
        .ip_protocol("-1")
        .ipv6_ranges(Ipv6Range::builder().cidr_ipv6("::/0").build())
        .build();
    let production = group(&a, vec![everything], &[("environment", "prod")]).await;
    want(
        "open_admin_port",
        &production,
        expect(
            "open_admin_port",
            Severity::Critical,
            EventType::FirewallOpen,
            Some(Action::RevokeOpenIngress),
        ),
    );
    let web = group(&a, vec![tcp(443, "0.0.0.0/0")], &[]).await;
    let internal_db = group(&a, vec![tcp(5432, "10.0.0.0/8")], &[]).await;
    estate.extend([production.clone(), web, internal_db]);

    // Instances in region B: idle (1 % for 7 days), busy (50 %), and one with no metrics.
    // Their root volumes are unencrypted (moto's default) and attached.
    let (idle, idle_root) = instance(&b).await;
    let (busy, busy_root) = instance(&b).await;
    let (silent, silent_root) = instance(&b).await;
    put_cpu(&b, &idle, 7, 1.0).await;
    put_cpu(&b, &busy, 7, 50.0).await;
    want(
        "idle_instance",
        &idle,
        expect(
            "idle_instance",
            Severity::Info,
            EventType::InstanceIdle,
            Some(Action::StopIdleInstance),
        ),
    );
    for root in [&idle_root, &busy_root, &silent_root] {
        want(
            "unencrypted_volume",
            root,
            expect(
                "unencrypted_volume",
                Severity::Medium,
                EventType::VolumeUnencrypted,
                Some(Action::EncryptVolume),
            ),
        );
    }
    estate.extend([idle, busy, silent, idle_root, busy_root, silent_root]);

    let scan_config = config(&endpoint, REGION_A).await;
    let scanner = AwsScan::new(AwsClients::new(&scan_config), MOTO_ACCOUNT).with_page_size(5);
    let regions = vec![REGION_A.to_string(), REGION_B.to_string()];
    let context = ScanContext::new(thresholds(0));
    let outcome = run_scan(&scanner.checks(), &regions, 4, &context).await;
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);

    let found = about(&outcome.findings, &estate);
    let found_keys: Vec<&(String, String)> = found.keys().collect();
    let expected_keys: Vec<&(String, String)> = expected.keys().collect();
    assert_eq!(found_keys, expected_keys, "exactly the expected findings");
    let keys: Vec<&str> = outcome.findings.iter().map(|f| f.key.as_str()).collect();
    let mut unique_keys = keys.clone();
    unique_keys.dedup();
    assert_eq!(keys.len(), unique_keys.len(), "each finding once");

    for (key, finding) in &found {
        let want = &expected[key];
        let event = &finding.event;
        assert_eq!(event.severity, want.severity, "{key:?}");
        assert_eq!(event.event_type, want.event_type, "{key:?}");
        assert_eq!(finding.action, want.action, "{key:?}");
        assert_eq!(event.source, EventSource::EscherScan);
        assert_eq!(event.cloud_provider, CloudProvider::Aws);
        assert_eq!(event.account_id, MOTO_ACCOUNT);
        let in_b = key.1 == public_b || event.resource.kind == "ec2_instance";
        if in_b {
            assert_eq!(event.region, REGION_B, "{key:?}");
        }
        match want.action {
            Some(action) => assert_eq!(
                finding.command,
                format!(
                    "escher-provision approvals add --action {action} --cloud aws --account {MOTO_ACCOUNT} --resource-type {} --resource '{}' --reason '...'",
                    event.resource.kind, event.resource.name
                ),
                "{key:?}"
            ),
            None => assert!(
                finding.command.starts_with("aws ec2 ")
                    && finding.command.contains(&key.1)
                    && finding.command.contains(&format!("--region {}", event.region)),
                "{key:?}: {}",
                finding.command
            ),
        }
    }

    // What the remediations read is in place: the rules to revoke, the idle threshold.
    let production_finding = found[&("open_admin_port".to_string(), production)];
    assert_eq!(
        production_finding.event.resource.metadata["open_permissions"],
        serde_json::json!([{"protocol": "-1", "from_port": null, "to_port": null, "cidrs": ["::/0"]}])
    );
    let idle_finding = found
        .values()
        .find(|f| f.check == "idle_instance")
        .expect("idle finding");
    assert_eq!(idle_finding.event.resource.metadata["threshold"], 5.0);
    let orphan_finding = found[&("orphaned_snapshot".to_string(), orphan.clone())];
    assert_eq!(orphan_finding.monthly_saving_usd, Some(0.5));
    let unattached = found[&("unattached_volume".to_string(), encrypted.clone())];
    assert_eq!(unattached.monthly_saving_usd, Some(0.8), "10 GiB gp3");

    // At the shipped 90 days the new orphaned snapshot is not old enough to report.
    let shipped = ScanContext::new(ScanThresholds::default());
    let outcome = run_scan(&scanner.checks(), &regions[..1], 4, &shipped).await;
    assert!(
        !outcome
            .findings
            .iter()
            .any(|f| f.event.resource.id.ends_with(&orphan)),
        "a snapshot of today is not older than 90 days"
    );
}
