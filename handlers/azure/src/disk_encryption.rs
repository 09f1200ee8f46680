//! `encrypt_volume` on Azure: every managed disk is encrypted at rest by the platform
//! (server-side encryption with platform-managed keys, or the customer's own keys), and it
//! cannot be turned off. So this fix never acts: it reads the disk's encryption setting and
//! answers `already_compliant` with that reason, rather than pretend to encrypt.

use async_trait::async_trait;
use escher_core::approvals::Action;
use escher_core::remediate::{
    FixDescription, Remediation, RemediationError, RemediationReport, RemediationRequest,
    RemediationStatus, RequiredPermission, Verification, VerificationCheck,
};
use escher_core::resource_types::azure as azure_types;
use escher_runtime::RemoteCallMeter;
use serde_json::Value;

use crate::arm::{ArmClient, ArmOperation, CallLog, HttpMethod};
use crate::ids;
use crate::target::arm_target;

pub(crate) const GET_DISK: ArmOperation = ArmOperation {
    id: "Disks_Get",
    method: HttpMethod::Get,
    api_version: "2024-03-02",
    permission: "Microsoft.Compute/disks/read",
};

pub(crate) const PERMISSIONS: &[RequiredPermission] = &[RequiredPermission {
    action: "Microsoft.Compute/disks/read",
    resource: "subscription",
    why:
        "encrypt_volume reads how Azure encrypts the managed disk at rest (it is always encrypted)",
}];

const FIX: FixDescription = FixDescription {
    action: Action::EncryptVolume,
    resource_types: &[azure_types::DISK],
    permissions: PERMISSIONS,
};

/// Answers `encrypt_volume` for managed disks with how the platform already encrypts them.
#[derive(Debug, Clone)]
pub struct ManagedDiskEncryption {
    arm: ArmClient,
    meter: Option<RemoteCallMeter>,
}

impl ManagedDiskEncryption {
    pub fn new(arm: ArmClient, meter: Option<RemoteCallMeter>) -> Self {
        ManagedDiskEncryption { arm, meter }
    }

    async fn encryption(
        &self,
        request: &RemediationRequest<'_>,
        log: &mut CallLog,
    ) -> Result<(String, Option<String>), RemediationError> {
        let disk = arm_target(request, "disks")?;
        let resource = log
            .call(&self.arm, &GET_DISK, &disk, &[], None)
            .await
            .map_err(|e| log.fail(e))?;
        let kind = resource
            .pointer("/properties/encryption/type")
            .and_then(Value::as_str)
            .map(str::to_string);
        Ok((disk, kind))
    }
}

/// What an encryption type means, in words.
fn keys_in_words(kind: &str) -> &'static str {
    match kind {
        "EncryptionAtRestWithCustomerKey" => "with your customer-managed key",
        "EncryptionAtRestWithPlatformAndCustomerKeys" => {
            "twice, with platform-managed and customer-managed keys"
        }
        _ => "with platform-managed keys",
    }
}

fn check(kind: Option<&str>) -> VerificationCheck {
    VerificationCheck::new(
        "encryption at rest",
        "EncryptionAtRest*",
        kind.unwrap_or("not reported (platform default: EncryptionAtRestWithPlatformKey)"),
        kind.is_none_or(|k| k.starts_with("EncryptionAtRest")),
    )
}

#[async_trait]
impl Remediation for ManagedDiskEncryption {
    fn description(&self) -> &'static FixDescription {
        &FIX
    }

    async fn remediate(
        &self,
        request: &RemediationRequest<'_>,
    ) -> Result<RemediationReport, RemediationError> {
        let mut log = CallLog::metered(self.meter.as_ref());
        let (disk, kind) = self.encryption(request, &mut log).await?;
        let words = keys_in_words(kind.as_deref().unwrap_or_default());
        Ok(RemediationReport::new(
            request,
            RemediationStatus::AlreadyCompliant,
            format!(
                "Managed disk {} is already encrypted at rest {words}: Azure encrypts every managed disk and it cannot be turned off, so there is nothing to fix.",
                ids::name(&disk)
            ),
        )
        .with_calls(log.into_calls())
        .with_verification(Verification::from_checks(vec![check(kind.as_deref())])))
    }

    async fn verify(
        &self,
        request: &RemediationRequest<'_>,
    ) -> Result<Verification, RemediationError> {
        let mut log = CallLog::metered(self.meter.as_ref());
        let (_, kind) = self.encryption(request, &mut log).await?;
        Ok(Verification::from_checks(vec![check(kind.as_deref())]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_encryption_type_azure_reports_passes() {
        for kind in [
            "EncryptionAtRestWithPlatformKey",
            "EncryptionAtRestWithCustomerKey",
            "EncryptionAtRestWithPlatformAndCustomerKeys",
        ] {
            assert!(check(Some(kind)).passed, "{kind}");
        }
        assert!(
            check(None).passed,
            "the platform default when the field is absent"
        );
        assert!(!check(Some("None")).passed);
        assert_eq!(
            keys_in_words("EncryptionAtRestWithCustomerKey"),
            "with your customer-managed key"
        );
    }
}
