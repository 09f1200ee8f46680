//! The Google Cloud service's promise under faults: every public-bucket alert Pub/Sub pushes
//! is handled exactly once; when a store or a Google API misbehaves, a push is either
//! answered 200 with the event handled or non-2xx (so Pub/Sub pushes it again) with nothing
//! done twice; once the fault clears, a redelivery completes it; the audit trail verifies
//! clean.
//!
//! Each scenario is one step of the pipeline × one fault kind, on a bucket, a push and store
//! folders of its own. The service is assembled as the binary assembles it
//! (`escher_gcp::service::build_service`) and pushed to on loopback with the invoker's
//! token; its stores sit on fake-gcs-server behind one [`FaultProxy`], the Google APIs (the
//! contract server, `escher_test_support::gcp_api`) behind another. The step's requests get
//! the fault while the alert is pushed up to three times, then the fault clears and it is
//! pushed again until answered 200. Then, from the bucket, the audit trail and the APIs
//! proxy's log: was the event lost (a public member left in the bucket's policy, public
//! access prevention not enforced, or no `remediated` record), was a change made twice (a
//! `setIamPolicy` or bucket `patch` applied after an earlier one was answered; one re-sent
//! because its answer was lost is not), was a change made without a record, does `audit
//! verify` pass.
//!
//! The steps: the claim (the marker's create-only upload, and the marker's later writes),
//! the labels read that enriches the alert, the approvals load, the fix's calls
//! (`getIamPolicy`, `setIamPolicy`, the bucket `patch` enforcing public access prevention),
//! its readings after the change, the audit record and the incident memory. No notify step:
//! a Google Cloud notice is a log line on stdout (`LoggedNotices`), no remote call, and
//! without `ESCHER_SECRETS_PREFIX` the notifier reads no Secret Manager secret (the contract
//! servers do not play `secretmanager.versions.access`).
//!
//! Google's client has no timeout of its own (Cloud Run's request timeout bounds a push);
//! here each request gets a short one, so a hung API costs seconds. fake-gcs-server writes a
//! create-only upload over an existing object; the stores' proxy refuses it as Cloud
//! Storage does ([`FaultProxy::start_in_front_of_fake_gcs`]), since the claim relies on it.
//!
//! The default run takes a subset (every step and every fault kind at least once);
//! `ESCHER_FAULTS=full` runs every step × every kind (`make faults`). Without fake-gcs-server
//! the test prints a notice and passes, unless the emulators are required. The scenarios,
//! deliveries, verdict and table are `escher_test_support::fault_suite`'s, shared with AWS.

#[path = "oidc/tokens.rs"]
mod tokens;

#[path = "kit/service.rs"]
mod kit;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use escher_gcp::oidc::OidcPolicy;
use escher_gcp::service::{build_service, ServiceSettings};
use escher_gcp::{Endpoints, LoggedNotices, StaticToken};
use escher_runtime::{HandlerConfig, RemoteCallMeter};
use escher_test_support::audit_findings;
use escher_test_support::emulator::{store_endpoint, store_through, sub_store};
use escher_test_support::fake_gcs;
use escher_test_support::fault_proxy::{Fault, FaultProxy, Request, Rule};
use escher_test_support::fault_suite::{self, Answer, Found};
use escher_test_support::names::unique;
use kit::{public_grant, pushed, Captured, GcpApi, PROJECT};
use serde_json::Value;
use tokens::{Jwks, AUDIENCE, INVOKER};

/// One request to a Google API, for this test: short, so a hung API costs seconds.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);
const IN_FLIGHT: usize = 4;

/// A step of the pipeline and which requests are its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Claim,
    Enrich,
    Approvals,
    FixReadPolicy,
    FixSetPolicy,
    FixPrevention,
    VerifyPolicy,
    VerifyBucket,
    Audit,
    Memory,
}

/// Which proxy a step's requests pass.
enum Side {
    Stores,
    GoogleApis,
}

