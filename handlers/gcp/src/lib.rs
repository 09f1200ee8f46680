//! `escher-gcp`: the fixes the Google Cloud handler applies, through Google's REST APIs.
//!
//! [`rest`] is a small client (plain reqwest, tokens from a [`TokenSource`]: the metadata
//! server's service-account token on Cloud Run, or a fixed one) that does what Google asks of
//! a client: back off on 429/5xx as `Retry-After` says, follow `nextPageToken`, and wait out
//! Compute Engine's long-running operations. Its errors say which method failed on which
//! resource and, for a 403, which permission to grant.
//!
//! Each fix is one type implementing [`escher_core::remediate::Remediation`]:
//! [`BucketPublicAccessRemediation`], [`FirewallOpenIngressRemediation`],
//! [`IdleInstanceRemediation`], and [`PersistentDiskEncryption`] (which says why a persistent
//! disk needs nothing). [`gcp_fixes`] registers them in core's [`FixRegistry`].
//!
//! [`scan`] holds the nightly scan's checks ([`GcpScan`]), which judge resources with the
//! fixes' own readers. [`all_required_permissions`] lists the IAM permissions the fixes, the
//! label reads of [`GcpCloud`] and the checks call, for the custom role a deployment grants.

mod bindings;
mod bucket_private;
mod cloud;
mod disk_encryption;
mod firewall_ingress;
mod idle_instance;
pub mod ids;
pub mod oidc;
pub mod rest;
pub mod scan;
pub mod secrets;
pub mod service;
mod target;

use std::sync::Arc;

use escher_core::approvals::Action;
use escher_core::fixes::{merge_permissions, FixRegistry};
use escher_core::remediate::{ApiCall, Remediation, RequiredPermission};
use escher_runtime::RemoteCallMeter;

pub use bindings::{gcp_bindings, LoggedNotices, NoticeSink, CRITICAL_NOTICES, HIGH_NOTICES};
pub use bucket_private::BucketPublicAccessRemediation;
pub use cloud::GcpCloud;
pub use disk_encryption::PersistentDiskEncryption;
pub use firewall_ingress::FirewallOpenIngressRemediation;
pub use idle_instance::{IdleInstanceRemediation, CPU_METRIC};
pub use rest::{
    Endpoints, GcpClient, GcpError, GcpOperation, HttpMethod, MetadataServer, Patience, Problem,
    Service, StaticToken, TokenError, TokenSource,
};
pub use scan::{GcpScan, GcpScanSettings};

/// Every method a fix calls, so a recorded call can be mapped back to its IAM permission.
/// A call missing here maps to no permission, which the conformance suite reports.
const OPERATIONS: &[&GcpOperation] = &[
    &bucket_private::GET_BUCKET,
    &bucket_private::PATCH_BUCKET,
    &bucket_private::GET_IAM,
    &bucket_private::SET_IAM,
    &firewall_ingress::GET_FIREWALL,
    &firewall_ingress::PATCH_FIREWALL,
    &idle_instance::GET_INSTANCE,
    &idle_instance::STOP_INSTANCE,
    &idle_instance::LIST_TIME_SERIES,
    &disk_encryption::GET_DISK,
    &rest::WAIT_ZONE_OPERATION,
    &rest::WAIT_GLOBAL_OPERATION,
];

/// Every Google Cloud fix, sharing one client.
pub fn gcp_fixes(client: GcpClient, meter: Option<RemoteCallMeter>) -> FixRegistry {
    let fixes: [Arc<dyn Remediation>; 4] = [
        Arc::new(BucketPublicAccessRemediation::new(
            client.clone(),
            meter.clone(),
        )),
        Arc::new(FirewallOpenIngressRemediation::new(
            client.clone(),
            meter.clone(),
        )),
        Arc::new(IdleInstanceRemediation::new(client.clone(), meter.clone())),
        Arc::new(PersistentDiskEncryption::new(client, meter)),
    ];
    let mut registry = FixRegistry::new();
    for fix in fixes {
        if let Err(e) = registry.register(fix) {
            tracing::error!(error = %e, "a Google Cloud fix was not registered");
        }
    }
    registry
}

/// The registry as the CLI asks it; a client that is never called needs no credential.
fn offline_fixes() -> FixRegistry {
    gcp_fixes(
        GcpClient::new(Endpoints::default(), Arc::new(NoToken)),
        None,
    )
}

/// Every (action, resource type) pair a Google Cloud fix covers.
pub fn fix_pairs() -> Vec<(Action, &'static str)> {
    offline_fixes().pairs()
}

/// The IAM permissions of the handler's custom role: every registered fix's, the label
/// reads of the enrich step and the nightly scan's reads, deduplicated and sorted; never a
/// wildcard. The budgets' read is granted on the billing account instead
/// ([`scan::BILLING_ACCOUNT_PERMISSIONS`]).
pub fn all_required_permissions() -> Vec<RequiredPermission> {
    let fixes = offline_fixes().required_permissions();
    // Later lists: where a fix already needs a permission, its reason is the one kept.
    merge_permissions([fixes.as_slice(), cloud::TAG_PERMISSIONS, scan::PERMISSIONS])
}

/// The IAM permission a recorded call needed. The conformance suite holds every fix's calls
/// to its declared permissions with it.
pub fn iam_permission(call: &ApiCall) -> String {
    OPERATIONS
        .iter()
        .chain(scan::OPERATIONS)
        .find(|o| o.id == call.operation)
        .map(|o| o.permission.to_string())
        .unwrap_or_else(|| format!("unknown method {}", call.operation))
}

/// A token source for building clients that make no call (deriving the role offline).
#[derive(Debug)]
struct NoToken;

#[async_trait::async_trait]
impl TokenSource for NoToken {
    async fn token(&self) -> Result<String, TokenError> {
        Err(TokenError::Unreadable {
            message: "this client was built only to list the fixes' permissions; it makes no call"
                .into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fix_is_registered_for_its_pairs() {
        let fixes = offline_fixes();
        assert_eq!(fixes.fixes().count(), 4, "no fix was refused: {fixes:?}");
        assert_eq!(
            fixes.pairs(),
            [
                (Action::EncryptVolume, "gce_disk"),
                (Action::MakeBucketPrivate, "gcs_bucket"),
                (Action::RevokeOpenIngress, "gce_firewall"),
                (Action::StopIdleInstance, "gce_instance"),
            ]
        );
    }

    #[test]
    fn the_role_names_every_permission_and_no_wildcard() {
        let all = all_required_permissions();
        for p in &all {
            assert!(!p.action.contains('*'), "{p:?}");
            assert_eq!(
                p.action.split('.').count(),
                3,
                "service.resource.verb: {p:?}"
            );
            assert!(!p.why.is_empty(), "{p:?}");
        }
        // Every method a fix can call is in the role.
        for operation in OPERATIONS {
            assert!(
                all.iter().any(|p| p.action == operation.permission),
                "{} needs {}",
                operation.id,
                operation.permission
            );
        }
    }
}
