//! `credentials` on AWS: the other clouds' credentials as SSM SecureStrings under the
//! stack's path, encrypted with the stack's key.

use std::process::ExitCode;

use anyhow::{bail, Context as _};
use serde::Serialize;

use super::session::*;
use crate::deploy::{CredentialsArgs, CredentialsCommand, CredentialsSetArgs, OtherCloud};

/// `/escher/<stack>/credentials/`: inside the path the functions may read.
pub(super) fn credentials_path(stack: &str) -> String {
    format!("/escher/{stack}/credentials/")
}

#[derive(Debug, Serialize)]
pub(super) struct StoredCredential {
    cloud: String,
    parameter: String,
    last_modified: Option<String>,
}

pub async fn credentials(args: CredentialsArgs) -> anyhow::Result<ExitCode> {
    let session = connect(&args.access).await?;
    let prefix = credentials_path(&session.stack);
    match args.command {
        CredentialsCommand::Set(set) => {
            let value = credential_value(&set)?;
            let name = format!("{prefix}{}", set.cloud.as_str());
            session.call(
                session
                    .ssm
                    .put_parameter()
                    .name(&name)
                    .description(format!(
                        "Escher Extend: {} credentials for the functions of stack {}",
                        set.cloud.as_str(),
                        session.stack
                    ))
                    .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
                    // The stack's key: the functions' roles may decrypt with it.
                    .key_id(format!("alias/{}", session.stack))
                    .value(value)
                    .overwrite(true)
                    .send()
                    .await,
                "ssm:PutParameter",
                &format!("parameter {name}"),
            )?;
            println!(
                "stored the {} credentials as SecureString {name}",
                set.cloud.as_str()
            );
        }
        CredentialsCommand::List { json } => {
            let mut stored = Vec::new();
            let mut next = None;
            loop {
                let out = session.call(
                    session
                        .ssm
                        .get_parameters_by_path()
                        .path(&prefix)
                        .with_decryption(false)
                        .set_next_token(next)
                        .send()
                        .await,
                    "ssm:GetParametersByPath",
                    &format!("path {prefix}"),
                )?;
                for p in out.parameters() {
                    let name = p.name().unwrap_or_default().to_string();
                    stored.push(StoredCredential {
                        cloud: name.trim_start_matches(&prefix).to_string(),
                        parameter: name,
                        last_modified: p.last_modified_date().map(|d| d.to_string()),
                    });
                }
                next = out.next_token().map(str::to_string);
                if next.is_none() {
                    break;
                }
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&stored)?);
            } else if stored.is_empty() {
                println!("no credentials stored under {prefix}");
            } else {
                let mut t = crate::output::table(vec!["cloud", "parameter", "last modified"]);
                for c in &stored {
                    t.add_row(vec![
                        c.cloud.clone(),
                        c.parameter.clone(),
                        c.last_modified.clone().unwrap_or_default(),
                    ]);
                }
                println!("{t}");
            }
        }
        CredentialsCommand::Remove { cloud } => {
            let name = format!("{prefix}{}", cloud.as_str());
            session.call(
                session.ssm.delete_parameter().name(&name).send().await,
                "ssm:DeleteParameter",
                &format!("parameter {name}"),
            )?;
            println!("removed {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The JSON the functions read; secrets come from the environment or a file, never argv.
pub(super) fn credential_value(set: &CredentialsSetArgs) -> anyhow::Result<String> {
    match set.cloud {
        OtherCloud::Azure => {
            let secret = std::env::var(&set.client_secret_env).with_context(|| {
                format!(
                    "the Azure client secret is read from ${}, which is not set",
                    set.client_secret_env
                )
            })?;
            Ok(serde_json::json!({
                "tenant_id": set.tenant_id.as_deref().context("--tenant-id is required for azure")?,
                "client_id": set.client_id.as_deref().context("--client-id is required for azure")?,
                "client_secret": secret,
            })
            .to_string())
        }
        OtherCloud::Gcp => {
            let path = set
                .key_file
                .as_ref()
                .context("--key-file is required for gcp")?;
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let key: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a service account JSON key", path.display()))?;
            if key.get("type").and_then(|t| t.as_str()) != Some("service_account") {
                bail!(
                    "{} is not a service account key (its `type` is not `service_account`)",
                    path.display()
                );
            }
            Ok(key.to_string())
        }
    }
}
