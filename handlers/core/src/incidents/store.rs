//! The incident memory on object storage, under `incidents/` in the state store:
//!
//! ```text
//! incidents/pending/<event_id>.json    one per handled event, create-only (any number of
//!                                      handlers write at once; none waits for another)
//! incidents/snapshots/<seq>.tar        the packed index; the highest seq is current
//! ```
//!
//! A reader lists the pending incidents, then the snapshots, loads the newest snapshot (kept
//! between events while it stays current) and the pending incidents it has not read yet.
//! Compaction folds the pending incidents into snapshot `seq + 1`, created only if no other
//! compaction took that number first, and only then deletes the pending objects it folded
//! in; a loser deletes nothing, so no incident is lost. A pending object that vanishes
//! while a reader fetches it was folded into a newer snapshot, which the reader then loads.
//!
//! A local folder (`fs://`) shows a file as soon as it is created, before its bytes are in:
//! there, objects are written beside and renamed into place, and compactions take turns
//! under a create-only lock instead of racing for the snapshot number.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use opendal::{ErrorKind, Operator};
use tokio::sync::Mutex;

use super::index::{Found, IncidentIndex, IncidentIndexError, Lookup};
use super::{window_start, Incident, IncidentHistory, RepeatOffenders, REPEAT_WINDOW_DAYS};
use crate::pipeline::audit::AuditLog;
use crate::store::{create_once, Created};
use crate::UnifiedEvent;

const PENDING: &str = "incidents/pending/";
const SNAPSHOTS: &str = "incidents/snapshots/";
/// Pending incidents a handler folds into a new snapshot after its event: often enough that
/// a cold reader fetches few small objects, rarely enough that the fold stays off the p99.
pub const COMPACT_AT: usize = 256;
const READS_AT_ONCE: usize = 16;
const LOCAL_TEMPORARY: &str = "incidents/writing/";
const LOCAL_LOCK: &str = "incidents/compaction.lock";
/// A lock older than this belongs to a compaction that died; compactions take a second.
const LOCK_STALE_AFTER: chrono::Duration = chrono::Duration::seconds(60);

#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("incident memory in the state store is unavailable ({operation} {path}: {source}); check the state store's URI and credentials")]
    Unavailable {
        operation: &'static str,
        path: String,
        #[source]
        source: Box<opendal::Error>,
    },
    #[error(transparent)]
    Index(#[from] IncidentIndexError),
    #[error("incident {path} is not readable ({reason}); delete it, then run `escher-provision incidents rebuild` to restore it from the audit trail")]
    BadIncident { path: String, reason: String },
    #[error("cannot read the audit trail to rebuild the incident memory: {0}")]
    Audit(String),
    #[error("other writers kept publishing incident snapshots while this one tried 10 times; retry the rebuild")]
    Contended,
}

fn unavailable(operation: &'static str, path: &str, source: opendal::Error) -> MemoryError {
    MemoryError::Unavailable {
        operation,
        path: path.to_string(),
        source: Box::new(source),
    }
}

/// A consistent view: one snapshot and the pending incidents not in it.
#[derive(Debug, Clone)]
pub struct MemoryView {
    pub snapshot: Option<u64>,
    index: Arc<IncidentIndex>,
    pending: Arc<Vec<Arc<Incident>>>,
}