impl Step {
    const ALL: [Step; 10] = [
        Step::Claim,
        Step::Enrich,
        Step::Approvals,
        Step::FixReadPolicy,
        Step::FixSetPolicy,
        Step::FixPrevention,
        Step::VerifyPolicy,
        Step::VerifyBucket,
        Step::Audit,
        Step::Memory,
    ];

    /// The rule faulting this step's requests about `bucket`, and the proxy it goes to (the
    /// stores sit in a folder named after the scenario, so no two scenarios' requests are
    /// alike).
    fn rule(self, fault: Fault, bucket: &str, folder: &str) -> (Side, Rule) {
        let (bucket, folder) = (bucket.to_string(), folder.to_string());
        let bucket_call = move |r: &Request, method: &str, under: &str| {
            r.method == method
                && r.gcs_bucket() == Some(bucket.as_str())
                && r.gcs_under_bucket() == Some(under)
        };
        let below = move |under: &str| format!("{folder}/{under}");
        let all = usize::MAX;
        let api = |rule: Rule| (Side::GoogleApis, rule);
        let store = |rule: Rule| (Side::Stores, rule);
        match self {
            Step::Claim => {
                let markers = below("state/markers/");
                store(Rule::new(fault, all, move |r| {
                    r.is_gcs_object_write_under(&markers)
                }))
            }
            // The first reading of the bucket is the labels'; the fix reads it again.
            Step::Enrich => api(Rule::new(fault, all, move |r| bucket_call(r, "GET", ""))),
            Step::Approvals => {
                let approvals = below("approvals/");
                store(Rule::new(fault, all, move |r| {
                    r.is_gcs_object_read_under(&approvals)
                }))
            }
            Step::FixReadPolicy => {
                api(Rule::new(fault, all, move |r| bucket_call(r, "GET", "iam")))
            }
            Step::FixSetPolicy => api(Rule::new(fault, all, move |r| bucket_call(r, "PUT", "iam"))),
            Step::FixPrevention => api(Rule::new(fault, all, move |r| bucket_call(r, "PATCH", ""))),
            // The policy's first reading is the one before the change.
            Step::VerifyPolicy => {
                api(Rule::new(fault, all, move |r| bucket_call(r, "GET", "iam")).after(1))
            }
            // The bucket's: the labels', then the fix's before the change.
            Step::VerifyBucket => {
                api(Rule::new(fault, all, move |r| bucket_call(r, "GET", "")).after(2))
            }
            Step::Audit => {
                let audit = below("audit/");
                store(Rule::new(fault, all, move |r| {
                    r.is_gcs_object_write_under(&audit)
                }))
            }
            Step::Memory => {
                let incidents = below("state/incidents/");
                store(Rule::new(fault, all, move |r| {
                    r.is_gcs_object_write_under(&incidents)
                }))
            }
        }
    }
}

impl fault_suite::Step for Step {
    fn name(self) -> &'static str {
        match self {
            Step::Claim => "claim (markers/ upload)",
            Step::Enrich => "enrich (buckets.get: its labels)",
            Step::Approvals => "approvals load (approvals/ GET)",
            Step::FixReadPolicy => "fix: getIamPolicy",
            Step::FixSetPolicy => "fix: setIamPolicy",
            Step::FixPrevention => "fix: buckets.patch (public access prevention)",
            Step::VerifyPolicy => "verify (getIamPolicy after the change)",
            Step::VerifyBucket => "verify (buckets.get after the change)",
            Step::Audit => "audit (audit/ upload)",
            Step::Memory => "incident memory (incidents/ upload)",
        }
    }
}

/// What every scenario shares: fake-gcs-server's store, the contract server, Google's keys.
struct Shared {
    /// The gcs:// store in fake-gcs-server's bucket; scenarios take folders below it.
    stores: String,
    api: GcpApi,
    jwks: Jwks,
}

fn outcomes(answer: &Value) -> String {
    kit::outcomes(answer).join("+")
}

