//! The AWS alert handler end to end against moto server: the pipeline `escher_aws::
//! build_pipeline` assembles (the one the Lambda function and `events handle` run), real
//! AWS SDK calls for the fixes and the notifications, stores on moto S3 or a local folder,
//! SNS topics with subscribed SQS queues, Slack and PagerDuty secrets as SSM SecureStrings
//! pointing at a local HTTP receiver. The user-facing path (`escher-provision events handle`,
//! `audit verify`) runs as a process.
//!
//! Each test creates its own resources (unique names) and never resets moto.
//! `tests/emulators.sh start` writes `ESCHER_TEST_AWS_ENDPOINT`; without it the tests print a
//! notice and return, unless `ESCHER_REQUIRE_EMULATORS=1`, when they fail.

use std::collections::BTreeMap;
use std::process::Output;
use std::sync::Arc;

use aws_sdk_ec2::types::{Filter, InstanceStateName};
use aws_sdk_ssm::types::ParameterType;
use chrono::{Duration, Utc};
use escher_aws::build_pipeline;
use escher_core::approvals::{Action, Approval, ApprovalStore, Change, Conditions, Scope};
use escher_core::pipeline::audit::{AuditLog, AuditRecord, Outcome};
use escher_core::pipeline::{Pipeline, PipelineError};
use escher_runtime::HandlerConfig;
use escher_test_support::fixtures::aws;
use escher_test_support::http::{self, Receiver};
use escher_test_support::moto::{ec2, s3, Moto, ACCOUNT as MOTO_ACCOUNT};
use escher_test_support::names::unique;
use serde_json::{json, Value};

const REGION: &str = "us-east-1";
const PAGERDUTY_KEY: &str = "R0UTINGKEY0123456789abcdef012345";

async fn moto() -> Option<Moto> {
    Moto::connect(REGION, "the handler end-to-end tests").await
}

// ---------------------------------------------------------------- stores and approvals

struct Stores {
    state: String,
    audit: String,
    approvals: String,
    _dir: Option<tempfile::TempDir>,
}

/// The three stores as prefixes of one new moto S3 bucket.
async fn s3_stores(moto: &Moto) -> Stores {
    let bucket = moto.private_bucket("escher-stores").await;
    Stores {
        state: moto.store_uri(&bucket, "state"),
        audit: moto.store_uri(&bucket, "audit"),
        approvals: moto.store_uri(&bucket, "approvals"),
        _dir: None,
    }
}

fn fs_stores() -> Stores {
    let dir = tempfile::tempdir().expect("temp dir");
    let uri = |name: &str| format!("fs://{}", dir.path().join(name).display());
    Stores {
        state: uri("state"),
        audit: uri("audit"),
        approvals: uri("approvals"),
        _dir: Some(dir),
    }
}

fn approval(action: Action, conditions: Conditions) -> Approval {
    Approval {
        id: unique("apr"),
        action,
        scope: Scope::default(),
        conditions,
        approved_by: "ana".into(),
        approved_at: Utc::now() - Duration::minutes(5),
        expires_at: None,
        reason: "end-to-end test".into(),
        revoked_at: None,
        revoked_by: None,
        revoke_reason: None,
    }
}

/// Stores in a local folder with one approval of `action`, unconditional and everywhere.
async fn fs_stores_approving(action: Action) -> Stores {
    let stores = fs_stores();
    approve(&stores, vec![approval(action, Conditions::default())]).await;
    stores
}

async fn approve(stores: &Stores, approvals: Vec<Approval>) {
    ApprovalStore::open(&stores.approvals)
        .expect("approvals store")
        .apply(&Change::Init { approvals }, "ana")
        .await
        .expect("init approvals");
}

async fn audit_records(uri: &str) -> Vec<AuditRecord> {
    let log = AuditLog::new(
        escher_core::store::open(uri).expect("audit store"),
        uri.into(),
    );
    let mut records = Vec::new();
    for day in log.days().await.expect("days") {
        records.extend(log.records(day).await.expect("records"));
    }
    records
}

// ---------------------------------------------------------------- notifications

