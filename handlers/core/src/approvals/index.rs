//! The approvals as a tantivy index: built in memory from a list of approvals, packed into
//! one object for storage (one GET loads it), and queried per event so that `decide` looks
//! at the few approvals whose scope can cover the event instead of all of them.
//!
//! Each approval is one document: its JSON (stored, the source of truth), its action, and
//! one *scope key* per combination of the values it allows in the dimensions every event
//! has: `action/cloud/account/region/resource type`, with [`ANY`] where the approval does
//! not narrow that dimension. An event matches exactly the approvals holding one of the 16
//! keys made of its own values or `ANY` in each dimension, so finding its candidates reads
//! 16 short posting lists, however many approvals the store holds. Everything else (globs,
//! tags, environments, validity, conditions) is checked by the pure
//! [`decide`](super::decide::decide) on those candidates.
//!
//! Documents are added newest first, so walking a posting list in document order meets the
//! newest approvals first; that is how the explanation lists a few near misses cheaply.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use tantivy::columnar::Column;
use tantivy::directory::RamDirectory;
use tantivy::schema::{Field, IndexRecordOption, Schema, Value, FAST, STORED, STRING};
use tantivy::{DocSet, Index, IndexSettings, Searcher, TantivyDocument, Term, TERMINATED};

use super::decide::{decide_among, BlastRadiusUsage, Decision};
use super::model::{Action, Approval};
use crate::event::UnifiedEvent;

/// The indexed term of a dimension the approval leaves open. Starts with a control
/// character, so no cloud, account, region or resource type can collide with it.
pub const ANY: &str = "\u{1}any";

/// How many approvals outside the event's scope the explanation lists (newest first), so
/// an operator sees "wrong account" without the decision reading the whole index.
pub const NEAR_MISSES_LISTED: usize = 10;

// 50 MB keeps 100 000 approvals in one segment (one query pass, one posting list walk).
const WRITER_MEMORY_BYTES: usize = 50_000_000;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("cannot build the approvals index: {0}")]
    Build(#[source] tantivy::TantivyError),
    #[error("the approvals index is damaged ({what}); restore it with `escher-provision approvals` from the change log or re-run `approvals init` on an empty store")]
    Damaged { what: String },
    #[error("cannot query the approvals index: {0}")]
    Query(#[source] tantivy::TantivyError),
    #[error("approval {id} covers {keys} combinations of cloud, account, region and resource type (at most 4096); split it into narrower approvals")]
    ScopeTooBroad { id: String, keys: usize },
}

fn damaged(what: impl Into<String>) -> IndexError {
    IndexError::Damaged { what: what.into() }
}

#[derive(Clone, Copy)]
struct Fields {
    action: Field,
    scope_key: Field,
    /// Position in [`ApprovalIndex::approvals`] (newest first).
    ord: Field,
    json: Field,
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let fields = Fields {
        action: builder.add_text_field("action", STRING),
        scope_key: builder.add_text_field("scope_key", STRING),
        ord: builder.add_u64_field("ord", FAST),
        json: builder.add_text_field("json", STORED),
    };
    (builder.build(), fields)
}

/// The values of one scope dimension, as `decide` compares them (trimmed, ASCII
/// case-insensitive), or [`ANY`].
fn dimension<'a>(values: impl ExactSizeIterator<Item = &'a str>) -> Vec<String> {
    if values.len() == 0 {
        return vec![ANY.to_string()];
    }
    values.map(|v| v.trim().to_ascii_lowercase()).collect()
}

/// Separates the parts of a scope key; a control character no value contains.
const KEY_SEPARATOR: char = '\u{1f}';

/// An approval with more scope keys than this is refused: split it into several approvals.
pub const MAX_SCOPE_KEYS: usize = 4096;

fn scope_key(action: Action, cloud: &str, account: &str, region: &str, kind: &str) -> String {
    let mut key = String::with_capacity(
        action.as_str().len() + cloud.len() + account.len() + region.len() + kind.len() + 4,
    );
    for (i, part) in [action.as_str(), cloud, account, region, kind]
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            key.push(KEY_SEPARATOR);
        }
        key.push_str(part);
    }
    key
}

