//! The AWS alert handler under load, against moto (`make bench` starts it): 1,000 distinct
//! public-bucket alerts (`ESCHER_LOAD_ALERTS` to change it), each delivered three times, in a
//! shuffled order with 16 deliveries in flight, through one warm pipeline with its stores on
//! moto S3 and every bucket's fix approved. A delivery answered "retry" is delivered again,
//! as Lambda would.
//!
//! What a user relies on is checked, not assumed: exactly one fix per alert (the audit trail
//! holds one `remediated` record per bucket and two `duplicate`s), nothing lost (every bucket
//! private afterwards), no fix unaudited, and `audit verify` clean. Printed: the throughput,
//! the wall time, and this process's CPU per delivery (the pipeline, the SDK and the store
//! clients: everything but moto), measured on the one thread that runs them all, as a
//! function does. A broken promise prints FAIL and exits non-zero. The deliveries and the
//! verdict are `escher_test_support::load`'s, shared with the Azure and Google Cloud benches.
//!
//! Without moto the bench prints a notice and measures nothing.

use std::sync::Arc;

use aws_sdk_s3::types::{BucketCannedAcl, Permission, Type};
use chrono::Utc;
use escher_aws::{build_metered_pipeline, load_sdk_config};
use escher_core::approvals::{Action, Approval, ApprovalStore, Change, Conditions, Scope};
use escher_runtime::{HandlerConfig, RemoteCallMeter, ThreadCpu};
use escher_test_support::audit_tally;
use escher_test_support::emulator;
use escher_test_support::fixtures::aws::put_bucket_acl;
use escher_test_support::load::{self, Alert, Figures, Spent, IN_FLIGHT};
use escher_test_support::moto::{self, s3, ACCOUNT};
use escher_test_support::names::unique;
use futures::stream::{self, StreamExt};

// The allocator escher-alert ships with, so the CPU measured here is the function's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const REGION: &str = "eu-west-1";

fn sdk_error<E: std::error::Error>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("{what}: {}", aws_sdk_s3::error::DisplayErrorContext(&e))
}

async fn make_public(client: &aws_sdk_s3::Client, bucket: &str) -> Result<(), String> {
    s3::create_bucket(client, bucket, REGION, Some(BucketCannedAcl::PublicRead)).await
}

async fn is_public(client: &aws_sdk_s3::Client, bucket: &str) -> Result<bool, String> {
    let acl = client
        .get_bucket_acl()
        .bucket(bucket)
        .send()
        .await
        .map_err(sdk_error("GetBucketAcl"))?;
    Ok(acl.grants().iter().any(|g| {
        g.grantee().is_some_and(|who| {
            *who.r#type() == Type::Group
                && who.uri().is_some_and(|u| u.ends_with("/global/AllUsers"))
        }) && g.permission() != Some(&Permission::WriteAcp)
    }))
}

async fn run(endpoint: &str, count: usize) -> Result<Figures, String> {
    let sdk = load_sdk_config(Some(REGION), Some(endpoint)).await;
    let client = s3::client(&sdk);
    let stores = unique("escher-load-stores");
    s3::create_bucket(&client, &stores, REGION, None).await?;
    let uri = |prefix: &str| moto::store_uri(endpoint, REGION, &stores, prefix);
    let approval = Approval {
        id: "apr-load".into(),
        action: Action::MakeBucketPrivate,
        scope: Scope::default(),
        conditions: Conditions::default(),
        approved_by: "load bench".into(),
        approved_at: Utc::now() - chrono::Duration::minutes(5),
        expires_at: None,
        reason: "every public bucket is made private".into(),
        revoked_at: None,
        revoked_by: None,
        revoke_reason: None,
    };
    ApprovalStore::open(&uri("approvals"))
        .map_err(|e| e.to_string())?
        .apply(
            &Change::Init {
                approvals: vec![approval],
            },
            "load bench",
        )
        .await
        .map_err(|e| e.to_string())?;

    let run_id = unique("load");
    let alerts: Vec<Alert> = (0..count)
        .map(|i| {
            let bucket = format!("{run_id}-{i}");
            let payload = put_bucket_acl(&bucket, ACCOUNT, REGION).to_string();
            Alert {
                resource: bucket,
                payload: Arc::from(payload.into_bytes()),
            }
        })
        .collect();
    let made: Vec<Result<(), String>> = stream::iter(&alerts)
        .map(|a| make_public(&client, &a.resource))
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    made.into_iter().collect::<Result<Vec<()>, String>>()?;

    let config = HandlerConfig::with_stores(uri("state"), uri("audit"), uri("approvals"));
    let meter = RemoteCallMeter::new();
    let pipeline =
        Arc::new(build_metered_pipeline(&config, &sdk, &meter).map_err(|e| e.to_string())?);

    let (cpu, calls) = (ThreadCpu::now(), meter.snapshot());
    let delivered = load::deliver(load::shuffled(&alerts), |payload| {
        let pipeline = Arc::clone(&pipeline);
        // Every pipeline error asks for a redelivery.
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
    let open = load::still_open(&alerts, |bucket| {
        let client = client.clone();
        async move { is_public(&client, &bucket).await }
    })
    .await?;
    Ok(load::judge(
        "stores and buckets on moto",
        "buckets still public",
        &alerts,
        &delivered,
        &spent,
        &tally,
        open,
    ))
}

fn main() {
    let Some(endpoint) = moto::endpoint("the load bench") else {
        return;
    };
    let runtime = match load::one_thread() {
        Ok(r) => r,
        Err(e) => {
            emulator::notice(&format!("the load bench: {e}"));
            return;
        }
    };
    load::conclude(
        "AWS load benchmark",
        runtime.block_on(run(&endpoint, load::alerts())),
    );
}
