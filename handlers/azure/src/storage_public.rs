//! `make_bucket_private` for Azure Storage: turn off anonymous blob access on the storage
//! account (`allowBlobPublicAccess = false`, which overrides every container at once) and
//! set each container that still offers public access to `None`, so turning the account
//! switch back on later does not silently expose them again. Verified by reading the account
//! and its containers back.

use async_trait::async_trait;
use escher_core::approvals::Action;
use escher_core::remediate::{
    FixDescription, Mode, Remediation, RemediationError, RemediationReport, RemediationRequest,
    RemediationStatus, RequiredPermission, Verification, VerificationCheck,
};
use escher_core::resource_types::azure as azure_types;
use escher_core::words::join_words;
use escher_runtime::RemoteCallMeter;
use serde_json::{json, Value};

use crate::arm::{ArmClient, ArmOperation, CallLog, HttpMethod};
use crate::ids;
use crate::target::arm_target;

const API_VERSION: &str = "2023-05-01";

pub(crate) const GET_ACCOUNT: ArmOperation = ArmOperation {
    id: "StorageAccounts_GetProperties",
    method: HttpMethod::Get,
    api_version: API_VERSION,
    permission: "Microsoft.Storage/storageAccounts/read",
};
pub(crate) const UPDATE_ACCOUNT: ArmOperation = ArmOperation {
    id: "StorageAccounts_Update",
    method: HttpMethod::Patch,
    api_version: API_VERSION,
    permission: "Microsoft.Storage/storageAccounts/write",
};
pub(crate) const LIST_CONTAINERS: ArmOperation = ArmOperation {
    id: "BlobContainers_List",
    method: HttpMethod::Get,
    api_version: API_VERSION,
    permission: "Microsoft.Storage/storageAccounts/blobServices/containers/read",
};
pub(crate) const UPDATE_CONTAINER: ArmOperation = ArmOperation {
    id: "BlobContainers_Update",
    method: HttpMethod::Patch,
    api_version: API_VERSION,
    permission: "Microsoft.Storage/storageAccounts/blobServices/containers/write",
};

pub(crate) const PERMISSIONS: &[RequiredPermission] = &[
    RequiredPermission {
        action: "Microsoft.Storage/storageAccounts/read",
        resource: "subscription",
        why: "make_bucket_private reads whether the account allows anonymous blob access, before and after the change",
    },
    RequiredPermission {
        action: "Microsoft.Storage/storageAccounts/write",
        resource: "subscription",
        why: "make_bucket_private sets allowBlobPublicAccess to false on the storage account",
    },
    RequiredPermission {
        action: "Microsoft.Storage/storageAccounts/blobServices/containers/read",
        resource: "subscription",
        why: "make_bucket_private finds the containers that offer public access and verifies none is left",
    },
    RequiredPermission {
        action: "Microsoft.Storage/storageAccounts/blobServices/containers/write",
        resource: "subscription",
        why: "make_bucket_private sets a public container's access level to None",
    },
];

const FIX: FixDescription = FixDescription {
    action: Action::MakeBucketPrivate,
    resource_types: &[azure_types::STORAGE_ACCOUNT, azure_types::BLOB_CONTAINER],
    permissions: PERMISSIONS,
};

/// Makes a storage account's blobs private.
#[derive(Debug, Clone)]
pub struct StoragePublicAccessRemediation {
    arm: ArmClient,
    meter: Option<RemoteCallMeter>,
}

impl StoragePublicAccessRemediation {
    pub fn new(arm: ArmClient, meter: Option<RemoteCallMeter>) -> Self {
        StoragePublicAccessRemediation { arm, meter }
    }
}

/// The account and its containers at one moment.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AccountState {
    /// `None`: the account does not say, which for accounts made before the setting existed
    /// means anonymous access is allowed.
    allow_public: Option<bool>,
    /// Containers whose public access is not `None`: (name, level).
    pub(crate) public_containers: Vec<(String, String)>,
}

impl AccountState {
    pub(crate) fn account_open(&self) -> bool {
        self.allow_public != Some(false)
    }

    fn compliant(&self) -> bool {
        !self.account_open() && self.public_containers.is_empty()
    }

    pub(crate) fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.account_open() {
            problems.push("the account allows anonymous blob access".to_string());
        }
        problems.extend(
            self.public_containers
                .iter()
                .map(|(name, level)| format!("container {name} offers public access ({level})")),
        );
        problems
    }

    fn checks(&self) -> Vec<VerificationCheck> {
        let mut checks = vec![VerificationCheck::new(
            "allowBlobPublicAccess",
            "false",
            match self.allow_public {
                Some(v) => v.to_string(),
                None => "not set (allowed)".to_string(),
            },
            !self.account_open(),
        )];
        checks.push(VerificationCheck::new(
            "containers with public access",
            "none",
            if self.public_containers.is_empty() {
                "none".to_string()
            } else {
                join_words(
                    &self
                        .public_containers
                        .iter()
                        .map(|(n, l)| format!("{n} ({l})"))
                        .collect::<Vec<_>>(),
                )
            },
            self.public_containers.is_empty(),
        ));
        checks
    }
}

async fn read_state(
    arm: &ArmClient,
    account: &str,
    log: &mut CallLog,
) -> Result<AccountState, RemediationError> {
    let resource = log
        .call(arm, &GET_ACCOUNT, account, &[], None)
        .await
        .map_err(|e| log.fail(e))?;
    state_of(arm, &resource, account, log).await
}

