//! The decision: may `action` be applied to this event without asking anyone?
//!
//! Pure and deterministic: the same event, approvals, clock and blast-radius counts always
//! give the same decision. Every candidate approval (same action) is listed in the
//! explanation with the first condition it failed, so an operator can see exactly why a fix
//! did or did not run. The most specific matching approval wins; ties go to the newest.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use wildmatch::WildMatch;

use super::model::{Action, Approval, TagSelector};
use crate::event::{CloudProvider, Environment, Severity, UnifiedEvent};

/// How many resources each approval has already acted on during a UTC day, as recorded by
/// the handlers (the blast-radius counter).
pub trait BlastRadiusUsage: Sync {
    fn used(&self, approval_id: &str, day: NaiveDate) -> u32;
}

/// No action taken yet today (the CLI's `check`, tests).
pub struct NothingUsedYet;

impl BlastRadiusUsage for NothingUsedYet {
    fn used(&self, _approval_id: &str, _day: NaiveDate) -> u32 {
        0
    }
}

/// Counts per approval id for one day.
impl BlastRadiusUsage for HashMap<String, u32> {
    fn used(&self, approval_id: &str, _day: NaiveDate) -> u32 {
        self.get(approval_id).copied().unwrap_or(0)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    Approved {
        approval_id: String,
        explanation: Explanation,
    },
    NotApproved {
        explanation: Explanation,
    },
}

impl Decision {
    pub fn is_approved(&self) -> bool {
        matches!(self, Decision::Approved { .. })
    }

    pub fn explanation(&self) -> &Explanation {
        match self {
            Decision::Approved { explanation, .. } | Decision::NotApproved { explanation } => {
                explanation
            }
        }
    }
}

/// Why: the action asked about and what each candidate approval made of the event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    pub action: Action,
    pub event_id: String,
    pub resource_id: String,
    pub decided_at: DateTime<Utc>,
    pub candidates: Vec<Candidate>,
    /// Approvals for this action not listed because their cloud, account, region or
    /// resource type cannot cover the event.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub not_listed: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub approval_id: String,
    pub approved_by: String,
    pub reason: String,
    /// How many scope dimensions the approval names; the most specific match wins.
    pub specificity: usize,
    #[serde(flatten)]
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Matched and chosen.
    Chosen,
    /// Matched, but a more specific or newer approval was chosen.
    Outranked,
    /// The first condition that did not hold.
    Failed { failed: Mismatch },
}

/// The first thing about the event an approval did not accept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "check", rename_all = "snake_case")]
pub enum Mismatch {
    Revoked {
        at: DateTime<Utc>,
        by: Option<String>,
    },
    Expired {
        at: DateTime<Utc>,
    },
    NotYetApproved {
        approved_at: DateTime<Utc>,
    },
    Cloud {
        allowed: Vec<CloudProvider>,
        event: CloudProvider,
    },
    Account {
        allowed: Vec<String>,
        event: String,
    },
    Region {
        allowed: Vec<String>,
        event: String,
    },
    ResourceType {
        allowed: Vec<String>,
        event: String,
    },
    Resource {
        patterns: Vec<String>,
        id: String,
        name: String,
    },
    Tag {
        selector: TagSelector,
    },
    Environment {
        allowed: Vec<Environment>,
        event: Option<Environment>,
    },
    BelowMinSeverity {
        min: Severity,
        event: Severity,
    },
    BlastRadiusUsedUp {
        used: u32,
        max: u32,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |items: &[String]| items.join(", ");
        match self {
            Mismatch::Revoked { at, by } => match by {
                Some(by) => write!(f, "revoked by {by} at {at}"),
                None => write!(f, "revoked at {at}"),
            },
            Mismatch::Expired { at } => write!(f, "expired at {at}"),
            Mismatch::NotYetApproved { approved_at } => {
                write!(f, "approved at {approved_at}, after the decision time")
            }
            Mismatch::Cloud { allowed, event } => {
                let allowed: Vec<String> = allowed.iter().map(ToString::to_string).collect();
                write!(f, "wrong cloud: {event} (allows {})", list(&allowed))
            }
            Mismatch::Account { allowed, event } => {
                write!(f, "wrong account: {event} (allows {})", list(allowed))
            }
            Mismatch::Region { allowed, event } => {
                write!(f, "wrong region: {event} (allows {})", list(allowed))
            }
            Mismatch::ResourceType { allowed, event } => {
                write!(f, "wrong resource type: {event} (allows {})", list(allowed))
            }
            Mismatch::Resource { patterns, id, name } => write!(
                f,
                "resource {name} ({id}) matches none of {}",
                list(patterns)
            ),
            Mismatch::Tag { selector } => write!(f, "tag mismatch: needs {selector}"),
            Mismatch::Environment { allowed, event } => {
                let allowed: Vec<String> = allowed.iter().map(ToString::to_string).collect();
                match event {
                    Some(e) => write!(f, "wrong environment: {e} (allows {})", list(&allowed)),
                    None => write!(
                        f,
                        "environment unknown (allows {}); tag the resource with `environment`",
                        list(&allowed)
                    ),
                }
            }
            Mismatch::BelowMinSeverity { min, event } => {
                write!(
                    f,
                    "below min_severity: event is {event}, needs {min} or higher"
                )
            }
            Mismatch::BlastRadiusUsedUp { used, max } => write!(
                f,
                "blast radius used up: {used} of {max} resources already acted on today"
            ),
        }
    }
}

