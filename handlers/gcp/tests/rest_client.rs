//! The REST client itself against the contract server: bounded retries that honour
//! `Retry-After`, Compute operations waited for, `nextPageToken`, the metadata server's token,
//! and labels read for the pipeline.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{bucket_event, firewall_event, instance_event, server, PROJECT, ZONE};
use escher_core::pipeline::CloudOperations;
use escher_gcp::{
    Endpoints, GcpClient, GcpCloud, GcpOperation, HttpMethod, MetadataServer, Patience, Problem,
    Service, TokenSource,
};
use serde_json::json;

const GET_BUCKET: GcpOperation = GcpOperation {
    id: "storage.buckets.get",
    service: Service::Storage,
    method: HttpMethod::Get,
    permission: "storage.buckets.get",
    mutating: false,
    long_running: false,
};

const PATCH_FIREWALL: GcpOperation = GcpOperation {
    id: "compute.firewalls.patch",
    service: Service::Compute,
    method: HttpMethod::Patch,
    permission: "compute.firewalls.update",
    mutating: true,
    long_running: true,
};

const LIST_TIME_SERIES: GcpOperation = GcpOperation {
    id: "monitoring.projects.timeSeries.list",
    service: Service::Monitoring,
    method: HttpMethod::Get,
    permission: "monitoring.timeSeries.list",
    mutating: false,
    long_running: false,
};

