//! The Cloud Run service: `POST /alerts` (Pub/Sub push) and `POST /scan` (Escher's own
//! Cloud Scheduler job), both only for requests carrying the invoker's OIDC token
//! ([`crate::oidc`]).
//!
//! `/alerts` hands the push body to the cloud-neutral pipeline as it came: the wrapped
//! envelope (`{"message": {data, attributes, messageId, publishTime}, "subscription"}`) or,
//! for a subscription that pushes without the wrapper, the message's data itself. Pub/Sub
//! redelivers every answer but 102/200/201/202/204, until the dead-letter policy moves the
//! message aside, so the answers are:
//! - 200 when the pipeline handled the message: fixed, notified, a duplicate (its claim
//!   marker stops a second fix), or not an alert at all (audited as unrecognised: a
//!   redelivery could never help, so it is acknowledged, as on every cloud);
//! - 503 when something that may recover failed (a store, a Google API, Google's keys):
//!   Pub/Sub delivers it again, and the dead-letter topic keeps what never succeeds;
//! - 401/403 for a request without a valid token from the invoker.
//!
//! `/scan` starts or continues the night's scan only for the body `{"escher":
//! "nightly-scan"}` (what the Scheduler job sends), so no Pub/Sub message, whatever it
//! carries, starts a scan.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use chrono::{DateTime, Duration, NaiveTime, Utc};
use chrono_tz::Tz;
use escher_core::pipeline::audit::Outcome;
use escher_core::pipeline::{Handled, Pipeline};
use escher_core::scan::ScanCheck;
use escher_scan::nightly::{last_night, NightRun};
use escher_scan::ReportStore;
use serde_json::{json, Value};

use escher_runtime::{build_pipeline, HandlerConfig, HandlerError, RemoteCallMeter};

use crate::bindings::{gcp_bindings, LoggedNotices, CRITICAL_NOTICES, HIGH_NOTICES};
use crate::oidc::{GoogleKeys, OidcPolicy, OidcVerifier, GOOGLE_JWKS_URL};
use crate::rest::{Endpoints, GcpClient, TokenSource};
use crate::scan::{GcpScan, GcpScanSettings, BILLING_ACCOUNT_ENV, BILLING_EXPORT_TABLE_ENV};

/// The body Escher's Cloud Scheduler job sends to `/scan`.
pub const SCAN_MARKER: (&str, &str) = ("escher", "nightly-scan");

/// The night's scan as the service runs it.
pub struct NightlyScan {
    pub checks: Vec<Arc<dyn ScanCheck>>,
    pub store: ReportStore,
    pub zone: Tz,
    /// The local time the Scheduler job fires (02:00 by default).
    pub scan_time: NaiveTime,
    /// How long one call may work before it leaves the rest to Scheduler's retry (the
    /// service's request timeout, less a margin).
    pub budget: Duration,
}

/// What the service serves with.
pub struct Service {
    pub pipeline: Pipeline,
    pub oidc: OidcVerifier,
    pub nightly: NightlyScan,
    /// The service account's tokens for the Google APIs (the fixes' client holds them too).
    pub tokens: Arc<dyn TokenSource>,
}

impl Service {
    /// Reads, all at once, what the first request would otherwise read one after another:
    /// Google's signing keys, the service account's token, the approvals and the incident
    /// memory. Run beside the listener at start (Cloud Run sends the first request once the
    /// port listens); a request arriving meanwhile waits for the same reads rather than
    /// repeating them. A read that fails is logged and left to that request, which retries it.
    pub async fn warm(&self) {
        let started = std::time::Instant::now();
        let (keys, token, warmed) = tokio::join!(
            self.oidc.keys().warm(),
            self.tokens.token(),
            self.pipeline.warm()
        );
        if let Err(e) = keys {
            tracing::warn!(error = %e, "Google's signing keys not read at start; the first request reads them");
        }
        if let Err(e) = token {
            tracing::warn!(error = %e, "no token from the metadata server at start; the first request asks again");
        }
        warmed.log(started);
    }
}

