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

use aws_config::SdkConfig;
use aws_sdk_ec2::types::{IpPermission, Ipv6Range};
use aws_sdk_s3::types::BucketCannedAcl;
use chrono::Duration;
use escher_aws::{AwsClients, AwsScan};
use escher_core::approvals::Action;
use escher_core::scan::{run_scan, Finding, ScanContext, ScanThresholds};
use escher_core::{CloudProvider, EventSource, EventType, Severity};
use escher_test_support::moto::cost::{self, EC2_COMPUTE};
use escher_test_support::moto::{
    self, cloudwatch, ec2, ec2::tcp, rds, s3, Moto, ACCOUNT as MOTO_ACCOUNT,
};
use escher_test_support::names::unique;

/// Regions no other test touches, so the scan sees only this file's resources there.
const REGION_A: &str = "ap-southeast-2";
const REGION_B: &str = "ca-central-1";
/// The notice's name for these tests.
const WHAT: &str = "the AWS scan tests";

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
    s3::create_bucket(&moto.s3, &name, region, acl)
        .await
        .expect("create bucket");
    if pii {
        s3::tag_bucket(&moto.s3, &name, &[("data-classification", "pii")])
            .await
            .expect("tag bucket");
    }
    name
}

async fn volume(moto: &Moto, zone: &str, encrypted: bool) -> String {
    ec2::create_volume(&moto.ec2, zone, 10, encrypted)
        .await
        .expect("create volume")
}

async fn snapshot(moto: &Moto, volume: &str) -> String {
    ec2::create_snapshot(&moto.ec2, volume)
        .await
        .expect("create snapshot")
}

async fn group(moto: &Moto, permissions: Vec<IpPermission>, tag: &[(&str, &str)]) -> String {
    ec2::security_group(&moto.ec2, &unique("escher-scan-sg"), tag, permissions)
        .await
        .expect("create group")
}

/// A running instance and its root volume (moto gives every instance an unencrypted one).
async fn instance(moto: &Moto, instance_type: &str) -> (String, String) {
    let id = ec2::run_instance(&moto.ec2, instance_type)
        .await
        .expect("run instance");
    let root = ec2::root_volume(&moto.ec2, &id).await.expect("root volume");
    (id, root)
}

/// One `AWS/EC2` `CPUUtilization` datapoint every `every_minutes` over the last `days`
/// (5 for the idle check's short periods; 30 is enough for the 30-day window's).
async fn put_cpu(moto: &Moto, instance: &str, days: i64, value: f64, every_minutes: i64) {
    cloudwatch::put_cpu(
        &moto.cloudwatch,
        instance,
        value,
        Duration::days(days),
        Duration::minutes(every_minutes),
    )
    .await
    .expect("put metric data");
}

async fn database(
    moto: &Moto,
    encrypted: bool,
    cluster: Option<&str>,
    tags: &[(&str, &str)],
) -> String {
    rds::db_instance(
        &aws_sdk_rds::Client::new(&moto.config),
        encrypted,
        cluster,
        tags,
    )
    .await
    .expect("create db instance")
}

