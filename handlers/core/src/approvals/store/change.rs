//! The changes a write applies to the approvals, and the append-only log that records them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::approvals::model::Approval;

/// One change to the approvals, as recorded in the change log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Change {
    /// The first write: the setup wizard's choices. Refused on a store that has an index.
    Init {
        approvals: Vec<Approval>,
    },
    Add {
        approval: Box<Approval>,
    },
    /// Marks the approval revoked; it stays in the index so its history is kept.
    Revoke {
        id: String,
        reason: String,
        at: DateTime<Utc>,
    },
}

/// Why a change does not apply to the current approvals.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeRefused {
    #[error("already initialised ({count} approvals); change it with `approvals add` and `approvals revoke`")]
    AlreadyInitialised { count: usize },
    #[error("approval id {id} appears twice")]
    DuplicateId { id: String },
    #[error("an approval with id {id} already exists; choose another id")]
    Exists { id: String },
    #[error("no approval with id {id}; see `approvals list`")]
    Unknown { id: String },
    #[error("approval {id} was already revoked at {at} by {by}")]
    AlreadyRevoked {
        id: String,
        at: DateTime<Utc>,
        by: String,
    },
}

impl Change {
    pub(super) fn apply(
        &self,
        approvals: &mut Vec<Approval>,
        initialised: bool,
        by: &str,
    ) -> Result<(), ChangeRefused> {
        let exists = |approvals: &[Approval], id: &str| approvals.iter().any(|a| a.id == id);
        match self {
            Change::Init { approvals: new } => {
                if initialised {
                    return Err(ChangeRefused::AlreadyInitialised {
                        count: approvals.len(),
                    });
                }
                for a in new {
                    if exists(approvals, &a.id) {
                        return Err(ChangeRefused::DuplicateId { id: a.id.clone() });
                    }
                    approvals.push(a.clone());
                }
            }
            Change::Add { approval } => {
                if exists(approvals, &approval.id) {
                    return Err(ChangeRefused::Exists {
                        id: approval.id.clone(),
                    });
                }
                approvals.push(approval.as_ref().clone());
            }
            Change::Revoke { id, reason, at } => {
                let approval = approvals
                    .iter_mut()
                    .find(|a| &a.id == id)
                    .ok_or_else(|| ChangeRefused::Unknown { id: id.clone() })?;
                if let Some(revoked_at) = approval.revoked_at {
                    return Err(ChangeRefused::AlreadyRevoked {
                        id: id.clone(),
                        at: revoked_at,
                        by: approval
                            .revoked_by
                            .clone()
                            .unwrap_or_else(|| "unknown".into()),
                    });
                }
                approval.revoked_at = Some(*at);
                approval.revoked_by = Some(by.to_string());
                approval.revoke_reason = Some(reason.clone());
            }
        }
        Ok(())
    }

    /// The approval ids the change is about (for the change log and CLI output).
    pub fn approval_ids(&self) -> Vec<&str> {
        match self {
            Change::Init { approvals } => approvals.iter().map(|a| a.id.as_str()).collect(),
            Change::Add { approval } => vec![approval.id.as_str()],
            Change::Revoke { id, .. } => vec![id.as_str()],
        }
    }
}

/// One entry of the append-only change log (`changes/<sequence>.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeRecord {
    pub sequence: u64,
    pub at: DateTime<Utc>,
    pub by: String,
    pub generation: String,
    pub change: Change,
}
