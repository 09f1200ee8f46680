//! The Google Cloud service under load: 1,000 buckets granted to `allUsers`
//! (`ESCHER_LOAD_ALERTS` to change it), each reported by its Cloud Audit Logs entry through
//! Pub/Sub and pushed three times with one message id, in a shuffled order with 16 pushes in
//! flight, through one warm pipeline assembled as `escher-gcp-service` assembles it
//! (`build_service`; the pipeline a push reaches once its token is checked): stores on
//! fake-gcs-server (`make bench` starts it) behind the fault proxy, which refuses a
//! create-only upload of an object that exists as Cloud Storage does and fake-gcs-server
//! does not; the contract server as Google's APIs; every public-bucket fix approved. A push
//! answered "retry" is pushed again, as Pub/Sub would.
//!
//! Checked: exactly one fix per bucket (one `remediated` audit record, two `duplicate`s, and
//! one `setIamPolicy` in the contract server's log), nothing lost (no public member left and
//! public access prevention enforced on every bucket), no fix unaudited, `audit verify`
//! clean. Printed: the throughput, the wall time, our CPU per push and remote calls per
//! push. The contract server and the proxy run on a thread of their own, so the CPU
//! measured on the pipeline's one thread is ours alone (fake-gcs-server is a process of its
//! own). The deliveries and the verdict are `escher_test_support::load`'s, shared with AWS
//! and Azure. A broken promise prints FAIL and exits non-zero.
//!
//! Without fake-gcs-server the bench prints a notice and measures nothing.

#[path = "../tests/oidc/tokens.rs"]
mod tokens;

#[path = "../tests/kit/service.rs"]
mod kit;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use escher_gcp::oidc::OidcPolicy;
use escher_gcp::service::{build_service, ServiceSettings};
use escher_gcp::{Endpoints, LoggedNotices, StaticToken};
use escher_runtime::{HandlerConfig, RemoteCallMeter, ThreadCpu};
use escher_test_support::audit_tally;
use escher_test_support::emulator::{store_endpoint, store_through, sub_store};
use escher_test_support::fake_gcs;
use escher_test_support::fault_proxy::FaultProxy;
use escher_test_support::load::{self, Alert, Figures, Spent};
use escher_test_support::names::unique;
use kit::{public_grant, pushed, GcpApi, PROJECT};
use serde_json::json;
use tokens::{AUDIENCE, INVOKER};

// The allocator escher-gcp-service ships with, so the CPU measured here is the service's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `count` buckets granted to `allUsers` on the contract server, with one push each (its
/// own audit-log entry and message id).
fn public_buckets(api: &GcpApi, count: usize) -> Vec<Alert> {
    let run = unique("load");
    (0..count)
        .map(|i| {
            let bucket = format!("{run}-{i:05}");
            api.bucket(&bucket, true);
            let mut entry = public_grant(&bucket);
            entry["insertId"] = json!(format!("{run}-entry-{i}"));
            let envelope = pushed(entry.to_string().as_bytes(), &format!("{run}-message-{i}"));
            Alert {
                resource: bucket,
                payload: Arc::from(envelope.to_string().into_bytes()),
            }
        })
        .collect()
}

/// Buckets whose policy was set exactly once (`storage.buckets.setIamPolicy` answered 200):
/// none is a fix lost, two a fix made twice, whatever the audit trail says.
fn policies_set_once(api: &GcpApi, alerts: &[Alert]) -> usize {
    let mut writes: BTreeMap<String, usize> = BTreeMap::new();
    for request in api.requests() {
        if request.operation.as_deref() == Some("storage.buckets.setIamPolicy")
            && request.status == 200
        {
            *writes.entry(request.path).or_default() += 1;
        }
    }
    alerts
        .iter()
        .filter(|a| writes.get(&format!("/storage/v1/b/{}/iam", a.resource)) == Some(&1))
        .count()
}

async fn run(
    api: &GcpApi,
    proxy: &FaultProxy,
    stores: &str,
    count: usize,
) -> Result<Figures, String> {
    let folder = sub_store(stores, &unique("load"));
    let direct = |prefix: &str| sub_store(&folder, prefix);
    let uri = |prefix: &str| store_through(&direct(prefix), proxy.url());
    kit::approve_private_buckets(&direct("approvals"), "load bench").await?;
    let alerts = public_buckets(api, count);

    let config = HandlerConfig::with_stores(uri("state"), uri("audit"), uri("approvals"));
    let settings = ServiceSettings {
        project: PROJECT.into(),
        oidc: OidcPolicy {
            audience: AUDIENCE.into(),
            invoker: INVOKER.into(),
        },
        // Never fetched: the pushes go to the pipeline, past the token check.
        jwks_url: format!("{}/oauth2/v3/certs", api.endpoint()),
        zone: chrono_tz::UTC,
        scan_time: escher_scan::nightly::DEFAULT_SCAN_TIME,
        endpoints: Endpoints::all_at(api.endpoint()),
        scan: Default::default(),
    };
    let meter = RemoteCallMeter::new();
    let service = build_service(
        &config,
        &settings,
        reqwest::Client::new(),
        Arc::new(StaticToken::new(GcpApi::TEST_TOKEN)),
        LoggedNotices::to(Arc::new(Mutex::new(Box::new(std::io::sink())))),
        &meter,
    )
    .map_err(|e| e.to_string())?;
    let service = Arc::new(service);

    let (cpu, calls) = (ThreadCpu::now(), meter.snapshot());
    let delivered = load::deliver(load::shuffled(&alerts), |payload| {
        let service = Arc::clone(&service);
        // Every pipeline error is answered 500: Pub/Sub pushes it again.
        async move {
            service
                .pipeline
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

    let tally = audit_tally!(&direct("audit")).await?;
    let open = load::still_open(&alerts, |bucket| {
        let public = api.bucket_still_public(&bucket);
        async move { public }
    })
    .await?;
    let violations = api.violations();
    if !violations.is_empty() {
        return Err(format!(
            "calls outside Google's published discovery documents: {violations:?}"
        ));
    }
    let mut figures = load::judge(
        "stores on fake-gcs-server, contract server as Google's APIs",
        "buckets still public",
        &alerts,
        &delivered,
        &spent,
        &tally,
        open,
    );
    figures.expect(
        "bucket policies set exactly once (the contract server's log)",
        policies_set_once(api, &alerts),
        count,
    );
    Ok(figures)
}

fn main() {
    let Some(stores) = fake_gcs::gcs_store("the Google Cloud load bench") else {
        return;
    };
    load::conclude(
        "Google Cloud load benchmark",
        (|| {
            let gcs =
                store_endpoint(&stores).ok_or_else(|| format!("{stores} names no endpoint"))?;
            let beside = load::beside()?;
            let (api, proxy) = beside.block_on(async {
                let api = GcpApi::start().await;
                FaultProxy::start_in_front_of_fake_gcs(gcs)
                    .await
                    .map(|proxy| (api, proxy))
            })?;
            load::one_thread()?.block_on(run(&api, &proxy, &stores, load::alerts()))
        })(),
    );
}
