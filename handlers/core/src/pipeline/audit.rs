//! The audit trail: one immutable JSON record per event and outcome, written once
//! (create-only) under `audit/YYYY/MM/DD/` in the audit store, holding its own SHA-256.
//!
//! Beside each record, a listing entry (`listing/YYYY/MM/DD/<record>`, holding the hash) is
//! written with it, so [`AuditLog::verify`] can tell an altered record (hash mismatch) from a
//! missing one (listed, gone) and from one that was never listed.
//!
//! Both writes are create-only and idempotent: writing the same record again (the retry of
//! a delivery whose audit write failed half-way) finds what is there, identical, and goes
//! on; anything else at the path is never replaced.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use opendal::{ErrorKind, Operator};
use serde::{Deserialize, Serialize};

use super::notify::NotificationResult;
use crate::approvals::{Action, Decision};
use crate::remediate::{Mode, RemediationReport};
use crate::store::{create_once, Created};
use crate::UnifiedEvent;

const RECORDS: &str = "audit/";
const LISTING: &str = "listing/";

/// What happened to one event (or one unreadable payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Fixed and verified.
    Remediated,
    /// Fixed, but the verification did not pass: a person must look.
    VerificationFailed,
    /// The resource already was in the wanted state.
    AlreadyCompliant,
    /// Approved, but a precondition did not hold (e.g. the instance is busy).
    Skipped,
    /// Dry run: what would have been done is in the remediation steps.
    WouldRemediate,
    /// A fix exists but nobody pre-approved it for this resource.
    ApprovalRequired,
    /// No fix is mapped to this event type: the event is only notified.
    NotifyOnly,
    /// The action is not implemented for this resource type.
    NotSupported,
    /// Another delivery of the same event was (or is being) handled.
    Duplicate,
    /// The remediation failed and will not succeed on retry.
    Failed,
    /// The payload was not a recognised alert; acknowledged so it is not retried forever.
    Unrecognized,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Remediated => "remediated",
            Outcome::VerificationFailed => "verification_failed",
            Outcome::AlreadyCompliant => "already_compliant",
            Outcome::Skipped => "skipped",
            Outcome::WouldRemediate => "would_remediate",
            Outcome::ApprovalRequired => "approval_required",
            Outcome::NotifyOnly => "notify_only",
            Outcome::NotSupported => "not_supported",
            Outcome::Duplicate => "duplicate",
            Outcome::Failed => "failed",
            Outcome::Unrecognized => "unrecognized",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One audit record. `sha256` covers the canonical JSON of every other field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub record_id: String,
    pub handled_at: DateTime<Utc>,
    pub mode: Mode,
    pub outcome: Outcome,
    /// One sentence: what happened and why.
    pub summary: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<UnifiedEvent>,
    /// SHA-256 of the payload as received (also for unrecognised payloads).
    pub payload_sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    /// What the fix did: API calls, verification, created resources, undo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remediation: Option<RemediationReport>,
    pub notifications: Vec<NotificationResult>,
    /// Milliseconds per stage (`normalize`, `enrich`, `decide`, `remediate`, `notify`, `total`).
    pub timings_ms: BTreeMap<String, u64>,
    /// Notes on the way (enrichment skipped, a channel not configured, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// What the incident memory knew of this resource and principal when it was handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<crate::incidents::IncidentHistory>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub sha256: String,
}

impl AuditRecord {
    /// The hash of the record's canonical content (sorted keys, no whitespace, `sha256`
    /// left empty).
    pub fn content_hash(&self) -> Result<String, serde_json::Error> {
        canonical_hash(serde_json::to_value(self)?)
    }

    /// The hash of a record as stored (its JSON, `sha256` blanked), so a record is checked
    /// as it was written even after this version renamed a field's spelling (an older
    /// record's `sns_critical` channel, say): reading it into [`AuditRecord`] and writing
    /// it out again would give today's spelling and a different hash.
    pub fn stored_hash(stored: &[u8]) -> Result<String, serde_json::Error> {
        canonical_hash(serde_json::from_slice(stored)?)
    }

    pub fn seal(mut self) -> Result<Self, serde_json::Error> {
        self.sha256 = self.content_hash()?;
        Ok(self)
    }

    fn day(&self) -> NaiveDate {
        self.handled_at.date_naive()
    }

    /// `audit/2026/11/22/081502123-<event>-<outcome>-<record id>.json`
    pub fn path(&self) -> String {
        format!("{RECORDS}{}/{}", day_folder(self.day()), self.file_name())
    }

