//! The Azure Functions custom-handler protocol, and the handler's HTTP server.
//!
//! The Functions host runs our binary and forwards each invocation as `POST /<function>`
//! with `{"Data": {<binding>: …}, "Metadata": {…}}`, expecting `{"Outputs": {…}, "Logs":
//! […], "ReturnValue": …}` (see `host/`: `host.json` and one folder per function):
//! - `events`: the Event Grid trigger (resource writes and deletes, policy state changes);
//! - `alert`: the HTTP trigger Azure Monitor's action group posts to (common alert schema),
//!   which also answers Event Grid's validation handshake when called as a plain webhook;
//! - `nightly`: the quarter-hourly timer that takes the night's scan a step (see [`crate::nightly`]).
//!
//! Everything after the envelope is the cloud-neutral pipeline. A transient failure answers
//! 500 to the host (the Event Grid trigger fails and Event Grid redelivers) or 503 to the
//! caller of the HTTP trigger (action groups retry it); a payload that is not an alert is
//! audited by the pipeline and acknowledged, since redelivery cannot help. Duplicate
//! deliveries are claimed once by the pipeline, so they never fix twice.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use escher_core::pipeline::{Handled, Pipeline};
use serde_json::{json, Map, Value};

use crate::nightly::Nightly;

/// What the handler serves with: the alert pipeline, and the night's scan when configured.
pub struct Handler {
    pub pipeline: Pipeline,
    /// `None`: the subscription to scan is not configured; the timer says so.
    pub nightly: Option<Nightly>,
}

impl Handler {
    /// Reads, at once, what the first event would otherwise read one after another (the
    /// identity's token for Resource Manager, the approvals, the incident memory), beside
    /// the listener at start: the host forwards the first event once the port listens. A
    /// read that fails is logged and left to the first event, which retries it.
    pub async fn warm(&self, arm: &crate::ArmClient) {
        let started = std::time::Instant::now();
        let (token, warmed) = tokio::join!(arm.warm(), self.pipeline.warm());
        if let Err(e) = token {
            tracing::warn!(error = %e, "no token from the managed identity at start; the first event asks again");
        }
        warmed.log(started);
    }
}

/// The Event Grid trigger's function (its folder under `host/`) and binding name.
pub const EVENTS_FUNCTION: &str = "events";
const EVENTS_BINDING: &str = "event";
/// The HTTP trigger's function and binding names.
pub const ALERT_FUNCTION: &str = "alert";
const ALERT_BINDING: &str = "req";
const ALERT_OUTPUT: &str = "res";
/// The quarter-hourly timer's function and binding names.
pub const NIGHTLY_FUNCTION: &str = "nightly";
const NIGHTLY_BINDING: &str = "timer";

/// Why an invocation could not be read (the host sent something this version does not know).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ProtocolError {
    #[error("the Functions host's request is not JSON: {0}")]
    NotJson(String),
    #[error("the {function} invocation carries no `{binding}` binding in Data; check host/{function}/function.json")]
    MissingBinding {
        function: &'static str,
        binding: &'static str,
    },
    #[error("no function named {0}: this handler serves `events`, `alert` and `nightly`")]
    UnknownFunction(String),
}

/// What one invocation asks of the handler.
#[derive(Debug, Clone, PartialEq)]
pub enum Invocation {
    /// An Event Grid event, as its JSON.
    Event(Vec<u8>),
    /// A POST to the HTTP trigger: its body.
    Alert(Vec<u8>),
    /// The quarter-hourly timer.
    Tick,
}

fn binding<'a>(
    data: &'a Map<String, Value>,
    function: &'static str,
    binding: &'static str,
) -> Result<&'a Value, ProtocolError> {
    data.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(binding))
        .map(|(_, v)| v)
        .ok_or(ProtocolError::MissingBinding { function, binding })
}

/// A binding's value as bytes: the host passes JSON either as itself or as a string of it.
fn payload_bytes(value: &Value) -> Vec<u8> {
    match value {
        Value::String(text) => text.as_bytes().to_vec(),
        other => other.to_string().into_bytes(),
    }
}

