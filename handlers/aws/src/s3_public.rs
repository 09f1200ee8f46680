//! `make_bucket_private` for S3: turn on all four public-access-block settings and remove
//! the ACL grants to everyone (`AllUsers`) and to any AWS account (`AuthenticatedUsers`),
//! keeping the owner's and every other grant. Verified by reading the block, the ACL and the
//! bucket policy status back.

use async_trait::async_trait;
use aws_sdk_s3::types::{Grant, Owner, PublicAccessBlockConfiguration, Type};
use escher_core::approvals::Action;
use escher_core::remediate::{
    FixDescription, Mode, Remediation, RemediationError, RemediationReport, RemediationRequest,
    RemediationStatus, RequiredPermission, Verification, VerificationCheck,
};
use escher_core::resource_types::aws as aws_types;

use crate::calls::{Access, CallLog};
use crate::clients::AwsClients;
use crate::report::{check, join_words};
use crate::target::{bucket_name, Target};

pub(crate) const PERMISSIONS: &[RequiredPermission] = &[
    RequiredPermission {
        action: "s3:GetBucketPublicAccessBlock",
        resource: "arn:${AWS::Partition}:s3:::*",
        why:
            "make_bucket_private reads the bucket's public access block before and after the change",
    },
    RequiredPermission {
        action: "s3:PutBucketPublicAccessBlock",
        resource: "arn:${AWS::Partition}:s3:::*",
        why: "make_bucket_private turns on all four public access block settings",
    },
    RequiredPermission {
        action: "s3:GetBucketAcl",
        resource: "arn:${AWS::Partition}:s3:::*",
        why: "make_bucket_private finds public ACL grants and verifies they are gone",
    },
    RequiredPermission {
        action: "s3:PutBucketAcl",
        resource: "arn:${AWS::Partition}:s3:::*",
        why:
            "make_bucket_private rewrites the ACL without the AllUsers / AuthenticatedUsers grants",
    },
    RequiredPermission {
        action: "s3:GetBucketPolicyStatus",
        resource: "arn:${AWS::Partition}:s3:::*",
        why: "make_bucket_private verifies the bucket policy does not make the bucket public",
    },
];

const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
const AUTHENTICATED_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";

/// The four settings, in the order AWS documents them.
const SETTINGS: [&str; 4] = [
    "BlockPublicAcls",
    "IgnorePublicAcls",
    "BlockPublicPolicy",
    "RestrictPublicBuckets",
];

/// Makes a public S3 bucket private.
#[derive(Debug, Clone)]
pub struct S3PublicAccessRemediation {
    clients: AwsClients,
}

impl S3PublicAccessRemediation {
    pub fn new(clients: AwsClients) -> Self {
        S3PublicAccessRemediation { clients }
    }
}

/// What the bucket looked like at one moment.
#[derive(Debug, Clone)]
pub(crate) struct BucketState {
    /// `None`: the bucket has no public access block configuration at all.
    block: Option<[bool; 4]>,
    owner: Option<Owner>,
    grants: Vec<Grant>,
    /// `None`: the bucket has no policy.
    policy_public: Option<bool>,
}

impl BucketState {
    fn settings(&self) -> [bool; 4] {
        self.block.unwrap_or([false; 4])
    }

    fn settings_off(&self) -> Vec<&'static str> {
        SETTINGS
            .iter()
            .zip(self.settings())
            .filter(|(_, on)| !on)
            .map(|(name, _)| *name)
            .collect()
    }

    /// Why anyone on the internet can read the bucket now, one reason a line; empty when
    /// nobody can: a public ACL grant counts unless `IgnorePublicAcls` is on, a public
    /// policy unless `RestrictPublicBuckets` is on (how S3 itself evaluates access).
    pub(crate) fn public_reasons(&self) -> Vec<String> {
        let [_, ignore_acls, _, restrict] = self.settings();
        let mut reasons = Vec::new();
        if !ignore_acls {
            reasons.extend(
                self.public_grants()
                    .into_iter()
                    .map(|g| format!("ACL grants {}", describe_grant(g))),
            );
        }
        if self.policy_public == Some(true) && !restrict {
            reasons.push("the bucket policy is public".to_string());
        }
        reasons
    }

    fn public_grants(&self) -> Vec<&Grant> {
        self.grants.iter().filter(|g| is_public(g)).collect()
    }

    fn owner_grants(&self) -> Vec<String> {
        let owner_id = self.owner.as_ref().and_then(|o| o.id());
        self.grants
            .iter()
            .filter(|g| owner_id.is_some() && g.grantee().and_then(|e| e.id()) == owner_id)
            .map(describe_grant)
            .collect()
    }
}