async fn aurora_cluster(moto: &Moto) -> String {
    let id = unique("escher-scan-aurora");
    aws_sdk_rds::Client::new(&moto.config)
        .create_db_cluster()
        .db_cluster_identifier(&id)
        .engine("aurora-postgresql")
        .master_username("escher")
        .master_user_password("not-a-secret-1")
        .storage_encrypted(false)
        .send()
        .await
        .expect("create db cluster");
    id
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
                    || f.event.resource.id.ends_with(&format!(":{id}"))
            })?;
            Some(((f.check.clone(), id.clone()), f))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_finding_of_the_estate_appears_once_with_its_severity_and_command() {
    let Some(a) = Moto::connect(REGION_A, WHAT).await else {
        return;
    };
    let b = a.in_region(REGION_B);
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

    // Instances in region B: idle (1 % for 30 days: over-provisioned too, but reported as
    // idle only), busy (50 % for 7 days: too little history to judge its size), and one
    // with no metrics. At 12 % for 30 days: an m5.2xlarge and a t3.large (one size down,
    // priced), an m5zn.2xlarge (not in the price table: no saving), a t3.small (the
    // t3.micro's 10 % baseline is too low) and an m5.large (the family's smallest).
    // Their root volumes are unencrypted (moto's default) and attached.
    let (idle, idle_root) = instance(&b, "t3.micro").await;
    let (busy, busy_root) = instance(&b, "t3.micro").await;
    let (silent, silent_root) = instance(&b, "t3.micro").await;
    put_cpu(&b, &idle, 7, 1.0, 5).await;
    put_cpu(&b, &idle, 30, 1.0, 30).await;
    put_cpu(&b, &busy, 7, 50.0, 5).await;
    let mut roots = vec![idle_root.clone(), busy_root.clone(), silent_root.clone()];
    let mut sized = BTreeMap::new();
    for instance_type in [
        "m5.2xlarge",
        "t3.large",
        "m5zn.2xlarge",
        "t3.small",
        "m5.large",
    ] {
        let (id, root) = instance(&b, instance_type).await;
        put_cpu(&b, &id, 30, 12.0, 30).await;
        roots.push(root.clone());
        estate.extend([id.clone(), root]);
        sized.insert(instance_type, id);
    }
    for instance_type in ["m5.2xlarge", "t3.large", "m5zn.2xlarge"] {
        want(
            "overprovisioned_instance",
            &sized[instance_type],
            expect(
                "overprovisioned_instance",
                Severity::Info,
                EventType::InstanceOverprovisioned,
                None,
            ),
        );
    }
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
    for root in &roots {
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

    // Databases in region A: an unencrypted PostgreSQL holding PII (HIGH), an unencrypted
    // plain one, an encrypted one, and an unencrypted Aurora cluster whose member instance
    // is reported as the cluster, not twice; then enough instances for a second page.
    let pii_db = database(&a, false, None, &[("data-classification", "pii")]).await;
    let plain_db = database(&a, false, None, &[]).await;
    let encrypted_db = database(&a, true, None, &[]).await;
    let aurora = aurora_cluster(&a).await;
    let aurora_member = database(&a, false, Some(&aurora), &[]).await;
    let database_finding = |severity| {
        expect(
            "unencrypted_database",
            severity,
            EventType::VolumeUnencrypted,
            None,
        )
    };
    want(
        "unencrypted_database",
        &pii_db,
        database_finding(Severity::High),
    );
    want(
        "unencrypted_database",
        &plain_db,
        database_finding(Severity::Medium),
    );
    want(
        "unencrypted_database",
        &aurora,
        database_finding(Severity::Medium),
    );
    estate.extend([
        pii_db.clone(),
        plain_db,
        encrypted_db,
        aurora.clone(),
        aurora_member,
    ]);
    // More instances than one page holds (RDS pages are 20 to 100 records; 5 asks for 20).
    for _ in 0..18 {
        let id = database(&a, false, None, &[]).await;
        want(
            "unencrypted_database",
            &id,
            database_finding(Severity::Medium),
        );
        estate.push(id);
    }

    let scanner = AwsScan::new(AwsClients::new(&a.config), MOTO_ACCOUNT).with_page_size(5);
    let regions = vec![REGION_A.to_string(), REGION_B.to_string()];
    let context = ScanContext::new(thresholds(0));
    // The cost check reads the account's billing data, not the estate: it has tests of
    // its own, in accounts of their own.
    let checks: Vec<_> = scanner
        .checks()
        .into_iter()
        .filter(|c| c.id() != "cost")
        .collect();
    let outcome = run_scan(&checks, &regions, 4, &context).await;
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
                (finding.command.starts_with("aws ec2 ") || finding.command.starts_with("aws rds "))
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

    // One size down, with the saving at the table's us-east-1 prices, or none when the
    // type is not in the table.
    let sizing = |instance_type: &str| {
        found[&(
            "overprovisioned_instance".to_string(),
            sized[instance_type].clone(),
        )]
    };
    let big = sizing("m5.2xlarge");
    assert_eq!(big.monthly_saving_usd, Some(140.16), "{}", big.title);
    assert_eq!(big.event.resource.metadata["suggested_type"], "m5.xlarge");
    assert!(big.title.contains("m5.xlarge would do"), "{}", big.title);
    assert!(
        big.command.contains(&format!(
            "aws ec2 modify-instance-attribute --region {REGION_B} --instance-id {} --instance-type Value=m5.xlarge",
            sized["m5.2xlarge"]
        )),
        "{}",
        big.command
    );
    assert_eq!(sizing("t3.large").monthly_saving_usd, Some(30.37));
    assert_eq!(
        sizing("t3.large").event.resource.metadata["suggested_type"],
        "t3.medium"
    );
    let unpriced = sizing("m5zn.2xlarge");
    assert_eq!(unpriced.monthly_saving_usd, None);
    assert!(
        unpriced.title.contains("not in Escher's price table"),
        "{}",
        unpriced.title
    );
    assert_eq!(
        unpriced.event.resource.metadata["suggested_type"],
        "m5zn.xlarge"
    );

    // RDS cannot encrypt in place: the command makes an encrypted copy of the database.
    let pii_db_finding = found[&("unencrypted_database".to_string(), pii_db.clone())];
    let steps: Vec<&str> = pii_db_finding
        .command
        .split(" && ")
        .map(|step| step.split(" --").next().unwrap_or_default())
        .collect();
    assert_eq!(
        steps,
        [
            "aws rds create-db-snapshot",
            "aws rds wait db-snapshot-available",
            "aws rds copy-db-snapshot",
            "aws rds wait db-snapshot-available",
            "aws rds restore-db-instance-from-db-snapshot"
        ],
        "{}",
        pii_db_finding.command
    );
    assert!(pii_db_finding.command.contains(&format!(
        "--source-db-snapshot-identifier {pii_db}-before-encryption --target-db-snapshot-identifier {pii_db}-encrypted --kms-key-id alias/aws/rds"
    )));
    assert!(
        pii_db_finding.command.contains(&format!(
            "aws rds restore-db-instance-from-db-snapshot --region {REGION_A} --db-instance-identifier {pii_db}-encrypted --db-snapshot-identifier {pii_db}-encrypted --db-instance-class db.t3.medium"
        )),
        "{}",
        pii_db_finding.command
    );
    assert_eq!(pii_db_finding.event.resource.kind, "rds_instance");
    assert!(!pii_db_finding.questions.is_empty());
    let aurora_finding = found[&("unencrypted_database".to_string(), aurora.clone())];
    assert_eq!(aurora_finding.event.resource.kind, "rds_cluster");
    assert!(
        aurora_finding
            .command
            .contains("aws rds copy-db-cluster-snapshot")
            && aurora_finding
                .command
                .contains("aws rds restore-db-cluster-from-snapshot")
            && aurora_finding
                .command
                .contains("--engine aurora-postgresql"),
        "{}",
        aurora_finding.command
    );

    // At the shipped 90 days the new orphaned snapshot is not old enough to report.
    let shipped = ScanContext::new(ScanThresholds::default());
    let outcome = run_scan(&checks, &regions[..1], 4, &shipped).await;
    assert!(
        !outcome
            .findings
            .iter()
            .any(|f| f.event.resource.id.ends_with(&orphan)),
        "a snapshot of today is not older than 90 days"
    );
}

/// An account of this test's own (see `moto::fresh_account`), so Cost Explorer results
/// queued here are answered to this test only: moto keeps the queue and its answers per
/// account, for the server's lifetime.
async fn in_fresh_account(endpoint: &str) -> (String, SdkConfig) {
    let account = moto::fresh_account();
    let moto = Moto::at(endpoint, "us-east-1")
        .await
        .in_account(&account)
        .await
        .expect("assume a role in a fresh account");
    (account, moto.config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cost_summary_flags_a_spike_and_the_budget_once_per_scan() {
    let Some(endpoint) = moto::endpoint(WHAT) else {
        return;
    };
    let (account, scan_config) = in_fresh_account(&endpoint).await;
    let context = ScanContext::new(ScanThresholds {
        monthly_budget_usd: Some(100.0),
        ..ScanThresholds::default()
    });
    let window = escher_core::scan::CostWindow::for_report(context.report_date());
    // 120 a day (EC2 100, S3 20) until yesterday, when EC2 jumped to 250; yesterday is on a
    // second page, as Cost Explorer pages long answers.
    let mut earlier = Vec::new();
    let mut day = window.start;
    while day < window.yesterday {
        earlier.push(cost::day(
            day,
            &[
                (EC2_COMPUTE, 100.0),
                ("Amazon Simple Storage Service", 20.0),
            ],
            false,
        ));
        day += Duration::days(1);
    }
    let first_page = cost::page(earlier, Some("page-2"));
    let last = cost::day(
        window.yesterday,
        &[
            (EC2_COMPUTE, 250.0),
            ("Amazon Simple Storage Service", 20.0),
        ],
        true,
    );
    let second_page = cost::page(vec![last], None);
    cost::queue_results(&endpoint, &account, vec![first_page, second_page])
        .await
        .expect("queue Cost Explorer answers");

    let scanner = AwsScan::new(AwsClients::new(&scan_config), account.clone());
    let cost_check: Vec<_> = scanner
        .checks()
        .into_iter()
        .filter(|c| c.id() == "cost")
        .collect();
    assert_eq!(cost_check.len(), 1);
    let regions = vec![REGION_A.to_string(), REGION_B.to_string()];
    let outcome = run_scan(&cost_check, &regions, 4, &context).await;
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);

    let cost = outcome.cost.expect("a cost summary");
    assert_eq!(cost.yesterday, window.yesterday);
    assert_eq!(cost.yesterday_amount, 270.0);
    assert_eq!(cost.day_before_amount, 120.0);
    assert_eq!(cost.change_amount, 150.0);
    assert_eq!(cost.change_percent, Some(125.0));
    assert!(cost.yesterday_estimated);
    let days_this_month = f64::from(chrono::Datelike::day(&window.yesterday));
    let month_to_date = 120.0 * (days_this_month - 1.0) + 270.0;
    assert_eq!(cost.month_to_date_amount, month_to_date);
    assert_eq!(cost.top_services[0].service, EC2_COMPUTE);
    assert_eq!(
        cost.top_services[0].amount,
        month_to_date - 20.0 * days_this_month
    );
    assert_eq!(cost.top_increases.len(), 1, "only EC2 grew");
    assert!(cost.spike && cost.over_budget);

    // Each flag once, account-wide, with the read-only command that shows the breakdown.
    let kinds: Vec<(&str, EventType, Severity)> = outcome
        .findings
        .iter()
        .map(|f| (f.check.as_str(), f.event.event_type, f.event.severity))
        .collect();
    assert_eq!(
        kinds,
        [
            ("budget_exceeded", EventType::BudgetExceeded, Severity::High),
            ("cost_spike", EventType::CostSpike, Severity::Medium),
        ]
    );
    for finding in &outcome.findings {
        assert_eq!(finding.event.region, escher_core::scan::ACCOUNT_WIDE);
        assert_eq!(finding.event.account_id, account);
        assert_eq!(finding.key, format!("{}:{account}", finding.check));
        assert!(finding.action.is_none());
        assert!(
            finding
                .command
                .starts_with("aws ce get-cost-and-usage --region us-east-1 --time-period Start=")
                && finding
                    .command
                    .ends_with("--metrics UnblendedCost --group-by Type=DIMENSION,Key=SERVICE"),
            "{}",
            finding.command
        );
    }
    let spike = &outcome.findings[1];
    assert!(
        spike.title.contains("up 150.00 (+125.0 %)"),
        "{}",
        spike.title
    );
    assert!(
        spike.title.contains(&format!("{EC2_COMPUTE} +150.00")),
        "{}",
        spike.title
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cost_explorer_without_data_is_a_reported_failure_and_the_rest_of_the_scan_stands() {
    let Some(endpoint) = moto::endpoint(WHAT) else {
        return;
    };
    // Nothing queued for this account: moto answers with no results at all.
    let (account, scan_config) = in_fresh_account(&endpoint).await;
    let scanner = AwsScan::new(AwsClients::new(&scan_config), account);
    let context = ScanContext::new(ScanThresholds::default());
    let outcome = run_scan(&scanner.checks(), &[REGION_A.to_string()], 4, &context).await;
    assert_eq!(outcome.cost, None);
    let failures: Vec<(&str, &str)> = outcome
        .failures
        .iter()
        .map(|f| (f.region.as_str(), f.check.as_str()))
        .collect();
    assert_eq!(failures, [(escher_core::scan::ACCOUNT_WIDE, "cost")]);
    let message = outcome.failures[0].error.to_string();
    assert!(message.contains("GetCostAndUsage"), "{message}");
    assert!(message.contains("has no cost for"), "{message}");
}
