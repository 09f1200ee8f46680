//! The incident memory: every event the pipeline handles and what became of it, kept as a
//! second tantivy index in the state store, so that a notice and its audit record can say
//! "the 3rd time this bucket was made public in 30 days; last time by the same principal;
//! fixed automatically in 1.4 s", and people can search what happened before
//! (`escher-provision incidents search`).
//!
//! The audit trail stays the record of what was done: the memory is made from it and can be
//! rebuilt from it at any time ([`IncidentMemory::rebuild`]), so it is never the only copy.

mod index;
mod offenders;
mod store;

pub use index::{IncidentIndex, IncidentIndexError};
pub use offenders::{OffenderKind, RepeatOffender, RepeatOffenders, REPEAT_WINDOW_DAYS};
pub use store::{Compacted, IncidentMemory, MemoryError, MemoryView, COMPACT_AT};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::approvals::Action;
use crate::pipeline::audit::{AuditRecord, Outcome};
use crate::remediate::Mode;
use crate::resource_types::{aws, azure, gcp};
use crate::{CloudProvider, EventType, Severity, UnifiedEvent};

/// How far back a notice looks for the same thing happening before.
pub const WINDOW_DAYS: u32 = 30;

/// One handled event, as the memory keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub event_id: String,
    pub handled_at: DateTime<Utc>,
    pub cloud: CloudProvider,
    pub account_id: String,
    pub region: String,
    pub resource_type: String,
    pub resource_id: String,
    pub resource_name: String,
    pub event_type: EventType,
    pub severity: Severity,
    /// Who made the change the alert is about, where the cloud's event says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    pub outcome: Outcome,
    pub summary: String,
    /// From receipt to audit, when the record says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handled_in_ms: Option<u64>,
    pub audit_path: String,
}

impl Incident {
    /// The incident an audit record describes; `None` for what is not an incident: a dry
    /// run, a duplicate delivery, an unreadable payload.
    pub fn from_record(record: &AuditRecord, audit_path: &str) -> Option<Incident> {
        if record.mode != Mode::Apply
            || matches!(record.outcome, Outcome::Duplicate | Outcome::Unrecognized)
        {
            return None;
        }
        let event = record.event.as_ref()?;
        Some(Incident {
            event_id: event.event_id.clone(),
            handled_at: record.handled_at,
            cloud: event.cloud_provider,
            account_id: event.account_id.clone(),
            region: event.region.clone(),
            resource_type: event.resource.kind.clone(),
            resource_id: event.resource.id.clone(),
            resource_name: event.resource.name.clone(),
            event_type: event.event_type,
            severity: event.severity,
            principal: principal(event).map(str::to_string),
            action: record.action,
            outcome: record.outcome,
            summary: record.summary.clone(),
            handled_in_ms: record.timings_ms.get("total").copied(),
            audit_path: audit_path.to_string(),
        })
    }

    /// What identifies the resource across incidents: cloud, account and resource id.
    pub fn resource_key(&self) -> String {
        resource_key(self.cloud, &self.account_id, &self.resource_id)
    }
}

/// Cloud, account and resource id in one term, compared case-insensitively (ARNs and Azure
/// ids arrive in either case).
pub fn resource_key(cloud: CloudProvider, account_id: &str, resource_id: &str) -> String {
    format!(
        "{}\u{1f}{}\u{1f}{}",
        cloud.as_str(),
        account_id.trim().to_ascii_lowercase(),
        resource_id.trim().to_ascii_lowercase()
    )
}

/// Who made the change, as the normalizers record it: the IAM principal's ARN (CloudTrail),
/// the caller (Azure Activity Log) or the principal's e-mail (Cloud Audit Logs).
pub fn principal(event: &UnifiedEvent) -> Option<&str> {
    ["principal_arn", "principal_email", "caller", "principal_id"]
        .iter()
        .find_map(|key| event.resource.metadata.get(*key)?.as_str())
        .map(str::trim)
        .filter(|p| !p.is_empty())
}

