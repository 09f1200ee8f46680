//! The incidents as a tantivy index: one document per incident, with its resource,
//! principal and event type as exact terms (the handler's look-ups read a posting list
//! each), its time as a fast field (windows and newest-first order), the words people
//! search for in one text field, and the incident itself stored as JSON.

use std::ops::Bound;

use chrono::{DateTime, Utc};
use tantivy::collector::{Count, TopDocs};
use tantivy::directory::RamDirectory;
use tantivy::query::{BooleanQuery, Occur, Query, QueryParser, RangeQuery, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, Value, FAST, INDEXED, STORED, STRING, TEXT,
};
use tantivy::{Index, IndexSettings, Order, Searcher, TantivyDocument, Term};

use super::Incident;

// tantivy's smallest writer budget; the memory grows a few hundred incidents at a time.
const WRITER_MEMORY_BYTES: usize = 15_000_000;

#[derive(Debug, thiserror::Error)]
pub enum IncidentIndexError {
    #[error("cannot write the incident index: {0}")]
    Write(#[source] tantivy::TantivyError),
    #[error("the incident index is damaged ({0}); rebuild it from the audit trail with `escher-provision incidents rebuild`")]
    Damaged(String),
    #[error("cannot search the incident index: {0}")]
    Query(#[source] tantivy::TantivyError),
    #[error("cannot read the search {query:?}: {reason}; search words (bucket names, principals, event types), optionally field:value, e.g. event_type:bucket_public")]
    BadQuery { query: String, reason: String },
}

#[derive(Clone, Copy)]
struct Fields {
    event_id: Field,
    resource: Field,
    principal: Field,
    event_type: Field,
    outcome: Field,
    at: Field,
    text: Field,
    json: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let fields = Fields {
        event_id: b.add_text_field("event_id", STRING),
        resource: b.add_text_field("resource", STRING),
        principal: b.add_text_field("principal", STRING),
        event_type: b.add_text_field("event_type", STRING),
        outcome: b.add_text_field("outcome", STRING),
        at: b.add_i64_field("at", FAST | INDEXED),
        // With positions: a bucket name like `marketing-assets` is searched as a phrase.
        text: b.add_text_field("text", TEXT),
        json: b.add_text_field("json", STORED),
    };
    (b.build(), fields)
}

/// What the handler asks about one event.
#[derive(Debug, Clone)]
pub struct Lookup<'a> {
    pub resource_key: &'a str,
    pub event_type: &'a str,
    pub principal: Option<&'a str>,
    pub since: DateTime<Utc>,
}

/// What the index answers to a [`Lookup`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Found {
    /// Same resource and event type, in the window.
    pub here: u64,
    /// The newest of those.
    pub latest_here: Option<Incident>,
    /// Same principal, other resources, in the window.
    pub principal_elsewhere: u64,
}

/// An incident index held in memory.
pub struct IncidentIndex {
    directory: RamDirectory,
    index: Index,
    searcher: Searcher,
    fields: Fields,
}

impl std::fmt::Debug for IncidentIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncidentIndex")
            .field("incidents", &self.len())
            .finish()
    }
}

fn damaged(what: impl Into<String>) -> IncidentIndexError {
    IncidentIndexError::Damaged(what.into())
}

impl IncidentIndex {
    pub fn build(incidents: &[Incident]) -> Result<Self, IncidentIndexError> {
        let (schema, fields) = schema();
        let directory = RamDirectory::create();
        let index = Index::create(directory.clone(), schema, IndexSettings::default())
            .map_err(IncidentIndexError::Write)?;
        // An empty index needs no writer: a writer starts its indexing and merge threads
        // and reserves its arena, which cost a function with no snapshot yet (most of
        // them, most of the time) a third of its memory and milliseconds on every start.
        if !incidents.is_empty() {
            Self::add_to(&index, fields, incidents)?;
        }
        Self::open(directory, index, fields)
    }

    /// A new index holding this one's incidents and `more` (this one is unchanged: readers
    /// may still use it).
    pub fn with_added(&self, more: &[Incident]) -> Result<Self, IncidentIndexError> {
        let (directory, index) = crate::tantivy_pack::unpack(&self.pack()?).map_err(damaged)?;
        Self::add_to(&index, self.fields, more)?;
        Self::open(directory, index, self.fields)
    }

