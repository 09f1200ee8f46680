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

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::SdkConfig;
use chrono::Utc;
use escher_aws::{build_metered_pipeline, load_sdk_config};
use escher_core::approvals::{Action, Approval, ApprovalStore, Change, Conditions, Scope};
use escher_core::pipeline::audit::{AuditLog, Outcome};
use escher_runtime::{HandlerConfig, RemoteCallMeter};
use escher_test_support::fault_proxy::{Exchange, Fault, FaultProxy, Request, Rule};
use escher_test_support::fixtures::aws::put_bucket_acl;
use escher_test_support::moto::{self, s3, ACCOUNT};
use escher_test_support::names::unique;
use futures::stream::{self, StreamExt};

const REGION: &str = "eu-west-1";
/// One attempt of an SDK call, for this test: short, so a hung service costs seconds.
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(800);
/// How long a hung request is held: past the attempt timeout.
const HANG: Duration = Duration::from_secs(3);
/// Deliveries while the fault lasts (Lambda tries an asynchronous event three times).
const FAULTY_DELIVERIES: usize = 3;
/// Redeliveries after the fault cleared before the scenario counts the event as lost.
const CLEAR_DELIVERIES: usize = 4;
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

/// The scenarios of a run: every step × every kind with `ESCHER_FAULTS=full`; else each
/// step with one kind, the kinds taken in turn (there are more steps than kinds, so each
/// kind is tried at least once).
fn scenarios() -> Vec<(Step, Fault)> {
    let kinds = Fault::all(HANG);
    if std::env::var("ESCHER_FAULTS").is_ok_and(|v| v == "full") {
        return Step::ALL
            .iter()
            .flat_map(|s| kinds.iter().map(move |k| (*s, *k)))
            .collect();
    }
    Step::ALL
        .iter()
        .enumerate()
        .map(|(i, s)| (*s, kinds[i % kinds.len()]))
        .collect()
}

/// What one scenario found.
#[derive(Default, Debug)]
struct Found {
    lost: bool,
    double_fixes: usize,
    unaudited_fixes: usize,
    unclean: Vec<String>,
    deliveries: usize,
    answers: Vec<String>,
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
    let env: BTreeMap<&str, String> = [
        ("ESCHER_STATE_URI", uri("state")),
        ("ESCHER_AUDIT_URI", uri("audit")),
        ("ESCHER_APPROVALS_URI", uri("approvals")),
        ("ESCHER_CRITICAL_TOPIC", shared.topic.clone()),
        ("ESCHER_HIGH_TOPIC", shared.topic.clone()),
        ("ESCHER_SECRETS_PREFIX", "/escher/faults/".to_string()),
    ]
    .into_iter()
    .collect();
    let config =
        HandlerConfig::from_lookup(|name| env.get(name).cloned()).map_err(|e| e.to_string())?;
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

    let mut found = Found::default();
    proxy.add(step.rule(fault, &bucket, &folder));
    let mut handled = false;
    for _ in 0..FAULTY_DELIVERIES {
        found.deliveries += 1;
        match pipeline.handle(&payload).await {
            Ok(h) => {
                found.answers.push(outcomes(&h));
                handled = true;
                break;
            }
            Err(_) => found.answers.push("retry".into()),
        }
    }
    proxy.clear();
    for _ in 0..CLEAR_DELIVERIES {
        if handled {
            break;
        }
        found.deliveries += 1;
        match pipeline.handle(&payload).await {
            Ok(h) => {
                found.answers.push(outcomes(&h));
                handled = true;
            }
            Err(_) => found.answers.push("retry".into()),
        }
    }

