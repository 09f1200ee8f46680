//! The Azure handler under faults. The promise: every alert is handled exactly once; when a
//! store, Resource Manager, Key Vault or Application Insights misbehaves, an Event Grid
//! invocation is either answered 200 with the event handled or 500 (so Event Grid delivers
//! it again) with nothing done twice; once the fault clears, a redelivery completes it; the
//! audit trail verifies clean.
//!
//! Each scenario is one step of the pipeline × one fault kind, on a storage account, an
//! event and store folders of its own. The pipeline is assembled as the Functions custom
//! handler assembles it (`escher_runtime::build_pipeline` with `escher_azure::azure_bindings`,
//! served by `escher_azure::functions::router`) and sent the host's `events` invocations on
//! loopback; its stores sit on azurite behind one [`FaultProxy`], the Resource Manager
//! stand-in (`escher_test_support::azure_arm::ArmDouble`, which also plays Key Vault and
//! Application Insights' ingestion) behind another. The alert is Azure Policy's "storage
//! account public access should be disallowed" turning NonCompliant on an account that
//! allows anonymous blob access and has a public container. The step's requests get the
//! fault while the event is delivered up to three times, then the fault clears and it is
//! delivered again until answered 200. Then, from the stand-in, the audit trail and the
//! Resource Manager proxy's log: was the event lost (the account still allowing anonymous
//! access, the container still public, or no `remediated` record), was a change made twice
//! (a `StorageAccounts_Update` or `BlobContainers_Update` applied after an earlier one was
//! answered; one re-sent because its answer was lost is not), was a change made without a
//! record, does `audit verify` pass.
//!
//! The steps: the claim (the marker's create-only upload, and the marker's later writes),
//! the account read that enriches the alert with its tags, the approvals load, the fix's
//! calls (the account read, the containers listing, the account and container PATCHes), its
//! readings after the change, the audit record, the notice (the Key Vault secret reads for
//! the webhooks, the Application Insights track call) and the incident memory.
//!
//! Not faulted: the managed identity's token endpoint. The identity credential reads its
//! endpoint from the process's environment (`IDENTITY_ENDPOINT`), which concurrent
//! scenarios with a proxy each cannot share, so the pipeline here holds a fixed token the
//! stand-in accepts. Nor is the pipeline warmed before the first event (the binary warms
//! it at start), so the approvals are read by the first delivery, under the fault.
//!
//! The clients get a one-second timeout and short waits between retries, so a hung service
//! costs seconds. The default run takes a subset (every step and every fault kind at least
//! once); `ESCHER_FAULTS=full` runs every step × every kind (`make faults`). Without azurite
//! the test prints a notice and passes, unless the emulators are required. The scenarios,
//! deliveries, verdict and table are `escher_test_support::fault_suite`'s, shared with AWS
//! and Google Cloud.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{approve_private_storage, quick, TestToken, GROUP, SUBSCRIPTION};
use escher_azure::functions::{router, Handler};
use escher_azure::{azure_bindings, ArmClient};
use escher_runtime::{build_pipeline, HandlerConfig, RemoteCallMeter};
use escher_test_support::audit_findings;
use escher_test_support::azure_arm::{public_storage_policy_event, ArmDouble};
use escher_test_support::azurite;
use escher_test_support::emulator::{origin_and_path, store_endpoint, store_through, sub_store};
use escher_test_support::fault_proxy::{Fault, FaultProxy, Request, Rule};
use escher_test_support::fault_suite::{self, Answer, Found};
use escher_test_support::names::unique;
use serde_json::{json, Value};

/// One request to Azure, for this test: short, so a hung service costs seconds.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);
const IN_FLIGHT: usize = 4;
/// The public container seeded in each scenario's account.
const CONTAINER: &str = "invoices";

/// A step of the pipeline and which requests are its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Claim,
    Enrich,
    Approvals,
    FixReadAccount,
    FixListContainers,
    FixUpdateAccount,
    FixUpdateContainer,
    VerifyAccount,
    VerifyContainers,
    Audit,
    NotifySecrets,
    NotifyTrack,
    Memory,
}

/// Which proxy a step's requests pass.
enum Side {
    Stores,
    Azure,
}

impl Step {
    const ALL: [Step; 13] = [
        Step::Claim,
        Step::Enrich,
        Step::Approvals,
        Step::FixReadAccount,
        Step::FixListContainers,
        Step::FixUpdateAccount,
        Step::FixUpdateContainer,
        Step::VerifyAccount,
        Step::VerifyContainers,
        Step::Audit,
        Step::NotifySecrets,
        Step::NotifyTrack,
        Step::Memory,
    ];

