//! What a new cloud does to join, through the public seams only: one fix (a
//! [`Remediation`] registered in a [`FixRegistry`]) and one check (a [`ScanCheck`]), each
//! defined once below, bound into the pipeline with [`CloudBindings`] and
//! [`build_pipeline`], and run by the nightly scan ([`ScanRun`]), which hands the
//! pre-approved finding to the pipeline: decide, fix, verify, audit, report. No cloud SDK,
//! no emulator: the "cloud" is a map of buckets in memory.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{Duration, Utc};
use escher_core::approvals::{Action, Approval, ApprovalStore, Change, Conditions, Scope};
use escher_core::fixes::FixRegistry;
use escher_core::incidents::Incident;
use escher_core::pipeline::audit::{AuditLog, Outcome};
use escher_core::pipeline::CloudOperations;
use escher_core::remediate::{
    FixDescription, Mode, Remediation, RemediationError, RemediationReport, RemediationRequest,
    RemediationStatus, RequiredPermission, Verification, VerificationCheck,
};
use escher_core::scan::{Finding, FindingDraft, ReportSettings, ScanCheck, ScanContext, ScanError};
use escher_core::{CloudProvider, EventType, Resource, Severity, UnifiedEvent};
use escher_runtime::{build_pipeline, CloudBindings, HandlerConfig, RemoteCallMeter};
use escher_scan::{ReportStore, ScanRun};

/// The new cloud's resource type and its account.
const BUCKET: &str = "dummy_bucket";
const ACCOUNT: &str = "dummy-account";

/// The "cloud": bucket name → public.
type Buckets = Arc<Mutex<BTreeMap<String, bool>>>;

fn public(buckets: &Buckets, name: &str) -> Option<bool> {
    buckets.lock().expect("buckets").get(name).copied()
}

/// The new cloud's one fix: makes a bucket private and checks it afterwards.
struct DummyBucketFix {
    buckets: Buckets,
}

const DUMMY_PERMISSIONS: &[RequiredPermission] = &[RequiredPermission {
    action: "dummy:SetBucketPrivate",
    resource: "dummy:bucket/*",
    why: "make_bucket_private on the dummy cloud",
}];

#[async_trait]
impl Remediation for DummyBucketFix {
    fn description(&self) -> &'static FixDescription {
        &FixDescription {
            action: Action::MakeBucketPrivate,
            resource_types: &[BUCKET],
            permissions: DUMMY_PERMISSIONS,
        }
    }
    async fn remediate(
        &self,
        request: &RemediationRequest<'_>,
    ) -> Result<RemediationReport, RemediationError> {
        let name = request.event.resource.name.clone();
        if public(&self.buckets, &name) == Some(false) {
            return Ok(RemediationReport::new(
                request,
                RemediationStatus::AlreadyCompliant,
                format!("{name} is already private"),
            ));
        }
        if request.mode == Mode::DryRun {
            return Ok(RemediationReport::new(
                request,
                RemediationStatus::WouldRemediate,
                format!("would make {name} private"),
            ));
        }
        self.buckets
            .lock()
            .expect("buckets")
            .insert(name.clone(), false);
        let now_public = public(&self.buckets, &name);
        Ok(RemediationReport::new(
            request,
            RemediationStatus::Remediated,
            format!("{name} is private now"),
        )
        .with_verification(Verification::from_checks(vec![VerificationCheck {
            name: "public".into(),
            expected: "false".into(),
            observed: format!("{now_public:?}"),
            passed: now_public == Some(false),
        }]))
        .with_undo(format!("make {name} public again")))
    }
    async fn verify(
        &self,
        request: &RemediationRequest<'_>,
    ) -> Result<Verification, RemediationError> {
        let now_public = public(&self.buckets, &request.event.resource.name);
        Ok(Verification::from_checks(vec![VerificationCheck {
            name: "public".into(),
            expected: "false".into(),
            observed: format!("{now_public:?}"),
            passed: now_public == Some(false),
        }]))
    }
}

/// The new cloud's one check: every public bucket is a finding its fix can take.
struct DummyPublicBuckets {
    buckets: Buckets,
}