async fn scenario(shared: &Shared, step: Step, fault: Fault) -> Result<Found, String> {
    let folder = unique("faults");
    let bucket = unique("escher-faults");
    shared.api.bucket(&bucket, true);
    let direct_uri = |prefix: &str| sub_store(&shared.stores, &format!("{folder}/{prefix}"));
    kit::approve_private_buckets(&direct_uri("approvals"), "fault suite").await?;

    let gcs = store_endpoint(&shared.stores)
        .ok_or_else(|| format!("{} names no endpoint", shared.stores))?;
    let stores = FaultProxy::start_in_front_of_fake_gcs(gcs).await?;
    let apis = FaultProxy::start(shared.api.endpoint()).await?;
    let uri = |prefix: &str| store_through(&direct_uri(prefix), stores.url());
    let config = HandlerConfig::with_stores(uri("state"), uri("audit"), uri("approvals"));
    let settings = ServiceSettings {
        project: PROJECT.into(),
        oidc: OidcPolicy {
            audience: AUDIENCE.into(),
            invoker: INVOKER.into(),
        },
        jwks_url: shared.jwks.url.clone(),
        zone: chrono_tz::UTC,
        scan_time: escher_scan::nightly::DEFAULT_SCAN_TIME,
        endpoints: Endpoints::all_at(apis.url()),
        scan: Default::default(),
    };
    let http = reqwest::Client::builder()
        .connect_timeout(ATTEMPT_TIMEOUT)
        .timeout(ATTEMPT_TIMEOUT)
        .build()
        .map_err(|e| format!("the service's HTTP client: {e}"))?;
    let notices = Captured::default();
    let service = build_service(
        &config,
        &settings,
        http,
        Arc::new(StaticToken::new(GcpApi::TEST_TOKEN)),
        LoggedNotices::to(Arc::new(Mutex::new(Box::new(notices.clone())))),
        &RemoteCallMeter::new(),
    )
    .map_err(|e| e.to_string())?;
    let running = kit::serve(Arc::new(service), notices).await;
    let envelope = pushed(
        public_grant(&bucket).to_string().as_bytes(),
        &unique("message"),
    );

    let (side, rule) = step.rule(fault, &bucket, &folder);
    match side {
        Side::Stores => stores.add(rule),
        Side::GoogleApis => apis.add(rule),
    }
    let running = &running;
    let envelope = &envelope;
    let deliveries = fault_suite::deliver(&[&stores, &apis], move || async move {
        match running.push(envelope).await {
            (200, answer) => Answer::Handled(outcomes(&answer)),
            _ => Answer::Retry,
        }
    })
    .await;

    // The verdict, read from the contract server and fake-gcs-server (not through a proxy).
    let unfixed = shared.api.bucket_still_public(&bucket)?;
    let audit = audit_findings!(&direct_uri("audit"), &bucket).await?;
    let changes = fault_suite::changes(&apis.log(), |r: &Request| {
        if r.gcs_bucket() != Some(bucket.as_str()) {
            return None;
        }
        match (r.method.as_str(), r.gcs_under_bucket()) {
            ("PUT", Some("iam")) => Some("setIamPolicy"),
            ("PATCH", Some("")) => Some("buckets.patch"),
            _ => None,
        }
    });
    Ok(Found::judge(deliveries, unfixed, audit, changes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_step_under_every_fault_keeps_exactly_once() {
    let Some(stores) = fake_gcs::gcs_store("the Google Cloud fault suite") else {
        return;
    };
    let shared = Arc::new(Shared {
        stores,
        api: GcpApi::start().await,
        jwks: Jwks::start().await,
    });
    let tried = fault_suite::scenarios(&Step::ALL, &fault_suite::kinds());
    let results = fault_suite::run(&tried, IN_FLIGHT, |step, fault| {
        let shared = Arc::clone(&shared);
        async move { scenario(&shared, step, fault).await }
    })
    .await;
    fault_suite::conclude("Google Cloud fault suite", &tried, &results);
    let violations = shared.api.violations();
    assert!(
        violations.is_empty(),
        "every call the service made under faults was one Google publishes: {violations:?}"
    );
}
