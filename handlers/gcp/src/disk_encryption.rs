//! `encrypt_volume` on Google Cloud: Compute Engine encrypts every persistent disk at rest
//! (with Google-managed keys, or the customer's own Cloud KMS or supplied keys), and it
//! cannot be turned off. So this fix never acts: it reads the disk's key setting and answers
//! `already_compliant` with that reason, rather than pretend to encrypt.

use async_trait::async_trait;
use escher_core::approvals::Action;
use escher_core::remediate::{
    FixDescription, Remediation, RemediationError, RemediationReport, RemediationRequest,
    RemediationStatus, RequiredPermission, Verification, VerificationCheck,
};
use escher_core::resource_types::gcp as gcp_types;
use escher_runtime::RemoteCallMeter;
use serde_json::Value;

use crate::rest::{CallLog, GcpClient, GcpOperation, HttpMethod, Service};
use crate::target;

pub(crate) const GET_DISK: GcpOperation = GcpOperation {
    id: "compute.disks.get",
    service: Service::Compute,
    method: HttpMethod::Get,
    permission: "compute.disks.get",
    mutating: false,
    long_running: false,
};

pub(crate) const PERMISSIONS: &[RequiredPermission] = &[RequiredPermission {
    action: "compute.disks.get",
    resource: "project",
    why: "encrypt_volume reads which keys encrypt the persistent disk at rest (it is always encrypted)",
}];

const FIX: FixDescription = FixDescription {
    action: Action::EncryptVolume,
    resource_types: &[gcp_types::GCE_DISK],
    permissions: PERMISSIONS,
};

/// Answers `encrypt_volume` for persistent disks with how Google already encrypts them.
#[derive(Debug, Clone)]
pub struct PersistentDiskEncryption {
    client: GcpClient,
    meter: Option<RemoteCallMeter>,
}

impl PersistentDiskEncryption {
    pub fn new(client: GcpClient, meter: Option<RemoteCallMeter>) -> Self {
        PersistentDiskEncryption { client, meter }
    }
}

/// Which keys encrypt a disk, read from its `diskEncryptionKey`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keys {
    GoogleManaged,
    CloudKms,
    CustomerSupplied,
}

fn keys_of(disk: &Value) -> Keys {
    match disk.get("diskEncryptionKey") {
        Some(key) if key.get("kmsKeyName").and_then(Value::as_str).is_some() => Keys::CloudKms,
        Some(key) if key.get("sha256").and_then(Value::as_str).is_some() => Keys::CustomerSupplied,
        _ => Keys::GoogleManaged,
    }
}

fn in_words(keys: Keys) -> &'static str {
    match keys {
        Keys::GoogleManaged => "with Google-managed keys",
        Keys::CloudKms => "with your Cloud KMS key",
        Keys::CustomerSupplied => "with your customer-supplied key",
    }
}

fn check(keys: Keys) -> VerificationCheck {
    VerificationCheck::new(
        "encryption at rest",
        "encrypted (always, on Compute Engine)",
        in_words(keys),
        true,
    )
}

impl PersistentDiskEncryption {
    async fn keys(
        &self,
        request: &RemediationRequest<'_>,
        log: &mut CallLog,
    ) -> Result<(String, Keys), RemediationError> {
        let disk = target::zonal(request, "disks")?;
        let resource = log
            .call(&self.client, &GET_DISK, &disk.path("disks"), &[], None)
            .await
            .map_err(|e| log.fail(e))?;
        Ok((disk.name, keys_of(&resource)))
    }
}

#[async_trait]
impl Remediation for PersistentDiskEncryption {
    fn description(&self) -> &'static FixDescription {
        &FIX
    }

    async fn remediate(
        &self,
        request: &RemediationRequest<'_>,
    ) -> Result<RemediationReport, RemediationError> {
        let mut log = CallLog::metered(self.meter.as_ref());
        let (name, keys) = self.keys(request, &mut log).await?;
        Ok(RemediationReport::new(
            request,
            RemediationStatus::AlreadyCompliant,
            format!(
                "Persistent disk {name} is already encrypted at rest {}: Compute Engine encrypts every persistent disk and it cannot be turned off, so there is nothing to fix.",
                in_words(keys)
            ),
        )
        .with_calls(log.into_calls())
        .with_verification(Verification::from_checks(vec![check(keys)])))
    }

    async fn verify(
        &self,
        request: &RemediationRequest<'_>,
    ) -> Result<Verification, RemediationError> {
        let mut log = CallLog::metered(self.meter.as_ref());
        let (_, keys) = self.keys(request, &mut log).await?;
        Ok(Verification::from_checks(vec![check(keys)]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_key_kind_is_read_from_the_disk() {
        assert_eq!(keys_of(&json!({"name": "d"})), Keys::GoogleManaged);
        assert_eq!(
            keys_of(
                &json!({"diskEncryptionKey": {"kmsKeyName": "projects/p/locations/l/keyRings/r/cryptoKeys/k"}})
            ),
            Keys::CloudKms
        );
        assert_eq!(
            keys_of(&json!({"diskEncryptionKey": {"sha256": "abc="}})),
            Keys::CustomerSupplied
        );
    }
}