/// Every scope key of an approval: the product of its dimensions' values.
fn approval_keys(approval: &Approval) -> Result<Vec<String>, IndexError> {
    let scope = &approval.scope;
    let clouds = dimension(scope.clouds.iter().map(|c| c.as_str()));
    let accounts = dimension(scope.account_ids.iter().map(String::as_str));
    let regions = dimension(scope.regions.iter().map(String::as_str));
    let kinds = dimension(scope.resource_types.iter().map(String::as_str));
    let count = clouds.len() * accounts.len() * regions.len() * kinds.len();
    if count > MAX_SCOPE_KEYS {
        return Err(IndexError::ScopeTooBroad {
            id: approval.id.clone(),
            keys: count,
        });
    }
    let mut keys = Vec::with_capacity(count);
    for cloud in &clouds {
        for account in &accounts {
            for region in &regions {
                for kind in &kinds {
                    keys.push(scope_key(approval.action, cloud, account, region, kind));
                }
            }
        }
    }
    Ok(keys)
}

/// The 16 keys an event can match: each dimension either the event's value or `ANY`.
fn event_keys(event: &UnifiedEvent, action: Action) -> Vec<String> {
    let account = event.account_id.trim().to_ascii_lowercase();
    let region = event.region.trim().to_ascii_lowercase();
    let kind = event.resource.kind.trim().to_ascii_lowercase();
    let mut keys = Vec::with_capacity(16);
    for cloud in [event.cloud_provider.as_str(), ANY] {
        for account in [account.as_str(), ANY] {
            for region in [region.as_str(), ANY] {
                for kind in [kind.as_str(), ANY] {
                    keys.push(scope_key(action, cloud, account, region, kind));
                }
            }
        }
    }
    keys
}

/// An immutable, queryable set of approvals.
pub struct ApprovalIndex {
    /// The raw files (with tantivy's footers), which is what gets packed.
    directory: RamDirectory,
    index: Index,
    /// The index never changes once built, so one searcher serves every query.
    searcher: Searcher,
    fields: Fields,
    /// Newest first; a document's `ord` is its position here.
    approvals: Vec<Approval>,
    by_id: HashMap<String, usize>,
    /// `ord` column per segment, indexed by segment ordinal.
    ords: Vec<Column<u64>>,
}

impl std::fmt::Debug for ApprovalIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApprovalIndex")
            .field("approvals", &self.approvals.len())
            .finish()
    }
}

/// The approvals the index found for one event and action.
#[derive(Debug)]
pub struct Candidates<'a> {
    /// Every approval for the action whose indexed scope covers the event.
    pub in_scope: Vec<&'a Approval>,
    /// A few newest approvals for the action that do not cover the event's cloud, account,
    /// region or resource type.
    pub near_misses: Vec<&'a Approval>,
    /// Approvals for the action in neither list.
    pub not_listed: usize,
}

impl ApprovalIndex {
    /// Builds a fresh index (one segment) holding `approvals`.
    pub fn build(mut approvals: Vec<Approval>) -> Result<Self, IndexError> {
        approvals.sort_by(|a, b| b.approved_at.cmp(&a.approved_at).then(a.id.cmp(&b.id)));
        let (schema, fields) = schema();
        let directory = RamDirectory::create();
        let index = Index::create(directory.clone(), schema, IndexSettings::default())
            .map_err(IndexError::Build)?;
        let mut writer = index
            .writer_with_num_threads::<TantivyDocument>(1, WRITER_MEMORY_BYTES)
            .map_err(IndexError::Build)?;
        for (ord, approval) in approvals.iter().enumerate() {
            let json = serde_json::to_string(approval).map_err(|e| {
                damaged(format!(
                    "approval {} cannot be serialized: {e}",
                    approval.id
                ))
            })?;
            let mut doc = TantivyDocument::default();
            doc.add_text(fields.action, approval.action.as_str());
            for key in approval_keys(approval)? {
                doc.add_text(fields.scope_key, &key);
            }
            doc.add_u64(fields.ord, ord as u64);
            doc.add_text(fields.json, &json);
            writer.add_document(doc).map_err(IndexError::Build)?;
        }
        writer.commit().map_err(IndexError::Build)?;
        writer.wait_merging_threads().map_err(IndexError::Build)?;
        Self::open(directory, index, fields, Some(approvals))
    }

