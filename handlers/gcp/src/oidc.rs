//! Who may call the service: every request must carry the OIDC token Google attaches to a
//! Pub/Sub push or a Cloud Scheduler call (`Authorization: Bearer <JWT>`), signed RS256 by
//! one of Google's keys, issued by `https://accounts.google.com`, for our audience, and for
//! the one service account the deployment lets invoke Escher (with a verified e-mail).
//!
//! Cloud Run could check `run.invoker` itself, but a service that also allows
//! unauthenticated calls (or a misconfigured IAM binding) would then run fixes for anyone;
//! checking the token here keeps that promise in the code that makes the changes.
//!
//! `jsonwebtoken` does the signature and the standard claims (it is small and runs on the
//! aws-lc-rs the TLS stack already links); `google-cloud-auth`'s `idtoken` verifier would do
//! the same with the whole Google client stack and a newer compiler than the workspace's.
//! Google's keys are fetched from its JWKS document, kept, and fetched again when a token
//! names a key not yet seen (Google rotates keys every few days) or after an hour.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

/// Where Google publishes the keys that sign its OIDC tokens.
pub const GOOGLE_JWKS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";
/// The issuers Google writes (both spellings appear in its tokens).
pub const GOOGLE_ISSUERS: [&str; 2] = ["https://accounts.google.com", "accounts.google.com"];
/// Clock skew allowed on `exp` between Google and this instance.
const LEEWAY_SECS: u64 = 30;
/// Keys are read again after this long even when every token's key is known.
const KEYS_MAX_AGE: Duration = Duration::from_secs(3600);
/// The shortest pause between two fetches caused by unknown key ids, so tokens naming
/// made-up keys cannot make the service hammer Google.
const DEFAULT_REFETCH_PAUSE: Duration = Duration::from_secs(30);

/// Why a request was refused. Never carries the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    #[error("no Authorization header: the push subscription or Scheduler job must send an OIDC token (pushConfig.oidcToken / httpTarget.oidcToken)")]
    MissingToken,
    #[error("the Authorization header is not `Bearer <token>`")]
    NotBearer,
    #[error("the bearer token is not a JWT ({0})")]
    Malformed(String),
    #[error("the token is signed with {0:?}; only Google's RS256 tokens are accepted")]
    UnsupportedAlgorithm(String),
    #[error("the token names key {kid:?}, which Google's key set at {url} does not hold")]
    UnknownKey { kid: String, url: String },
    #[error("the token's signature does not match Google's key {kid:?}")]
    BadSignature { kid: String },
    #[error("the token has expired")]
    Expired,
    #[error("the token was issued by {found:?}, not by Google (accounts.google.com)")]
    WrongIssuer { found: String },
    #[error("the token is for audience {found:?}, not {expected:?}; set the push subscription's or Scheduler job's OIDC audience to ESCHER_OIDC_AUDIENCE")]
    WrongAudience { found: String, expected: String },
    #[error("the token names {found:?}, not the invoker service account {expected:?} (ESCHER_INVOKER_SERVICE_ACCOUNT)")]
    WrongCaller { found: String, expected: String },
    #[error("the token's e-mail {email:?} is not verified")]
    EmailNotVerified { email: String },
    #[error("the token's claims are not usable ({0})")]
    BadClaims(String),
    #[error(
        "Google's signing keys could not be read from {url} ({message}); the caller will try again"
    )]
    KeysUnavailable { url: String, message: String },
}

impl OidcError {
    /// The HTTP status the caller gets: 503 when only this side failed (Pub/Sub and
    /// Scheduler retry), 403 for a genuine token of someone else, 401 otherwise.
    pub fn status(&self) -> u16 {
        match self {
            OidcError::KeysUnavailable { .. } => 503,
            OidcError::WrongCaller { .. } | OidcError::EmailNotVerified { .. } => 403,
            _ => 401,
        }
    }
}

/// Who the token says called, once it is verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub email: String,
}