/// Decides whether `action` is pre-approved for `event` among `approvals` (any actions; only
/// those for `action` are candidates).
pub fn decide(
    event: &UnifiedEvent,
    action: Action,
    approvals: &[Approval],
    now: DateTime<Utc>,
    usage: &dyn BlastRadiusUsage,
) -> Decision {
    decide_among(event, action, approvals, 0, now, usage)
}

/// [`decide`] over the approvals an index selected; `not_listed` counts the approvals for
/// `action` the index left out because their scope cannot cover the event.
pub fn decide_among<'a>(
    event: &UnifiedEvent,
    action: Action,
    approvals: impl IntoIterator<Item = &'a Approval>,
    not_listed: usize,
    now: DateTime<Utc>,
    usage: &dyn BlastRadiusUsage,
) -> Decision {
    let mut candidates: Vec<(&Approval, Candidate)> = approvals
        .into_iter()
        .filter(|a| a.action == action)
        .map(|a| {
            let outcome = match first_mismatch(a, event, now, usage) {
                Some(failed) => Outcome::Failed { failed },
                None => Outcome::Outranked,
            };
            let candidate = Candidate {
                approval_id: a.id.clone(),
                approved_by: a.approved_by.clone(),
                reason: a.reason.clone(),
                specificity: specificity(a),
                outcome,
            };
            (a, candidate)
        })
        .collect();
    // Most specific first, then newest, then by id so equal approvals still order stably.
    candidates.sort_by(|(a, ca), (b, cb)| {
        cb.specificity
            .cmp(&ca.specificity)
            .then(b.approved_at.cmp(&a.approved_at))
            .then(a.id.cmp(&b.id))
    });
    let chosen = candidates
        .iter_mut()
        .find(|(_, c)| c.outcome == Outcome::Outranked)
        .map(|(a, c)| {
            c.outcome = Outcome::Chosen;
            a.id.clone()
        });
    let explanation = Explanation {
        action,
        event_id: event.event_id.clone(),
        resource_id: event.resource.id.clone(),
        decided_at: now,
        candidates: candidates.into_iter().map(|(_, c)| c).collect(),
        not_listed,
    };
    match chosen {
        Some(approval_id) => Decision::Approved {
            approval_id,
            explanation,
        },
        None => Decision::NotApproved { explanation },
    }
}

/// The number of scope dimensions an approval narrows.
fn specificity(approval: &Approval) -> usize {
    let s = &approval.scope;
    [
        !s.clouds.is_empty(),
        !s.account_ids.is_empty(),
        !s.regions.is_empty(),
        !s.resource_types.is_empty(),
        !s.resources.is_empty(),
        !s.tags.is_empty(),
        !s.environments.is_empty(),
    ]
    .into_iter()
    .filter(|narrowed| *narrowed)
    .count()
}

