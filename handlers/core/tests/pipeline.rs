//! The cloud-neutral pipeline with stores in memory and a recording remediation standing in
//! for a cloud's fix (the cloud fixes themselves are tested against emulators in their own
//! crates). What every handler relies on: approved events are fixed once, however often they
//! are delivered; unapproved ones are not touched and say how to approve; transient trouble
//! is retried with nothing half-done; every event leaves one audit record.

use escher_core::fixes::FixRegistry;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use escher_core::approvals::{
    Action, Approval, ApprovalStore, ApprovalsReader, Change, Conditions, RemediationPolicy, Scope,
};
use escher_core::incidents::IncidentMemory;
use escher_core::pipeline::audit::{AuditLog, Outcome};
use escher_core::pipeline::notify::{Notifier, NotifyConfig};
use escher_core::pipeline::{CloudOperations, Pipeline, PipelineError, DEFAULT_CLAIM_LEASE};
use escher_core::remediate::{
    ApiCall, FixDescription, Mode, Remediation, RemediationError, RemediationReport,
    RemediationRequest, RemediationStatus, Verification, VerificationCheck,
};
use escher_core::{Normalizer, Severity, SeverityPolicy, UnifiedEvent};
use escher_test_support::fault_proxy::{Fault, FaultProxy, Request, Rule};
use escher_test_support::names::unique;

const PUBLIC_BUCKET: &str =
    include_str!("../../../tests/fixtures/aws/cloudtrail-eventbridge-putbucketacl-allusers.json");

/// Records every call; fails transiently the first `fail_first` times; the first
/// `change_then_fail` times it makes the change, then fails transiently (its answer lost),
/// after which the bucket is found private.
#[derive(Default)]
struct RecordingFix {
    calls: AtomicUsize,
    modes: Mutex<Vec<Mode>>,
    fail_first: AtomicUsize,
    change_then_fail: AtomicUsize,
    changed: std::sync::atomic::AtomicBool,
}

fn call(operation: &str, target: &str, mutating: bool, error: Option<&str>) -> ApiCall {
    ApiCall {
        service: "s3".into(),
        operation: operation.into(),
        target: target.into(),
        mutating,
        started_at: chrono::Utc::now(),
        duration_ms: 5,
        error: error.map(str::to_string),
    }
}

#[async_trait]
impl Remediation for RecordingFix {
    fn description(&self) -> &'static FixDescription {
        &FixDescription {
            action: Action::MakeBucketPrivate,
            resource_types: &["s3_bucket"],
            permissions: &[],
        }
    }
    async fn remediate(
        &self,
        request: &RemediationRequest<'_>,
    ) -> Result<RemediationReport, RemediationError> {
        let bucket = request.event.resource.name.clone();
        if self.change_then_fail.load(Ordering::SeqCst) > 0 {
            self.change_then_fail.fetch_sub(1, Ordering::SeqCst);
            self.changed.store(true, Ordering::SeqCst);
            return Err(RemediationError::Transient {
                operation: "PutPublicAccessBlock".into(),
                resource: bucket.clone(),
                message: "the connection was reset before the answer".into(),
                api_calls: vec![
                    call("GetPublicAccessBlock", &bucket, false, None),
                    call(
                        "PutPublicAccessBlock",
                        &bucket,
                        true,
                        Some("connection reset"),
                    ),
                ],
            });
        }
        if self.changed.load(Ordering::SeqCst) {
            return Ok(RemediationReport {
                action: request.action,
                resource_id: request.event.resource.id.clone(),
                status: RemediationStatus::AlreadyCompliant,
                summary: format!("{bucket} already blocks public access; nothing changed"),
                steps: vec![],
                api_calls: vec![call("GetPublicAccessBlock", &bucket, false, None)],
                verification: Some(Verification::from_checks(vec![VerificationCheck {
                    name: "block_public_acls".into(),
                    expected: "true".into(),
                    observed: "true".into(),
                    passed: true,
                }])),
                created: vec![],
                next_steps: vec![],
                undo: None,
            });
        }
        if self.fail_first.load(Ordering::SeqCst) > 0 {
            self.fail_first.fetch_sub(1, Ordering::SeqCst);
            return Err(RemediationError::Transient {
                operation: "PutPublicAccessBlock".into(),
                resource: request.event.resource.name.clone(),
                message: "SlowDown".into(),
                api_calls: Vec::new(),
            });
        }
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.modes.lock().expect("lock").push(request.mode);
        // Long enough for concurrent deliveries to overlap.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let applied = request.mode == Mode::Apply;
        Ok(RemediationReport {
            action: request.action,
            resource_id: request.event.resource.id.clone(),
            status: if applied {
                RemediationStatus::Remediated
            } else {
                RemediationStatus::WouldRemediate
            },
            summary: format!("blocked public access on {}", request.event.resource.name),
            steps: vec!["turned on BlockPublicAcls".into()],
            api_calls: vec![],
            verification: applied.then(|| {
                Verification::from_checks(vec![VerificationCheck {
                    name: "block_public_acls".into(),
                    expected: "true".into(),
                    observed: "true".into(),
                    passed: true,
                }])
            }),
            created: vec![],
            next_steps: vec![],
            undo: Some("restore the previous ACL".into()),
        })
    }
    async fn verify(
        &self,
        _request: &RemediationRequest<'_>,
    ) -> Result<Verification, RemediationError> {
        Ok(Verification::from_checks(vec![]))
    }
}

