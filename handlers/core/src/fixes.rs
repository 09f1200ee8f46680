//! One registry of a cloud's fixes: the pipeline looks a fix up by (action, resource type)
//! here, the provisioner derives the function's permissions from it, and a pair no fix
//! covers is answered in one way, [`not_supported`]: a `NotSupported` report the pipeline
//! audits and notifies like any other outcome, never an error.
//!
//! A cloud registers each of its [`Remediation`]s once; registering a second fix for a pair
//! already covered is refused, so which fix runs is never a matter of order.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use crate::approvals::Action;
use crate::remediate::{
    Remediation, RemediationReport, RemediationRequest, RemediationStatus, RequiredPermission,
};

#[derive(Debug, thiserror::Error)]
pub enum FixRegistryError {
    #[error("two fixes for {action} on {resource_type}: the registry already holds one; a pair has one fix")]
    Duplicate {
        action: Action,
        resource_type: &'static str,
    },
    #[error("the fix for {action} names no resource type, so it could never be looked up")]
    NoResourceType { action: Action },
}

/// A cloud's fixes, each reachable by the (action, resource type) pairs it declares.
#[derive(Clone, Default)]
pub struct FixRegistry {
    fixes: Vec<Arc<dyn Remediation>>,
}

impl fmt::Debug for FixRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.pairs()).finish()
    }
}

impl FixRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `fix` for every resource type it declares.
    pub fn register(&mut self, fix: Arc<dyn Remediation>) -> Result<(), FixRegistryError> {
        let action = fix.action();
        if fix.resource_types().is_empty() {
            return Err(FixRegistryError::NoResourceType { action });
        }
        for &resource_type in fix.resource_types() {
            if self.lookup(action, resource_type).is_some() {
                return Err(FixRegistryError::Duplicate {
                    action,
                    resource_type,
                });
            }
        }
        self.fixes.push(fix);
        Ok(())
    }

    /// [`FixRegistry::register`] for building a registry in one expression.
    pub fn with(mut self, fix: Arc<dyn Remediation>) -> Result<Self, FixRegistryError> {
        self.register(fix)?;
        Ok(self)
    }

    /// The fix for `action` on a resource of `resource_type` (`UnifiedEvent.resource.type`);
    /// `None` when this cloud has none (answer with [`not_supported`]).
    pub fn lookup(&self, action: Action, resource_type: &str) -> Option<&dyn Remediation> {
        self.fixes
            .iter()
            .find(|f| f.action() == action && f.resource_types().contains(&resource_type))
            .map(|f| f.as_ref())
    }

    /// Every registered fix, in registration order.
    pub fn fixes(&self) -> impl Iterator<Item = &dyn Remediation> {
        self.fixes.iter().map(|f| f.as_ref())
    }

    /// Every (action, resource type) pair a fix covers, sorted.
    pub fn pairs(&self) -> Vec<(Action, &'static str)> {
        let mut pairs: Vec<(Action, &'static str)> = self
            .fixes
            .iter()
            .flat_map(|f| f.resource_types().iter().map(move |t| (f.action(), *t)))
            .collect();
        pairs.sort_by(|a, b| (a.0.as_str(), a.1).cmp(&(b.0.as_str(), b.1)));
        pairs
    }

    /// The permissions of every fix, deduplicated and sorted by action then resource: what
    /// the function's identity needs to apply them, and nothing more.
    pub fn required_permissions(&self) -> Vec<RequiredPermission> {
        merge_permissions(self.fixes.iter().map(|f| f.required_permissions()))
    }
}

/// Merges permission lists, keeping the first reason given for an (action, resource) pair,
/// sorted by action then resource.
pub fn merge_permissions<'a>(
    lists: impl IntoIterator<Item = &'a [RequiredPermission]>,
) -> Vec<RequiredPermission> {
    let mut seen = BTreeSet::new();
    let mut all: Vec<RequiredPermission> = lists
        .into_iter()
        .flatten()
        .filter(|p| seen.insert((p.action, p.resource)))
        .copied()
        .collect();
    all.sort_by(|a, b| (a.action, a.resource).cmp(&(b.action, b.resource)));
    all
}

