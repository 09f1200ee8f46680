//! What an approval is: an action the user allowed in advance, the scope it covers, the
//! conditions under which it holds, and who approved (or revoked) it when.
//!
//! Approvals are the user's own input, so unknown fields are rejected: a typo such as
//! `enviroments` must fail loudly rather than silently widen an approval to everything.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::event::{CloudProvider, Environment, Severity};

/// A fix a handler may apply automatically when an approval covers it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    MakeBucketPrivate,
    RevokeOpenIngress,
    StopIdleInstance,
    EncryptVolume,
    ScaleUpCapacity,
    RestartService,
    RollbackDeployment,
}

impl Action {
    pub const ALL: [Action; 7] = [
        Action::MakeBucketPrivate,
        Action::RevokeOpenIngress,
        Action::StopIdleInstance,
        Action::EncryptVolume,
        Action::ScaleUpCapacity,
        Action::RestartService,
        Action::RollbackDeployment,
    ];

    /// The wire spelling (`make_bucket_private`), as used in files and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::MakeBucketPrivate => "make_bucket_private",
            Action::RevokeOpenIngress => "revoke_open_ingress",
            Action::StopIdleInstance => "stop_idle_instance",
            Action::EncryptVolume => "encrypt_volume",
            Action::ScaleUpCapacity => "scale_up_capacity",
            Action::RestartService => "restart_service",
            Action::RollbackDeployment => "rollback_deployment",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
                format!("unknown action `{s}`; known actions: {}", known.join(", "))
            })
    }
}

/// One pre-approval. Serialized as JSON (`schemas/approval.schema.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Approval", extend("$id" = "https://escher.dev/schemas/approval.schema.json"))]
pub struct Approval {
    /// Stable id, unique in the store.
    pub id: String,
    pub action: Action,
    /// What the approval covers; an empty list means "any".
    #[serde(default)]
    pub scope: Scope,
    #[serde(default)]
    pub conditions: Conditions,
    pub approved_by: String,
    pub approved_at: DateTime<Utc>,
    /// After this instant the approval no longer matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Why the user approved it (shown in every explanation and audit record).
    pub reason: String,
    /// Set when revoked; a revoked approval stays in the store so its history is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_reason: Option<String>,
}

/// Which events an approval covers. Every non-empty list must match; an empty list matches
/// anything, so the wizard's defaults can be account-wide and a user can narrow them.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clouds: Vec<CloudProvider>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub account_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
    /// `UnifiedEvent.resource.type` values, e.g. `s3_bucket`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_types: Vec<String>,
    /// Globs (`*`, `?`) matched against the resource's id and its name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// Tag selectors, all of which must hold: `environment=dev` (key and value compared
    /// case-insensitively), or `team` (the tag is present).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<TagSelector>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environments: Vec<Environment>,
}

/// Limits on when an approval holds.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Conditions {
    /// For `stop_idle_instance`: how long the instance must have been idle (default 2).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "idle_hours"
    )]
    pub min_idle_hours: Option<f64>,
    /// Blast radius: at most this many resources acted on per UTC day under this approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_resources_per_day: Option<u32>,
    /// The event must be at least this severe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_severity: Option<Severity>,
    /// For `encrypt_volume`: also turn on the region's account-wide default EBS encryption,
    /// so new volumes are encrypted from now on (default off: it changes every later
    /// `CreateVolume` in the account and region, which the user must choose knowingly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_default_encryption: Option<bool>,
    /// For `revoke_open_ingress`: networks (CIDR, e.g. the company's `203.0.113.0/24`) that
    /// keep access: a rule open to the world is narrowed to them instead of removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keep_networks: Vec<String>,
    /// For `scale_up_capacity`: the largest step, in percent of the current size (default
    /// 20): a volume of 100 GiB grows to at most 120 GiB, a group of 5 to at most 6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_step_percent: Option<u32>,
    /// For `scale_up_capacity`: storage (a disk, a database's allocated storage) is never
    /// grown past this many GiB (default 1024).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_storage_gib: Option<u64>,
    /// For `scale_up_capacity`: a group never gets more instances than this (it never goes
    /// past the group's own maximum either; default: that maximum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_instances: Option<u32>,
    /// For `scale_up_capacity`: one step never adds more than this to the monthly bill, in
    /// US dollars at list prices (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_added_monthly_usd: Option<f64>,
    /// For `restart_service`: at most this many restarts of one resource in an hour (default
    /// 2); past it the resource is left to people, so a crash loop is not fed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_restarts_per_hour: Option<u32>,
    /// For `rollback_deployment`: only a deployment made at most this many hours ago is
    /// rolled back (default 24); an older one has had time to change data or callers.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "rollback_hours"
    )]
    pub rollback_within_hours: Option<f64>,
}

