//! The `public_bucket` check: buckets anyone on the internet can read, judged as `make_bucket_private` judges them.

use async_trait::async_trait;
use escher_core::approvals::Action;
use escher_core::resource_types::aws as aws_types;
use escher_core::scan::{Finding, ScanError};
use escher_core::{EventType, Resource};
use serde_json::json;

use super::*;
use crate::calls::{classify, CallLog};
use crate::clients::AwsClients;
use crate::s3_public::read_state;
use crate::tags::AwsResourceTags;

/// Buckets anyone on the internet can read (ACL grants or a public policy not blocked).
pub(super) struct PublicBuckets;

#[async_trait]
impl AwsCheck for PublicBuckets {
    const ID: &'static str = "public_bucket";

    async fn find(&self, at: InRegion<'_>) -> Result<Vec<Finding>, ScanError> {
        let (aws, clients, region, scan) = at.parts();
        // No page size here: moto honours MaxBuckets but never returns the continuation
        // token, so small pages would silently drop buckets. Without it S3 returns up to
        // 10 000 buckets per page (the default quota) and the paginator follows any token.
        let mut pages = clients.s3().list_buckets().into_paginator().items().send();
        let mut names = Vec::new();
        while let Some(bucket) = pages.next().await {
            let bucket = bucket.map_err(|e| scan_error(classify("ListBuckets", region, &e)))?;
            let Some(name) = bucket.name() else { continue };
            let home = match bucket.bucket_region() {
                Some(r) => r.to_string(),
                None => bucket_region(clients, name).await?,
            };
            if home == region {
                names.push(name.to_string());
            }
        }
        let tags = AwsResourceTags::new(clients.clone());
        let mut findings = Vec::new();
        for name in names {
            let mut log = CallLog::metered(clients.meter());
            let state = read_state(clients, &name, &mut log)
                .await
                .map_err(|e| ScanError::from_fix_read("read public access", &name, e))?;
            let reasons = state.public_reasons();
            if reasons.is_empty() {
                continue;
            }
            let tags = tags
                .tags(aws_types::S3_BUCKET, &name, region)
                .await
                .map_err(|e| ScanError::from_fix_read("GetBucketTagging", &name, e))?;
            let resource = Resource {
                kind: aws_types::S3_BUCKET.into(),
                id: format!("arn:aws:s3:::{name}"),
                name: name.clone(),
                tags,
                metadata: json!({ "public_because": reasons })
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            };
            let mut draft = aws.draft(
                Self::ID,
                region,
                EventType::BucketPublic,
                resource,
                format!("S3 bucket {name} is public: {}", reasons.join("; ")),
            );
            draft.action = Some(Action::MakeBucketPrivate);
            draft.questions = vec![
                format!("Does anything serve files from {name} publicly on purpose (a website, a CDN origin)?"),
                "Who reads this bucket, and can they use signed URLs or a role instead?".into(),
            ];
            findings.push(draft.finish(scan));
        }
        Ok(findings)
    }
}

/// The region a bucket lives in; S3 reports us-east-1 as no location at all.
async fn bucket_region(clients: &AwsClients, bucket: &str) -> Result<String, ScanError> {
    let out = clients
        .s3()
        .get_bucket_location()
        .bucket(bucket)
        .send()
        .await
        .map_err(|e| scan_error(classify("GetBucketLocation", bucket, &e)))?;
    Ok(out
        .location_constraint()
        .map(|c| c.as_str())
        .filter(|c| !c.is_empty())
        .unwrap_or("us-east-1")
        .to_string())
}