    /// Opens an index; `approvals` are read back from the stored documents when not given.
    fn open(
        directory: RamDirectory,
        index: Index,
        fields: Fields,
        approvals: Option<Vec<Approval>>,
    ) -> Result<Self, IndexError> {
        let searcher = index.reader().map_err(IndexError::Query)?.searcher();
        let mut ords = Vec::with_capacity(searcher.segment_readers().len());
        for segment in searcher.segment_readers() {
            let column = segment
                .fast_fields()
                .u64("ord")
                .map_err(|e| damaged(format!("ord column: {e}")))?;
            ords.push(column);
        }
        let approvals = match approvals {
            Some(approvals) => approvals,
            None => read_stored(&searcher, fields, &ords)?,
        };
        let by_id = approvals
            .iter()
            .enumerate()
            .map(|(ord, a)| (a.id.clone(), ord))
            .collect();
        Ok(ApprovalIndex {
            directory,
            index,
            searcher,
            fields,
            approvals,
            by_id,
            ords,
        })
    }

    /// All approvals, newest first (revoked and expired ones included: history is kept).
    pub fn approvals(&self) -> &[Approval] {
        &self.approvals
    }

    pub fn len(&self) -> usize {
        self.approvals.len()
    }

    pub fn is_empty(&self) -> bool {
        self.approvals.is_empty()
    }

    pub fn get(&self, id: &str) -> Option<&Approval> {
        self.by_id.get(id).map(|&ord| &self.approvals[ord])
    }

    /// The approvals for `action` that may cover `event`, and a few that do not.
    pub fn candidates(
        &self,
        event: &UnifiedEvent,
        action: Action,
    ) -> Result<Candidates<'_>, IndexError> {
        let f = self.fields;
        let action_term = Term::from_field_text(f.action, action.as_str());
        let keys: Vec<Term> = event_keys(event, action)
            .iter()
            .map(|key| Term::from_field_text(f.scope_key, key))
            .collect();
        let searcher = &self.searcher;
        // Read the 16 posting lists directly: no scoring, no query planning, just the
        // documents that hold one of the event's keys.
        let mut in_scope_ords: Vec<u64> = Vec::new();
        for (segment_ord, segment) in searcher.segment_readers().iter().enumerate() {
            let inverted = segment
                .inverted_index(f.scope_key)
                .map_err(IndexError::Query)?;
            let column = &self.ords[segment_ord];
            for key in &keys {
                let Some(mut postings) = inverted
                    .read_postings(key, IndexRecordOption::Basic)
                    .map_err(|e| IndexError::Query(e.into()))?
                else {
                    continue;
                };
                let mut doc = postings.doc();
                while doc != TERMINATED {
                    if let Some(ord) = column.first(doc) {
                        in_scope_ords.push(ord);
                    }
                    doc = postings.advance();
                }
            }
        }
        in_scope_ords.sort_unstable();
        in_scope_ords.dedup();

