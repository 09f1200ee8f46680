//! The approvals index on object storage, safe for concurrent writers and live readers.
//!
//! Layout under the store URI:
//!
//! ```text
//! manifest.json                      points at the current generation (the only mutable object)
//! generations/<seq>-<nonce>.tar      immutable packed indexes (ApprovalIndex::pack)
//! changes/<seq>.json                 append-only change log: who changed what, when
//! ```
//!
//! A write reads the current generation, applies its change, uploads a new generation
//! (create-only) and then moves `manifest.json` to it with a conditional write: `If-Match`
//! on its ETag (S3, Azure Blob), `ifGenerationMatch` (GCS) or if-not-exists for the first.
//! Stores without conditional overwrites (a local folder, memory) serialise writers with a
//! create-only lock object instead, and replace the manifest by rename. A writer that loses
//! the race starts again from the new manifest, so no update is lost. A reader only ever
//! follows the manifest to a generation that was complete before the manifest named it, and
//! checks its SHA-256, so it never sees a half-written index. Superseded generations are
//! deleted once they have been superseded for longer than the grace period, so a reader
//! that has just read the old manifest can still fetch them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use opendal::{ErrorKind, Operator};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::index::{ApprovalIndex, IndexError};
use crate::ids::{sha256_hex, unique_token};
use crate::store::{StoreError, StoreLocation};

mod change;
mod reader;

pub use change::{Change, ChangeRecord, ChangeRefused};
pub use reader::ApprovalsReader;

pub const MANIFEST: &str = "manifest.json";
const LOCK: &str = "manifest.lock";
const GENERATIONS: &str = "generations/";
const CHANGES: &str = "changes/";
const MANIFEST_FORMAT: u32 = 1;
/// Superseded generations remembered in the manifest (for garbage collection).
const HISTORY_KEPT: usize = 32;

/// How often a reader checks whether the manifest moved.
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(60);
/// How long a superseded generation is kept for readers that read the old manifest.
pub const DEFAULT_GC_GRACE: Duration = Duration::from_secs(15 * 60);
/// A lock older than this belongs to a writer that died; writes take well under a second.
const LOCK_STALE_AFTER: Duration = Duration::from_secs(30);
const MAX_ATTEMPTS: u32 = 60;

#[derive(Debug, thiserror::Error)]
pub enum ApprovalStoreError {
    #[error(transparent)]
    Location(#[from] StoreError),
    /// Storage could not be reached or answered with an error: retry later.
    #[error("approvals store {store} is unavailable ({operation} {path}: {source}); check the URI, network and credentials, then retry")]
    Unavailable {
        store: String,
        operation: &'static str,
        path: String,
        #[source]
        source: Box<opendal::Error>,
    },
    #[error("approvals store {store}: {what}")]
    Damaged { store: String, what: String },
    /// The change does not apply to the current approvals (duplicate id, unknown id, …).
    #[error("approvals store {store}: {reason}")]
    Rejected {
        store: String,
        reason: ChangeRefused,
    },
    #[error("approvals store {store}: gave up after {attempts} attempts because other writers kept changing it; retry")]
    Contended { store: String, attempts: u32 },
}

impl ApprovalStoreError {
    /// Whether retrying later may succeed (storage trouble, contention), as opposed to a
    /// change that can never apply or a damaged store.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ApprovalStoreError::Unavailable { .. } | ApprovalStoreError::Contended { .. }
        )
    }
}

/// The pointer to the current generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    /// 1 for the first generation, +1 per published change.
    pub sequence: u64,
    /// Object path of the generation, relative to the store.
    pub generation: String,
    pub sha256: String,
    pub size: u64,
    pub approvals: usize,
    pub published_at: DateTime<Utc>,
    pub published_by: String,
    /// The most recently superseded generations, newest first.
    #[serde(default)]
    pub history: Vec<Superseded>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Superseded {
    pub sequence: u64,
    pub generation: String,
    pub superseded_at: DateTime<Utc>,
}

/// What a successful write published.
#[derive(Debug, Clone)]
pub struct Published {
    pub manifest: Manifest,
    /// 1 when no other writer got in the way.
    pub attempts: u32,
    /// Superseded generations deleted by this write's garbage collection.
    pub collected: Vec<String>,
}

/// Requests made to storage, for the cold-load benchmark and tests.
#[derive(Debug, Default)]
pub struct RequestCounts {
    pub gets: AtomicU64,
    pub heads: AtomicU64,
    pub puts: AtomicU64,
}

