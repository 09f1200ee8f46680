//! A Lambda alias back on the version before the one a failed deployment pointed it at.

use std::collections::HashMap;

use aws_sdk_lambda::types::AliasRoutingConfiguration;
use chrono::{DateTime, Utc};
use escher_core::remediate::{RemediationError, VerificationCheck};
use escher_core::UnifiedEvent;

use super::{Marker, Reading, MARKER_TAG};
use crate::calls::{Access, CallLog};
use crate::clients::AwsClients;
use crate::report::check;

/// The function and alias an errors alarm watches (`Resource` = `<function>:<alias>`).
pub(super) fn names(event: &UnifiedEvent) -> Option<(String, String)> {
    let dimensions = event.resource.metadata.get("dimensions")?;
    let function = dimensions.get("FunctionName")?.as_str()?;
    let alias = dimensions
        .get("Resource")?
        .as_str()?
        .strip_prefix(function)?
        .strip_prefix(':')?;
    (!alias.is_empty() && !alias.bytes().all(|b| b.is_ascii_digit()))
        .then(|| (function.to_string(), alias.to_string()))
}

/// The version the alias points at, and the versions its traffic is split to.
async fn alias_versions(
    clients: &AwsClients,
    function: &str,
    alias: &str,
    log: &mut CallLog,
) -> Result<(String, Vec<String>), RemediationError> {
    let out = log
        .must(
            "lambda",
            "GetAlias",
            &format!("{function}:{alias}"),
            Access::Read,
            clients
                .lambda()
                .get_alias()
                .function_name(function)
                .name(alias)
                .send(),
        )
        .await?;
    let split = out
        .routing_config()
        .and_then(|r| r.additional_version_weights())
        .map(|w| w.keys().cloned().collect())
        .unwrap_or_default();
    Ok((
        out.function_version().unwrap_or_default().to_string(),
        split,
    ))
}

pub(super) async fn read(
    clients: &AwsClients,
    function: &str,
    alias: &str,
    log: &mut CallLog,
) -> Result<Reading, RemediationError> {
    let (current, _) = alias_versions(clients, function, alias, log).await?;
    let mut versions: Vec<u64> = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let page = log
            .must(
                "lambda",
                "ListVersionsByFunction",
                function,
                Access::Read,
                clients
                    .lambda()
                    .list_versions_by_function()
                    .function_name(function)
                    .set_marker(next.clone())
                    .send(),
            )
            .await?;
        for v in page.versions() {
            if let Some(n) = v.version().and_then(|s| s.parse().ok()) {
                versions.push(n);
            }
        }
        next = page.next_marker().map(str::to_string);
        if next.is_none() {
            break;
        }
    }
    let previous = current
        .parse::<u64>()
        .ok()
        .and_then(|c| versions.iter().copied().filter(|v| *v < c).max())
        .map(|v| v.to_string());
    let configuration = log
        .must(
            "lambda",
            "GetFunctionConfiguration",
            &format!("{function}:{current}"),
            Access::Read,
            clients
                .lambda()
                .get_function_configuration()
                .function_name(function)
                .qualifier(&current)
                .send(),
        )
        .await?;
    let deployed_at = configuration.last_modified().and_then(published_at);
    let marker = match configuration.function_arn().map(unqualified) {
        Some(arn) => {
            let tags = log
                .must(
                    "lambda",
                    "ListTags",
                    function,
                    Access::Read,
                    clients.lambda().list_tags().resource(&arn).send(),
                )
                .await?;
            tags.tags()
                .and_then(|t| t.get(MARKER_TAG))
                .and_then(|v| Marker::parse(v))
        }
        None => None,
    };
    Ok(Reading {
        what: format!("alias {alias} of {function}"),
        marker,
        moved_on: None,
        current,
        previous,
        deployed_at,
    })
}

/// A version's `LastModified`: Lambda writes `2024-05-01T10:00:00.000+0000`; RFC 3339 is read
/// too.
fn published_at(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| DateTime::parse_from_rfc3339(text))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The function's ARN without a version or alias.
fn unqualified(arn: &str) -> String {
    match arn.split(':').collect::<Vec<_>>().as_slice() {
        parts if parts.len() > 7 => parts[..7].join(":"),
        _ => arn.to_string(),
    }
}

pub(super) async fn roll_back(
    clients: &AwsClients,
    function: &str,
    alias: &str,
    marker: &Marker,
    log: &mut CallLog,
) -> Result<(), RemediationError> {
    let out = log
        .must(
            "lambda",
            "UpdateAlias",
            &format!("{function}:{alias}"),
            Access::Write,
            clients
                .lambda()
                .update_alias()
                .function_name(function)
                .name(alias)
                .function_version(&marker.to)
                // No traffic left on the failed version.
                .routing_config(
                    AliasRoutingConfiguration::builder()
                        .set_additional_version_weights(Some(HashMap::new()))
                        .build(),
                )
                .send(),
        )
        .await?;
    let arn = out.alias_arn().map(unqualified).unwrap_or_default();
    log.must(
        "lambda",
        "TagResource",
        function,
        Access::Write,
        clients
            .lambda()
            .tag_resource()
            .resource(arn)
            .tags(MARKER_TAG, marker.value())
            .send(),
    )
    .await?;
    Ok(())
}

/// The alias on `to`, with no traffic split to another version.
pub(super) async fn checks(
    clients: &AwsClients,
    function: &str,
    alias: &str,
    to: &str,
    log: &mut CallLog,
) -> Result<Vec<VerificationCheck>, RemediationError> {
    let (version, split) = alias_versions(clients, function, alias, log).await?;
    Ok(vec![
        check("alias version", to, version.as_str(), version == to),
        check(
            "traffic split",
            "none",
            if split.is_empty() {
                "none".to_string()
            } else {
                split.join(", ")
            },
            split.is_empty(),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publication_times_read_in_lambdas_spelling_and_rfc_3339() {
        let lambda = published_at("2024-05-01T10:00:00.123+0000").unwrap();
        let rfc = published_at("2024-05-01T10:00:00.123000000Z").unwrap();
        assert_eq!(lambda, rfc);
        assert_eq!(published_at("yesterday"), None);
        assert_eq!(
            unqualified("arn:aws:lambda:eu-west-1:1:function:api:live"),
            "arn:aws:lambda:eu-west-1:1:function:api"
        );
    }
}
