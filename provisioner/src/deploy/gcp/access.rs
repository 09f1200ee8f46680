//! Google credentials and the project on the laptop, found the way Google's own tools find
//! them, so a user who can run `gcloud` can run `escher-provision`:
//!
//! 1. `GOOGLE_APPLICATION_CREDENTIALS`: a key file (service account, user, impersonation or
//!    workload identity federation), read by `google-cloud-auth`;
//! 2. gcloud's application default credentials
//!    (`gcloud auth application-default login`), in gcloud's config folder;
//! 3. gcloud's own login (`gcloud auth login`): tokens from `gcloud auth print-access-token`.
//!
//! The project comes from `--project`, else escher.toml, else `GOOGLE_CLOUD_PROJECT` /
//! `CLOUDSDK_CORE_PROJECT`, else the credentials file's project, else gcloud's configured
//! project. Nothing here prints or logs a token.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use escher_gcp::rest::{TokenError, TokenSource};
use google_cloud_auth::credentials::{
    external_account, impersonated, service_account, user_account, AccessTokenCredentials,
};
use serde_json::Value;
use tokio::sync::Mutex;

/// The scope every call of the CLI needs (IAM decides what it may do).
const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

/// How long a token from `gcloud auth print-access-token` is used (gcloud's last an hour).
const GCLOUD_TOKEN_REUSE: Duration = Duration::from_secs(45 * 60);

/// Where the credentials came from, for messages and `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// A file named by `GOOGLE_APPLICATION_CREDENTIALS`.
    KeyFile(PathBuf),
    /// gcloud's application default credentials.
    ApplicationDefault(PathBuf),
    /// gcloud's own login.
    Gcloud,
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSource::KeyFile(path) => {
                write!(
                    f,
                    "the key file {} (GOOGLE_APPLICATION_CREDENTIALS)",
                    path.display()
                )
            }
            CredentialSource::ApplicationDefault(path) => {
                write!(f, "application default credentials ({})", path.display())
            }
            CredentialSource::Gcloud => {
                f.write_str("gcloud's login (gcloud auth print-access-token)")
            }
        }
    }
}

/// What the laptop's environment offers; read once from the process, passed in by tests.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// `GOOGLE_APPLICATION_CREDENTIALS`.
    pub credentials_file: Option<PathBuf>,
    /// gcloud's config folder: `CLOUDSDK_CONFIG`, else `~/.config/gcloud`.
    pub gcloud_config: Option<PathBuf>,
    /// `GOOGLE_CLOUD_PROJECT`, else `CLOUDSDK_CORE_PROJECT`.
    pub project: Option<String>,
    /// The gcloud program, when it is on the PATH.
    pub gcloud: Option<PathBuf>,
}

impl Environment {
    /// The process's environment (tests build their own).
    pub fn from_process() -> Environment {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let gcloud_config = var("CLOUDSDK_CONFIG")
            .map(PathBuf::from)
            .or_else(|| var("HOME").map(|home| Path::new(&home).join(".config").join("gcloud")));
        let gcloud = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("gcloud"))
                .find(|candidate| candidate.is_file())
        });
        Environment {
            credentials_file: var("GOOGLE_APPLICATION_CREDENTIALS").map(PathBuf::from),
            gcloud_config,
            project: var("GOOGLE_CLOUD_PROJECT").or_else(|| var("CLOUDSDK_CORE_PROJECT")),
            gcloud,
        }
    }
}

/// The credentials and project `extend --cloud gcp` works with.
#[derive(Debug, Clone)]
pub struct GoogleAccess {
    pub tokens: Arc<dyn TokenSource>,
    pub source: CredentialSource,
    pub project: String,
    /// Who the calls run as, when the credentials say (a service account's e-mail).
    pub identity: Option<String>,
}