/// Reads the host's request for `function`.
pub fn parse_invocation(function: &str, body: &[u8]) -> Result<Invocation, ProtocolError> {
    let request: Value =
        serde_json::from_slice(body).map_err(|e| ProtocolError::NotJson(e.to_string()))?;
    let empty = Map::new();
    let data = request
        .get("Data")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    if function.eq_ignore_ascii_case(EVENTS_FUNCTION) {
        let event = binding(data, EVENTS_FUNCTION, EVENTS_BINDING)?;
        Ok(Invocation::Event(payload_bytes(event)))
    } else if function.eq_ignore_ascii_case(ALERT_FUNCTION) {
        let request = binding(data, ALERT_FUNCTION, ALERT_BINDING)?;
        let body = request
            .get("Body")
            .or_else(|| request.get("body"))
            .map(payload_bytes)
            .unwrap_or_default();
        Ok(Invocation::Alert(body))
    } else if function.eq_ignore_ascii_case(NIGHTLY_FUNCTION) {
        binding(data, NIGHTLY_FUNCTION, NIGHTLY_BINDING)?;
        Ok(Invocation::Tick)
    } else {
        Err(ProtocolError::UnknownFunction(function.to_string()))
    }
}

/// The host's answer: outputs, log lines for Application Insights, no return value.
fn host_answer(outputs: Value, logs: Vec<String>) -> Value {
    json!({"Outputs": outputs, "Logs": logs, "ReturnValue": null})
}

/// The HTTP trigger's response through the `res` output binding.
fn http_output(status: u16, body: Value, logs: Vec<String>) -> Value {
    host_answer(
        json!({ALERT_OUTPUT: {
            "statusCode": status,
            "body": body.to_string(),
            "headers": {"Content-Type": "application/json"}
        }}),
        logs,
    )
}

/// One line per event, no event content (the audit record holds it): logged here and
/// returned for the host's log.
fn log_lines(handled: &Handled) -> Vec<String> {
    handled
        .results
        .iter()
        .map(|r| {
            let line = format!(
                "{} {}: {} (audit {})",
                r.event_id.as_deref().unwrap_or("-"),
                r.outcome,
                r.summary,
                r.audit_path
            );
            tracing::info!("{line}");
            line
        })
        .collect()
}

/// Handles one invocation; returns the status for the host and the host's answer.
pub async fn respond(handler: &Handler, invocation: Invocation) -> (StatusCode, Value) {
    let pipeline = &handler.pipeline;
    match invocation {
        Invocation::Tick => match &handler.nightly {
            None => (
                StatusCode::OK,
                host_answer(
                    json!({}),
                    vec!["no nightly scan: ESCHER_AZURE_SUBSCRIPTION is not set (escher-provision extend sets it)".into()],
                ),
            ),
            Some(nightly) => match nightly.tick(chrono::Utc::now(), pipeline).await {
                Ok(done) => (StatusCode::OK, host_answer(json!({}), vec![done.to_string()])),
                Err(e) => {
                    tracing::error!(error = %e, "the night's scan did not finish this tick");
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        host_answer(json!({}), vec![e.to_string()]),
                    )
                }
            },
        },
        Invocation::Event(payload) => match pipeline.handle(&payload).await {
            Ok(handled) => {
                let logs = log_lines(&handled);
                (StatusCode::OK, host_answer(json!({}), logs))
            }
            Err(e) => {
                tracing::error!(error = %e, "event not handled; Event Grid will deliver it again");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    host_answer(json!({}), vec![format!("not handled, retried: {e}")]),
                )
            }
        },
        Invocation::Alert(body) => match pipeline.handle(&body).await {
            Ok(handled) => {
                let logs = log_lines(&handled);
                let answer = match &handled.handshake {
                    Some(h) => json!({"validationResponse": h.validation_code}),
                    None => json!({
                        "events": handled.results.iter().map(|r| json!({
                            "event_id": r.event_id, "outcome": r.outcome, "audit": r.audit_path
                        })).collect::<Vec<_>>()
                    }),
                };
                (StatusCode::OK, http_output(200, answer, logs))
            }
            Err(e) => {
                tracing::error!(error = %e, "alert not handled; the action group will retry it");
                (
                    StatusCode::OK,
                    http_output(
                        503,
                        json!({"error": e.to_string()}),
                        vec![format!("not handled, retried: {e}")],
                    ),
                )
            }
        },
    }
}

