//! The service in-process on loopback for the tests: the contract server's project, local
//! stores with buckets pre-approved to be made private, Google's tokens from the test
//! signer, and the notices it writes captured.

#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::tokens::*;
use base64::Engine as _;
use chrono::Utc;
use escher_core::approvals::{Action, Approval, ApprovalStore, Change, Conditions, Scope};
use escher_core::CloudProvider;
use escher_gcp::oidc::OidcPolicy;
use escher_gcp::service::{build_service, router, Service, ServiceSettings};
use escher_gcp::{Endpoints, LoggedNotices, StaticToken};
use escher_runtime::{HandlerConfig, RemoteCallMeter};
pub use escher_test_support::gcp_api::GcpApi;
use serde_json::{json, Value};

pub const PROJECT: &str = "shop-prod-4711";

/// What the service wrote to "stdout" as notices.
#[derive(Clone, Default)]
pub struct Captured(pub Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    pub fn lines(&self) -> Vec<Value> {
        let bytes = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        String::from_utf8(bytes)
            .expect("text")
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }
}

pub struct Running {
    pub base: String,
    pub http: reqwest::Client,
    pub notices: Captured,
}

impl Running {
    pub async fn post(&self, path: &str, token: Option<&str>, body: &[u8]) -> (u16, Value) {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(token) = token {
            request = request.header("authorization", bearer(token));
        }
        let response = request.send().await.expect("the service answers");
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    pub async fn push(&self, envelope: &Value) -> (u16, Value) {
        self.post(
            "/alerts",
            Some(&valid_token()),
            envelope.to_string().as_bytes(),
        )
        .await
    }
}

/// Approves making any public bucket private (`make_bucket_private`, every Google Cloud
/// resource), as `who` in the approvals store at `uri`.
pub async fn approve_private_buckets(uri: &str, who: &str) -> Result<(), String> {
    let approval = Approval {
        id: "apr-gcp-buckets".into(),
        action: Action::MakeBucketPrivate,
        scope: Scope {
            clouds: vec![CloudProvider::Gcp],
            ..Scope::default()
        },
        conditions: Conditions::default(),
        approved_by: who.into(),
        approved_at: Utc::now() - chrono::Duration::minutes(5),
        expires_at: None,
        reason: "our buckets are never public".into(),
        revoked_at: None,
        revoked_by: None,
        revoke_reason: None,
    };
    ApprovalStore::open(uri)
        .map_err(|e| format!("the approvals store {uri}: {e}"))?
        .apply(
            &Change::Init {
                approvals: vec![approval],
            },
            who,
        )
        .await
        .map(|_| ())
        .map_err(|e| format!("approving in {uri}: {e}"))
}

pub async fn start(api: &GcpApi, jwks: &Jwks, stores: &Path) -> Running {
    let (service, notices) = assemble(api, jwks, stores).await;
    serve(Arc::new(service), notices).await
}

/// The service as the binary builds it, its fix approved, not yet serving.
pub async fn assemble(api: &GcpApi, jwks: &Jwks, stores: &Path) -> (Service, Captured) {
    let uri = |name: &str| format!("fs://{}", stores.join(name).display());
    approve_private_buckets(&uri("approvals"), "ana")
        .await
        .expect("approved");
    let config = HandlerConfig::with_stores(uri("state"), uri("audit"), uri("approvals"));
    let settings = ServiceSettings {
        project: PROJECT.into(),
        oidc: OidcPolicy {
            audience: AUDIENCE.into(),
            invoker: INVOKER.into(),
        },
        jwks_url: jwks.url.clone(),
        zone: chrono_tz::UTC,
        scan_time: escher_scan::nightly::DEFAULT_SCAN_TIME,
        endpoints: Endpoints::all_at(api.endpoint()),
        scan: Default::default(),
    };
    let notices = Captured::default();
    let service = build_service(
        &config,
        &settings,
        reqwest::Client::new(),
        Arc::new(StaticToken::new(GcpApi::TEST_TOKEN)),
        LoggedNotices::to(Arc::new(Mutex::new(Box::new(notices.clone())))),
        &RemoteCallMeter::new(),
    )
    .expect("the service is built");
    (service, notices)
}

/// `service` on a loopback port.
pub async fn serve(service: Arc<Service>, notices: Captured) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, router(service)).await;
    });
    Running {
        base,
        http: reqwest::Client::new(),
        notices,
    }
}

/// The audit-log entry of someone granting `allUsers` read on `bucket`.
pub fn public_grant(bucket: &str) -> Value {
    json!({
        "insertId": "b7c1x9e2kq",
        "logName": format!("projects/{PROJECT}/logs/cloudaudit.googleapis.com%2Factivity"),
        "protoPayload": {
            "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
            "status": {},
            "authenticationInfo": {"principalEmail": "dev-oncall@example.com"},
            "requestMetadata": {"callerIp": "203.0.113.24"},
            "serviceName": "storage.googleapis.com",
            "methodName": "storage.setIamPermissions",
            "authorizationInfo": [{"resource": format!("projects/_/buckets/{bucket}"), "permission": "storage.buckets.setIamPolicy", "granted": true}],
            "resourceName": format!("projects/_/buckets/{bucket}"),
            "serviceData": {
                "@type": "type.googleapis.com/google.iam.v1.logging.AuditData",
                "policyDelta": {"bindingDeltas": [{"action": "ADD", "role": "roles/storage.objectViewer", "member": "allUsers"}]}
            }
        },
        "resource": {"type": "gcs_bucket", "labels": {"project_id": PROJECT, "bucket_name": bucket, "location": "europe-west3"}},
        "timestamp": "2026-12-03T09:12:44.117Z",
        "severity": "NOTICE",
        "receiveTimestamp": "2026-12-03T09:12:45.882310456Z"
    })
}

/// Pub/Sub's push envelope around `data`.
pub fn pushed(data: &[u8], message_id: &str) -> Value {
    json!({
        "message": {
            "data": base64::engine::general_purpose::STANDARD.encode(data),
            "attributes": {"logging.googleapis.com/timestamp": "2026-12-03T09:12:44.117Z"},
            "messageId": message_id,
            "publishTime": "2026-12-03T09:12:46.004Z"
        },
        "subscription": format!("projects/{PROJECT}/subscriptions/escher-alerts-push")
    })
}

pub fn outcomes(answer: &Value) -> Vec<String> {
    answer["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["outcome"].as_str().unwrap_or("").to_string())
        .collect()
}

pub fn policy_writes(api: &GcpApi) -> usize {
    api.requests()
        .iter()
        .filter(|r| {
            r.operation.as_deref() == Some("storage.buckets.setIamPolicy") && r.status == 200
        })
        .count()
}

pub fn files_under(dir: &Path) -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path.display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out
}
