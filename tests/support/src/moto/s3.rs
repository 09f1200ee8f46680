//! S3 on moto: buckets (public-read, in a region, tagged) and what their ACL grants.

use aws_config::SdkConfig;
use aws_sdk_s3::types::{
    BucketCannedAcl, BucketLocationConstraint, CreateBucketConfiguration, Tag, Tagging,
};
use aws_sdk_s3::Client;

use super::sdk_error;
use crate::names::unique;

/// An S3 client for `config`: path-style when an endpoint is set, since virtual-host names
/// such as `bucket.127.0.0.1` do not resolve.
pub fn client(config: &SdkConfig) -> Client {
    let builder = aws_sdk_s3::config::Builder::from(config);
    let builder = if config.endpoint_url().is_some() {
        builder.force_path_style(true)
    } else {
        builder
    };
    Client::from_conf(builder.build())
}

/// Makes `bucket` public (created public-read if missing, its public access block removed,
/// its ACL public-read again), so every pass of a bench runs the full fix.
pub async fn make_public(s3: &Client, bucket: &str, region: &str) -> Result<(), String> {
    create_bucket(s3, bucket, region, Some(BucketCannedAcl::PublicRead)).await?;
    // Not having a block is the point; an absent one is fine.
    let _ = s3.delete_public_access_block().bucket(bucket).send().await;
    s3.put_bucket_acl()
        .bucket(bucket)
        .acl(BucketCannedAcl::PublicRead)
        .send()
        .await
        .map_err(|e| sdk_error(&format!("make {bucket} public"), e))?;
    Ok(())
}

/// Creates `bucket` in `region` with `acl`. A bucket of ours by that name already is fine
/// (a bench makes its buckets again every pass).
pub async fn create_bucket(
    s3: &Client,
    bucket: &str,
    region: &str,
    acl: Option<BucketCannedAcl>,
) -> Result<(), String> {
    let mut create = s3.create_bucket().bucket(bucket).set_acl(acl);
    // us-east-1 is the one region S3 wants no location constraint for.
    if region != "us-east-1" {
        create = create.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region))
                .build(),
        );
    }
    match create.send().await {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_bucket_already_owned_by_you()) =>
        {
            Ok(())
        }
        Err(e) => Err(sdk_error(&format!("CreateBucket {bucket}"), e)),
    }
}

/// A new public-read bucket in `region`, named `<prefix>-<unique>`; returns its name.
pub async fn public_bucket(s3: &Client, prefix: &str, region: &str) -> Result<String, String> {
    let bucket = unique(prefix);
    create_bucket(s3, &bucket, region, Some(BucketCannedAcl::PublicRead)).await?;
    Ok(bucket)
}

/// Replaces `bucket`'s tags with `tags`.
pub async fn tag_bucket(s3: &Client, bucket: &str, tags: &[(&str, &str)]) -> Result<(), String> {
    let tag_set = tags
        .iter()
        .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("tag for {bucket}: {e}"))?;
    let tagging = Tagging::builder()
        .set_tag_set(Some(tag_set))
        .build()
        .map_err(|e| format!("tagging for {bucket}: {e}"))?;
    s3.put_bucket_tagging()
        .bucket(bucket)
        .tagging(tagging)
        .send()
        .await
        .map_err(|e| sdk_error(&format!("PutBucketTagging {bucket}"), e))?;
    Ok(())
}

/// The grantee groups of `bucket`'s ACL that make it public (AllUsers, AuthenticatedUsers),
/// by URI.
pub async fn public_grants(s3: &Client, bucket: &str) -> Result<Vec<String>, String> {
    let acl = s3
        .get_bucket_acl()
        .bucket(bucket)
        .send()
        .await
        .map_err(|e| sdk_error(&format!("GetBucketAcl {bucket}"), e))?;
    Ok(acl
        .grants()
        .iter()
        .filter_map(|g| g.grantee()?.uri().map(str::to_string))
        .filter(|uri| uri.contains("AllUsers") || uri.contains("AuthenticatedUsers"))
        .collect())
}
