//! What every cloud's fault suite shares. The promise it checks: every alert is handled
//! exactly once; when a store or a cloud API misbehaves, a delivery either completes or is
//! answered "retry" with nothing done twice; once the fault clears, redelivery completes it;
//! the audit trail verifies clean.
//!
//! A cloud's suite (`handlers/aws/tests/faults.rs`, `handlers/gcp/tests/faults.rs`) brings
//! its pipeline's steps (which requests are each step's, as a [`crate::fault_proxy::Rule`]),
//! its set-up and one delivery of its alert. This module picks the scenarios (one step × one
//! fault kind each), runs the deliveries, judges each scenario from the audit trail and the
//! proxies' logs, and prints and asserts the table.
//!
//! This crate depends on no escher crate (see its `Cargo.toml`), so the audit trail is read
//! by the macro [`audit_findings!`](crate::audit_findings), expanded in the suite, where
//! `escher_core` is at hand.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;

use futures::stream::{self, StreamExt};

use crate::fault_proxy::{Exchange, Fault, FaultProxy, Request};

/// How long a hung request is held: past the attempt timeout each suite gives its clients.
pub const HANG: Duration = Duration::from_secs(3);
/// Deliveries while the fault lasts (Lambda tries an asynchronous event three times;
/// Pub/Sub keeps pushing, and three is enough to see a delivery repeat what an earlier one did).
pub const FAULTY_DELIVERIES: usize = 3;
/// Redeliveries after the fault cleared before the scenario counts the event as lost.
pub const CLEAR_DELIVERIES: usize = 4;

/// A step of a cloud's pipeline, as the table names it; steps sort in the pipeline's order.
pub trait Step: Copy + Ord {
    fn name(self) -> &'static str;
}

/// Whether this run tries every step × every kind (`ESCHER_FAULTS=full`, `make faults`).
pub fn full() -> bool {
    std::env::var("ESCHER_FAULTS").is_ok_and(|v| v == "full")
}

/// Every fault kind, a hang held for [`HANG`].
pub fn kinds() -> [Fault; 8] {
    Fault::all(HANG)
}

/// The scenarios of a run: every step × every kind when [`full`]; else each step with one
/// kind, the kinds taken in turn (with at least as many steps as kinds, each kind is tried).
pub fn scenarios<S: Step>(steps: &[S], kinds: &[Fault]) -> Vec<(S, Fault)> {
    if full() {
        return steps
            .iter()
            .flat_map(|s| kinds.iter().map(move |k| (*s, *k)))
            .collect();
    }
    steps
        .iter()
        .enumerate()
        .map(|(i, s)| (*s, kinds[i % kinds.len()]))
        .collect()
}

/// What one delivery of the alert was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Handled (acknowledged), with its outcomes (`remediated`, `duplicate+…`).
    Handled(String),
    /// Not handled: the trigger delivers it again.
    Retry,
}

/// The deliveries of one scenario.
#[derive(Debug, Default)]
pub struct Deliveries {
    pub count: usize,
    /// Each delivery's answer: its outcomes, or `retry`.
    pub answers: Vec<String>,
    pub handled: bool,
}

/// Delivers the alert while the rules already added to `proxies` fault their step (up to
/// [`FAULTY_DELIVERIES`] times, as long as it is answered "retry"), clears every proxy's
/// rules, then redelivers it until it is handled (up to [`CLEAR_DELIVERIES`] more).
pub async fn deliver<F, Fut>(proxies: &[&FaultProxy], mut once: F) -> Deliveries
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Answer>,
{
    let mut deliveries = Deliveries::default();
    for _ in 0..FAULTY_DELIVERIES {
        deliveries.take(once().await);
        if deliveries.handled {
            break;
        }
    }
    for proxy in proxies {
        proxy.clear();
    }
    for _ in 0..CLEAR_DELIVERIES {
        if deliveries.handled {
            break;
        }
        deliveries.take(once().await);
    }
    deliveries
}