#[tokio::test]
async fn retries_stop_after_the_attempts_allowed_and_say_so() {
    let (api, client) = server().await;
    api.bucket("web-assets", false);
    api.throttle(10, 0);
    let error = client
        .call(&GET_BUCKET, "b/web-assets", &[], None)
        .await
        .expect_err("still throttled");
    assert!(error.is_transient(), "the event is tried again later");
    assert!(
        matches!(
            error.problem,
            Problem::Busy {
                status: 429,
                attempts: 4,
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(api.requests().len(), 4, "bounded by Patience::attempts");
}

#[tokio::test]
async fn retry_after_is_honoured_within_the_longest_wait() {
    let (api, client) = server().await;
    api.bucket("web-assets", false);
    // Retry-After: 1 s, and the client allows waits up to 1 s.
    let client = client.with_patience(Patience {
        max_wait: Duration::from_secs(1),
        ..common::quick()
    });
    api.throttle(1, 1);
    let started = std::time::Instant::now();
    let bucket = client
        .call(&GET_BUCKET, "b/web-assets", &[], None)
        .await
        .expect("answered after the wait");
    assert_eq!(bucket["name"], "web-assets");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the server's Retry-After was waited"
    );
}

#[tokio::test]
async fn a_compute_operation_is_waited_for_until_done() {
    let (api, client) = server().await;
    let rule = api.firewall(
        PROJECT,
        "allow-ssh-anywhere",
        json!({"sourceRanges": ["0.0.0.0/0"], "allowed": [{"IPProtocol": "tcp", "ports": ["22"]}]}),
    );
    api.lro_polls(5);
    let operation = client
        .call(
            &PATCH_FIREWALL,
            &rule,
            &[],
            Some(&json!({"disabled": true})),
        )
        .await
        .expect("done");
    assert_eq!(operation["status"], "DONE");
    assert_eq!(api.firewall_rule(&rule).expect("rule")["disabled"], true);
    let waits = api
        .requests()
        .iter()
        .filter(|r| r.operation.as_deref() == Some("compute.globalOperations.wait"))
        .count();
    assert_eq!(waits, 6);
    assert!(api.violations().is_empty(), "{:?}", api.violations());
}

#[tokio::test]
async fn an_operation_that_outlasts_the_deadline_is_left_for_a_retry() {
    let (api, client) = server().await;
    let rule = api.firewall(PROJECT, "slow", json!({"sourceRanges": ["0.0.0.0/0"]}));
    api.lro_polls(u32::MAX);
    let client = client.with_patience(Patience {
        operation_timeout: Duration::from_millis(200),
        ..common::quick()
    });
    let error = client
        .call(
            &PATCH_FIREWALL,
            &rule,
            &[],
            Some(&json!({"disabled": true})),
        )
        .await
        .expect_err("still running");
    assert!(
        matches!(error.problem, Problem::StillRunning { .. }),
        "{error}"
    );
    assert!(error.is_transient());
}

#[tokio::test]
async fn every_page_is_read() {
    let (api, client) = server().await;
    let vm = api.instance(PROJECT, ZONE, "batch-worker-3", "RUNNING");
    api.cpu(&vm, Some(2.0));
    api.page_size(5);
    let instance = client
        .call(
            &GcpOperation {
                id: "compute.instances.get",
                service: Service::Compute,
                method: HttpMethod::Get,
                permission: "compute.instances.get",
                mutating: false,
                long_running: false,
            },
            &vm,
            &[],
            None,
        )
        .await
        .expect("the VM");
    let filter = format!(
        "metric.type = \"compute.googleapis.com/instance/cpu/utilization\" AND resource.labels.instance_id = \"{}\"",
        instance["id"].as_str().expect("an id")
    );
    let series = client
        .list(
            &LIST_TIME_SERIES,
            &format!("projects/{PROJECT}/timeSeries"),
            &[
                ("filter", &filter),
                ("interval.startTime", "2026-12-03T00:00:00Z"),
                ("interval.endTime", "2026-12-03T01:00:00Z"),
                ("aggregation.alignmentPeriod", "300s"),
                ("aggregation.perSeriesAligner", "ALIGN_MEAN"),
            ],
            "timeSeries",
        )
        .await
        .expect("listed");
    let points: usize = series
        .iter()
        .map(|s| s["points"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(points, 12, "an hour of five-minute points over three pages");
    assert_eq!(series.len(), 3);
    assert!(api.violations().is_empty(), "{:?}", api.violations());
}

#[tokio::test]
async fn the_metadata_server_token_is_fetched_once_and_used() {
    let (api, _) = server().await;
    let http = reqwest::Client::new();
    let tokens = Arc::new(MetadataServer::at(http.clone(), api.endpoint()));
    let first = tokens.token().await.expect("a token");
    assert_eq!(tokens.token().await.expect("a token"), first, "cached");
    let client = GcpClient::on(http, Endpoints::all_at(api.endpoint()), tokens);
    api.bucket("web-assets", false);
    client
        .call(&GET_BUCKET, "b/web-assets", &[], None)
        .await
        .expect("accepted");
    let refused = MetadataServer::at(reqwest::Client::new(), "http://127.0.0.1:9")
        .token()
        .await
        .expect_err("nothing listens there");
    assert!(
        refused.to_string().contains("could not be reached"),
        "{refused}"
    );
}

#[tokio::test]
async fn labels_are_read_as_the_resource_tags() {
    let (api, client) = server().await;
    let cloud = GcpCloud::new(client, None);
    let bucket = api.bucket("web-assets", false);
    let tags = cloud
        .resource_tags(&bucket_event(&bucket))
        .await
        .expect("read")
        .expect("a bucket has labels");
    assert_eq!(tags.get("team").map(String::as_str), Some("payments"));
    let vm = api.instance(PROJECT, ZONE, "batch-worker-3", "RUNNING");
    let tags = cloud
        .resource_tags(&instance_event(&vm))
        .await
        .expect("read")
        .expect("a VM has labels");
    assert_eq!(tags.get("team").map(String::as_str), Some("batch"));
    let gone = cloud
        .resource_tags(&instance_event(&format!(
            "projects/{PROJECT}/zones/{ZONE}/instances/gone"
        )))
        .await
        .expect("read");
    assert_eq!(gone, None, "deleted since the alert: nothing to enrich");
    let rule = api.firewall(PROJECT, "f", json!({}));
    assert_eq!(
        cloud
            .resource_tags(&firewall_event(&rule))
            .await
            .expect("read"),
        None
    );
    assert!(api.violations().is_empty(), "{:?}", api.violations());
}