/// Default idle time before `stop_idle_instance` may act, when the approval names none.
pub const DEFAULT_MIN_IDLE_HOURS: f64 = 2.0;

/// `scale_up_capacity`'s limits when the approval names none.
pub const DEFAULT_MAX_STEP_PERCENT: u32 = 20;
pub const DEFAULT_MAX_STORAGE_GIB: u64 = 1024;
pub const DEFAULT_MAX_ADDED_MONTHLY_USD: f64 = 100.0;
/// `restart_service`'s limit when the approval names none.
pub const DEFAULT_MAX_RESTARTS_PER_HOUR: u32 = 2;
/// `rollback_deployment`'s window when the approval names none.
pub const DEFAULT_ROLLBACK_WITHIN_HOURS: f64 = 24.0;
/// The longest window a condition in hours may name (a year): past it a window means
/// nothing the clouds can measure, and a number of hours too large for a clock (`1e300`)
/// must be refused when the approval is read rather than overflow when a fix uses it.
pub const MAX_CONDITION_HOURS: f64 = 366.0 * 24.0;

/// `min_idle_hours` as read: above 0 and at most [`MAX_CONDITION_HOURS`].
fn idle_hours<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    checked_hours(d, "min_idle_hours", |h| h > 0.0, "above 0")
}

/// `rollback_within_hours` as read: 0 (roll back nothing) to [`MAX_CONDITION_HOURS`].
fn rollback_hours<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    checked_hours(d, "rollback_within_hours", |h| h >= 0.0, "0 or more")
}

fn checked_hours<'de, D: serde::Deserializer<'de>>(
    d: D,
    field: &str,
    low_ok: fn(f64) -> bool,
    low: &str,
) -> Result<Option<f64>, D::Error> {
    let hours = Option::<f64>::deserialize(d)?;
    match hours {
        Some(h) if !(h.is_finite() && low_ok(h) && h <= MAX_CONDITION_HOURS) => {
            Err(serde::de::Error::custom(format!(
                "{field} {h}: use a number of hours {low} and at most {MAX_CONDITION_HOURS} (a year)"
            )))
        }
        _ => Ok(hours),
    }
}

/// `hours` (else `default`) held within what a clock can use; reading an approval already
/// refuses anything outside, so this guards approvals built in code.
fn usable_hours(hours: Option<f64>, default: f64, min: f64) -> f64 {
    match hours {
        Some(h) if h.is_finite() => h.clamp(min, MAX_CONDITION_HOURS),
        _ => default,
    }
}

/// A window of `hours`, rounded to the second; `hours` is within [`MAX_CONDITION_HOURS`].
fn window(hours: f64) -> chrono::TimeDelta {
    chrono::TimeDelta::seconds((hours * 3600.0).round() as i64)
}

impl Conditions {
    pub fn min_idle_hours(&self) -> f64 {
        usable_hours(
            self.min_idle_hours,
            DEFAULT_MIN_IDLE_HOURS,
            f64::MIN_POSITIVE,
        )
    }

    /// How long `stop_idle_instance` looks back for the instance's CPU.
    pub fn idle_window(&self) -> chrono::TimeDelta {
        window(self.min_idle_hours())
    }

    /// Whether `encrypt_volume` may turn on default EBS encryption (off unless approved).
    pub fn enable_default_encryption(&self) -> bool {
        self.enable_default_encryption.unwrap_or(false)
    }