/// Why no credentials or no project could be found.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("no Google Cloud credentials found: run `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS to a service account key file")]
    NoCredentials,
    #[error("the credentials file {path} could not be read ({message}); check the path in GOOGLE_APPLICATION_CREDENTIALS, or run `gcloud auth application-default login` again")]
    Unreadable { path: PathBuf, message: String },
    #[error("the credentials file {path} is not usable ({message}); create a new one with `gcloud auth application-default login` or a new service account key")]
    Unusable { path: PathBuf, message: String },
    #[error("no Google Cloud project: pass --project, set `project` under [gcp] in escher.toml, or run `gcloud config set project PROJECT_ID`")]
    NoProject,
}

/// The process's credentials and project for a command: `flag` (`--project`), else
/// escher.toml's `[gcp] project`, else as [`find`] looks; with the environment read.
pub async fn find_for_command(
    flag: Option<&str>,
    config: &crate::config::EscherConfig,
) -> Result<(Environment, GoogleAccess), AccessError> {
    let project = flag
        .map(str::to_string)
        .or_else(|| config.gcp.project.as_ref().map(|p| p.to_string()));
    let env = Environment::from_process();
    let found = find(&env, project.as_deref()).await?;
    Ok((env, found))
}

/// Finds the credentials and the project. `project`: `--project`, else escher.toml's.
pub async fn find(env: &Environment, project: Option<&str>) -> Result<GoogleAccess, AccessError> {
    let file = match &env.credentials_file {
        Some(path) => Some((path.clone(), CredentialSource::KeyFile(path.clone()))),
        None => env
            .gcloud_config
            .as_ref()
            .map(|dir| dir.join("application_default_credentials.json"))
            .filter(|path| path.is_file())
            .map(|path| (path.clone(), CredentialSource::ApplicationDefault(path))),
    };
    let (tokens, source, file_project, identity): (Arc<dyn TokenSource>, _, _, _) = match file {
        Some((path, source)) => {
            let json = read_json(&path)?;
            let credentials = from_json(&json).map_err(|message| AccessError::Unusable {
                path: path.clone(),
                message,
            })?;
            let text = |key: &str| json[key].as_str().map(str::to_string);
            let project = text("quota_project_id").or_else(|| text("project_id"));
            let identity = text("client_email");
            let tokens = Arc::new(LibraryTokens {
                credentials,
                source: source.to_string(),
            });
            (tokens as Arc<dyn TokenSource>, source, project, identity)
        }
        None => match &env.gcloud {
            Some(program) => {
                let tokens = Arc::new(GcloudTokens::new(program.clone()));
                (
                    tokens as Arc<dyn TokenSource>,
                    CredentialSource::Gcloud,
                    None,
                    None,
                )
            }
            None => return Err(AccessError::NoCredentials),
        },
    };
    let project = match project
        .map(str::to_string)
        .or_else(|| env.project.clone())
        .or(file_project)
    {
        Some(p) => p,
        None => match &env.gcloud {
            Some(program) => gcloud_value(program, &["config", "get-value", "project"])
                .await
                .ok_or(AccessError::NoProject)?,
            None => return Err(AccessError::NoProject),
        },
    };
    Ok(GoogleAccess {
        tokens,
        source,
        project,
        identity,
    })
}

fn read_json(path: &Path) -> Result<Value, AccessError> {
    let text = std::fs::read_to_string(path).map_err(|e| AccessError::Unreadable {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| AccessError::Unusable {
        path: path.to_path_buf(),
        message: format!("not JSON: {e}"),
    })
}

/// Google's library for the file's `type`.
fn from_json(json: &Value) -> Result<AccessTokenCredentials, String> {
    let scopes = [CLOUD_PLATFORM];
    let built = match json["type"].as_str() {
        Some("authorized_user") => user_account::Builder::new(json.clone())
            .with_scopes(scopes)
            .build_access_token_credentials(),
        Some("service_account") => service_account::Builder::new(json.clone())
            .with_access_specifier(service_account::AccessSpecifier::from_scopes(scopes))
            .build_access_token_credentials(),
        Some("impersonated_service_account") => impersonated::Builder::new(json.clone())
            .with_scopes(scopes)
            .build_access_token_credentials(),
        Some("external_account") => external_account::Builder::new(json.clone())
            .with_scopes(scopes)
            .build_access_token_credentials(),
        Some(other) => return Err(format!("credentials of type `{other}` are not supported")),
        None => return Err("it has no `type`".into()),
    };
    built.map_err(|e| e.to_string())
}

/// Tokens from Google's library (which keeps and refreshes them).
struct LibraryTokens {
    credentials: AccessTokenCredentials,
    source: String,
}

impl fmt::Debug for LibraryTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LibraryTokens")
            .field("source", &self.source)
            .finish()
    }
}