/// Checks in the order an operator reads them: validity, then scope, then conditions.
fn first_mismatch(
    approval: &Approval,
    event: &UnifiedEvent,
    now: DateTime<Utc>,
    usage: &dyn BlastRadiusUsage,
) -> Option<Mismatch> {
    if let Some(at) = approval.revoked_at.filter(|at| *at <= now) {
        return Some(Mismatch::Revoked {
            at,
            by: approval.revoked_by.clone(),
        });
    }
    if let Some(at) = approval.expires_at.filter(|at| *at <= now) {
        return Some(Mismatch::Expired { at });
    }
    if approval.approved_at > now {
        return Some(Mismatch::NotYetApproved {
            approved_at: approval.approved_at,
        });
    }
    let scope = &approval.scope;
    if !scope.clouds.is_empty() && !scope.clouds.contains(&event.cloud_provider) {
        return Some(Mismatch::Cloud {
            allowed: scope.clouds.clone(),
            event: event.cloud_provider,
        });
    }
    if !any_equal(&scope.account_ids, &event.account_id) {
        return Some(Mismatch::Account {
            allowed: scope.account_ids.clone(),
            event: event.account_id.clone(),
        });
    }
    if !any_equal(&scope.regions, &event.region) {
        return Some(Mismatch::Region {
            allowed: scope.regions.clone(),
            event: event.region.clone(),
        });
    }
    if !any_equal(&scope.resource_types, &event.resource.kind) {
        return Some(Mismatch::ResourceType {
            allowed: scope.resource_types.clone(),
            event: event.resource.kind.clone(),
        });
    }
    let resource = &event.resource;
    if !scope.resources.is_empty()
        && !scope.resources.iter().any(|pattern| {
            let glob = WildMatch::new(pattern);
            glob.matches(&resource.id) || glob.matches(&resource.name)
        })
    {
        return Some(Mismatch::Resource {
            patterns: scope.resources.clone(),
            id: resource.id.clone(),
            name: resource.name.clone(),
        });
    }
    if let Some(selector) = scope.tags.iter().find(|s| !s.matches(&resource.tags)) {
        return Some(Mismatch::Tag {
            selector: selector.clone(),
        });
    }
    let environment = event.context.environment;
    if !scope.environments.is_empty()
        && !environment.is_some_and(|e| scope.environments.contains(&e))
    {
        return Some(Mismatch::Environment {
            allowed: scope.environments.clone(),
            event: environment,
        });
    }
    let conditions = &approval.conditions;
    if let Some(min) = conditions.min_severity.filter(|min| event.severity < *min) {
        return Some(Mismatch::BelowMinSeverity {
            min,
            event: event.severity,
        });
    }
    if let Some(max) = conditions.max_resources_per_day {
        let used = usage.used(&approval.id, now.date_naive());
        if used >= max {
            return Some(Mismatch::BlastRadiusUsedUp { used, max });
        }
    }
    None
}

