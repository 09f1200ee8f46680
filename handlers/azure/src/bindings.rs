//! Azure plugged into the cloud-neutral pipeline (`escher_runtime::CloudBindings`): the fixes
//! and tag reader ([`AzureCloud`]), the CRITICAL / HIGH notices ([`AppInsightsNotices`]), the
//! secret store ([`KeyVaultSecrets`]) and the stores' bearer tokens ([`StorageTokens`]), all
//! on the Function's managed identity.
//!
//! Notices: Azure has no topic that e-mails its subscribers, as SNS does. The handler records
//! each CRITICAL / HIGH notice as an Application Insights custom event (`EscherNotice`, with
//! the severity, subject, resource and message as custom dimensions); a log alert rule per
//! severity, created by `extend`, fires an action group that e-mails (and texts, where
//! configured) the user. The "topic" of a notice is its severity's name.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use escher_core::fixes::FixRegistry;
use escher_core::pipeline::notify::{CloudCallError, SecretSource, TopicPublisher};
use escher_core::pipeline::CloudOperations;
use escher_core::remediate::{RemediationError, RequiredPermission};
use escher_core::resource_types::azure as azure_types;
use escher_core::store::StorageTokenSource;
use escher_core::UnifiedEvent;
use escher_runtime::{CloudBindings, RemoteCallMeter};
use serde_json::{json, Value};

use crate::arm::{ArmClient, ArmOperation, CallLog, HttpMethod};
use crate::{azure_fixes, disk_encryption, ids, nsg_ingress, storage_public};

pub(crate) const GET_VM: ArmOperation = ArmOperation {
    id: "VirtualMachines_Get",
    method: HttpMethod::Get,
    api_version: "2024-07-01",
    permission: "Microsoft.Compute/virtualMachines/read",
};

/// The reads the enrich step makes for tags (the resource's own GET, which carries them).
pub(crate) const TAG_PERMISSIONS: &[RequiredPermission] = &[
    RequiredPermission {
        action: "Microsoft.Storage/storageAccounts/read",
        resource: "subscription",
        why: "the handler reads a storage account's tags (environment, data classification) to set the alert's severity",
    },
    RequiredPermission {
        action: "Microsoft.Network/networkSecurityGroups/read",
        resource: "subscription",
        why: "the handler reads a network security group's tags to set the alert's severity",
    },
    RequiredPermission {
        action: "Microsoft.Compute/virtualMachines/read",
        resource: "subscription",
        why: "the handler reads a VM's tags to set the alert's severity",
    },
    RequiredPermission {
        action: "Microsoft.Compute/disks/read",
        resource: "subscription",
        why: "the handler reads a managed disk's tags to set the alert's severity",
    },
];

const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";
const VAULT_SCOPE: &str = "https://vault.azure.net/.default";
/// Key Vault's data-plane API version for reading a secret.
const VAULT_API: &str = "7.4";

/// Azure's fixes and its reading of a resource's tags.
pub struct AzureCloud {
    fixes: FixRegistry,
    arm: ArmClient,
    meter: Option<RemoteCallMeter>,
}

impl AzureCloud {
    pub fn new(arm: ArmClient, meter: Option<RemoteCallMeter>) -> Self {
        AzureCloud {
            fixes: azure_fixes(arm.clone(), meter.clone()),
            arm,
            meter,
        }
    }
}

/// The GET that returns a resource of this type, tags included.
fn tag_read(kind: &str, id: &str) -> Option<(&'static ArmOperation, String)> {
    let cut = |segment: &str| ids::through(id, segment);
    match kind {
        k if k == azure_types::STORAGE_ACCOUNT || k == azure_types::BLOB_CONTAINER => {
            Some((&storage_public::GET_ACCOUNT, cut("storageAccounts")?))
        }
        k if k == azure_types::NSG || k == azure_types::NSG_RULE => {
            Some((&nsg_ingress::GET_NSG, cut("networkSecurityGroups")?))
        }
        k if k == azure_types::VM => Some((&GET_VM, cut("virtualMachines")?)),
        k if k == azure_types::DISK => Some((&disk_encryption::GET_DISK, cut("disks")?)),
        _ => None,
    }
}

#[async_trait]
impl CloudOperations for AzureCloud {
    fn fixes(&self) -> &FixRegistry {
        &self.fixes
    }

