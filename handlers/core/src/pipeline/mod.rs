//! The alert pipeline every handler runs: normalize → enrich → plan → decide → remediate →
//! verify → audit → notify.
//!
//! Cloud specifics come in through small traits: [`CloudOperations`] (the cloud's fixes and
//! how to read a resource's tags), [`notify::TopicPublisher`] and [`notify::SecretSource`].
//! Everything else is here, once, for every cloud and for the laptop CLI (`events handle`).
//!
//! Idempotency: before acting, a marker `markers/<event_id>.json` is created with a
//! create-only write in the state store; a duplicate or concurrent delivery finds it, does
//! not act again, and is audited as `duplicate`. A transient failure (storage, approvals
//! unreachable, cloud throttling) removes the marker and returns [`PipelineError::Retry`] so
//! the platform redelivers the event.

pub mod audit;
pub mod notify;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use chrono::Utc;
use opendal::{ErrorKind, Operator};
use serde::{Deserialize, Serialize};

use crate::approvals::{
    Action, ApprovalsReader, Conditions, Decision, NothingUsedYet, RemediationPolicy,
};
use crate::fixes::{not_supported, FixRegistry};
use crate::ids::{sha256_hex, unique_token};
use crate::incidents::{Incident, IncidentHistory, IncidentMemory, MemoryView, COMPACT_AT};
use crate::remediate::{
    ApiCall, Mode, RemediationError, RemediationReport, RemediationRequest, RemediationStatus,
};
use crate::store::{create_once, Created};
use crate::{Normalized, Normalizer, SeverityPolicy, UnifiedEvent};
use audit::{AuditLog, AuditRecord, Outcome};
use notify::{Notification, NotificationResult, Notifier};

/// How long a handler reuses its listing of the incident memory: a busy function lists the
/// memory once per this, not on every event, and knows its own incidents at once.
pub const MEMORY_REFRESH: std::time::Duration = std::time::Duration::from_secs(5);

/// How long an unfinished claim is trusted when nothing says otherwise: the longest a Lambda
/// function may run (and more than the Azure functions' 10 minutes). A claim older than its
/// lease belongs to a run that stopped without finishing (the function timed out or was
/// stopped), and the next delivery takes the event over instead of dropping it as a
/// duplicate.
pub const DEFAULT_CLAIM_LEASE: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// How the platform that delivers alerts retries: what a delivery that finds the event
/// claimed by another delivery still at work answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redelivery {
    /// Each delivery is retried on its own until it succeeds (Lambda's asynchronous
    /// invocations): the delivery at work retries itself should it fail, so another one is
    /// acknowledged as a duplicate.
    PerDelivery,
    /// Acknowledging any delivery ends the message's deliveries (Pub/Sub push, Event Grid,
    /// action groups' webhooks): a delivery that finds the event at work elsewhere asks to be
    /// delivered again, so the event is not dropped should the other delivery fail.
    PerMessage,
}

/// What claiming an event found.
enum Claim {
    /// No delivery had claimed it: this one acts.
    New,
    /// A delivery claimed it at this time and never finished; this one acts instead,
    /// carrying the changes earlier deliveries attempted.
    TakenOver(chrono::DateTime<Utc>, Vec<ApiCall>),
    /// An earlier delivery attempted these changes, then failed temporarily and gave the
    /// event back: this one finishes it, and its record names them.
    Resumed(Vec<ApiCall>),
    /// Another delivery handled it, or is handling it.
    Held(Box<Marker>),
}

/// What a cloud brings to the pipeline.
#[async_trait]
pub trait CloudOperations: Send + Sync {
    /// The cloud's fixes; the pipeline looks each one up by (action, resource type).
    fn fixes(&self) -> &FixRegistry;

    /// The resource's tags/labels, read from the cloud (enrichment); `None` when this cloud
    /// cannot read tags for this resource type.
    async fn resource_tags(
        &self,
        event: &UnifiedEvent,
    ) -> Result<Option<BTreeMap<String, String>>, RemediationError>;
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Nothing was changed (or the change is recorded); handling must be retried.
    #[error("event {event}: {reason}; it will be retried")]
    Retry { event: String, reason: String },
}

/// What the pipeline did with one event (or one unreadable payload).
#[derive(Debug, Clone, Serialize)]
pub struct EventResult {
    pub event_id: Option<String>,
    pub outcome: Outcome,
    pub summary: String,
    /// Step by step, for people (the CLI prints these).
    pub steps: Vec<String>,
    pub audit_path: String,
    pub record: AuditRecord,
}

/// The result of one payload.
#[derive(Debug, Clone, Serialize)]
pub struct Handled {
    pub results: Vec<EventResult>,
    /// Set when the payload was a subscription handshake, not an alert.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handshake: Option<crate::Handshake>,
}