struct TestCloud {
    fixes: FixRegistry,
    tags: BTreeMap<String, String>,
}

#[async_trait]
impl CloudOperations for TestCloud {
    fn fixes(&self) -> &FixRegistry {
        &self.fixes
    }
    async fn resource_tags(
        &self,
        _event: &UnifiedEvent,
    ) -> Result<Option<BTreeMap<String, String>>, RemediationError> {
        Ok(Some(self.tags.clone()))
    }
}

struct Setup {
    pipeline: Arc<Pipeline>,
    fix: Arc<RecordingFix>,
    state: opendal::Operator,
    audit: opendal::Operator,
}

fn approval(id: &str, max_per_day: Option<u32>) -> Approval {
    Approval {
        id: id.into(),
        action: Action::MakeBucketPrivate,
        scope: Scope::default(),
        conditions: Conditions {
            max_resources_per_day: max_per_day,
            ..Conditions::default()
        },
        approved_by: "ana".into(),
        approved_at: chrono::Utc::now() - chrono::Duration::minutes(5),
        expires_at: None,
        reason: "public buckets are never intended".into(),
        revoked_at: None,
        revoked_by: None,
        revoke_reason: None,
    }
}

async fn setup(approvals: Vec<Approval>, mode: Mode, tags: &[(&str, &str)]) -> Setup {
    setup_with_store(approvals_in_memory(approvals).await, mode, tags)
}

async fn approvals_in_memory(approvals: Vec<Approval>) -> ApprovalStore {
    let approvals_op = escher_core::store::open("memory://").expect("memory");
    let store = ApprovalStore::with_operator(approvals_op, "memory://approvals".into());
    store
        .apply(&Change::Init { approvals }, "ana")
        .await
        .expect("init");
    store
}

fn setup_with_store(store: ApprovalStore, mode: Mode, tags: &[(&str, &str)]) -> Setup {
    let state = escher_core::store::open("memory://").expect("memory");
    setup_with_stores(store, state, mode, tags)
}