    /// How many restarts of one resource `restart_service` may make in an hour.
    pub fn max_restarts_per_hour(&self) -> u32 {
        self.max_restarts_per_hour
            .unwrap_or(DEFAULT_MAX_RESTARTS_PER_HOUR)
    }

    /// How recent a deployment `rollback_deployment` may roll back, in hours.
    pub fn rollback_within_hours(&self) -> f64 {
        usable_hours(
            self.rollback_within_hours,
            DEFAULT_ROLLBACK_WITHIN_HOURS,
            0.0,
        )
    }

    /// How long after a deployment `rollback_deployment` may still roll it back.
    pub fn rollback_window(&self) -> chrono::TimeDelta {
        window(self.rollback_within_hours())
    }

    /// The limits `scale_up_capacity` grows within: the approval's, else the defaults.
    pub fn growth_limits(&self) -> crate::capacity::GrowthLimits {
        crate::capacity::GrowthLimits {
            max_step_percent: self
                .max_step_percent
                .unwrap_or(DEFAULT_MAX_STEP_PERCENT)
                .max(1),
            max_storage_gib: self.max_storage_gib.unwrap_or(DEFAULT_MAX_STORAGE_GIB),
            max_instances: self.max_instances,
            max_added_monthly_usd: self
                .max_added_monthly_usd
                .unwrap_or(DEFAULT_MAX_ADDED_MONTHLY_USD)
                .max(0.0),
        }
    }

    /// `keep_networks`, each checked: an IPv4 or IPv6 network in CIDR form that is not the
    /// whole internet (keeping that would narrow nothing).
    pub fn keep_networks(&self) -> Result<Vec<String>, String> {
        self.keep_networks
            .iter()
            .map(|n| checked_network(n))
            .collect()
    }
}

/// `n` when it is a CIDR network narrower than the whole internet, in canonical spelling.
pub fn checked_network(n: &str) -> Result<String, String> {
    let bad = || {
        format!(
            "keep_networks `{n}`: use a network in CIDR form narrower than the internet, e.g. 203.0.113.0/24 or 2001:db8::/48"
        )
    };
    let (address, prefix) = n.trim().split_once('/').ok_or_else(bad)?;
    let prefix: u8 = prefix.parse().map_err(|_| bad())?;
    let ip: std::net::IpAddr = address.parse().map_err(|_| bad())?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if prefix == 0 || prefix > max {
        return Err(bad());
    }
    Ok(format!("{ip}/{prefix}"))
}

/// `key=value` or a bare `key`, kept as the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
#[schemars(with = "String")]
pub struct TagSelector {
    pub key: String,
    /// `None`: the tag only has to be present.
    pub value: Option<String>,
}

impl TagSelector {
    pub fn matches(&self, tags: &std::collections::BTreeMap<String, String>) -> bool {
        tags.iter().any(|(k, v)| {
            k.trim().eq_ignore_ascii_case(&self.key)
                && self
                    .value
                    .as_deref()
                    .is_none_or(|want| v.trim().eq_ignore_ascii_case(want))
        })
    }
}

impl TryFrom<String> for TagSelector {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl FromStr for TagSelector {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (key, value) = match text.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim().to_string())),
            None => (text.trim(), None),
        };
        if key.is_empty() {
            return Err(format!(
                "tag selector `{text}` has no key; write `key=value` or `key`"
            ));
        }
        Ok(TagSelector {
            key: key.to_string(),
            value,
        })
    }
}

impl From<TagSelector> for String {
    fn from(selector: TagSelector) -> String {
        selector.to_string()
    }
}