async fn invoke(
    State(handler): State<Arc<Handler>>,
    Path(function): Path<String>,
    body: Bytes,
) -> Response {
    match parse_invocation(&function, &body) {
        Ok(invocation) => {
            let (status, answer) = respond(&handler, invocation).await;
            (status, axum::Json(answer)).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, function, "invocation not understood");
            let status = match e {
                ProtocolError::UnknownFunction(_) => StatusCode::NOT_FOUND,
                _ => StatusCode::BAD_REQUEST,
            };
            (
                status,
                axum::Json(host_answer(json!({}), vec![e.to_string()])),
            )
                .into_response()
        }
    }
}

/// The custom handler's routes: `POST /<function>` for each function under `host/`.
pub fn router(handler: Arc<Handler>) -> Router {
    Router::new()
        .route("/{function}", axum::routing::post(invoke))
        .with_state(handler)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_trigger_is_read_from_its_binding() {
        let event = json!({"Data": {"event": {"id": "1", "eventType": "Microsoft.Resources.ResourceWriteSuccess"}}, "Metadata": {}});
        assert!(matches!(
            parse_invocation("events", event.to_string().as_bytes()),
            Ok(Invocation::Event(bytes)) if bytes.starts_with(b"{\"eventType\"") || bytes.starts_with(b"{\"id\"")
        ));
        let as_text = json!({"Data": {"event": "{\"id\":\"2\"}"}});
        assert_eq!(
            parse_invocation("events", as_text.to_string().as_bytes()),
            Ok(Invocation::Event(b"{\"id\":\"2\"}".to_vec()))
        );
        let http = json!({"Data": {"req": {"Method": "POST", "Body": "{\"schemaId\":\"azureMonitorCommonAlertSchema\"}", "Headers": {}}}});
        assert_eq!(
            parse_invocation("alert", http.to_string().as_bytes()),
            Ok(Invocation::Alert(
                b"{\"schemaId\":\"azureMonitorCommonAlertSchema\"}".to_vec()
            ))
        );
    }

    #[test]
    fn what_the_host_should_never_send_is_named() {
        assert_eq!(
            parse_invocation("events", b"{\"Data\": {}}"),
            Err(ProtocolError::MissingBinding {
                function: "events",
                binding: "event"
            })
        );
        assert!(matches!(
            parse_invocation("cleanup", b"{}"),
            Err(ProtocolError::UnknownFunction(_))
        ));
        assert_eq!(
            parse_invocation("nightly", br#"{"Data": {"timer": {"IsPastDue": false}}}"#),
            Ok(Invocation::Tick)
        );
        assert!(matches!(
            parse_invocation("events", b"not json"),
            Err(ProtocolError::NotJson(_))
        ));
    }

    #[test]
    fn the_declared_functions_and_bindings_are_the_ones_read() {
        let host = concat!(env!("CARGO_MANIFEST_DIR"), "/host");
        let read = |f: &str| -> Value {
            let path = format!("{host}/{f}/function.json");
            serde_json::from_str(&std::fs::read_to_string(&path).expect(&path)).expect(&path)
        };
        let names = |v: &Value, direction: &str| -> Vec<String> {
            v["bindings"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|b| b["direction"] == direction)
                .filter_map(|b| b["name"].as_str().map(str::to_string))
                .collect()
        };
        assert_eq!(names(&read(EVENTS_FUNCTION), "in"), [EVENTS_BINDING]);
        assert_eq!(names(&read(ALERT_FUNCTION), "in"), [ALERT_BINDING]);
        assert_eq!(names(&read(ALERT_FUNCTION), "out"), [ALERT_OUTPUT]);
        assert_eq!(names(&read(NIGHTLY_FUNCTION), "in"), [NIGHTLY_BINDING]);
        assert_eq!(
            read(NIGHTLY_FUNCTION)["bindings"][0]["schedule"],
            "0 */15 * * * *",
            "every quarter hour in UTC; the zone and the scan time's minutes are applied in code"
        );
        let mut folders: Vec<String> = std::fs::read_dir(host)
            .expect("host/")
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        folders.sort();
        assert_eq!(
            folders,
            [ALERT_FUNCTION, EVENTS_FUNCTION, NIGHTLY_FUNCTION],
            "every function folder is served"
        );
        let host_json: Value = serde_json::from_str(
            &std::fs::read_to_string(format!("{host}/host.json")).expect("host.json"),
        )
        .expect("host.json");
        assert_eq!(
            host_json["customHandler"]["description"]["defaultExecutablePath"],
            "escher-azure-functions"
        );
    }
}
