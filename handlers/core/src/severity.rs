//! Severity policy: the default severity per event type and the context rules that raise it.
//!
//! The built-in policy is `policies/severity.yaml`, compiled in so a function never starts
//! without one; a user's edited copy can be loaded with [`SeverityPolicy::from_yaml`].

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::event::{DataClassification, Environment, EventContext, EventType, Severity};

const BUILT_IN: &str = include_str!("../../../policies/severity.yaml");

#[derive(Debug, thiserror::Error)]
pub enum SeverityPolicyError {
    #[error("severity policy is not valid YAML or has unknown fields: {0}. Compare it with policies/severity.yaml")]
    Parse(#[from] serde_norway::Error),
    #[error("severity policy has no default for event type `{0}`: add it under `defaults:`")]
    MissingDefault(EventType),
}

/// Which severity each event type gets, and when context raises it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeverityPolicy {
    defaults: BTreeMap<EventType, Severity>,
    #[serde(default)]
    raise: Vec<RaiseRule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RaiseRule {
    event_types: Vec<EventType>,
    when: ContextMatch,
    to: Severity,
}

/// Every field given must match; an empty match never fires (it would raise everything).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContextMatch {
    #[serde(default)]
    environment: Option<Environment>,
    #[serde(default)]
    data_classification: Option<DataClassification>,
}

impl ContextMatch {
    fn matches(&self, cx: &EventContext) -> bool {
        if self.environment.is_none() && self.data_classification.is_none() {
            return false;
        }
        self.environment.is_none_or(|e| cx.environment == Some(e))
            && self
                .data_classification
                .is_none_or(|d| cx.data_classification == Some(d))
    }
}

const ALL_EVENT_TYPES: &[EventType] = &[
    EventType::BucketPublic,
    EventType::FirewallOpen,
    EventType::VolumeUnencrypted,
    EventType::InstanceIdle,
    EventType::InstanceStateChanged,
    EventType::ResourceCreated,
    EventType::ResourceChanged,
    EventType::ResourceDeleted,
    EventType::MetricAlarm,
    EventType::AlarmResolved,
    EventType::CapacityHigh,
    EventType::BudgetExceeded,
    EventType::CostSpike,
    EventType::ComplianceViolation,
    EventType::ThreatDetected,
    EventType::ServiceHealth,
    EventType::DeploymentFailed,
    EventType::ScheduledScan,
    EventType::ResourceUnused,
    EventType::InstanceOverprovisioned,
];

impl SeverityPolicy {
    /// The policy shipped in `policies/severity.yaml`.
    pub fn built_in() -> &'static SeverityPolicy {
        static POLICY: std::sync::OnceLock<SeverityPolicy> = std::sync::OnceLock::new();
        POLICY.get_or_init(|| {
            SeverityPolicy::from_yaml(BUILT_IN)
                .expect("policies/severity.yaml is checked by the unit tests")
        })
    }

    /// Parses a policy and checks that every event type has a default.
    pub fn from_yaml(text: &str) -> Result<SeverityPolicy, SeverityPolicyError> {
        let policy: SeverityPolicy = serde_norway::from_str(text)?;
        if let Some(missing) = ALL_EVENT_TYPES
            .iter()
            .find(|t| !policy.defaults.contains_key(t))
        {
            return Err(SeverityPolicyError::MissingDefault(*missing));
        }
        Ok(policy)
    }

    pub fn default_for(&self, event_type: EventType) -> Severity {
        self.defaults
            .get(&event_type)
            .copied()
            .unwrap_or(Severity::Medium)
    }

    /// The final severity: the source's own if it has one, else the default, then raised
    /// (never lowered) by every matching context rule.
    pub fn resolve(
        &self,
        event_type: EventType,
        source_severity: Option<Severity>,
        context: &EventContext,
    ) -> Severity {
        let base = source_severity.unwrap_or_else(|| self.default_for(event_type));
        self.raise
            .iter()
            .filter(|r| r.event_types.contains(&event_type) && r.when.matches(context))
            .map(|r| r.to)
            .fold(base, Ord::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_policy_parses_and_covers_every_event_type() {
        let p = SeverityPolicy::from_yaml(BUILT_IN).expect("built-in policy");
        for t in ALL_EVENT_TYPES {
            assert!(p.defaults.contains_key(t), "{t} has no default");
        }
    }

    #[test]
    fn public_bucket_is_raised_by_pii_or_production() {
        let p = SeverityPolicy::built_in();
        let plain = EventContext::default();
        assert_eq!(
            p.resolve(EventType::BucketPublic, None, &plain),
            Severity::High
        );
        let pii = EventContext {
            data_classification: Some(DataClassification::Pii),
            ..Default::default()
        };
        assert_eq!(
            p.resolve(EventType::BucketPublic, None, &pii),
            Severity::Critical
        );
        let prod = EventContext {
            environment: Some(Environment::Production),
            ..Default::default()
        };
        assert_eq!(
            p.resolve(EventType::BucketPublic, None, &prod),
            Severity::Critical
        );
        let dev = EventContext {
            environment: Some(Environment::Dev),
            ..Default::default()
        };
        assert_eq!(
            p.resolve(EventType::BucketPublic, None, &dev),
            Severity::High
        );
    }

    #[test]
    fn source_severity_wins_over_default_but_is_still_raised() {
        let p = SeverityPolicy::built_in();
        let none = EventContext::default();
        assert_eq!(
            p.resolve(EventType::ThreatDetected, Some(Severity::Info), &none),
            Severity::Info
        );
        let prod = EventContext {
            environment: Some(Environment::Production),
            ..Default::default()
        };
        assert_eq!(
            p.resolve(EventType::ThreatDetected, Some(Severity::Medium), &prod),
            Severity::Critical
        );
    }

    #[test]
    fn rejects_unknown_fields_and_missing_defaults() {
        let err = SeverityPolicy::from_yaml("defaults: {}\nrasie: []\n").unwrap_err();
        assert!(err.to_string().contains("rasie"), "{err}");
        let err = SeverityPolicy::from_yaml("defaults: { bucket_public: HIGH }\n").unwrap_err();
        assert!(
            matches!(err, SeverityPolicyError::MissingDefault(_)),
            "{err}"
        );
    }
}