/// What a token must say: the audience and the one service account that may invoke us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcPolicy {
    /// `ESCHER_OIDC_AUDIENCE`: the service's URL, as the subscription and job set it.
    pub audience: String,
    /// `ESCHER_INVOKER_SERVICE_ACCOUNT`: the e-mail the push subscription and Scheduler
    /// job sign their tokens as.
    pub invoker: String,
}

/// Google's keys by id, as last read.
struct KeySet {
    keys: HashMap<String, DecodingKey>,
    read_at: Instant,
}

/// Google's JWKS, cached.
pub struct GoogleKeys {
    http: reqwest::Client,
    url: String,
    refetch_pause: Duration,
    current: tokio::sync::RwLock<Option<KeySet>>,
    /// One fetch at a time; the others wait for it and use what it read.
    fetching: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for GoogleKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoogleKeys")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl GoogleKeys {
    pub fn new(http: reqwest::Client, url: impl Into<String>) -> Self {
        GoogleKeys {
            http,
            url: url.into(),
            refetch_pause: DEFAULT_REFETCH_PAUSE,
            current: tokio::sync::RwLock::new(None),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// The shortest pause between fetches caused by unknown key ids (tests rotate keys at once).
    pub fn with_refetch_pause(mut self, pause: Duration) -> Self {
        self.refetch_pause = pause;
        self
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    async fn cached(&self, kid: &str) -> Option<DecodingKey> {
        let current = self.current.read().await;
        let set = current.as_ref()?;
        if set.read_at.elapsed() > KEYS_MAX_AGE {
            return None;
        }
        set.keys.get(kid).cloned()
    }

    /// Reads the key set unless one is already held: done at start, so the first push does
    /// not wait for Google's keys. The number of keys read (0 when they were held already).
    pub async fn warm(&self) -> Result<usize, OidcError> {
        let _one_fetch = self.fetching.lock().await;
        if self.current.read().await.is_some() {
            return Ok(0);
        }
        let keys = self.fetch().await?;
        let count = keys.len();
        *self.current.write().await = Some(KeySet {
            keys,
            read_at: Instant::now(),
        });
        Ok(count)
    }

    /// The key `kid`, from the cache or a fresh read of the key set.
    pub async fn key(&self, kid: &str) -> Result<DecodingKey, OidcError> {
        if let Some(key) = self.cached(kid).await {
            return Ok(key);
        }
        let _one_fetch = self.fetching.lock().await;
        // Another request may have read the set while this one waited.
        if let Some(key) = self.cached(kid).await {
            return Ok(key);
        }
        let (stale_key, may_fetch) = {
            let current = self.current.read().await;
            match current.as_ref() {
                None => (None, true),
                Some(set) => (
                    set.keys.get(kid).cloned(),
                    set.read_at.elapsed() > KEYS_MAX_AGE
                        || set.read_at.elapsed() >= self.refetch_pause,
                ),
            }
        };
        if !may_fetch {
            return Err(self.unknown(kid));
        }
        match self.fetch().await {
            Ok(keys) => {
                let key = keys.get(kid).cloned();
                *self.current.write().await = Some(KeySet {
                    keys,
                    read_at: Instant::now(),
                });
                key.ok_or_else(|| self.unknown(kid))
            }
            // Google's keys live for days: a key read before still verifies while the
            // endpoint is unreachable.
            Err(e) => match stale_key {
                Some(key) => {
                    tracing::warn!(error = %e, "using Google's keys as last read");
                    Ok(key)
                }
                None => Err(e),
            },
        }
    }

    fn unknown(&self, kid: &str) -> OidcError {
        OidcError::UnknownKey {
            kid: kid.to_string(),
            url: self.url.clone(),
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, DecodingKey>, OidcError> {
        let unavailable = |message: String| OidcError::KeysUnavailable {
            url: self.url.clone(),
            message,
        };
        let response = self
            .http
            .get(&self.url)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        if !response.status().is_success() {
            return Err(unavailable(format!("HTTP {}", response.status().as_u16())));
        }
        let document: Value = response
            .json()
            .await
            .map_err(|e| unavailable(format!("not JSON: {e}")))?;
        let keys = rsa_keys(&document);
        if keys.is_empty() {
            return Err(unavailable("the document holds no RSA key".into()));
        }
        tracing::debug!(keys = keys.len(), url = %self.url, "read Google's signing keys");
        Ok(keys)
    }
}

/// The RSA keys of a JWKS document by id; keys of other kinds (or unreadable ones) are left
/// out rather than failing the set, since Google may publish others.
fn rsa_keys(document: &Value) -> HashMap<String, DecodingKey> {
    document
        .get("keys")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|k| k.get("kty").and_then(Value::as_str) == Some("RSA"))
        .filter_map(|k| {
            let kid = k.get("kid")?.as_str()?;
            let n = k.get("n")?.as_str()?;
            let e = k.get("e")?.as_str()?;
            let key = DecodingKey::from_rsa_components(n, e).ok()?;
            Some((kid.to_string(), key))
        })
        .collect()
}

/// The claims checked beyond jsonwebtoken's standard ones.
#[derive(Debug, Deserialize)]
struct GoogleClaims {
    #[serde(default)]
    email: Option<String>,
    /// `true`, or `"true"` in older tokens.
    #[serde(default)]
    email_verified: Option<Value>,
}

/// Checks tokens against the policy with Google's keys.
#[derive(Debug)]
pub struct OidcVerifier {
    policy: OidcPolicy,
    keys: GoogleKeys,
}

/// One part of a JWT, base64url-decoded and read as JSON.
fn jwt_part(token: &str, index: usize) -> Result<Value, OidcError> {
    let part = token
        .split('.')
        .nth(index)
        .ok_or_else(|| OidcError::Malformed("fewer than three parts".into()))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|e| OidcError::Malformed(format!("part {} is not base64url: {e}", index + 1)))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| OidcError::Malformed(format!("part {} is not JSON: {e}", index + 1)))
}

/// A bearer token as read from an `Authorization` header, nothing in it trusted yet.
#[derive(Debug, PartialEq, Eq)]
pub struct UnverifiedToken<'a> {
    pub token: &'a str,
    /// The key id its header names.
    pub kid: String,
}

/// What `OidcVerifier::verify` reads before it looks up a key: a `Bearer` JWT of three parts
/// whose header says RS256 and names a key. Only RS256 is accepted, so `none` and HMAC tokens
/// (signed with a public key as a secret) fail here. Bytes from the network: fuzzed.
pub fn read_bearer(authorization: Option<&str>) -> Result<UnverifiedToken<'_>, OidcError> {
    let header = authorization.ok_or(OidcError::MissingToken)?;
    let token = match header.trim().split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => return Err(OidcError::NotBearer),
    };
    if token.split('.').count() != 3 {
        return Err(OidcError::Malformed(
            "a JWT has three dot-separated parts".into(),
        ));
    }
    let header = jwt_part(token, 0)?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .unwrap_or("(none)");
    if alg != "RS256" {
        return Err(OidcError::UnsupportedAlgorithm(alg.to_string()));
    }
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .ok_or_else(|| OidcError::Malformed("the header names no key (kid)".into()))?;
    Ok(UnverifiedToken {
        token,
        kid: kid.to_string(),
    })
}