impl Handled {
    /// Whether the payload was not an alert we could read (the CLI exits 2).
    pub fn unrecognized(&self) -> bool {
        self.results
            .iter()
            .any(|r| r.outcome == Outcome::Unrecognized)
    }
}

/// The idempotency marker for one event.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Marker {
    status: MarkerStatus,
    at: chrono::DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    outcome: Option<Outcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    audit_path: Option<String>,
    /// The record, when writing it to the audit store failed: the next delivery writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    audit_pending: Option<AuditRecord>,
    /// Who wrote the claim: a token of the delivery that claimed the event, so a delivery
    /// whose claim was applied but whose answer was lost knows the marker is its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    claimed_by: Option<String>,
    /// Changes earlier deliveries attempted before failing temporarily (a released claim):
    /// the delivery that finishes the event records them, even when it finds nothing left
    /// to change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    carried_calls: Vec<ApiCall>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum MarkerStatus {
    InProgress,
    Done,
    /// Given back after a temporary failure that came after a change was attempted.
    Released,
}

/// One handler's pipeline: built once per cold start, used for every event.
pub struct Pipeline {
    pub normalizer: Normalizer<'static>,
    pub severity: &'static SeverityPolicy,
    pub remediations: &'static RemediationPolicy,
    pub approvals: Arc<ApprovalsReader>,
    /// The state store: markers, blast-radius counters, inbox, report queue.
    pub state: Operator,
    pub audit: AuditLog,
    pub cloud: Arc<dyn CloudOperations>,
    pub notifier: Notifier,
    pub mode: Mode,
    /// What happened before: read for every event's notice, written after its audit.
    pub memory: Arc<IncidentMemory>,
    /// How long an unfinished claim is trusted: set above the longest a handler runs
    /// ([`DEFAULT_CLAIM_LEASE`] unless the function's timeout is known).
    pub claim_lease: std::time::Duration,
    /// What a delivery finding the event at work elsewhere answers.
    pub redelivery: Redelivery,
}

/// What reading a resource's tags gave.
type TagsRead = Result<Option<BTreeMap<String, String>>, RemediationError>;

/// Per-event working state.
struct Run {
    started: Instant,
    timings: BTreeMap<String, u64>,
    steps: Vec<String>,
    notes: Vec<String>,
    /// Pending incidents the memory held when the event came in (compaction's trigger).
    pending_incidents: usize,
    /// Changes earlier deliveries attempted (from the claim).
    carried: Vec<ApiCall>,
    /// Changes this delivery attempted before a temporary failure.
    attempted: Vec<ApiCall>,
}

impl Run {
    fn new() -> Self {
        Run {
            started: Instant::now(),
            timings: BTreeMap::new(),
            steps: Vec::new(),
            notes: Vec::new(),
            pending_incidents: 0,
            carried: Vec::new(),
            attempted: Vec::new(),
        }
    }

    fn time(&mut self, stage: &str, since: Instant) {
        self.timings
            .insert(stage.to_string(), since.elapsed().as_millis() as u64);
    }
}

fn retry(event: &str, reason: impl std::fmt::Display) -> PipelineError {
    PipelineError::Retry {
        event: event.to_string(),
        reason: reason.to_string(),
    }
}

/// What a warm-up loaded ahead of the first event ([`Pipeline::warm`]).
#[derive(Debug)]
pub struct WarmedUp {
    /// The approvals held (`None` when no event type has a fix, so none are read).
    pub approvals: Option<Result<usize, crate::approvals::ApprovalStoreError>>,
    /// The incidents remembered.
    pub incidents: Result<u64, crate::incidents::MemoryError>,
}

impl WarmedUp {
    /// Logs what could not be read (the first event reads it again) and what was.
    pub fn log(&self, started: Instant) {
        if let Some(Err(e)) = &self.approvals {
            tracing::warn!(error = %e, "approvals not loaded at start; the first alert loads them");
        }
        if let Err(e) = &self.incidents {
            tracing::warn!(error = %e, "incident history not read at start; the first alert reads it");
        }
        tracing::info!(
            ms = started.elapsed().as_millis() as u64,
            approvals = self.approvals.as_ref().and_then(|a| a.as_ref().ok()),
            incidents = self.incidents.as_ref().ok(),
            "warmed up"
        );
    }
}

