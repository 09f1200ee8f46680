//! The Azure handler under load: 1,000 storage accounts turned public (`ESCHER_LOAD_ALERTS`
//! to change it), each reported by Azure Policy through Event Grid (`PolicyStateChanged`,
//! NonCompliant) and delivered three times, in a shuffled order with 16 deliveries in
//! flight, through one warm pipeline assembled as `escher-azure-functions` assembles it:
//! stores on azurite (`make bench` starts it), the Resource Manager stand-in as Resource
//! Manager and as the managed-identity endpoint, every public-storage fix approved. A
//! delivery answered "retry" is delivered again, as Event Grid would.
//!
//! Checked: exactly one fix per account (one `remediated` audit record, two `duplicate`s,
//! and one change of the account's settings in the stand-in's log), nothing lost (every
//! account refuses anonymous access and its container offers none afterwards), no fix
//! unaudited, `audit verify` clean. Printed: the throughput, the wall
//! time, our CPU per delivery and remote calls per delivery. The stand-in runs on a thread of
//! its own, so the CPU measured on the pipeline's one thread is ours alone (azurite is a
//! process of its own). The deliveries and the verdict are `escher_test_support::load`'s,
//! shared with AWS and Google Cloud. A broken promise prints FAIL and exits non-zero.
//!
//! Without azurite the bench prints a notice and measures nothing.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::SUBSCRIPTION;
use escher_azure::{azure_bindings, managed_identity_on, ArmClient};
use escher_runtime::{build_pipeline, HandlerConfig, RemoteCallMeter, ThreadCpu};
use escher_test_support::audit_tally;
use escher_test_support::azure_arm::{public_storage_policy_event, ArmDouble};
use escher_test_support::azurite;
use escher_test_support::emulator::sub_store;
use escher_test_support::load::{self, Alert, Figures, Spent};
use escher_test_support::names::unique;

// The allocator escher-azure-functions ships with, so the CPU measured here is the handler's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const GROUP: &str = "load-rg";
const CONTAINER: &str = "exports";

/// `count` public storage accounts on the stand-in (a container offering anonymous reads in
/// each), with one alert each; and each account's and container's ids, by account name.
fn public_accounts(
    double: &ArmDouble,
    count: usize,
) -> (Vec<Alert>, BTreeMap<String, (String, String)>) {
    let run = unique("delivery");
    let mut ids = BTreeMap::new();
    let alerts = (0..count)
        .map(|i| {
            // 3 to 24 lowercase letters and digits.
            let name = format!("load{i:06}");
            let account = double.storage_account(SUBSCRIPTION, GROUP, &name, Some(true));
            let container = double.blob_container(&account, CONTAINER, "Blob");
            let event = public_storage_policy_event(SUBSCRIPTION, &account, &format!("{run}-{i}"));
            ids.insert(name.clone(), (account, container));
            Alert {
                resource: name,
                payload: Arc::from(event.to_string().into_bytes()),
            }
        })
        .collect();
    (alerts, ids)
}

async fn run(double: &ArmDouble, stores: &str, count: usize) -> Result<Figures, String> {
    let folder = sub_store(stores, &unique("load"));
    let uri = |prefix: &str| sub_store(&folder, prefix);
    common::approve_private_storage(&uri("approvals"), "load bench").await?;
    let (alerts, ids) = public_accounts(double, count);

    let config = HandlerConfig::with_stores(uri("state"), uri("audit"), uri("approvals"));
    let http = reqwest::Client::new();
    let identity = managed_identity_on(http.clone()).map_err(|e| e.to_string())?;
    let arm = ArmClient::on(http, double.endpoint(), identity.clone());
    let meter = RemoteCallMeter::new();
    let bindings = azure_bindings(arm, identity, None, Some(meter.clone()));
    let pipeline = Arc::new(build_pipeline(&config, bindings, &meter).map_err(|e| e.to_string())?);

    let (cpu, calls) = (ThreadCpu::now(), meter.snapshot());
    let delivered = load::deliver(load::shuffled(&alerts), |payload| {
        let pipeline = Arc::clone(&pipeline);
        // Every pipeline error is answered 500: Event Grid delivers it again.
        async move {
            pipeline
                .handle(&payload)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    })
    .await;
    let spent = Spent {
        cpu: ThreadCpu::now().since(&cpu).total,
        remote_calls: meter.snapshot().since(&calls).calls(),
    };

    let tally = audit_tally!(&uri("audit")).await?;
    let open = load::still_open(&alerts, |name| {
        let found = ids
            .get(&name)
            .map(|(account, container)| double.storage_still_public(account, container));
        async move { found.unwrap_or_else(|| Err(format!("{name} was not seeded"))) }
    })
    .await?;
    let violations = double.violations();
    if !violations.is_empty() {
        return Err(format!(
            "calls outside Microsoft's published API: {violations:?}"
        ));
    }
    let mut figures = load::judge(
        "stores on azurite, Resource Manager stand-in",
        "storage accounts still public",
        &alerts,
        &delivered,
        &spent,
        &tally,
        open,
    );
    figures.expect(
        "accounts changed exactly once (the stand-in's log)",
        changed_once(double, &ids),
        count,
    );
    Ok(figures)
}

/// Accounts whose settings Resource Manager changed exactly once (`StorageAccounts_Update`
/// answered 2xx): none is a fix lost, two a fix made twice, whatever the audit trail says.
fn changed_once(double: &ArmDouble, ids: &BTreeMap<String, (String, String)>) -> usize {
    let mut changes: BTreeMap<String, usize> = BTreeMap::new();
    for request in double.requests() {
        if request.method == "PATCH" && (200..300).contains(&request.status) {
            *changes
                .entry(request.path.to_ascii_lowercase())
                .or_default() += 1;
        }
    }
    ids.values()
        .filter(|(account, _)| changes.get(&account.to_ascii_lowercase()) == Some(&1))
        .count()
}

fn main() {
    let Some(stores) = azurite::blob_store("the Azure load bench") else {
        return;
    };
    load::conclude(
        "Azure load benchmark",
        (|| {
            let beside = load::beside()?;
            let double = beside.block_on(ArmDouble::start());
            // SAFETY: the stand-in's thread reads no environment; nothing else runs yet.
            unsafe { double.serve_identity_to_this_process() };
            load::one_thread()?.block_on(run(&double, &stores, load::alerts()))
        })(),
    );
}
