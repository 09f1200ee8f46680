//! `make_bucket_private` for Cloud Storage: take `allUsers` and `allAuthenticatedUsers` out of
//! the bucket's IAM policy (read, then written back with its `etag`, so a change someone made
//! meanwhile is never overwritten) and enforce public access prevention, which also stops
//! object ACLs and any later grant from making the bucket public again. Verified by reading
//! the policy and the bucket back.

use async_trait::async_trait;
use escher_core::approvals::Action;
use escher_core::remediate::{
    FixDescription, Mode, Remediation, RemediationError, RemediationReport, RemediationRequest,
    RemediationStatus, RequiredPermission, Verification, VerificationCheck,
};
use escher_core::resource_types::gcp as gcp_types;
use escher_core::words::join_words;
use escher_runtime::RemoteCallMeter;
use serde_json::{json, Value};

use crate::rest::{CallLog, GcpClient, GcpOperation, HttpMethod, Service};
use crate::target;

pub(crate) const GET_BUCKET: GcpOperation = GcpOperation {
    id: "storage.buckets.get",
    service: Service::Storage,
    method: HttpMethod::Get,
    permission: "storage.buckets.get",
    mutating: false,
    long_running: false,
};
pub(crate) const PATCH_BUCKET: GcpOperation = GcpOperation {
    id: "storage.buckets.patch",
    service: Service::Storage,
    method: HttpMethod::Patch,
    permission: "storage.buckets.update",
    mutating: true,
    long_running: false,
};
pub(crate) const GET_IAM: GcpOperation = GcpOperation {
    id: "storage.buckets.getIamPolicy",
    service: Service::Storage,
    method: HttpMethod::Get,
    permission: "storage.buckets.getIamPolicy",
    mutating: false,
    long_running: false,
};
pub(crate) const SET_IAM: GcpOperation = GcpOperation {
    id: "storage.buckets.setIamPolicy",
    service: Service::Storage,
    method: HttpMethod::Put,
    permission: "storage.buckets.setIamPolicy",
    mutating: true,
    long_running: false,
};

pub(crate) const PERMISSIONS: &[RequiredPermission] = &[
    RequiredPermission {
        action: "storage.buckets.get",
        resource: "project",
        why: "make_bucket_private reads the bucket's public access prevention, before and after the change",
    },
    RequiredPermission {
        action: "storage.buckets.update",
        resource: "project",
        why: "make_bucket_private enforces public access prevention on the bucket",
    },
    RequiredPermission {
        action: "storage.buckets.getIamPolicy",
        resource: "project",
        why: "make_bucket_private finds allUsers and allAuthenticatedUsers in the bucket's IAM policy and verifies none is left",
    },
    RequiredPermission {
        action: "storage.buckets.setIamPolicy",
        resource: "project",
        why: "make_bucket_private removes allUsers and allAuthenticatedUsers from the bucket's IAM policy",
    },
];

const FIX: FixDescription = FixDescription {
    action: Action::MakeBucketPrivate,
    resource_types: &[gcp_types::GCS_BUCKET],
    permissions: PERMISSIONS,
};

/// The principals that make a bucket public.
const PUBLIC_MEMBERS: [&str; 2] = ["allUsers", "allAuthenticatedUsers"];

/// Makes a Cloud Storage bucket private.
#[derive(Debug, Clone)]
pub struct BucketPublicAccessRemediation {
    client: GcpClient,
    meter: Option<RemoteCallMeter>,
}

impl BucketPublicAccessRemediation {
    pub fn new(client: GcpClient, meter: Option<RemoteCallMeter>) -> Self {
        BucketPublicAccessRemediation { client, meter }
    }
}

/// The bucket's policy and public access prevention at one moment.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BucketState {
    policy: Value,
    /// (role, member) pairs granting a public principal.
    pub(crate) public_grants: Vec<(String, String)>,
    /// `enforced`, `inherited` or `unspecified`; absent means inherited.
    pub(crate) prevention: Option<String>,
}

impl BucketState {
    pub(crate) fn prevented(&self) -> bool {
        self.prevention.as_deref() == Some("enforced")
    }

    fn compliant(&self) -> bool {
        self.prevented() && self.public_grants.is_empty()
    }