/// How this store makes the manifest move safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publication {
    /// `If-Match: <etag>` (S3, Azure Blob).
    IfMatch,
    /// `ifGenerationMatch` (GCS).
    IfVersionMatch,
    /// Only create-only writes: a lock object serialises writers (local folder, memory).
    Lock,
}

/// An approvals store at one URI.
#[derive(Debug, Clone)]
pub struct ApprovalStore {
    operator: Operator,
    location: String,
    publication: Publication,
    gc_grace: Duration,
    counts: Arc<RequestCounts>,
}

/// The manifest and what identifies its version on storage.
struct Current {
    manifest: Manifest,
    /// ETag or GCS generation of `manifest.json`, when the store has them.
    token: Option<String>,
}

enum AttemptError {
    Conflict,
    Failed(ApprovalStoreError),
}

impl From<ApprovalStoreError> for AttemptError {
    fn from(e: ApprovalStoreError) -> Self {
        AttemptError::Failed(e)
    }
}

impl ApprovalStore {
    pub fn open(uri: &str) -> Result<Self, ApprovalStoreError> {
        let location: StoreLocation = uri.parse()?;
        let operator = location.operator()?;
        Ok(Self::with_operator(operator, location.to_string()))
    }

    /// A store over an existing operator (tests share one `memory://` operator this way).
    pub fn with_operator(operator: Operator, location: String) -> Self {
        let capability = operator.info().capability();
        let publication = if capability.write_with_if_match {
            Publication::IfMatch
        } else if capability.write_with_if_version_match {
            Publication::IfVersionMatch
        } else {
            Publication::Lock
        };
        ApprovalStore {
            operator,
            location,
            publication,
            gc_grace: DEFAULT_GC_GRACE,
            counts: Arc::default(),
        }
    }

    pub fn with_gc_grace(mut self, grace: Duration) -> Self {
        self.gc_grace = grace;
        self
    }

    pub fn location(&self) -> &str {
        &self.location
    }

    pub fn publication(&self) -> Publication {
        self.publication
    }

    pub fn request_counts(&self) -> &RequestCounts {
        &self.counts
    }

    fn unavailable(
        &self,
        operation: &'static str,
        path: &str,
        source: opendal::Error,
    ) -> ApprovalStoreError {
        ApprovalStoreError::Unavailable {
            store: self.location.clone(),
            operation,
            path: path.to_string(),
            source: Box::new(source),
        }
    }

    fn damaged(&self, what: impl Into<String>) -> ApprovalStoreError {
        ApprovalStoreError::Damaged {
            store: self.location.clone(),
            what: what.into(),
        }
    }

    async fn get(&self, path: &str) -> Result<Option<Vec<u8>>, ApprovalStoreError> {
        self.counts.gets.fetch_add(1, Ordering::Relaxed);
        match crate::store::read_whole(&self.operator, path).await {
            Ok(buffer) => Ok(Some(buffer.to_vec())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.unavailable("read", path, e)),
        }
    }