    /// The rule faulting this step's requests about `account` (its Resource Manager id), and
    /// the proxy it goes to (the stores sit in a folder named after the scenario, and each
    /// scenario has proxies of its own, so no two scenarios' requests are alike).
    fn rule(self, fault: Fault, account: &str, folder: &str) -> (Side, Rule) {
        let all = usize::MAX;
        let below = |under: &str| format!("{folder}/{under}");
        let arm = |method: &'static str, path: String, skip: usize| {
            (
                Side::Azure,
                Rule::new(fault, all, move |r: &Request| {
                    r.method == method && r.path == path
                })
                .after(skip),
            )
        };
        let store = |rule: Rule| (Side::Stores, rule);
        let containers = format!("{account}/blobServices/default/containers");
        match self {
            Step::Claim => {
                let markers = below("state/markers/");
                store(Rule::new(fault, all, move |r| {
                    r.is_azblob_write_under(&markers)
                }))
            }
            // The first reading of the account is the tags'; the fix reads it again.
            Step::Enrich => arm("GET", account.to_string(), 0),
            Step::Approvals => {
                let approvals = below("approvals/");
                store(Rule::new(fault, all, move |r| {
                    r.is_azblob_read_under(&approvals)
                }))
            }
            Step::FixReadAccount => arm("GET", account.to_string(), 1),
            Step::FixListContainers => arm("GET", containers, 0),
            Step::FixUpdateAccount => arm("PATCH", account.to_string(), 0),
            Step::FixUpdateContainer => arm("PATCH", format!("{containers}/{CONTAINER}"), 0),
            // The account's readings: the tags', then the fix's before the change.
            Step::VerifyAccount => arm("GET", account.to_string(), 2),
            // The listing's first reading is the one before the change.
            Step::VerifyContainers => arm("GET", containers, 1),
            Step::Audit => {
                let audit = below("audit/");
                store(Rule::new(fault, all, move |r| {
                    r.is_azblob_write_under(&audit)
                }))
            }
            Step::NotifySecrets => (
                Side::Azure,
                Rule::new(fault, all, |r| {
                    r.method == "GET" && r.path.starts_with("/secrets/")
                }),
            ),
            Step::NotifyTrack => arm("POST", "/v2/track".to_string(), 0),
            Step::Memory => {
                let incidents = below("state/incidents/");
                store(Rule::new(fault, all, move |r| {
                    r.is_azblob_write_under(&incidents)
                }))
            }
        }
    }
}

impl fault_suite::Step for Step {
    fn name(self) -> &'static str {
        match self {
            Step::Claim => "claim (markers/ upload)",
            Step::Enrich => "enrich (StorageAccounts_GetProperties: tags)",
            Step::Approvals => "approvals load (approvals/ GET)",
            Step::FixReadAccount => "fix: StorageAccounts_GetProperties",
            Step::FixListContainers => "fix: BlobContainers_List",
            Step::FixUpdateAccount => "fix: StorageAccounts_Update",
            Step::FixUpdateContainer => "fix: BlobContainers_Update",
            Step::VerifyAccount => "verify (account read after the change)",
            Step::VerifyContainers => "verify (containers listed after the change)",
            Step::Audit => "audit (audit/ upload)",
            Step::NotifySecrets => "notify (Key Vault secret reads)",
            Step::NotifyTrack => "notify (Application Insights track)",
            Step::Memory => "incident memory (incidents/ upload)",
        }
    }
}

/// What every scenario shares: azurite's store and the Resource Manager stand-in.
struct Shared {
    /// The azblob:// store in azurite's container; scenarios take folders below it.
    stores: String,
    double: ArmDouble,
}