fn setup_with_stores(
    store: ApprovalStore,
    state: opendal::Operator,
    mode: Mode,
    tags: &[(&str, &str)],
) -> Setup {
    let audit = escher_core::store::open("memory://").expect("memory");
    let fix = Arc::new(RecordingFix::default());
    let cloud = TestCloud {
        fixes: FixRegistry::new().with(fix.clone()).expect("one fix"),
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    let pipeline = Pipeline {
        normalizer: Normalizer::default(),
        severity: SeverityPolicy::built_in(),
        remediations: RemediationPolicy::built_in(),
        approvals: Arc::new(ApprovalsReader::new(store, Duration::from_secs(60))),
        memory: Arc::new(IncidentMemory::new(state.clone())),
        claim_lease: DEFAULT_CLAIM_LEASE,
        redelivery: escher_core::pipeline::Redelivery::PerDelivery,
        state: state.clone(),
        audit: AuditLog::new(audit.clone(), "memory://audit".into()),
        cloud: Arc::new(cloud),
        notifier: Notifier::new(state.clone(), NotifyConfig::default()),
        mode,
    };
    Setup {
        pipeline: Arc::new(pipeline),
        fix,
        state,
        audit,
    }
}

async fn audit_outcomes(audit: &opendal::Operator) -> Vec<Outcome> {
    let log = AuditLog::new(audit.clone(), "memory://audit".into());
    let mut outcomes = Vec::new();
    for day in log.days().await.expect("days") {
        for record in log.records(day).await.expect("records") {
            outcomes.push(record.outcome);
        }
    }
    outcomes.sort_by_key(|o| o.as_str());
    outcomes
}

#[tokio::test]
async fn an_approved_event_is_fixed_verified_audited_and_notified() {
    let s = setup(vec![approval("apr-1", None)], Mode::Apply, &[]).await;
    let handled = s
        .pipeline
        .handle(PUBLIC_BUCKET.as_bytes())
        .await
        .expect("handled");
    let result = &handled.results[0];
    assert_eq!(result.outcome, Outcome::Remediated, "{:#?}", result.steps);
    assert_eq!(s.fix.calls.load(Ordering::SeqCst), 1);
    let record = &result.record;
    assert_eq!(record.sha256, record.content_hash().expect("hash"));
    assert!(record
        .remediation
        .as_ref()
        .and_then(|r| r.verification.as_ref())
        .is_some_and(|v| v.passed));
    assert!(record.decision.as_ref().is_some_and(|d| d.is_approved()));
    assert!(result
        .steps
        .iter()
        .any(|s| s.starts_with("verified: passed")));
    // HIGH goes to the high topic and Slack; neither is configured here, and says so.
    assert!(
        record
            .notifications
            .iter()
            .all(|n| n.detail == "not configured"),
        "{:?}",
        record.notifications
    );
    assert_eq!(audit_outcomes(&s.audit).await, [Outcome::Remediated]);
}

/// An approved action the cloud has no fix for is answered the one way: not supported,
/// nothing changed, audited with the report that says to handle it by hand.
#[tokio::test]
async fn an_approved_action_without_a_fix_is_not_supported_and_audited() {
    let s = setup(vec![approval("apr-1", None)], Mode::Apply, &[]).await;
    let without_fixes = Pipeline {
        normalizer: Normalizer::default(),
        severity: SeverityPolicy::built_in(),
        remediations: RemediationPolicy::built_in(),
        approvals: s.pipeline.approvals.clone(),
        memory: s.pipeline.memory.clone(),
        claim_lease: DEFAULT_CLAIM_LEASE,
        redelivery: escher_core::pipeline::Redelivery::PerDelivery,
        state: s.state.clone(),
        audit: AuditLog::new(s.audit.clone(), "memory://audit".into()),
        cloud: Arc::new(TestCloud {
            fixes: FixRegistry::new(),
            tags: BTreeMap::new(),
        }),
        notifier: Notifier::new(s.state.clone(), NotifyConfig::default()),
        mode: Mode::Apply,
    };
    let handled = without_fixes
        .handle(PUBLIC_BUCKET.as_bytes())
        .await
        .expect("handled");
    let result = &handled.results[0];
    assert_eq!(result.outcome, Outcome::NotSupported, "{:#?}", result.steps);
    assert_eq!(s.fix.calls.load(Ordering::SeqCst), 0);
    let report = result
        .record
        .remediation
        .as_ref()
        .expect("the report is audited");
    assert!(report.api_calls.is_empty());
    assert!(
        report.next_steps.iter().any(|n| n.contains("by hand")),
        "{:?}",
        report.next_steps
    );
    assert_eq!(audit_outcomes(&s.audit).await, [Outcome::NotSupported]);
}

#[tokio::test]
async fn an_unapproved_event_is_left_alone_and_says_how_to_approve() {
    let s = setup(vec![], Mode::Apply, &[]).await;
    let handled = s
        .pipeline
        .handle(PUBLIC_BUCKET.as_bytes())
        .await
        .expect("handled");
    let result = &handled.results[0];
    assert_eq!(result.outcome, Outcome::ApprovalRequired);
    assert_eq!(s.fix.calls.load(Ordering::SeqCst), 0, "nothing changed");
    let event = result.record.event.as_ref().expect("event");
    let notice = escher_core::pipeline::notify::Notification::compose(
        event,
        result.outcome,
        result.record.action,
        result.record.decision.as_ref(),
        None,
    );
    assert!(
        notice
            .next
            .iter()
            .any(|l| l.contains("escher-provision approvals add --action make_bucket_private")),
        "{notice:?}"
    );
}

#[tokio::test]
async fn five_deliveries_one_after_another_fix_once() {
    let s = setup(vec![approval("apr-1", None)], Mode::Apply, &[]).await;
    for _ in 0..5 {
        s.pipeline
            .handle(PUBLIC_BUCKET.as_bytes())
            .await
            .expect("handled");
    }
    assert_eq!(s.fix.calls.load(Ordering::SeqCst), 1);
    let mut expected = vec![Outcome::Duplicate; 4];
    expected.push(Outcome::Remediated);
    expected.sort_by_key(|o| o.as_str());
    assert_eq!(audit_outcomes(&s.audit).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_concurrent_deliveries_fix_once() {
    let s = setup(vec![approval("apr-1", None)], Mode::Apply, &[]).await;
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let pipeline = s.pipeline.clone();
            tokio::spawn(async move { pipeline.handle(PUBLIC_BUCKET.as_bytes()).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("handled");
    }
    assert_eq!(
        s.fix.calls.load(Ordering::SeqCst),
        1,
        "exactly one remediation"
    );
    let outcomes = audit_outcomes(&s.audit).await;
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == Outcome::Duplicate)
            .count(),
        4
    );
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == Outcome::Remediated)
            .count(),
        1
    );
}

