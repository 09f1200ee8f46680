//! Publishing the function package to a Flex Consumption app: one-deploy on the app's
//! deployment site (`POST /api/publish`, Kudu), which stores the zip in the app's
//! deployment container and restarts the app on it, then the deployment's status, read
//! from the body (Flex answers 200 also for a deployment that failed).

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use azure_core::credentials::TokenCredential;
use serde_json::Value;

use super::package::FunctionsPackage;

/// The deployment site takes Resource Manager tokens.
const SCOPE: &str = "https://management.azure.com/.default";
/// A role assignment made by the stack moments ago can take this long to reach the site
/// and the deployment storage (they answer 403 meanwhile).
const PROPAGATION: Duration = Duration::from_secs(120);
const DEPLOY_TIMEOUT: Duration = Duration::from_secs(600);

/// Kudu's deployment status codes.
const STATUS_FAILED: i64 = 3;
const STATUS_SUCCESS: i64 = 4;

async fn bearer(credential: &dyn TokenCredential) -> anyhow::Result<String> {
    let token = credential
        .get_token(&[SCOPE], None)
        .await
        .context("no token for the app's deployment site from the Azure credential")?;
    Ok(format!("Bearer {}", token.token.secret()))
}

/// The deployment site's latest deployment; `None` before the first.
async fn latest(
    http: &reqwest::Client,
    credential: &dyn TokenCredential,
    url: &str,
) -> anyhow::Result<Option<Value>> {
    let response = http
        .get(url)
        .header("Authorization", bearer(credential).await?)
        .send()
        .await
        .with_context(|| format!("cannot read the deployment status at {url}"))?;
    if !response.status().is_success() {
        return Ok(None);
    }
    Ok(response.json().await.ok())
}

pub async fn publish(
    http: &reqwest::Client,
    credential: &dyn TokenCredential,
    scm: &str,
    app: &str,
    package: &FunctionsPackage,
) -> anyhow::Result<()> {
    eprintln!(
        "publishing {} ({} KiB, sha256 {}) to {app}",
        package.path.display(),
        package.bytes.len() / 1024,
        &package.sha256[..12.min(package.sha256.len())]
    );
    let status_url = format!("{scm}/api/deployments/latest");
    // `latest` names the previous deployment until this one is received: it is told apart
    // by its id.
    let previous = latest(http, credential, &status_url)
        .await?
        .and_then(|d| d["id"].as_str().map(str::to_string));
    let url = format!("{scm}/api/publish?type=zip&RemoteBuild=false");
    let started = Instant::now();
    loop {
        let response = http
            .post(&url)
            .header("Authorization", bearer(credential).await?)
            .header("Content-Type", "application/zip")
            .body(package.bytes.clone())
            .send()
            .await
            .with_context(|| format!("cannot reach the deployment site of {app} ({scm})"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let storage_denied = status.as_u16() == 400 && text.contains("BlobUploadFailedException");
        if (status.as_u16() == 403 || storage_denied) && started.elapsed() < PROPAGATION {
            eprintln!("the app's new role assignments are not in effect yet; trying again in 10 s");
            tokio::time::sleep(Duration::from_secs(10)).await;
            continue;
        }
        if !status.is_success() {
            bail!(
                "publishing the package to {app} failed: the deployment site answered {status}: {}",
                text.trim()
            );
        }
        break;
    }
    let started = Instant::now();
    loop {
        let body = latest(http, credential, &status_url)
            .await?
            .filter(|d| {
                d["id"]
                    .as_str()
                    .is_some_and(|id| Some(id) != previous.as_deref())
            })
            .unwrap_or(Value::Null);
        let complete = body["complete"].as_bool().unwrap_or(false);
        match body["status"].as_i64() {
            Some(STATUS_SUCCESS) if complete => {
                eprintln!("package deployed to {app}");
                return Ok(());
            }
            Some(STATUS_FAILED) => bail!(
                "the package deployment to {app} failed: {} (log: {})",
                body["status_text"]
                    .as_str()
                    .filter(|t| !t.is_empty())
                    .unwrap_or("no reason given"),
                body["log_url"]
                    .as_str()
                    .unwrap_or("see Deployment Center in the portal")
            ),
            _ => {}
        }
        if started.elapsed() > DEPLOY_TIMEOUT {
            bail!("the package deployment to {app} has not finished after 10 minutes; see Deployment Center in the portal");
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
}