impl fmt::Display for TagSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}={v}", self.key),
            None => f.write_str(&self.key),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn networks_to_keep_are_cidrs_narrower_than_the_internet() {
        assert_eq!(
            super::checked_network("203.0.113.0/24"),
            Ok("203.0.113.0/24".into())
        );
        assert_eq!(
            super::checked_network("2001:db8::/48"),
            Ok("2001:db8::/48".into())
        );
        for bad in [
            "0.0.0.0/0",
            "::/0",
            "203.0.113.0",
            "203.0.113.0/33",
            "office",
        ] {
            assert!(super::checked_network(bad).is_err(), "{bad}");
        }
    }

    use super::*;

    #[test]
    fn actions_round_trip_through_their_wire_spelling() {
        for action in Action::ALL {
            let json = serde_json::to_value(action).expect("serialize");
            assert_eq!(json, action.as_str());
            assert_eq!(action.as_str().parse::<Action>(), Ok(action));
        }
        let err = "make_bucket_public".parse::<Action>().unwrap_err();
        assert!(err.contains("make_bucket_private"), "{err}");
    }

    #[test]
    fn tag_selectors_parse_and_match_case_insensitively() {
        let sel: TagSelector = "Environment = Dev".parse().expect("parse");
        assert_eq!(sel.to_string(), "Environment=Dev");
        let tags = [("environment".to_string(), "dev".to_string())].into();
        assert!(sel.matches(&tags));
        let present: TagSelector = "team".parse().expect("parse");
        assert!(!present.matches(&tags));
        assert!("=x".parse::<TagSelector>().is_err());
    }

    /// An approval file whose hours no clock can hold (`1e300`, found while fuzzing the
    /// approval's conditions): refused when read, naming the field and the accepted range,
    /// instead of overflowing the fix's time window when the alert handler applies it.
    #[test]
    fn hours_past_a_year_are_refused_when_the_approval_is_read() {
        for (field, value) in [
            ("min_idle_hours", "1e300"),
            ("min_idle_hours", "-1e300"),
            ("min_idle_hours", "0"),
            ("rollback_within_hours", "1e300"),
            ("rollback_within_hours", "-1"),
            ("rollback_within_hours", "8785"),
        ] {
            let text = format!(
                r#"{{"id": "a", "action": "stop_idle_instance", "approved_by": "me",
                "approved_at": "2026-11-01T00:00:00Z", "reason": "r",
                "conditions": {{"{field}": {value}}}}}"#
            );
            let err = serde_json::from_str::<Approval>(&text).unwrap_err();
            assert!(
                err.to_string().contains(field) && err.to_string().contains("8784"),
                "{field} {value}: {err}"
            );
        }
        let year = r#"{"id": "a", "action": "rollback_deployment", "approved_by": "me",
            "approved_at": "2026-11-01T00:00:00Z", "reason": "r",
            "conditions": {"rollback_within_hours": 8784, "min_idle_hours": 0.5}}"#;
        let approval = serde_json::from_str::<Approval>(year).expect("a year is accepted");
        assert_eq!(
            approval.conditions.rollback_window(),
            chrono::TimeDelta::days(366)
        );
        assert_eq!(
            approval.conditions.idle_window(),
            chrono::TimeDelta::minutes(30)
        );
    }

    /// Conditions that did not come through the file (built in code, or stored by an older
    /// version) still give a window a clock can use.
    #[test]
    fn windows_stay_within_a_year_whatever_the_conditions_hold() {
        for hours in [1e300, f64::INFINITY, f64::NAN, -1e300] {
            let c = Conditions {
                min_idle_hours: Some(hours),
                rollback_within_hours: Some(hours),
                ..Conditions::default()
            };
            for window in [c.idle_window(), c.rollback_window()] {
                assert!(
                    window >= chrono::TimeDelta::zero() && window <= chrono::TimeDelta::days(366),
                    "{hours}: {window}"
                );
            }
        }
        assert_eq!(
            Conditions::default().idle_window(),
            chrono::TimeDelta::hours(2)
        );
        assert_eq!(
            Conditions::default().rollback_window(),
            chrono::TimeDelta::hours(24)
        );
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let text = r#"{"id": "a", "action": "encrypt_volume", "approved_by": "me",
            "approved_at": "2026-11-01T00:00:00Z", "reason": "r",
            "scope": {"enviroments": ["dev"]}}"#;
        let err = serde_json::from_str::<Approval>(text).unwrap_err();
        assert!(err.to_string().contains("enviroments"), "{err}");
    }
}