impl Pipeline {
    /// Loads what every event reads (the approvals and the incident memory) ahead of the
    /// first event, for a service that listens before its first request comes. A load
    /// that fails is only reported: the first event loads again, and retries as usual.
    pub async fn warm(&self) -> WarmedUp {
        let has_fix = self.remediations.has_fixes();
        let (approvals, incidents) = tokio::join!(
            async {
                if has_fix {
                    Some(self.approvals.index().await.map(|index| index.len()))
                } else {
                    None
                }
            },
            self.memory.view_within(MEMORY_REFRESH),
        );
        WarmedUp {
            approvals,
            incidents: incidents.map(|view| view.len()),
        }
    }

    /// Handles one payload as delivered by the trigger.
    pub async fn handle(&self, payload: &[u8]) -> Result<Handled, PipelineError> {
        let started = Instant::now();
        let payload_sha256 = sha256_hex(payload);
        let events = match self.normalizer.normalize(payload) {
            Ok(Normalized::Events(events)) => events,
            Ok(Normalized::Handshake(handshake)) => {
                return Ok(Handled {
                    results: Vec::new(),
                    handshake: Some(handshake),
                })
            }
            Err(e) => {
                // Audited and acknowledged: redelivering an unreadable payload cannot help.
                let record = AuditRecord {
                    record_id: unique_token(6),
                    handled_at: Utc::now(),
                    mode: self.mode,
                    outcome: Outcome::Unrecognized,
                    summary: format!("payload not handled: {e}"),
                    event_id: None,
                    event: None,
                    payload_sha256,
                    action: None,
                    decision: None,
                    remediation: None,
                    notifications: Vec::new(),
                    timings_ms: BTreeMap::from([(
                        "total".into(),
                        started.elapsed().as_millis() as u64,
                    )]),
                    notes: Vec::new(),
                    history: None,
                    error: Some(e.to_string()),
                    sha256: String::new(),
                };
                let summary = record.summary.clone();
                let (record, path) = self
                    .audit
                    .write(record)
                    .await
                    .map_err(|e| retry("payload", e))?;
                return Ok(Handled {
                    results: vec![EventResult {
                        event_id: None,
                        outcome: Outcome::Unrecognized,
                        summary: summary.clone(),
                        steps: vec![summary, format!("audited: {path}")],
                        audit_path: path,
                        record,
                    }],
                    handshake: None,
                });
            }
        };
        let normalize_ms = started.elapsed().as_millis() as u64;
        let mut results = Vec::with_capacity(events.len());
        for event in events {
            results.push(
                self.handle_event(event, &payload_sha256, normalize_ms)
                    .await?,
            );
        }
        Ok(Handled {
            results,
            handshake: None,
        })
    }

    /// Handles an event that did not come as a payload: a finding of the nightly scan. It
    /// goes through every step after normalize, exactly as an alert does; the audit
    /// record's payload hash is over the event's JSON.
    pub async fn handle_finding(&self, event: UnifiedEvent) -> Result<EventResult, PipelineError> {
        let payload = serde_json::to_vec(&event).map_err(|e| retry(&event.event_id, e))?;
        self.handle_event(event, &sha256_hex(&payload), 0).await
    }

    fn marker_path(event_id: &str) -> String {
        format!("markers/{event_id}.json")
    }

