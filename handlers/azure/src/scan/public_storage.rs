//! The `public_storage` check: storage accounts whose blobs anyone on the internet can read
//! (anonymous access allowed on the account and a container that offers it), read as
//! `make_bucket_private` reads them.

use async_trait::async_trait;
use escher_core::approvals::Action;
use escher_core::resource_types::azure as azure_types;
use escher_core::scan::{CheckScope, Finding, ScanCheck, ScanContext, ScanError};
use escher_core::words::join_words;
use escher_core::{CloudProvider, EventType};
use serde_json::{json, Value};

use super::{resource_of, AzureScan, LIST_STORAGE_ACCOUNTS};
use crate::arm::CallLog;
use crate::storage_public::state_of;

pub(super) struct PublicStorage(pub AzureScan);

#[async_trait]
impl ScanCheck for PublicStorage {
    fn id(&self) -> &'static str {
        "public_storage"
    }

    fn cloud(&self) -> CloudProvider {
        CloudProvider::Azure
    }

    fn scope(&self) -> CheckScope {
        CheckScope::Account
    }

    async fn run(&self, _: &str, scan: &ScanContext) -> Result<Vec<Finding>, ScanError> {
        let accounts = self
            .0
            .list(&LIST_STORAGE_ACCOUNTS, "Microsoft.Storage/storageAccounts")
            .await?;
        let mut findings = Vec::new();
        for account in &accounts {
            // An account that refuses anonymous access serves nothing publicly, whatever
            // its containers say.
            if account
                .pointer("/properties/allowBlobPublicAccess")
                .and_then(Value::as_bool)
                == Some(false)
            {
                continue;
            }
            let Some(id) = account.get("id").and_then(Value::as_str) else {
                continue;
            };
            let mut log = CallLog::metered(self.0.meter.as_ref());
            let state = state_of(&self.0.arm, account, id, &mut log)
                .await
                .map_err(|e| ScanError::from_fix_read("BlobContainers_List", id, e))?;
            if !state.account_open() || state.public_containers.is_empty() {
                continue;
            }
            let containers: Vec<String> = state
                .public_containers
                .iter()
                .map(|(name, level)| format!("{name} ({level})"))
                .collect();
            let resource = resource_of(
                azure_types::STORAGE_ACCOUNT,
                account,
                json!({"public_containers": containers}),
            );
            let mut draft = self.0.draft(
                self.id(),
                account,
                EventType::BucketPublic,
                resource.clone(),
                format!(
                    "Storage account {} serves blobs to anyone: {}",
                    resource.name,
                    join_words(&containers)
                ),
            );
            draft.action = Some(Action::MakeBucketPrivate);
            draft.questions = vec![
                "Is anything meant to be public here (a static site, public downloads)?".into(),
                "Could it be served through a CDN or SAS links instead?".into(),
            ];
            findings.push(draft.finish(scan));
        }
        Ok(findings)
    }
}