impl MemoryView {
    pub fn len(&self) -> u64 {
        self.index.len() + self.pending.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// What to tell about `event`, handled at `now`; `None` when it has no history.
    pub fn history(
        &self,
        event: &UnifiedEvent,
        now: DateTime<Utc>,
    ) -> Result<Option<IncidentHistory>, MemoryError> {
        let key = super::resource_key(event.cloud_provider, &event.account_id, &event.resource.id);
        let principal = super::principal(event);
        let since = window_start(now);
        let mut found = self.index.lookup(&Lookup {
            resource_key: &key,
            event_type: event.event_type.as_str(),
            principal,
            since,
        })?;
        for incident in self
            .pending
            .iter()
            .filter(|i| i.handled_at >= since && i.event_id != event.event_id)
        {
            add_pending(&mut found, incident, &key, event, principal);
        }
        Ok(IncidentHistory::new(
            event,
            found.here,
            found.latest_here,
            found.principal_elsewhere,
        ))
    }

    /// People's search (see [`IncidentIndex::search`]) over the snapshot and the pending
    /// incidents, newest first.
    pub fn search(
        &self,
        query: &str,
        since: Option<DateTime<Utc>>,
        limit: usize,
    ) -> Result<Vec<Incident>, MemoryError> {
        let mut found = self.index.search(query, since, limit)?;
        if !self.pending.is_empty() {
            // The pending few are matched by the same parser on a throwaway index.
            let pending = IncidentIndex::build(&self.pending_owned())?;
            found.extend(pending.search(query, since, limit)?);
            found.sort_by_key(|i| std::cmp::Reverse(i.handled_at));
            found.truncate(limit);
        }
        Ok(found)
    }

    fn pending_owned(&self) -> Vec<Incident> {
        self.pending.iter().map(|i| Incident::clone(i)).collect()
    }

    /// Every incident, oldest first.
    pub fn all(&self) -> Result<Vec<Incident>, MemoryError> {
        let mut all = self.index.all()?;
        all.extend(self.pending_owned());
        all.sort_by(|a, b| {
            a.handled_at
                .cmp(&b.handled_at)
                .then(a.event_id.cmp(&b.event_id))
        });
        Ok(all)
    }
}

fn add_pending(
    found: &mut Found,
    incident: &Incident,
    key: &str,
    event: &UnifiedEvent,
    principal: Option<&str>,
) {
    let here = incident.resource_key() == key;
    if here && incident.event_type == event.event_type {
        found.here += 1;
        if found
            .latest_here
            .as_ref()
            .is_none_or(|l| l.handled_at < incident.handled_at)
        {
            found.latest_here = Some(incident.clone());
        }
    }
    if !here
        && principal.is_some_and(|p| {
            incident
                .principal
                .as_deref()
                .is_some_and(|q| q.eq_ignore_ascii_case(p))
        })
    {
        found.principal_elsewhere += 1;
    }
}

/// What a compaction or rebuild published.
#[derive(Debug, Clone, PartialEq)]
pub struct Compacted {
    pub snapshot: u64,
    pub incidents: u64,
    /// Pending incidents folded in (and deleted).
    pub folded: usize,
}

#[derive(Default)]
struct Cache {
    snapshot: Option<(u64, Arc<IncidentIndex>)>,
    /// Pending incidents read (or written here) so far, by object path (they never change).
    pending: BTreeMap<String, Arc<Incident>>,
    /// When the pending incidents and snapshots were last listed.
    listed_at: Option<std::time::Instant>,
    /// Whether each pending incident (by event id) is in the snapshot `checked_for`: asked
    /// of the index once per snapshot, not once per event. Pending objects go away only by
    /// being folded into a new snapshot, which empties this.
    in_snapshot: BTreeMap<String, bool>,
    checked_for: Option<u64>,
}

/// The incident memory of one state store.
pub struct IncidentMemory {
    operator: Operator,
    cache: Mutex<Cache>,
    /// A local folder: see the module documentation.
    local: bool,
}

impl std::fmt::Debug for IncidentMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncidentMemory").finish_non_exhaustive()
    }
}

fn snapshot_path(seq: u64) -> String {
    format!("{SNAPSHOTS}{seq:012}.tar")
}

/// The number of a snapshot's object path (see [`snapshot_path`]).
fn snapshot_seq(path: &str) -> Option<u64> {
    path.strip_prefix(SNAPSHOTS)?
        .strip_suffix(".tar")?
        .parse()
        .ok()
}

impl IncidentMemory {
    pub fn new(state: Operator) -> Self {
        IncidentMemory {
            local: state.info().scheme() == "fs",
            operator: state,
            cache: Mutex::default(),
        }
    }

    async fn list(&self, folder: &str) -> Result<Vec<String>, MemoryError> {
        crate::store::list_files(&self.operator, folder)
            .await
            .map_err(|e| unavailable("list", folder, e))
    }

    async fn latest_snapshot(&self) -> Result<Option<u64>, MemoryError> {
        Ok(self
            .list(SNAPSHOTS)
            .await?
            .iter()
            .filter_map(|p| snapshot_seq(p))
            .max())
    }

