//! What the Google Cloud tests share: the contract server with a client for it, and the
//! audit-log event a change to a resource raises, normalized as the handler would.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use escher_core::{Normalized, UnifiedEvent};
use escher_gcp::{Endpoints, GcpClient, Patience, StaticToken};
use escher_test_support::gcp_api::GcpApi;
use serde_json::json;

pub const PROJECT: &str = "shop-prod-4711";
pub const ZONE: &str = "europe-west3-b";

/// Short waits: the server's operations end after a poll or two.
pub fn quick() -> Patience {
    Patience {
        attempts: 4,
        poll_interval: Duration::from_millis(10),
        max_wait: Duration::from_millis(50),
        operation_timeout: Duration::from_secs(20),
    }
}

pub async fn server() -> (GcpApi, GcpClient) {
    let api = GcpApi::start().await;
    let client = GcpClient::new(
        Endpoints::all_at(api.endpoint()),
        Arc::new(StaticToken::new(GcpApi::TEST_TOKEN)),
    )
    .with_patience(quick());
    (api, client)
}

/// The Cloud Audit Logs entry a change to `name` writes (`method` on `service`), normalized.
pub fn audit_event(name: &str, service: &str, method: &str, monitored: &str) -> UnifiedEvent {
    let payload = json!({
        "insertId": format!("c7hd{}", name.len()),
        "logName": format!("projects/{PROJECT}/logs/cloudaudit.googleapis.com%2Factivity"),
        "protoPayload": {
            "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
            "status": {},
            "authenticationInfo": {"principalEmail": "dev-oncall@example.com"},
            "requestMetadata": {"callerIp": "203.0.113.24"},
            "serviceName": service,
            "methodName": method,
            "authorizationInfo": [{"resource": name, "permission": method, "granted": true}],
            "resourceName": name,
            "request": {}
        },
        "resource": {"type": monitored, "labels": {"project_id": PROJECT}},
        "timestamp": "2026-12-03T09:12:44.117Z",
        "severity": "NOTICE",
        "receiveTimestamp": "2026-12-03T09:12:45.882310456Z"
    });
    match escher_core::normalize(payload.to_string().as_bytes()) {
        Ok(Normalized::Events(mut events)) if events.len() == 1 => events.remove(0),
        other => panic!("expected one event for {name}, got {other:?}"),
    }
}

pub fn bucket_event(name: &str) -> UnifiedEvent {
    audit_event(
        name,
        "storage.googleapis.com",
        "storage.setIamPermissions",
        "gcs_bucket",
    )
}

pub fn firewall_event(name: &str) -> UnifiedEvent {
    audit_event(
        name,
        "compute.googleapis.com",
        "v1.compute.firewalls.insert",
        "gce_firewall_rule",
    )
}

pub fn instance_event(name: &str) -> UnifiedEvent {
    audit_event(
        name,
        "compute.googleapis.com",
        "v1.compute.instances.insert",
        "gce_instance",
    )
}

pub fn disk_event(name: &str) -> UnifiedEvent {
    audit_event(
        name,
        "compute.googleapis.com",
        "v1.compute.disks.insert",
        "gce_disk",
    )
}
