//! `destroy` on AWS: what the stack holds, what its template retains, emptying the state
//! bucket for `--delete-data`, and deleting the stack.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::bail;
use aws_sdk_cloudformation::types::StackStatus;

use super::session::{classify, AwsSession, STACK_WAIT};
use crate::deploy::seam::{Deletion, DestroyPlan, KeptResource, Resource};

pub(super) async fn delete_stack_and_wait(session: &AwsSession) -> anyhow::Result<()> {
    session.call(
        session
            .cfn
            .delete_stack()
            .stack_name(&session.stack)
            .send()
            .await,
        "cloudformation:DeleteStack",
        &session.stack_label(),
    )?;
    let started = Instant::now();
    loop {
        match session.describe_stack().await? {
            None => return Ok(()),
            Some(info) if info.status == StackStatus::DeleteFailed => bail!(
                "deleting {} failed{}",
                session.stack_label(),
                info.status_reason
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ),
            Some(_) if started.elapsed() > STACK_WAIT => bail!(
                "{} is still being deleted after an hour; it continues in AWS",
                session.stack_label()
            ),
            Some(_) => tokio::time::sleep(Duration::from_secs(2)).await,
        }
    }
}

/// What `destroy` deletes and keeps: the template's retained resources are kept (the
/// state bucket too, unless `delete_data`); `None` when there is no stack.
pub(super) async fn plan(
    session: &AwsSession,
    delete_data: bool,
) -> anyhow::Result<Option<DestroyPlan>> {
    if session.describe_stack().await?.is_none() {
        return Ok(None);
    }
    let mut delete = Vec::new();
    let mut keep = Vec::new();
    let retained = retained_resources(session).await?;
    let resources = stack_resources(session).await?;
    let state_bucket = resources
        .iter()
        .find(|r| r.logical_id == "StateBucket")
        .map(|r| r.physical_id.clone());
    for r in resources {
        let deleting_data = delete_data && state_bucket.as_deref() == Some(r.physical_id.as_str());
        if retained.contains(&r.logical_id) && !deleting_data {
            let why = match r.logical_id.as_str() {
                "AuditBucket" => "object-locked audit records: always kept".to_string(),
                "StateBucket" => {
                    "approvals and handler state: kept unless --delete-data".to_string()
                }
                "EncryptionKey" => "the kept buckets are encrypted with it".to_string(),
                _ => "DeletionPolicy: Retain".to_string(),
            };
            keep.push(KeptResource {
                logical_id: r.logical_id,
                resource_type: r.resource_type,
                physical_id: r.physical_id,
                why,
            });
        } else {
            delete.push(Deletion {
                note: deleting_data
                    .then(|| "--delete-data: emptied (every version), then deleted".to_string()),
                resource: r,
            });
        }
    }
    let emptied = state_bucket.filter(|_| delete_data).into_iter().collect();
    Ok(Some(DestroyPlan {
        delete,
        keep,
        emptied,
    }))
}

/// Empties the buckets `--delete-data` deletes, deletes the stack and waits, then deletes
/// those buckets (retained by the template, so CloudFormation leaves them).
pub(super) async fn destroy(session: &AwsSession, plan: &DestroyPlan) -> anyhow::Result<()> {
    for bucket in &plan.emptied {
        eprintln!("emptying s3://{bucket} (every version)");
        empty_bucket(session, bucket).await?;
    }
    eprintln!("deleting {}", session.stack_label());
    delete_stack_and_wait(session).await?;
    for bucket in &plan.emptied {
        // Retained by the template, so CloudFormation left it; --delete-data asked for it.
        let deleted = session.s3.delete_bucket().bucket(bucket).send().await;
        match deleted {
            Ok(_) => {}
            Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(404) => {}
            Err(e) => {
                return Err(classify(
                    e,
                    "s3:DeleteBucket",
                    &format!("bucket `{bucket}`"),
                    &session.region,
                )
                .into())
            }
        }
    }
    Ok(())
}

/// Logical ids with `DeletionPolicy: Retain` in the deployed template. Our template writes
/// each resource as `  LogicalId:` and its policy as `    DeletionPolicy: Retain`.
pub(super) async fn retained_resources(session: &AwsSession) -> anyhow::Result<BTreeSet<String>> {
    let out = session.call(
        session
            .cfn
            .get_template()
            .stack_name(&session.stack)
            .send()
            .await,
        "cloudformation:GetTemplate",
        &session.stack_label(),
    )?;
    Ok(retained_in_template(
        out.template_body().unwrap_or_default(),
    ))
}