/// What the memory says about an event before it is notified: how often the same thing
/// happened to the same resource, how it went last time, and whether the same principal is
/// behind other incidents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentHistory {
    pub window_days: u32,
    /// Incidents of this event type on this resource in the window, this one included.
    pub occurrences: u64,
    /// The one before this one (same resource and event type), when in the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Incident>,
    /// This event's principal, when the cloud's event names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// Incidents on other resources by the same principal, in the window.
    pub principal_elsewhere: u64,
    /// The sentence the notice carries.
    pub summary: String,
}

impl IncidentHistory {
    /// `None` when there is nothing to say: the first time, by nobody seen before.
    pub fn new(
        event: &UnifiedEvent,
        earlier_here: u64,
        previous: Option<Incident>,
        principal_elsewhere: u64,
    ) -> Option<IncidentHistory> {
        if earlier_here == 0 && principal_elsewhere == 0 {
            return None;
        }
        let principal = principal(event).map(str::to_string);
        let occurrences = earlier_here + 1;
        let mut parts = Vec::new();
        if earlier_here > 0 {
            parts.push(format!(
                "the {} time this {} {} in {WINDOW_DAYS} days",
                ordinal(occurrences),
                noun(&event.resource.kind),
                happened(event.event_type)
            ));
        }
        if let Some(previous) = &previous {
            let by = match (&principal, &previous.principal) {
                (Some(now), Some(then)) if now.eq_ignore_ascii_case(then) => {
                    Some("last time by the same principal".to_string())
                }
                (_, Some(then)) => Some(format!("last time by {then}")),
                _ => None,
            };
            parts.extend(by);
            parts.push(went(previous));
        }
        if principal_elsewhere > 0 {
            if let Some(p) = &principal {
                parts.push(format!(
                    "{p} is behind {principal_elsewhere} other incident{} in {WINDOW_DAYS} days",
                    if principal_elsewhere == 1 { "" } else { "s" }
                ));
            }
        }
        Some(IncidentHistory {
            window_days: WINDOW_DAYS,
            occurrences,
            previous,
            principal,
            principal_elsewhere,
            summary: parts.join("; "),
        })
    }
}

/// The start of the look-back window for an event handled at `now`.
pub fn window_start(now: DateTime<Utc>) -> DateTime<Utc> {
    now - Duration::days(i64::from(WINDOW_DAYS))
}

fn ordinal(n: u64) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

fn noun(resource_type: &str) -> &'static str {
    match resource_type {
        aws::S3_BUCKET | gcp::GCS_BUCKET => "bucket",
        azure::BLOB_CONTAINER => "container",
        azure::STORAGE_ACCOUNT => "storage account",
        aws::SECURITY_GROUP => "security group",
        azure::NSG | azure::NSG_RULE => "network security group",
        gcp::GCE_FIREWALL => "firewall rule",
        aws::EC2_INSTANCE | gcp::GCE_INSTANCE => "instance",
        azure::VM => "virtual machine",
        aws::EBS_VOLUME | azure::DISK | gcp::GCE_DISK => "disk",
        aws::RDS_INSTANCE | aws::RDS_CLUSTER => "database",
        _ => "resource",
    }
}

fn happened(event_type: EventType) -> String {
    match event_type {
        EventType::BucketPublic => "was made public".into(),
        EventType::FirewallOpen => "was opened to the internet".into(),
        EventType::VolumeUnencrypted => "was found unencrypted".into(),
        EventType::InstanceIdle => "sat idle".into(),
        EventType::CapacityHigh => "ran near capacity".into(),
        EventType::ServiceHealth => "was unhealthy".into(),
        EventType::DeploymentFailed => "failed a deployment".into(),
        other => format!("raised {other}"),
    }
}

