//! The handler's settings, the same on every cloud: what the function's environment holds
//! (each cloud's template sets it), or the CLI's flags.

use std::time::Duration;

use escher_core::pipeline::DEFAULT_CLAIM_LEASE;
use escher_core::remediate::Mode;
use escher_core::store::StoreError;

/// Secret (under the secrets prefix) holding the Slack incoming-webhook URL.
pub const SLACK_WEBHOOK_SECRET: &str = "slack-webhook-url";
/// Secret (under the secrets prefix) holding the PagerDuty Events v2 routing key.
pub const PAGERDUTY_KEY_SECRET: &str = "pagerduty-routing-key";
/// How often the approvals manifest is re-checked when `ESCHER_APPROVALS_REFRESH_SECS` is unset.
pub const DEFAULT_APPROVALS_REFRESH: Duration = Duration::from_secs(60);

/// An environment variable, and the older spelling still read when it is absent.
struct Variable {
    name: &'static str,
    old: Option<&'static str>,
}

const STATE_URI: Variable = Variable {
    name: "ESCHER_STATE_URI",
    old: None,
};
const APPROVALS_URI: Variable = Variable {
    name: "ESCHER_APPROVALS_URI",
    old: None,
};
const AUDIT_URI: Variable = Variable {
    name: "ESCHER_AUDIT_URI",
    old: None,
};
const SECRETS_PREFIX: Variable = Variable {
    name: "ESCHER_SECRETS_PREFIX",
    old: Some("ESCHER_SSM_PREFIX"),
};
const CRITICAL_TOPIC: Variable = Variable {
    name: "ESCHER_CRITICAL_TOPIC",
    old: Some("ESCHER_CRITICAL_TOPIC_ARN"),
};
const HIGH_TOPIC: Variable = Variable {
    name: "ESCHER_HIGH_TOPIC",
    old: Some("ESCHER_HIGH_TOPIC_ARN"),
};

/// The handler's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerConfig {
    /// `ESCHER_STATE_URI`: markers, blast-radius counters, inbox, report queue.
    pub state_uri: String,
    /// `ESCHER_APPROVALS_URI`.
    pub approvals_uri: String,
    /// `ESCHER_AUDIT_URI`.
    pub audit_uri: String,
    /// `ESCHER_SECRETS_PREFIX` (formerly `ESCHER_SSM_PREFIX`): where the cloud's secret
    /// store keeps the Slack and PagerDuty secrets (`/escher/<stack>/` in SSM on AWS);
    /// `None` turns both channels off.
    pub secrets_prefix: Option<String>,
    /// `ESCHER_CRITICAL_TOPIC` (formerly `ESCHER_CRITICAL_TOPIC_ARN`): the cloud's
    /// notification topic for CRITICAL events (an SNS topic ARN on AWS).
    pub critical_topic: Option<String>,
    /// `ESCHER_HIGH_TOPIC` (formerly `ESCHER_HIGH_TOPIC_ARN`): the topic for HIGH events.
    pub high_topic: Option<String>,
    /// `ESCHER_DRY_RUN` (`true`/`1`/`yes`): everything but the change.
    pub dry_run: bool,
    /// `ESCHER_PAGERDUTY_URL`: the Events API v2 endpoint (tests point it at a receiver).
    pub pagerduty_url: Option<String>,
    /// `ESCHER_APPROVALS_REFRESH_SECS` (default 60).
    pub approvals_refresh: Duration,
    /// `ESCHER_CLAIM_LEASE_SECS`: how long an unfinished claim on an event is trusted before
    /// the next delivery takes it over (the template sets the function's timeout plus 30 s;
    /// default [`DEFAULT_CLAIM_LEASE`], the longest a Lambda function runs).
    pub claim_lease: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("{name} is not set; the function's template sets it (for a local run, pass the matching flag or export it)")]
    MissingSetting { name: &'static str },
    #[error("{name}={value:?} is not valid: {expected}")]
    InvalidSetting {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("cannot open the {which} store: {source}")]
    Store {
        which: &'static str,
        #[source]
        source: Box<StoreError>,
    },
}

