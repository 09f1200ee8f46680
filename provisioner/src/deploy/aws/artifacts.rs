//! The artifacts bucket and what goes into it: the functions' zips (content-addressed, so
//! unchanged code is never uploaded twice) and templates too large to pass inline.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

use super::session::{classify, AwsSession};
use crate::deploy::package::{locate_packages, FunctionPackage};
use crate::deploy::Function;

/// CloudFormation's limit for an inline template body; larger ones go through S3.
pub(super) const MAX_TEMPLATE_BODY: usize = 51_200;

/// The functions' code in the artifacts bucket, ready for the change set.
pub(super) struct Staged {
    pub(super) bucket: String,
    /// The template parameters naming the bucket and each function's zip.
    pub(super) parameter_values: BTreeMap<String, String>,
    /// The keys uploaded now (unchanged code is not uploaded again).
    pub(super) uploaded: Vec<String>,
}

/// Packaging and artifacts: each function's zip in the artifacts bucket under its content
/// key. A zip pinned in `[aws.artifacts]` must be there already; the others are located
/// (built first when missing or stale, if `build`) and uploaded unless their key exists.
pub(super) async fn stage_functions(
    session: &AwsSession,
    artifacts_dir: Option<&Path>,
    build: bool,
) -> anyhow::Result<Staged> {
    let progress = |msg: &str| eprintln!("{msg}");
    let bucket = artifacts_bucket(session).await?;
    let mut uploaded = Vec::new();
    let mut parameter_values = BTreeMap::from([("ArtifactsBucket".to_string(), bucket.clone())]);
    let pinned = |f: Function| match f {
        Function::Alert => session.config.aws.artifacts.alert_zip_key.as_ref(),
        Function::Scan => session.config.aws.artifacts.scan_zip_key.as_ref(),
    };
    let to_package: Vec<Function> = Function::ALL
        .into_iter()
        .filter(|f| pinned(*f).is_none())
        .collect();
    let packages = locate_packages(
        artifacts_dir,
        &to_package,
        session.config.aws.functions.architecture,
        build,
    )?;
    for function in Function::ALL {
        let key = match pinned(function) {
            Some(key) => {
                if !object_exists(session, &bucket, key.as_str()).await? {
                    bail!(
                        "escher.toml pins the {} function to `{key}`, which is not in s3://{bucket}; upload it or remove `[aws.artifacts] {}_zip_key`",
                        function.name(),
                        function.name()
                    );
                }
                key.to_string()
            }
            None => {
                let package = packages
                    .iter()
                    .find(|p| p.function == function)
                    .context("a located package went missing (a bug; please report it)")?;
                if upload_package(session, &bucket, package).await? {
                    progress(&format!(
                        "uploaded {} → s3://{bucket}/{}",
                        package.path.display(),
                        package.key
                    ));
                    uploaded.push(package.key.clone());
                } else {
                    progress(&format!(
                        "{} function code unchanged (s3://{bucket}/{} exists)",
                        function.name(),
                        package.key
                    ));
                }
                package.key.clone()
            }
        };
        parameter_values.insert(function.code_key_parameter().to_string(), key);
    }
    Ok(Staged {
        bucket,
        parameter_values,
        uploaded,
    })
}