    /// Records one handled event; writing the same event again changes nothing.
    pub async fn record(&self, incident: &Incident) -> Result<(), MemoryError> {
        let path = format!("{PENDING}{}.json", incident.event_id);
        let body = serde_json::to_vec(incident).map_err(|e| MemoryError::BadIncident {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if self.local {
            // Renaming over an earlier copy of the same event changes nothing.
            self.write_then_rename(&path, body).await?;
            self.remember_written(path, incident).await;
            return Ok(());
        }
        match create_once(&self.operator, &path, body).await {
            Ok(Created::Written | Created::AlreadyExists) => {
                self.remember_written(path, incident).await;
                Ok(())
            }
            Err(e) => Err(unavailable("write", &path, e)),
        }
    }

    /// What this process wrote is in its next view without listing again.
    async fn remember_written(&self, path: String, incident: &Incident) {
        self.cache
            .lock()
            .await
            .pending
            .insert(path, Arc::new(incident.clone()));
    }

    async fn write_then_rename(&self, path: &str, body: Vec<u8>) -> Result<(), MemoryError> {
        let temporary = format!("{LOCAL_TEMPORARY}{}", crate::ids::unique_token(8));
        self.operator
            .write(&temporary, body)
            .await
            .map_err(|e| unavailable("write", &temporary, e))?;
        self.operator
            .rename(&temporary, path)
            .await
            .map_err(|e| unavailable("rename", path, e))
    }

    /// Takes the local folder's compaction lock; `false` when another compaction holds it.
    async fn lock_local(&self) -> Result<bool, MemoryError> {
        let now = Utc::now().to_rfc3339();
        match create_once(&self.operator, LOCAL_LOCK, now.into_bytes()).await {
            Ok(Created::Written) => return Ok(true),
            Ok(Created::AlreadyExists) => {}
            Err(e) => return Err(unavailable("write", LOCAL_LOCK, e)),
        }
        let taken_at = match self.operator.stat(LOCAL_LOCK).await {
            Ok(meta) => meta
                .last_modified()
                .and_then(|t| DateTime::parse_from_rfc3339(&t.to_string()).ok()),
            Err(_) => None,
        };
        if taken_at.is_some_and(|t| Utc::now() - t.with_timezone(&Utc) > LOCK_STALE_AFTER) {
            tracing::warn!(
                path = LOCAL_LOCK,
                "breaking the lock of a compaction that died"
            );
            let _ = self.operator.delete(LOCAL_LOCK).await;
        }
        Ok(false)
    }

    /// Creates snapshot `path` unless it exists; `false` when another compaction has it.
    async fn create_snapshot(
        &self,
        base: Option<u64>,
        path: &str,
        pack: Vec<u8>,
    ) -> Result<bool, MemoryError> {
        if !self.local {
            return match create_once(&self.operator, path, pack).await {
                Ok(Created::Written) => Ok(true),
                Ok(Created::AlreadyExists) => Ok(false),
                Err(e) => Err(unavailable("write", path, e)),
            };
        }
        if !self.lock_local().await? {
            return Ok(false);
        }
        let result = async {
            if self.latest_snapshot().await? != base {
                return Ok(false);
            }
            self.write_then_rename(path, pack).await.map(|()| true)
        }
        .await;
        if let Err(e) = self.operator.delete(LOCAL_LOCK).await {
            tracing::warn!(path = LOCAL_LOCK, error = %e, "cannot release the compaction lock");
        }
        result
    }

    /// The memory as it is now (two listings; the snapshot and pending incidents already
    /// read are not fetched again).
    pub async fn view(&self) -> Result<MemoryView, MemoryError> {
        self.view_within(std::time::Duration::ZERO).await
    }

    /// The memory as listed at most `max_age` ago, with what this process recorded since:
    /// a busy handler lists once per `max_age`, not on every event (another handler's
    /// incidents of the last `max_age` may be missing from the history it tells).
    pub async fn view_within(
        &self,
        max_age: std::time::Duration,
    ) -> Result<MemoryView, MemoryError> {
        let mut cache = self.cache.lock().await;
        let fresh = cache.listed_at.is_some_and(|at| at.elapsed() < max_age);
        if !fresh {
            self.list_into(&mut cache).await?;
        }
        self.view_of(&mut cache)
    }

    /// Lists the pending incidents and snapshots, reading what is new.
    async fn list_into(&self, cache: &mut Cache) -> Result<(), MemoryError> {
        // Listing pending first: whatever a compaction deletes after this listing is in a
        // snapshot at least as new as the one listed next.
        let mut pending_paths = self.list(PENDING).await?;
        for attempt in 0..3 {
            let latest = self.latest_snapshot().await?;
            if let Some(seq) = latest {
                if cache.snapshot.as_ref().map(|(s, _)| *s) != Some(seq) {
                    match crate::store::read_whole(&self.operator, &snapshot_path(seq)).await {
                        Ok(bytes) => {
                            let index = IncidentIndex::unpack(&bytes.to_vec())?;
                            cache.snapshot = Some((seq, Arc::new(index)));
                        }
                        // Superseded and collected under us: list again.
                        Err(e) if e.kind() == ErrorKind::NotFound && attempt < 2 => continue,
                        Err(e) => return Err(unavailable("read", &snapshot_path(seq), e)),
                    }
                }
            }
            let vanished = self.read_pending(cache, &pending_paths).await?;
            if !vanished || attempt == 2 {
                break;
            }
            pending_paths = self.list(PENDING).await?;
        }
        let listed: std::collections::BTreeSet<&String> = pending_paths.iter().collect();
        cache.pending.retain(|path, _| listed.contains(path));
        cache.listed_at = Some(std::time::Instant::now());
        Ok(())
    }

    /// The view of what `cache` holds.
    fn view_of(&self, cache: &mut Cache) -> Result<MemoryView, MemoryError> {
        let index = match &cache.snapshot {
            Some((_, index)) => index.clone(),
            None => Arc::new(IncidentIndex::build(&[])?),
        };
        let current = cache.snapshot.as_ref().map(|(s, _)| *s);
        if cache.checked_for != current {
            cache.in_snapshot.clear();
            cache.checked_for = current;
        }
        let Cache {
            pending: read,
            in_snapshot,
            ..
        } = cache;
        let mut pending = Vec::with_capacity(read.len());
        for incident in read.values() {
            let folded = match in_snapshot.get(&incident.event_id) {
                Some(&folded) => folded,
                None => {
                    let folded = index.contains(&incident.event_id)?;
                    in_snapshot.insert(incident.event_id.clone(), folded);
                    folded
                }
            };
            if !folded {
                pending.push(Arc::clone(incident));
            }
        }
        Ok(MemoryView {
            snapshot: cache.snapshot.as_ref().map(|(s, _)| *s),
            index,
            pending: Arc::new(pending),
        })
    }

    /// Reads the pending incidents not cached yet; `true` when one had vanished (folded into
    /// a snapshot newer than the one loaded).
    async fn read_pending(&self, cache: &mut Cache, paths: &[String]) -> Result<bool, MemoryError> {
        let new: Vec<String> = paths
            .iter()
            .filter(|p| !cache.pending.contains_key(*p))
            .cloned()
            .collect();
        // Owned paths and operator per read: the future stays `Send` for any runtime.
        let read: Vec<(String, Option<Incident>)> = futures::stream::iter(new)
            .map(|path| {
                let operator = self.operator.clone();
                async move {
                    match crate::store::read_whole(&operator, &path).await {
                        Ok(bytes) => match serde_json::from_slice(&bytes.to_vec()) {
                            Ok(incident) => Ok((path, Some(incident))),
                            Err(e) => Err(MemoryError::BadIncident {
                                reason: e.to_string(),
                                path,
                            }),
                        },
                        Err(e) if e.kind() == ErrorKind::NotFound => Ok((path, None)),
                        Err(e) => Err(unavailable("read", &path, e)),
                    }
                }
            })
            .buffer_unordered(READS_AT_ONCE)
            .try_collect()
            .await?;
        let mut vanished = false;
        for (path, incident) in read {
            match incident {
                Some(incident) => {
                    cache.pending.insert(path, Arc::new(incident));
                }
                None => vanished = true,
            }
        }
        Ok(vanished)
    }

    /// The resources and principals behind several incidents in the days before `until`,
    /// for the morning report; a memory that cannot be read gives an empty list saying so.
    pub async fn repeat_offenders(&self, until: DateTime<Utc>) -> RepeatOffenders {
        let since = until - chrono::Duration::days(i64::from(REPEAT_WINDOW_DAYS));
        let all = match self.view().await {
            Ok(view) => view.all(),
            Err(e) => Err(e),
        };
        match all {
            Ok(all) => RepeatOffenders::find(&all, since, until),
            Err(e) => RepeatOffenders {
                since,
                until,
                offenders: Vec::new(),
                failure: Some(e.to_string()),
            },
        }
    }

    /// Folds the pending incidents into a new snapshot when there are at least
    /// `min_pending`; `None` when there were fewer, or another compaction won the race.
    pub async fn compact(&self, min_pending: usize) -> Result<Option<Compacted>, MemoryError> {
        let view = self.view().await?;
        if view.pending() < min_pending.max(1) {
            return Ok(None);
        }
        let index = Arc::new(view.index.with_added(&view.pending_owned())?);
        let pack = index.pack()?;
        let folded: Vec<String> = view
            .pending
            .iter()
            .map(|i| format!("{PENDING}{}.json", i.event_id))
            .collect();
        self.publish(view.snapshot, &index, pack, &folded).await
    }

    /// Builds the memory again from the audit trail, as the next snapshot, and removes the
    /// pending incidents it covers. Returns the snapshot published.
    pub async fn rebuild(&self, audit: &AuditLog) -> Result<Compacted, MemoryError> {
        let days = audit
            .days()
            .await
            .map_err(|e| MemoryError::Audit(e.to_string()))?;
        let pending_before = self.list(PENDING).await?;
        let mut incidents: BTreeMap<String, Incident> = BTreeMap::new();
        for day in days {
            let records = audit
                .records(day)
                .await
                .map_err(|e| MemoryError::Audit(e.to_string()))?;
            for record in records {
                if let Some(incident) = Incident::from_record(&record, &record.path()) {
                    // A redelivered event keeps its first handling.
                    incidents
                        .entry(incident.event_id.clone())
                        .or_insert(incident);
                }
            }
        }
        let covered: Vec<String> = pending_before
            .into_iter()
            .filter(|p| {
                p.strip_prefix(PENDING)
                    .and_then(|n| n.strip_suffix(".json"))
                    .is_some_and(|id| incidents.contains_key(id))
            })
            .collect();
        self.replace_with(incidents.into_values().collect(), &covered)
            .await
    }

    /// Makes `incidents` the memory, as the next snapshot, and deletes the pending objects
    /// `covered` (their incidents are among `incidents`): a rebuild's last step, and how a
    /// benchmark seeds a large memory.
    pub async fn replace_with(
        &self,
        incidents: Vec<Incident>,
        covered: &[String],
    ) -> Result<Compacted, MemoryError> {
        let index = Arc::new(IncidentIndex::build(&incidents)?);
        let pack = index.pack()?;
        // A lost race (rare: a handler compacting at the same moment) publishes the same
        // index again under the next number.
        for _ in 0..10 {
            let latest = self.latest_snapshot().await?;
            if let Some(done) = self.publish(latest, &index, pack.clone(), covered).await? {
                return Ok(done);
            }
        }
        Err(MemoryError::Contended)
    }

    async fn publish(
        &self,
        base: Option<u64>,
        index: &Arc<IncidentIndex>,
        pack: Vec<u8>,
        folded: &[String],
    ) -> Result<Option<Compacted>, MemoryError> {
        let seq = base.map_or(1, |s| s + 1);
        let path = snapshot_path(seq);
        if !self.create_snapshot(base, &path, pack).await? {
            return Ok(None);
        }
        let incidents = index.len();
        self.cache.lock().await.snapshot = Some((seq, index.clone()));
        for path in folded {
            if let Err(e) = self.operator.delete(path).await {
                // Left behind, it is read again and dropped as already in the snapshot.
                tracing::warn!(%path, error = %e, "cannot delete a folded pending incident");
            }
        }
        // The snapshot before stays for readers that listed it a moment ago.
        for old in self.list(SNAPSHOTS).await? {
            let older = snapshot_seq(&old).is_some_and(|s| s + 1 < seq);
            if older {
                if let Err(e) = self.operator.delete(&old).await {
                    tracing::warn!(path = %old, error = %e, "cannot delete a superseded incident snapshot");
                }
            }
        }
        Ok(Some(Compacted {
            snapshot: seq,
            incidents,
            folded: folded.len(),
        }))
    }
}