impl Deliveries {
    fn take(&mut self, answer: Answer) {
        self.count += 1;
        match answer {
            Answer::Handled(outcomes) => {
                self.answers.push(outcomes);
                self.handled = true;
            }
            Answer::Retry => self.answers.push("retry".into()),
        }
    }
}

/// What the audit trail says about a scenario's resource.
#[derive(Debug, Default)]
pub struct AuditFindings {
    /// Records of the resource with the outcome `remediated`.
    pub remediated: usize,
    /// Days whose `audit verify` is not clean, with its report.
    pub unclean: Vec<String>,
}

/// What an audit trail holds: per resource name, its records by outcome (`remediated`,
/// `duplicate`, …); and the days whose `audit verify` is not clean, with the report.
#[derive(Debug, Default)]
pub struct AuditTally {
    pub per_resource: BTreeMap<String, BTreeMap<String, usize>>,
    pub unclean: Vec<String>,
}

impl AuditTally {
    /// Counts one record of `resource` with `outcome`.
    pub fn add(&mut self, resource: &str, outcome: &str) {
        *self
            .per_resource
            .entry(resource.to_string())
            .or_default()
            .entry(outcome.to_string())
            .or_default() += 1;
    }

    /// The records of `resource` with `outcome`.
    pub fn count(&self, resource: &str, outcome: &str) -> usize {
        self.per_resource
            .get(resource)
            .and_then(|o| o.get(outcome))
            .copied()
            .unwrap_or(0)
    }

    /// The records with `outcome`, every resource's.
    pub fn total(&self, outcome: &str) -> usize {
        self.per_resource
            .values()
            .filter_map(|o| o.get(outcome))
            .sum()
    }

    /// Every record.
    pub fn records(&self) -> usize {
        self.per_resource.values().flat_map(|o| o.values()).sum()
    }

    /// What the trail says about one resource.
    pub fn findings(self, resource: &str) -> AuditFindings {
        AuditFindings {
            remediated: self.count(resource, REMEDIATED),
            unclean: self.unclean,
        }
    }
}

/// The outcome of a record that fixed its resource.
pub const REMEDIATED: &str = "remediated";

/// Reads the audit store at `$uri` (a `&str`, read straight from the emulator, not through
/// a proxy) into an [`AuditTally`]: every record, counted by its event's resource name and
/// its outcome, and every day's `verify_day`. An `async` block giving `Result<AuditTally,
/// String>`; the expanding crate depends on `escher_core`.
#[macro_export]
macro_rules! audit_tally {
    ($uri:expr) => {
        async {
            let uri: &str = $uri;
            let store = ::escher_core::store::open(uri).map_err(|e| e.to_string())?;
            let log = ::escher_core::pipeline::audit::AuditLog::new(store, uri.to_string());
            let mut tally = $crate::fault_suite::AuditTally::default();
            for day in log.days().await.map_err(|e| e.to_string())? {
                for record in log.records(day).await.map_err(|e| e.to_string())? {
                    let resource = record
                        .event
                        .as_ref()
                        .map(|e| e.resource.name.as_str())
                        .unwrap_or_default();
                    tally.add(resource, record.outcome.as_str());
                }
                let verified = log.verify_day(day).await.map_err(|e| e.to_string())?;
                if !verified.is_clean() {
                    tally.unclean.push(format!("{day}: {verified:?}"));
                }
            }
            Ok::<_, String>(tally)
        }
    };
}

/// [`audit_tally!`](crate::audit_tally) for the resource named `$resource`: its
/// `remediated` records and the unclean days, as an [`AuditFindings`].
#[macro_export]
macro_rules! audit_findings {
    ($uri:expr, $resource:expr) => {
        async {
            let resource: &str = $resource;
            $crate::audit_tally!($uri)
                .await
                .map(|t| t.findings(resource))
        }
    };
}

/// The fix's changes as a proxy saw them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Changes applied again after an earlier application of the same change was answered.
    pub double: usize,
    /// Whether the service applied any.
    pub applied: bool,
}