/// Empty allows anything; account ids and regions are compared case-insensitively.
fn any_equal(allowed: &[String], value: &str) -> bool {
    allowed.is_empty() || allowed.iter().any(|a| a.trim().eq_ignore_ascii_case(value))
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.candidates.is_empty() && self.not_listed == 0 {
            return write!(
                f,
                "no approval exists for {}: add one with `escher-provision approvals add --action {}`",
                self.action, self.action
            );
        }
        for c in &self.candidates {
            let verdict = match &c.outcome {
                Outcome::Chosen => "matches (chosen)".to_string(),
                Outcome::Outranked => "matches (a more specific or newer approval wins)".into(),
                Outcome::Failed { failed } => failed.to_string(),
            };
            writeln!(
                f,
                "- {} (by {}: {}): {verdict}",
                c.approval_id, c.approved_by, c.reason
            )?;
        }
        if self.not_listed > 0 {
            writeln!(
                f,
                "- {} more approval(s) for {} cover other clouds, accounts, regions or resource types",
                self.not_listed, self.action
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::approvals::model::{Conditions, Scope};

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, day, hour, 0, 0)
            .single()
            .expect("valid time")
    }

    fn public_bucket() -> UnifiedEvent {
        serde_json::from_value(serde_json::json!({
            "event_id": "aws-00112233445566778899aabbccddeeff",
            "event_type": "bucket_public", "severity": "HIGH", "cloud_provider": "aws",
            "account_id": "123456789012", "region": "eu-west-1",
            "resource": {"type": "s3_bucket", "id": "arn:aws:s3:::marketing-assets",
                "name": "marketing-assets", "tags": {"Environment": "Dev", "team": "web"},
                "metadata": {}},
            "context": {"environment": "dev"}, "timestamp": "2026-11-02T08:00:00Z",
            "source": "aws.cloudtrail", "raw_event": {}, "schema_version": "1"
        }))
        .expect("event")
    }

    fn approval(id: &str, approved_at: DateTime<Utc>) -> Approval {
        Approval {
            id: id.into(),
            action: Action::MakeBucketPrivate,
            scope: Scope::default(),
            conditions: Conditions::default(),
            approved_by: "ana".into(),
            approved_at,
            expires_at: None,
            reason: "public buckets are never intended".into(),
            revoked_at: None,
            revoked_by: None,
            revoke_reason: None,
        }
    }

    fn decide_now(approvals: &[Approval]) -> Decision {
        decide(
            &public_bucket(),
            Action::MakeBucketPrivate,
            approvals,
            at(2, 9),
            &NothingUsedYet,
        )
    }

    fn failed(decision: &Decision, id: &str) -> Mismatch {
        let candidate = decision
            .explanation()
            .candidates
            .iter()
            .find(|c| c.approval_id == id)
            .expect("candidate listed");
        match &candidate.outcome {
            Outcome::Failed { failed } => failed.clone(),
            other => panic!("{id}: expected a failed check, got {other:?}"),
        }
    }

    #[test]
    fn an_account_wide_approval_approves_and_says_so() {
        let decision = decide_now(&[approval("wide", at(1, 0))]);
        assert_eq!(
            decision,
            Decision::Approved {
                approval_id: "wide".into(),
                explanation: decision.explanation().clone(),
            }
        );
        assert_eq!(
            decision.explanation().candidates[0].outcome,
            Outcome::Chosen
        );
        assert!(decision
            .explanation()
            .to_string()
            .contains("matches (chosen)"));
    }

    #[test]
    fn without_an_approval_for_the_action_nothing_is_approved() {
        let mut other = approval("stop", at(1, 0));
        other.action = Action::StopIdleInstance;
        let decision = decide_now(&[other]);
        assert!(!decision.is_approved());
        assert!(
            decision.explanation().candidates.is_empty(),
            "other actions are not candidates"
        );
        assert!(decision
            .explanation()
            .to_string()
            .contains("approvals add --action make_bucket_private"));
    }

    #[test]
    fn revoked_expired_and_future_approvals_never_match() {
        let mut revoked = approval("revoked", at(1, 0));
        revoked.revoked_at = Some(at(2, 8));
        revoked.revoked_by = Some("lee".into());
        let mut expired = approval("expired", at(1, 0));
        expired.expires_at = Some(at(2, 9));
        let future = approval("future", at(2, 10));
        let decision = decide_now(&[revoked, expired, future]);
        assert!(!decision.is_approved());
        assert!(
            matches!(failed(&decision, "revoked"), Mismatch::Revoked { by: Some(ref b), .. } if b == "lee")
        );
        assert_eq!(
            failed(&decision, "expired"),
            Mismatch::Expired { at: at(2, 9) }
        );
        assert!(matches!(
            failed(&decision, "future"),
            Mismatch::NotYetApproved { .. }
        ));
    }

    #[test]
    fn each_scope_dimension_reports_the_first_failing_check() {
        let mut cloud = approval("cloud", at(1, 0));
        cloud.scope.clouds = vec![CloudProvider::Gcp];
        let mut account = approval("account", at(1, 0));
        account.scope.account_ids = vec!["999999999999".into()];
        let mut region = approval("region", at(1, 0));
        region.scope.regions = vec!["us-east-1".into()];
        let mut kind = approval("kind", at(1, 0));
        kind.scope.resource_types = vec!["gcs_bucket".into()];
        let mut glob = approval("glob", at(1, 0));
        glob.scope.resources = vec!["arn:aws:s3:::tmp-*".into(), "scratch-?".into()];
        let mut tag = approval("tag", at(1, 0));
        tag.scope.tags = vec![
            "team=web".parse().expect("selector"),
            "owner".parse().expect("selector"),
        ];
        let mut env = approval("env", at(1, 0));
        env.scope.environments = vec![Environment::Production];
        let mut severity = approval("severity", at(1, 0));
        severity.conditions.min_severity = Some(Severity::Critical);
        // Several checks fail here; the first in reading order is reported.
        let mut both = approval("both", at(1, 0));
        both.scope.account_ids = vec!["999999999999".into()];
        both.scope.environments = vec![Environment::Production];

        let decision = decide_now(&[cloud, account, region, kind, glob, tag, env, severity, both]);
        assert!(!decision.is_approved());
        assert!(matches!(
            failed(&decision, "cloud"),
            Mismatch::Cloud {
                event: CloudProvider::Aws,
                ..
            }
        ));
        assert!(matches!(
            failed(&decision, "account"),
            Mismatch::Account { .. }
        ));
        assert!(
            matches!(failed(&decision, "region"), Mismatch::Region { ref event, .. } if event == "eu-west-1")
        );
        assert!(
            matches!(failed(&decision, "kind"), Mismatch::ResourceType { ref event, .. } if event == "s3_bucket")
        );
        assert!(matches!(
            failed(&decision, "glob"),
            Mismatch::Resource { .. }
        ));
        assert!(
            matches!(failed(&decision, "tag"), Mismatch::Tag { ref selector } if selector.key == "owner")
        );
        assert!(matches!(
            failed(&decision, "env"),
            Mismatch::Environment {
                event: Some(Environment::Dev),
                ..
            }
        ));
        assert_eq!(
            failed(&decision, "severity"),
            Mismatch::BelowMinSeverity {
                min: Severity::Critical,
                event: Severity::High
            }
        );
        assert!(matches!(
            failed(&decision, "both"),
            Mismatch::Account { .. }
        ));
        let text = decision.explanation().to_string();
        assert!(
            text.contains("wrong region: eu-west-1 (allows us-east-1)"),
            "{text}"
        );
        assert!(text.contains("tag mismatch: needs owner"), "{text}");
    }

    #[test]
    fn scope_matches_are_lenient_about_case_and_globs_cover_id_or_name() {
        let mut a = approval("narrow", at(1, 0));
        a.scope.account_ids = vec!["123456789012".into()];
        a.scope.regions = vec!["EU-WEST-1".into()];
        a.scope.resources = vec!["marketing-*".into()];
        a.scope.tags = vec!["environment=dev".parse().expect("selector")];
        a.scope.environments = vec![Environment::Dev];
        let mut by_arn = approval("by-arn", at(1, 0));
        by_arn.scope.resources = vec!["arn:aws:s3:::*".into()];
        let decision = decide_now(&[a, by_arn]);
        assert_eq!(
            decision,
            Decision::Approved {
                approval_id: "narrow".into(),
                explanation: decision.explanation().clone()
            }
        );
        let outranked = decision
            .explanation()
            .candidates
            .iter()
            .find(|c| c.approval_id == "by-arn")
            .map(|c| c.outcome.clone());
        assert_eq!(outranked, Some(Outcome::Outranked));
    }

    #[test]
    fn the_most_specific_match_wins_and_ties_go_to_the_newest() {
        let broad_new = approval("broad-new", at(2, 0));
        let mut specific_old = approval("specific-old", at(1, 0));
        specific_old.scope.resource_types = vec!["s3_bucket".into()];
        let decision = decide_now(&[broad_new.clone(), specific_old.clone()]);
        assert!(
            matches!(decision, Decision::Approved { ref approval_id, .. } if approval_id == "specific-old")
        );

        let mut specific_new = approval("specific-new", at(1, 12));
        specific_new.scope.regions = vec!["eu-west-1".into()];
        let forwards = decide_now(&[
            specific_old.clone(),
            specific_new.clone(),
            broad_new.clone(),
        ]);
        let backwards = decide_now(&[broad_new, specific_new, specific_old]);
        assert!(
            matches!(forwards, Decision::Approved { ref approval_id, .. } if approval_id == "specific-new")
        );
        assert_eq!(
            forwards, backwards,
            "the order of the store does not matter"
        );
    }

    #[test]
    fn a_used_up_blast_radius_blocks_only_its_own_approval() {
        let mut capped = approval("capped", at(1, 0));
        capped.scope.resource_types = vec!["s3_bucket".into()];
        capped.conditions.max_resources_per_day = Some(3);
        let fallback = approval("fallback", at(1, 0));
        let usage: HashMap<String, u32> = [("capped".to_string(), 3)].into();
        let decision = decide(
            &public_bucket(),
            Action::MakeBucketPrivate,
            &[capped.clone(), fallback],
            at(2, 9),
            &usage,
        );
        assert_eq!(
            failed(&decision, "capped"),
            Mismatch::BlastRadiusUsedUp { used: 3, max: 3 }
        );
        assert!(
            matches!(decision, Decision::Approved { ref approval_id, .. } if approval_id == "fallback")
        );
        let under: HashMap<String, u32> = [("capped".to_string(), 2)].into();
        let decision = decide(
            &public_bucket(),
            Action::MakeBucketPrivate,
            &[capped],
            at(2, 9),
            &under,
        );
        assert!(decision.is_approved());
    }

    #[test]
    fn an_unknown_environment_does_not_satisfy_an_environment_scope() {
        let mut event = public_bucket();
        event.context.environment = None;
        let mut a = approval("prod-only", at(1, 0));
        a.scope.environments = vec![Environment::Dev];
        let decision = decide(
            &event,
            Action::MakeBucketPrivate,
            &[a],
            at(2, 9),
            &NothingUsedYet,
        );
        assert_eq!(
            failed(&decision, "prod-only"),
            Mismatch::Environment {
                allowed: vec![Environment::Dev],
                event: None
            }
        );
        assert!(decision
            .explanation()
            .to_string()
            .contains("tag the resource with `environment`"));
    }
}
