//! Other clouds' credentials as Key Vault secrets of the deployment (`credentials-<cloud>`),
//! which the function's identity may read. Values are sent once and never read back.

use anyhow::{bail, Context as _};
use azure_core::credentials::TokenCredential;
use serde_json::{json, Value};

use crate::deploy::seam::{SecretList, StoredCredential};
use crate::deploy::OtherCloud;

const API_VERSION: &str = "7.4";
const SCOPE: &str = "https://vault.azure.net/.default";
const PREFIX: &str = "credentials-";

fn secret_name(cloud: OtherCloud) -> String {
    format!("{PREFIX}{}", cloud.as_str())
}

async fn bearer(credential: &dyn TokenCredential) -> anyhow::Result<String> {
    let token = credential
        .get_token(&[SCOPE], None)
        .await
        .context("no token for Key Vault from the Azure credential")?;
    Ok(format!("Bearer {}", token.token.secret()))
}

async fn answer(response: reqwest::Response, what: &str) -> anyhow::Result<Value> {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let message = body["error"]["message"].as_str().unwrap_or("no message");
        let hint = if status.as_u16() == 403 {
            "; you need the Key Vault Secrets Officer role on the vault, and its firewall must admit this machine: add its public IPv4 to [azure] operator_addresses in escher.toml, then run `escher-provision extend --cloud azure`"
        } else {
            ""
        };
        bail!("{what}: Key Vault answered {status}: {message}{hint}");
    }
    Ok(body)
}

pub async fn set(
    http: &reqwest::Client,
    credential: &dyn TokenCredential,
    vault: &str,
    cloud: OtherCloud,
    value: String,
) -> anyhow::Result<String> {
    let name = secret_name(cloud);
    let url = format!("{vault}secrets/{name}?api-version={API_VERSION}");
    let response = http
        .put(&url)
        .header("Authorization", bearer(credential).await?)
        .json(&json!({
            "value": value,
            "contentType": "application/json",
            "tags": {"escher:cloud": cloud.as_str()}
        }))
        .send()
        .await
        .with_context(|| format!("cannot reach Key Vault {vault}"))?;
    answer(response, &format!("storing secret {name}")).await?;
    Ok(format!("Key Vault secret {name} in {vault}"))
}

pub async fn list(
    http: &reqwest::Client,
    credential: &dyn TokenCredential,
    vault: &str,
) -> anyhow::Result<SecretList> {
    let mut url = format!("{vault}secrets?api-version={API_VERSION}");
    let mut secrets = Vec::new();
    loop {
        let response = http
            .get(&url)
            .header("Authorization", bearer(credential).await?)
            .send()
            .await
            .with_context(|| format!("cannot reach Key Vault {vault}"))?;
        let page = answer(response, "listing the secrets").await?;
        for item in page["value"].as_array().into_iter().flatten() {
            let id = item["id"].as_str().unwrap_or_default();
            let name = id.rsplit('/').next().unwrap_or_default();
            let Some(cloud) = name.strip_prefix(PREFIX) else {
                continue;
            };
            secrets.push(StoredCredential {
                cloud: cloud.to_string(),
                parameter: name.to_string(),
                last_modified: item["attributes"]["updated"]
                    .as_i64()
                    .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
                    .map(|t| t.to_rfc3339()),
            });
        }
        match page["nextLink"].as_str() {
            Some(next) if !next.is_empty() => url = next.to_string(),
            _ => break,
        }
    }
    Ok(SecretList {
        location: format!("{vault} (secrets named {PREFIX}<cloud>)"),
        secrets,
    })
}

pub async fn remove(
    http: &reqwest::Client,
    credential: &dyn TokenCredential,
    vault: &str,
    cloud: OtherCloud,
) -> anyhow::Result<String> {
    let name = secret_name(cloud);
    let url = format!("{vault}secrets/{name}?api-version={API_VERSION}");
    let response = http
        .delete(&url)
        .header("Authorization", bearer(credential).await?)
        .send()
        .await
        .with_context(|| format!("cannot reach Key Vault {vault}"))?;
    if response.status().as_u16() == 404 {
        bail!("no {} credentials are stored in {vault}", cloud.as_str());
    }
    answer(response, &format!("deleting secret {name}")).await?;
    Ok(format!(
        "{name} (Key Vault keeps it soft-deleted, recoverable, for its retention days)"
    ))
}
