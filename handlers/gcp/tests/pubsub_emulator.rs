//! The service behind Google's Pub/Sub emulator: a topic and a push subscription to the
//! service, an alert published, delivered, and handled once, even when its first delivery
//! fails and the emulator delivers it again.
//!
//! The emulator sends pushes without the OIDC token Google attaches. Rather than a switch
//! that turns the service's token check off (which a production setting could then carry),
//! a small loopback proxy stands where Google's push front end stands: it takes the
//! emulator's push and forwards it with a token signed by the test key, so the service runs
//! exactly as deployed.
//!
//! Needs `PUBSUB_EMULATOR_HOST` (`tests/emulators.sh start` sets it when the Google Cloud
//! CLI's emulator is installed). Without it the test skips with a notice, except where it
//! is required (`CI` or `ESCHER_REQUIRE_PUBSUB` set), where it fails.

#[path = "oidc/tokens.rs"]
mod tokens;

#[path = "kit/service.rs"]
mod kit;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine as _;
use kit::*;
use serde_json::{json, Value};
use tokens::*;

fn emulator() -> Option<String> {
    let host = std::env::var("PUBSUB_EMULATOR_HOST")
        .ok()
        .filter(|h| !h.trim().is_empty());
    if host.is_none() {
        let required = ["CI", "ESCHER_REQUIRE_PUBSUB"]
            .iter()
            .any(|k| std::env::var(k).is_ok_and(|v| !v.is_empty() && v != "0"));
        assert!(
            !required,
            "PUBSUB_EMULATOR_HOST is not set but the Pub/Sub emulator test is required here: \
             install google-cloud-cli's pubsub-emulator component and Java, then run \
             tests/emulators.sh start"
        );
        eprintln!(
            "notice: skipping the Pub/Sub emulator test: PUBSUB_EMULATOR_HOST is not set \
             (tests/emulators.sh start sets it when the Google Cloud CLI's emulator is installed)"
        );
    }
    host
}

/// What Google's push front end adds: the token. Records each answer the service gave.
#[derive(Clone)]
struct SigningProxy {
    service: String,
    http: reqwest::Client,
    answers: Arc<Mutex<Vec<(u16, Value)>>>,
}

async fn forward(State(proxy): State<SigningProxy>, body: Bytes) -> StatusCode {
    let response = proxy
        .http
        .post(format!("{}/alerts", proxy.service))
        .header("authorization", bearer(&valid_token()))
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await;
    let (status, answer) = match response {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or(Value::Null))
        }
        Err(e) => (502, json!({"error": e.to_string()})),
    };
    proxy
        .answers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((status, answer));
    StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY)
}

async fn start_proxy(service: &str) -> (String, SigningProxy) {
    let proxy = SigningProxy {
        service: service.to_string(),
        http: reqwest::Client::new(),
        answers: Arc::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/push", listener.local_addr().expect("address"));
    let app = axum::Router::new()
        .route("/push", axum::routing::post(forward))
        .with_state(proxy.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, proxy)
}

/// One REST call to the emulator; its answer must be a success.
async fn emulator_call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Value,
) -> Value {
    let response = http
        .request(method, url)
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url}: the emulator does not answer: {e}"));
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{url}: HTTP {status}: {answer}");
    answer
}

#[tokio::test]
async fn a_published_alert_is_pushed_handled_and_fixed_once_through_a_failed_delivery() {
    let Some(host) = emulator() else { return };
    let api = GcpApi::start().await;
    api.bucket("ledger-exports", true);
    let jwks = Jwks::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let service = start(&api, &jwks, dir.path()).await;
    let (push_endpoint, proxy) = start_proxy(&service.base).await;

    let http = reqwest::Client::new();
    let base = format!("http://{host}/v1/projects/{PROJECT}");
    // Names of this run only: the emulator may serve other runs too.
    let run = format!(
        "{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_millis()
    );
    let topic = format!("escher-alerts-{run}");
    let subscription = format!("escher-alerts-push-{run}");
    emulator_call(
        &http,
        reqwest::Method::PUT,
        &format!("{base}/topics/{topic}"),
        json!({}),
    )
    .await;
    emulator_call(
        &http,
        reqwest::Method::PUT,
        &format!("{base}/subscriptions/{subscription}"),
        json!({
            "topic": format!("projects/{PROJECT}/topics/{topic}"),
            "pushConfig": {"pushEndpoint": push_endpoint},
            "ackDeadlineSeconds": 10
        }),
    )
    .await;

    // Google answers 429 long enough for the first delivery to give up.
    api.throttle(8, 0);
    let data = base64::engine::general_purpose::STANDARD
        .encode(public_grant("ledger-exports").to_string());
    let published = emulator_call(
        &http,
        reqwest::Method::POST,
        &format!("{base}/topics/{topic}:publish"),
        json!({"messages": [{"data": data, "attributes": {"logging.googleapis.com/timestamp": "2026-12-03T09:12:44.117Z"}}]}),
    )
    .await;
    assert!(published["messageIds"][0].is_string(), "{published}");

    // The emulator delivers until it is answered 2xx; bounded so a broken run ends.
    let answers = || {
        proxy
            .answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    };
    for _ in 0..600 {
        if answers().iter().any(|(status, _)| *status == 200) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = answers();
    assert_eq!(
        seen.first().map(|(s, _)| *s),
        Some(503),
        "the first delivery failed and was not acknowledged: {seen:?}"
    );
    let handled: Vec<&Value> = seen
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, a)| a)
        .collect();
    assert!(!handled.is_empty(), "delivered again and handled: {seen:?}");
    assert_eq!(outcomes(handled[0]), ["remediated"], "{seen:?}");
    let (_, policy) = api.bucket_state("ledger-exports").expect("the bucket");
    assert!(!policy.to_string().contains("allUsers"), "{policy}");
    assert_eq!(policy_writes(&api), 1, "fixed once: {seen:?}");
    // Whatever the emulator delivers after the acknowledgement is a duplicate.
    for (_, answer) in seen.iter().filter(|(s, _)| *s == 200).skip(1) {
        assert_eq!(outcomes(answer), ["duplicate"], "{answer}");
    }
    assert!(api.violations().is_empty(), "{:?}", api.violations());

    let _ = http
        .delete(format!("{base}/subscriptions/{subscription}"))
        .send()
        .await;
    let _ = http.delete(format!("{base}/topics/{topic}")).send().await;
}