/// Topics with subscribed queues, secrets in SSM, a receiver for Slack and PagerDuty.
struct Notify {
    critical_topic: String,
    high_topic: String,
    critical_queue: String,
    high_queue: String,
    ssm_prefix: String,
    /// Slack's and PagerDuty's endpoints.
    received: Receiver,
}

async fn notify(moto: &Moto) -> Notify {
    let (critical_topic, critical_queue) = moto.topic_with_queue("escher-critical").await;
    let (high_topic, high_queue) = moto.topic_with_queue("escher-high").await;
    let ssm_prefix = format!("/escher/{}/", unique("stack"));
    let received = Receiver::start().await;
    let ssm = aws_sdk_ssm::Client::new(&moto.config);
    for (name, value) in [
        ("slack-webhook-url", format!("{}/slack", received.base)),
        ("pagerduty-routing-key", PAGERDUTY_KEY.to_string()),
    ] {
        ssm.put_parameter()
            .name(format!("{ssm_prefix}{name}"))
            .value(value)
            .r#type(ParameterType::SecureString)
            .send()
            .await
            .expect("put secret");
    }
    Notify {
        critical_topic,
        high_topic,
        critical_queue,
        high_queue,
        ssm_prefix,
        received,
    }
}

/// The SNS messages (their `Message` text) delivered to a queue.
async fn queued(moto: &Moto, queue: &str) -> Vec<String> {
    let delivered = moto.delivered(queue).await;
    delivered.into_iter().map(|d| d.message).collect()
}

fn config(stores: &Stores, notify: Option<&Notify>) -> HandlerConfig {
    HandlerConfig {
        state_uri: stores.state.clone(),
        approvals_uri: stores.approvals.clone(),
        audit_uri: stores.audit.clone(),
        secrets_prefix: notify.map(|n| n.ssm_prefix.clone()),
        critical_topic: notify.map(|n| n.critical_topic.clone()),
        high_topic: notify.map(|n| n.high_topic.clone()),
        dry_run: false,
        pagerduty_url: notify.map(|n| format!("{}/pagerduty", n.received.base)),
        approvals_refresh: std::time::Duration::from_secs(60),
        claim_lease: escher_core::pipeline::DEFAULT_CLAIM_LEASE,
    }
}

async fn pipeline(moto: &Moto, stores: &Stores, notify: Option<&Notify>) -> Pipeline {
    build_pipeline(&config(stores, notify), &moto.config).expect("pipeline")
}

/// Handles one payload; expects exactly one event.
async fn handle_one(pipeline: &Pipeline, payload: &Value) -> escher_core::pipeline::EventResult {
    let mut handled = pipeline
        .handle(payload.to_string().as_bytes())
        .await
        .unwrap_or_else(|e| panic!("handled: {e}"));
    assert_eq!(handled.results.len(), 1, "{:?}", handled.results);
    handled.results.remove(0)
}

// ---------------------------------------------------------------- buckets

/// The EventBridge CloudTrail PutBucketAcl event (fixture shape) for `bucket`.
fn put_bucket_acl_payload(bucket: &str) -> Value {
    aws::put_bucket_acl(bucket, MOTO_ACCOUNT, REGION)
}

async fn blocks_public_access(moto: &Moto, bucket: &str) -> bool {
    match moto
        .s3
        .get_public_access_block()
        .bucket(bucket)
        .send()
        .await
    {
        Ok(out) => out.public_access_block_configuration().is_some_and(|c| {
            c.block_public_acls() == Some(true)
                && c.ignore_public_acls() == Some(true)
                && c.block_public_policy() == Some(true)
                && c.restrict_public_buckets() == Some(true)
        }),
        Err(_) => false,
    }
}

fn run_cli(args: &[&str], env: &[(&str, String)]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_escher-provision"));
    command.args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("run escher-provision")
}

fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approved_public_bucket_via_the_cli_is_made_private_verified_audited_and_notified() {
    let Some(moto) = moto().await else {
        return;
    };
    let stores = s3_stores(&moto).await;
    approve(
        &stores,
        vec![approval(Action::MakeBucketPrivate, Conditions::default())],
    )
    .await;
    let notify = notify(&moto).await;
    // Production → the enrich step reads the tag → CRITICAL: critical topic, Slack, PagerDuty.
    let bucket = moto.public_bucket("escher-public").await;
    s3::tag_bucket(&moto.s3, &bucket, &[("environment", "production")])
        .await
        .expect("tag bucket");
    assert!(!moto.public_grants(&bucket).await.is_empty());
    let dir = tempfile::tempdir().expect("temp dir");
    let event_file = dir.path().join("event.json");
    std::fs::write(&event_file, put_bucket_acl_payload(&bucket).to_string()).expect("write");

    let env = vec![
        ("AWS_ENDPOINT_URL", moto.endpoint.clone()),
        ("AWS_REGION", REGION.to_string()),
        ("ESCHER_STATE_URI", stores.state.clone()),
        ("ESCHER_AUDIT_URI", stores.audit.clone()),
        ("ESCHER_APPROVALS_URI", stores.approvals.clone()),
        ("ESCHER_SSM_PREFIX", notify.ssm_prefix.clone()),
        ("ESCHER_CRITICAL_TOPIC_ARN", notify.critical_topic.clone()),
        ("ESCHER_HIGH_TOPIC_ARN", notify.high_topic.clone()),
        (
            "ESCHER_PAGERDUTY_URL",
            format!("{}/pagerduty", notify.received.base),
        ),
    ];
    let file = event_file.display().to_string();
    let output = tokio::task::spawn_blocking(move || run_cli(&["events", "handle", &file], &env))
        .await
        .expect("cli");
    let story = text(&output);
    assert_eq!(output.status.code(), Some(0), "{story}");
    assert!(story.contains("outcome: remediated"), "{story}");
    assert!(story.contains("verified: passed"), "{story}");

    // The bucket itself.
    assert!(blocks_public_access(&moto, &bucket).await, "{story}");
    assert_eq!(moto.public_grants(&bucket).await, Vec::<String>::new());

    // The audit record.
    let records = audit_records(&stores.audit).await;
    assert_eq!(records.len(), 1, "{records:#?}");
    let record = &records[0];
    assert_eq!(record.outcome, Outcome::Remediated);
    assert_eq!(record.sha256, record.content_hash().expect("hash"));
    assert!(record
        .remediation
        .as_ref()
        .and_then(|r| r.verification.as_ref())
        .is_some_and(|v| v.passed));
    assert!(record.decision.as_ref().is_some_and(|d| d.is_approved()));

    // The critical topic's subscriber got it; the high topic's did not.
    let critical = queued(&moto, &notify.critical_queue).await;
    assert_eq!(critical.len(), 1, "{critical:?}");
    assert!(critical[0].contains(&bucket), "{}", critical[0]);
    assert!(queued(&moto, &notify.high_queue).await.is_empty());

    // Slack: an incoming-webhook message with `text` and Block Kit `blocks`.
    let slack = notify.received.at("/slack");
    assert_eq!(slack.len(), 1, "{slack:?}");
    assert!(slack[0]["text"]
        .as_str()
        .is_some_and(|t| t.contains(&bucket)));
    assert!(slack[0]["blocks"].as_array().is_some_and(|b| !b.is_empty()));
    // PagerDuty Events API v2.
    let pd = notify.received.at("/pagerduty");
    assert_eq!(pd.len(), 1, "{pd:?}");
    assert_eq!(pd[0]["routing_key"], PAGERDUTY_KEY);
    assert_eq!(pd[0]["event_action"], "trigger");
    assert!(pd[0]["dedup_key"].as_str().is_some_and(|k| !k.is_empty()));
    assert!(pd[0]["payload"]["summary"]
        .as_str()
        .is_some_and(|s| s.contains(&bucket)));
    assert_eq!(pd[0]["payload"]["severity"], "critical");
    assert!(pd[0]["payload"]["source"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
    // The secrets went only where they belong.
    assert!(!story.contains(PAGERDUTY_KEY));
    assert!(!story.contains(&notify.received.base));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_via_the_cli_leaves_the_bucket_public_and_says_exactly_what_it_would_do() {
    let Some(moto) = moto().await else {
        return;
    };
    let stores = fs_stores_approving(Action::MakeBucketPrivate).await;
    let bucket = moto.public_bucket("escher-public").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let event_file = dir.path().join("event.json");
    std::fs::write(&event_file, put_bucket_acl_payload(&bucket).to_string()).expect("write");
    let file = event_file.display().to_string();
    let env = vec![
        ("AWS_ENDPOINT_URL", moto.endpoint.clone()),
        ("AWS_REGION", REGION.to_string()),
        ("ESCHER_STATE_URI", stores.state.clone()),
        ("ESCHER_AUDIT_URI", stores.audit.clone()),
        ("ESCHER_APPROVALS_URI", stores.approvals.clone()),
    ];
    let mut env_dry_run = env.clone();
    env_dry_run.push(("ESCHER_DRY_RUN", "true".to_string()));
    // The flag, then the function's variable: both must give the same dry run.
    let runs = [
        (vec!["events", "handle", "--dry-run", file.as_str()], env),
        (vec!["events", "handle", file.as_str()], env_dry_run),
    ];
    for (i, (args, env)) in runs.into_iter().enumerate() {
        let args: Vec<String> = args.into_iter().map(str::to_string).collect();
        let output = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_cli(&args, &env)
        })
        .await
        .expect("cli");
        let story = text(&output);
        assert_eq!(output.status.code(), Some(0), "{story}");
        assert!(story.contains("outcome: would_remediate"), "{story}");
        assert!(
            story.contains(&format!(
                "would turn on BlockPublicAcls, IgnorePublicAcls, BlockPublicPolicy and RestrictPublicBuckets on bucket {bucket}"
            )),
            "the four public access block settings: {story}"
        );
        assert!(
            story.contains(&format!(
                "would remove grant READ to AllUsers from bucket {bucket}'s ACL"
            )),
            "the ACL grant removal: {story}"
        );
        assert!(
            !story.contains("outcome: remediated") && !story.contains("verified: passed"),
            "{story}"
        );

        // The bucket is still public.
        assert!(!moto.public_grants(&bucket).await.is_empty(), "{story}");
        assert!(!blocks_public_access(&moto, &bucket).await, "{story}");

        let records = audit_records(&stores.audit).await;
        assert_eq!(records.len(), i + 1, "{records:#?}");
        assert!(
            records.iter().all(|r| r.outcome == Outcome::WouldRemediate
                && r.mode == escher_core::remediate::Mode::DryRun),
            "{records:#?}"
        );
        let calls: Vec<&escher_core::remediate::ApiCall> = records
            .iter()
            .flat_map(|r| r.remediation.iter().flat_map(|rem| rem.api_calls.iter()))
            .collect();
        assert!(!calls.is_empty(), "the dry run reads the bucket");
        assert!(calls.iter().all(|c| !c.mutating), "{calls:#?}");
    }
}

#[tokio::test]
async fn unapproved_public_bucket_is_left_alone_and_the_notice_says_how_to_approve() {
    let Some(moto) = moto().await else {
        return;
    };
    let stores = fs_stores();
    approve(&stores, vec![]).await;
    let notify = notify(&moto).await;
    // Untagged: HIGH → the high topic and Slack.
    let bucket = moto.public_bucket("escher-public").await;
    let pipeline = pipeline(&moto, &stores, Some(&notify)).await;
    let result = handle_one(&pipeline, &put_bucket_acl_payload(&bucket)).await;
    assert_eq!(
        result.outcome,
        Outcome::ApprovalRequired,
        "{:#?}",
        result.steps
    );

    assert!(!moto.public_grants(&bucket).await.is_empty(), "unchanged");
    assert!(!blocks_public_access(&moto, &bucket).await);
    let records = audit_records(&stores.audit).await;
    assert_eq!(
        records.iter().map(|r| r.outcome).collect::<Vec<_>>(),
        [Outcome::ApprovalRequired]
    );
    let approve_command = "escher-provision approvals add --action make_bucket_private";
    let high = queued(&moto, &notify.high_queue).await;
    assert_eq!(high.len(), 1, "{high:?}");
    assert!(high[0].contains(approve_command), "{}", high[0]);
    assert!(queued(&moto, &notify.critical_queue).await.is_empty());
    let slack = notify.received.at("/slack");
    assert_eq!(slack.len(), 1);
    assert!(
        slack[0].to_string().contains(approve_command),
        "{}",
        slack[0]
    );
    assert!(
        notify.received.at("/pagerduty").is_empty(),
        "HIGH is not paged"
    );
}

#[tokio::test]
async fn security_group_open_on_22_is_revoked() {
    let Some(moto) = moto().await else {
        return;
    };
    let stores = fs_stores_approving(Action::RevokeOpenIngress).await;
    let group = ec2::security_group(
        &moto.ec2,
        &unique("escher-sg"),
        &[],
        vec![ec2::tcp(22, "0.0.0.0/0")],
    )
    .await
    .expect("create group");
    let payload = aws::authorize_ingress(&group, 22, MOTO_ACCOUNT, REGION);
    let pipeline = pipeline(&moto, &stores, None).await;
    let result = handle_one(&pipeline, &payload).await;
    assert_eq!(result.outcome, Outcome::Remediated, "{:#?}", result.steps);

    let rules = ec2::ingress_rules(&moto.ec2, &group)
        .await
        .expect("describe");
    let open_22 = rules.iter().any(|p| {
        p.from_port() == Some(22)
            && p.ip_ranges()
                .iter()
                .any(|r| r.cidr_ip() == Some("0.0.0.0/0"))
    });
    assert!(!open_22, "{rules:?}");
}

// ---------------------------------------------------------------- instances

/// The EventBridge state change of a "CPU below `threshold` %" alarm on `instance`.
fn low_cpu_alarm_payload(instance: &str, threshold: f64) -> Value {
    aws::low_cpu_alarm(instance, threshold, MOTO_ACCOUNT, REGION)
}

async fn idle_setup(moto: &Moto, cpu: f64) -> (Stores, String, Value) {
    let stores = fs_stores();
    approve(
        &stores,
        vec![approval(
            Action::StopIdleInstance,
            Conditions {
                min_idle_hours: Some(2.0),
                ..Conditions::default()
            },
        )],
    )
    .await;
    let instance = moto.running_instance().await;
    moto.put_cpu(&instance, cpu, Duration::hours(2)).await;
    let payload = low_cpu_alarm_payload(&instance, 10.0);
    (stores, instance, payload)
}

#[tokio::test]
async fn idle_instance_is_stopped() {
    let Some(moto) = moto().await else {
        return;
    };
    let (stores, instance, payload) = idle_setup(&moto, 3.0).await;
    let pipeline = pipeline(&moto, &stores, None).await;
    let result = handle_one(&pipeline, &payload).await;
    assert_eq!(result.outcome, Outcome::Remediated, "{:#?}", result.steps);
    assert!(matches!(
        moto.instance_state(&instance).await,
        InstanceStateName::Stopping | InstanceStateName::Stopped
    ));
}

#[tokio::test]
async fn busy_instance_is_not_stopped_and_the_reason_is_given() {
    let Some(moto) = moto().await else {
        return;
    };
    let (stores, instance, payload) = idle_setup(&moto, 60.0).await;
    let pipeline = pipeline(&moto, &stores, None).await;
    let result = handle_one(&pipeline, &payload).await;
    assert_eq!(result.outcome, Outcome::Skipped, "{:#?}", result.steps);
    assert!(
        result.summary.contains("CPU") && result.summary.contains("60"),
        "{}",
        result.summary
    );
    assert_eq!(
        moto.instance_state(&instance).await,
        InstanceStateName::Running
    );
}

// ---------------------------------------------------------------- volumes

#[tokio::test]
async fn unencrypted_volume_gets_an_encrypted_copy() {
    let Some(moto) = moto().await else {
        return;
    };
    let stores = fs_stores_approving(Action::EncryptVolume).await;
    let zone = format!("{REGION}a");
    let volume = ec2::create_volume(&moto.ec2, &zone, 8, false)
        .await
        .expect("create volume");
    let payload = aws::create_volume(&volume, &zone, MOTO_ACCOUNT, REGION);
    let pipeline = pipeline(&moto, &stores, None).await;
    let result = handle_one(&pipeline, &payload).await;
    assert_eq!(result.outcome, Outcome::Remediated, "{:#?}", result.steps);

    let copies = moto
        .ec2
        .describe_volumes()
        .filters(
            Filter::builder()
                .name("tag:escher:source-volume")
                .values(&volume)
                .build(),
        )
        .send()
        .await
        .expect("describe volumes");
    let copies: Vec<_> = copies
        .volumes()
        .iter()
        .filter(|v| v.volume_id() != Some(volume.as_str()))
        .collect();
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert_eq!(copies[0].encrypted(), Some(true));
    assert_eq!(copies[0].availability_zone(), Some(zone.as_str()));
    // The original stays as it was.
    let original = moto
        .ec2
        .describe_volumes()
        .volume_ids(&volume)
        .send()
        .await
        .expect("describe original");
    assert_eq!(original.volumes()[0].encrypted(), Some(false));
}

// ---------------------------------------------------------------- capacity

/// What the setup wizard ticks by default protects a user who kept the defaults: a disk
/// alarm grows the instance's volume one step, within the wizard's limits.
#[tokio::test]
async fn with_the_wizards_defaults_a_filling_disk_is_grown_within_its_limits() {
    let Some(moto) = moto().await else {
        return;
    };
    let stores = fs_stores();
    let defaults = escher_core::approvals::WizardDefaults::built_in();
    let kept: Vec<Approval> = defaults
        .choices
        .iter()
        .filter(|c| c.enabled)
        .map(|c| c.to_approval("ana", Utc::now() - Duration::minutes(5)))
        .collect();
    assert!(kept.iter().any(|a| a.action == Action::ScaleUpCapacity));
    approve(&stores, kept).await;

    let instance = moto.running_instance().await;
    let volume = ec2::root_volume(&moto.ec2, &instance)
        .await
        .expect("root volume");
    let payload = aws::FiringAlarm {
        name: &unique("root disk 90%"),
        namespace: "CWAgent",
        metric: "disk_used_percent",
        dimensions: json!({"InstanceId": instance, "path": "/", "device": "xvda1", "fstype": "ext4"}),
        threshold: 90.0,
        above: true,
    }
    .payload(MOTO_ACCOUNT, REGION);
    let pipeline = pipeline(&moto, &stores, None).await;
    let result = handle_one(&pipeline, &payload).await;
    assert_eq!(result.outcome, Outcome::Remediated, "{:#?}", result.steps);
    assert!(
        result.summary.contains("from 8 to 10 GiB"),
        "{}",
        result.summary
    );
    let size = moto
        .ec2
        .describe_volumes()
        .volume_ids(&volume)
        .send()
        .await
        .expect("describe volume")
        .volumes()[0]
        .size();
    assert_eq!(size, Some(10));
    let report = result
        .record
        .remediation
        .as_ref()
        .expect("the fix's report");
    assert!(
        report
            .api_calls
            .iter()
            .any(|c| c.operation == "ModifyVolume" && c.mutating),
        "{:?}",
        report.api_calls
    );
}

// ---------------------------------------------------------------- idempotency

fn outcome_counts(records: &[AuditRecord]) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();
    for r in records {
        *counts.entry(r.outcome.as_str()).or_default() += 1;
    }
    counts
}