#[tokio::test]
async fn a_transient_failure_is_retried_and_the_retry_fixes_it() {
    let s = setup(vec![approval("apr-1", None)], Mode::Apply, &[]).await;
    s.fix.fail_first.store(1, Ordering::SeqCst);
    let error = s
        .pipeline
        .handle(PUBLIC_BUCKET.as_bytes())
        .await
        .expect_err("retry");
    let PipelineError::Retry { reason, .. } = &error;
    assert!(reason.contains("SlowDown"), "{error}");
    // The marker was given back: the redelivery acts instead of being a duplicate.
    let handled = s
        .pipeline
        .handle(PUBLIC_BUCKET.as_bytes())
        .await
        .expect("handled");
    assert_eq!(handled.results[0].outcome, Outcome::Remediated);
    assert_eq!(s.fix.calls.load(Ordering::SeqCst), 1);
}

/// A change made just before a temporary failure (its answer lost) is not lost from the
/// record: the retry finds the bucket private and records the event as remediated by the
/// earlier delivery, with its calls; the deliveries after that are duplicates.
#[tokio::test]
async fn a_change_made_before_a_transient_failure_is_recorded_by_the_retry() {
    let s = setup(vec![approval("apr-1", None)], Mode::Apply, &[]).await;
    s.fix.change_then_fail.store(1, Ordering::SeqCst);
    s.pipeline
        .handle(PUBLIC_BUCKET.as_bytes())
        .await
        .expect_err("retry");
    let handled = s
        .pipeline
        .handle(PUBLIC_BUCKET.as_bytes())
        .await
        .expect("handled");
    assert_eq!(handled.results[0].outcome, Outcome::Remediated);
    let again = s
        .pipeline
        .handle(PUBLIC_BUCKET.as_bytes())
        .await
        .expect("handled");
    assert_eq!(again.results[0].outcome, Outcome::Duplicate);

    let log = AuditLog::new(s.audit.clone(), "memory://audit".into());
    let mut records = Vec::new();
    for day in log.days().await.expect("days") {
        records.extend(log.records(day).await.expect("records"));
    }
    let fixed: Vec<_> = records
        .iter()
        .filter(|r| r.outcome == Outcome::Remediated)
        .collect();
    assert_eq!(fixed.len(), 1, "one record says the bucket was fixed");
    let report = fixed[0].remediation.as_ref().expect("the fix's report");
    assert_eq!(report.status, RemediationStatus::Remediated);
    assert!(
        report
            .api_calls
            .iter()
            .any(|c| c.operation == "PutPublicAccessBlock" && c.mutating),
        "the earlier delivery's change is in the record: {:?}",
        report.api_calls
    );
    assert!(
        report.summary.contains("earlier delivery"),
        "{}",
        report.summary
    );
    assert!(
        fixed[0]
            .notes
            .iter()
            .any(|n| n.contains("PutPublicAccessBlock")),
        "{:?}",
        fixed[0].notes
    );
}

/// A temporary failure before any change gives the event back whole: the retry acts as the
/// first delivery would, and its record holds no earlier calls.
#[tokio::test]
async fn a_transient_failure_before_any_change_leaves_nothing_for_the_retry_to_carry() {
    let s = setup(vec![approval("apr-1", None)], Mode::Apply, &[]).await;
    s.fix.fail_first.store(1, Ordering::SeqCst);
    s.pipeline
        .handle(PUBLIC_BUCKET.as_bytes())
        .await
        .expect_err("retry");
    s.pipeline
        .handle(PUBLIC_BUCKET.as_bytes())
        .await
        .expect("handled");
    let log = AuditLog::new(s.audit.clone(), "memory://audit".into());
    for day in log.days().await.expect("days") {
        for record in log.records(day).await.expect("records") {
            assert!(
                !record.notes.iter().any(|n| n.contains("earlier delivery")),
                "{:?}",
                record.notes
            );
        }
    }
}