    fn problems(&self) -> Vec<String> {
        let mut problems: Vec<String> = self
            .public_grants
            .iter()
            .map(|(role, member)| format!("{member} holds {role}"))
            .collect();
        if !self.prevented() {
            problems.push(format!(
                "public access prevention is {}",
                self.prevention.as_deref().unwrap_or("inherited")
            ));
        }
        problems
    }

    fn checks(&self) -> Vec<VerificationCheck> {
        vec![
            VerificationCheck::new(
                "public members in the IAM policy",
                "none",
                if self.public_grants.is_empty() {
                    "none".to_string()
                } else {
                    join_words(
                        &self
                            .public_grants
                            .iter()
                            .map(|(r, m)| format!("{m} ({r})"))
                            .collect::<Vec<_>>(),
                    )
                },
                self.public_grants.is_empty(),
            ),
            VerificationCheck::new(
                "iamConfiguration.publicAccessPrevention",
                "enforced",
                self.prevention.as_deref().unwrap_or("inherited"),
                self.prevented(),
            ),
        ]
    }
}

fn public_grants(policy: &Value) -> Vec<(String, String)> {
    policy
        .get("bindings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|binding| {
            let role = binding
                .get("role")
                .and_then(Value::as_str)
                .unwrap_or("a role")
                .to_string();
            binding
                .get("members")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .filter(|m| PUBLIC_MEMBERS.contains(m))
                .map(move |m| (role.clone(), m.to_string()))
        })
        .collect()
}

/// The policy without public members (bindings left empty dropped), etag and version kept.
fn without_public(policy: &Value) -> Value {
    let mut policy = policy.clone();
    if let Some(bindings) = policy.get_mut("bindings").and_then(Value::as_array_mut) {
        for binding in bindings.iter_mut() {
            if let Some(members) = binding.get_mut("members").and_then(Value::as_array_mut) {
                members.retain(|m| !m.as_str().is_some_and(|m| PUBLIC_MEMBERS.contains(&m)));
            }
        }
        bindings.retain(|b| {
            b.get("members")
                .and_then(Value::as_array)
                .is_some_and(|m| !m.is_empty())
        });
    }
    policy
}

