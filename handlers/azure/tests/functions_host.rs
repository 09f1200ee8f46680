//! The `escher-azure-functions` binary driven as the Functions host drives it: started with
//! `FUNCTIONS_CUSTOMHANDLER_PORT` and the managed identity's endpoint, sent the host's
//! invocation shapes (`{"Data": {<binding>: …}, "Metadata": {…}}`), against the Resource
//! Manager stand-in and local stores. A policy alert on a public storage account with an
//! approval in place is fixed once, however often Event Grid delivers it; Event Grid's
//! validation handshake is answered; a store that cannot be reached answers so the platform
//! delivers again.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use common::{approve_private_storage, GROUP, SUBSCRIPTION};
use escher_test_support::azure_arm::{public_storage_policy_event, ArmDouble};
use escher_test_support::http::{closed_port, wait_until_listening};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

struct Handler {
    child: Child,
    base: String,
    http: reqwest::Client,
    /// The handler's log lines so far (its stdout, read as it writes).
    logs: Arc<Mutex<Vec<String>>>,
}

impl Handler {
    /// Starts the binary; returns once it listens (the host allows 60 s).
    async fn start(double: &ArmDouble, stores: &Path, approvals_uri: &str) -> Handler {
        Handler::start_in(double, stores, approvals_uri, "UTC").await
    }

    /// As [`Handler::start`], scanning the stand-in's subscription at night in `zone`.
    async fn start_in(
        double: &ArmDouble,
        stores: &Path,
        approvals_uri: &str,
        zone: &str,
    ) -> Handler {
        let port = closed_port();
        let uri = |name: &str| format!("fs://{}", stores.join(name).display());
        let mut child = Command::new(env!("CARGO_BIN_EXE_escher-azure-functions"))
            .env_clear()
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
            .env("IDENTITY_ENDPOINT", double.identity_endpoint())
            .env("IDENTITY_HEADER", double.identity_header())
            .env("ESCHER_ARM_ENDPOINT", double.endpoint())
            .env("ESCHER_STATE_URI", uri("state"))
            .env("ESCHER_AUDIT_URI", uri("audit"))
            .env("ESCHER_APPROVALS_URI", approvals_uri)
            .env("ESCHER_SECRETS_PREFIX", double.vault_prefix())
            .env("ESCHER_CRITICAL_TOPIC", "critical")
            .env("ESCHER_HIGH_TOPIC", "high")
            .env(
                "APPLICATIONINSIGHTS_CONNECTION_STRING",
                double.app_insights_connection_string(),
            )
            .env("ESCHER_AZURE_SUBSCRIPTION", SUBSCRIPTION)
            .env("ESCHER_TIME_ZONE", zone)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("the handler binary starts");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let mut stdout = child.stdout.take().map(|s| BufReader::new(s).lines());
        tokio::spawn({
            let logs = logs.clone();
            async move {
                while let Some(Ok(Some(line))) = match stdout.as_mut() {
                    Some(lines) => Some(lines.next_line().await),
                    None => None,
                } {
                    logs.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                }
            }
        });
        if let Err(e) = wait_until_listening(port, Duration::from_secs(6)).await {
            panic!("the handler: {e}");
        }
        Handler {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            logs,
        }
    }