#[tokio::test]
async fn a_fix_whose_audit_write_failed_is_audited_by_the_redelivery() {
    let s = setup(vec![approval("apr-1", None)], Mode::Apply, &[]).await;
    // The same handler, its audit store out of reach.
    let unreachable =
        escher_core::store::open("s3://escher/audit?region=us-east-1&endpoint=http://127.0.0.1:9")
            .expect("open");
    let broken = Pipeline {
        normalizer: Normalizer::default(),
        severity: SeverityPolicy::built_in(),
        remediations: RemediationPolicy::built_in(),
        approvals: s.pipeline.approvals.clone(),
        memory: s.pipeline.memory.clone(),
        claim_lease: DEFAULT_CLAIM_LEASE,
        redelivery: escher_core::pipeline::Redelivery::PerDelivery,
        state: s.state.clone(),
        audit: AuditLog::new(unreachable, "s3://escher/audit (unreachable)".into()),
        cloud: s.pipeline.cloud.clone(),
        notifier: s.pipeline.notifier.clone(),
        mode: Mode::Apply,
    };
    let error = broken
        .handle(PUBLIC_BUCKET.as_bytes())
        .await
        .expect_err("retry");
    assert!(error.to_string().contains("audit store"), "{error}");
    assert_eq!(s.fix.calls.load(Ordering::SeqCst), 1, "the fix was made");
    assert!(audit_outcomes(&s.audit).await.is_empty());
    // The redelivery does not fix again, and writes the first delivery's record.
    let handled = s
        .pipeline
        .handle(PUBLIC_BUCKET.as_bytes())
        .await
        .expect("handled");
    assert_eq!(handled.results[0].outcome, Outcome::Duplicate);
    assert_eq!(s.fix.calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        audit_outcomes(&s.audit).await,
        [Outcome::Duplicate, Outcome::Remediated]
    );
    let log = AuditLog::new(s.audit.clone(), "memory://audit".into());
    for day in log.days().await.expect("days") {
        assert!(log.verify_day(day).await.expect("verify").is_clean());
    }
}

#[tokio::test]
async fn unreachable_approvals_mean_retry_and_no_change() {
    let store =
        ApprovalStore::open("s3://escher/approvals?region=us-east-1&endpoint=http://127.0.0.1:9")
            .expect("open");
    let s = setup_with_store(store, Mode::Apply, &[]);
    let error = s
        .pipeline
        .handle(PUBLIC_BUCKET.as_bytes())
        .await
        .expect_err("retry");
    assert!(error.to_string().contains("unavailable"), "{error}");
    assert_eq!(s.fix.calls.load(Ordering::SeqCst), 0);
    assert!(
        audit_outcomes(&s.audit).await.is_empty(),
        "nothing to audit yet: it will be retried"
    );
    let markers = s.state.list("markers/").await.unwrap_or_default();
    assert!(
        markers.iter().all(|e| e.path().ends_with('/')),
        "the marker was released"
    );
}

#[tokio::test]
async fn a_dry_run_describes_the_fix_and_changes_nothing() {
    let s = setup(vec![approval("apr-1", None)], Mode::DryRun, &[]).await;
    let handled = s
        .pipeline
        .handle(PUBLIC_BUCKET.as_bytes())
        .await
        .expect("handled");
    assert_eq!(handled.results[0].outcome, Outcome::WouldRemediate);
    assert_eq!(*s.fix.modes.lock().expect("lock"), [Mode::DryRun]);
    let markers = s.state.list("markers/").await.unwrap_or_default();
    assert!(
        markers.iter().all(|e| e.path().ends_with('/')),
        "a dry run leaves no marker"
    );
    // A real delivery afterwards still acts.
    let real = setup(vec![approval("apr-1", None)], Mode::Apply, &[]).await;
    assert_eq!(
        real.pipeline
            .handle(PUBLIC_BUCKET.as_bytes())
            .await
            .expect("handled")
            .results[0]
            .outcome,
        Outcome::Remediated
    );
}

#[tokio::test]
async fn the_blast_radius_stops_an_approval_for_the_day() {
    let s = setup(vec![approval("apr-1", Some(1))], Mode::Apply, &[]).await;
    let first = s
        .pipeline
        .handle(PUBLIC_BUCKET.as_bytes())
        .await
        .expect("handled");
    assert_eq!(first.results[0].outcome, Outcome::Remediated);
    // Another bucket, same approval: its one resource for today is used up.
    let other = PUBLIC_BUCKET
        .replace("marketing-assets", "other-bucket")
        .replace("e0c1b2a3-", "f0c1b2a3-")
        .replace("5d4c3b2a-1f0e", "6d4c3b2a-1f0e");
    let second = s.pipeline.handle(other.as_bytes()).await.expect("handled");
    assert_ne!(first.results[0].event_id, second.results[0].event_id);
    assert_eq!(
        second.results[0].outcome,
        Outcome::ApprovalRequired,
        "{:#?}",
        second.results[0].steps
    );
    let why = second.results[0]
        .record
        .decision
        .as_ref()
        .expect("decision")
        .explanation()
        .to_string();
    assert!(why.contains("blast radius used up: 1 of 1"), "{why}");
}