fn went(previous: &Incident) -> String {
    let took = previous
        .handled_in_ms
        .map(|ms| {
            if ms < 1000 {
                format!(" in {ms} ms")
            } else {
                format!(" in {:.1} s", ms as f64 / 1000.0)
            }
        })
        .unwrap_or_default();
    match previous.outcome {
        Outcome::Remediated => format!("fixed automatically{took}"),
        Outcome::AlreadyCompliant => "already fixed when it was handled".into(),
        Outcome::ApprovalRequired => "it waited for an approval".into(),
        Outcome::NotifyOnly => "it was notified only".into(),
        Outcome::VerificationFailed => "the fix did not pass its verification".into(),
        Outcome::Failed => "the fix failed".into(),
        Outcome::Skipped => "the fix was skipped".into(),
        Outcome::NotSupported => "no fix could act on it".into(),
        other => format!("it ended {other}"),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn incident(id: &str, resource: &str, principal: &str, at: &str) -> Incident {
        Incident {
            event_id: id.into(),
            handled_at: at.parse().expect("time"),
            cloud: CloudProvider::Aws,
            account_id: "123456789012".into(),
            region: "us-east-1".into(),
            resource_type: aws::S3_BUCKET.into(),
            resource_id: format!("arn:aws:s3:::{resource}"),
            resource_name: resource.into(),
            event_type: EventType::BucketPublic,
            severity: Severity::High,
            principal: (!principal.is_empty()).then(|| principal.to_string()),
            action: Some(Action::MakeBucketPrivate),
            outcome: Outcome::Remediated,
            summary: format!("made bucket {resource} private"),
            handled_in_ms: Some(1400),
            audit_path: format!("audit/2026/11/20/{id}.json"),
        }
    }

    #[test]
    fn ordinals_read_as_english() {
        let got: Vec<String> = [1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111]
            .into_iter()
            .map(ordinal)
            .collect();
        assert_eq!(
            got,
            [
                "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st",
                "111th"
            ]
        );
    }

    fn event_by(principal: &str) -> UnifiedEvent {
        let mut event: UnifiedEvent = serde_json::from_value(serde_json::json!({
            "event_id": "aws-now",
            "event_type": "bucket_public",
            "severity": "HIGH",
            "cloud_provider": "aws",
            "account_id": "123456789012",
            "region": "us-east-1",
            "resource": {"type": "s3_bucket", "id": "arn:aws:s3:::logs", "name": "logs", "tags": {}, "metadata": {}},
            "context": {},
            "timestamp": "2026-11-22T08:00:00Z",
            "source": "aws.cloudtrail",
            "raw_event": {},
            "schema_version": "1"
        }))
        .expect("event");
        event
            .resource
            .metadata
            .insert("principal_arn".into(), principal.into());
        event
    }

    #[test]
    fn the_sentence_says_how_often_by_whom_and_how_it_went() {
        let ops = "arn:aws:iam::123456789012:user/ops";
        let previous = incident("aws-1", "logs", ops, "2026-11-20T08:00:00Z");
        let history = IncidentHistory::new(&event_by(ops), 2, Some(previous.clone()), 0)
            .expect("something to say");
        assert_eq!(
            history.summary,
            "the 3rd time this bucket was made public in 30 days; last time by the same principal; fixed automatically in 1.4 s"
        );
        assert_eq!(history.occurrences, 3);

        let other = IncidentHistory::new(
            &event_by("arn:aws:iam::123456789012:user/dev"),
            1,
            Some(previous),
            4,
        )
        .expect("something to say");
        assert_eq!(
            other.summary,
            "the 2nd time this bucket was made public in 30 days; last time by arn:aws:iam::123456789012:user/ops; fixed automatically in 1.4 s; arn:aws:iam::123456789012:user/dev is behind 4 other incidents in 30 days"
        );
        assert!(IncidentHistory::new(&event_by(ops), 0, None, 0).is_none());
    }
}
