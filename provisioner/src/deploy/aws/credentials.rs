//! `credentials` on AWS: the other clouds' credentials as SSM SecureStrings under the
//! stack's path, encrypted with the stack's key.

use super::session::AwsSession;
use crate::deploy::seam::{SecretList, StoredCredential};
use crate::deploy::OtherCloud;

/// `/escher/<stack>/credentials/`: inside the path the functions may read.
pub(super) fn credentials_path(stack: &str) -> String {
    format!("/escher/{stack}/credentials/")
}

/// Stores `value` as the SecureString `/escher/<stack>/credentials/<cloud>`; returns it, in
/// words.
pub(super) async fn store(
    session: &AwsSession,
    cloud: OtherCloud,
    value: String,
) -> anyhow::Result<String> {
    let prefix = credentials_path(&session.stack);
    let name = format!("{prefix}{}", cloud.as_str());
    session.call(
        session
            .ssm
            .put_parameter()
            .name(&name)
            .description(format!(
                "Escher Extend: {} credentials for the functions of stack {}",
                cloud.as_str(),
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
    Ok(format!("SecureString {name}"))
}

/// The stored credentials' names and dates (never decrypted).
pub(super) async fn list(session: &AwsSession) -> anyhow::Result<SecretList> {
    let prefix = credentials_path(&session.stack);
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
    Ok(SecretList {
        location: prefix,
        secrets: stored,
    })
}

/// Deletes one cloud's SecureString; returns its name.
pub(super) async fn remove(session: &AwsSession, cloud: OtherCloud) -> anyhow::Result<String> {
    let name = format!("{}{}", credentials_path(&session.stack), cloud.as_str());
    session.call(
        session.ssm.delete_parameter().name(&name).send().await,
        "ssm:DeleteParameter",
        &format!("parameter {name}"),
    )?;
    Ok(name)
}