    fn file_name(&self) -> String {
        format!(
            "{}-{}-{}-{}.json",
            self.handled_at.format("%H%M%S%3f"),
            self.event_id.as_deref().unwrap_or("payload"),
            self.outcome,
            self.record_id
        )
    }
}

/// Record reads in flight at once when a day is read.
const READS_AT_ONCE: usize = 16;

/// When a record was handled (to the millisecond) and its outcome, from its path
/// (`…/<HHMMSSmmm>-<event>-<outcome>-<record id>.json`, see [`AuditRecord::path`]).
fn name_parts(day: NaiveDate, path: &str) -> Option<(DateTime<Utc>, &str)> {
    let name = path.rsplit('/').next()?.strip_suffix(".json")?;
    let time = chrono::NaiveTime::parse_from_str(name.get(..9)?, "%H%M%S%3f").ok()?;
    let mut parts = name.rsplitn(3, '-');
    let _record_id = parts.next()?;
    let outcome = parts.next()?;
    Some((day.and_time(time).and_utc(), outcome))
}

fn day_folder(day: NaiveDate) -> String {
    day.format("%Y/%m/%d").to_string()
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit store {store}: cannot {operation} {path}: {source}; the event will be retried")]
    Storage {
        store: String,
        operation: &'static str,
        path: String,
        #[source]
        source: Box<opendal::Error>,
    },
    #[error("a different audit record is already at {path}; audit records are never replaced, so this one was not written (record ids must be unique: report this as a bug)")]
    Exists { path: String },
    #[error("cannot serialize the audit record: {0}")]
    Serialize(#[from] serde_json::Error),
}

/// The audit store.
#[derive(Debug, Clone)]
pub struct AuditLog {
    operator: Operator,
    location: String,
}

/// What `verify` found for one day.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VerifyReport {
    pub checked: usize,
    /// Records whose content no longer matches their hash (or the listing's).
    pub altered: Vec<String>,
    /// Listed records that are gone.
    pub missing: Vec<String>,
    /// Records with no listing entry (a writer stopped between the two writes, or the
    /// record was added by hand).
    pub unlisted: Vec<String>,
    /// Files that are not audit records at all.
    pub unreadable: Vec<String>,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.altered.is_empty()
            && self.missing.is_empty()
            && self.unlisted.is_empty()
            && self.unreadable.is_empty()
    }
}

impl AuditLog {
    pub fn new(operator: Operator, location: String) -> Self {
        AuditLog { operator, location }
    }

    pub fn location(&self) -> &str {
        &self.location
    }

    fn storage(&self, operation: &'static str, path: &str, source: opendal::Error) -> AuditError {
        AuditError::Storage {
            store: self.location.clone(),
            operation,
            path: path.to_string(),
            source: Box::new(source),
        }
    }

    /// Creates `path` with `body`; finding exactly `body` there already is success.
    async fn create(&self, path: &str, body: Vec<u8>) -> Result<(), AuditError> {
        // Shared, not copied: kept only to compare with what is found.
        let body = opendal::Buffer::from(body);
        match create_once(&self.operator, path, body.clone()).await {
            Ok(Created::Written) => Ok(()),
            Ok(Created::AlreadyExists) => {
                let found = crate::store::read_whole(&self.operator, path)
                    .await
                    .map_err(|e| self.storage("read", path, e))?;
                if found.to_bytes() == body.to_bytes() {
                    Ok(())
                } else {
                    Err(AuditError::Exists {
                        path: path.to_string(),
                    })
                }
            }
            Err(e) => Err(self.storage("write", path, e)),
        }
    }

    /// Seals and writes the record once; returns it sealed, and its path.
    pub async fn write(
        &self,
        mut record: AuditRecord,
    ) -> Result<(AuditRecord, String), AuditError> {
        let path = self.write_sealing(&mut record).await?;
        Ok((record, path))
    }

    /// Seals `record` in place and writes it once; returns its path. The caller keeps the
    /// record whatever happens (to hand it on for a retry when the write fails).
    pub async fn write_sealing(&self, record: &mut AuditRecord) -> Result<String, AuditError> {
        record.sha256 = record.content_hash()?;
        let path = record.path();
        let listing = format!(
            "{LISTING}{}/{}",
            day_folder(record.day()),
            record.file_name()
        );
        let body = serde_json::to_vec_pretty(&*record)?;
        // Together, in one round trip: should either fail, the retry writes both again.
        let (listed, written) = futures::future::join(
            self.create(&listing, record.sha256.clone().into_bytes()),
            self.create(&path, body),
        )
        .await;
        listed?;
        written?;
        Ok(path)
    }