/// The answer when no fix covers the request's (action, resource type): nothing is
/// changed, no call is made, and the operator is told to handle it by hand.
pub fn not_supported(request: &RemediationRequest<'_>) -> RemediationReport {
    let resource = &request.event.resource;
    let kind = if resource.kind.is_empty() {
        "this resource"
    } else {
        resource.kind.as_str()
    };
    let name = if resource.name.is_empty() {
        &resource.id
    } else {
        &resource.name
    };
    RemediationReport::new(
        request,
        RemediationStatus::NotSupported,
        format!(
            "{} is not supported yet for {kind}; nothing was changed.",
            request.action
        ),
    )
    .with_next_steps(vec![format!(
        "Handle {name} by hand: {} is approved but Escher cannot apply it to {kind} yet.",
        request.action
    )])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remediate::{FixDescription, RemediationError, RemediationRequest};
    use async_trait::async_trait;

    struct Fix(&'static FixDescription);

    #[async_trait]
    impl Remediation for Fix {
        fn description(&self) -> &'static FixDescription {
            self.0
        }
        async fn remediate(
            &self,
            request: &RemediationRequest<'_>,
        ) -> Result<RemediationReport, RemediationError> {
            Ok(not_supported(request))
        }
        async fn verify(
            &self,
            _request: &RemediationRequest<'_>,
        ) -> Result<crate::remediate::Verification, RemediationError> {
            Ok(crate::remediate::Verification::from_checks(vec![]))
        }
    }

    const READ: RequiredPermission = RequiredPermission {
        action: "svc:Read",
        resource: "*",
        why: "first reason",
    };
    const WRITE: RequiredPermission = RequiredPermission {
        action: "svc:Write",
        resource: "arn:x",
        why: "writes",
    };
    const READ_AGAIN: RequiredPermission = RequiredPermission {
        action: "svc:Read",
        resource: "*",
        why: "second reason",
    };

    fn fix(
        action: Action,
        resource_types: &'static [&'static str],
        permissions: &'static [RequiredPermission],
    ) -> Arc<dyn Remediation> {
        // A test's fixes live for the whole test run.
        Arc::new(Fix(Box::leak(Box::new(FixDescription {
            action,
            resource_types,
            permissions,
        }))))
    }

    #[test]
    fn a_fix_is_found_by_action_and_resource_type_only() {
        let registry = FixRegistry::new()
            .with(fix(
                Action::MakeBucketPrivate,
                &["s3_bucket", "gcs_bucket"],
                &[WRITE, READ],
            ))
            .and_then(|r| {
                r.with(fix(
                    Action::StopIdleInstance,
                    &["ec2_instance"],
                    &[READ_AGAIN],
                ))
            })
            .expect("registry");
        let found = registry
            .lookup(Action::MakeBucketPrivate, "gcs_bucket")
            .expect("a fix");
        assert_eq!(found.action(), Action::MakeBucketPrivate);
        assert!(registry
            .lookup(Action::MakeBucketPrivate, "ec2_instance")
            .is_none());
        assert!(registry
            .lookup(Action::RestartService, "s3_bucket")
            .is_none());
        assert_eq!(registry.pairs().len(), 3);
        // Deduplicated, sorted, the first reason kept.
        let permissions = registry.required_permissions();
        assert_eq!(
            permissions
                .iter()
                .map(|p| (p.action, p.why))
                .collect::<Vec<_>>(),
            [("svc:Read", "first reason"), ("svc:Write", "writes")]
        );
    }

    #[test]
    fn a_second_fix_for_a_pair_and_a_fix_for_nothing_are_refused() {
        let mut registry = FixRegistry::new();
        registry
            .register(fix(Action::MakeBucketPrivate, &["s3_bucket"], &[]))
            .expect("first");
        let err = registry
            .register(fix(
                Action::MakeBucketPrivate,
                &["gcs_bucket", "s3_bucket"],
                &[],
            ))
            .expect_err("s3_bucket is taken");
        assert!(err.to_string().contains("s3_bucket"), "{err}");
        assert!(
            registry
                .lookup(Action::MakeBucketPrivate, "gcs_bucket")
                .is_none(),
            "a refused fix adds none of its pairs"
        );
        let err = registry
            .register(fix(Action::RestartService, &[], &[]))
            .expect_err("no type");
        assert!(
            matches!(err, FixRegistryError::NoResourceType { .. }),
            "{err}"
        );
    }
}