/// Exactly one record made mutating calls.
fn mutating_records(records: &[AuditRecord]) -> usize {
    records
        .iter()
        .filter(|r| {
            r.remediation
                .as_ref()
                .is_some_and(|rep| rep.api_calls.iter().any(|c| c.mutating))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_event_five_times_in_a_row_and_five_times_at_once_is_fixed_once() {
    let Some(moto) = moto().await else {
        return;
    };
    let stores = s3_stores(&moto).await;
    approve(
        &stores,
        vec![approval(Action::MakeBucketPrivate, Conditions::default())],
    )
    .await;
    let pipeline = Arc::new(pipeline(&moto, &stores, None).await);

    // In a row.
    let bucket = moto.public_bucket("escher-public").await;
    let payload = put_bucket_acl_payload(&bucket);
    for _ in 0..5 {
        handle_one(&pipeline, &payload).await;
    }
    let records = audit_records(&stores.audit).await;
    assert_eq!(
        outcome_counts(&records),
        BTreeMap::from([("duplicate", 4), ("remediated", 1)])
    );
    assert_eq!(mutating_records(&records), 1);
    assert!(moto.public_grants(&bucket).await.is_empty());

    // At once, into a fresh audit store so the counts are this round's.
    let stores = Stores {
        audit: stores.audit.replace("/audit?", "/audit-concurrent?"),
        ..stores
    };
    let pipeline = Arc::new(self::pipeline(&moto, &stores, None).await);
    let bucket = moto.public_bucket("escher-public").await;
    let bytes = put_bucket_acl_payload(&bucket).to_string();
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let pipeline = pipeline.clone();
            let bytes = bytes.clone();
            tokio::spawn(async move { pipeline.handle(bytes.as_bytes()).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("handled");
    }
    let records = audit_records(&stores.audit).await;
    assert_eq!(
        outcome_counts(&records),
        BTreeMap::from([("duplicate", 4), ("remediated", 1)]),
        "{records:#?}"
    );
    assert_eq!(mutating_records(&records), 1);
    assert!(blocks_public_access(&moto, &bucket).await);
}

#[tokio::test]
async fn an_event_for_a_bucket_that_no_longer_exists_is_handled_not_retried() {
    let Some(moto) = moto().await else {
        return;
    };
    let stores = fs_stores_approving(Action::MakeBucketPrivate).await;
    // Made public, then deleted before the alert arrives.
    let bucket = moto.public_bucket("escher-public").await;
    moto.s3
        .delete_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("delete bucket");
    let payload = put_bucket_acl_payload(&bucket);
    let pipeline = pipeline(&moto, &stores, None).await;
    let result = handle_one(&pipeline, &payload).await;
    // Final (as for a deleted volume): audited and notified, never retried into the DLQ.
    assert_eq!(result.outcome, Outcome::Failed, "{:#?}", result.steps);
    assert!(
        result.summary.contains(&bucket) && result.summary.contains("no longer exists"),
        "{}",
        result.summary
    );
    assert!(
        result
            .steps
            .iter()
            .any(|s| s.starts_with("enriched: skipped")),
        "{:#?}",
        result.steps
    );
    let records = audit_records(&stores.audit).await;
    assert_eq!(
        records.iter().map(|r| r.outcome).collect::<Vec<_>>(),
        [Outcome::Failed]
    );
    // A redelivery does not act again: the first one was final.
    let again = handle_one(&pipeline, &payload).await;
    assert_eq!(again.outcome, Outcome::Duplicate, "{:#?}", again.steps);
}

// ---------------------------------------------------------------- outages

#[tokio::test]
async fn unreachable_approvals_store_is_retried_and_nothing_is_done_or_lost() {
    let Some(moto) = moto().await else {
        return;
    };
    let good = fs_stores();
    approve(
        &good,
        vec![approval(Action::MakeBucketPrivate, Conditions::default())],
    )
    .await;
    // A port nothing listens on.
    let closed = http::closed_port();
    let down = Stores {
        state: good.state.clone(),
        audit: good.audit.clone(),
        approvals: format!(
            "s3://escher-down/approvals?region={REGION}&endpoint=http://127.0.0.1:{closed}"
        ),
        _dir: None,
    };
    let bucket = moto.public_bucket("escher-public").await;
    let payload = put_bucket_acl_payload(&bucket);
    let failing = pipeline(&moto, &down, None).await;
    match failing.handle(payload.to_string().as_bytes()).await {
        Err(PipelineError::Retry { reason, .. }) => {
            assert!(reason.contains("approvals"), "{reason}")
        }
        Ok(handled) => panic!("expected a retry, got {:#?}", handled.results),
    }
    assert!(!moto.public_grants(&bucket).await.is_empty(), "untouched");
    assert!(!blocks_public_access(&moto, &bucket).await);

    // The redelivery, once storage is back, is handled in full: no marker was left behind.
    let working = pipeline(&moto, &good, None).await;
    let result = handle_one(&working, &payload).await;
    assert_eq!(result.outcome, Outcome::Remediated, "{:#?}", result.steps);
    assert!(moto.public_grants(&bucket).await.is_empty());
}

// ---------------------------------------------------------------- audit verify

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_catches_a_record_altered_after_the_fact() {
    let Some(moto) = moto().await else {
        return;
    };
    let stores = fs_stores();
    approve(&stores, vec![]).await;
    let pipeline = pipeline(&moto, &stores, None).await;
    for _ in 0..2 {
        let bucket = moto.public_bucket("escher-public").await;
        handle_one(&pipeline, &put_bucket_acl_payload(&bucket)).await;
    }
    let verify = |store: String| {
        tokio::task::spawn_blocking(move || {
            run_cli(&["audit", "verify", "--store", &store, "--json"], &[])
        })
    };
    let clean = verify(stores.audit.clone()).await.expect("cli");
    assert_eq!(clean.status.code(), Some(0), "{}", text(&clean));

    // Someone edits a record to hide what happened.
    let root = stores.audit.trim_start_matches("fs://").to_string();
    let record_path = walk(std::path::Path::new(&root))
        .into_iter()
        .find(|p| {
            p.to_string_lossy().contains("/audit/") && p.extension().is_some_and(|e| e == "json")
        })
        .expect("a record file");
    let mut record: Value =
        serde_json::from_slice(&std::fs::read(&record_path).expect("read")).expect("json");
    record["summary"] = json!("nothing happened");
    std::fs::write(&record_path, record.to_string()).expect("alter");

    let altered = verify(stores.audit.clone()).await.expect("cli");
    assert_eq!(altered.status.code(), Some(1), "{}", text(&altered));
    let report: Value = serde_json::from_slice(&altered.stdout).expect("json report");
    let name = record_path
        .file_name()
        .expect("name")
        .to_string_lossy()
        .to_string();
    assert!(
        report.to_string().contains(&name)
            && report[0]["altered"]
                .as_array()
                .is_some_and(|a| a.len() == 1),
        "{report}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_handle_exits_2_on_an_unrecognized_payload_and_1_when_it_would_be_retried() {
    let Some(moto) = moto().await else {
        return;
    };
    let stores = fs_stores();
    approve(&stores, vec![]).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let env = |approvals: &str| {
        vec![
            ("AWS_ENDPOINT_URL", moto.endpoint.clone()),
            ("AWS_REGION", REGION.to_string()),
            ("ESCHER_STATE_URI", stores.state.clone()),
            ("ESCHER_AUDIT_URI", stores.audit.clone()),
            ("ESCHER_APPROVALS_URI", approvals.to_string()),
        ]
    };
    let unknown = dir.path().join("unknown.json");
    std::fs::write(&unknown, r#"{"hello": "world"}"#).expect("write");
    let file = unknown.display().to_string();
    let env_ok = env(&stores.approvals);
    let output =
        tokio::task::spawn_blocking(move || run_cli(&["events", "handle", &file], &env_ok))
            .await
            .expect("cli");
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("unrecognized"), "{}", text(&output));
    // Audited all the same.
    let records = audit_records(&stores.audit).await;
    assert_eq!(
        records.iter().map(|r| r.outcome).collect::<Vec<_>>(),
        [Outcome::Unrecognized]
    );

    let closed = http::closed_port();
    let bucket = moto.public_bucket("escher-public").await;
    let event = dir.path().join("event.json");
    std::fs::write(&event, put_bucket_acl_payload(&bucket).to_string()).expect("write");
    let file = event.display().to_string();
    let env_down = env(&format!(
        "s3://escher-down/approvals?region={REGION}&endpoint=http://127.0.0.1:{closed}"
    ));
    let output =
        tokio::task::spawn_blocking(move || run_cli(&["events", "handle", &file], &env_down))
            .await
            .expect("cli");
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(text(&output).contains("retried"), "{}", text(&output));
    assert!(!moto.public_grants(&bucket).await.is_empty(), "untouched");
}