    /// The manifest's ETag/generation, `Some(None)` when the store has neither, `None` when
    /// there is no manifest.
    async fn manifest_token(&self) -> Result<Option<Option<String>>, ApprovalStoreError> {
        self.counts.heads.fetch_add(1, Ordering::Relaxed);
        match self.operator.stat(MANIFEST).await {
            Ok(meta) => Ok(Some(
                match self.publication {
                    Publication::IfMatch => meta.etag(),
                    Publication::IfVersionMatch => meta.version(),
                    Publication::Lock => meta.etag().or_else(|| meta.version()),
                }
                .map(str::to_string),
            )),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.unavailable("stat", MANIFEST, e)),
        }
    }

    async fn current(&self) -> Result<Option<Current>, ApprovalStoreError> {
        // The token is read before the content: if the manifest moves in between, the
        // conditional write built on this token fails and the writer starts again.
        let Some(token) = self.manifest_token().await? else {
            return Ok(None);
        };
        let Some(bytes) = self.get(MANIFEST).await? else {
            return Ok(None);
        };
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| self.damaged(format!("{MANIFEST} is not valid: {e}")))?;
        if manifest.format != MANIFEST_FORMAT {
            return Err(self.damaged(format!(
                "{MANIFEST} has format {}, this version reads {MANIFEST_FORMAT}; upgrade escher-provision",
                manifest.format
            )));
        }
        Ok(Some(Current { manifest, token }))
    }

    /// Loads the current manifest and index; `None` for a store never written to.
    pub async fn load(&self) -> Result<Option<(Manifest, ApprovalIndex)>, ApprovalStoreError> {
        // A generation can be collected between reading the manifest and fetching it only
        // after the grace period; if that happens anyway, the manifest has moved: re-read.
        for _ in 0..3 {
            let Some(current) = self.current().await? else {
                return Ok(None);
            };
            if let Some(index) = self.load_generation(&current.manifest).await? {
                return Ok(Some((current.manifest, index)));
            }
        }
        Err(self.damaged(format!(
            "{MANIFEST} keeps naming generations that do not exist; another writer may be deleting them"
        )))
    }

    async fn load_generation(
        &self,
        manifest: &Manifest,
    ) -> Result<Option<ApprovalIndex>, ApprovalStoreError> {
        let Some(pack) = self.get(&manifest.generation).await? else {
            return Ok(None);
        };
        let digest = sha256_hex(&pack);
        if digest != manifest.sha256 {
            return Err(self.damaged(format!(
                "generation {} has SHA-256 {digest}, the manifest says {}; it was altered or truncated",
                manifest.generation, manifest.sha256
            )));
        }
        let index = ApprovalIndex::unpack(&pack).map_err(|e| self.index_error(e))?;
        Ok(Some(index))
    }

    fn index_error(&self, e: IndexError) -> ApprovalStoreError {
        self.damaged(e.to_string())
    }

    /// Applies `change` on top of whatever is current, retrying when another writer wins.
    pub async fn apply(&self, change: &Change, by: &str) -> Result<Published, ApprovalStoreError> {
        for attempt in 1..=MAX_ATTEMPTS {
            let lock = match self.publication {
                Publication::Lock => Some(self.acquire_lock(by).await?),
                _ => None,
            };
            let result = self.try_publish(change, by).await;
            if let Some(lock) = lock {
                self.release_lock(&lock).await;
            }
            match result {
                Ok(manifest) => {
                    self.record_change(&manifest, change, by).await?;
                    let collected = match self.collect_garbage(&manifest).await {
                        Ok(collected) => collected,
                        Err(e) => {
                            // Garbage stays until the next write; the change itself is done.
                            tracing::warn!(store = %self.location, error = %e, "approvals garbage collection failed");
                            Vec::new()
                        }
                    };
                    return Ok(Published {
                        manifest,
                        attempts: attempt,
                        collected,
                    });
                }
                Err(AttemptError::Conflict) => {
                    tracing::debug!(store = %self.location, attempt, "approvals manifest moved; retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(AttemptError::Failed(e)) => return Err(e),
            }
        }
        Err(ApprovalStoreError::Contended {
            store: self.location.clone(),
            attempts: MAX_ATTEMPTS,
        })
    }

    async fn try_publish(&self, change: &Change, by: &str) -> Result<Manifest, AttemptError> {
        let current = self.current().await?;
        let mut approvals = match &current {
            Some(c) => match self.load_generation(&c.manifest).await? {
                Some(index) => index.approvals().to_vec(),
                // Collected under us: the manifest has moved on.
                None => return Err(AttemptError::Conflict),
            },
            None => Vec::new(),
        };
        change
            .apply(&mut approvals, current.is_some(), by)
            .map_err(|reason| ApprovalStoreError::Rejected {
                store: self.location.clone(),
                reason,
            })?;
        let count = approvals.len();
        let index = ApprovalIndex::build(approvals).map_err(|e| self.index_error(e))?;
        let pack = index.pack().map_err(|e| self.index_error(e))?;
        let sequence = current.as_ref().map_or(1, |c| c.manifest.sequence + 1);
        let generation = format!("{GENERATIONS}{sequence:020}-{}.tar", unique_token(8));
        let now = Utc::now();
        let mut history = Vec::new();
        if let Some(c) = &current {
            history.push(Superseded {
                sequence: c.manifest.sequence,
                generation: c.manifest.generation.clone(),
                superseded_at: now,
            });
            history.extend(c.manifest.history.iter().cloned());
            history.truncate(HISTORY_KEPT);
        }
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            sequence,
            generation: generation.clone(),
            sha256: sha256_hex(&pack),
            size: pack.len() as u64,
            approvals: count,
            published_at: now,
            published_by: by.to_string(),
            history,
        };
        self.counts.puts.fetch_add(1, Ordering::Relaxed);
        match self
            .operator
            .write_with(&generation, pack)
            .if_not_exists(true)
            .await
        {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConditionNotMatch => {
                return Err(AttemptError::Conflict)
            }
            Err(e) => return Err(self.unavailable("write", &generation, e).into()),
        }
        let body = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| self.damaged(format!("cannot serialize the manifest: {e}")))?;
        match self.write_manifest(body, current.as_ref()).await {
            Ok(()) => Ok(manifest),
            Err(e) => {
                // Nobody can point at the generation we just wrote: remove it now.
                let _ = self.operator.delete(&generation).await;
                Err(e)
            }
        }
    }

    async fn write_manifest(
        &self,
        body: Vec<u8>,
        current: Option<&Current>,
    ) -> Result<(), AttemptError> {
        self.counts.puts.fetch_add(1, Ordering::Relaxed);
        let token = current.and_then(|c| c.token.as_deref());
        let result = match (self.publication, current, token) {
            (Publication::IfMatch, Some(_), Some(etag)) => {
                self.operator
                    .write_with(MANIFEST, body)
                    .if_match(etag)
                    .await
            }
            (Publication::IfVersionMatch, Some(_), Some(version)) => {
                self.operator
                    .write_with(MANIFEST, body)
                    .if_version_match(version)
                    .await
            }
            (Publication::IfMatch | Publication::IfVersionMatch, Some(_), None) => {
                return Err(self
                    .damaged(format!(
                        "{MANIFEST} has no ETag or generation to make a safe update with"
                    ))
                    .into());
            }
            (Publication::IfMatch | Publication::IfVersionMatch, None, _) => {
                self.operator
                    .write_with(MANIFEST, body)
                    .if_not_exists(true)
                    .await
            }
            (Publication::Lock, _, _) => {
                // The lock serialises writers; checking the base again costs one read and
                // keeps a writer whose lock was broken as stale from overwriting a newer one.
                let now_current = self.current().await?.map(|c| c.manifest.sequence);
                if now_current != current.map(|c| c.manifest.sequence) {
                    return Err(AttemptError::Conflict);
                }
                return self.replace_under_lock(body).await.map_err(Into::into);
            }
        };
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ErrorKind::ConditionNotMatch => Err(AttemptError::Conflict),
            Err(e) => Err(self.unavailable("write", MANIFEST, e).into()),
        }
    }

    /// Under the lock no one else writes; readers must still never see a partial manifest,
    /// so it is written beside and renamed over where the store can rename.
    async fn replace_under_lock(&self, body: Vec<u8>) -> Result<(), ApprovalStoreError> {
        if self.operator.info().capability().rename {
            let temporary = format!("{MANIFEST}.{}.tmp", unique_token(8));
            self.operator
                .write(&temporary, body)
                .await
                .map_err(|e| self.unavailable("write", &temporary, e))?;
            self.operator
                .rename(&temporary, MANIFEST)
                .await
                .map_err(|e| self.unavailable("rename", MANIFEST, e))
        } else {
            self.operator
                .write(MANIFEST, body)
                .await
                .map(|_| ())
                .map_err(|e| self.unavailable("write", MANIFEST, e))
        }
    }

    async fn acquire_lock(&self, by: &str) -> Result<String, ApprovalStoreError> {
        let token = format!("{} {} {}", unique_token(8), by, Utc::now().to_rfc3339());
        for attempt in 1..=MAX_ATTEMPTS * 10 {
            match self
                .operator
                .write_with(LOCK, token.clone().into_bytes())
                .if_not_exists(true)
                .await
            {
                Ok(_) => return Ok(token),
                Err(e) if e.kind() == ErrorKind::ConditionNotMatch => {
                    self.break_stale_lock().await?;
                    tokio::time::sleep(backoff(attempt.min(6))).await;
                }
                Err(e) => return Err(self.unavailable("write", LOCK, e)),
            }
        }
        Err(ApprovalStoreError::Contended {
            store: self.location.clone(),
            attempts: MAX_ATTEMPTS * 10,
        })
    }

    async fn break_stale_lock(&self) -> Result<(), ApprovalStoreError> {
        let Some(bytes) = self.get(LOCK).await? else {
            return Ok(());
        };
        let text = String::from_utf8_lossy(&bytes);
        // The holder writes its token right after creating the lock, so an empty or partial
        // lock is a fresh one being written: judge it by the object's age instead.
        let taken_at = match text
            .rsplit(' ')
            .next()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        {
            Some(t) => Some(t.with_timezone(&Utc)),
            None => match self.operator.stat(LOCK).await {
                Ok(meta) => meta
                    .last_modified()
                    .and_then(|t| DateTime::parse_from_rfc3339(&t.to_string()).ok())
                    .map(|t| t.with_timezone(&Utc)),
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(self.unavailable("stat", LOCK, e)),
            },
        };
        let stale = taken_at.is_some_and(|t| {
            Utc::now()
                .signed_duration_since(t)
                .to_std()
                .unwrap_or_default()
                > LOCK_STALE_AFTER
        });
        if stale {
            tracing::warn!(store = %self.location, lock = %text, "removing a stale approvals lock");
            self.operator
                .delete(LOCK)
                .await
                .map_err(|e| self.unavailable("delete", LOCK, e))?;
        }
        Ok(())
    }

    async fn release_lock(&self, token: &str) {
        // Only our own lock: a writer that outlived the stale timeout must not remove the
        // lock of the writer that broke it.
        if let Ok(Some(bytes)) = self.get(LOCK).await {
            if bytes == token.as_bytes() {
                if let Err(e) = self.operator.delete(LOCK).await {
                    tracing::warn!(store = %self.location, error = %e, "cannot remove the approvals lock; it expires in 30 s");
                }
            }
        }
    }

    async fn record_change(
        &self,
        manifest: &Manifest,
        change: &Change,
        by: &str,
    ) -> Result<(), ApprovalStoreError> {
        let record = ChangeRecord {
            sequence: manifest.sequence,
            at: manifest.published_at,
            by: by.to_string(),
            generation: manifest.generation.clone(),
            change: change.clone(),
        };
        let path = format!("{CHANGES}{:020}.json", manifest.sequence);
        let body = serde_json::to_vec_pretty(&record)
            .map_err(|e| self.damaged(format!("cannot serialize the change record: {e}")))?;
        self.counts.puts.fetch_add(1, Ordering::Relaxed);
        self.operator
            .write_with(&path, body)
            .if_not_exists(true)
            .await
            .map(|_| ())
            .map_err(|e| ApprovalStoreError::Damaged {
                store: self.location.clone(),
                what: format!(
                    "the change was published as generation {} but its change-log entry {path} could not be written ({e})",
                    manifest.sequence
                ),
            })
    }

    /// The change log, oldest first.
    pub async fn changes(&self) -> Result<Vec<ChangeRecord>, ApprovalStoreError> {
        let entries = match self.operator.list(CHANGES).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.unavailable("list", CHANGES, e)),
        };
        let mut paths: Vec<String> = entries
            .into_iter()
            .map(|e| e.path().to_string())
            .filter(|p| p.ends_with(".json"))
            .collect();
        paths.sort();
        let mut records = Vec::with_capacity(paths.len());
        for path in paths {
            let Some(bytes) = self.get(&path).await? else {
                continue;
            };
            let record: ChangeRecord = serde_json::from_slice(&bytes)
                .map_err(|e| self.damaged(format!("change-log entry {path} is not valid: {e}")))?;
            records.push(record);
        }
        Ok(records)
    }

    /// Deletes generations that are not current and were superseded (or, if never
    /// published, written) longer than the grace period ago.
    async fn collect_garbage(
        &self,
        manifest: &Manifest,
    ) -> Result<Vec<String>, ApprovalStoreError> {
        let entries = self
            .operator
            .list(GENERATIONS)
            .await
            .map_err(|e| self.unavailable("list", GENERATIONS, e))?;
        let now = Utc::now();
        let old_enough = |at: DateTime<Utc>| {
            now.signed_duration_since(at)
                .to_std()
                .is_ok_and(|age| age >= self.gc_grace)
        };
        let mut collected = Vec::new();
        for entry in entries {
            let path = entry.path();
            if !path.ends_with(".tar") || path == manifest.generation {
                continue;
            }
            let collectable = match manifest.history.iter().find(|h| h.generation == path) {
                Some(superseded) => old_enough(superseded.superseded_at),
                None => {
                    // Beyond the remembered history, or written by a writer that lost its
                    // race: its own age tells whether a reader or writer may still need it.
                    let meta = self
                        .operator
                        .stat(path)
                        .await
                        .map_err(|e| self.unavailable("stat", path, e))?;
                    meta.last_modified()
                        .and_then(|t| DateTime::parse_from_rfc3339(&t.to_string()).ok())
                        .is_some_and(|t| old_enough(t.with_timezone(&Utc)))
                }
            };
            if collectable {
                self.operator
                    .delete(path)
                    .await
                    .map_err(|e| self.unavailable("delete", path, e))?;
                collected.push(path.to_string());
            }
        }
        Ok(collected)
    }
}

fn backoff(attempt: u32) -> Duration {
    // Jittered, so that two writers that collided do not collide again in lockstep.
    let base = 10u64 << attempt.min(5);
    let jitter = u64::from_le_bytes(
        Sha256::digest(unique_token(8).as_bytes())[..8]
            .try_into()
            .unwrap_or([0; 8]),
    ) % base;
    Duration::from_millis(base + jitter)
}