    // The verdict, read straight from moto (not through the proxy).
    let still_public = !s3::public_grants(&client, &bucket).await?.is_empty();
    let audit = escher_core::store::open(&direct_uri("audit")).map_err(|e| e.to_string())?;
    let log = AuditLog::new(audit, direct_uri("audit"));
    let mut remediated = 0;
    for day in log.days().await.map_err(|e| e.to_string())? {
        for record in log.records(day).await.map_err(|e| e.to_string())? {
            let ours = record
                .event
                .as_ref()
                .is_some_and(|e| e.resource.name == bucket);
            if ours && record.outcome == Outcome::Remediated {
                remediated += 1;
            }
        }
        let verified = log.verify_day(day).await.map_err(|e| e.to_string())?;
        if !verified.is_clean() {
            found.unclean.push(format!("{day}: {verified:?}"));
        }
    }
    found.lost = still_public || remediated == 0;
    let exchanges = proxy.log();
    let changes: Vec<&Exchange> = exchanges
        .iter()
        .filter(|x| {
            x.request.method == "PUT"
                && x.request.bucket() == bucket
                && matches!(
                    x.request.s3_subresource(),
                    Some("publicAccessBlock") | Some("acl")
                )
        })
        .collect();
    // A change applied again after an earlier application of it was answered: the handler
    // knew it was made and made it again. (A change whose answer was lost is re-sent by the
    // SDK; that is not a second fix.)
    for (i, change) in changes.iter().enumerate() {
        let sub = change.request.s3_subresource();
        let known_before = changes[..i]
            .iter()
            .any(|c| c.request.s3_subresource() == sub && c.applied() && c.answered.is_some());
        if change.applied() && known_before {
            found.double_fixes += 1;
        }
    }
    // Changes moto applied that no `remediated` record accounts for.
    let applied = changes.iter().any(|c| c.applied());
    if applied && remediated == 0 {
        found.unaudited_fixes += 1;
    }
    Ok(found)
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

    let tried = scenarios();
    let mut results: Vec<(Step, Fault, Result<Found, String>)> = stream::iter(tried.clone())
        .map(|(step, fault)| {
            let shared = Arc::clone(&shared);
            async move { (step, fault, scenario(&shared, step, fault).await) }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;

    // In the pipeline's order, whatever order they finished in.
    results.sort_by_key(|(step, fault, _)| (*step, fault.name()));
    let (mut lost, mut double, mut unaudited, mut unclean, mut broken) = (0, 0, 0, 0, 0);
    let mut rows = Vec::new();
    for (step, fault, result) in &results {
        match result {
            Ok(found) => {
                let kept = !found.lost
                    && found.double_fixes == 0
                    && found.unaudited_fixes == 0
                    && found.unclean.is_empty();
                let row = format!(
                    "{:<48} {:<10} lost {} double {} unaudited {} unclean {}; answers: {}",
                    step.name(),
                    fault.name(),
                    u8::from(found.lost),
                    found.double_fixes,
                    found.unaudited_fixes,
                    found.unclean.len(),
                    found.answers.join(", ")
                );
                lost += usize::from(found.lost);
                double += found.double_fixes;
                unaudited += found.unaudited_fixes;
                unclean += found.unclean.len();
                if kept {
                    rows.push(format!("  ok   {row}"));
                } else {
                    rows.push(format!("  FAIL {row}; {:?}", found.unclean));
                }
            }
            Err(e) => {
                broken += 1;
                rows.push(format!(
                    "  COULD NOT RUN {} × {}: {e}",
                    step.name(),
                    fault.name()
                ));
            }
        }
    }
    let deliveries: usize = results
        .iter()
        .filter_map(|(_, _, r)| r.as_ref().ok())
        .map(|f| f.deliveries)
        .sum();
    let mut table =
        vec![
            format!(
            "fault suite: {} scenarios ({} steps × {} fault kinds tried), {deliveries} deliveries",
            results.len(),
            tried.iter().map(|(s, _)| *s).collect::<std::collections::BTreeSet<_>>().len(),
            tried.iter().map(|(_, f)| f.name()).collect::<std::collections::BTreeSet<_>>().len(),
        ),
            format!("  events lost       {lost}"),
            format!("  double fixes      {double}"),
            format!("  unaudited fixes   {unaudited}"),
            format!("  audit verify      {unclean} unclean"),
        ];
    table.extend(rows);
    println!("{}", table.join("\n"));
    assert_eq!(
        broken,
        0,
        "scenarios that could not run:\n{}",
        table.join("\n")
    );
    assert_eq!(lost, 0, "{}", table.join("\n"));
    assert_eq!(double, 0, "{}", table.join("\n"));
    assert_eq!(unaudited, 0, "{}", table.join("\n"));
    assert_eq!(unclean, 0, "{}", table.join("\n"));
}