    /// Creates the marker, or finds who holds it. An unfinished marker older than the lease
    /// is taken over by exactly one delivery: the one that creates the takeover object named
    /// after that marker's time (create-only, so two deliveries never both take it).
    async fn claim(&self, event: &UnifiedEvent) -> Result<Claim, PipelineError> {
        let path = Self::marker_path(&event.event_id);
        let unavailable = |e: opendal::Error, what: &str| {
            retry(
                &event.event_id,
                format!("state store unavailable ({what}): {e}"),
            )
        };
        let marker = Marker {
            status: MarkerStatus::InProgress,
            at: Utc::now(),
            outcome: None,
            audit_path: None,
            audit_pending: None,
            claimed_by: Some(unique_token(8)),
            carried_calls: Vec::new(),
        };
        let body = serde_json::to_vec(&marker).map_err(|e| retry(&event.event_id, e))?;
        match create_once(&self.state, &path, body.clone()).await {
            Ok(Created::Written) => return Ok(Claim::New),
            Ok(Created::AlreadyExists) => {}
            Err(e) => {
                // The write may have been applied with its answer lost: then the marker is
                // ours, and answering "retry" would leave it to hold every redelivery off as
                // a duplicate until its lease ran out, with the event never handled.
                return match crate::store::read_whole(&self.state, &path).await {
                    Ok(found) if Self::claimed_by(&found.to_vec(), &marker) => Ok(Claim::New),
                    _ => Err(unavailable(e, &path)),
                };
            }
        }
        let existing = crate::store::read_whole(&self.state, &path)
            .await
            .map_err(|e| retry(&event.event_id, format!("cannot read marker {path}: {e}")))?;
        // An unreadable marker (a write cut short) is held as fresh: never act twice on a guess.
        let held: Marker =
            serde_json::from_slice(&existing.to_vec()).unwrap_or_else(|_| marker.clone());
        let lease = chrono::Duration::from_std(self.claim_lease).unwrap_or(chrono::Duration::MAX);
        let released = held.status == MarkerStatus::Released;
        let stopped = held.status == MarkerStatus::InProgress && Utc::now() - held.at > lease;
        if !released && !stopped {
            return Ok(Claim::Held(Box::new(held)));
        }
        // One delivery takes the event over (the takeover marker is create-only), and its
        // claim carries the changes attempted so far, should it fail in turn.
        let takeover = format!(
            "markers/{}.takeover-{}.json",
            event.event_id,
            held.at.timestamp_millis()
        );
        let ours = Marker {
            carried_calls: held.carried_calls.clone(),
            ..marker
        };
        let body = serde_json::to_vec(&ours).map_err(|e| retry(&event.event_id, e))?;
        match create_once(&self.state, &takeover, body.clone()).await {
            Ok(Created::Written) => {
                self.state
                    .write(&path, body)
                    .await
                    .map_err(|e| unavailable(e, &path))?;
                if released {
                    tracing::info!(event_id = %event.event_id, released_at = %held.at, "finishing an event an earlier delivery gave back after attempting changes");
                    return Ok(Claim::Resumed(held.carried_calls));
                }
                tracing::warn!(event_id = %event.event_id, claimed_at = %held.at, "taking over an event whose earlier delivery stopped without finishing");
                Ok(Claim::TakenOver(held.at, held.carried_calls))
            }
            Ok(Created::AlreadyExists) => Ok(Claim::Held(Box::new(held))),
            Err(e) => Err(unavailable(e, &takeover)),
        }
    }

    /// Whether the marker `found` is the claim `ours` (written by this delivery).
    fn claimed_by(found: &[u8], ours: &Marker) -> bool {
        serde_json::from_slice::<Marker>(found)
            .is_ok_and(|m| m.claimed_by.is_some() && m.claimed_by == ours.claimed_by)
    }