fn is_public(grant: &Grant) -> bool {
    grant
        .grantee()
        .and_then(|g| g.uri())
        .is_some_and(|uri| uri == ALL_USERS || uri == AUTHENTICATED_USERS)
}

fn grantee_words(grant: &Grant) -> String {
    let Some(grantee) = grant.grantee() else {
        return "an unnamed grantee".to_string();
    };
    match grantee.r#type() {
        Type::Group => {
            let uri = grantee.uri().unwrap_or_default();
            uri.rsplit('/').next().unwrap_or(uri).to_string()
        }
        Type::CanonicalUser => format!("canonical user {}", grantee.id().unwrap_or("?")),
        Type::AmazonCustomerByEmail => grantee
            .email_address()
            .unwrap_or("an e-mail grantee")
            .to_string(),
        other => other.as_str().to_string(),
    }
}

fn describe_grant(grant: &Grant) -> String {
    let permission = grant.permission().map(|p| p.as_str()).unwrap_or("?");
    format!("{permission} to {}", grantee_words(grant))
}

/// The `aws s3api put-bucket-acl` grant arguments that recreate `grants` exactly (the call
/// replaces the whole ACL, so every grant must be listed).
fn acl_arguments(grants: &[Grant]) -> String {
    let mut by_permission: Vec<(&str, Vec<String>)> = Vec::new();
    for grant in grants {
        let Some(grantee) = grant.grantee() else {
            continue;
        };
        let who = match (grantee.uri(), grantee.id(), grantee.email_address()) {
            (Some(uri), _, _) => format!("uri={uri}"),
            (None, Some(id), _) => format!("id={id}"),
            (None, None, Some(mail)) => format!("emailaddress={mail}"),
            _ => continue,
        };
        let flag = match grant.permission().map(|p| p.as_str()) {
            Some("READ") => "--grant-read",
            Some("WRITE") => "--grant-write",
            Some("READ_ACP") => "--grant-read-acp",
            Some("WRITE_ACP") => "--grant-write-acp",
            Some("FULL_CONTROL") => "--grant-full-control",
            _ => continue,
        };
        match by_permission.iter_mut().find(|(f, _)| *f == flag) {
            Some((_, list)) => list.push(who),
            None => by_permission.push((flag, vec![who])),
        }
    }
    by_permission
        .into_iter()
        .map(|(flag, who)| format!("{flag} '{}'", who.join(",")))
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) async fn read_state(
    clients: &AwsClients,
    bucket: &str,
    log: &mut CallLog,
) -> Result<BucketState, RemediationError> {
    let s3 = &clients.s3();
    // The three reads are independent: one round trip instead of three. Each has a log of
    // its own, appended in the order they are listed here.
    let (mut block_log, mut acl_log, mut policy_log) = (
        CallLog::metered(clients.meter()),
        CallLog::metered(clients.meter()),
        CallLog::metered(clients.meter()),
    );
    let (block, acl, policy) = tokio::join!(
        block_log.run(
            "s3",
            "GetPublicAccessBlock",
            bucket,
            Access::Read,
            s3.get_public_access_block().bucket(bucket).send(),
        ),
        acl_log.run(
            "s3",
            "GetBucketAcl",
            bucket,
            Access::Read,
            s3.get_bucket_acl().bucket(bucket).send(),
        ),
        policy_log.run(
            "s3",
            "GetBucketPolicyStatus",
            bucket,
            Access::Read,
            s3.get_bucket_policy_status().bucket(bucket).send(),
        ),
    );
    for calls in [block_log, acl_log, policy_log] {
        log.append(calls);
    }
    let block = match block {
        Ok(out) => out.public_access_block_configuration().map(|c| {
            [
                c.block_public_acls().unwrap_or(false),
                c.ignore_public_acls().unwrap_or(false),
                c.block_public_policy().unwrap_or(false),
                c.restrict_public_buckets().unwrap_or(false),
            ]
        }),
        Err(e) if e.code() == Some("NoSuchPublicAccessBlockConfiguration") => None,
        // Final, like any client error, but said plainly: the alert outlived its bucket.
        Err(e) if e.code() == Some("NoSuchBucket") => {
            return Err(RemediationError::Failed {
                operation: e.operation.to_string(),
                resource: bucket.to_string(),
                message: format!(
                    "bucket {bucket} no longer exists (deleted since the event?); nothing to make private"
                ),
                api_calls: log.calls().to_vec(),
            })
        }
        Err(e) => return Err(log.fail(e)),
    };
    let acl = acl.map_err(|e| log.fail(e))?;
    let policy_public = match policy {
        Ok(out) => Some(
            out.policy_status()
                .and_then(|s| s.is_public())
                .unwrap_or(false),
        ),
        // No policy at all cannot make the bucket public.
        Err(e) if e.code() == Some("NoSuchBucketPolicy") => None,
        Err(e) => return Err(log.fail(e)),
    };
    Ok(BucketState {
        block,
        owner: acl.owner().cloned(),
        grants: acl.grants().to_vec(),
        policy_public,
    })
}

