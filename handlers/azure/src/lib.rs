//! `escher-azure`: the fixes the Azure handler applies, through Azure Resource Manager.
//!
//! No maintained Rust client for Resource Manager exists, so [`arm`] is a small REST client
//! (plain reqwest, tokens from an `azure_identity` credential: the Function's managed identity,
//! or the Azure CLI's login on a laptop) that does what ARM asks of a client: `Retry-After`,
//! `nextLink` pages, and both ways of reporting long-running operations.
//!
//! Each fix is one type implementing [`escher_core::remediate::Remediation`]:
//! [`StoragePublicAccessRemediation`], [`NsgOpenIngressRemediation`], [`IdleVmRemediation`],
//! and [`ManagedDiskEncryption`] (which says why a managed disk needs nothing). [`azure_fixes`]
//! registers them in core's [`FixRegistry`]; the custom role the provisioner creates is derived
//! from them ([`all_required_permissions`]), so it grants exactly what the fixes call.

pub mod arm;
mod bindings;
mod disk_encryption;
pub mod functions;
mod idle_vm;
pub mod ids;
pub mod nightly;
mod nsg_ingress;
mod scan;
mod storage_public;
mod target;

use std::sync::Arc;

use escher_core::approvals::Action;
use escher_core::fixes::{merge_permissions, FixRegistry};
use escher_core::remediate::{ApiCall, Remediation, RequiredPermission};
use escher_runtime::RemoteCallMeter;

pub use arm::{ArmClient, ArmError, ArmOperation, HttpMethod, Patience};
pub use bindings::{
    azure_bindings, AppInsightsNotices, AzureCloud, KeyVaultSecrets, StorageTokens,
};
pub use disk_encryption::ManagedDiskEncryption;
pub use idle_vm::IdleVmRemediation;
pub use nsg_ingress::NsgOpenIngressRemediation;
pub use scan::AzureScan;
pub use storage_public::StoragePublicAccessRemediation;

/// Every operation a fix calls, so a recorded call can be mapped back to its role action.
/// A call missing here maps to no permission, which the conformance suite reports.
const OPERATIONS: &[&ArmOperation] = &[
    &storage_public::GET_ACCOUNT,
    &storage_public::UPDATE_ACCOUNT,
    &storage_public::LIST_CONTAINERS,
    &storage_public::UPDATE_CONTAINER,
    &nsg_ingress::GET_NSG,
    &nsg_ingress::PUT_RULE,
    &nsg_ingress::DELETE_RULE,
    &idle_vm::INSTANCE_VIEW,
    &idle_vm::DEALLOCATE,
    &idle_vm::METRICS,
    &disk_encryption::GET_DISK,
    &bindings::GET_VM,
    &scan::LIST_NSGS,
    &scan::LIST_STORAGE_ACCOUNTS,
    &scan::LIST_DISKS,
    &scan::LIST_SNAPSHOTS,
    &scan::LIST_VMS,
    &scan::QUERY_COSTS,
    &scan::LIST_BUDGETS,
];

/// Every Azure fix, sharing one Resource Manager client.
pub fn azure_fixes(arm: ArmClient, meter: Option<RemoteCallMeter>) -> FixRegistry {
    let fixes: [Arc<dyn Remediation>; 4] = [
        Arc::new(StoragePublicAccessRemediation::new(
            arm.clone(),
            meter.clone(),
        )),
        Arc::new(NsgOpenIngressRemediation::new(arm.clone(), meter.clone())),
        Arc::new(IdleVmRemediation::new(arm.clone(), meter.clone())),
        Arc::new(ManagedDiskEncryption::new(arm, meter)),
    ];
    let mut registry = FixRegistry::new();
    for fix in fixes {
        if let Err(e) = registry.register(fix) {
            tracing::error!(error = %e, "an Azure fix was not registered");
        }
    }
    registry
}

/// The registry as the CLI asks it; a client that is never called needs no credential.
fn offline_fixes() -> FixRegistry {
    azure_fixes(
        ArmClient::new(arm::PUBLIC_ENDPOINT, Arc::new(NoCredential)),
        None,
    )
}