    fn add_to(index: &Index, f: Fields, incidents: &[Incident]) -> Result<(), IncidentIndexError> {
        let mut writer = index
            .writer_with_num_threads::<TantivyDocument>(1, WRITER_MEMORY_BYTES)
            .map_err(IncidentIndexError::Write)?;
        for incident in incidents {
            let json = serde_json::to_string(incident)
                .map_err(|e| damaged(format!("incident {}: {e}", incident.event_id)))?;
            let mut doc = TantivyDocument::default();
            doc.add_text(f.event_id, &incident.event_id);
            doc.add_text(f.resource, incident.resource_key());
            if let Some(p) = &incident.principal {
                doc.add_text(f.principal, p.to_ascii_lowercase());
            }
            doc.add_text(f.event_type, incident.event_type.as_str());
            doc.add_text(f.outcome, incident.outcome.as_str());
            doc.add_i64(f.at, incident.handled_at.timestamp_millis());
            for words in [
                incident.resource_name.as_str(),
                incident.resource_id.as_str(),
                incident.resource_type.as_str(),
                incident.principal.as_deref().unwrap_or_default(),
                incident.event_type.as_str(),
                incident.outcome.as_str(),
                incident.summary.as_str(),
                incident.account_id.as_str(),
                incident.region.as_str(),
                incident.cloud.as_str(),
            ] {
                doc.add_text(f.text, words);
            }
            doc.add_text(f.json, &json);
            writer
                .add_document(doc)
                .map_err(IncidentIndexError::Write)?;
        }
        writer.commit().map_err(IncidentIndexError::Write)?;
        // Merges run on the writer's threads; the packed index must not miss one.
        writer
            .wait_merging_threads()
            .map_err(IncidentIndexError::Write)
    }

    fn open(
        directory: RamDirectory,
        index: Index,
        fields: Fields,
    ) -> Result<Self, IncidentIndexError> {
        let searcher = index
            .reader()
            .map_err(IncidentIndexError::Query)?
            .searcher();
        Ok(IncidentIndex {
            directory,
            index,
            searcher,
            fields,
        })
    }

    /// The index files in one tar archive: what a snapshot object holds.
    pub fn pack(&self) -> Result<Vec<u8>, IncidentIndexError> {
        crate::tantivy_pack::pack(&self.index, &self.directory).map_err(damaged)
    }

    pub fn unpack(pack: &[u8]) -> Result<Self, IncidentIndexError> {
        let (directory, index) = crate::tantivy_pack::unpack(pack).map_err(damaged)?;
        let (expected, fields) = schema();
        if index.schema() != expected {
            return Err(damaged("its schema is not the one this version writes"));
        }
        Self::open(directory, index, fields)
    }