        // Near misses: the first documents of the action's posting lists (newest first)
        // that are not in scope.
        let mut near: Vec<u64> = Vec::new();
        let mut for_action = 0usize;
        for (segment_ord, segment) in searcher.segment_readers().iter().enumerate() {
            let inverted = segment
                .inverted_index(f.action)
                .map_err(IndexError::Query)?;
            for_action += inverted
                .doc_freq(&action_term)
                .map_err(|e| IndexError::Query(e.into()))? as usize;
            let Some(mut postings) = inverted
                .read_postings(&action_term, IndexRecordOption::Basic)
                .map_err(|e| IndexError::Query(e.into()))?
            else {
                continue;
            };
            let column = &self.ords[segment_ord];
            let mut taken = 0;
            let mut doc = postings.doc();
            while doc != TERMINATED && taken < NEAR_MISSES_LISTED {
                if let Some(ord) = column.first(doc) {
                    if in_scope_ords.binary_search(&ord).is_err() {
                        near.push(ord);
                        taken += 1;
                    }
                }
                doc = postings.advance();
            }
        }
        near.sort_unstable();
        near.truncate(NEAR_MISSES_LISTED);
        let lookup = |ords: &[u64]| -> Result<Vec<&Approval>, IndexError> {
            ords.iter()
                .map(|&ord| {
                    self.approvals.get(ord as usize).ok_or_else(|| {
                        damaged(format!(
                            "document points at approval #{ord} of {}",
                            self.approvals.len()
                        ))
                    })
                })
                .collect()
        };
        let in_scope = lookup(&in_scope_ords)?;
        let near_misses = lookup(&near)?;
        Ok(Candidates {
            not_listed: for_action.saturating_sub(in_scope.len() + near_misses.len()),
            in_scope,
            near_misses,
        })
    }

    /// The decision for `event` and `action`, explained.
    pub fn decide(
        &self,
        event: &UnifiedEvent,
        action: Action,
        now: DateTime<Utc>,
        usage: &dyn BlastRadiusUsage,
    ) -> Result<Decision, IndexError> {
        let candidates = self.candidates(event, action)?;
        Ok(decide_among(
            event,
            action,
            candidates
                .in_scope
                .into_iter()
                .chain(candidates.near_misses),
            candidates.not_listed,
            now,
            usage,
        ))
    }

    /// The index files in one tar archive: what a generation object holds.
    pub fn pack(&self) -> Result<Vec<u8>, IndexError> {
        crate::tantivy_pack::pack(&self.index, &self.directory).map_err(damaged)
    }

    /// Opens a packed index (see [`ApprovalIndex::pack`]).
    pub fn unpack(pack: &[u8]) -> Result<Self, IndexError> {
        let (directory, index) = crate::tantivy_pack::unpack(pack).map_err(damaged)?;
        let (expected, fields) = schema();
        if index.schema() != expected {
            return Err(damaged("its schema is not the one this version writes"));
        }
        Self::open(directory, index, fields, None)
    }
}

