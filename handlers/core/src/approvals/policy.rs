//! The user-editable policy files behind approvals: `policies/remediations.yaml` (which action
//! fixes which event type) and `policies/approvals.default.yaml` (the setup wizard's choices).
//! Both are compiled in, so a function always has them, and can be loaded from a user's copy.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::model::{Action, Approval, Conditions, Scope};
use crate::event::EventType;

const REMEDIATIONS: &str = include_str!("../../../../policies/remediations.yaml");
const WIZARD_DEFAULTS: &str = include_str!("../../../../policies/approvals.default.yaml");

#[derive(Debug, thiserror::Error)]
#[error("{file} is not valid: {source}; compare it with the copy shipped in policies/")]
pub struct PolicyError {
    file: &'static str,
    source: serde_norway::Error,
}

/// Event type → the actions that fix it, in the order they are tried.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemediationPolicy {
    remediations: BTreeMap<EventType, Vec<Action>>,
}

impl RemediationPolicy {
    pub fn built_in() -> &'static RemediationPolicy {
        static POLICY: std::sync::OnceLock<RemediationPolicy> = std::sync::OnceLock::new();
        POLICY.get_or_init(|| {
            RemediationPolicy::from_yaml(REMEDIATIONS)
                .expect("policies/remediations.yaml is checked by the unit tests")
        })
    }

    pub fn from_yaml(text: &str) -> Result<RemediationPolicy, PolicyError> {
        serde_norway::from_str(text).map_err(|source| PolicyError {
            file: "remediations policy",
            source,
        })
    }

    /// The actions for an event type; empty means "notify only".
    pub fn actions_for(&self, event_type: EventType) -> &[Action] {
        self.remediations
            .get(&event_type)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Whether any event type has a fix (else no event ever reads the approvals).
    pub fn has_fixes(&self) -> bool {
        self.remediations
            .values()
            .any(|actions| !actions.is_empty())
    }
}

/// One choice the setup wizard offers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WizardChoice {
    pub id: String,
    pub action: Action,
    /// Ticked unless the user says otherwise.
    pub enabled: bool,
    /// What `approvals init` asks.
    pub question: String,
    pub reason: String,
    #[serde(default)]
    pub scope: Scope,
    #[serde(default)]
    pub conditions: Conditions,
}

impl WizardChoice {
    /// The approval this choice becomes when the user keeps it.
    pub fn to_approval(&self, approved_by: &str, approved_at: DateTime<Utc>) -> Approval {
        Approval {
            id: self.id.clone(),
            action: self.action,
            scope: self.scope.clone(),
            conditions: self.conditions.clone(),
            approved_by: approved_by.to_string(),
            approved_at,
            expires_at: None,
            reason: self.reason.clone(),
            revoked_at: None,
            revoked_by: None,
            revoke_reason: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WizardDefaults {
    pub choices: Vec<WizardChoice>,
}

impl WizardDefaults {
    pub fn built_in() -> &'static WizardDefaults {
        static DEFAULTS: std::sync::OnceLock<WizardDefaults> = std::sync::OnceLock::new();
        DEFAULTS.get_or_init(|| {
            WizardDefaults::from_yaml(WIZARD_DEFAULTS)
                .expect("policies/approvals.default.yaml is checked by the unit tests")
        })
    }

    pub fn from_yaml(text: &str) -> Result<WizardDefaults, PolicyError> {
        serde_norway::from_str(text).map_err(|source| PolicyError {
            file: "approvals defaults",
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_policies_parse() {
        RemediationPolicy::from_yaml(REMEDIATIONS).expect("remediations.yaml");
        WizardDefaults::from_yaml(WIZARD_DEFAULTS).expect("approvals.default.yaml");
    }

    #[test]
    fn remediations_map_the_fixable_event_types() {
        let p = RemediationPolicy::built_in();
        assert_eq!(
            p.actions_for(EventType::BucketPublic),
            &[Action::MakeBucketPrivate]
        );
        assert_eq!(
            p.actions_for(EventType::FirewallOpen),
            &[Action::RevokeOpenIngress]
        );
        assert!(p.actions_for(EventType::ResourceCreated).is_empty());
        // Every action is reachable from some event type.
        for action in Action::ALL {
            assert!(
                p.remediations.values().any(|list| list.contains(&action)),
                "{action} is never planned"
            );
        }
    }

    #[test]
    fn wizard_ticks_what_the_product_promises() {
        let d = WizardDefaults::built_in();
        let enabled = |action: Action| {
            d.choices
                .iter()
                .find(|c| c.action == action)
                .map(|c| c.enabled)
        };
        assert_eq!(enabled(Action::MakeBucketPrivate), Some(true));
        assert_eq!(enabled(Action::StopIdleInstance), Some(true));
        assert_eq!(enabled(Action::EncryptVolume), Some(true));
        assert_eq!(enabled(Action::ScaleUpCapacity), Some(true));
        assert_eq!(enabled(Action::RestartService), Some(false));
        assert_eq!(enabled(Action::RollbackDeployment), Some(false));
        let idle = d
            .choices
            .iter()
            .find(|c| c.action == Action::StopIdleInstance)
            .map(|c| c.conditions.min_idle_hours());
        assert_eq!(idle, Some(2.0));
        let ids: std::collections::BTreeSet<&str> =
            d.choices.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids.len(), d.choices.len(), "choice ids are unique");
    }

    #[test]
    fn unknown_fields_in_a_users_copy_are_rejected() {
        let err = RemediationPolicy::from_yaml("remediations: {}\nremedations: {}\n").unwrap_err();
        assert!(err.to_string().contains("remedations"), "{err}");
    }
}