    pub fn len(&self) -> u64 {
        self.searcher.num_docs()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn contains(&self, event_id: &str) -> Result<bool, IncidentIndexError> {
        let term = Term::from_field_text(self.fields.event_id, event_id);
        Ok(self
            .searcher
            .doc_freq(&term)
            .map_err(IncidentIndexError::Query)?
            > 0)
    }

    fn term(&self, field: Field, value: &str) -> Box<dyn Query> {
        Box::new(TermQuery::new(
            Term::from_field_text(field, value),
            IndexRecordOption::Basic,
        ))
    }

    fn since(&self, since: DateTime<Utc>) -> Box<dyn Query> {
        Box::new(RangeQuery::new(
            Bound::Included(Term::from_field_i64(
                self.fields.at,
                since.timestamp_millis(),
            )),
            Bound::Unbounded,
        ))
    }

    /// The handler's question: how often here, the latest here, and the principal elsewhere.
    pub fn lookup(&self, q: &Lookup<'_>) -> Result<Found, IncidentIndexError> {
        let f = self.fields;
        let here = BooleanQuery::new(vec![
            (Occur::Must, self.term(f.resource, q.resource_key)),
            (Occur::Must, self.term(f.event_type, q.event_type)),
            (Occur::Must, self.since(q.since)),
        ]);
        let (count, latest) = self
            .searcher
            .search(
                &here,
                &(
                    Count,
                    TopDocs::with_limit(1).order_by_fast_field::<i64>("at", Order::Desc),
                ),
            )
            .map_err(IncidentIndexError::Query)?;
        let latest_here = match latest.first() {
            Some((_, address)) => Some(self.stored(*address)?),
            None => None,
        };
        let principal_elsewhere = match q.principal {
            Some(p) => {
                let elsewhere = BooleanQuery::new(vec![
                    (Occur::Must, self.term(f.principal, &p.to_ascii_lowercase())),
                    (Occur::MustNot, self.term(f.resource, q.resource_key)),
                    (Occur::Must, self.since(q.since)),
                ]);
                self.searcher
                    .search(&elsewhere, &Count)
                    .map_err(IncidentIndexError::Query)? as u64
            }
            None => 0,
        };
        Ok(Found {
            here: count as u64,
            latest_here,
            principal_elsewhere,
        })
    }

    /// People's search: words over names, ids, principals, event types, outcomes and
    /// summaries (or `field:value` on event_type, outcome, principal), newest first.
    pub fn search(
        &self,
        query: &str,
        since: Option<DateTime<Utc>>,
        limit: usize,
    ) -> Result<Vec<Incident>, IncidentIndexError> {
        let f = self.fields;
        let mut parser = QueryParser::for_index(&self.index, vec![f.text]);
        parser.set_conjunction_by_default();
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        if !query.trim().is_empty() {
            let parsed = parser
                .parse_query(query)
                .map_err(|e| IncidentIndexError::BadQuery {
                    query: query.to_string(),
                    reason: e.to_string(),
                })?;
            clauses.push((Occur::Must, parsed));
        }
        clauses.push((
            Occur::Must,
            self.since(since.unwrap_or(DateTime::<Utc>::MIN_UTC)),
        ));
        let top = self
            .searcher
            .search(
                &BooleanQuery::new(clauses),
                &TopDocs::with_limit(limit.max(1)).order_by_fast_field::<i64>("at", Order::Desc),
            )
            .map_err(IncidentIndexError::Query)?;
        top.into_iter()
            .map(|(_, address)| self.stored(address))
            .collect()
    }

    /// Every incident, oldest first (rebuild checks, exports).
    pub fn all(&self) -> Result<Vec<Incident>, IncidentIndexError> {
        let mut out = Vec::with_capacity(self.len() as usize);
        for (segment_ord, segment) in self.searcher.segment_readers().iter().enumerate() {
            for doc in 0..segment.max_doc() {
                if segment.is_deleted(doc) {
                    continue;
                }
                out.push(self.stored(tantivy::DocAddress::new(segment_ord as u32, doc))?);
            }
        }
        out.sort_by(|a, b| {
            a.handled_at
                .cmp(&b.handled_at)
                .then(a.event_id.cmp(&b.event_id))
        });
        Ok(out)
    }

    fn stored(&self, address: tantivy::DocAddress) -> Result<Incident, IncidentIndexError> {
        let doc: TantivyDocument = self
            .searcher
            .doc(address)
            .map_err(|e| damaged(format!("document {address:?}: {e}")))?;
        let json = doc
            .get_first(self.fields.json)
            .and_then(|v| v.as_str())
            .ok_or_else(|| damaged(format!("document {address:?} has no incident")))?;
        serde_json::from_str(json).map_err(|e| damaged(format!("document {address:?}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incidents::tests::incident;
    use crate::incidents::window_start;

    fn lookup<'a>(key: &'a str, principal: Option<&'a str>, now: &str) -> Lookup<'a> {
        Lookup {
            resource_key: key,
            event_type: "bucket_public",
            principal,
            since: window_start(now.parse().expect("time")),
        }
    }

    #[test]
    fn looks_up_by_resource_and_principal_within_the_window() {
        let ops = "arn:aws:iam::123456789012:user/ops";
        let incidents = vec![
            incident("a1", "logs", ops, "2026-09-01T00:00:00Z"), // outside 30 days
            incident("a2", "logs", ops, "2026-11-10T00:00:00Z"),
            incident("a3", "logs", "", "2026-11-20T00:00:00Z"),
            incident("a4", "media", ops, "2026-11-21T00:00:00Z"),
            incident(
                "a5",
                "web",
                "arn:aws:iam::123456789012:user/OPS",
                "2026-11-21T01:00:00Z",
            ),
        ];
        let index = IncidentIndex::build(&incidents).expect("build");
        let key = incidents[1].resource_key();
        let found = index
            .lookup(&lookup(&key, Some(ops), "2026-11-22T00:00:00Z"))
            .expect("lookup");
        assert_eq!(found.here, 2);
        assert_eq!(found.latest_here.map(|i| i.event_id), Some("a3".into()));
        assert_eq!(
            found.principal_elsewhere, 2,
            "principals compare case-insensitively"
        );

        let unknown = index
            .lookup(&lookup("aws\u{1f}x\u{1f}y", None, "2026-11-22T00:00:00Z"))
            .expect("lookup");
        assert_eq!(unknown, Found::default());
    }

    #[test]
    fn an_empty_memory_answers_nothing_and_grows_like_any_other() {
        let empty = IncidentIndex::build(&[]).expect("build");
        assert!(empty.is_empty());
        assert_eq!(
            empty
                .lookup(&lookup("aws\u{1f}x\u{1f}y", None, "2026-11-22T00:00:00Z"))
                .expect("lookup"),
            Found::default()
        );
        assert!(!empty.contains("a1").expect("contains"));
        let unpacked = IncidentIndex::unpack(&empty.pack().expect("pack")).expect("unpack");
        assert!(unpacked.is_empty());
        let grown = unpacked
            .with_added(&[incident("a1", "logs", "", "2026-11-20T00:00:00Z")])
            .expect("add");
        assert_eq!(grown.len(), 1);
        assert!(grown.contains("a1").expect("contains"));
    }

    #[test]
    fn adding_keeps_the_old_index_and_a_packed_index_answers_the_same() {
        let first = IncidentIndex::build(&[incident("a1", "logs", "", "2026-11-20T00:00:00Z")])
            .expect("build");
        let second = first
            .with_added(&[incident("a2", "logs", "", "2026-11-21T00:00:00Z")])
            .expect("add");
        assert_eq!((first.len(), second.len()), (1, 2));
        let unpacked = IncidentIndex::unpack(&second.pack().expect("pack")).expect("unpack");
        assert_eq!(unpacked.all().expect("all"), second.all().expect("all"));
        assert!(unpacked.contains("a2").expect("contains"));
        assert!(!first.contains("a2").expect("contains"));
    }

    #[test]
    fn people_search_words_and_fields_newest_first() {
        let ops = "arn:aws:iam::123456789012:user/ops";
        let mut failed = incident("a3", "media", ops, "2026-11-21T00:00:00Z");
        failed.outcome = crate::pipeline::audit::Outcome::Failed;
        let index = IncidentIndex::build(&[
            incident("a1", "logs", ops, "2026-11-10T00:00:00Z"),
            incident("a2", "logs", "", "2026-11-20T00:00:00Z"),
            failed,
        ])
        .expect("build");
        let ids = |q: &str, since: Option<&str>| -> Vec<String> {
            index
                .search(q, since.map(|s| s.parse().expect("time")), 10)
                .expect("search")
                .into_iter()
                .map(|i| i.event_id)
                .collect()
        };
        assert_eq!(ids("logs", None), ["a2", "a1"]);
        assert_eq!(
            ids("\"arn:aws:s3:::media\"", None),
            ["a3"],
            "names with separators"
        );
        assert_eq!(ids("ops", None), ["a3", "a1"]);
        assert_eq!(ids("failed", None), ["a3"]);
        assert_eq!(ids("logs", Some("2026-11-15T00:00:00Z")), ["a2"]);
        assert_eq!(ids("", None), ["a3", "a2", "a1"]);
        assert!(matches!(
            index.search("logs AND (", None, 10),
            Err(IncidentIndexError::BadQuery { .. })
        ));
    }
}