#[async_trait::async_trait]
impl TokenSource for LibraryTokens {
    async fn token(&self) -> Result<String, TokenError> {
        match self.credentials.access_token().await {
            Ok(token) => Ok(token.token),
            Err(e) => Err(TokenError::Credentials(format!(
                "{} gave no access token ({e}); sign in again with `gcloud auth application-default login`, or check the key file",
                self.source
            ))),
        }
    }
}

/// Tokens from `gcloud auth print-access-token`, kept for a while (gcloud takes a second).
pub struct GcloudTokens {
    program: PathBuf,
    kept: Mutex<Option<(String, Instant)>>,
}

impl GcloudTokens {
    pub fn new(program: PathBuf) -> GcloudTokens {
        GcloudTokens {
            program,
            kept: Mutex::new(None),
        }
    }
}

impl fmt::Debug for GcloudTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcloudTokens")
            .field("program", &self.program)
            .finish()
    }
}

#[async_trait::async_trait]
impl TokenSource for GcloudTokens {
    async fn token(&self) -> Result<String, TokenError> {
        let mut kept = self.kept.lock().await;
        if let Some((token, at)) = kept.as_ref() {
            if at.elapsed() < GCLOUD_TOKEN_REUSE {
                return Ok(token.clone());
            }
        }
        let output = tokio::process::Command::new(&self.program)
            .args(["auth", "print-access-token", "--quiet"])
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(|e| {
                TokenError::Credentials(format!(
                    "{} could not be run ({e}); install the Google Cloud CLI or set GOOGLE_APPLICATION_CREDENTIALS",
                    self.program.display()
                ))
            })?;
        let token = String::from_utf8_lossy(&output.stdout).trim().to_string();
        if !output.status.success() || token.is_empty() {
            let said = String::from_utf8_lossy(&output.stderr);
            let said = said.trim().lines().last().unwrap_or("no reason given");
            return Err(TokenError::Credentials(format!(
                "gcloud gave no access token ({said}); sign in with `gcloud auth login` or `gcloud auth application-default login`"
            )));
        }
        *kept = Some((token.clone(), Instant::now()));
        Ok(token)
    }
}