/// The outcomes in the host's answer: each log line is `<event id> <outcome>: …`.
fn outcomes(answer: &Value) -> String {
    answer["Logs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|line| line.split_whitespace().nth(1))
        .map(|outcome| outcome.trim_end_matches(':'))
        .collect::<Vec<_>>()
        .join("+")
}

/// A storage account name of its own (3 to 24 lowercase letters and digits).
fn account_name() -> String {
    let name: String = unique("ef")
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    name.chars().take(24).collect()
}

async fn scenario(shared: &Shared, step: Step, fault: Fault) -> Result<Found, String> {
    let folder = unique("faults");
    let double = &shared.double;
    let name = account_name();
    let account = double.storage_account(SUBSCRIPTION, GROUP, &name, Some(true));
    let container = double.blob_container(&account, CONTAINER, "Container");
    let direct_uri = |prefix: &str| sub_store(&shared.stores, &format!("{folder}/{prefix}"));
    approve_private_storage(&direct_uri("approvals"), "fault suite").await?;

    let azurite = store_endpoint(&shared.stores)
        .ok_or_else(|| format!("{} names no endpoint", shared.stores))?;
    let stores = FaultProxy::start(origin_and_path(azurite).0).await?;
    let azure = FaultProxy::start(double.endpoint()).await?;
    let uri = |prefix: &str| store_through(&direct_uri(prefix), stores.url());
    // As `escher-provision extend` configures the Function App; the stand-in's vault and
    // ingestion endpoint are reached through the proxy like Resource Manager.
    let config = HandlerConfig {
        secrets_prefix: Some(format!("{}/secrets/", azure.url())),
        critical_topic: Some("critical".into()),
        high_topic: Some("high".into()),
        ..HandlerConfig::with_stores(uri("state"), uri("audit"), uri("approvals"))
    };
    let http = reqwest::Client::builder()
        .connect_timeout(ATTEMPT_TIMEOUT)
        .timeout(ATTEMPT_TIMEOUT)
        .build()
        .map_err(|e| format!("the handler's HTTP client: {e}"))?;
    let credential = Arc::new(TestToken);
    let arm = ArmClient::on(http, azure.url(), credential.clone()).with_patience(quick());
    let insights = double
        .app_insights_connection_string()
        .replace(double.endpoint(), azure.url());
    let meter = RemoteCallMeter::new();
    let bindings = azure_bindings(arm, credential, Some(&insights), Some(meter.clone()));
    let pipeline = build_pipeline(&config, bindings, &meter).map_err(|e| e.to_string())?;
    let handler = Arc::new(Handler {
        pipeline,
        nightly: None,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("the handler cannot listen on 127.0.0.1: {e}"))?;
    let base = format!(
        "http://{}",
        listener
            .local_addr()
            .map_err(|e| format!("the handler's address: {e}"))?
    );
    let served = tokio::spawn(async move {
        let _ = axum::serve(listener, router(handler)).await;
    });

    let event = public_storage_policy_event(SUBSCRIPTION, &account, &unique("delivery"));
    let invocation =
        json!({"Data": {"event": event}, "Metadata": {"sys": {"MethodName": "events"}}});
    let host = reqwest::Client::new();
    let (side, rule) = step.rule(fault, &account, &folder);
    match side {
        Side::Stores => stores.add(rule),
        Side::Azure => azure.add(rule),
    }
    let (host, base, invocation) = (&host, &base, &invocation);
    let deliveries = fault_suite::deliver(&[&stores, &azure], move || async move {
        let Ok(response) = host
            .post(format!("{base}/events"))
            .json(invocation)
            .send()
            .await
        else {
            return Answer::Retry;
        };
        if !response.status().is_success() {
            return Answer::Retry;
        }
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        Answer::Handled(outcomes(&answer))
    })
    .await;
    served.abort();
    if let Fault::Hang(held) = fault {
        // A hung request is logged once the proxy lets it go, which a step whose failure
        // does not stop the delivery (the notice) may not have waited for.
        tokio::time::sleep(held + Duration::from_millis(200)).await;
    }
    let faulted = |proxy: &FaultProxy| proxy.log().iter().any(|x| x.fault.is_some());
    if !faulted(&stores) && !faulted(&azure) {
        return Err("no request of this step was made, so nothing was faulted".into());
    }

    // The verdict, read from the stand-in and azurite (not through a proxy).
    let unfixed = double.storage_still_public(&account, &container)?;
    let audit = audit_findings!(&direct_uri("audit"), &name).await?;
    let container_path = format!("{account}/blobServices/default/containers/{CONTAINER}");
    let changes = fault_suite::changes(&azure.log(), |r: &Request| {
        match (r.method.as_str(), r.path.as_str()) {
            ("PATCH", path) if path == account => Some("StorageAccounts_Update"),
            ("PATCH", path) if path == container_path => Some("BlobContainers_Update"),
            _ => None,
        }
    });
    Ok(Found::judge(deliveries, unfixed, audit, changes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_step_under_every_fault_keeps_exactly_once() {
    let Some(stores) = azurite::blob_store("the Azure fault suite") else {
        return;
    };
    let shared = Arc::new(Shared {
        stores,
        double: ArmDouble::start().await,
    });
    let tried = fault_suite::scenarios(&Step::ALL, &fault_suite::kinds());
    let results = fault_suite::run(&tried, IN_FLIGHT, |step, fault| {
        let shared = Arc::clone(&shared);
        async move { scenario(&shared, step, fault).await }
    })
    .await;
    fault_suite::conclude("Azure fault suite", &tried, &results);
    let violations = shared.double.violations();
    assert!(
        violations.is_empty(),
        "every call the handler made under faults was one Azure publishes: {violations:?}"
    );
}
