//! The service's OIDC check against a loopback JWKS: Google's tokens from the invoker
//! service account are accepted, every other token is refused with the reason.

#[path = "oidc/tokens.rs"]
mod tokens;

use std::time::Duration;

use base64::Engine as _;
use escher_gcp::oidc::{GoogleKeys, OidcError, OidcPolicy, OidcVerifier};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tokens::*;

fn policy() -> OidcPolicy {
    OidcPolicy {
        audience: AUDIENCE.into(),
        invoker: INVOKER.into(),
    }
}

async fn verifier() -> (Jwks, OidcVerifier) {
    let jwks = Jwks::start().await;
    let keys = GoogleKeys::new(reqwest::Client::new(), jwks.url.clone())
        .with_refetch_pause(Duration::ZERO);
    (jwks, OidcVerifier::new(policy(), keys))
}

async fn check(verifier: &OidcVerifier, token: &str) -> Result<String, OidcError> {
    verifier
        .verify(Some(&bearer(token)))
        .await
        .map(|caller| caller.email)
}

fn with(change: impl FnOnce(&mut Value)) -> Value {
    let mut claims = google_claims();
    change(&mut claims);
    claims
}

#[tokio::test]
async fn a_token_of_the_invoker_signed_by_google_is_accepted() {
    let (_jwks, verifier) = verifier().await;
    assert_eq!(
        check(&verifier, &valid_token()).await,
        Ok(INVOKER.to_string())
    );
    // The short issuer spelling Google also writes.
    let short = signed(&with(|c| c["iss"] = json!("accounts.google.com")), KID);
    assert_eq!(check(&verifier, &short).await, Ok(INVOKER.to_string()));
    // Older tokens write email_verified as text.
    let text = signed(&with(|c| c["email_verified"] = json!("true")), KID);
    assert_eq!(check(&verifier, &text).await, Ok(INVOKER.to_string()));
}

/// What a refusal must be, for one wrong token.
type Refusal = fn(&OidcError) -> bool;

#[tokio::test]
async fn each_wrong_token_is_refused_with_its_reason() {
    let (_jwks, verifier) = verifier().await;
    let now = chrono::Utc::now().timestamp();
    let cases: Vec<(&str, String, Refusal)> = vec![
        (
            "wrong audience",
            signed(
                &with(|c| c["aud"] = json!("https://someone-else.a.run.app")),
                KID,
            ),
            |e| matches!(e, OidcError::WrongAudience { found, .. } if found == "https://someone-else.a.run.app"),
        ),
        (
            "wrong e-mail",
            signed(
                &with(|c| c["email"] = json!("intruder@other-project.iam.gserviceaccount.com")),
                KID,
            ),
            |e| matches!(e, OidcError::WrongCaller { found, .. } if found.starts_with("intruder@")),
        ),
        (
            "no e-mail",
            signed(
                &with(|c| {
                    c.as_object_mut().map(|m| m.remove("email"));
                }),
                KID,
            ),
            |e| matches!(e, OidcError::WrongCaller { .. }),
        ),
        (
            "unverified e-mail",
            signed(&with(|c| c["email_verified"] = json!(false)), KID),
            |e| matches!(e, OidcError::EmailNotVerified { .. }),
        ),
        (
            "expired",
            signed(
                &with(|c| {
                    c["iat"] = json!(now - 7200);
                    c["exp"] = json!(now - 600);
                }),
                KID,
            ),
            |e| *e == OidcError::Expired,
        ),
        (
            "wrong issuer",
            signed(&with(|c| c["iss"] = json!("https://evil.example.com")), KID),
            |e| matches!(e, OidcError::WrongIssuer { found } if found == "https://evil.example.com"),
        ),
        (
            "unknown kid",
            signed(&google_claims(), "not-a-google-key"),
            |e| matches!(e, OidcError::UnknownKey { kid, .. } if kid == "not-a-google-key"),
        ),
        ("bad signature", signed_by_stranger(&google_claims()), |e| {
            matches!(e, OidcError::BadSignature { .. })
        }),
        (
            "HS256 with the public key as its secret",
            hs256_token(),
            |e| matches!(e, OidcError::UnsupportedAlgorithm(alg) if alg == "HS256"),
        ),
        (
            "alg none",
            unsigned_token(),
            |e| matches!(e, OidcError::UnsupportedAlgorithm(alg) if alg == "none"),
        ),
        ("not a JWT", "abc.def".to_string(), |e| {
            matches!(e, OidcError::Malformed(_))
        }),
    ];
    for (what, token, expected) in cases {
        let refused = check(&verifier, &token)
            .await
            .expect_err(&format!("{what}: accepted"));
        assert!(expected(&refused), "{what}: refused as {refused:?}");
        assert!(
            refused.status() == 401 || refused.status() == 403,
            "{what}: {refused}"
        );
        assert!(
            !refused.to_string().contains(&token),
            "{what}: the reason repeats the token"
        );
    }
}