/// The claims of a token whose check failed, read unverified for the refusal's message only.
pub fn unverified_claims(token: &str) -> Value {
    jwt_part(token, 1).unwrap_or(Value::Null)
}

/// A claim as text for a refusal's message (`aud` may be a list).
fn claim_text(claims: &Value, name: &str) -> String {
    match claims.get(name) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "(none)".into(),
    }
}

impl OidcVerifier {
    pub fn new(policy: OidcPolicy, keys: GoogleKeys) -> Self {
        OidcVerifier { policy, keys }
    }

    pub fn policy(&self) -> &OidcPolicy {
        &self.policy
    }

    pub fn keys(&self) -> &GoogleKeys {
        &self.keys
    }

    /// Checks the request's `Authorization` header value.
    pub async fn verify(&self, authorization: Option<&str>) -> Result<Caller, OidcError> {
        let UnverifiedToken { token, kid } = read_bearer(authorization)?;
        let kid = kid.as_str();
        let key = self.keys.key(kid).await?;

        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = LEEWAY_SECS;
        validation.set_issuer(&GOOGLE_ISSUERS);
        validation.set_audience(&[&self.policy.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let claims = match jsonwebtoken::decode::<GoogleClaims>(token, &key, &validation) {
            Ok(data) => data.claims,
            Err(e) => {
                use jsonwebtoken::errors::ErrorKind;
                // Only read for the message once the signature is known good or irrelevant.
                let unverified = unverified_claims(token);
                return Err(match e.kind() {
                    ErrorKind::InvalidSignature => OidcError::BadSignature {
                        kid: kid.to_string(),
                    },
                    ErrorKind::ExpiredSignature => OidcError::Expired,
                    ErrorKind::InvalidIssuer => OidcError::WrongIssuer {
                        found: claim_text(&unverified, "iss"),
                    },
                    ErrorKind::InvalidAudience => OidcError::WrongAudience {
                        found: claim_text(&unverified, "aud"),
                        expected: self.policy.audience.clone(),
                    },
                    ErrorKind::InvalidAlgorithm => OidcError::UnsupportedAlgorithm("RS256".into()),
                    _ => OidcError::BadClaims(e.to_string()),
                });
            }
        };
        let email = claims.email.unwrap_or_default();
        if !email.eq_ignore_ascii_case(&self.policy.invoker) {
            return Err(OidcError::WrongCaller {
                found: email,
                expected: self.policy.invoker.clone(),
            });
        }
        let verified = match claims.email_verified {
            Some(Value::Bool(b)) => b,
            Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
            _ => false,
        };
        if !verified {
            return Err(OidcError::EmailNotVerified { email });
        }
        Ok(Caller { email })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_token_is_read_up_to_its_key_id_and_only_rs256_passes() {
        let part =
            |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let token = format!(
            "{}.{}.c2ln",
            part(json!({"alg": "RS256", "kid": "k1"})),
            part(json!({"aud": "https://elsewhere"}))
        );
        let header = format!(" Bearer {token} ");
        let read = read_bearer(Some(&header)).expect("read");
        assert_eq!(read.kid, "k1");
        assert_eq!(unverified_claims(read.token)["aud"], "https://elsewhere");
        let unsigned = format!("{}.{}.", part(json!({"alg": "none"})), part(json!({})));
        assert_eq!(
            read_bearer(Some(&format!("bearer {unsigned}"))),
            Err(OidcError::UnsupportedAlgorithm("none".into()))
        );
        let no_key = format!("{}.{}.c2ln", part(json!({"alg": "RS256"})), part(json!({})));
        assert!(matches!(
            read_bearer(Some(&format!("Bearer {no_key}"))),
            Err(OidcError::Malformed(_))
        ));
        assert_eq!(
            read_bearer(Some("Basic dXNlcjpwdw==")),
            Err(OidcError::NotBearer)
        );
        assert_eq!(read_bearer(None), Err(OidcError::MissingToken));
        assert_eq!(unverified_claims("not-a-jwt"), Value::Null);
    }

    #[test]
    fn only_rsa_keys_with_an_id_are_kept() {
        let document = json!({"keys": [
            {"kty": "RSA", "kid": "a", "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw", "e": "AQAB"},
            {"kty": "EC", "kid": "b", "crv": "P-256", "x": "x", "y": "y"},
            {"kty": "RSA", "n": "AQAB", "e": "AQAB"}
        ]});
        let keys = rsa_keys(&document);
        assert_eq!(keys.keys().collect::<Vec<_>>(), ["a"]);
    }

    #[test]
    fn only_a_failure_on_this_side_is_retried() {
        let unavailable = OidcError::KeysUnavailable {
            url: GOOGLE_JWKS_URL.into(),
            message: "timeout".into(),
        };
        assert_eq!(unavailable.status(), 503);
        assert_eq!(
            OidcError::WrongCaller {
                found: "x@y".into(),
                expected: "z@y".into()
            }
            .status(),
            403
        );
        assert_eq!(OidcError::Expired.status(), 401);
        assert_eq!(OidcError::MissingToken.status(), 401);
    }
}
