//! `escher-core`: the cloud-neutral heart of Escher Extend.
//!
//! Every alert that reaches one of our functions, from any cloud, is turned into one
//! [`UnifiedEvent`] by [`normalize`]. Later stages (approvals, remediation, audit, notify)
//! only ever see that type. This crate does no I/O and links no cloud SDK, so the same code
//! runs inside a Lambda, an Azure Function, a Cloud Run service and the laptop CLI.

pub mod admin_ports;
pub mod approvals;
pub mod capacity;
pub mod cloudevent;
pub mod conformance;
pub mod context;
pub mod event;
pub mod fixes;
pub mod idleness;
pub mod ids;
pub mod incidents;
pub mod normalize;
pub mod pipeline;
pub mod remediate;
pub mod resource_types;
pub mod scan;
pub mod severity;
pub mod store;
pub mod tantivy_pack;
pub(crate) mod time;
pub mod words;

pub use event::{
    CloudProvider, DataClassification, Environment, EventContext, EventSource, EventType, Resource,
    Severity, UnifiedEvent, SCHEMA_VERSION,
};
pub use normalize::{normalize, Handshake, NormalizeError, Normalized, Normalizer};
pub use severity::{SeverityPolicy, SeverityPolicyError};