/// What "private" means, checked against one reading of the bucket.
fn checks(state: &BucketState, owner_grants_before: &[String]) -> Vec<VerificationCheck> {
    let mut checks: Vec<VerificationCheck> = SETTINGS
        .iter()
        .zip(state.settings())
        .map(|(name, on)| {
            let observed = if state.block.is_none() {
                "no public access block".to_string()
            } else {
                on.to_string()
            };
            check(format!("public access block {name}"), "true", observed, on)
        })
        .collect();
    let public: Vec<String> = state
        .public_grants()
        .into_iter()
        .map(describe_grant)
        .collect();
    checks.push(check(
        "public ACL grants",
        "none",
        if public.is_empty() {
            "none".to_string()
        } else {
            public.join("; ")
        },
        public.is_empty(),
    ));
    if !owner_grants_before.is_empty() {
        let now = state.owner_grants();
        let kept = owner_grants_before.iter().all(|g| now.contains(g));
        checks.push(check(
            "owner's grants kept",
            owner_grants_before.join("; "),
            if now.is_empty() {
                "none".to_string()
            } else {
                now.join("; ")
            },
            kept,
        ));
    }
    let restricted = state.settings()[3];
    let (observed, passed) = match state.policy_public {
        None => ("no bucket policy".to_string(), true),
        Some(false) => ("policy is not public".to_string(), true),
        Some(true) if restricted => (
            "policy is public, but RestrictPublicBuckets blocks public access".to_string(),
            true,
        ),
        Some(true) => ("policy is public".to_string(), false),
    };
    checks.push(check(
        "bucket policy status",
        "not public, or blocked by RestrictPublicBuckets",
        observed,
        passed,
    ));
    checks
}

fn undo_text(bucket: &str, before: &BucketState, changed_block: bool, removed: bool) -> String {
    let mut parts = Vec::new();
    if changed_block {
        match before.block {
            None => parts.push(format!(
                "aws s3api delete-public-access-block --bucket {bucket}   (the bucket had no public access block before)"
            )),
            Some([a, b, c, d]) => parts.push(format!(
                "aws s3api put-public-access-block --bucket {bucket} --public-access-block-configuration BlockPublicAcls={a},IgnorePublicAcls={b},BlockPublicPolicy={c},RestrictPublicBuckets={d}"
            )),
        }
    }
    if removed {
        // The ACL can only be made public again once BlockPublicAcls is off.
        parts.push(format!(
            "aws s3api put-bucket-acl --bucket {bucket} {}   (the full ACL before the change, public grants included; run after the public access block is restored)",
            acl_arguments(&before.grants)
        ));
    }
    format!(
        "To undo (this makes the bucket public again): {}",
        parts.join(" ; then ")
    )
}

const FIX: FixDescription = FixDescription {
    action: Action::MakeBucketPrivate,
    resource_types: &[aws_types::S3_BUCKET],
    permissions: PERMISSIONS,
};