/// The artifacts bucket: `[aws.artifacts] bucket`, else `escher-artifacts-<account>-<region>`,
/// created (versioned, encrypted, public access blocked, TLS only) when missing.
pub(super) async fn artifacts_bucket(session: &AwsSession) -> anyhow::Result<String> {
    let bucket = match &session.config.aws.artifacts.bucket {
        Some(b) => b.to_string(),
        None => format!("escher-artifacts-{}-{}", session.account, session.region),
    };
    let head = session.s3.head_bucket().bucket(&bucket).send().await;
    let status = head
        .as_ref()
        .err()
        .and_then(|e| e.raw_response())
        .map(|r| r.status().as_u16());
    match (head, status) {
        (Ok(_), _) => return Ok(bucket),
        (Err(_), Some(404)) => {}
        (Err(_), Some(403)) => bail!(
            "the artifacts bucket `{bucket}` exists but is not accessible to {} (another account may own it, or s3:ListBucket is denied); set `[aws.artifacts] bucket` in escher.toml to a bucket you own",
            session.caller_arn
        ),
        (Err(e), _) => {
            return Err(classify(e, "s3:ListBucket", &format!("bucket `{bucket}`"), &session.region).into())
        }
    }
    eprintln!("creating the artifacts bucket s3://{bucket} (versioned, encrypted, not public)");
    let mut create = session.s3.create_bucket().bucket(&bucket);
    if session.region != "us-east-1" {
        use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
        create = create.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(session.region.as_str()))
                .build(),
        );
    }
    let what = format!("bucket `{bucket}`");
    match session.call(create.send().await, "s3:CreateBucket", &what) {
        Ok(_) => {}
        // Another extend of this account (another stack) created it a moment ago.
        Err(e) if e.code() == Some("BucketAlreadyOwnedByYou") => {}
        Err(e) => return Err(e.into()),
    }
    use aws_sdk_s3::types::{
        BucketVersioningStatus, PublicAccessBlockConfiguration, ServerSideEncryption,
        ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
        VersioningConfiguration,
    };
    session.call(
        session
            .s3
            .put_public_access_block()
            .bucket(&bucket)
            .public_access_block_configuration(
                PublicAccessBlockConfiguration::builder()
                    .block_public_acls(true)
                    .ignore_public_acls(true)
                    .block_public_policy(true)
                    .restrict_public_buckets(true)
                    .build(),
            )
            .send()
            .await,
        "s3:PutBucketPublicAccessBlock",
        &what,
    )?;
    session.call(
        session
            .s3
            .put_bucket_versioning()
            .bucket(&bucket)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await,
        "s3:PutBucketVersioning",
        &what,
    )?;
    let sse = ServerSideEncryptionConfiguration::builder()
        .rules(
            ServerSideEncryptionRule::builder()
                .apply_server_side_encryption_by_default(
                    ServerSideEncryptionByDefault::builder()
                        .sse_algorithm(ServerSideEncryption::Aes256)
                        .build()?,
                )
                .build(),
        )
        .build()?;
    session.call(
        session
            .s3
            .put_bucket_encryption()
            .bucket(&bucket)
            .server_side_encryption_configuration(sse)
            .send()
            .await,
        "s3:PutEncryptionConfiguration",
        &what,
    )?;
    // Deny plain HTTP. Not against an http:// endpoint (an emulator such as moto, which
    // enforces bucket policies): the policy would lock the CLI out of its own bucket.
    if session.plain_http {
        return Ok(bucket);
    }
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "TlsOnly",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [format!("arn:aws:s3:::{bucket}"), format!("arn:aws:s3:::{bucket}/*")],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }],
    });
    session.call(
        session
            .s3
            .put_bucket_policy()
            .bucket(&bucket)
            .policy(policy.to_string())
            .send()
            .await,
        "s3:PutBucketPolicy",
        &what,
    )?;
    Ok(bucket)
}

pub(super) async fn object_exists(
    session: &AwsSession,
    bucket: &str,
    key: &str,
) -> anyhow::Result<bool> {
    let head = session
        .s3
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await;
    match head {
        Ok(_) => Ok(true),
        Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(404) => Ok(false),
        Err(e) => Err(classify(
            e,
            "s3:GetObject",
            &format!("s3://{bucket}/{key}"),
            &session.region,
        )
        .into()),
    }
}

/// Uploads the zip unless its content-addressed key exists; true when it was uploaded.
pub(super) async fn upload_package(
    session: &AwsSession,
    bucket: &str,
    package: &FunctionPackage,
) -> anyhow::Result<bool> {
    if object_exists(session, bucket, &package.key).await? {
        return Ok(false);
    }
    session.call(
        session
            .s3
            .put_object()
            .bucket(bucket)
            .key(&package.key)
            .content_type("application/zip")
            .body(package.bytes.clone().into())
            .send()
            .await,
        "s3:PutObject",
        &format!("s3://{bucket}/{}", package.key),
    )?;
    Ok(true)
}

pub(super) enum TemplateSource {
    Body(String),
    Url(String),
}

/// Inline up to CloudFormation's limit; larger templates are uploaded beside the zips.
pub(super) async fn template_source(
    session: &AwsSession,
    bucket: &str,
    template: &str,
) -> anyhow::Result<TemplateSource> {
    if template.len() <= MAX_TEMPLATE_BODY {
        return Ok(TemplateSource::Body(template.to_string()));
    }
    let package = FunctionPackage::from_bytes(
        Function::Alert,
        PathBuf::new(),
        template.as_bytes().to_vec(),
    );
    let key = format!("templates/{}", package.key.replace(".zip", ".yaml"));
    session.call(
        session
            .s3
            .put_object()
            .bucket(bucket)
            .key(&key)
            .content_type("application/x-yaml")
            .body(package.bytes.into())
            .send()
            .await,
        "s3:PutObject",
        &format!("s3://{bucket}/{key}"),
    )?;
    Ok(TemplateSource::Url(format!(
        "https://{bucket}.s3.{}.amazonaws.com/{key}",
        session.region
    )))
}