/// The routes: `POST /alerts` and `POST /scan`.
pub fn router(service: Arc<Service>) -> Router {
    Router::new()
        .route("/alerts", axum::routing::post(alerts))
        .route("/scan", axum::routing::post(scan))
        .with_state(service)
}

fn answer(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// Checks the caller's token; the refusal to send otherwise. The reason is logged, the
/// token never.
async fn caller(service: &Service, headers: &HeaderMap, path: &str) -> Result<(), Response> {
    let authorization = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match service.oidc.verify(authorization).await {
        Ok(caller) => {
            tracing::debug!(path, caller = %caller.email, "caller verified");
            Ok(())
        }
        Err(e) => {
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNAUTHORIZED);
            tracing::warn!(path, status = status.as_u16(), reason = %e, "request refused");
            Err(answer(status, json!({"error": e.to_string()})))
        }
    }
}

/// What the push envelope says about the delivery, for the log (the pipeline reads the rest):
/// its message id and delivery attempt, when present.
pub fn delivery_of(body: &[u8]) -> (Option<String>, Option<u64>) {
    let Ok(envelope) = serde_json::from_slice::<Value>(body) else {
        return (None, None);
    };
    let message_id = envelope
        .pointer("/message/messageId")
        .or_else(|| envelope.pointer("/message/message_id"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let attempt = envelope.get("deliveryAttempt").and_then(Value::as_u64);
    (message_id, attempt)
}

fn log_handled(handled: &Handled, message_id: Option<&str>) {
    for r in &handled.results {
        let event = r.event_id.as_deref().unwrap_or("-");
        if r.outcome == Outcome::Unrecognized {
            tracing::error!(
                message_id,
                audit = %r.audit_path,
                "not an alert Escher reads; acknowledged so Pub/Sub stops delivering it: {}",
                r.summary
            );
        } else {
            tracing::info!(message_id, event, outcome = %r.outcome, audit = %r.audit_path, "{}", r.summary);
        }
    }
}

async fn alerts(State(service): State<Arc<Service>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(refused) = caller(&service, &headers, "/alerts").await {
        return refused;
    }
    let (message_id, attempt) = delivery_of(&body);
    match service.pipeline.handle(&body).await {
        Ok(handled) => {
            log_handled(&handled, message_id.as_deref());
            answer(
                StatusCode::OK,
                json!({"events": handled.results.iter().map(|r| json!({
                    "event_id": r.event_id, "outcome": r.outcome, "audit": r.audit_path
                })).collect::<Vec<_>>()}),
            )
        }
        Err(e) => {
            tracing::error!(
                message_id = message_id.as_deref(),
                delivery_attempt = attempt,
                error = %e,
                "alert not handled; Pub/Sub will deliver it again"
            );
            answer(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": e.to_string()}),
            )
        }
    }
}

/// Whether `body` is the Scheduler job's marker.
pub fn is_scan_marker(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v.get(SCAN_MARKER.0)
                .and_then(Value::as_str)
                .map(|s| s == SCAN_MARKER.1)
        })
        .unwrap_or(false)
}

async fn scan(State(service): State<Arc<Service>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(refused) = caller(&service, &headers, "/scan").await {
        return refused;
    }
    if !is_scan_marker(&body) {
        tracing::warn!("a call to /scan without the Scheduler job's body; no scan started");
        return answer(
            StatusCode::BAD_REQUEST,
            json!({"error": "the nightly scan starts only for the body {\"escher\":\"nightly-scan\"}, which Escher's Cloud Scheduler job sends"}),
        );
    }
    let nightly = &service.nightly;
    let now = Utc::now();
    match night_step(nightly, &service.pipeline, now).await {
        Ok(done) => {
            tracing::info!(progress = %done, "the night's scan");
            answer(StatusCode::OK, done)
        }
        Err(e) => {
            tracing::error!(error = %e, "the night's scan did not finish this call");
            answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": e.to_string()}),
            )
        }
    }
}

