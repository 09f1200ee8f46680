//! One night's run in the state store, so it can span invocations:
//! `scans/YYYY-MM-DD/<run>/run.json` (what the run covers, written once when it starts),
//! `…/parts/<check>@<region>.json` (one per finished (check, region) pair, write-once, so
//! a rerun or a racing invocation never replaces a result), `…/report.json` (the report's
//! files, once it is stored) and `…/summary.json` (where the summary went, once sent). A
//! rerun of a finished run returns its report and that record.

use chrono::{DateTime, NaiveDate, Utc};
use escher_core::pipeline::notify::NotificationResult;
use escher_core::scan::{PairResult, ScanPair};
use escher_core::store::{create_once, Created};
use opendal::{ErrorKind, Operator};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::store::{ReportFiles, StoreError};

/// Names one run; this is what an invocation hands on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRef {
    pub date: NaiveDate,
    /// Becomes a folder name in the state store, so a name read from a payload is checked.
    #[serde(deserialize_with = "run_name")]
    pub run: String,
    /// The invocation that continues the run (1 for the first).
    pub invocation: u32,
}

/// What a run covers, fixed when it starts, so every invocation does the same work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunManifest {
    pub run: String,
    pub started_at: DateTime<Utc>,
    pub regions: Vec<String>,
    pub pairs: Vec<ScanPair>,
}

/// The longest run name: `event-` and the trigger's 64 characters, with room to spare.
const MAX_RUN_NAME: usize = 128;

/// A run name as [`RunRef::for_trigger`] and a fresh run make them (letters, digits, `-` and
/// `_`): one read from a payload is a folder of the state store, so `..` or `/` in it would
/// put the run's files outside `scans/`.
fn run_name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let name = String::deserialize(d)?;
    let ok = !name.is_empty()
        && name.len() <= MAX_RUN_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(name)
    } else {
        Err(serde::de::Error::custom(format!(
            "run name {name:?} is not one a scan run has: 1 to {MAX_RUN_NAME} letters, digits, `-` or `_`"
        )))
    }
}

impl RunRef {
    /// The first invocation of the run a trigger (the scheduled event, by its id) starts:
    /// a retry of that invocation names the same run.
    pub fn for_trigger(trigger_id: &str, date: NaiveDate) -> RunRef {
        let id: String = trigger_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(64)
            .collect();
        RunRef {
            date,
            run: format!("event-{id}"),
            invocation: 1,
        }
    }

    fn folder(&self) -> String {
        format!("scans/{}/{}/", self.date.format("%Y-%m-%d"), self.run)
    }
    fn manifest(&self) -> String {
        format!("{}run.json", self.folder())
    }
    fn parts(&self) -> String {
        format!("{}parts/", self.folder())
    }
    fn part(&self, pair: &ScanPair) -> String {
        format!("{}{}@{}.json", self.parts(), pair.check, pair.region)
    }
    fn report(&self) -> String {
        format!("{}report.json", self.folder())
    }
    fn summary(&self) -> String {
        format!("{}summary.json", self.folder())
    }
}

/// The run state, in the state store beside the reports.
pub struct RunStore<'a> {
    pub operator: &'a Operator,
    pub location: &'a str,
}