/// Every (action, resource type) pair an Azure fix covers: what `approvals init` says an
/// approval does on Azure today.
pub fn fix_pairs() -> Vec<(Action, &'static str)> {
    offline_fixes().pairs()
}

/// The role actions of the function's custom role: every registered fix's, the tag reads of
/// the enrich step and the scan's reads, deduplicated and sorted; never a wildcard.
pub fn all_required_permissions() -> Vec<RequiredPermission> {
    let fixes = offline_fixes().required_permissions();
    // Last: where a fix already needs a permission, its reason is the one kept.
    merge_permissions([
        fixes.as_slice(),
        bindings::TAG_PERMISSIONS,
        scan::PERMISSIONS,
    ])
}

/// The role action a recorded call needed (its operation's permission). The conformance
/// suite holds every fix's calls to its declared permissions with it.
pub fn role_action(call: &ApiCall) -> String {
    OPERATIONS
        .iter()
        .find(|o| o.id == call.operation)
        .map(|o| o.permission.to_string())
        .unwrap_or_else(|| format!("unknown operation {}", call.operation))
}

/// The Function's system-assigned managed identity (the Functions host sets
/// `IDENTITY_ENDPOINT` and `IDENTITY_HEADER`); tokens are cached until shortly before expiry.
pub fn managed_identity(
) -> Result<Arc<dyn azure_core::credentials::TokenCredential>, azure_core::Error> {
    let credential = azure_identity::ManagedIdentityCredential::new(None)?;
    Ok(credential)
}

/// [`managed_identity`] sending its token requests through `http`, the client the
/// process's other Azure calls use: one connection pool, and the system's TLS roots loaded
/// once (loading them is most of what building a client costs, and a start pays it).
pub fn managed_identity_on(
    http: reqwest::Client,
) -> Result<Arc<dyn azure_core::credentials::TokenCredential>, azure_core::Error> {
    let options = azure_identity::ManagedIdentityCredentialOptions {
        client_options: azure_core::http::ClientOptions {
            transport: Some(azure_core::http::Transport::new(Arc::new(http))),
            ..Default::default()
        },
        ..Default::default()
    };
    let credential = azure_identity::ManagedIdentityCredential::new(Some(options))?;
    Ok(credential)
}

/// A credential for building clients that make no call (deriving the role offline).
#[derive(Debug)]
struct NoCredential;

#[async_trait::async_trait]
impl azure_core::credentials::TokenCredential for NoCredential {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<azure_core::credentials::TokenRequestOptions<'_>>,
    ) -> azure_core::Result<azure_core::credentials::AccessToken> {
        Err(azure_core::Error::with_message(
            azure_core::error::ErrorKind::Credential,
            "this client was built only to list the fixes' permissions; it makes no call",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use escher_core::approvals::Action;

    #[test]
    fn every_fix_is_registered_for_its_pairs() {
        let arm = ArmClient::new(arm::PUBLIC_ENDPOINT, Arc::new(NoCredential));
        let fixes = azure_fixes(arm, None);
        assert_eq!(fixes.fixes().count(), 4, "no fix was refused: {fixes:?}");
        assert_eq!(
            fixes.pairs(),
            [
                (Action::EncryptVolume, "azure_disk"),
                (Action::MakeBucketPrivate, "azure_blob_container"),
                (Action::MakeBucketPrivate, "azure_storage_account"),
                (Action::RevokeOpenIngress, "azure_nsg"),
                (Action::RevokeOpenIngress, "azure_nsg_rule"),
                (Action::StopIdleInstance, "azure_vm"),
            ]
        );
    }

    #[test]
    fn the_role_names_every_action_and_no_wildcard() {
        let all = all_required_permissions();
        assert!(all.len() >= 10, "{all:?}");
        for p in &all {
            assert!(!p.action.contains('*'), "{p:?}");
            assert!(p.action.starts_with("Microsoft."), "{p:?}");
            assert!(!p.why.is_empty(), "{p:?}");
        }
        assert!(all
            .iter()
            .any(|p| p.action == "Microsoft.Compute/virtualMachines/deallocate/action"));
    }
}