/// One call's step of the night's run, for the night the call at `now` belongs to.
pub async fn night_step(
    nightly: &NightlyScan,
    pipeline: &Pipeline,
    now: DateTime<Utc>,
) -> Result<Value, escher_scan::nightly::NightlyError> {
    NightRun {
        cloud: "gcp",
        date: last_night(now, nightly.zone, nightly.scan_time),
        checks: nightly.checks.clone(),
        // Google Cloud's checks read the whole project at once.
        regions: Vec::new(),
        store: &nightly.store,
        pipeline,
        deadline: now + nightly.budget,
    }
    .step()
    .await
}

/// The service's own settings, beside the pipeline's (`escher_runtime::HandlerConfig`).
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSettings {
    /// `ESCHER_GCP_PROJECT`: the project Escher watches (and keeps its secrets in).
    pub project: String,
    /// `ESCHER_OIDC_AUDIENCE` and `ESCHER_INVOKER_SERVICE_ACCOUNT`.
    pub oidc: OidcPolicy,
    /// `ESCHER_OIDC_JWKS_URL`, else Google's.
    pub jwks_url: String,
    /// `ESCHER_TIME_ZONE`, `ESCHER_SCAN_TIME`.
    pub zone: Tz,
    pub scan_time: NaiveTime,
    /// `ESCHER_GCP_API_ENDPOINT`: one origin serving every Google API at Google's paths
    /// (a test server); Google's own endpoints when unset.
    pub endpoints: Endpoints,
    /// `ESCHER_GCP_BILLING_EXPORT_TABLE`, `ESCHER_GCP_BILLING_ACCOUNT`: where the scan
    /// reads cost and budgets (both optional).
    pub scan: GcpScanSettings,
}

/// A setting the service cannot start without.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SettingsError {
    #[error("{0} is not set; the service's template sets it (escher-provision extend deploys it)")]
    Missing(&'static str),
    #[error(transparent)]
    Schedule(#[from] escher_scan::nightly::ScheduleError),
}

impl ServiceSettings {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let required = |name: &'static str| get(name).ok_or(SettingsError::Missing(name));
        let (zone, scan_time) = escher_scan::nightly::schedule_from(&lookup)?;
        Ok(ServiceSettings {
            project: required("ESCHER_GCP_PROJECT")?,
            oidc: OidcPolicy {
                audience: required("ESCHER_OIDC_AUDIENCE")?,
                invoker: required("ESCHER_INVOKER_SERVICE_ACCOUNT")?,
            },
            jwks_url: get("ESCHER_OIDC_JWKS_URL").unwrap_or_else(|| GOOGLE_JWKS_URL.to_string()),
            zone,
            scan_time,
            endpoints: get("ESCHER_GCP_API_ENDPOINT")
                .map(|origin| Endpoints::all_at(&origin))
                .unwrap_or_default(),
            scan: GcpScanSettings {
                billing_export_table: get(BILLING_EXPORT_TABLE_ENV),
                billing_account: get(BILLING_ACCOUNT_ENV),
            },
        })
    }
}

/// How long one `/scan` call may work: the service's request timeout is 30 minutes, and
/// Scheduler's attempt deadline the same, so a call leaves the rest to Scheduler's retry
/// with margin to store what it did.
pub const SCAN_BUDGET_MINUTES: i64 = 25;

/// The alert pipeline as Google Cloud runs it (the service, and `events handle --cloud gcp`
/// on a laptop): `config`'s stores, Google Cloud's fixes through `client` in `project`, and
/// notices as log lines named by their severity (see `bindings`: no topic to configure).
pub fn alert_pipeline(
    config: &HandlerConfig,
    client: GcpClient,
    project: &str,
    notices: LoggedNotices,
    meter: &RemoteCallMeter,
) -> Result<Pipeline, HandlerError> {
    let mut config = config.clone();
    config.critical_topic = Some(CRITICAL_NOTICES.to_string());
    config.high_topic = Some(HIGH_NOTICES.to_string());
    let bindings = gcp_bindings(client, project, notices, Some(meter.clone()));
    build_pipeline(&config, bindings, meter)
}