    /// Reads every record of `day`.
    pub async fn records(&self, day: NaiveDate) -> Result<Vec<AuditRecord>, AuditError> {
        self.records_of(day, |_| true).await
    }

    /// The records of `day` handled after `since` and up to `until`, but for `duplicate`
    /// ones; the file names (time of day, outcome) choose what is read, so a busy day's
    /// other records cost a listing entry, not a read.
    pub async fn records_between(
        &self,
        day: NaiveDate,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<AuditRecord>, AuditError> {
        let mut records = self
            .records_of(day, |path| {
                let Some((at, outcome)) = name_parts(day, path) else {
                    return true; // not named by this version: read it to know
                };
                at > since - chrono::Duration::milliseconds(1)
                    && at <= until
                    && outcome != Outcome::Duplicate.as_str()
            })
            .await?;
        records.retain(|r| r.handled_at > since && r.handled_at <= until);
        Ok(records)
    }

    /// The records of `day` whose path `wanted` keeps, read a few at a time, oldest first.
    async fn records_of(
        &self,
        day: NaiveDate,
        wanted: impl Fn(&str) -> bool,
    ) -> Result<Vec<AuditRecord>, AuditError> {
        use futures::{StreamExt, TryStreamExt};
        let folder = format!("{RECORDS}{}/", day_folder(day));
        let paths: Vec<String> = self
            .list(&folder)
            .await?
            .into_iter()
            .filter(|p| wanted(p))
            .collect();
        let mut records: Vec<AuditRecord> = futures::stream::iter(paths)
            .map(|path| async move {
                let bytes = crate::store::read_whole(&self.operator, &path)
                    .await
                    .map_err(|e| self.storage("read", &path, e))?;
                Ok::<_, AuditError>(serde_json::from_slice::<AuditRecord>(&bytes.to_vec()).ok())
            })
            .buffer_unordered(READS_AT_ONCE)
            .try_filter_map(|record| async move { Ok(record) })
            .try_collect()
            .await?;
        records.sort_by_key(|r| r.handled_at);
        Ok(records)
    }

    async fn list(&self, folder: &str) -> Result<Vec<String>, AuditError> {
        crate::store::list_files(&self.operator, folder)
            .await
            .map_err(|e| self.storage("list", folder, e))
    }

    /// The days that have records or listing entries, oldest first.
    pub async fn days(&self) -> Result<Vec<NaiveDate>, AuditError> {
        let mut days = std::collections::BTreeSet::new();
        for root in [RECORDS, LISTING] {
            let entries = match self.operator.list_with(root).recursive(true).await {
                Ok(entries) => entries,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(self.storage("list", root, e)),
            };
            for entry in entries {
                let parts: Vec<&str> = entry.path().trim_start_matches(root).split('/').collect();
                if let [y, m, d, _file] = parts.as_slice() {
                    if let Ok(day) = NaiveDate::parse_from_str(&format!("{y}-{m}-{d}"), "%Y-%m-%d")
                    {
                        days.insert(day);
                    }
                }
            }
        }
        Ok(days.into_iter().collect())
    }

    /// Re-hashes every record of `day` and compares it with the listing.
    pub async fn verify_day(&self, day: NaiveDate) -> Result<VerifyReport, AuditError> {
        let records_folder = format!("{RECORDS}{}/", day_folder(day));
        let listing_folder = format!("{LISTING}{}/", day_folder(day));
        let mut listed: BTreeMap<String, String> = BTreeMap::new();
        for path in self.list(&listing_folder).await? {
            let hash = crate::store::read_whole(&self.operator, &path)
                .await
                .map_err(|e| self.storage("read", &path, e))?;
            let name = path.trim_start_matches(&listing_folder).to_string();
            listed.insert(
                name,
                String::from_utf8_lossy(&hash.to_vec()).trim().to_string(),
            );
        }
        let mut report = VerifyReport::default();
        for path in self.list(&records_folder).await? {
            report.checked += 1;
            let name = path.trim_start_matches(&records_folder).to_string();
            let bytes = crate::store::read_whole(&self.operator, &path)
                .await
                .map_err(|e| self.storage("read", &path, e))?;
            let Ok(record) = serde_json::from_slice::<AuditRecord>(&bytes.to_vec()) else {
                report.unreadable.push(path);
                continue;
            };
            let actual = AuditRecord::stored_hash(&bytes.to_vec())?;
            let listed_hash = listed.remove(&name);
            if actual != record.sha256 || listed_hash.as_deref().is_some_and(|h| h != actual) {
                report.altered.push(path);
            } else if listed_hash.is_none() {
                report.unlisted.push(path);
            }
        }
        report.missing.extend(
            listed
                .into_keys()
                .map(|name| format!("{records_folder}{name}")),
        );
        Ok(report)
    }
}

/// SHA-256 of a record's JSON with its `sha256` field blanked: serde_json's map is ordered
/// by key, so this rendering is canonical.
fn canonical_hash(mut value: serde_json::Value) -> Result<String, serde_json::Error> {
    if let Some(object) = value.as_object_mut() {
        object.insert("sha256".into(), serde_json::Value::String(String::new()));
    }
    Ok(crate::ids::sha256_hex(&serde_json::to_vec(&value)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(outcome: Outcome) -> AuditRecord {
        AuditRecord {
            record_id: "r1".into(),
            handled_at: "2026-11-22T08:15:02.123Z".parse().expect("time"),
            mode: Mode::Apply,
            outcome,
            summary: "made bucket x private".into(),
            event_id: Some("aws-0123".into()),
            event: None,
            payload_sha256: "00".into(),
            action: Some(Action::MakeBucketPrivate),
            decision: None,
            remediation: None,
            notifications: vec![],
            timings_ms: BTreeMap::from([("total".into(), 12)]),
            notes: vec![],
            history: None,
            error: None,
            sha256: String::new(),
        }
    }

    #[test]
    fn the_hash_covers_the_content_and_not_itself() {
        let sealed = record(Outcome::Remediated).seal().expect("seal");
        assert_eq!(sealed.content_hash().expect("hash"), sealed.sha256);
        let mut altered = sealed.clone();
        altered.outcome = Outcome::ApprovalRequired;
        assert_ne!(altered.content_hash().expect("hash"), sealed.sha256);
    }

    #[test]
    fn records_are_filed_by_day_time_event_and_outcome() {
        assert_eq!(
            record(Outcome::Duplicate).path(),
            "audit/2026/11/22/081502123-aws-0123-duplicate-r1.json"
        );
    }

    #[test]
    fn a_records_time_and_outcome_are_read_from_its_path() {
        let r = record(Outcome::VerificationFailed);
        assert_eq!(
            name_parts(r.day(), &r.path()),
            Some((r.handled_at, "verification_failed"))
        );
        assert_eq!(name_parts(r.day(), "audit/2026/11/22/notes.json"), None);
    }

    #[tokio::test]
    async fn records_between_reads_only_the_window_and_no_duplicates() {
        let op = crate::store::open("memory://").expect("memory");
        let log = AuditLog::new(op.clone(), "memory://".into());
        let at = |t: &str| -> DateTime<Utc> { format!("2026-11-22T{t}Z").parse().expect("time") };
        for (id, time, outcome) in [
            ("early", "01:00:00.000", Outcome::Remediated),
            ("edge", "06:00:00.000", Outcome::Remediated),
            ("inside", "06:00:00.000500", Outcome::NotifyOnly),
            ("dup", "07:00:00.000", Outcome::Duplicate),
            ("late", "09:00:00.000", Outcome::Remediated),
        ] {
            let mut r = record(outcome);
            r.record_id = id.into();
            r.handled_at = at(time);
            log.write(r).await.expect("write");
        }
        // Not named by this version: read, then kept or not by its content.
        let mut odd = record(Outcome::Remediated).seal().expect("seal");
        odd.record_id = "odd".into();
        odd.handled_at = at("08:00:00.000");
        op.write(
            "audit/2026/11/22/by-hand.json",
            serde_json::to_vec(&odd).expect("json"),
        )
        .await
        .expect("write");
        let day = NaiveDate::from_ymd_opt(2026, 11, 22).expect("day");
        let found = log
            .records_between(day, at("06:00:00.000"), at("08:30:00.000"))
            .await
            .expect("records");
        let ids: Vec<&str> = found.iter().map(|r| r.record_id.as_str()).collect();
        assert_eq!(ids, ["inside", "odd"]);
        assert_eq!(log.records(day).await.expect("all").len(), 6);
    }

    #[tokio::test]
    async fn verify_finds_altered_missing_and_unlisted_records() {
        let op = crate::store::open("memory://").expect("memory");
        let log = AuditLog::new(op.clone(), "memory://".into());
        let mut paths = Vec::new();
        for id in ["a", "b", "c", "d"] {
            let mut r = record(Outcome::Remediated);
            r.record_id = id.into();
            paths.push(log.write(r).await.expect("write").1);
        }
        let day = NaiveDate::from_ymd_opt(2026, 11, 22).expect("day");
        assert!(log.verify_day(day).await.expect("verify").is_clean());

        // a: altered after the fact; b: deleted; d's listing entry removed.
        let text =
            String::from_utf8(op.read(&paths[0]).await.expect("read").to_vec()).expect("utf8");
        op.write(&paths[0], text.replace("remediated", "approval_required"))
            .await
            .expect("alter");
        op.delete(&paths[1]).await.expect("delete");
        op.delete(&paths[3].replacen("audit/", "listing/", 1))
            .await
            .expect("unlist");
        let report = log.verify_day(day).await.expect("verify");
        assert_eq!(report.altered, [paths[0].clone()]);
        assert_eq!(report.missing, [paths[1].clone()]);
        assert_eq!(report.unlisted, [paths[3].clone()]);
        assert_eq!(log.days().await.expect("days"), [day]);
    }

    /// A record an older version sealed, with the channel spelled `sns_critical`, is
    /// checked as written: intact, although this version reads it as `critical_topic`.
    #[tokio::test]
    async fn a_record_in_an_older_spelling_still_verifies() {
        use crate::pipeline::notify::{Channel, DeliveryStatus, NotificationResult};
        let op = crate::store::open("memory://").expect("memory");
        let log = AuditLog::new(op.clone(), "memory://".into());
        let mut r = record(Outcome::Remediated);
        r.notifications = vec![NotificationResult {
            channel: Channel::CriticalTopic,
            status: DeliveryStatus::Sent,
            detail: "m-1".into(),
        }];
        let (_, path) = log.write(r).await.expect("write");
        let today = String::from_utf8(op.read(&path).await.expect("read").to_vec()).expect("utf8");
        assert!(today.contains("\"critical_topic\""), "{today}");
        // What the older version wrote: its spelling, sealed over its own content.
        let mut older: serde_json::Value =
            serde_json::from_str(&today.replace("\"critical_topic\"", "\"sns_critical\""))
                .expect("json");
        let hash = canonical_hash(older.clone()).expect("hash");
        older["sha256"] = serde_json::Value::String(hash.clone());
        op.write(&path, serde_json::to_vec(&older).expect("json"))
            .await
            .expect("rewrite");
        op.write(&path.replacen("audit/", "listing/", 1), hash.clone())
            .await
            .expect("relist");
        let day = NaiveDate::from_ymd_opt(2026, 11, 22).expect("day");
        let report = log.verify_day(day).await.expect("verify");
        assert!(report.is_clean(), "{report:?}");
        let read = log.records(day).await.expect("records");
        assert_eq!(read[0].notifications[0].channel, Channel::CriticalTopic);
        assert_eq!(read[0].sha256, hash);
    }

    #[tokio::test]
    async fn a_record_is_written_only_once() {
        let log = AuditLog::new(
            crate::store::open("memory://").expect("memory"),
            "memory://".into(),
        );
        let (first, path) = log.write(record(Outcome::Remediated)).await.expect("first");
        // The same record again (a retry after a half-done write): nothing to change.
        let (again, again_path) = log
            .write(record(Outcome::Remediated))
            .await
            .expect("the same record again");
        assert_eq!((&again, &again_path), (&first, &path));
        // Another record at the same path is refused, and the first one stays.
        let mut other = record(Outcome::Remediated);
        other.summary = "something else".into();
        let refused = log.write(other).await.expect_err("another record");
        assert!(matches!(refused, AuditError::Exists { .. }), "{refused}");
        let day = NaiveDate::from_ymd_opt(2026, 11, 22).expect("day");
        assert_eq!(log.records(day).await.expect("records"), [first]);
        assert!(log.verify_day(day).await.expect("verify").is_clean());
    }

    #[tokio::test]
    async fn a_write_that_stopped_half_way_is_completed_by_the_retry() {
        let op = crate::store::open("memory://").expect("memory");
        let log = AuditLog::new(op.clone(), "memory://".into());
        let (sealed, path) = log.write(record(Outcome::Remediated)).await.expect("write");
        // As if the record's write had failed after its listing entry was made.
        op.delete(&path).await.expect("delete");
        let day = NaiveDate::from_ymd_opt(2026, 11, 22).expect("day");
        assert_eq!(
            log.verify_day(day).await.expect("verify").missing,
            std::slice::from_ref(&path)
        );
        let (retried, retried_path) = log.write(record(Outcome::Remediated)).await.expect("retry");
        assert_eq!((retried, retried_path), (sealed, path));
        assert!(log.verify_day(day).await.expect("verify").is_clean());
    }
}
