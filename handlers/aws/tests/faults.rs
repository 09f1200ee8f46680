//! The alert handler's promise under faults: every alert handled exactly once; when a store
//! or a cloud API misbehaves, a delivery either completes or is answered "retry" with
//! nothing done twice; once the fault clears, redelivery completes it; the audit trail
//! verifies clean.
//!
//! Each scenario is one step of the pipeline × one fault kind, on a bucket and alert of its
//! own: the SDK and the stores go through a [`FaultProxy`] in front of moto, the step's
//! requests get the fault while the alert is delivered up to three times (as Lambda does),
//! then the fault clears and the alert is redelivered until it is handled. Then, from the
//! bucket, the audit trail and the proxy's log: was the event lost (bucket still public, or
//! no `remediated` record), was a fix applied twice (a mutating call moto applied after an
//! earlier one was answered), was a fix made without a record, does `audit verify` pass.
//!
//! The default run takes a subset (every step and every fault kind at least once);
//! `ESCHER_FAULTS=full` runs every step × every kind (`make faults`). Without moto the test
//! prints a notice and passes, unless the emulators are required.
//!
//! The scenarios, the deliveries, the verdict and the table are
//! `escher_test_support::fault_suite`'s, shared with Google Cloud's suite; this file holds
//! what is AWS's: the steps and their requests, moto's set-up, the Lambda alert.

use std::sync::Arc;
use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::SdkConfig;
use chrono::Utc;
use escher_aws::{build_metered_pipeline, load_sdk_config};
use escher_core::approvals::{Action, Approval, ApprovalStore, Change, Conditions, Scope};
use escher_runtime::{HandlerConfig, RemoteCallMeter};
use escher_test_support::audit_findings;
use escher_test_support::fault_proxy::{Fault, FaultProxy, Request, Rule};
use escher_test_support::fault_suite::{self, Answer, Found};
use escher_test_support::fixtures::aws::put_bucket_acl;
use escher_test_support::moto::{self, s3, ACCOUNT};
use escher_test_support::names::unique;

const REGION: &str = "eu-west-1";
/// One attempt of an SDK call, for this test: short, so a hung service costs seconds.
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(800);
const IN_FLIGHT: usize = 4;

/// A step of the pipeline and which requests are its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Claim,
    Enrich,
    Approvals,
    FixBlock,
    FixAcl,
    Verify,
    Audit,
    NotifySecret,
    NotifyTopic,
    Memory,
}

impl Step {
    const ALL: [Step; 10] = [
        Step::Claim,
        Step::Enrich,
        Step::Approvals,
        Step::FixBlock,
        Step::FixAcl,
        Step::Verify,
        Step::Audit,
        Step::NotifySecret,
        Step::NotifyTopic,
        Step::Memory,
    ];

    /// The rule faulting this step's requests about `bucket` (stores sit in a folder named
    /// after the scenario, so no two scenarios' requests are alike).
    fn rule(self, fault: Fault, bucket: &str, folder: &str) -> Rule {
        let (bucket, folder) = (bucket.to_string(), folder.to_string());
        let bucket_call = move |r: &Request, method: &str, sub: &str| {
            r.method == method && r.bucket() == bucket && r.s3_subresource() == Some(sub)
        };
        let store =
            move |r: &Request, under: &str| r.key().starts_with(&format!("{folder}/{under}"));
        let all = usize::MAX;
        match self {
            Step::Claim => Rule::new(fault, all, move |r| {
                r.is_object_put_under("") && store(r, "state/markers/")
            }),
            Step::Enrich => Rule::new(fault, all, move |r| bucket_call(r, "GET", "tagging")),
            Step::Approvals => Rule::new(fault, all, move |r| {
                r.is_object_get_under("") && store(r, "approvals/")
            }),
            Step::FixBlock => Rule::new(fault, all, move |r| {
                bucket_call(r, "PUT", "publicAccessBlock")
            }),
            Step::FixAcl => Rule::new(fault, all, move |r| bucket_call(r, "PUT", "acl")),
            // The first reading is the one before the change.
            Step::Verify => {
                Rule::new(fault, all, move |r| bucket_call(r, "GET", "policyStatus")).after(1)
            }
            Step::Audit => Rule::new(fault, all, move |r| {
                r.is_object_put_under("") && store(r, "audit/")
            }),
            Step::NotifySecret => Rule::new(fault, all, |r| r.operation == "GetParameter"),
            Step::NotifyTopic => Rule::new(fault, all, |r| r.operation == "Publish"),
            Step::Memory => Rule::new(fault, all, move |r| {
                r.is_object_put_under("") && store(r, "state/incidents/")
            }),
        }
    }
}

impl fault_suite::Step for Step {
    fn name(self) -> &'static str {
        match self {
            Step::Claim => "claim (markers/ PUT)",
            Step::Enrich => "enrich (GetBucketTagging)",
            Step::Approvals => "approvals load (approvals/ GET)",
            Step::FixBlock => "fix: PutPublicAccessBlock",
            Step::FixAcl => "fix: PutBucketAcl",
            Step::Verify => "verify (GetBucketPolicyStatus after the change)",
            Step::Audit => "audit (audit/ PUT)",
            Step::NotifySecret => "notify: SSM GetParameter",
            Step::NotifyTopic => "notify: SNS Publish",
            Step::Memory => "incident memory (incidents/ PUT)",
        }
    }
}

