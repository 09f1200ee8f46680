//! The `public_bucket` check: buckets whose IAM policy grants `allUsers` or
//! `allAuthenticatedUsers`, read as `make_bucket_private` reads them (public access prevention
//! not enforced is said alongside: it is what lets a grant make the bucket public).

use async_trait::async_trait;
use escher_core::approvals::Action;
use escher_core::resource_types::gcp as gcp_types;
use escher_core::scan::{CheckScope, Finding, ScanCheck, ScanContext, ScanError};
use escher_core::words::join_words;
use escher_core::{CloudProvider, EventType};
use serde_json::json;

use super::{resource_of, scan_error, text, GcpScan, GLOBAL, LIST_BUCKETS};
use crate::bucket_private::read_state;
use crate::rest::CallLog;

pub(super) struct PublicBuckets(pub GcpScan);

#[async_trait]
impl ScanCheck for PublicBuckets {
    fn id(&self) -> &'static str {
        "public_bucket"
    }

    fn cloud(&self) -> CloudProvider {
        CloudProvider::Gcp
    }

    fn scope(&self) -> CheckScope {
        CheckScope::Account
    }

    async fn run(&self, _: &str, scan: &ScanContext) -> Result<Vec<Finding>, ScanError> {
        let scan_of = &self.0;
        let mut log = CallLog::metered(scan_of.meter.as_ref());
        let buckets = log
            .list(
                &scan_of.client,
                &LIST_BUCKETS,
                "b",
                &[("project", &scan_of.project)],
                "items",
            )
            .await
            .map_err(scan_error)?;
        let mut findings = Vec::new();
        for bucket in &buckets {
            let Some(name) = text(bucket, "/name") else {
                continue;
            };
            let id = format!("projects/_/buckets/{name}");
            let state = read_state(&scan_of.client, name, &mut log)
                .await
                .map_err(|e| ScanError::from_fix_read("storage.buckets.getIamPolicy", &id, e))?;
            if state.public_grants.is_empty() {
                continue;
            }
            let grants: Vec<String> = state
                .public_grants
                .iter()
                .map(|(role, member)| format!("{member} ({role})"))
                .collect();
            let prevention = state.prevention.as_deref().unwrap_or("inherited");
            let resource = resource_of(
                gcp_types::GCS_BUCKET,
                id,
                bucket,
                json!({"public_members": grants, "public_access_prevention": prevention}),
            );
            let location = text(bucket, "/location")
                .map(str::to_ascii_lowercase)
                .unwrap_or_else(|| GLOBAL.to_string());
            let mut draft = scan_of.draft(
                self.id(),
                &location,
                EventType::BucketPublic,
                resource,
                format!(
                    "Bucket {name} is readable by anyone: {}{}",
                    join_words(&grants),
                    if state.prevented() {
                        String::new()
                    } else {
                        format!(" (public access prevention is {prevention})")
                    }
                ),
            );
            draft.action = Some(Action::MakeBucketPrivate);
            draft.questions = vec![
                "Is anything meant to be public here (a static site, public downloads)?".into(),
                "Could it be served through Cloud CDN or signed URLs instead?".into(),
            ];
            findings.push(draft.finish(scan));
        }
        Ok(findings)
    }
}
