//! The Cloud Run service in-process on loopback, against the GCP contract server and local
//! stores, with tokens signed as Google signs them: a public-bucket alert pushed by Pub/Sub
//! is fixed, verified, audited and noticed once, however often it is delivered; a failure
//! that may recover answers non-2xx so Pub/Sub delivers again; only Escher's Scheduler job
//! starts the night's scan, once per night.

#[path = "oidc/tokens.rs"]
mod tokens;

#[path = "kit/service.rs"]
mod kit;

use kit::*;
use serde_json::{json, Value};
use tokens::*;

#[tokio::test]
async fn a_pushed_public_bucket_alert_is_fixed_once_and_noticed() {
    let api = GcpApi::start().await;
    let bucket = api.bucket("crm-exports", true);
    let jwks = Jwks::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let service = start(&api, &jwks, dir.path()).await;

    let envelope = pushed(
        public_grant("crm-exports").to_string().as_bytes(),
        "9410021",
    );
    let (status, answer) = service.push(&envelope).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(outcomes(&answer), ["remediated"], "{answer}");
    let (_, policy) = api.bucket_state("crm-exports").expect("the bucket");
    assert!(
        !policy.to_string().contains("allUsers"),
        "allUsers is out of {bucket}'s policy: {policy}"
    );
    let audit = answer["events"][0]["audit"].as_str().expect("audited");
    let record = files_under(&dir.path().join("audit"));
    assert!(
        record
            .iter()
            .any(|p| p.ends_with(audit) || p.contains(audit)),
        "{audit} in {record:?}"
    );
    let notices = service.notices.lines();
    let event_id = answer["events"][0]["event_id"].as_str().expect("an id");
    assert!(
        notices
            .iter()
            .any(|n| n["escher_notice"]["event_id"] == event_id
                && n["escher_notice"]["resource"]
                    .as_str()
                    .is_some_and(|r| r.contains("crm-exports"))),
        "{notices:?}"
    );

    // Pub/Sub delivers at least once: the same message again changes nothing.
    let (status, again) = service.push(&envelope).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(outcomes(&again), ["duplicate"], "{again}");
    assert_eq!(
        policy_writes(&api),
        1,
        "one fix, however often it is delivered"
    );
    assert!(api.violations().is_empty(), "{:?}", api.violations());
}