pub fn retained_in_template(template: &str) -> BTreeSet<String> {
    let mut retained = BTreeSet::new();
    let mut in_resources = false;
    let mut current: Option<&str> = None;
    for line in template.lines() {
        if !line.starts_with(' ') && !line.trim().is_empty() && !line.starts_with('#') {
            in_resources = line.trim_end() == "Resources:";
            current = None;
            continue;
        }
        if !in_resources {
            continue;
        }
        if let Some(rest) = line.strip_prefix("  ") {
            if !rest.starts_with(' ') && !rest.starts_with('#') && rest.trim_end().ends_with(':') {
                current = Some(rest.trim_end().trim_end_matches(':'));
                continue;
            }
        }
        if line.trim() == "DeletionPolicy: Retain" {
            if let Some(id) = current {
                retained.insert(id.to_string());
            }
        }
    }
    retained
}

pub(super) async fn stack_resources(session: &AwsSession) -> anyhow::Result<Vec<Resource>> {
    let mut resources = Vec::new();
    let mut next = None;
    loop {
        let out = session.call(
            session
                .cfn
                .list_stack_resources()
                .stack_name(&session.stack)
                .set_next_token(next)
                .send()
                .await,
            "cloudformation:ListStackResources",
            &session.stack_label(),
        )?;
        for r in out.stack_resource_summaries() {
            // Every resource of a template has a logical id; an entry without one (moto lists
            // a few) names nothing the user could recognise or act on.
            if r.logical_resource_id().is_none_or(str::is_empty) {
                continue;
            }
            resources.push(Resource {
                logical_id: r.logical_resource_id().unwrap_or("?").to_string(),
                resource_type: r.resource_type().unwrap_or("?").to_string(),
                physical_id: r.physical_resource_id().unwrap_or("").to_string(),
            });
        }
        next = out.next_token().map(str::to_string);
        if next.is_none() {
            break;
        }
    }
    Ok(resources)
}

/// Deletes every object version and delete marker, so the bucket itself can be deleted.
pub(super) async fn empty_bucket(session: &AwsSession, bucket: &str) -> anyhow::Result<()> {
    let what = format!("bucket `{bucket}`");
    let mut key_marker = None;
    let mut version_marker = None;
    loop {
        let out = session.call(
            session
                .s3
                .list_object_versions()
                .bucket(bucket)
                .set_key_marker(key_marker.clone())
                .set_version_id_marker(version_marker.clone())
                .send()
                .await,
            "s3:ListBucketVersions",
            &what,
        )?;
        let versions = out
            .versions()
            .iter()
            .map(|v| (v.key().unwrap_or_default(), v.version_id()))
            .chain(
                out.delete_markers()
                    .iter()
                    .map(|m| (m.key().unwrap_or_default(), m.version_id())),
            );
        for (key, version) in versions {
            session.call(
                session
                    .s3
                    .delete_object()
                    .bucket(bucket)
                    .key(key)
                    .set_version_id(version.map(str::to_string))
                    .send()
                    .await,
                "s3:DeleteObjectVersion",
                &format!("s3://{bucket}/{key}"),
            )?;
        }
        if out.is_truncated() != Some(true) {
            return Ok(());
        }
        key_marker = out.next_key_marker().map(str::to_string);
        version_marker = out.next_version_id_marker().map(str::to_string);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EscherConfig;

    #[test]
    fn retained_resources_are_read_from_the_template() {
        let template = "Parameters:\n  X:\n    Type: String\nResources:\n  # comment\n  AuditBucket:\n    Type: AWS::S3::Bucket\n    DeletionPolicy: Retain\n    Properties:\n      Foo: 1\n  Topic:\n    Type: AWS::SNS::Topic\n  StateBucket:\n    DeletionPolicy: Retain\nOutputs:\n  A:\n    DeletionPolicy: Retain\n";
        let retained = retained_in_template(template);
        assert_eq!(
            retained.into_iter().collect::<Vec<_>>(),
            ["AuditBucket", "StateBucket"]
        );
    }

    #[test]
    fn the_rendered_template_retains_the_audit_and_state_buckets() {
        let config = EscherConfig::default();
        let template = crate::render::aws::for_deploy(&config, "UTC".parse().expect("tz"), true)
            .expect("render");
        let retained = retained_in_template(&template);
        for id in ["AuditBucket", "StateBucket", "EncryptionKey"] {
            assert!(retained.contains(id), "{id} must be retained: {retained:?}");
        }
        assert!(!retained.contains("AlertFunction"));
    }
}