/// One value gcloud prints (`config get-value project`); `None` when unset or failing.
pub(crate) async fn gcloud_value(program: &Path, args: &[&str]) -> Option<String> {
    let output = tokio::process::Command::new(program)
        .args(args)
        .arg("--quiet")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .ok()?;
    let value = String::from_utf8_lossy(&output.stdout).trim().to_string();
    (output.status.success() && !value.is_empty() && value != "(unset)").then_some(value)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use axum::extract::State;
    use axum::routing::post;
    use axum::{Json, Router};
    use serde_json::json;

    use super::*;

    const OIDC_KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../handlers/gcp/tests/oidc");

    /// Google's OAuth token endpoint on loopback: answers a refresh-token grant (sent as
    /// JSON, as Google's library sends it) for one client and records every request.
    async fn token_endpoint() -> (String, Arc<std::sync::Mutex<Vec<Value>>>) {
        type Seen = Arc<std::sync::Mutex<Vec<Value>>>;
        async fn grant(State(seen): State<Seen>, Json(request): Json<Value>) -> Json<Value> {
            let good = request["grant_type"] == "refresh_token"
                && request["refresh_token"] == "1//refresh-me"
                && request["client_id"] == "764086051850-test.apps.googleusercontent.com";
            seen.lock().unwrap_or_else(|e| e.into_inner()).push(request);
            Json(if good {
                json!({"access_token": "ya29.from-refresh", "expires_in": 3599, "token_type": "Bearer", "scope": CLOUD_PLATFORM})
            } else {
                json!({"error": "invalid_grant"})
            })
        }
        let seen: Seen = Arc::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/token", listener.local_addr().expect("address"));
        let app = Router::new()
            .route("/token", post(grant))
            .with_state(seen.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (url, seen)
    }

    fn fake_gcloud(dir: &Path, script: &str) -> PathBuf {
        let path = dir.join("gcloud");
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\necho \"$@\" >> \"{}/calls\"\n{script}\n",
                dir.display()
            ),
        )
        .expect("write gcloud");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }

    #[tokio::test]
    async fn gclouds_application_default_login_is_found_and_refreshed_with_its_project() {
        let (token_uri, seen) = token_endpoint().await;
        let config = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            config.path().join("application_default_credentials.json"),
            json!({
                "type": "authorized_user",
                "client_id": "764086051850-test.apps.googleusercontent.com",
                "client_secret": "d-FL95Q19q7MQmFpd7hHD0Ty",
                "refresh_token": "1//refresh-me",
                "quota_project_id": "shop-prod-4711",
                "token_uri": token_uri,
            })
            .to_string(),
        )
        .expect("write ADC");
        let env = Environment {
            gcloud_config: Some(config.path().to_path_buf()),
            ..Environment::default()
        };
        let access = find(&env, None).await.expect("credentials");
        assert_eq!(access.project, "shop-prod-4711");
        assert!(matches!(
            access.source,
            CredentialSource::ApplicationDefault(_)
        ));
        assert_eq!(
            access.tokens.token().await.expect("token"),
            "ya29.from-refresh"
        );
        assert_eq!(
            access.tokens.token().await.expect("token"),
            "ya29.from-refresh"
        );
        assert_eq!(
            seen.lock().unwrap_or_else(|e| e.into_inner()).len(),
            1,
            "the token is kept"
        );

        let other = find(&env, Some("shop-staging-17"))
            .await
            .expect("credentials");
        assert_eq!(
            other.project, "shop-staging-17",
            "--project wins over the file's"
        );
    }

    #[tokio::test]
    async fn a_service_account_key_signs_its_own_scoped_tokens() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Service account keys hold PKCS#8, as Google issues them.
        let pkcs8 = std::process::Command::new("openssl")
            .args(["pkcs8", "-topk8", "-nocrypt", "-in"])
            .arg(format!("{OIDC_KEYS}/signer.pem"))
            .output()
            .expect("openssl converts the test key");
        let key = String::from_utf8(pkcs8.stdout).expect("a PEM");
        assert!(key.contains("BEGIN PRIVATE KEY"), "{key}");
        let path = dir.path().join("key.json");
        std::fs::write(
            &path,
            json!({
                "type": "service_account",
                "project_id": "shop-prod-4711",
                "private_key_id": "escher-test-signer",
                "private_key": key,
                "client_email": "escher-deployer@shop-prod-4711.iam.gserviceaccount.com",
                "client_id": "105",
                "token_uri": "https://oauth2.googleapis.com/token",
            })
            .to_string(),
        )
        .expect("write key");
        let env = Environment {
            credentials_file: Some(path.clone()),
            ..Environment::default()
        };
        let access = find(&env, None).await.expect("credentials");
        assert_eq!(access.project, "shop-prod-4711");
        assert_eq!(
            access.identity.as_deref(),
            Some("escher-deployer@shop-prod-4711.iam.gserviceaccount.com")
        );
        assert_eq!(access.source, CredentialSource::KeyFile(path));
        let token = access.tokens.token().await.expect("token");
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_str(
            &std::fs::read_to_string(format!("{OIDC_KEYS}/signer.jwk.json")).expect("jwk"),
        )
        .expect("a JWK");
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.validate_aud = false;
        let claims = jsonwebtoken::decode::<Value>(
            &token,
            &jsonwebtoken::DecodingKey::from_jwk(&jwk).expect("a key"),
            &validation,
        )
        .expect("a token signed by the service account's key")
        .claims;
        assert_eq!(
            claims["iss"],
            "escher-deployer@shop-prod-4711.iam.gserviceaccount.com"
        );
        assert_eq!(claims["scope"], CLOUD_PLATFORM);
    }

    #[tokio::test]
    async fn without_a_credentials_file_gclouds_login_gives_tokens_and_the_project() {
        let dir = tempfile::tempdir().expect("tempdir");
        let gcloud = fake_gcloud(
            dir.path(),
            r#"case "$1 $2" in
  "auth print-access-token") echo ya29.from-gcloud ;;
  "config get-value") echo shop-prod-4711 ;;