impl RunStore<'_> {
    fn storage(&self, operation: &'static str, path: &str, e: opendal::Error) -> StoreError {
        StoreError::Storage {
            store: self.location.to_string(),
            operation,
            path: path.to_string(),
            source: Box::new(e),
        }
    }

    fn unreadable(&self, path: &str, e: impl std::fmt::Display) -> StoreError {
        StoreError::Unreadable {
            store: self.location.to_string(),
            path: path.to_string(),
            message: e.to_string(),
        }
    }

    /// Writes `value` at `path` unless something is there; `true` when this call wrote it.
    async fn create<T: Serialize>(&self, path: &str, value: &T) -> Result<bool, StoreError> {
        let body = serde_json::to_vec(value).map_err(|e| self.unreadable(path, e))?;
        match create_once(self.operator, path, body).await {
            Ok(Created::Written) => Ok(true),
            Ok(Created::AlreadyExists) => Ok(false),
            Err(e) => Err(self.storage("write", path, e)),
        }
    }

    async fn read<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>, StoreError> {
        match escher_core::store::read_whole(self.operator, path).await {
            Ok(bytes) => serde_json::from_slice(&bytes.to_vec())
                .map(Some)
                .map_err(|e| self.unreadable(path, e)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.storage("read", path, e)),
        }
    }

    /// Starts a run: its manifest, written once.
    pub async fn start(&self, manifest: &RunManifest) -> Result<RunRef, StoreError> {
        let run = RunRef {
            date: manifest.started_at.date_naive(),
            run: manifest.run.clone(),
            invocation: 1,
        };
        self.start_as(&run, manifest).await?;
        Ok(run)
    }

    /// Starts the run `run` names with `manifest`; `Exists` when it was started before.
    pub async fn start_as(&self, run: &RunRef, manifest: &RunManifest) -> Result<(), StoreError> {
        if !self.create(&run.manifest(), manifest).await? {
            return Err(StoreError::Exists {
                path: run.manifest(),
            });
        }
        Ok(())
    }

    pub async fn manifest(&self, run: &RunRef) -> Result<RunManifest, StoreError> {
        self.read(&run.manifest()).await?.ok_or_else(|| {
            self.unreadable(
                &run.manifest(),
                "no such scan run: it was never started here (check the state store URI)",
            )
        })
    }

    /// The results kept so far, paging through the listing.
    pub async fn parts(&self, run: &RunRef) -> Result<Vec<PairResult>, StoreError> {
        use futures::TryStreamExt;
        let folder = run.parts();
        let mut paths = Vec::new();
        let listed = async {
            let mut lister = self.operator.lister(&folder).await?;
            while let Some(entry) = lister.try_next().await? {
                if entry.path().ends_with(".json") {
                    paths.push(entry.path().to_string());
                }
            }
            Ok::<(), opendal::Error>(())
        }
        .await;
        match listed {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.storage("list", &folder, e)),
        }
        let mut parts = Vec::with_capacity(paths.len());
        for path in paths {
            if let Some(part) = self.read(&path).await? {
                parts.push(part);
            }
        }
        Ok(parts)
    }

    /// Keeps one pair's result and returns the result that stands: `part`, or the one a
    /// racing invocation kept first (which stays).
    pub async fn keep(&self, run: &RunRef, part: PairResult) -> Result<PairResult, StoreError> {
        let path = run.part(&part.pair);
        if self.create(&path, &part).await? {
            return Ok(part);
        }
        tracing::info!(check = %part.pair.check, region = %part.pair.region, "pair already done by another invocation; its result stays");
        Ok(self.read(&path).await?.unwrap_or(part))
    }

    /// The report of a finished run.
    pub async fn finished(&self, run: &RunRef) -> Result<Option<ReportFiles>, StoreError> {
        self.read(&run.report()).await
    }

    /// Marks the run finished with its report; `false` when another invocation did first.
    pub async fn finish(&self, run: &RunRef, files: &ReportFiles) -> Result<bool, StoreError> {
        self.create(&run.report(), files).await
    }

    /// Keeps where the run's summary went (written once, after sending), beside the report,
    /// which is stored before the summary goes out.
    pub async fn keep_summary(
        &self,
        run: &RunRef,
        sent: &[NotificationResult],
    ) -> Result<(), StoreError> {
        self.create(&run.summary(), &sent).await.map(|_| ())
    }

    /// Where the run's summary went; empty when none was kept (nothing to send, or the
    /// run finished before this was recorded).
    pub async fn summary_sent(&self, run: &RunRef) -> Result<Vec<NotificationResult>, StoreError> {
        Ok(self.read(&run.summary()).await?.unwrap_or_default())
    }
}
