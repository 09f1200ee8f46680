//! Lambda on moto: a function with published versions and an alias on the newest (moto
//! never runs it, so its package is an empty zip).

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{FunctionCode, Runtime};

use super::sdk_error;
use crate::names::unique;

/// An empty zip archive: the end-of-central-directory record alone.
const EMPTY_ZIP: &[u8] = &[
    0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// A function with `versions` published versions and the alias `alias` on the newest (its
/// role made in IAM through `config`); returns the function's name.
pub async fn function_with_alias(
    lambda: &aws_sdk_lambda::Client,
    config: &aws_config::SdkConfig,
    account: &str,
    versions: u32,
    alias: &str,
) -> Result<String, String> {
    let role = unique("escher-fn-role");
    aws_sdk_iam::Client::new(config)
        .create_role()
        .role_name(&role)
        .assume_role_policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
        )
        .send()
        .await
        .map_err(|e| sdk_error(&format!("CreateRole {role}"), e))?;
    let name = unique("escher-fn");
    lambda
        .create_function()
        .function_name(&name)
        .runtime(Runtime::Python312)
        .handler("index.handler")
        .role(format!("arn:aws:iam::{account}:role/{role}"))
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(EMPTY_ZIP))
                .build(),
        )
        .send()
        .await
        .map_err(|e| sdk_error(&format!("CreateFunction {name}"), e))?;
    let mut newest = String::new();
    for n in 1..=versions.max(1) {
        lambda
            .update_function_configuration()
            .function_name(&name)
            .description(format!("release {n}"))
            .send()
            .await
            .map_err(|e| sdk_error(&format!("UpdateFunctionConfiguration {name}"), e))?;
        newest = lambda
            .publish_version()
            .function_name(&name)
            .send()
            .await
            .map_err(|e| sdk_error(&format!("PublishVersion {name}"), e))?
            .version()
            .unwrap_or_default()
            .to_string();
    }
    lambda
        .create_alias()
        .function_name(&name)
        .name(alias)
        .function_version(&newest)
        .send()
        .await
        .map_err(|e| sdk_error(&format!("CreateAlias {alias}"), e))?;
    Ok(name)
}

/// The version `alias` points at now.
pub async fn alias_version(
    lambda: &aws_sdk_lambda::Client,
    function: &str,
    alias: &str,
) -> Result<String, String> {
    Ok(lambda
        .get_alias()
        .function_name(function)
        .name(alias)
        .send()
        .await
        .map_err(|e| sdk_error(&format!("GetAlias {function}:{alias}"), e))?
        .function_version()
        .unwrap_or_default()
        .to_string())
}