/// moto, the stores' bucket and the topic every scenario shares.
struct Shared {
    endpoint: String,
    stores: String,
    topic: String,
    direct: SdkConfig,
}

fn approval() -> Approval {
    Approval {
        id: "apr-faults".into(),
        action: Action::MakeBucketPrivate,
        scope: Scope::default(),
        conditions: Conditions::default(),
        approved_by: "fault suite".into(),
        approved_at: Utc::now() - chrono::Duration::minutes(5),
        expires_at: None,
        reason: "every public bucket is made private".into(),
        revoked_at: None,
        revoked_by: None,
        revoke_reason: None,
    }
}

async fn scenario(shared: &Shared, step: Step, fault: Fault) -> Result<Found, String> {
    let folder = unique("faults");
    let client = s3::client(&shared.direct);
    let bucket = s3::public_bucket(&client, "escher-faults", REGION).await?;
    let direct_uri = |prefix: &str| {
        moto::store_uri(
            &shared.endpoint,
            REGION,
            &shared.stores,
            &format!("{folder}/{prefix}"),
        )
    };
    ApprovalStore::open(&direct_uri("approvals"))
        .map_err(|e| e.to_string())?
        .apply(
            &Change::Init {
                approvals: vec![approval()],
            },
            "fault suite",
        )
        .await
        .map_err(|e| e.to_string())?;

    let proxy = FaultProxy::start(&shared.endpoint).await?;
    let uri = |prefix: &str| {
        moto::store_uri(
            proxy.url(),
            REGION,
            &shared.stores,
            &format!("{folder}/{prefix}"),
        )
    };
    let config = HandlerConfig {
        critical_topic: Some(shared.topic.clone()),
        high_topic: Some(shared.topic.clone()),
        secrets_prefix: Some("/escher/faults/".into()),
        ..HandlerConfig::with_stores(uri("state"), uri("audit"), uri("approvals"))
    };
    let sdk = load_sdk_config(Some(REGION), Some(proxy.url()))
        .await
        .to_builder()
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(ATTEMPT_TIMEOUT)
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .build(),
        )
        .build();
    let pipeline = build_metered_pipeline(&config, &sdk, &RemoteCallMeter::new())
        .map_err(|e| e.to_string())?;
    let payload = put_bucket_acl(&bucket, ACCOUNT, REGION)
        .to_string()
        .into_bytes();

    proxy.add(step.rule(fault, &bucket, &folder));
    let deliveries = fault_suite::deliver(&[&proxy], || async {
        match pipeline.handle(&payload).await {
            Ok(h) => Answer::Handled(outcomes(&h)),
            Err(_) => Answer::Retry,
        }
    })
    .await;

    // The verdict, read straight from moto (not through the proxy).
    let still_public = !s3::public_grants(&client, &bucket).await?.is_empty();
    let audit = audit_findings!(&direct_uri("audit"), &bucket).await?;
    let changes = fault_suite::changes(&proxy.log(), |r: &Request| {
        let change = match r.s3_subresource() {
            Some("publicAccessBlock") => "PutPublicAccessBlock",
            Some("acl") => "PutBucketAcl",
            _ => return None,
        };
        (r.method == "PUT" && r.bucket() == bucket).then_some(change)
    });
    Ok(Found::judge(deliveries, still_public, audit, changes))
}

fn outcomes(handled: &escher_core::pipeline::Handled) -> String {
    handled
        .results
        .iter()
        .map(|r| r.outcome.as_str())
        .collect::<Vec<_>>()
        .join("+")
}

/// The topic the notices go to and the Slack secret the notifier reads (a webhook on a
/// closed port: its failure is recorded, never retried).
async fn notification_setup(sdk: &SdkConfig) -> Result<String, String> {
    let sns = aws_sdk_sns::Client::new(sdk);
    let topic = sns
        .create_topic()
        .name(unique("escher-faults"))
        .send()
        .await
        .map_err(|e| {
            format!(
                "CreateTopic: {}",
                aws_sdk_sns::error::DisplayErrorContext(&e)
            )
        })?
        .topic_arn
        .ok_or("CreateTopic answered no topic ARN")?;
    let ssm = aws_sdk_ssm::Client::new(sdk);
    ssm.put_parameter()
        .name("/escher/faults/slack-webhook-url")
        .value(format!(
            "http://127.0.0.1:{}/slack",
            escher_test_support::http::closed_port()
        ))
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .map_err(|e| {
            format!(
                "PutParameter: {}",
                aws_sdk_ssm::error::DisplayErrorContext(&e)
            )
        })?;
    Ok(topic)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_step_under_every_fault_keeps_exactly_once() {
    let Some(endpoint) = moto::endpoint("the fault suite") else {
        return;
    };
    let direct = load_sdk_config(Some(REGION), Some(&endpoint)).await;
    let stores = unique("escher-faults-stores");
    s3::create_bucket(&s3::client(&direct), &stores, REGION, None)
        .await
        .expect("the stores' bucket on moto");
    let topic = notification_setup(&direct).await.expect("topic and secret");
    let shared = Arc::new(Shared {
        endpoint,
        stores,
        topic,
        direct,
    });

    let tried = fault_suite::scenarios(&Step::ALL, &fault_suite::kinds());
    let results = fault_suite::run(&tried, IN_FLIGHT, |step, fault| {
        let shared = Arc::clone(&shared);
        async move { scenario(&shared, step, fault).await }
    })
    .await;
    fault_suite::conclude("fault suite", &tried, &results);
}
