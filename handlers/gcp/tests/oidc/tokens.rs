//! Google's side of OIDC, played on loopback for the tests: a JWKS endpoint publishing the
//! committed test key (`signer.jwk.json`), and tokens signed as Pub/Sub or Cloud Scheduler
//! sign them (RS256, `iss` accounts.google.com, `aud`, `email`, `email_verified`, `exp`).

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::Router;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

pub const AUDIENCE: &str = "https://escher-prod-abc123-ew.a.run.app";
pub const INVOKER: &str = "escher-invoker@shop-prod-4711.iam.gserviceaccount.com";
pub const KID: &str = "escher-test-signer";

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oidc");

fn read(name: &str) -> Vec<u8> {
    let path = format!("{KEYS}/{name}");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The test signer's public key as a JWK, with `kid` as its id.
pub fn signer_jwk(kid: &str) -> Value {
    let mut jwk: Value = serde_json::from_slice(&read("signer.jwk.json")).expect("signer.jwk.json");
    jwk["kid"] = json!(kid);
    jwk
}

/// The JWKS endpoint: serves `keys`, which a test may change (key rotation), and counts reads.
#[derive(Clone)]
pub struct Jwks {
    pub url: String,
    keys: Arc<Mutex<Value>>,
    reads: Arc<AtomicUsize>,
}

impl Jwks {
    pub async fn start() -> Jwks {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("address").port();
        let jwks = Jwks {
            url: format!("http://127.0.0.1:{port}/oauth2/v3/certs"),
            keys: Arc::new(Mutex::new(json!({"keys": [signer_jwk(KID)]}))),
            reads: Arc::new(AtomicUsize::new(0)),
        };
        let app = Router::new()
            .route(
                "/oauth2/v3/certs",
                axum::routing::get(|State(jwks): State<Jwks>| async move {
                    jwks.reads.fetch_add(1, Ordering::SeqCst);
                    let keys = jwks.keys.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    axum::Json(keys)
                }),
            )
            .with_state(jwks.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        jwks
    }

    pub fn publish(&self, keys: Value) {
        *self.keys.lock().unwrap_or_else(|e| e.into_inner()) = keys;
    }

    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }
}

/// The claims Pub/Sub puts in a push's token, valid for an hour from now.
pub fn google_claims() -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "iss": "https://accounts.google.com",
        "aud": AUDIENCE,
        "azp": "112233445566778899000",
        "sub": "112233445566778899000",
        "email": INVOKER,
        "email_verified": true,
        "iat": now,
        "exp": now + 3600,
    })
}

/// `claims` signed RS256 with the test signer under `kid`.
pub fn signed(claims: &Value, kid: &str) -> String {
    sign_with("signer.pem", claims, kid)
}

/// `claims` signed with a key Google never published, under a published kid.
pub fn signed_by_stranger(claims: &Value) -> String {
    sign_with("stranger.pem", claims, KID)
}

fn sign_with(pem: &str, claims: &Value, kid: &str) -> String {
    let key = EncodingKey::from_rsa_pem(&read(pem)).expect("test key");
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_string());
    encode(&header, claims, &key).expect("signed")
}

/// A valid token as the push subscription sends it.
pub fn valid_token() -> String {
    signed(&google_claims(), KID)
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}