/// The service, assembled: the pipeline on `config`'s stores with Google Cloud's bindings,
/// the OIDC check, and the night's scan in the state store.
pub fn build_service(
    config: &HandlerConfig,
    settings: &ServiceSettings,
    http: reqwest::Client,
    tokens: Arc<dyn TokenSource>,
    notices: LoggedNotices,
    meter: &RemoteCallMeter,
) -> Result<Service, HandlerError> {
    let client = GcpClient::on(http.clone(), settings.endpoints.clone(), tokens.clone());
    let checks = GcpScan::new(
        client.clone(),
        settings.project.clone(),
        settings.scan.clone(),
        Some(meter.clone()),
    )
    .checks();
    let pipeline = alert_pipeline(config, client, &settings.project, notices, meter)?;
    let nightly = NightlyScan {
        checks,
        // The reports live in the state store the pipeline already opened.
        store: ReportStore::new(pipeline.state.clone(), config.state_uri.clone()),
        zone: settings.zone,
        scan_time: settings.scan_time,
        budget: Duration::minutes(SCAN_BUDGET_MINUTES),
    };
    Ok(Service {
        oidc: OidcVerifier::new(
            settings.oidc.clone(),
            GoogleKeys::new(http, settings.jwks_url.clone()),
        ),
        pipeline,
        nightly,
        tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_schedulers_body_is_the_scan_marker() {
        assert!(is_scan_marker(br#"{"escher":"nightly-scan"}"#));
        assert!(is_scan_marker(br#"{"escher": "nightly-scan", "job": "x"}"#));
        assert!(!is_scan_marker(br#"{"escher":"scan"}"#));
        assert!(!is_scan_marker(b"nightly-scan"));
        assert!(!is_scan_marker(b""));
        assert!(!is_scan_marker(
            br#"{"message":{"data":"bmlnaHRseS1zY2Fu"}}"#
        ));
    }

    #[test]
    fn the_settings_are_read_from_the_environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let all: &'static [(&str, &str)] = &[
            ("ESCHER_GCP_PROJECT", "shop-prod-4711"),
            ("ESCHER_OIDC_AUDIENCE", "https://escher.a.run.app"),
            (
                "ESCHER_INVOKER_SERVICE_ACCOUNT",
                "escher-invoker@shop-prod-4711.iam.gserviceaccount.com",
            ),
            ("ESCHER_TIME_ZONE", "Europe/Berlin"),
            ("ESCHER_SCAN_TIME", "03:15"),
            ("ESCHER_GCP_API_ENDPOINT", "http://127.0.0.1:9"),
        ];
        let settings = ServiceSettings::from_lookup(env(all)).expect("settings");
        assert_eq!(settings.jwks_url, GOOGLE_JWKS_URL);
        assert_eq!(settings.zone, chrono_tz::Europe::Berlin);
        assert_eq!(settings.endpoints.storage, "http://127.0.0.1:9/storage/v1");
        let no_invoker = &all[..2];
        assert_eq!(
            ServiceSettings::from_lookup(env(no_invoker)),
            Err(SettingsError::Missing("ESCHER_INVOKER_SERVICE_ACCOUNT")),
            "no token check is possible without the invoker, and none is skipped"
        );
    }

    #[test]
    fn the_delivery_is_read_for_the_log() {
        let body = br#"{"message":{"data":"e30=","messageId":"77"},"subscription":"s","deliveryAttempt":3}"#;
        assert_eq!(delivery_of(body), (Some("77".into()), Some(3)));
        assert_eq!(delivery_of(b"not json"), (None, None));
    }
}
