//! Pre-approvals: a handler may fix something automatically only when the user approved
//! that kind of fix in advance. This module holds the model, the policy files and the
//! decision; the store (a tantivy index on object storage) builds on it.

pub mod decide;
pub mod index;
pub mod model;
pub mod policy;
pub mod store;

pub use decide::{
    decide, decide_among, BlastRadiusUsage, Candidate, Decision, Explanation, Mismatch,
    NothingUsedYet, Outcome,
};
pub use index::{ApprovalIndex, Candidates, IndexError};
pub use model::{
    checked_network, Action, Approval, Conditions, Scope, TagSelector, DEFAULT_MIN_IDLE_HOURS,
};
pub use policy::{PolicyError, RemediationPolicy, WizardChoice, WizardDefaults};
pub use store::{
    ApprovalStore, ApprovalStoreError, ApprovalsReader, Change, ChangeRecord, Manifest,
    Publication, Published, DEFAULT_REFRESH_INTERVAL,
};