fn read_stored(
    searcher: &tantivy::Searcher,
    fields: Fields,
    ords: &[Column<u64>],
) -> Result<Vec<Approval>, IndexError> {
    let total = searcher.num_docs() as usize;
    let mut slots: Vec<Option<Approval>> = vec![None; total];
    for (segment_ord, segment) in searcher.segment_readers().iter().enumerate() {
        let store = segment
            .get_store_reader(64)
            .map_err(|e| damaged(format!("document store: {e}")))?;
        for doc in 0..segment.max_doc() {
            let stored: TantivyDocument = store
                .get(doc)
                .map_err(|e| damaged(format!("document {doc}: {e}")))?;
            let json = stored
                .get_first(fields.json)
                .and_then(|v| v.as_str())
                .ok_or_else(|| damaged(format!("document {doc} has no approval JSON")))?;
            let approval: Approval =
                serde_json::from_str(json).map_err(|e| damaged(format!("document {doc}: {e}")))?;
            let ord = ords[segment_ord]
                .first(doc)
                .ok_or_else(|| damaged(format!("document {doc} has no ord")))?
                as usize;
            let slot = slots
                .get_mut(ord)
                .ok_or_else(|| damaged(format!("document {doc} has ord {ord} of {total}")))?;
            *slot = Some(approval);
        }
    }
    slots
        .into_iter()
        .enumerate()
        .map(|(ord, a)| a.ok_or_else(|| damaged(format!("approval #{ord} is missing"))))
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;
    use crate::approvals::decide::{decide, NothingUsedYet};
    use crate::approvals::model::{Conditions, Scope};
    use crate::event::CloudProvider;

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, day, 8, 0, 0)
            .single()
            .expect("valid time")
    }

    fn event(cloud: CloudProvider, account: &str, region: &str, kind: &str) -> UnifiedEvent {
        serde_json::from_value(serde_json::json!({
            "event_id": "aws-00112233445566778899aabbccddeeff",
            "event_type": "bucket_public", "severity": "HIGH", "cloud_provider": cloud,
            "account_id": account, "region": region,
            "resource": {"type": kind, "id": "arn:aws:s3:::assets", "name": "assets",
                "tags": {"environment": "dev"}, "metadata": {}},
            "context": {"environment": "dev"}, "timestamp": "2026-11-02T08:00:00Z",
            "source": "aws.cloudtrail", "raw_event": {}, "schema_version": "1"
        }))
        .expect("event")
    }

    fn approval(id: usize, action: Action, scope: Scope, day: u32, revoked: bool) -> Approval {
        Approval {
            id: format!("apr-{id:03}"),
            action,
            scope,
            conditions: Conditions::default(),
            approved_by: "ana".into(),
            approved_at: at(day),
            expires_at: None,
            reason: "test".into(),
            revoked_at: revoked.then(|| at(day + 1)),
            revoked_by: None,
            revoke_reason: None,
        }
    }

    fn scoped(accounts: &[&str]) -> Scope {
        Scope {
            account_ids: accounts.iter().map(|a| a.to_string()).collect(),
            ..Scope::default()
        }
    }

    #[test]
    fn a_packed_index_opens_with_the_same_approvals_and_decisions() {
        let approvals = vec![
            approval(
                1,
                Action::MakeBucketPrivate,
                scoped(&["111111111111"]),
                1,
                false,
            ),
            approval(2, Action::MakeBucketPrivate, scoped(&[]), 2, false),
            approval(3, Action::EncryptVolume, scoped(&[]), 3, true),
        ];
        let built = ApprovalIndex::build(approvals.clone()).expect("build");
        let reopened = ApprovalIndex::unpack(&built.pack().expect("pack")).expect("unpack");
        assert_eq!(reopened.len(), 3);
        // Newest first, whatever the input order.
        let ids: Vec<&str> = reopened.approvals().iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, ["apr-003", "apr-002", "apr-001"]);
        assert_eq!(reopened.get("apr-001"), approvals.first());
        let e = event(CloudProvider::Aws, "111111111111", "eu-west-1", "s3_bucket");
        let d1 = built.decide(&e, Action::MakeBucketPrivate, at(9), &NothingUsedYet);
        let d2 = reopened.decide(&e, Action::MakeBucketPrivate, at(9), &NothingUsedYet);
        assert_eq!(d1.expect("decide"), d2.expect("decide"));
    }

    #[test]
    fn approvals_for_other_accounts_are_near_misses_and_the_rest_are_counted() {
        let mut approvals: Vec<Approval> = (0..30)
            .map(|i| {
                approval(
                    i,
                    Action::MakeBucketPrivate,
                    scoped(&["999999999999"]),
                    1 + (i % 20) as u32,
                    false,
                )
            })
            .collect();
        approvals.push(approval(
            100,
            Action::MakeBucketPrivate,
            scoped(&["111111111111"]),
            1,
            false,
        ));
        approvals.push(approval(
            101,
            Action::StopIdleInstance,
            scoped(&[]),
            1,
            false,
        ));
        let index = ApprovalIndex::build(approvals).expect("build");
        let e = event(CloudProvider::Aws, "111111111111", "eu-west-1", "s3_bucket");
        let c = index
            .candidates(&e, Action::MakeBucketPrivate)
            .expect("candidates");
        assert_eq!(
            c.in_scope.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
            ["apr-100"]
        );
        assert_eq!(c.near_misses.len(), NEAR_MISSES_LISTED);
        // The newest near misses are listed.
        assert!(c.near_misses.iter().all(|a| a.approved_at >= at(11)));
        assert_eq!(c.not_listed, 30 - NEAR_MISSES_LISTED);
        let decision = index
            .decide(&e, Action::MakeBucketPrivate, at(25), &NothingUsedYet)
            .expect("decide");
        assert!(decision.is_approved());
        assert_eq!(decision.explanation().not_listed, 20);
        assert!(decision
            .explanation()
            .to_string()
            .contains("20 more approval(s)"));
    }

    #[test]
    fn account_and_region_terms_match_case_insensitively_like_decide() {
        let scope = Scope {
            regions: vec![" EU-West-1 ".into()],
            ..Scope::default()
        };
        let index = ApprovalIndex::build(vec![approval(
            1,
            Action::MakeBucketPrivate,
            scope,
            1,
            false,
        )])
        .expect("build");
        let e = event(CloudProvider::Aws, "111111111111", "eu-west-1", "s3_bucket");
        let c = index
            .candidates(&e, Action::MakeBucketPrivate)
            .expect("candidates");
        assert_eq!(c.in_scope.len(), 1);
    }

    fn arb_scope() -> impl Strategy<Value = Scope> {
        let pick = |pool: &'static [&'static str]| {
            proptest::sample::subsequence(pool, 0..=2)
                .prop_map(|v| v.into_iter().map(String::from).collect::<Vec<_>>())
        };
        (
            proptest::sample::subsequence(&[CloudProvider::Aws, CloudProvider::Azure][..], 0..=1),
            pick(&["111111111111", "222222222222", "333333333333"]),
            pick(&["eu-west-1", "us-east-1"]),
            pick(&["s3_bucket", "ec2_instance"]),
        )
            .prop_map(|(clouds, account_ids, regions, resource_types)| Scope {
                clouds,
                account_ids,
                regions,
                resource_types,
                ..Scope::default()
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// The index only narrows what `decide` reads: it must reach the same decision as
        /// the pure function over every approval.
        #[test]
        fn index_decisions_equal_the_pure_decision_over_all_approvals(
            specs in proptest::collection::vec((arb_scope(), 1u32..20, any::<bool>(), any::<bool>()), 0..40),
            account in proptest::sample::select(&["111111111111", "222222222222"][..]),
            region in proptest::sample::select(&["eu-west-1", "us-east-1"][..]),
            kind in proptest::sample::select(&["s3_bucket", "ec2_instance"][..]),
        ) {
            let approvals: Vec<Approval> = specs
                .into_iter()
                .enumerate()
                .map(|(i, (scope, day, revoked, other_action))| {
                    let action = if other_action { Action::EncryptVolume } else { Action::MakeBucketPrivate };
                    approval(i, action, scope, day, revoked)
                })
                .collect();
            let index = ApprovalIndex::build(approvals.clone()).expect("build");
            let e = event(CloudProvider::Aws, account, region, kind);
            let pure = decide(&e, Action::MakeBucketPrivate, &approvals, at(25), &NothingUsedYet);
            let indexed = index.decide(&e, Action::MakeBucketPrivate, at(25), &NothingUsedYet).expect("decide");
            let chosen = |d: &Decision| match d {
                Decision::Approved { approval_id, .. } => Some(approval_id.clone()),
                Decision::NotApproved { .. } => None,
            };
            prop_assert_eq!(chosen(&indexed), chosen(&pure));
            let for_action = approvals.iter().filter(|a| a.action == Action::MakeBucketPrivate).count();
            let ex = indexed.explanation();
            prop_assert_eq!(ex.candidates.len() + ex.not_listed, for_action);
        }
    }
}

#[cfg(test)]
mod scope_key_tests {
    use super::*;
    use crate::approvals::model::{Conditions, Scope};

    #[test]
    fn an_approval_too_broad_to_index_is_refused_with_advice() {
        let many = |prefix: &str| (0..20).map(|i| format!("{prefix}{i}")).collect::<Vec<_>>();
        let approval = Approval {
            id: "apr-wide".into(),
            action: Action::EncryptVolume,
            scope: Scope {
                account_ids: many("acct-"),
                regions: many("region-"),
                resource_types: many("type-"),
                ..Scope::default()
            },
            conditions: Conditions::default(),
            approved_by: "ana".into(),
            approved_at: chrono::Utc::now(),
            expires_at: None,
            reason: "too wide".into(),
            revoked_at: None,
            revoked_by: None,
            revoke_reason: None,
        };
        let error = ApprovalIndex::build(vec![approval]).expect_err("8000 keys");
        assert!(
            matches!(error, IndexError::ScopeTooBroad { keys: 8000, .. }),
            "{error}"
        );
        assert!(error.to_string().contains("split it"));
    }
}