/// The state of `account` as `resource` (its GET, or its item in a listing) describes it,
/// with its containers read.
pub(crate) async fn state_of(
    arm: &ArmClient,
    resource: &Value,
    account: &str,
    log: &mut CallLog,
) -> Result<AccountState, RemediationError> {
    let allow_public = resource
        .pointer("/properties/allowBlobPublicAccess")
        .and_then(Value::as_bool);
    let containers = log
        .list(
            arm,
            &LIST_CONTAINERS,
            &format!("{account}/blobServices/default/containers"),
            &[],
        )
        .await
        .map_err(|e| log.fail(e))?;
    let public_containers = containers
        .iter()
        .filter_map(|c| {
            let level = c
                .pointer("/properties/publicAccess")
                .and_then(Value::as_str)
                .unwrap_or("None");
            let name = c.get("name").and_then(Value::as_str)?;
            (!level.eq_ignore_ascii_case("None")).then(|| (name.to_string(), level.to_string()))
        })
        .collect();
    Ok(AccountState {
        allow_public,
        public_containers,
    })
}

fn undo(account: &str, before: &AccountState) -> String {
    let name = ids::name(account);
    let group = ids::value_after(account, "resourceGroups").unwrap_or("<resource group>");
    let mut steps = Vec::new();
    if before.account_open() {
        steps.push(format!(
            "az storage account update -g {group} -n {name} --allow-blob-public-access true"
        ));
    }
    steps.extend(before.public_containers.iter().map(|(container, level)| {
        let level = if level.eq_ignore_ascii_case("Container") {
            "container"
        } else {
            "blob"
        };
        format!(
            "az storage container set-permission --account-name {name} -n {container} --public-access {level} --auth-mode login"
        )
    }));
    format!("To make it public again: {}", steps.join("; "))
}

#[async_trait]
impl Remediation for StoragePublicAccessRemediation {
    fn description(&self) -> &'static FixDescription {
        &FIX
    }

    async fn remediate(
        &self,
        request: &RemediationRequest<'_>,
    ) -> Result<RemediationReport, RemediationError> {
        let account = arm_target(request, "storageAccounts")?;
        let mut log = CallLog::metered(self.meter.as_ref());
        let before = read_state(&self.arm, &account, &mut log).await?;
        let name = ids::name(&account);
        if before.compliant() {
            return Ok(RemediationReport::new(
                request,
                RemediationStatus::AlreadyCompliant,
                format!("Storage account {name} already allows no anonymous access and no container is public; nothing was changed."),
            )
            .with_calls(log.into_calls())
            .with_verification(Verification::from_checks(before.checks())));
        }
        let problems = before.problems();
        if request.mode == Mode::DryRun {
            return Ok(RemediationReport::new(
                request,
                RemediationStatus::WouldRemediate,
                format!(
                    "Would make storage account {name} private: {}.",
                    join_words(&problems)
                ),
            )
            .with_calls(log.into_calls()));
        }
        let mut steps = Vec::new();
        if before.account_open() {
            let body = json!({"properties": {"allowBlobPublicAccess": false}});
            log.call(&self.arm, &UPDATE_ACCOUNT, &account, &[], Some(&body))
                .await
                .map_err(|e| log.fail(e))?;
            steps.push(format!(
                "Set allowBlobPublicAccess to false on storage account {name}"
            ));
        }
        for (container, level) in &before.public_containers {
            let body = json!({"properties": {"publicAccess": "None"}});
            let path = format!("{account}/blobServices/default/containers/{container}");
            log.call(&self.arm, &UPDATE_CONTAINER, &path, &[], Some(&body))
                .await
                .map_err(|e| log.fail(e))?;
            steps.push(format!(
                "Set container {container}'s public access from {level} to None"
            ));
        }
        let after = read_state(&self.arm, &account, &mut log).await?;
        let verification = Verification::from_checks(after.checks());
        let status = if verification.passed {
            RemediationStatus::Remediated
        } else {
            RemediationStatus::Skipped
        };
        let summary = if verification.passed {
            format!(
                "Made storage account {name} private ({} fixed).",
                join_words(&problems)
            )
        } else {
            format!(
                "Changed storage account {name}, but it still reads as public: {}.",
                verification.failed_checks()
            )
        };
        Ok(RemediationReport::new(request, status, summary)
            .with_steps(steps)
            .with_calls(log.into_calls())
            .with_verification(verification)
            .with_undo(undo(&account, &before)))
    }

    async fn verify(
        &self,
        request: &RemediationRequest<'_>,
    ) -> Result<Verification, RemediationError> {
        let account = arm_target(request, "storageAccounts")?;
        let mut log = CallLog::metered(self.meter.as_ref());
        let state = read_state(&self.arm, &account, &mut log).await?;
        Ok(Verification::from_checks(state.checks()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_is_private_only_with_the_switch_off_and_no_public_container() {
        let open = AccountState {
            allow_public: None,
            public_containers: vec![],
        };
        assert!(!open.compliant(), "an unset switch means allowed");
        let container = AccountState {
            allow_public: Some(false),
            public_containers: vec![("web".into(), "Blob".into())],
        };
        assert!(!container.compliant());
        assert_eq!(
            container.problems(),
            ["container web offers public access (Blob)"]
        );
        let closed = AccountState {
            allow_public: Some(false),
            public_containers: vec![],
        };
        assert!(closed.compliant());
        assert!(Verification::from_checks(closed.checks()).passed);
    }

    #[test]
    fn the_undo_restores_exactly_what_was_public() {
        let before = AccountState {
            allow_public: Some(true),
            public_containers: vec![("site".into(), "Container".into())],
        };
        let text = undo(
            "/subscriptions/s/resourceGroups/web-rg/providers/Microsoft.Storage/storageAccounts/webassets",
            &before,
        );
        assert!(
            text.contains("-g web-rg -n webassets --allow-blob-public-access true"),
            "{text}"
        );
        assert!(text.contains("-n site --public-access container"), "{text}");
    }
}
