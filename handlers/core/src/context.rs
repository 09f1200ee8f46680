//! Business context read from a resource's tags or labels.
//!
//! Operators spell these tags many ways (`Environment=Prod`, `env: production`,
//! `data-classification: pii`); matching is case-insensitive on keys and values so that a
//! spelling difference never hides a production or PII resource.

use std::collections::BTreeMap;

use crate::event::{DataClassification, Environment, EventContext};

const ENVIRONMENT_KEYS: &[&str] = &["environment", "env", "stage"];
const CLASSIFICATION_KEYS: &[&str] = &[
    "data-classification",
    "data_classification",
    "dataclassification",
    "classification",
];

/// Reads `environment` and `data_classification` from tags; fields already set win.
pub fn fill_from_tags(context: &mut EventContext, tags: &BTreeMap<String, String>) {
    if context.environment.is_none() {
        context.environment = tag_value(tags, ENVIRONMENT_KEYS).and_then(parse_environment);
    }
    if context.data_classification.is_none() {
        context.data_classification =
            tag_value(tags, CLASSIFICATION_KEYS).and_then(parse_data_classification);
    }
}

/// The value of the first tag whose key matches one of `keys`, in the order of `keys`.
fn tag_value<'a>(tags: &'a BTreeMap<String, String>, keys: &[&str]) -> Option<&'a str> {
    keys.iter().find_map(|wanted| {
        tags.iter()
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(wanted))
            .map(|(_, v)| v.as_str())
    })
}

/// Maps the common spellings of an environment name; unknown values give `None`.
pub fn parse_environment(value: &str) -> Option<Environment> {
    match value.trim().to_ascii_lowercase().as_str() {
        "production" | "prod" | "prd" | "live" | "prod-env" => Some(Environment::Production),
        "staging" | "stage" | "stg" | "preprod" | "pre-prod" | "uat" => Some(Environment::Staging),
        "dev" | "development" | "develop" | "test" | "testing" | "qa" | "sandbox" => {
            Some(Environment::Dev)
        }
        _ => None,
    }
}

/// Maps the common spellings of a data classification; unknown values give `None`.
pub fn parse_data_classification(value: &str) -> Option<DataClassification> {
    match value.trim().to_ascii_lowercase().as_str() {
        "pii" | "personal" | "personal-data" | "personal_data" | "phi" | "pci" => {
            Some(DataClassification::Pii)
        }
        "confidential" | "internal" | "restricted" | "sensitive" | "secret" => {
            Some(DataClassification::Confidential)
        }
        "public" => Some(DataClassification::Public),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reads_environment_and_classification_case_insensitively() {
        let mut cx = EventContext::default();
        fill_from_tags(
            &mut cx,
            &tags(&[("Env", "PROD"), ("Data-Classification", "Pii")]),
        );
        assert_eq!(cx.environment, Some(Environment::Production));
        assert_eq!(cx.data_classification, Some(DataClassification::Pii));
    }

    #[test]
    fn environment_key_beats_env_key() {
        let mut cx = EventContext::default();
        fill_from_tags(
            &mut cx,
            &tags(&[("env", "dev"), ("environment", "staging")]),
        );
        assert_eq!(cx.environment, Some(Environment::Staging));
    }

    #[test]
    fn explicit_context_is_not_overwritten_and_unknown_values_are_ignored() {
        let mut cx = EventContext {
            environment: Some(Environment::Dev),
            ..Default::default()
        };
        fill_from_tags(
            &mut cx,
            &tags(&[
                ("environment", "production"),
                ("data_classification", "top-secret-ish"),
            ]),
        );
        assert_eq!(cx.environment, Some(Environment::Dev));
        assert_eq!(cx.data_classification, None);
    }
}
