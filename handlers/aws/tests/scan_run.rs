//! The whole nightly run against moto: AWS checks, the alert pipeline for the pre-approved
//! finding (fixed, verified, audited), the report stored, and a second run showing deltas.
//!
//! Works in a region of its own (eu-north-1) with stores in a temporary folder; moto is
//! shared and never reset, so assertions about tonight's findings are by resource name.
//! `tests/emulators.sh start` writes `ESCHER_TEST_AWS_ENDPOINT`; without it the test prints
//! a notice and returns, unless `ESCHER_REQUIRE_EMULATORS=1`, when it fails.

use chrono::{Duration, Utc};
use escher_aws::{build_pipeline, AwsClients, AwsScan};
use escher_core::approvals::{Action, Approval, ApprovalStore, Change, Conditions, Scope};
use escher_core::pipeline::audit::AuditLog;
use escher_core::scan::ReportSettings;
use escher_runtime::HandlerConfig;
use escher_scan::{ReportStore, ScanRun};
use escher_test_support::moto::{ec2, Moto, ACCOUNT as MOTO_ACCOUNT};
use escher_test_support::names::unique;

const REGION: &str = "eu-north-1";

/// How many grants of `bucket`'s ACL are to AllUsers.
async fn public_grants(moto: &Moto, bucket: &str) -> usize {
    moto.public_grants(bucket)
        .await
        .iter()
        .filter(|uri| uri.contains("AllUsers"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pre_approved_finding_is_fixed_and_audited_and_the_next_report_shows_it_resolved() {
    let Some(moto) = Moto::connect(REGION, "the nightly scan test").await else {
        return;
    };
    let approved = moto.public_bucket("escher-nightly").await;
    let unapproved = moto.public_bucket("escher-nightly").await;
    let group = ec2::security_group(
        &moto.ec2,
        &unique("escher-nightly-sg"),
        &[],
        vec![ec2::tcp(22, "0.0.0.0/0")],
    )
    .await
    .expect("group");

    let dir = tempfile::tempdir().expect("temp dir");
    let uri = |name: &str| format!("fs://{}", dir.path().join(name).display());
    ApprovalStore::open(&uri("approvals"))
        .expect("approvals store")
        .apply(
            &Change::Init {
                approvals: vec![Approval {
                    id: "apr-nightly-bucket".into(),
                    action: Action::MakeBucketPrivate,
                    scope: Scope {
                        resource_types: vec!["s3_bucket".into()],
                        resources: vec![approved.clone()],
                        ..Scope::default()
                    },
                    conditions: Conditions::default(),
                    approved_by: "ana".into(),
                    approved_at: Utc::now() - Duration::minutes(5),
                    expires_at: None,
                    reason: "nightly scan test".into(),
                    revoked_at: None,
                    revoked_by: None,
                    revoke_reason: None,
                }],
            },
            "ana",
        )
        .await
        .expect("approve");
    let config = HandlerConfig::from_lookup(|name| match name {
        "ESCHER_STATE_URI" => Some(uri("state")),
        "ESCHER_AUDIT_URI" => Some(uri("audit")),
        "ESCHER_APPROVALS_URI" => Some(uri("approvals")),
        _ => None,
    })
    .expect("config");
    let pipeline = build_pipeline(&config, &moto.config).expect("pipeline");
    let store = ReportStore::new(
        escher_core::store::open(&uri("state")).expect("state store"),
        uri("state"),
    );
    let scanner = AwsScan::new(AwsClients::new(&moto.config), MOTO_ACCOUNT);
    let run = || ScanRun {
        checks: scanner.checks(),
        regions: vec![REGION.into()],
        settings: ReportSettings::built_in(),
        store: &store,
        pipeline: Some(&pipeline),
        audit: Some(&pipeline.audit),
    };

    let first = run().run().await.expect("first scan");
    let key = |kind: &str, id: &str| format!("{kind}:{id}");
    let approved_key = key("public_bucket", &format!("arn:aws:s3:::{approved}"));
    let unapproved_key = key("public_bucket", &format!("arn:aws:s3:::{unapproved}"));
    let group_key = key(
        "open_admin_port",
        &format!("arn:aws:ec2:{REGION}:{MOTO_ACCOUNT}:security-group/{group}"),
    );
    let keys: Vec<&str> = first
        .report
        .findings
        .iter()
        .map(|f| f.key.as_str())
        .collect();
    for k in [&approved_key, &unapproved_key, &group_key] {
        assert!(keys.contains(&k.as_str()), "{k} in {keys:?}");
    }
    assert_eq!(first.report.handled.len(), 1, "{:?}", first.report.handled);
    let handled = &first.report.handled[0];
    assert_eq!(handled.key, approved_key);
    assert_eq!(handled.outcome, "remediated", "{}", handled.summary);
    assert_eq!(
        public_grants(&moto, &approved).await,
        0,
        "the approved bucket is private"
    );
    assert_eq!(
        public_grants(&moto, &unapproved).await,
        1,
        "the other is untouched"
    );

    let audit = AuditLog::new(
        escher_core::store::open(&uri("audit")).expect("audit"),
        uri("audit"),
    );
    let today = audit
        .records(Utc::now().date_naive())
        .await
        .expect("records");
    let record = today
        .iter()
        .find(|r| {
            r.event
                .as_ref()
                .is_some_and(|e| e.resource.name == approved)
        })
        .expect("the fix is audited");
    assert_eq!(record.outcome.as_str(), "remediated");
    assert_eq!(
        record.event.as_ref().map(|e| e.source.as_str()),
        Some("escher.scan")
    );
    let stored = store.latest().await.expect("latest").expect("a report");
    assert_eq!(stored.handled, first.report.handled);

    let second = run().run().await.expect("second scan");
    let deltas = &second.report.deltas;
    assert_eq!(deltas.previous_report, Some(first.report.report_date));
    assert!(
        deltas.resolved.iter().any(|r| r.key == approved_key),
        "the fixed bucket is resolved: {deltas:?}"
    );
    assert!(deltas.unchanged.contains(&unapproved_key), "{deltas:?}");
    assert!(deltas.unchanged.contains(&group_key), "{deltas:?}");
    assert!(!deltas.new.contains(&unapproved_key));
    assert!(second.report.handled.is_empty(), "nothing else is approved");
    assert_ne!(second.files.json, first.files.json);
}