#[tokio::test]
async fn tags_read_from_the_resource_raise_the_severity() {
    let s = setup(vec![], Mode::Apply, &[("environment", "production")]).await;
    let handled = s
        .pipeline
        .handle(PUBLIC_BUCKET.as_bytes())
        .await
        .expect("handled");
    let event = handled.results[0].record.event.as_ref().expect("event");
    assert_eq!(
        event.severity,
        Severity::Critical,
        "a public production bucket is critical"
    );
    assert!(
        handled.results[0]
            .steps
            .iter()
            .any(|s| s.contains("severity HIGH → CRITICAL")),
        "{:#?}",
        handled.results[0].steps
    );
}

#[tokio::test]
async fn an_unrecognised_payload_is_audited_and_acknowledged() {
    let s = setup(vec![], Mode::Apply, &[]).await;
    let handled = s
        .pipeline
        .handle(br#"{"hello": "world"}"#)
        .await
        .expect("acknowledged");
    assert!(handled.unrecognized());
    assert_eq!(audit_outcomes(&s.audit).await, [Outcome::Unrecognized]);
}

/// The public-bucket alert as another event on the same bucket (its own ids).
fn public_bucket_again(n: u8) -> String {
    PUBLIC_BUCKET
        .replace("e0c1b2a3-", &format!("e0c1b2{n:02x}-"))
        .replace("5d4c3b2a-1f0e", &format!("5d4c3b{n:02x}-1f0e"))
}

#[tokio::test]
async fn the_third_time_a_bucket_is_made_public_the_notice_and_record_say_so() {
    let s = setup(vec![approval("apr-1", None)], Mode::Apply, &[]).await;
    let mut results = Vec::new();
    for n in 0..3 {
        let handled = s
            .pipeline
            .handle(public_bucket_again(n).as_bytes())
            .await
            .expect("handled");
        results.push(handled.results[0].clone());
    }
    assert!(
        results[0].record.history.is_none(),
        "nothing happened before the first"
    );
    let third = &results[2];
    assert_eq!(third.outcome, Outcome::Remediated);
    let history = third
        .record
        .history
        .as_ref()
        .expect("history in the audit record");
    assert_eq!(history.occurrences, 3);
    assert_eq!(
        history.previous.as_ref().map(|p| p.event_id.as_str()),
        results[1].event_id.as_deref()
    );
    let said = "the 3rd time this bucket was made public in 30 days; last time by the same principal; fixed automatically in ";
    assert!(history.summary.starts_with(said), "{}", history.summary);
    assert!(
        third
            .steps
            .iter()
            .any(|step| step.starts_with(&format!("history: {said}"))),
        "{:#?}",
        third.steps
    );
}

#[tokio::test]
async fn a_dry_run_and_a_duplicate_are_not_incidents() {
    let dry = setup(vec![approval("apr-1", None)], Mode::DryRun, &[]).await;
    dry.pipeline
        .handle(PUBLIC_BUCKET.as_bytes())
        .await
        .expect("handled");
    assert!(dry.pipeline.memory.view().await.expect("view").is_empty());

    let s = setup(vec![approval("apr-1", None)], Mode::Apply, &[]).await;
    for _ in 0..2 {
        s.pipeline
            .handle(PUBLIC_BUCKET.as_bytes())
            .await
            .expect("handled");
    }
    assert_eq!(s.pipeline.memory.view().await.expect("view").len(), 1);
}

#[tokio::test]
async fn the_memory_rebuilt_from_the_audit_trail_matches_the_live_one() {
    let s = setup(vec![approval("apr-1", None)], Mode::Apply, &[]).await;
    for n in 0..4 {
        s.pipeline
            .handle(public_bucket_again(n).as_bytes())
            .await
            .expect("handled");
    }
    // A redelivery is audited as a duplicate and is not a second incident.
    s.pipeline
        .handle(public_bucket_again(0).as_bytes())
        .await
        .expect("handled");
    let live = s
        .pipeline
        .memory
        .view()
        .await
        .expect("view")
        .all()
        .expect("all");
    assert_eq!(live.len(), 4);

    let log = AuditLog::new(s.audit.clone(), "memory://audit".into());
    let elsewhere = IncidentMemory::new(escher_core::store::open("memory://").expect("memory"));
    let rebuilt = elsewhere.rebuild(&log).await.expect("rebuild");
    assert_eq!(rebuilt.incidents, 4);
    let view = elsewhere.view().await.expect("view");
    assert_eq!(view.all().expect("all"), live);

    // In place, the rebuild becomes the snapshot and takes the pending incidents' place.
    let in_place = s.pipeline.memory.rebuild(&log).await.expect("rebuild");
    assert_eq!(in_place.folded, 4);
    let view = s.pipeline.memory.view().await.expect("view");
    assert_eq!(view.pending(), 0);
    assert_eq!(view.all().expect("all"), live);
}

/// The marker a delivery leaves when it claims `PUBLIC_BUCKET`'s event at `at` and stops
/// before finishing (the function timed out or was stopped).
async fn plant_unfinished_claim(s: &Setup, at: chrono::DateTime<chrono::Utc>) {
    let event_id = match escher_core::normalize(PUBLIC_BUCKET.as_bytes()) {
        Ok(escher_core::Normalized::Events(events)) => events[0].event_id.clone(),
        other => panic!("the sample normalizes: {other:?}"),
    };
    let marker = serde_json::json!({"status": "in_progress", "at": at.to_rfc3339()});
    s.state
        .write(&format!("markers/{event_id}.json"), marker.to_string())
        .await
        .expect("plant the marker");
}

async fn audit_notes(audit: &opendal::Operator) -> Vec<(Outcome, Vec<String>)> {
    let log = AuditLog::new(audit.clone(), "memory://audit".into());
    let mut out = Vec::new();
    for day in log.days().await.expect("days") {
        for record in log.records(day).await.expect("records") {
            out.push((record.outcome, record.notes.clone()));
        }
    }
    out
}

/// A delivery that stopped without finishing (its function timed out) does not lose the
/// event: once its claim is older than the lease, the next deliveries take it over, exactly
/// one of them acts, and the record says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_whose_delivery_stopped_unfinished_is_taken_over_once() {
    let s = setup(vec![approval("apr-1", None)], Mode::Apply, &[]).await;
    plant_unfinished_claim(&s, chrono::Utc::now() - chrono::Duration::hours(1)).await;
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let pipeline = s.pipeline.clone();
            tokio::spawn(async move { pipeline.handle(PUBLIC_BUCKET.as_bytes()).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("handled");
    }
    assert_eq!(
        s.fix.calls.load(Ordering::SeqCst),
        1,
        "exactly one takes it over"
    );
    let records = audit_notes(&s.audit).await;
    let fixed: Vec<_> = records
        .iter()
        .filter(|(o, _)| *o == Outcome::Remediated)
        .collect();
    assert_eq!(fixed.len(), 1, "{records:?}");
    assert!(
        fixed[0]
            .1
            .iter()
            .any(|n| n.contains("stopped without finishing")),
        "{:?}",
        fixed[0].1
    );
    assert_eq!(
        records
            .iter()
            .filter(|(o, _)| *o == Outcome::Duplicate)
            .count(),
        4
    );
    // Finished now: a later delivery is a duplicate, not another takeover.
    s.pipeline
        .handle(PUBLIC_BUCKET.as_bytes())
        .await
        .expect("handled");
    assert_eq!(s.fix.calls.load(Ordering::SeqCst), 1);
}

/// On a platform where the first acknowledged delivery ends a message's deliveries (Pub/Sub
/// push, Event Grid), a delivery that finds the event at work elsewhere asks to be delivered
/// again: acknowledged, the event would be lost should the other delivery fail. Once the
/// other one has finished, a redelivery is a duplicate.
#[tokio::test]
async fn where_one_acknowledgement_ends_a_message_an_event_at_work_elsewhere_is_delivered_again() {
    let mut s = setup(vec![approval("apr-1", None)], Mode::Apply, &[]).await;
    Arc::get_mut(&mut s.pipeline)
        .expect("not shared yet")
        .redelivery = escher_core::pipeline::Redelivery::PerMessage;
    let at = chrono::Utc::now() - chrono::Duration::minutes(5);
    plant_unfinished_claim(&s, at).await;
    let error = s
        .pipeline
        .handle(PUBLIC_BUCKET.as_bytes())
        .await
        .expect_err("delivered again");
    let PipelineError::Retry { reason, .. } = &error;
    assert!(reason.contains("another delivery"), "{error}");
    assert_eq!(s.fix.calls.load(Ordering::SeqCst), 0);
    assert!(
        audit_outcomes(&s.audit).await.is_empty(),
        "nothing to audit yet"
    );

    // The other delivery finished: the redelivery is acknowledged as a duplicate.
    let event_id = match escher_core::normalize(PUBLIC_BUCKET.as_bytes()) {
        Ok(escher_core::Normalized::Events(events)) => events[0].event_id.clone(),
        other => panic!("the sample normalizes: {other:?}"),
    };
    let done =
        serde_json::json!({"status": "done", "at": at.to_rfc3339(), "outcome": "remediated"});
    s.state
        .write(&format!("markers/{event_id}.json"), done.to_string())
        .await
        .expect("the other delivery's marker");
    let handled = s
        .pipeline
        .handle(PUBLIC_BUCKET.as_bytes())
        .await
        .expect("handled");
    assert_eq!(handled.results[0].outcome, Outcome::Duplicate);
    assert_eq!(s.fix.calls.load(Ordering::SeqCst), 0);
}

/// A claim within its lease belongs to a delivery still at work: the event is left to it.
#[tokio::test]
async fn an_event_claimed_within_the_lease_is_left_to_its_delivery() {
    let s = setup(vec![approval("apr-1", None)], Mode::Apply, &[]).await;
    plant_unfinished_claim(&s, chrono::Utc::now() - chrono::Duration::minutes(5)).await;
    let handled = s
        .pipeline
        .handle(PUBLIC_BUCKET.as_bytes())
        .await
        .expect("handled");
    assert_eq!(handled.results[0].outcome, Outcome::Duplicate);
    assert_eq!(s.fix.calls.load(Ordering::SeqCst), 0);
}

/// An approved pipeline whose state store is in moto's bucket, its requests sent through a
/// fault proxy; `None` (after a notice) without moto.
async fn pipeline_with_state_behind_a_proxy(what: &str) -> Option<(Setup, FaultProxy)> {
    let uri = escher_test_support::moto::s3_store(what)?;
    let uri = escher_test_support::emulator::sub_store(&uri, &unique("release"));
    let (path, options) = uri.split_once('?').expect("an S3 store URI has options");
    let moto = options
        .split('&')
        .find_map(|o| o.strip_prefix("endpoint="))
        .expect("moto's store names its endpoint");
    let proxy = FaultProxy::start(moto).await.expect("the fault proxy");
    let options = options.replace(
        &format!("endpoint={moto}"),
        &format!("endpoint={}", proxy.url()),
    );
    let state = escher_core::store::open(&format!("{path}?{options}")).expect("the state store");
    let approvals = approvals_in_memory(vec![approval("apr-1", None)]).await;
    Some((setup_with_stores(approvals, state, Mode::Apply, &[]), proxy))
}

fn is_marker(r: &Request) -> bool {
    r.key().contains("/markers/")
}

/// Delivers the alert, which fails (to be retried) with the request `faulted` names faulted
/// by `proxy` on its way; then delivers it again and gives back what that delivery did.
async fn failed_then_redelivered(
    s: &Setup,
    proxy: &FaultProxy,
    faulted: &str,
) -> escher_core::pipeline::EventResult {
    s.pipeline
        .handle(PUBLIC_BUCKET.as_bytes())
        .await
        .expect_err("retry");
    assert!(
        proxy.log().iter().any(|x| x.fault.is_some()),
        "{faulted} was faulted"
    );
    let mut handled = s
        .pipeline
        .handle(PUBLIC_BUCKET.as_bytes())
        .await
        .expect("handled");
    handled.results.remove(0)
}

#[tokio::test]
async fn a_claim_whose_release_meets_a_passing_store_fault_is_still_given_back() {
    let Some((s, proxy)) =
        pipeline_with_state_behind_a_proxy("the release of a claim under a store fault").await
    else {
        return;
    };
    // The fix fails for a passing reason before changing anything, so the delivery removes
    // its claim; that removal's first try has its connection reset.
    s.fix.fail_first.store(1, Ordering::SeqCst);
    proxy.add(Rule::new(Fault::Reset, 1, |r| {
        r.method == "DELETE" && is_marker(r)
    }));
    let result = failed_then_redelivered(&s, &proxy, "the claim's removal").await;
    assert_eq!(result.outcome, Outcome::Remediated, "{:#?}", result.steps);
    assert_eq!(s.fix.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn changes_given_back_under_a_passing_store_fault_reach_the_redelivery() {
    let Some((s, proxy)) = pipeline_with_state_behind_a_proxy(
        "the release of a claim with its changes under a store fault",
    )
    .await
    else {
        return;
    };
    // The fix changes the bucket and then fails, so the delivery gives the event back with
    // the change it attempted (the marker rewritten, after the claim's own write); that
    // rewrite's first try is answered 503.
    s.fix.change_then_fail.store(1, Ordering::SeqCst);
    proxy.add(Rule::new(Fault::Unavailable, 1, |r| r.method == "PUT" && is_marker(r)).after(1));
    let result = failed_then_redelivered(&s, &proxy, "the marker's rewrite").await;
    assert_eq!(result.outcome, Outcome::Remediated, "{:#?}", result.steps);
    let report = result
        .record
        .remediation
        .as_ref()
        .expect("the fix's report");
    assert!(
        report
            .api_calls
            .iter()
            .any(|c| c.operation == "PutPublicAccessBlock" && c.mutating),
        "the earlier delivery's change is in the record: {:?}",
        report.api_calls
    );
}