#[tokio::test]
async fn an_alert_pushed_without_the_wrapper_is_handled_too() {
    let api = GcpApi::start().await;
    api.bucket("raw-exports", true);
    let jwks = Jwks::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let service = start(&api, &jwks, dir.path()).await;
    let (status, answer) = service
        .post(
            "/alerts",
            Some(&valid_token()),
            public_grant("raw-exports").to_string().as_bytes(),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(outcomes(&answer), ["remediated"], "{answer}");
}

#[tokio::test]
async fn a_failure_that_may_recover_is_delivered_again_and_fixed_once() {
    let api = GcpApi::start().await;
    api.bucket("busy-exports", true);
    let jwks = Jwks::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let service = start(&api, &jwks, dir.path()).await;
    // Google answers 429 long enough for the first delivery to give up.
    api.throttle(8, 0);
    let envelope = pushed(
        public_grant("busy-exports").to_string().as_bytes(),
        "9410099",
    );
    let (status, answer) = service.push(&envelope).await;
    assert!(
        status == 503,
        "a failure that may recover is not acknowledged: {status} {answer}"
    );
    assert_eq!(policy_writes(&api), 0);
    // Pub/Sub delivers it again until it is handled.
    let mut last = Value::Null;
    for _ in 0..4 {
        let (status, answer) = service.push(&envelope).await;
        last = answer;
        if status == 200 {
            break;
        }
    }
    assert_eq!(outcomes(&last), ["remediated"], "{last}");
    let (status, again) = service.push(&envelope).await;
    assert_eq!(
        (status, outcomes(&again)),
        (200, vec!["duplicate".to_string()])
    );
    assert_eq!(policy_writes(&api), 1);
}

#[tokio::test]
async fn requests_without_the_invokers_token_are_refused_on_both_paths() {
    let api = GcpApi::start().await;
    api.bucket("crm-exports", true);
    let jwks = Jwks::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let service = start(&api, &jwks, dir.path()).await;
    let envelope = pushed(public_grant("crm-exports").to_string().as_bytes(), "1");
    let marker = br#"{"escher":"nightly-scan"}"#;
    let intruder = signed(
        &{
            let mut c = google_claims();
            c["email"] = json!("someone@other.iam.gserviceaccount.com");
            c
        },
        KID,
    );
    for path in ["/alerts", "/scan"] {
        let body = if path == "/scan" {
            marker.to_vec()
        } else {
            envelope.to_string().into_bytes()
        };
        let (status, _) = service.post(path, None, &body).await;
        assert_eq!(status, 401, "{path} without a token");
        let (status, _) = service
            .post(path, Some(&signed_by_stranger(&google_claims())), &body)
            .await;
        assert_eq!(status, 401, "{path} with a forged token");
        let (status, answer) = service.post(path, Some(&intruder), &body).await;
        assert_eq!(status, 403, "{path} from another account: {answer}");
    }
    assert_eq!(policy_writes(&api), 0, "nothing was fixed");
    assert!(
        files_under(&dir.path().join("audit")).is_empty(),
        "nothing was handled"
    );
    assert!(!dir.path().join("state/scans").exists(), "no scan started");
}

#[tokio::test]
async fn only_the_scheduler_jobs_call_starts_the_nights_scan_once() {
    let api = GcpApi::start().await;
    api.bucket("forgotten-share", true);
    let jwks = Jwks::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let service = start(&api, &jwks, dir.path()).await;

    // A Pub/Sub message whose data is the marker, or any text, is not a scan.
    for data in [
        &b"nightly-scan"[..],
        br#"{"escher":"nightly-scan"}"#,
        b"Hello Cloud Pub/Sub!",
    ] {
        let (status, answer) = service.push(&pushed(data, "77")).await;
        assert_eq!(status, 200, "acknowledged: {answer}");
        assert_eq!(outcomes(&answer), ["unrecognized"], "{answer}");
    }
    assert!(
        !dir.path().join("state/scans").exists(),
        "no scan started from /alerts"
    );
    assert!(!dir.path().join("state/reports").exists());

    // /scan wants the job's body.
    let (status, answer) = service
        .post(
            "/scan",
            Some(&valid_token()),
            b"{\"escher\":\"scan-everything\"}",
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(!dir.path().join("state/reports").exists());

    let marker = br#"{"escher":"nightly-scan"}"#;
    let (status, first) = service.post("/scan", Some(&valid_token()), marker).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["already_done"], false, "{first}");
    assert!(first["report"].is_object(), "the report is stored: {first}");
    assert!(dir.path().join("state/reports/latest.json").exists());
    assert!(
        first["findings"].as_u64().is_some_and(|n| n >= 1),
        "the public bucket is found: {first}"
    );
    let night = first["night"].clone();
    let listings = |api: &GcpApi| {
        api.requests()
            .iter()
            .filter(|r| r.operation.as_deref() == Some("storage.buckets.list"))
            .count()
    };
    let scanned = listings(&api);
    assert!(scanned >= 1, "the checks ran");

    // Scheduler's retry, or a second call the same night, answers from the stored report.
    let (status, second) = service.post("/scan", Some(&valid_token()), marker).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["already_done"], true, "{second}");
    assert_eq!(second["night"], night);
    assert_eq!(second["report"], first["report"]);
    assert_eq!(
        listings(&api),
        scanned,
        "nothing is scanned twice in a night"
    );
    assert!(api.violations().is_empty(), "{:?}", api.violations());
}

#[tokio::test]
async fn a_service_warmed_at_start_answers_its_first_push_with_what_it_read_then() {
    let api = GcpApi::start().await;
    api.bucket("warm-exports", true);
    let jwks = Jwks::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let (service, notices) = assemble(&api, &jwks, dir.path()).await;
    service.warm().await;
    assert_eq!(jwks.reads(), 1, "Google's keys are read at start");
    // The approvals were loaded at start: with their store gone, the first push still
    // decides on them (within the refresh interval), which it could not if it read them.
    std::fs::remove_dir_all(dir.path().join("approvals")).expect("approvals removed");
    let running = serve(std::sync::Arc::new(service), notices).await;
    let envelope = pushed(
        public_grant("warm-exports").to_string().as_bytes(),
        "9410301",
    );
    let (status, answer) = running.push(&envelope).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(outcomes(&answer), ["remediated"], "{answer}");
    assert_eq!(
        jwks.reads(),
        1,
        "the first push does not read the keys again"
    );
}

#[tokio::test]
async fn a_push_arriving_during_the_warm_up_waits_for_its_reads() {
    let api = GcpApi::start().await;
    api.bucket("early-exports", true);
    let jwks = Jwks::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let (service, notices) = assemble(&api, &jwks, dir.path()).await;
    let service = std::sync::Arc::new(service);
    let running = serve(service.clone(), notices).await;
    let envelope = pushed(
        public_grant("early-exports").to_string().as_bytes(),
        "9410302",
    );
    let (_, (status, answer)) = tokio::join!(service.warm(), running.push(&envelope));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(outcomes(&answer), ["remediated"], "{answer}");
    assert_eq!(jwks.reads(), 1, "one read of Google's keys between the two");
}