    async fn resource_tags(
        &self,
        event: &UnifiedEvent,
    ) -> Result<Option<BTreeMap<String, String>>, RemediationError> {
        let Some((operation, path)) = tag_read(&event.resource.kind, &event.resource.id) else {
            return Ok(None);
        };
        let mut log = CallLog::metered(self.meter.as_ref());
        let resource = match log.call(&self.arm, operation, &path, &[], None).await {
            Ok(resource) => resource,
            // Deleted since the alert: no tags to read, and nothing to enrich.
            Err(e) if e.status == Some(404) => return Ok(None),
            Err(e) => return Err(log.fail(e)),
        };
        let tags = resource
            .get("tags")
            .and_then(Value::as_object)
            .map(|t| {
                t.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Some(tags))
    }
}

/// A token for `scope` from the identity, as a `CloudCallError` when there is none.
async fn token_for(
    credential: &dyn TokenCredential,
    scope: &str,
    operation: &str,
    target: &str,
) -> Result<String, CloudCallError> {
    credential
        .get_token(&[scope], None)
        .await
        .map(|t| t.token.secret().to_string())
        .map_err(|e| CloudCallError {
            operation: operation.to_string(),
            target: target.to_string(),
            message: format!("no token from the managed identity: {e}"),
            remedy: "check that the Function App's system-assigned identity is on".into(),
        })
}

/// Secrets in Key Vault. A secret's name is its full URL (`ESCHER_SECRETS_PREFIX` is the
/// vault's `https://<vault>.vault.azure.net/secrets/`), so a message can name it exactly.
pub struct KeyVaultSecrets {
    http: reqwest::Client,
    credential: Arc<dyn TokenCredential>,
}

impl KeyVaultSecrets {
    pub fn new(credential: Arc<dyn TokenCredential>, http: reqwest::Client) -> Self {
        KeyVaultSecrets { http, credential }
    }
}

#[async_trait]
impl SecretSource for KeyVaultSecrets {
    async fn secret(&self, name: &str) -> Result<Option<String>, CloudCallError> {
        let operation = "Key Vault GetSecret";
        let failed = |message: String, remedy: &str| CloudCallError {
            operation: operation.into(),
            target: name.to_string(),
            message,
            remedy: remedy.into(),
        };
        let token = token_for(self.credential.as_ref(), VAULT_SCOPE, operation, name).await?;
        let response = self
            .http
            .get(format!("{name}?api-version={VAULT_API}"))
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| {
                failed(
                    format!("could not reach Key Vault: {e}"),
                    "it is retried with the event",
                )
            })?;
        match response.status().as_u16() {
            404 => Ok(None),
            200 => {
                let body: Value = response
                    .json()
                    .await
                    .map_err(|e| failed(format!("unreadable answer: {e}"), "it is retried with the event"))?;
                Ok(body.get("value").and_then(Value::as_str).map(str::to_string))
            }
            status => Err(failed(
                format!("HTTP {status}"),
                "check that the Function's identity holds \"Key Vault Secrets User\" on the vault (escher-provision extend grants it)",
            )),
        }
    }
}

/// CRITICAL / HIGH notices as Application Insights custom events (see the module's doc). The
/// connection string's instrumentation key authorizes ingestion (the component `extend`
/// creates keeps local authentication for exactly this).
pub struct AppInsightsNotices {
    http: reqwest::Client,
    ingestion: String,
    instrumentation_key: String,
}

impl AppInsightsNotices {
    /// From `APPLICATIONINSIGHTS_CONNECTION_STRING`
    /// (`InstrumentationKey=…;IngestionEndpoint=https://…/;…`); `None` when it lacks either.
    pub fn from_connection_string(connection: &str, http: reqwest::Client) -> Option<Self> {
        let part = |key: &str| {
            connection.split(';').find_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case(key)
                    .then(|| v.trim().to_string())
            })
        };
        Some(AppInsightsNotices {
            http,
            ingestion: part("IngestionEndpoint")?.trim_end_matches('/').to_string(),
            instrumentation_key: part("InstrumentationKey")?,
        })
    }

    /// The telemetry envelope of one notice.
    fn envelope(&self, severity: &str, subject: &str, message: &str) -> Value {
        // Custom dimensions hold at most 8 192 characters each.
        let clipped: String = message.chars().take(8000).collect();
        json!({
            "name": format!("Microsoft.ApplicationInsights.{}.Event", self.instrumentation_key.replace('-', "")),
            "time": chrono::Utc::now().to_rfc3339(),
            "iKey": self.instrumentation_key,
            "tags": {"ai.cloud.role": "escher"},
            "data": {
                "baseType": "EventData",
                "baseData": {
                    "ver": 2,
                    "name": "EscherNotice",
                    "properties": {
                        "severity": severity,
                        "subject": subject,
                        "message": clipped,
                    }
                }
            }
        })
    }
}