    /// Gives the event back so a retry can act (after a transient failure). When changes
    /// were attempted (by this delivery or earlier ones), the marker is kept as released and
    /// holds them, so the retry records them even if it finds nothing left to change;
    /// otherwise the marker goes. Both are tried again when the store fails for a passing
    /// reason: a claim not given back holds every redelivery off until its lease runs out.
    async fn release(&self, event: &UnifiedEvent, run: &Run) {
        let path = Self::marker_path(&event.event_id);
        let state = crate::store::retrying(&self.state);
        let attempted: Vec<ApiCall> = run.carried.iter().chain(&run.attempted).cloned().collect();
        if attempted.is_empty() {
            if let Err(e) = state.delete(&path).await {
                tracing::error!(event_id = %event.event_id, marker = %path, lease_secs = self.claim_lease.as_secs(), error = %e, "cannot remove the idempotency marker after four tries: until the claim's lease ends, redeliveries find the event at work (a duplicate where each delivery is retried, deliver-again where one acknowledgement ends the message); deleting the marker from the state store lets the next delivery handle it");
            }
            return;
        }
        let released = Marker {
            status: MarkerStatus::Released,
            at: Utc::now(),
            outcome: None,
            audit_path: None,
            audit_pending: None,
            claimed_by: None,
            carried_calls: attempted,
        };
        let written = match serde_json::to_vec(&released) {
            Ok(body) => state.write(&path, body).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = written {
            tracing::error!(event_id = %event.event_id, error = %e, "cannot give the event back with the changes it attempted; the retry waits for the claim's lease and carries what earlier deliveries recorded");
        }
    }

    async fn finish_marker(&self, event_id: &str, marker: &Marker) {
        let path = Self::marker_path(event_id);
        match serde_json::to_vec(marker) {
            Ok(body) => {
                if let Err(e) = crate::store::retrying(&self.state).write(&path, body).await {
                    tracing::warn!(%event_id, error = %e, "cannot update the idempotency marker");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot serialize the idempotency marker"),
        }
    }

    /// The resource's tags, read from the cloud when the event has none (`None` when it has
    /// some), and how long the read took.
    async fn read_tags(&self, event: &UnifiedEvent) -> (Option<TagsRead>, u64) {
        if !event.resource.tags.is_empty() {
            return (None, 0);
        }
        let t = Instant::now();
        let read = self.cloud.resource_tags(event).await;
        (Some(read), t.elapsed().as_millis() as u64)
    }

    /// Fills tags (and so context and severity) from the resource when the event has none,
    /// from what [`Pipeline::read_tags`] read.
    fn enrich(
        &self,
        event: &mut UnifiedEvent,
        run: &mut Run,
        read: Option<TagsRead>,
    ) -> Result<(), RemediationError> {
        let Some(read) = read else {
            return Ok(());
        };
        match read {
            Ok(Some(tags)) if !tags.is_empty() => {
                let before = event.severity;
                event.resource.tags = tags;
                crate::context::fill_from_tags(&mut event.context, &event.resource.tags);
                event.severity =
                    self.severity
                        .resolve(event.event_type, Some(event.severity), &event.context);
                let tags: Vec<String> = event
                    .resource
                    .tags
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                run.steps.push(format!(
                    "enriched: tags read from the resource ({}); severity {before} → {}",
                    tags.join(", "),
                    event.severity
                ));
                Ok(())
            }
            Ok(_) => {
                run.steps.push("enriched: the resource has no tags".into());
                Ok(())
            }
            Err(e) if e.is_transient() => Err(e),
            Err(e) => {
                run.notes.push(format!("tags could not be read: {e}"));
                run.steps.push(format!("enriched: skipped ({e})"));
                Ok(())
            }
        }
    }

    /// How many resources an approval has acted on today (its blast radius so far).
    async fn usage_today(&self, approval_id: &str) -> Result<u32, opendal::Error> {
        let folder = format!("usage/{approval_id}/{}/", Utc::now().format("%Y-%m-%d"));
        match self.state.list(&folder).await {
            Ok(entries) => Ok(entries.iter().filter(|e| !e.path().ends_with('/')).count() as u32),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// The decision and the conditions of the approval it chose, both from one snapshot of
    /// the approvals, so a refresh in between cannot pair a decision with another generation.
    async fn decide(
        &self,
        event: &UnifiedEvent,
        action: Action,
    ) -> Result<(Decision, Conditions), PipelineError> {
        let now = Utc::now();
        let index = self
            .approvals
            .index()
            .await
            .map_err(|e| retry(&event.event_id, e))?;
        let mut decision = index
            .decide(event, action, now, &NothingUsedYet)
            .map_err(|e| retry(&event.event_id, e))?;
        // Blast radius: count only for approvals that both match and limit it.
        let mut usage: HashMap<String, u32> = HashMap::new();
        for candidate in &decision.explanation().candidates {
            let limited = index
                .get(&candidate.approval_id)
                .is_some_and(|a| a.conditions.max_resources_per_day.is_some());
            if limited && !matches!(candidate.outcome, crate::approvals::Outcome::Failed { .. }) {
                let used = self
                    .usage_today(&candidate.approval_id)
                    .await
                    .map_err(|e| retry(&event.event_id, format!("state store unavailable: {e}")))?;
                usage.insert(candidate.approval_id.clone(), used);
            }
        }
        if !usage.is_empty() {
            decision = index
                .decide(event, action, now, &usage)
                .map_err(|e| retry(&event.event_id, e))?;
        }
        let conditions = match &decision {
            Decision::Approved { approval_id, .. } => index
                .get(approval_id)
                .map(|a| a.conditions.clone())
                .unwrap_or_default(),
            Decision::NotApproved { .. } => Conditions::default(),
        };
        Ok((decision, conditions))
    }

    async fn handle_event(
        &self,
        mut event: UnifiedEvent,
        payload_sha256: &str,
        normalize_ms: u64,
    ) -> Result<EventResult, PipelineError> {
        let mut run = Run::new();
        run.timings.insert("normalize".into(), normalize_ms);
        run.steps.push(format!(
            "normalized: {} {} on {} {} ({} {} {})",
            event.event_type,
            event.severity,
            event.resource.kind,
            event.resource.name,
            event.cloud_provider,
            event.account_id,
            event.region
        ));
        let apply = self.mode == Mode::Apply;
        // Claiming the event, reading the resource's tags and (for an event with a fix)
        // loading the approvals do not depend on each other: one round trip, not several.
        // A load that fails here is retried, and reported, by the decide step.
        let has_fix = !self.remediations.actions_for(event.event_type).is_empty();
        let (claimed, (tags, tags_ms), _, memory) = tokio::join!(
            async {
                if apply {
                    self.claim(&event).await
                } else {
                    Ok(Claim::New)
                }
            },
            self.read_tags(&event),
            async {
                if has_fix {
                    let _ = self.approvals.index().await;
                }
            },
            self.memory.view_within(MEMORY_REFRESH),
        );
        match claimed? {
            Claim::New => {}
            Claim::TakenOver(at, carried) => {
                run.notes.push(format!(
                    "an earlier delivery claimed this event at {} and stopped without finishing (longer than the {} s a handler may run); this delivery handled it",
                    at.to_rfc3339(),
                    self.claim_lease.as_secs()
                ));
                run.carried = carried;
            }
            Claim::Resumed(carried) => {
                run.notes.push(format!(
                    "an earlier delivery attempted {} change(s) before failing temporarily: {}; this delivery finished the event",
                    carried.len(),
                    carried
                        .iter()
                        .map(|c| format!("{} {} on {}", c.service, c.operation, c.target))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                run.carried = carried;
            }
            Claim::Held(marker) => {
                if marker.status == MarkerStatus::InProgress
                    && self.redelivery == Redelivery::PerMessage
                {
                    return Err(retry(
                        &event.event_id,
                        format!(
                            "another delivery has been handling this event since {}; deliver it again once that one finishes (an acknowledged delivery would end the message's deliveries, and the event would be lost should the other fail)",
                            marker.at.to_rfc3339()
                        ),
                    ));
                }
                return self.duplicate(event, *marker, payload_sha256, run).await;
            }
        }
        run.timings.insert("enrich".into(), tags_ms);
        let memory = match memory {
            Ok(view) => {
                run.pending_incidents = view.pending();
                Some(view)
            }
            Err(e) => {
                // The memory only adds context: the fix goes on without it.
                run.notes.push(format!("incident history not read: {e}"));
                None
            }
        };
        match self.act(&mut event, &mut run, tags).await {
            Ok((outcome, action, decision, report, summary)) => {
                let history = memory
                    .as_ref()
                    .and_then(|m| self.history(m, &event, &mut run));
                self.conclude(
                    event,
                    payload_sha256,
                    run,
                    outcome,
                    action,
                    decision,
                    report,
                    summary,
                    history,
                )
                .await
            }
            Err(e) => {
                if apply {
                    self.release(&event, &run).await;
                }
                Err(e)
            }
        }
    }

    /// enrich → plan → decide → remediate (+ verify, inside the remediation).
    async fn act(
        &self,
        event: &mut UnifiedEvent,
        run: &mut Run,
        tags: Option<TagsRead>,
    ) -> Result<
        (
            Outcome,
            Option<Action>,
            Option<Decision>,
            Option<RemediationReport>,
            String,
        ),
        PipelineError,
    > {
        self.enrich(event, run, tags)
            .map_err(|e| retry(&event.event_id, e))?;

        let actions = self.remediations.actions_for(event.event_type);
        let Some(&action) = actions.first() else {
            run.steps.push(format!(
                "planned: no fix is mapped to {} (notify only)",
                event.event_type
            ));
            return Ok((
                Outcome::NotifyOnly,
                None,
                None,
                None,
                format!("{} is notified only", event.event_type),
            ));
        };
        if actions.len() > 1 {
            run.notes.push(format!(
                "policy lists {} actions; the first, {action}, is applied",
                actions.len()
            ));
        }
        run.steps.push(format!("planned: {action}"));

        let t = Instant::now();
        let (decision, conditions) = self.decide(event, action).await?;
        run.time("decide", t);
        let Decision::Approved { approval_id, .. } = &decision else {
            run.steps
                .push(format!("decided: {action} is NOT pre-approved"));
            for line in decision.explanation().to_string().lines() {
                run.steps.push(format!("  {line}"));
            }
            let summary = format!("{action} on {} needs an approval", event.resource.name);
            return Ok((
                Outcome::ApprovalRequired,
                Some(action),
                Some(decision),
                None,
                summary,
            ));
        };
        let approval_id = approval_id.clone();
        run.steps
            .push(format!("decided: approved by {approval_id}"));
        let t = Instant::now();
        let request = RemediationRequest {
            event,
            action,
            conditions: &conditions,
            mode: self.mode,
        };
        let fixed = match self.cloud.fixes().lookup(action, &event.resource.kind) {
            Some(fix) => fix.remediate(&request).await,
            None => Ok(not_supported(&request)),
        };
        let report = match fixed {
            Ok(report) => report,
            Err(e) if e.is_transient() => {
                run.attempted = e.changes_attempted();
                return Err(retry(&event.event_id, e));
            }
            Err(e) => {
                run.time("remediate", t);
                run.steps.push(format!("fix: FAILED ({e})"));
                run.notes.push(e.to_string());
                return Ok((
                    Outcome::Failed,
                    Some(action),
                    Some(decision),
                    None,
                    e.to_string(),
                ));
            }
        };
        run.time("remediate", t);
        let report = finish_carried(report, &run.carried);
        for step in &report.steps {
            run.steps.push(format!("  {step}"));
        }
        let outcome = match report.status {
            RemediationStatus::Remediated
                if report.verification.as_ref().is_some_and(|v| v.passed) =>
            {
                Outcome::Remediated
            }
            RemediationStatus::Remediated => Outcome::VerificationFailed,
            RemediationStatus::AlreadyCompliant => Outcome::AlreadyCompliant,
            RemediationStatus::Skipped => Outcome::Skipped,
            RemediationStatus::WouldRemediate => Outcome::WouldRemediate,
            RemediationStatus::NotSupported => Outcome::NotSupported,
        };
        run.steps
            .push(format!("fix: {outcome} — {}", report.summary));
        if let Some(v) = &report.verification {
            let passed = v.checks.iter().filter(|c| c.passed).count();
            run.steps.push(format!(
                "verified: {} ({passed} of {} checks passed)",
                if v.passed { "passed" } else { "FAILED" },
                v.checks.len()
            ));
        }
        if matches!(outcome, Outcome::Remediated | Outcome::VerificationFailed)
            && self.mode == Mode::Apply
        {
            // Counts against the approval's blast radius for today.
            let path = format!(
                "usage/{approval_id}/{}/{}",
                Utc::now().format("%Y-%m-%d"),
                event.event_id
            );
            // An existing counter means a redelivery already counted this event.
            if let Err(e) = create_once(&self.state, &path, opendal::Buffer::new()).await {
                run.notes
                    .push(format!("blast-radius counter not written ({path}): {e}"));
            }
        }
        let summary = report.summary.clone();
        Ok((outcome, Some(action), Some(decision), Some(report), summary))
    }

    #[allow(clippy::too_many_arguments)]
    async fn conclude(
        &self,
        event: UnifiedEvent,
        payload_sha256: &str,
        mut run: Run,
        outcome: Outcome,
        action: Option<Action>,
        decision: Option<Decision>,
        report: Option<RemediationReport>,
        summary: String,
        history: Option<IncidentHistory>,
    ) -> Result<EventResult, PipelineError> {
        let t = Instant::now();
        let mut notification =
            Notification::compose(&event, outcome, action, decision.as_ref(), report.as_ref());
        if let Some(history) = &history {
            notification
                .happened
                .push_str(&format!(" Before: {}.", history.summary));
            run.steps.push(format!("history: {}", history.summary));
        }
        let notifications = self.notifier.send(&notification, self.mode).await;
        run.time("notify", t);
        run.steps
            .push(format!("notified: {}", describe(&notifications)));
        run.timings.insert(
            "total".into(),
            run.started.elapsed().as_millis() as u64
                + run.timings.get("normalize").copied().unwrap_or(0),
        );
        let marker_event = event.event_id.clone();
        // The event moves into the record (no copy); the marker needs only its id.
        let mut record = AuditRecord {
            record_id: unique_token(6),
            handled_at: Utc::now(),
            mode: self.mode,
            outcome,
            summary: summary.clone(),
            event_id: Some(event.event_id.clone()),
            event: Some(event),
            payload_sha256: payload_sha256.to_string(),
            action,
            decision,
            remediation: report,
            notifications,
            timings_ms: std::mem::take(&mut run.timings),
            notes: std::mem::take(&mut run.notes),
            history,
            error: None,
            sha256: String::new(),
        };
        // The marker names the record's path, known before it is written: marker and record
        // go out together. Should the record fail, the marker is written again holding it.
        let done = Marker {
            status: MarkerStatus::Done,
            at: Utc::now(),
            outcome: Some(outcome),
            audit_path: Some(record.path()),
            audit_pending: None,
            claimed_by: None,
            carried_calls: Vec::new(),
        };
        let (written, ()) = futures::future::join(self.audit.write_sealing(&mut record), async {
            if self.mode == Mode::Apply {
                self.finish_marker(&marker_event, &done).await;
            }
        })
        .await;
        match written {
            Ok(path) => {
                run.steps.push(format!("audited: {path}"));
                if self.mode == Mode::Apply {
                    self.remember(&record, &path, run.pending_incidents + 1)
                        .await;
                }
                Ok(EventResult {
                    event_id: Some(marker_event),
                    outcome,
                    summary,
                    steps: run.steps,
                    audit_path: path,
                    record,
                })
            }
            Err(e) => {
                // The change is made; keep its record with the marker so the retry writes it.
                if self.mode == Mode::Apply {
                    record.sha256.clear();
                    self.finish_marker(
                        &marker_event,
                        &Marker {
                            audit_path: None,
                            audit_pending: Some(record),
                            ..done
                        },
                    )
                    .await;
                }
                Err(retry(&marker_event, e))
            }
        }
    }

    /// What the memory says about this event; a memory that cannot answer is noted and the
    /// event goes on without history.
    fn history(
        &self,
        memory: &MemoryView,
        event: &UnifiedEvent,
        run: &mut Run,
    ) -> Option<IncidentHistory> {
        let t = Instant::now();
        let history = memory.history(event, Utc::now());
        run.time("history", t);
        history.unwrap_or_else(|e| {
            run.notes.push(format!("incident history not read: {e}"));
            None
        })
    }

    /// Adds the handled event to the incident memory, and folds the pending incidents into
    /// a new snapshot once there are enough. The audit record is written already, and the
    /// memory can be rebuilt from it: a failure here is logged, not retried.
    async fn remember(&self, record: &AuditRecord, path: &str, pending: usize) {
        let Some(incident) = Incident::from_record(record, path) else {
            return;
        };
        if let Err(e) = self.memory.record(&incident).await {
            tracing::warn!(event_id = %incident.event_id, error = %e, "incident not added to the memory; `incidents rebuild` restores it from the audit trail");
            return;
        }
        if pending < COMPACT_AT {
            return;
        }
        if let Err(e) = self.memory.compact(COMPACT_AT).await {
            tracing::warn!(error = %e, "incident memory not compacted; the next event tries again");
        }
    }

    async fn duplicate(
        &self,
        event: UnifiedEvent,
        marker: Marker,
        payload_sha256: &str,
        mut run: Run,
    ) -> Result<EventResult, PipelineError> {
        let mut notes = Vec::new();
        if let Some(pending) = marker.audit_pending.clone() {
            let (_, path) = self
                .audit
                .write(pending)
                .await
                .map_err(|e| retry(&event.event_id, e))?;
            notes.push(format!(
                "wrote the first delivery's audit record, which had failed: {path}"
            ));
            self.finish_marker(
                &event.event_id,
                &Marker {
                    audit_path: Some(path),
                    audit_pending: None,
                    ..marker.clone()
                },
            )
            .await;
        }
        let summary = match (marker.status, marker.outcome) {
            (MarkerStatus::Done, Some(outcome)) => format!(
                "already handled at {} ({outcome}); not acted on again",
                marker.at.to_rfc3339()
            ),
            _ => format!(
                "another delivery is handling this event since {}; not acted on again",
                marker.at.to_rfc3339()
            ),
        };
        run.steps.push(format!("duplicate: {summary}"));
        run.timings
            .insert("total".into(), run.started.elapsed().as_millis() as u64);
        let record = AuditRecord {
            record_id: unique_token(6),
            handled_at: Utc::now(),
            mode: self.mode,
            outcome: Outcome::Duplicate,
            summary: summary.clone(),
            event_id: Some(event.event_id.clone()),
            event: Some(event.clone()),
            payload_sha256: payload_sha256.to_string(),
            action: None,
            decision: None,
            remediation: None,
            notifications: Vec::new(),
            timings_ms: run.timings.clone(),
            notes,
            history: None,
            error: None,
            sha256: String::new(),
        };
        let (record, path) = self
            .audit
            .write(record)
            .await
            .map_err(|e| retry(&event.event_id, e))?;
        run.steps.push(format!("audited: {path}"));
        Ok(EventResult {
            event_id: Some(event.event_id),
            outcome: Outcome::Duplicate,
            summary,
            steps: run.steps,
            audit_path: path,
            record,
        })
    }
}

fn describe(results: &[NotificationResult]) -> String {
    if results.is_empty() {
        return "nobody (no channel for this severity)".into();
    }
    results
        .iter()
        .map(|r| format!("{} {}", r.channel.as_str(), r.status.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A fix's report on an event whose earlier deliveries attempted `carried` changes: their
/// calls come first in the record, and when this delivery found the resource already as
/// the fix leaves it (verified), the earlier delivery's change is what made it so: the event
/// is recorded as remediated, not as found compliant.
fn finish_carried(mut report: RemediationReport, carried: &[ApiCall]) -> RemediationReport {
    if carried.is_empty() {
        return report;
    }
    let mut calls = carried.to_vec();
    calls.append(&mut report.api_calls);
    report.api_calls = calls;
    let verified = report.verification.as_ref().is_some_and(|v| v.passed);
    if report.status == RemediationStatus::AlreadyCompliant && verified {
        report.status = RemediationStatus::Remediated;
        report.steps.insert(
            0,
            format!(
                "{} change(s) made by an earlier delivery of this event, which failed temporarily before it could verify and record them; found in place now",
                carried.len()
            ),
        );
        report.summary = format!(
            "{} fixed by an earlier delivery of this event (it failed temporarily before recording it); verified now.",
            report.resource_id
        );
    }
    report
}