/// The fix's changes in `log`: `change` names the kind of change a request makes (`acl`,
/// `setIamPolicy`, …), or `None` for a request that changes nothing.
///
/// A change applied again after an earlier application of it was answered is a double fix:
/// the handler knew it was made and made it again. A change whose answer was lost may be
/// re-sent (by the client's retry or a redelivery); that is not a second fix.
pub fn changes<K: PartialEq>(log: &[Exchange], change: impl Fn(&Request) -> Option<K>) -> Changes {
    let made: Vec<(K, &Exchange)> = log
        .iter()
        .filter_map(|x| change(&x.request).map(|kind| (kind, x)))
        .collect();
    let double = made
        .iter()
        .enumerate()
        .filter(|(i, (kind, x))| {
            x.applied()
                && made[..*i]
                    .iter()
                    .any(|(k, c)| k == kind && c.applied() && c.answered.is_some())
        })
        .count();
    Changes {
        double,
        applied: made.iter().any(|(_, x)| x.applied()),
    }
}

/// What one scenario found.
#[derive(Default, Debug)]
pub struct Found {
    /// The resource is not as the fix leaves it, or no `remediated` record says it was fixed.
    pub lost: bool,
    pub double_fixes: usize,
    /// Changes applied that no `remediated` record accounts for (0 or 1).
    pub unaudited_fixes: usize,
    pub unclean: Vec<String>,
    pub deliveries: usize,
    pub answers: Vec<String>,
}

impl Found {
    /// The verdict: `unfixed` says whether the resource is still as the alert found it.
    pub fn judge(
        deliveries: Deliveries,
        unfixed: bool,
        audit: AuditFindings,
        changes: Changes,
    ) -> Found {
        Found {
            lost: unfixed || audit.remediated == 0,
            double_fixes: changes.double,
            unaudited_fixes: usize::from(changes.applied && audit.remediated == 0),
            unclean: audit.unclean,
            deliveries: deliveries.count,
            answers: deliveries.answers,
        }
    }

    fn kept(&self) -> bool {
        !self.lost && self.double_fixes == 0 && self.unaudited_fixes == 0 && self.unclean.is_empty()
    }
}

/// One scenario's step, fault kind and verdict (or why it could not run).
pub type Outcome<S> = (S, Fault, Result<Found, String>);

/// Runs every scenario of `tried`, `in_flight` at a time, in the pipeline's order whatever
/// order they finish in.
pub async fn run<S, F, Fut>(tried: &[(S, Fault)], in_flight: usize, scenario: F) -> Vec<Outcome<S>>
where
    S: Step,
    F: Fn(S, Fault) -> Fut,
    Fut: Future<Output = Result<Found, String>>,
{
    let mut results: Vec<Outcome<S>> = stream::iter(tried.iter().copied())
        .map(|(step, fault)| {
            let found = scenario(step, fault);
            async move { (step, fault, found.await) }
        })
        .buffer_unordered(in_flight)
        .collect()
        .await;
    results.sort_by_key(|(step, fault, _)| (*step, fault.name()));
    results
}