#[tokio::test]
async fn a_request_without_a_bearer_token_is_refused() {
    let (_jwks, verifier) = verifier().await;
    assert_eq!(verifier.verify(None).await, Err(OidcError::MissingToken));
    assert_eq!(
        verifier.verify(Some("Basic dXNlcjpwYXNz")).await,
        Err(OidcError::NotBearer)
    );
    assert_eq!(
        verifier.verify(Some(&valid_token())).await,
        Err(OidcError::NotBearer),
        "a token without its scheme"
    );
}

#[tokio::test]
async fn keys_are_cached_and_read_again_when_google_rotates_them() {
    let (jwks, verifier) = verifier().await;
    for _ in 0..3 {
        check(&verifier, &valid_token()).await.expect("valid");
    }
    assert_eq!(jwks.reads(), 1, "the key set is read once, then cached");
    // Google publishes a new key: a token naming it makes the service read the set again.
    jwks.publish(json!({"keys": [signer_jwk(KID), signer_jwk("rotated-in")]}));
    let rotated = signed(&google_claims(), "rotated-in");
    assert_eq!(check(&verifier, &rotated).await, Ok(INVOKER.to_string()));
    assert_eq!(jwks.reads(), 2);
    assert_eq!(check(&verifier, &rotated).await, Ok(INVOKER.to_string()));
    assert_eq!(jwks.reads(), 2, "the new key is cached too");
}

#[tokio::test]
async fn made_up_key_ids_do_not_make_the_service_read_the_keys_each_time() {
    let jwks = Jwks::start().await;
    let keys = GoogleKeys::new(reqwest::Client::new(), jwks.url.clone())
        .with_refetch_pause(Duration::from_secs(3600));
    let verifier = OidcVerifier::new(policy(), keys);
    check(&verifier, &valid_token()).await.expect("valid");
    for n in 0..5 {
        let forged = signed(&google_claims(), &format!("made-up-{n}"));
        assert!(matches!(
            check(&verifier, &forged).await,
            Err(OidcError::UnknownKey { .. })
        ));
    }
    assert_eq!(jwks.reads(), 1);
}

#[tokio::test]
async fn unreachable_keys_are_a_failure_to_retry_not_a_refusal() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://127.0.0.1:{}/certs",
        listener.local_addr().expect("address").port()
    );
    drop(listener);
    let verifier = OidcVerifier::new(policy(), GoogleKeys::new(reqwest::Client::new(), url));
    let failed = check(&verifier, &valid_token()).await.expect_err("no keys");
    assert!(
        matches!(failed, OidcError::KeysUnavailable { .. }),
        "{failed:?}"
    );
    assert_eq!(failed.status(), 503, "Pub/Sub and Scheduler retry a 503");
}

/// An HS256 token whose secret is the published key's modulus: accepted by a verifier that
/// lets the token choose its algorithm.
fn hs256_token() -> String {
    let jwk = signer_jwk(KID);
    let secret = jwk["n"].as_str().expect("n").as_bytes().to_vec();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(KID.into());
    encode(
        &header,
        &google_claims(),
        &EncodingKey::from_secret(&secret),
    )
    .expect("signed")
}

fn unsigned_token() -> String {
    let part = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.",
        part(json!({"alg": "none", "typ": "JWT", "kid": KID})),
        part(google_claims())
    )
}
