//! The morning report's "repeat offenders": the resources and principals behind several
//! incidents in the days before the report, from the incident memory.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Incident;

/// How far back the morning report looks for repeats.
pub const REPEAT_WINDOW_DAYS: u32 = 7;
/// A resource with this many incidents in the window recurs.
const RESOURCE_REPEATS_AT: u64 = 2;
/// A principal with this many incidents in the window recurs.
const PRINCIPAL_REPEATS_AT: u64 = 3;
/// At most this many of each kind are listed, most incidents first.
const LISTED: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OffenderKind {
    Resource,
    Principal,
}

/// A resource or principal behind several incidents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RepeatOffender {
    pub kind: OffenderKind,
    /// The resource's type and name, or the principal.
    pub name: String,
    pub incidents: u64,
    /// For a principal, the resources involved; for a resource, the principals involved.
    pub across: u64,
    pub last_at: DateTime<Utc>,
}

/// The repeat offenders of the window before the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RepeatOffenders {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// Resources first, then principals; within each, most incidents first.
    pub offenders: Vec<RepeatOffender>,
    /// Set when the incident memory could not be read: the list may be incomplete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

impl RepeatOffenders {
    /// Finds the repeats among `incidents` handled in (`since`, `until`].
    pub fn find<'a>(
        incidents: impl IntoIterator<Item = &'a Incident>,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> RepeatOffenders {
        #[derive(Default)]
        struct Tally {
            incidents: u64,
            others: BTreeSet<String>,
            last_at: Option<DateTime<Utc>>,
        }
        fn count(tally: &mut Tally, other: Option<String>, at: DateTime<Utc>) {
            tally.incidents += 1;
            tally.others.extend(other);
            tally.last_at = tally.last_at.max(Some(at));
        }
        let mut resources: BTreeMap<String, (String, Tally)> = BTreeMap::new();
        let mut principals: BTreeMap<String, (String, Tally)> = BTreeMap::new();
        for i in incidents
            .into_iter()
            .filter(|i| i.handled_at > since && i.handled_at <= until)
        {
            let name = format!("{} {}", i.resource_type, i.resource_name);
            let (_, tally) = resources
                .entry(i.resource_key())
                .or_insert((name, Tally::default()));
            count(
                tally,
                i.principal.as_ref().map(|p| p.to_ascii_lowercase()),
                i.handled_at,
            );
            if let Some(p) = &i.principal {
                let (_, tally) = principals
                    .entry(p.to_ascii_lowercase())
                    .or_insert((p.clone(), Tally::default()));
                count(tally, Some(i.resource_key()), i.handled_at);
            }
        }
        let listed = |kind, map: BTreeMap<String, (String, Tally)>, at_least| {
            let mut list: Vec<RepeatOffender> = map
                .into_values()
                .filter(|(_, t)| t.incidents >= at_least)
                .map(|(name, t)| RepeatOffender {
                    kind,
                    name,
                    incidents: t.incidents,
                    across: t.others.len() as u64,
                    last_at: t.last_at.unwrap_or(until),
                })
                .collect();
            list.sort_by(|a, b| b.incidents.cmp(&a.incidents).then(a.name.cmp(&b.name)));
            list.truncate(LISTED);
            list
        };
        let mut offenders = listed(OffenderKind::Resource, resources, RESOURCE_REPEATS_AT);
        offenders.extend(listed(
            OffenderKind::Principal,
            principals,
            PRINCIPAL_REPEATS_AT,
        ));
        RepeatOffenders {
            since,
            until,
            offenders,
            failure: None,
        }
    }
}

impl std::fmt::Display for RepeatOffender {
    /// `s3_bucket marketing-assets: 3 incidents (2 principals)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plural =
            |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let across = match self.kind {
            OffenderKind::Resource => plural(self.across, "principal", "principals"),
            OffenderKind::Principal => plural(self.across, "resource", "resources"),
        };
        write!(
            f,
            "{}: {} ({across})",
            self.name,
            plural(self.incidents, "incident", "incidents")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incidents::tests::incident;

    #[test]
    fn resources_and_principals_that_recur_are_listed_most_first() {
        let dev = "arn:aws:iam::123456789012:user/dev";
        let ops = "arn:aws:iam::123456789012:user/ops";
        let incidents = vec![
            incident("a1", "logs", dev, "2026-11-28T00:00:00Z"),
            incident("a2", "logs", ops, "2026-11-29T00:00:00Z"),
            incident("a3", "logs", dev, "2026-11-30T00:00:00Z"),
            incident("a4", "media", dev, "2026-11-30T01:00:00Z"),
            incident("a5", "web", ops, "2026-11-30T02:00:00Z"),
            // Before the window: not counted.
            incident("a0", "web", ops, "2026-11-01T00:00:00Z"),
        ];
        let until: DateTime<Utc> = "2026-12-01T02:00:00Z".parse().expect("time");
        let since = until - chrono::Duration::days(i64::from(REPEAT_WINDOW_DAYS));
        let found = RepeatOffenders::find(&incidents, since, until);
        let said: Vec<String> = found.offenders.iter().map(ToString::to_string).collect();
        assert_eq!(
            said,
            [
                "s3_bucket logs: 3 incidents (2 principals)",
                "arn:aws:iam::123456789012:user/dev: 3 incidents (2 resources)",
            ]
        );
        assert_eq!(
            found.offenders[0].last_at,
            "2026-11-30T00:00:00Z"
                .parse::<DateTime<Utc>>()
                .expect("time")
        );
    }
}