/// Prints the table (`title`: events lost, double fixes, unaudited fixes, unclean days,
/// then a row per scenario) and asserts every figure is 0 and every scenario ran.
pub fn conclude<S: Step>(title: &str, tried: &[(S, Fault)], results: &[Outcome<S>]) {
    let (mut lost, mut double, mut unaudited, mut unclean, mut broken) = (0, 0, 0, 0, 0);
    let mut rows = Vec::new();
    for (step, fault, result) in results {
        match result {
            Ok(found) => {
                let row = format!(
                    "{:<48} {:<10} lost {} double {} unaudited {} unclean {}; answers: {}",
                    step.name(),
                    fault.name(),
                    u8::from(found.lost),
                    found.double_fixes,
                    found.unaudited_fixes,
                    found.unclean.len(),
                    found.answers.join(", ")
                );
                lost += usize::from(found.lost);
                double += found.double_fixes;
                unaudited += found.unaudited_fixes;
                unclean += found.unclean.len();
                if found.kept() {
                    rows.push(format!("  ok   {row}"));
                } else {
                    rows.push(format!("  FAIL {row}; {:?}", found.unclean));
                }
            }
            Err(e) => {
                broken += 1;
                rows.push(format!(
                    "  COULD NOT RUN {} × {}: {e}",
                    step.name(),
                    fault.name()
                ));
            }
        }
    }
    let deliveries: usize = results
        .iter()
        .filter_map(|(_, _, r)| r.as_ref().ok())
        .map(|f| f.deliveries)
        .sum();
    let steps = tried.iter().map(|(s, _)| *s).collect::<BTreeSet<_>>().len();
    let kinds = tried
        .iter()
        .map(|(_, f)| f.name())
        .collect::<BTreeSet<_>>()
        .len();
    let mut table = vec![
        format!(
            "{title}: {} scenarios ({steps} steps × {kinds} fault kinds tried), {deliveries} deliveries",
            results.len(),
        ),
        format!("  events lost       {lost}"),
        format!("  double fixes      {double}"),
        format!("  unaudited fixes   {unaudited}"),
        format!("  audit verify      {unclean} unclean"),
    ];
    table.extend(rows);
    let table = table.join("\n");
    println!("{table}");
    assert_eq!(broken, 0, "scenarios that could not run:\n{table}");
    assert_eq!(lost, 0, "{table}");
    assert_eq!(double, 0, "{table}");
    assert_eq!(unaudited, 0, "{table}");
    assert_eq!(unclean, 0, "{table}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
    struct Numbered(u8);

    impl Step for Numbered {
        fn name(self) -> &'static str {
            "a step"
        }
    }

    fn exchange(
        method: &str,
        path: &str,
        upstream: Option<u16>,
        answered: Option<u16>,
    ) -> Exchange {
        Exchange {
            request: Request {
                method: method.into(),
                path: path.into(),
                query: String::new(),
                operation: String::new(),
            },
            fault: None,
            upstream_status: upstream,
            answered,
        }
    }

    fn kind(r: &Request) -> Option<String> {
        (r.method == "PUT").then(|| r.path.clone())
    }

    #[test]
    fn the_default_run_tries_every_step_and_every_kind() {
        let steps: Vec<Numbered> = (0..10).map(Numbered).collect();
        let tried = scenarios(&steps, &kinds());
        if full() {
            assert_eq!(tried.len(), 80);
        } else {
            assert_eq!(tried.len(), 10);
            let kinds: BTreeSet<_> = tried.iter().map(|(_, f)| f.name()).collect();
            assert_eq!(kinds.len(), 8, "{tried:?}");
        }
    }

    #[test]
    fn a_change_resent_after_its_answer_was_lost_is_not_a_second_fix() {
        let log = [
            exchange("GET", "/b/x", Some(200), Some(200)),
            exchange("PUT", "/b/x/iam", Some(200), None),
            exchange("PUT", "/b/x/iam", Some(200), Some(200)),
            exchange("PUT", "/b/x", Some(200), Some(200)),
        ];
        assert_eq!(
            changes(&log, kind),
            Changes {
                double: 0,
                applied: true
            }
        );
    }

    #[test]
    fn a_change_made_again_after_it_was_answered_is_a_double_fix() {
        let log = [
            exchange("PUT", "/b/x/iam", Some(200), Some(200)),
            exchange("PUT", "/b/x/iam", Some(412), Some(412)),
            exchange("PUT", "/b/x/iam", Some(200), Some(200)),
        ];
        assert_eq!(changes(&log, kind).double, 1);
        let refused = [exchange("PUT", "/b/x/iam", None, Some(503))];
        assert_eq!(changes(&refused, kind), Changes::default());
    }

    #[test]
    fn a_change_without_a_remediated_record_is_lost_and_unaudited() {
        let found = Found::judge(
            Deliveries::default(),
            false,
            AuditFindings::default(),
            Changes {
                double: 0,
                applied: true,
            },
        );
        assert!(found.lost && found.unaudited_fixes == 1 && !found.kept());
        let fixed = Found::judge(
            Deliveries::default(),
            false,
            AuditFindings {
                remediated: 1,
                unclean: Vec::new(),
            },
            Changes {
                double: 0,
                applied: true,
            },
        );
        assert!(fixed.kept(), "{fixed:?}");
    }
}