#[async_trait]
impl ScanCheck for DummyPublicBuckets {
    fn id(&self) -> &'static str {
        "dummy_public_bucket"
    }
    fn cloud(&self) -> CloudProvider {
        CloudProvider::Azure
    }
    async fn run(&self, region: &str, scan: &ScanContext) -> Result<Vec<Finding>, ScanError> {
        let buckets = self.buckets.lock().expect("buckets").clone();
        Ok(buckets
            .into_iter()
            .filter(|(_, public)| *public)
            .map(|(name, _)| {
                FindingDraft {
                    check: "dummy_public_bucket",
                    cloud: CloudProvider::Azure,
                    account_id: ACCOUNT.into(),
                    region: region.into(),
                    event_type: EventType::BucketPublic,
                    resource: Resource {
                        kind: BUCKET.into(),
                        id: format!("dummy:bucket/{name}"),
                        name: name.clone(),
                        ..Resource::default()
                    },
                    title: format!("bucket {name} is public"),
                    action: Some(Action::MakeBucketPrivate),
                    manual_command: None,
                    monthly_saving_usd: None,
                    questions: vec![],
                }
                .finish(scan)
            })
            .collect())
    }
}

/// The new cloud's side of the pipeline: its fixes; it reads no tags.
struct DummyCloud {
    fixes: FixRegistry,
}

#[async_trait]
impl CloudOperations for DummyCloud {
    fn fixes(&self) -> &FixRegistry {
        &self.fixes
    }
    async fn resource_tags(
        &self,
        _event: &UnifiedEvent,
    ) -> Result<Option<BTreeMap<String, String>>, RemediationError> {
        Ok(None)
    }
}