#[async_trait]
impl TopicPublisher for AppInsightsNotices {
    async fn publish(
        &self,
        topic: &str,
        subject: &str,
        message: &str,
    ) -> Result<String, CloudCallError> {
        let operation = "Application Insights track";
        let failed = |message: String| {
            CloudCallError {
            operation: operation.into(),
            target: format!("the {topic} notice"),
            message,
            remedy: "check the Function App's APPLICATIONINSIGHTS_CONNECTION_STRING setting (escher-provision extend sets it)".into(),
        }
        };
        let response = self
            .http
            .post(format!("{}/v2/track", self.ingestion))
            .json(&self.envelope(topic, subject, message))
            .send()
            .await
            .map_err(|e| failed(format!("could not reach the ingestion endpoint: {e}")))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let accepted = body
            .get("itemsAccepted")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        if !status.is_success() || accepted != 1 {
            return Err(failed(format!("HTTP {}: {body}", status.as_u16())));
        }
        Ok(format!("EscherNotice/{topic}"))
    }
}

/// Azure Blob tokens for the stores, from the same identity.
#[derive(Debug)]
pub struct StorageTokens(pub Arc<dyn TokenCredential>);

#[async_trait]
impl StorageTokenSource for StorageTokens {
    async fn storage_token(&self) -> Result<(String, i64), String> {
        let token = self
            .0
            .get_token(&[STORAGE_SCOPE], None)
            .await
            .map_err(|e| e.to_string())?;
        Ok((
            token.token.secret().to_string(),
            token.expires_on.unix_timestamp(),
        ))
    }
}

/// Everything Azure plugs into the pipeline, on one identity. Notices go to Application
/// Insights when `app_insights` (the connection string) is set; secrets to Key Vault.
pub fn azure_bindings(
    arm: ArmClient,
    credential: Arc<dyn TokenCredential>,
    app_insights: Option<&str>,
    meter: Option<RemoteCallMeter>,
) -> CloudBindings {
    let http = arm.http().clone();
    CloudBindings {
        topics: app_insights
            .and_then(|c| AppInsightsNotices::from_connection_string(c, http.clone()))
            .map(|t| Arc::new(t) as Arc<dyn TopicPublisher>),
        secrets: Some(Arc::new(KeyVaultSecrets::new(credential.clone(), http))),
        cloud: Arc::new(AzureCloud::new(arm, meter)),
        store_tokens: Some(Arc::new(StorageTokens(credential))),
        redelivery: escher_core::pipeline::Redelivery::PerMessage,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_read_from_the_resource_a_child_belongs_to() {
        let rule = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/networkSecurityGroups/web/securityRules/rdp";
        let (operation, path) = tag_read(azure_types::NSG_RULE, rule).expect("readable");
        assert_eq!(operation.id, "NetworkSecurityGroups_Get");
        assert!(path.ends_with("/networkSecurityGroups/web"));
        assert!(tag_read("azure_key_vault", rule).is_none());
    }

    #[test]
    fn the_connection_string_gives_the_ingestion_endpoint_and_key() {
        let notices = AppInsightsNotices::from_connection_string(
            "InstrumentationKey=0000-11;IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/;LiveEndpoint=https://x/",
            reqwest::Client::new(),
        )
        .expect("parsed");
        assert_eq!(
            notices.ingestion,
            "https://westeurope-5.in.applicationinsights.azure.com"
        );
        let envelope = notices.envelope("critical", "S3", "m");
        assert_eq!(
            envelope["name"],
            "Microsoft.ApplicationInsights.000011.Event"
        );
        assert_eq!(
            envelope["data"]["baseData"]["properties"]["severity"],
            "critical"
        );
        assert!(AppInsightsNotices::from_connection_string(
            "InstrumentationKey=1",
            reqwest::Client::new()
        )
        .is_none());
    }
}