#[async_trait]
impl Remediation for S3PublicAccessRemediation {
    fn description(&self) -> &'static FixDescription {
        &FIX
    }

    async fn verify(
        &self,
        request: &RemediationRequest<'_>,
    ) -> Result<Verification, RemediationError> {
        let target = Target::of(request, &FIX, &self.clients, bucket_name)?;
        let (clients, bucket, mut log) = (&target.clients, target.id.clone(), target.log());
        let state = read_state(clients, &bucket, &mut log).await?;
        // The owner's grants of now: which ones existed before the fix is only known while
        // fixing.
        Ok(Verification::from_checks(checks(
            &state,
            &state.owner_grants(),
        )))
    }

    async fn remediate(
        &self,
        request: &RemediationRequest<'_>,
    ) -> Result<RemediationReport, RemediationError> {
        let target = Target::of(request, &FIX, &self.clients, bucket_name)?;
        let (clients, bucket, mut log) = (&target.clients, target.id.clone(), target.log());

        let before = read_state(clients, &bucket, &mut log).await?;
        let off = before.settings_off();
        let public: Vec<String> = before
            .public_grants()
            .into_iter()
            .map(describe_grant)
            .collect();
        let owner_grants = before.owner_grants();
        let mut next_steps = Vec::new();
        if before.policy_public == Some(true) {
            next_steps.push(format!(
                "The bucket policy of {bucket} still grants public access (RestrictPublicBuckets blocks it now); remove the public statement: aws s3api get-bucket-policy --bucket {bucket}"
            ));
        }
        let report =
            |status, summary: String, steps, calls, verification, undo: Option<String>, next| {
                RemediationReport::new(request, status, summary)
                    .with_steps(steps)
                    .with_calls(calls)
                    .with_verification(verification)
                    .with_undo(undo)
                    .with_next_steps(next)
            };

        if off.is_empty() && public.is_empty() {
            let verification = Verification::from_checks(checks(&before, &owner_grants));
            return Ok(report(
                RemediationStatus::AlreadyCompliant,
                format!("Bucket {bucket} already blocks all public access and has no public ACL grant; nothing changed."),
                Vec::new(),
                log.into_calls(),
                Some(verification),
                None,
                next_steps,
            ));
        }

        let mut steps = Vec::new();
        if !off.is_empty() {
            steps.push(format!(
                "turn on {} on bucket {bucket} (public access block; already on: {})",
                join_words(&off.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
                if off.len() == 4 {
                    "none".to_string()
                } else {
                    SETTINGS
                        .iter()
                        .filter(|s| !off.contains(s))
                        .copied()
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ));
        }
        for grant in &public {
            steps.push(format!("remove grant {grant} from bucket {bucket}'s ACL"));
        }
        if !public.is_empty() {
            let kept = before.grants.len() - public.len();
            steps.push(format!(
                "keep the other {kept} grant{} ({})",
                if kept == 1 { "" } else { "s" },
                before
                    .grants
                    .iter()
                    .filter(|g| !is_public(g))
                    .map(describe_grant)
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }

        if request.mode == Mode::DryRun {
            let steps: Vec<String> = steps.into_iter().map(|s| format!("would {s}")).collect();
            return Ok(report(
                RemediationStatus::WouldRemediate,
                format!(
                    "Dry run: bucket {bucket} is public; would block all public access{}.",
                    if public.is_empty() {
                        String::new()
                    } else {
                        format!(" and remove {}", join_words(&public))
                    }
                ),
                steps,
                log.into_calls(),
                None,
                None,
                next_steps,
            ));
        }

        let s3 = &clients.s3();
        if !off.is_empty() {
            let all_on = PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .ignore_public_acls(true)
                .block_public_policy(true)
                .restrict_public_buckets(true)
                .build();
            log.must(
                "s3",
                "PutPublicAccessBlock",
                &bucket,
                Access::Write,
                s3.put_public_access_block()
                    .bucket(&bucket)
                    .public_access_block_configuration(all_on)
                    .send(),
            )
            .await?;
        }
        if !public.is_empty() {
            let kept: Vec<Grant> = before
                .grants
                .iter()
                .filter(|g| !is_public(g))
                .cloned()
                .collect();
            let policy = aws_sdk_s3::types::AccessControlPolicy::builder()
                .set_owner(before.owner.clone())
                .set_grants(Some(kept))
                .build();
            log.must(
                "s3",
                "PutBucketAcl",
                &bucket,
                Access::Write,
                s3.put_bucket_acl()
                    .bucket(&bucket)
                    .access_control_policy(policy)
                    .send(),
            )
            .await?;
        }

        let after = read_state(clients, &bucket, &mut log).await?;
        let verification = Verification::from_checks(checks(&after, &owner_grants));
        let summary = if verification.passed {
            format!(
                "Bucket {bucket} now blocks all public access{}; verified.",
                if public.is_empty() {
                    String::new()
                } else {
                    format!(" and no longer grants {}", join_words(&public))
                }
            )
        } else {
            format!("Bucket {bucket} was changed but verification failed; check the failed checks and the bucket by hand.")
        };
        Ok(report(
            RemediationStatus::Remediated,
            summary,
            steps,
            log.into_calls(),
            Some(verification),
            Some(undo_text(
                &bucket,
                &before,
                !off.is_empty(),
                !public.is_empty(),
            )),
            next_steps,
        ))
    }
}