/// The bucket's public members and public access prevention, as the fix and the nightly scan
/// judge them.
pub(crate) async fn read_state(
    client: &GcpClient,
    bucket: &str,
    log: &mut CallLog,
) -> Result<BucketState, RemediationError> {
    let path = format!("b/{bucket}");
    // Version 3 so conditional bindings come back whole and are written back unchanged.
    let policy = log
        .call(
            client,
            &GET_IAM,
            &format!("{path}/iam"),
            &[("optionsRequestedPolicyVersion", "3")],
            None,
        )
        .await
        .map_err(|e| log.fail(e))?;
    let resource = log
        .call(client, &GET_BUCKET, &path, &[], None)
        .await
        .map_err(|e| log.fail(e))?;
    Ok(BucketState {
        public_grants: public_grants(&policy),
        policy,
        prevention: resource
            .pointer("/iamConfiguration/publicAccessPrevention")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

fn undo(bucket: &str, before: &BucketState) -> String {
    let mut steps: Vec<String> = Vec::new();
    if !before.prevented() {
        steps.push(format!(
            "gcloud storage buckets update gs://{bucket} --no-public-access-prevention"
        ));
    }
    steps.extend(before.public_grants.iter().map(|(role, member)| {
        format!(
            "gcloud storage buckets add-iam-policy-binding gs://{bucket} --member={member} --role={role}"
        )
    }));
    format!("To make it public again: {}", steps.join("; "))
}

#[async_trait]
impl Remediation for BucketPublicAccessRemediation {
    fn description(&self) -> &'static FixDescription {
        &FIX
    }

    async fn remediate(
        &self,
        request: &RemediationRequest<'_>,
    ) -> Result<RemediationReport, RemediationError> {
        let bucket = target::bucket(request)?;
        let mut log = CallLog::metered(self.meter.as_ref());
        let before = read_state(&self.client, &bucket, &mut log).await?;
        if before.compliant() {
            return Ok(RemediationReport::new(
                request,
                RemediationStatus::AlreadyCompliant,
                format!("Bucket {bucket} already grants nothing to allUsers or allAuthenticatedUsers and enforces public access prevention; nothing was changed."),
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
                    "Would make bucket {bucket} private: {}.",
                    join_words(&problems)
                ),
            )
            .with_calls(log.into_calls()));
        }
        let mut steps = Vec::new();
        if !before.public_grants.is_empty() {
            let policy = without_public(&before.policy);
            log.call(
                &self.client,
                &SET_IAM,
                &format!("b/{bucket}/iam"),
                &[],
                Some(&policy),
            )
            .await
            .map_err(|e| log.fail(e))?;
            steps.push(format!(
                "Removed {} from bucket {bucket}'s IAM policy",
                join_words(
                    &before
                        .public_grants
                        .iter()
                        .map(|(r, m)| format!("{m} ({r})"))
                        .collect::<Vec<_>>()
                )
            ));
        }
        if !before.prevented() {
            let body = json!({"iamConfiguration": {"publicAccessPrevention": "enforced"}});
            log.call(
                &self.client,
                &PATCH_BUCKET,
                &format!("b/{bucket}"),
                &[],
                Some(&body),
            )
            .await
            .map_err(|e| log.fail(e))?;
            steps.push(format!(
                "Enforced public access prevention on bucket {bucket}"
            ));
        }
        let after = read_state(&self.client, &bucket, &mut log).await?;
        let verification = Verification::from_checks(after.checks());
        let (status, summary) = if verification.passed {
            (
                RemediationStatus::Remediated,
                format!(
                    "Made bucket {bucket} private ({} fixed).",
                    join_words(&problems)
                ),
            )
        } else {
            (
                RemediationStatus::Skipped,
                format!(
                    "Changed bucket {bucket}, but it still reads as public: {}.",
                    verification.failed_checks()
                ),
            )
        };
        Ok(RemediationReport::new(request, status, summary)
            .with_steps(steps)
            .with_calls(log.into_calls())
            .with_verification(verification)
            .with_undo(undo(&bucket, &before)))
    }

    async fn verify(
        &self,
        request: &RemediationRequest<'_>,
    ) -> Result<Verification, RemediationError> {
        let bucket = target::bucket(request)?;
        let mut log = CallLog::metered(self.meter.as_ref());
        let state = read_state(&self.client, &bucket, &mut log).await?;
        Ok(Verification::from_checks(state.checks()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Value {
        json!({"kind": "storage#policy", "etag": "CAE=", "version": 1, "bindings": [
            {"role": "roles/storage.legacyBucketOwner", "members": ["projectOwner:shop"]},
            {"role": "roles/storage.objectViewer", "members": ["allUsers", "group:readers@example.com"]},
            {"role": "roles/storage.legacyBucketReader", "members": ["allAuthenticatedUsers"]}
        ]})
    }

    #[test]
    fn only_public_members_are_taken_out_and_the_etag_is_kept() {
        assert_eq!(
            public_grants(&policy()),
            [
                (
                    "roles/storage.objectViewer".to_string(),
                    "allUsers".to_string()
                ),
                (
                    "roles/storage.legacyBucketReader".to_string(),
                    "allAuthenticatedUsers".to_string()
                ),
            ]
        );
        let private = without_public(&policy());
        assert_eq!(private["etag"], "CAE=");
        assert_eq!(
            private["bindings"],
            json!([
                {"role": "roles/storage.legacyBucketOwner", "members": ["projectOwner:shop"]},
                {"role": "roles/storage.objectViewer", "members": ["group:readers@example.com"]}
            ])
        );
        assert!(public_grants(&private).is_empty());
    }

    #[test]
    fn a_bucket_is_private_only_with_no_public_member_and_prevention_enforced() {
        let inherited = BucketState {
            policy: json!({}),
            public_grants: vec![],
            prevention: Some("inherited".into()),
        };
        assert!(!inherited.compliant());
        assert_eq!(
            inherited.problems(),
            ["public access prevention is inherited"]
        );
        let undo = undo(
            "web-assets",
            &BucketState {
                public_grants: public_grants(&policy()),
                ..inherited
            },
        );
        assert!(
            undo.contains("gs://web-assets --no-public-access-prevention"),
            "{undo}"
        );
        assert!(
            undo.contains("--member=allUsers --role=roles/storage.objectViewer"),
            "{undo}"
        );
    }
}
