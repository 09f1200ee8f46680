//! A handler's cached view of the approvals, re-checked against the manifest at most once
//! per refresh interval.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::{ApprovalStore, ApprovalStoreError, MANIFEST};
use crate::approvals::decide::{BlastRadiusUsage, Decision};
use crate::approvals::index::ApprovalIndex;
use crate::approvals::model::Action;
use crate::event::UnifiedEvent;

struct Loaded {
    index: Arc<ApprovalIndex>,
    token: Option<String>,
    sequence: u64,
    checked_at: Instant,
}

/// A handler's view of the approvals: loaded once, then re-checked at most every
/// `refresh_interval` (one HEAD of the manifest, or one GET where the store has no ETags).
pub struct ApprovalsReader {
    store: ApprovalStore,
    refresh_interval: Duration,
    loaded: Mutex<Option<Arc<Loaded>>>,
    /// One load at a time: a request arriving while the start's warm-up loads waits for
    /// that load instead of reading the same objects again.
    loading: tokio::sync::Mutex<()>,
}

impl ApprovalsReader {
    pub fn new(store: ApprovalStore, refresh_interval: Duration) -> Self {
        ApprovalsReader {
            store,
            refresh_interval,
            loaded: Mutex::new(None),
            loading: tokio::sync::Mutex::new(()),
        }
    }

    pub fn store(&self) -> &ApprovalStore {
        &self.store
    }

    fn cached(&self) -> Option<Arc<Loaded>> {
        self.loaded.lock().ok().and_then(|guard| guard.clone())
    }

    fn remember(&self, loaded: Arc<Loaded>) {
        if let Ok(mut guard) = self.loaded.lock() {
            *guard = Some(loaded);
        }
    }

    /// The current index. Errors when storage cannot be reached once the refresh interval
    /// has passed: a decision must never rest on approvals that may have been revoked.
    pub async fn index(&self) -> Result<Arc<ApprovalIndex>, ApprovalStoreError> {
        if let Some(c) = self.cached() {
            if c.checked_at.elapsed() < self.refresh_interval {
                return Ok(c.index.clone());
            }
        }
        let _one_load = self.loading.lock().await;
        // What the load this one waited for read is as good as a fresh read.
        let cached = self.cached();
        let unchanged = |c: &Loaded| Loaded {
            index: c.index.clone(),
            token: c.token.clone(),
            sequence: c.sequence,
            checked_at: Instant::now(),
        };
        let empty = || -> Result<Loaded, ApprovalStoreError> {
            Ok(Loaded {
                index: Arc::new(
                    ApprovalIndex::build(Vec::new()).map_err(|e| self.store.index_error(e))?,
                ),
                token: None,
                sequence: 0,
                checked_at: Instant::now(),
            })
        };
        // With a cached generation, one HEAD tells whether it is still current. Without one
        // (a cold start) there is nothing to compare with: reading the manifest brings its
        // token, and a HEAD first would only add a round trip.
        if let Some(c) = &cached {
            if c.checked_at.elapsed() < self.refresh_interval {
                return Ok(c.index.clone());
            }
            let fresh = match self.store.manifest_token().await? {
                Some(Some(token)) if c.token.as_deref() == Some(token.as_str()) => {
                    Some(unchanged(c))
                }
                None => Some(empty()?),
                Some(_) => None,
            };
            if let Some(fresh) = fresh {
                let fresh = Arc::new(fresh);
                self.remember(fresh.clone());
                return Ok(fresh.index.clone());
            }
        }
        let loaded = match self.store.current().await? {
            None => empty()?,
            Some(current) => match &cached {
                Some(c) if c.sequence == current.manifest.sequence => Loaded {
                    token: current.token,
                    ..unchanged(c)
                },
                _ => {
                    let Some(index) = self.store.load_generation(&current.manifest).await? else {
                        return Err(self.store.damaged(format!(
                            "{MANIFEST} names {}, which does not exist",
                            current.manifest.generation
                        )));
                    };
                    Loaded {
                        index: Arc::new(index),
                        token: current.token,
                        sequence: current.manifest.sequence,
                        checked_at: Instant::now(),
                    }
                }
            },
        };
        let loaded = Arc::new(loaded);
        self.remember(loaded.clone());
        Ok(loaded.index.clone())
    }

    /// The decision for `event`; an error (never `NotApproved`) when the approvals cannot
    /// be read, so the event is retried.
    pub async fn decide(
        &self,
        event: &UnifiedEvent,
        action: Action,
        now: DateTime<Utc>,
        usage: &dyn BlastRadiusUsage,
    ) -> Result<Decision, ApprovalStoreError> {
        let index = self.index().await?;
        index
            .decide(event, action, now, usage)
            .map_err(|e| self.store.index_error(e))
    }
}