esac"#,
        );
        let env = Environment {
            gcloud_config: Some(dir.path().join("no-adc-here")),
            gcloud: Some(gcloud),
            ..Environment::default()
        };
        let access = find(&env, None).await.expect("credentials");
        assert_eq!(access.source, CredentialSource::Gcloud);
        assert_eq!(access.project, "shop-prod-4711");
        assert_eq!(
            access.tokens.token().await.expect("token"),
            "ya29.from-gcloud"
        );
        assert_eq!(
            access.tokens.token().await.expect("token"),
            "ya29.from-gcloud"
        );
        let calls = std::fs::read_to_string(dir.path().join("calls")).expect("calls");
        assert_eq!(
            calls
                .lines()
                .filter(|l| l.starts_with("auth print-access-token"))
                .count(),
            1,
            "gcloud is asked once, then its token kept: {calls}"
        );
    }

    #[tokio::test]
    async fn a_gcloud_without_a_login_says_how_to_sign_in() {
        let dir = tempfile::tempdir().expect("tempdir");
        let gcloud = fake_gcloud(
            dir.path(),
            "echo 'ERROR: (gcloud.auth.print-access-token) You do not currently have an active account selected.' >&2\nexit 1",
        );
        let env = Environment {
            gcloud: Some(gcloud),
            ..Environment::default()
        };
        let access = find(&env, Some("shop-prod-4711")).await.expect("a source");
        let error = access
            .tokens
            .token()
            .await
            .expect_err("no login")
            .to_string();
        assert!(
            error.contains("You do not currently have an active account"),
            "{error}"
        );
        assert!(error.contains("gcloud auth login"), "{error}");
    }

    #[tokio::test]
    async fn nothing_found_says_what_to_run() {
        let error = find(&Environment::default(), Some("p"))
            .await
            .expect_err("no credentials");
        assert!(
            error
                .to_string()
                .contains("gcloud auth application-default login"),
            "{error}"
        );

        let dir = tempfile::tempdir().expect("tempdir");
        let gcloud = fake_gcloud(dir.path(), "echo '(unset)'");
        let env = Environment {
            gcloud: Some(gcloud),
            ..Environment::default()
        };
        let error = find(&env, None).await.expect_err("no project").to_string();
        assert!(error.contains("--project"), "{error}");
        assert!(error.contains("gcloud config set project"), "{error}");

        let broken = dir.path().join("broken.json");
        std::fs::write(&broken, "{\"type\": \"service_account\"}").expect("write");
        let env = Environment {
            credentials_file: Some(broken.clone()),
            ..Environment::default()
        };
        let error = find(&env, Some("p"))
            .await
            .expect_err("unusable")
            .to_string();
        assert!(error.contains(&broken.display().to_string()), "{error}");
    }
}