    /// Waits (at most 10 s) for a log line containing `text`.
    async fn logged(&self, text: &str) -> String {
        for _ in 0..500 {
            let logs = self.logs.lock().unwrap_or_else(|e| e.into_inner()).clone();
            if let Some(line) = logs.into_iter().find(|l| l.contains(text)) {
                return line;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the handler never logged {text:?}");
    }

    /// One invocation of `function`, as the host sends it: (status, the host's answer).
    async fn invoke(&self, function: &str, data: Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/{function}", self.base))
            .json(&json!({"Data": data, "Metadata": {"sys": {"MethodName": function}}}))
            .send()
            .await
            .expect("the handler answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

fn policy_event(account: &str, delivery: &str) -> Value {
    public_storage_policy_event(SUBSCRIPTION, account, delivery)
}

#[tokio::test]
async fn a_public_storage_alert_is_fixed_once_and_notified() {
    let double = ArmDouble::start().await;
    let account = double.storage_account(SUBSCRIPTION, GROUP, "paymentsexports", Some(true));
    double.blob_container(&account, "invoices", "Container");
    let dir = tempfile::tempdir().expect("temp dir");
    let approvals = format!("fs://{}", dir.path().join("approvals").display());
    approve_private_storage(&approvals, "ana")
        .await
        .expect("approved");
    let handler = Handler::start(&double, dir.path(), &approvals).await;

    // Event Grid delivers the same event twice (its delivery is at least once).
    let event = policy_event(&account, "7f3c1a2b-delivery");
    let (status, answer) = handler.invoke("events", json!({"event": event})).await;
    assert_eq!(status, 200, "{answer}");
    let logs = answer["Logs"].to_string();
    assert!(logs.contains("remediated"), "{logs}");
    assert_eq!(
        double.resource(&account).expect("the account")["properties"]["allowBlobPublicAccess"],
        json!(false)
    );
    let (status, again) = handler
        .invoke("events", json!({"event": event.to_string()}))
        .await;
    assert_eq!(status, 200, "{again}");
    assert!(
        again["Logs"]
            .to_string()
            .contains(" duplicate: already handled"),
        "{again}"
    );
    let patches = double
        .requests()
        .iter()
        .filter(|r| r.operation.as_deref() == Some("StorageAccounts_Update"))
        .count();
    assert_eq!(patches, 1, "the duplicate delivery fixed nothing");

    // HIGH: one Application Insights notice, which the alert rule turns into an e-mail.
    let notices = double.notices();
    assert_eq!(notices.len(), 1, "{notices:?}");
    let properties = &notices[0]["data"]["baseData"]["properties"];
    assert_eq!(notices[0]["data"]["baseData"]["name"], "EscherNotice");
    assert_eq!(properties["severity"], "high");
    assert!(properties["message"]
        .as_str()
        .unwrap_or_default()
        .contains("paymentsexports"));
    assert!(double.violations().is_empty(), "{:?}", double.violations());
    drop(handler);
}

#[tokio::test]
async fn the_handler_reads_its_token_and_approvals_at_start_not_at_the_first_event() {
    let double = ArmDouble::start().await;
    let account = double.storage_account(SUBSCRIPTION, GROUP, "warmexports", Some(true));
    let dir = tempfile::tempdir().expect("temp dir");
    let approvals = format!("fs://{}", dir.path().join("approvals").display());
    approve_private_storage(&approvals, "ana")
        .await
        .expect("approved");
    let handler = Handler::start(&double, dir.path(), &approvals).await;
    let warmed = handler.logged("warmed up").await;
    assert!(warmed.contains(r#""approvals":1"#), "{warmed}");
    // Held since start: with their store gone, the first event still decides on them
    // (within the refresh interval), which it could not if it read them itself.
    std::fs::remove_dir_all(dir.path().join("approvals")).expect("approvals removed");
    let (status, answer) = handler
        .invoke(
            "events",
            json!({"event": policy_event(&account, "warm-delivery")}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["Logs"].to_string().contains("remediated"),
        "{answer}"
    );
}

#[tokio::test]
async fn the_webhook_answers_event_grids_validation_and_monitor_alerts() {
    let double = ArmDouble::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let approvals = format!("fs://{}", dir.path().join("approvals").display());
    approve_private_storage(&approvals, "ana")
        .await
        .expect("approved");
    let handler = Handler::start(&double, dir.path(), &approvals).await;

    let validation = json!([{
        "id": "2d1781af-3a4c-4d7c-bd0c-e34b19da4e66",
        "topic": format!("/subscriptions/{SUBSCRIPTION}"),
        "subject": "",
        "data": {"validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"},
        "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
        "eventTime": "2026-12-03T02:00:00Z",
        "metadataVersion": "1",
        "dataVersion": "1"
    }]);
    let request = |body: &Value| {
        json!({"req": {"Url": "https://escher.azurewebsites.net/api/alert", "Method": "POST",
                        "Query": {}, "Headers": {"aeg-event-type": ["SubscriptionValidation"]},
                        "Params": {}, "Body": body.to_string()}})
    };
    let (status, answer) = handler.invoke("alert", request(&validation)).await;
    assert_eq!(status, 200);
    let response = &answer["Outputs"]["res"];
    assert_eq!(response["statusCode"], 200, "{answer}");
    let body: Value =
        serde_json::from_str(response["body"].as_str().expect("a body")).expect("JSON");
    assert_eq!(
        body["validationResponse"],
        "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"
    );

    // An action group's common-schema alert: the idle VM rule (no approval: notified only).
    let idle = escher_test_support::fixtures::json("azure/monitor-common-metric-cpu-low-idle.json");
    let (status, answer) = handler.invoke("alert", request(&idle)).await;
    assert_eq!(status, 200);
    assert_eq!(answer["Outputs"]["res"]["statusCode"], 200, "{answer}");
    let body: Value =
        serde_json::from_str(answer["Outputs"]["res"]["body"].as_str().expect("a body"))
            .expect("JSON");
    assert_eq!(body["events"].as_array().map(Vec::len), Some(1), "{body}");
    assert!(double
        .requests()
        .iter()
        .all(|r| r.operation.as_deref() != Some("VirtualMachines_Deallocate")));
    drop(handler);
}

#[tokio::test]
async fn an_unreachable_store_asks_the_platform_to_deliver_again() {
    let double = ArmDouble::start().await;
    let account = double.storage_account(SUBSCRIPTION, GROUP, "lateaccount", Some(true));
    let dir = tempfile::tempdir().expect("temp dir");
    let down = format!(
        "azblob://approvals/escher?account=escherstate&endpoint=http://127.0.0.1:{}/escherstate",
        closed_port()
    );
    let handler = Handler::start(&double, dir.path(), &down).await;
    let (status, answer) = handler
        .invoke(
            "events",
            json!({"event": policy_event(&account, "retry-me")}),
        )
        .await;
    assert_eq!(
        status, 500,
        "Event Grid redelivers after a failed invocation: {answer}"
    );
    assert!(answer["Logs"].to_string().contains("retried"), "{answer}");
    assert_eq!(
        double.resource(&account).expect("the account")["properties"]["allowBlobPublicAccess"],
        json!(true),
        "nothing was changed"
    );
    drop(handler);
}

#[tokio::test]
async fn an_unknown_function_is_refused_by_name() {
    let double = ArmDouble::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let approvals = format!("fs://{}", dir.path().join("approvals").display());
    let handler = Handler::start(&double, dir.path(), &approvals).await;
    let (status, answer) = handler.invoke("cleanup", json!({"timer": {}})).await;
    assert_eq!(status, 404);
    assert!(answer["Logs"].to_string().contains("events"), "{answer}");
    let _ = &handler.child;
}

/// A time zone where it is now `hour` o'clock (some zone always is).
fn zone_at_hour(hour: u32) -> &'static str {
    use chrono::Timelike;
    let now = Utc::now();
    chrono_tz::TZ_VARIANTS
        .iter()
        .find(|zone| now.with_timezone(*zone).hour() == hour)
        .map(|zone| zone.name())
        .unwrap_or_else(|| panic!("no zone at {hour}:00 now"))
}

#[tokio::test]
async fn the_hourly_timer_runs_the_nights_scan_once_in_the_users_zone() {
    let double = ArmDouble::start().await;
    let disk = double.disk(SUBSCRIPTION, GROUP, "left-behind");
    double.update(&disk, |d| {
        d["properties"]["diskState"] = json!("Unattached");
        d["properties"]["diskSizeGB"] = json!(256);
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let approvals = format!("fs://{}", dir.path().join("approvals").display());
    approve_private_storage(&approvals, "ana")
        .await
        .expect("approved");

    let noon = Handler::start_in(&double, dir.path(), &approvals, zone_at_hour(12)).await;
    let (status, answer) = noon
        .invoke("nightly", json!({"timer": {"IsPastDue": false}}))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["Logs"]
            .to_string()
            .contains("the night's scan runs from 02:00"),
        "{answer}"
    );
    assert!(double
        .requests()
        .iter()
        .all(|r| r.operation.as_deref() != Some("Disks_List")));
    drop(noon);

    let night = Handler::start_in(&double, dir.path(), &approvals, zone_at_hour(3)).await;
    let (status, answer) = night
        .invoke("nightly", json!({"timer": {"IsPastDue": false}}))
        .await;
    assert_eq!(status, 200, "{answer}");
    let logs = answer["Logs"].to_string();
    assert!(logs.contains("report"), "{logs}");
    let latest: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("state/reports/latest.json"))
            .expect("the morning report is stored"),
    )
    .expect("JSON");
    let report = std::fs::read_to_string(
        dir.path()
            .join("state")
            .join(latest["json"].as_str().expect("the report's path")),
    )
    .expect("the report");
    assert!(
        report.contains("left-behind"),
        "the unattached disk is in the report"
    );
    let listings = |double: &ArmDouble| {
        double
            .requests()
            .iter()
            .filter(|r| r.operation.as_deref() == Some("Disks_List"))
            .count()
    };
    assert_eq!(listings(&double), 1);
    // The next tick of the same night finds the report stored and scans nothing again.
    let (status, again) = night
        .invoke("nightly", json!({"timer": {"IsPastDue": true}}))
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(listings(&double), 1, "once per night");
    assert!(double.violations().is_empty(), "{:?}", double.violations());
}