fn set(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

impl HandlerConfig {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, HandlerError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup` (the environment, or a test's map). A setting's
    /// current name wins over its older spelling.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, HandlerError> {
        let get = |v: &Variable| set(lookup(v.name)).or_else(|| v.old.and_then(|o| set(lookup(o))));
        let required = |v: &Variable| get(v).ok_or(HandlerError::MissingSetting { name: v.name });
        let dry_run = match set(lookup("ESCHER_DRY_RUN")) {
            None => false,
            Some(v) => parse_bool(&v).ok_or(HandlerError::InvalidSetting {
                name: "ESCHER_DRY_RUN",
                value: v,
                expected: "true/false, 1/0 or yes/no",
            })?,
        };
        let seconds = |name: &'static str, default: Duration| match set(lookup(name)) {
            None => Ok(default),
            Some(v) => v.trim().parse().map(Duration::from_secs).map_err(|_| {
                HandlerError::InvalidSetting {
                    name,
                    value: v.clone(),
                    expected: "a whole number of seconds",
                }
            }),
        };
        let approvals_refresh =
            seconds("ESCHER_APPROVALS_REFRESH_SECS", DEFAULT_APPROVALS_REFRESH)?;
        let claim_lease = seconds("ESCHER_CLAIM_LEASE_SECS", DEFAULT_CLAIM_LEASE)?;
        Ok(HandlerConfig {
            state_uri: required(&STATE_URI)?,
            approvals_uri: required(&APPROVALS_URI)?,
            audit_uri: required(&AUDIT_URI)?,
            secrets_prefix: get(&SECRETS_PREFIX),
            critical_topic: get(&CRITICAL_TOPIC),
            high_topic: get(&HIGH_TOPIC),
            dry_run,
            pagerduty_url: set(lookup("ESCHER_PAGERDUTY_URL")),
            approvals_refresh,
            claim_lease,
        })
    }

    /// The settings of a function given its three stores and nothing else (as `from_lookup`
    /// reads an environment holding only those): no secrets, no topics, fixes applied, the
    /// default refresh and claim lease. Other settings can be set on the result.
    pub fn with_stores(state_uri: String, audit_uri: String, approvals_uri: String) -> Self {
        HandlerConfig {
            state_uri,
            approvals_uri,
            audit_uri,
            secrets_prefix: None,
            critical_topic: None,
            high_topic: None,
            dry_run: false,
            pagerduty_url: None,
            approvals_refresh: DEFAULT_APPROVALS_REFRESH,
            claim_lease: DEFAULT_CLAIM_LEASE,
        }
    }

    /// The full name of one secret in the cloud's secret store, when a prefix is configured.
    pub fn secret_name(&self, secret: &str) -> Option<String> {
        self.secrets_prefix
            .as_ref()
            .map(|prefix| format!("{prefix}{secret}"))
    }

    pub fn mode(&self) -> Mode {
        if self.dry_run {
            Mode::DryRun
        } else {
            Mode::Apply
        }
    }
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" => Some(true),
        "0" | "false" | "no" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    const STORES: [(&str, &str); 3] = [
        ("ESCHER_STATE_URI", "memory://"),
        ("ESCHER_APPROVALS_URI", "memory://"),
        ("ESCHER_AUDIT_URI", "memory://"),
    ];

    #[test]
    fn a_function_given_only_its_stores_reads_as_one_whose_environment_names_only_them() {
        let env = [
            ("ESCHER_STATE_URI", "fs:///s"),
            ("ESCHER_AUDIT_URI", "fs:///a"),
            ("ESCHER_APPROVALS_URI", "fs:///p"),
        ];
        let read = HandlerConfig::from_lookup(lookup(&env)).expect("config");
        let given =
            HandlerConfig::with_stores("fs:///s".into(), "fs:///a".into(), "fs:///p".into());
        assert_eq!(given, read);
        assert_eq!(given.mode(), Mode::Apply);
    }

    #[test]
    fn the_function_environment_gives_the_settings() {
        let mut env = STORES.to_vec();
        env.extend([
            ("ESCHER_SECRETS_PREFIX", "/escher/prod/"),
            ("ESCHER_CRITICAL_TOPIC", "arn:aws:sns:eu-west-1:1:c"),
            ("ESCHER_DRY_RUN", "yes"),
            ("ESCHER_APPROVALS_REFRESH_SECS", "5"),
            ("ESCHER_CLAIM_LEASE_SECS", "90"),
        ]);
        let config = HandlerConfig::from_lookup(lookup(&env)).expect("config");
        assert_eq!(config.mode(), Mode::DryRun);
        assert_eq!(config.approvals_refresh, Duration::from_secs(5));
        assert_eq!(config.claim_lease, Duration::from_secs(90));
        assert_eq!(
            config.critical_topic.as_deref(),
            Some("arn:aws:sns:eu-west-1:1:c")
        );
        assert_eq!(config.high_topic, None);
        assert_eq!(
            config.secret_name(SLACK_WEBHOOK_SECRET).as_deref(),
            Some("/escher/prod/slack-webhook-url")
        );
        let defaults = HandlerConfig::from_lookup(lookup(&STORES)).expect("config");
        assert_eq!(defaults.mode(), Mode::Apply);
        assert_eq!(defaults.approvals_refresh, DEFAULT_APPROVALS_REFRESH);
        assert_eq!(defaults.claim_lease, DEFAULT_CLAIM_LEASE);
        assert_eq!(defaults.secret_name(PAGERDUTY_KEY_SECRET), None);
    }

    /// Functions deployed before the neutral names still start, and a current name wins.
    #[test]
    fn the_older_spellings_are_still_read() {
        let mut env = STORES.to_vec();
        env.extend([
            ("ESCHER_SSM_PREFIX", "/escher/old/"),
            ("ESCHER_CRITICAL_TOPIC_ARN", "arn:old:critical"),
            ("ESCHER_HIGH_TOPIC_ARN", "arn:old:high"),
            ("ESCHER_HIGH_TOPIC", "arn:new:high"),
        ]);
        let config = HandlerConfig::from_lookup(lookup(&env)).expect("config");
        assert_eq!(config.secrets_prefix.as_deref(), Some("/escher/old/"));
        assert_eq!(config.critical_topic.as_deref(), Some("arn:old:critical"));
        assert_eq!(config.high_topic.as_deref(), Some("arn:new:high"));
    }

    #[test]
    fn a_missing_store_or_a_bad_value_is_named() {
        let err = HandlerConfig::from_lookup(lookup(&STORES[..2])).expect_err("no audit");
        assert!(err.to_string().contains("ESCHER_AUDIT_URI"), "{err}");
        let mut env = STORES.to_vec();
        env.push(("ESCHER_DRY_RUN", "maybe"));
        let err = HandlerConfig::from_lookup(lookup(&env)).expect_err("bad bool");
        assert!(
            err.to_string().contains("ESCHER_DRY_RUN=\"maybe\""),
            "{err}"
        );
        let mut env = STORES.to_vec();
        env.push(("ESCHER_CLAIM_LEASE_SECS", "2m"));
        let err = HandlerConfig::from_lookup(lookup(&env)).expect_err("bad seconds");
        assert!(
            err.to_string().contains("ESCHER_CLAIM_LEASE_SECS=\"2m\""),
            "{err}"
        );
    }
}