#[tokio::test]
async fn a_new_clouds_fix_and_check_run_through_the_scan_and_the_pipeline() {
    let buckets: Buckets = Arc::new(Mutex::new(BTreeMap::from([
        ("approved".to_string(), true),
        ("other".to_string(), true),
        ("private".to_string(), false),
    ])));
    let dir = tempfile::tempdir().expect("temp dir");
    let uri = |name: &str| format!("fs://{}", dir.path().join(name).display());
    ApprovalStore::open(&uri("approvals"))
        .expect("approvals store")
        .apply(
            &Change::Init {
                approvals: vec![Approval {
                    id: "apr-dummy".into(),
                    action: Action::MakeBucketPrivate,
                    scope: Scope {
                        clouds: vec![CloudProvider::Azure],
                        resource_types: vec![BUCKET.into()],
                        resources: vec!["approved".into()],
                        ..Scope::default()
                    },
                    conditions: Conditions::default(),
                    approved_by: "ana".into(),
                    approved_at: Utc::now() - Duration::minutes(5),
                    expires_at: None,
                    reason: "the dummy cloud's public buckets are mistakes".into(),
                    revoked_at: None,
                    revoked_by: None,
                    revoke_reason: None,
                }],
            },
            "ana",
        )
        .await
        .expect("approve");

    let fixes = FixRegistry::new()
        .with(Arc::new(DummyBucketFix {
            buckets: buckets.clone(),
        }))
        .expect("one fix");
    assert_eq!(fixes.required_permissions(), DUMMY_PERMISSIONS);
    let config = HandlerConfig::from_lookup(|name| match name {
        "ESCHER_STATE_URI" => Some(uri("state")),
        "ESCHER_AUDIT_URI" => Some(uri("audit")),
        "ESCHER_APPROVALS_URI" => Some(uri("approvals")),
        _ => None,
    })
    .expect("config");
    let bindings = CloudBindings {
        cloud: Arc::new(DummyCloud { fixes }),
        topics: None,
        secrets: None,
        store_tokens: None,
        redelivery: escher_core::pipeline::Redelivery::PerDelivery,
    };
    let pipeline = build_pipeline(&config, bindings, &RemoteCallMeter::new()).expect("pipeline");
    let store = ReportStore::new(
        escher_core::store::open(&uri("state")).expect("state store"),
        uri("state"),
    );
    // One night's scan of the dummy cloud, handing approved findings to the pipeline.
    let night = || {
        ScanRun {
            checks: vec![Arc::new(DummyPublicBuckets {
                buckets: buckets.clone(),
            })],
            regions: vec!["dummy-region".into()],
            settings: ReportSettings::built_in(),
            store: &store,
            pipeline: Some(&pipeline),
            audit: Some(&pipeline.audit),
        }
        .run()
    };
    // The memory already holds two alerts on one bucket this week: a repeat offender.
    for (n, hours_ago) in [(1, 30), (2, 5)] {
        pipeline
            .memory
            .record(&Incident {
                event_id: format!("azure-earlier-{n}"),
                handled_at: Utc::now() - chrono::Duration::hours(hours_ago),
                cloud: CloudProvider::Azure,
                account_id: "dummy".into(),
                region: "dummy-region".into(),
                resource_type: BUCKET.into(),
                resource_id: "bucket/leaky".into(),
                resource_name: "leaky".into(),
                event_type: EventType::BucketPublic,
                severity: Severity::High,
                principal: Some("dev@example.com".into()),
                action: None,
                outcome: Outcome::ApprovalRequired,
                summary: "make_bucket_private on leaky needs an approval".into(),
                handled_in_ms: Some(12),
                audit_path: format!("audit/earlier/{n}.json"),
            })
            .await
            .expect("record");
    }
    let result = night().await.expect("scan");
    let repeats = result
        .report
        .repeat_offenders
        .as_ref()
        .expect("the night asks the memory");
    let said: Vec<String> = repeats.offenders.iter().map(ToString::to_string).collect();
    assert_eq!(said, [format!("{BUCKET} leaky: 2 incidents (1 principal)")]);
    let markdown = escher_scan::render_markdown(&result.report).expect("markdown");
    assert!(
        markdown.contains(&format!(
            "**Repeat offenders** (last 7 days): {BUCKET} leaky: 2 incidents (1 principal)."
        )),
        "{markdown}"
    );
    let html = escher_scan::render_html(&result.report).expect("html");
    assert!(html.contains("<strong>Repeat offenders</strong>"), "{html}");
    assert_eq!(
        pipeline.memory.view().await.expect("view").pending(),
        0,
        "the night folds the pending incidents into the snapshot"
    );

    // The check found both public buckets; the approved one went through the pipeline.
    let keys: Vec<&str> = result
        .report
        .findings
        .iter()
        .map(|f| f.key.as_str())
        .collect();
    assert_eq!(
        keys.len(),
        2,
        "the two public buckets, not the private one: {keys:?}"
    );
    assert_eq!(
        result.report.handled.len(),
        1,
        "{:?}",
        result.report.handled
    );
    let handled = &result.report.handled[0];
    assert_eq!(handled.key, "dummy_public_bucket:dummy:bucket/approved");
    assert_eq!(handled.outcome, "remediated", "{}", handled.summary);
    assert_eq!(public(&buckets, "approved"), Some(false), "fixed");
    assert_eq!(
        public(&buckets, "other"),
        Some(true),
        "not approved: untouched"
    );

    // Audited with the fix's report, on the new cloud.
    let audit = AuditLog::new(
        escher_core::store::open(&uri("audit")).expect("audit"),
        uri("audit"),
    );
    let today = Utc::now().date_naive();
    let records = audit.records(today).await.expect("records");
    let record = records
        .iter()
        .find(|r| r.outcome == Outcome::Remediated)
        .expect("the fix's record");
    let event = record.event.as_ref().expect("event");
    assert_eq!(event.cloud_provider, CloudProvider::Azure);
    assert_eq!(event.resource.kind, BUCKET);
    let report = record.remediation.as_ref().expect("report");
    assert!(report.verification.as_ref().is_some_and(|v| v.passed));
    assert!(audit.verify_day(today).await.expect("verify").is_clean());

    // A second night: the fixed bucket is no longer a finding, and nothing is fixed twice.
    let again = night().await.expect("second scan");
    assert_eq!(again.report.findings.len(), 1);
    assert!(
        again.report.handled.is_empty(),
        "{:?}",
        again.report.handled
    );
}
