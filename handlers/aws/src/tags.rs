//! Reading a resource's tags for the pipeline's enrich step, when the event itself carried
//! none (CloudTrail, alarms): the tags say the environment and the data classification,
//! which decide severity and which approvals apply. Also the one tag a fix leaves on an EC2
//! resource it changed ([`set_ec2_tag`]), and how such a tag's value is read back
//! ([`marker_fields`]).

use escher_core::resource_types::aws as aws_types;
use std::collections::BTreeMap;

use aws_sdk_ec2::types::{Filter, Tag};
use escher_core::remediate::{RemediationError, RequiredPermission};

use crate::calls::{Access, CallLog};
use crate::clients::AwsClients;

pub(crate) const PERMISSIONS: &[RequiredPermission] = &[
    RequiredPermission {
        action: "s3:GetBucketTagging",
        resource: "arn:${AWS::Partition}:s3:::*",
        why: "the enrich step reads a bucket's tags (environment, data classification)",
    },
    RequiredPermission {
        action: "ec2:DescribeTags",
        resource: "*",
        why: "the enrich step reads instance, volume and security group tags (Describe calls have no resource-level permissions)",
    },
];

/// Reads tags of S3 buckets, EC2 instances, EBS volumes and security groups.
#[derive(Debug, Clone)]
pub struct AwsResourceTags {
    clients: AwsClients,
}

impl AwsResourceTags {
    pub fn new(clients: AwsClients) -> Self {
        AwsResourceTags { clients }
    }

    /// The tags of the resource `id` (a bucket name or ARN, an `i-`, `vol-` or `sg-` id or
    /// its ARN) of `resource_type` in `region`. A resource type without tags here (or
    /// unknown) gives an empty map: enrichment is best effort, the event is handled anyway.
    pub async fn tags(
        &self,
        resource_type: &str,
        id: &str,
        region: &str,
    ) -> Result<BTreeMap<String, String>, RemediationError> {
        let clients = self.clients.in_region(region);
        let short = id.rsplit(['/', ':']).next().unwrap_or(id);
        let mut log = CallLog::metered(clients.meter());
        match resource_type {
            aws_types::S3_BUCKET => {
                let result = log
                    .run(
                        "s3",
                        "GetBucketTagging",
                        short,
                        Access::Read,
                        clients.s3().get_bucket_tagging().bucket(short).send(),
                    )
                    .await;
                match result {
                    Ok(out) => Ok(out
                        .tag_set()
                        .iter()
                        .map(|t| (t.key().to_string(), t.value().to_string()))
                        .collect()),
                    Err(e) if e.code() == Some("NoSuchTagSet") => Ok(BTreeMap::new()),
                    Err(e) => Err(log.fail(e)),
                }
            }
            aws_types::EC2_INSTANCE | aws_types::EBS_VOLUME | aws_types::SECURITY_GROUP => {
                let mut tags = BTreeMap::new();
                let mut next: Option<String> = None;
                loop {
                    let out = log
                        .must(
                            "ec2",
                            "DescribeTags",
                            short,
                            Access::Read,
                            clients
                                .ec2()
                                .describe_tags()
                                .filters(
                                    Filter::builder().name("resource-id").values(short).build(),
                                )
                                .set_next_token(next.take())
                                .send(),
                        )
                        .await?;
                    for t in out.tags() {
                        if let (Some(k), Some(v)) = (t.key(), t.value()) {
                            tags.insert(k.to_string(), v.to_string());
                        }
                    }
                    match out.next_token() {
                        Some(token) if !token.is_empty() => next = Some(token.to_string()),
                        _ => break,
                    }
                }
                Ok(tags)
            }
            _ => Ok(BTreeMap::new()),
        }
    }
}

/// Sets one tag on an EC2 resource (an instance, a volume): what a fix leaves on what it
/// changed.
pub(crate) async fn set_ec2_tag(
    clients: &AwsClients,
    id: &str,
    key: &str,
    value: &str,
    log: &mut CallLog,
) -> Result<(), RemediationError> {
    log.must(
        "ec2",
        "CreateTags",
        id,
        Access::Write,
        clients
            .ec2()
            .create_tags()
            .resources(id)
            .tags(Tag::builder().key(key).value(value).build())
            .send(),
    )
    .await?;
    Ok(())
}

/// The `key=value` words of a tag a fix leaves on a resource it changed
/// (`event=aws-1 from=100 to=120`); a word without `=` is ignored. One reading for every
/// fix's marker, so they all read a value the same way.
pub(crate) fn marker_fields(value: &str) -> BTreeMap<&str, &str> {
    value
        .split_whitespace()
        .filter_map(|word| word.split_once('='))
        .collect()
}

#[cfg(test)]
mod marker_tests {
    use super::marker_fields;

    #[test]
    fn a_marker_value_reads_as_its_fields() {
        let fields = marker_fields("event=aws-1 from=web:7  to=web:6 stray");
        assert_eq!(fields.get("event"), Some(&"aws-1"));
        assert_eq!(fields.get("from"), Some(&"web:7"));
        assert_eq!(fields.get("to"), Some(&"web:6"));
        assert_eq!(fields.len(), 3);
        assert!(marker_fields("").is_empty());
    }
}
