//! The Slack webhook and PagerDuty key in Secret Manager: `projects/{project}/secrets/
//! {prefix}{name}/versions/latest:access`, through the REST client (its retries, and a 403
//! that names the permission to grant). A secret that does not exist is a channel the
//! user did not set up, not an error.

use async_trait::async_trait;
use base64::Engine as _;
use escher_core::pipeline::notify::{CloudCallError, SecretSource};
use serde_json::Value;

use crate::rest::{GcpClient, GcpOperation, HttpMethod, Service};

/// Reading a secret's latest version.
pub const ACCESS_SECRET_VERSION: GcpOperation = GcpOperation {
    id: "secretmanager.projects.secrets.versions.access",
    service: Service::SecretManager,
    method: HttpMethod::Get,
    permission: "secretmanager.versions.access",
    mutating: false,
    long_running: false,
};

/// Secrets of one project. The name the pipeline asks for is the secret's id
/// (`ESCHER_SECRETS_PREFIX` + `slack-webhook-url`).
#[derive(Debug, Clone)]
pub struct SecretManagerSecrets {
    client: GcpClient,
    project: String,
}

impl SecretManagerSecrets {
    pub fn new(client: GcpClient, project: impl Into<String>) -> Self {
        SecretManagerSecrets {
            client,
            project: project.into(),
        }
    }

    fn path(&self, name: &str) -> String {
        format!(
            "projects/{}/secrets/{name}/versions/latest:access",
            self.project
        )
    }
}

/// The secret's text from an `AccessSecretVersionResponse` (`payload.data`, base64).
fn payload_text(answer: &Value) -> Result<String, String> {
    let data = answer
        .pointer("/payload/data")
        .and_then(Value::as_str)
        .ok_or("the answer holds no payload.data")?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| format!("payload.data is not base64: {e}"))?;
    let text = String::from_utf8(bytes).map_err(|_| "the secret is not UTF-8 text".to_string())?;
    // A value pasted with its line end still works as a URL or key.
    Ok(text.trim().to_string())
}

#[async_trait]
impl SecretSource for SecretManagerSecrets {
    async fn secret(&self, name: &str) -> Result<Option<String>, CloudCallError> {
        let path = self.path(name);
        let failed = |message: String, remedy: &str| CloudCallError {
            operation: ACCESS_SECRET_VERSION.id.into(),
            target: format!("secret {name} in project {}", self.project),
            message,
            remedy: remedy.into(),
        };
        let answer = match self
            .client
            .call(&ACCESS_SECRET_VERSION, &path, &[], None)
            .await
        {
            Ok(answer) => answer,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) if e.is_transient() => {
                return Err(failed(e.problem.to_string(), "it is tried again with the event"))
            }
            Err(e) => {
                return Err(failed(
                    e.problem.to_string(),
                    "check that the service's account holds roles/secretmanager.secretAccessor on the secret (escher-provision extend grants it)",
                ))
            }
        };
        payload_text(&answer).map(Some).map_err(|message| {
            failed(
                message,
                "store the secret's value as text in its latest version",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_payload_is_decoded_to_its_text() {
        let answer = json!({
            "name": "projects/123/secrets/escher-slack-webhook-url/versions/3",
            "payload": {"data": "aHR0cHM6Ly9ob29rcy5zbGFjay5jb20vc2VydmljZXMvVDAvQjAvWFhYCg==", "dataCrc32c": "123"}
        });
        assert_eq!(
            payload_text(&answer).as_deref(),
            Ok("https://hooks.slack.com/services/T0/B0/XXX")
        );
        assert!(payload_text(&json!({"payload": {}})).is_err());
        assert!(
            payload_text(&json!({"payload": {"data": "//8="}})).is_err(),
            "not UTF-8"
        );
    }

    #[test]
    fn a_secret_is_read_from_its_latest_version() {
        let secrets = SecretManagerSecrets::new(
            GcpClient::new(
                crate::Endpoints::default(),
                std::sync::Arc::new(crate::NoToken),
            ),
            "shop-prod-4711",
        );
        assert_eq!(
            secrets.path("escher-prod-slack-webhook-url"),
            "projects/shop-prod-4711/secrets/escher-prod-slack-webhook-url/versions/latest:access"
        );
    }
}
