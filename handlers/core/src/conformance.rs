//! The conformance suite every cloud's fixes and checks pass, as every store backend passes
//! the store conformance suite. A cloud's tests bring, per fix, a [`FixScenario`] on the
//! cloud's test double (moto for AWS) and how its recorded calls map to the permissions a
//! fix declares; the suite takes the same steps for every fix and every check, so a new
//! cloud is held to exactly what AWS is held to.
//!
//! A fix must: make no mutating call in a dry run; make only calls its declared permissions
//! cover (so the role the provisioner derives from them is enough); fix and verify; report
//! `already_compliant`, changing nothing, when applied a second time; and fail its
//! verification once the resource is changed back. A check must: key every finding by its
//! name and resource and give it the check's cloud; give the same findings on a second run (stable keys, so the report's deltas
//! mean something); and offer only fixes the cloud has, else a command to run by hand.

use std::collections::BTreeSet;

use async_trait::async_trait;

use crate::approvals::{Action, Conditions};
use crate::fixes::FixRegistry;
use crate::remediate::{
    ApiCall, Mode, Remediation, RemediationError, RemediationReport, RemediationRequest,
    RemediationStatus,
};
use crate::scan::{ScanCheck, ScanContext, ScanError};
use crate::{EventSource, UnifiedEvent};

/// What a scenario's own set-up or change failed with (it talks to the test double).
pub type ScenarioError = Box<dyn std::error::Error + Send + Sync>;

/// One fix's scenario on a cloud's test double.
#[async_trait]
pub trait FixScenario: Send + Sync {
    /// Creates a resource that needs the fix, and the event about it.
    async fn prepare(&self) -> Result<UnifiedEvent, ScenarioError>;

    /// Changes the fixed resource back to what the fix corrects, as a person would.
    async fn change_back(&self, event: &UnifiedEvent) -> Result<(), ScenarioError>;

    /// The conditions of the approval the fix runs under.
    fn conditions(&self) -> Conditions {
        Conditions::default()
    }
}

/// The permission one recorded call needs, in the cloud's naming (`s3:PutBucketAcl`).
pub type PermissionOf = fn(&ApiCall) -> String;

#[derive(Debug, thiserror::Error)]
pub enum ConformanceFailure {
    /// The implementation broke one of the suite's rules.
    #[error("{subject} breaks \"{rule}\": {detail}")]
    Broken {
        subject: String,
        rule: &'static str,
        detail: String,
    },
    #[error("{subject}: the scenario on the test double failed: {source}")]
    Scenario {
        subject: String,
        #[source]
        source: ScenarioError,
    },
    #[error("{subject}: {source}")]
    Fix {
        subject: String,
        #[source]
        source: Box<RemediationError>,
    },
    #[error("{subject}: {source}")]
    Check {
        subject: String,
        #[source]
        source: ScanError,
    },
}

/// The rules a fix was held to, each once it passed.
pub const FIX_RULES: [&str; 5] = [
    "a dry run makes no mutating call",
    "every call is covered by the declared permissions",
    "a fix applied twice is already compliant the second time",
    "verification passes after the fix",
    "verification fails when the resource is changed back",
];

/// Runs the fix rules on one fix; `Ok` with the steps taken, for the test's log.
pub async fn check_fix(
    fix: &dyn Remediation,
    scenario: &dyn FixScenario,
    permission_of: PermissionOf,
) -> Result<Vec<String>, ConformanceFailure> {
    let subject = format!("the {} fix", fix.action());
    let broken = |rule: &'static str, detail: String| ConformanceFailure::Broken {
        subject: subject.clone(),
        rule,
        detail,
    };
    let scenario_failed = |source| ConformanceFailure::Scenario {
        subject: subject.clone(),
        source,
    };
    let fix_failed = |source| ConformanceFailure::Fix {
        subject: subject.clone(),
        source: Box::new(source),
    };
    let declared: BTreeSet<&str> = fix
        .required_permissions()
        .iter()
        .map(|p| p.action)
        .collect();
    let covered = |report: &RemediationReport| -> Result<(), ConformanceFailure> {
        let missing: Vec<String> = report
            .api_calls
            .iter()
            .map(permission_of)
            .filter(|p| !declared.contains(p.as_str()))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(broken(
                FIX_RULES[1],
                format!("not declared: {}", missing.join(", ")),
            ))
        }
    };
    let no_mutation = |rule: &'static str, report: &RemediationReport| {
        let mutating: Vec<&str> = report
            .api_calls
            .iter()
            .filter(|c| c.mutating)
            .map(|c| c.operation.as_str())
            .collect();
        if mutating.is_empty() {
            Ok(())
        } else {
            Err(broken(
                rule,
                format!("mutating calls: {}", mutating.join(", ")),
            ))
        }
    };
    let mut steps = Vec::new();

    let event = scenario.prepare().await.map_err(scenario_failed)?;
    let conditions = scenario.conditions();
    let request = |mode| RemediationRequest {
        event: &event,
        action: fix.action(),
        conditions: &conditions,
        mode,
    };

    let dry = fix
        .remediate(&request(Mode::DryRun))
        .await
        .map_err(fix_failed)?;
    if dry.status != RemediationStatus::WouldRemediate {
        return Err(broken(
            FIX_RULES[0],
            format!(
                "a dry run on a resource that needs the fix reported {:?}",
                dry.status
            ),
        ));
    }
    no_mutation(FIX_RULES[0], &dry)?;
    covered(&dry)?;
    steps.push(format!(
        "dry run: {} calls, none mutating",
        dry.api_calls.len()
    ));

    let applied = fix
        .remediate(&request(Mode::Apply))
        .await
        .map_err(fix_failed)?;
    covered(&applied)?;
    if applied.status != RemediationStatus::Remediated
        || !applied.verification.as_ref().is_some_and(|v| v.passed)
    {
        return Err(broken(
            FIX_RULES[3],
            format!(
                "applied: {:?}, {} ({:?})",
                applied.status,
                applied.summary,
                applied.verification.as_ref().map(|v| v.failed_checks())
            ),
        ));
    }
    let verified = fix
        .verify(&request(Mode::Apply))
        .await
        .map_err(fix_failed)?;
    if !verified.passed {
        return Err(broken(
            FIX_RULES[3],
            format!("verify after the fix failed: {}", verified.failed_checks()),
        ));
    }
    steps.push(format!(
        "applied: {} calls, verified ({} checks)",
        applied.api_calls.len(),
        verified.checks.len()
    ));

    let again = fix
        .remediate(&request(Mode::Apply))
        .await
        .map_err(fix_failed)?;
    covered(&again)?;
    if again.status != RemediationStatus::AlreadyCompliant {
        return Err(broken(
            FIX_RULES[2],
            format!("the second time: {:?}, {}", again.status, again.summary),
        ));
    }
    no_mutation(FIX_RULES[2], &again)?;
    steps.push("applied again: already compliant, nothing changed".to_string());

    scenario
        .change_back(&event)
        .await
        .map_err(scenario_failed)?;
    let after_change = fix
        .verify(&request(Mode::Apply))
        .await
        .map_err(fix_failed)?;
    if after_change.passed {
        return Err(broken(
            FIX_RULES[4],
            "verify passed although the resource was changed back".to_string(),
        ));
    }
    steps.push(format!(
        "changed back: verification fails ({})",
        after_change.failed_checks()
    ));
    Ok(steps)
}

/// Runs the check rules on one check in `region`; `Ok` with the number of findings.
pub async fn check_scan_check(
    check: &dyn ScanCheck,
    fixes: &FixRegistry,
    region: &str,
    scan: &ScanContext,
) -> Result<usize, ConformanceFailure> {
    let subject = format!("the {} check", check.id());
    let broken = |rule: &'static str, detail: String| ConformanceFailure::Broken {
        subject: subject.clone(),
        rule,
        detail,
    };
    let failed = |source| ConformanceFailure::Check {
        subject: subject.clone(),
        source,
    };
    let first = check.output(region, scan).await.map_err(failed)?;
    for finding in &first.findings {
        let event = &finding.event;
        // A check may report under more than one name (the EBS check: unencrypted volumes
        // and orphaned snapshots); each finding's key is its name and its resource.
        let key = format!("{}:{}", finding.check, event.resource.id);
        if finding.check.is_empty() || finding.key != key {
            return Err(broken(
                "every finding's key is its check's name and its resource",
                format!("key {}, expected {key}", finding.key),
            ));
        }
        if event.cloud_provider != check.cloud() || event.source != EventSource::EscherScan {
            return Err(broken(
                "every finding carries its check's cloud",
                format!(
                    "{}: cloud {}, source {}",
                    finding.key, event.cloud_provider, event.source
                ),
            ));
        }
        match finding.action {
            Some(action) if fixes.lookup(action, &event.resource.kind).is_none() => {
                return Err(broken(
                    "a finding offers only a fix the cloud has",
                    format!(
                        "{} offers {action} on {}, which no registered fix takes",
                        finding.key, event.resource.kind
                    ),
                ))
            }
            None if finding.command.trim().is_empty() => {
                return Err(broken(
                    "a finding without a fix gives a command to run by hand",
                    finding.key.clone(),
                ))
            }
            _ => {}
        }
    }
    let second = check.output(region, scan).await.map_err(failed)?;
    let keys = |findings: &[crate::scan::Finding]| -> BTreeSet<String> {
        findings.iter().map(|f| f.key.clone()).collect()
    };
    if keys(&first.findings) != keys(&second.findings) {
        return Err(broken(
            "a second run gives the same findings",
            format!(
                "{:?} then {:?}",
                keys(&first.findings),
                keys(&second.findings)
            ),
        ));
    }
    if keys(&first.findings).len() != first.findings.len() {
        return Err(broken(
            "each resource is one finding",
            "two findings share a key".to_string(),
        ));
    }
    Ok(first.findings.len())
}

/// Every action a fix in `fixes` takes, for a test to say which it covered.
pub fn actions(fixes: &FixRegistry) -> BTreeSet<Action> {
    fixes.fixes().map(|f| f.action()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remediate::{FixDescription, RequiredPermission, Verification, VerificationCheck};
    use crate::scan::{Finding, FindingDraft};
    use crate::{CloudProvider, EventType, Resource};
    use chrono::Utc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    /// One bucket in memory, and the ways a fix can get the rules wrong.
    #[derive(Default)]
    struct Bucket {
        public: AtomicBool,
        mutate_in_dry_run: bool,
        undeclared_call: bool,
        always_remediated: bool,
        verify_always_passes: bool,
    }

    const DECLARED: &[RequiredPermission] = &[RequiredPermission {
        action: "mem:SetPrivate",
        resource: "*",
        why: "test",
    }];

    fn call(operation: &str, mutating: bool) -> ApiCall {
        ApiCall {
            service: "mem".into(),
            operation: operation.into(),
            target: "bucket".into(),
            mutating,
            started_at: Utc::now(),
            duration_ms: 0,
            error: None,
        }
    }

    #[async_trait]
    impl Remediation for Bucket {
        fn description(&self) -> &'static FixDescription {
            &FixDescription {
                action: Action::MakeBucketPrivate,
                resource_types: &["mem_bucket"],
                permissions: DECLARED,
            }
        }
        async fn remediate(
            &self,
            request: &RemediationRequest<'_>,
        ) -> Result<RemediationReport, RemediationError> {
            let public = self.public.load(Ordering::SeqCst);
            let report = |status| RemediationReport::new(request, status, "bucket");
            if !public && !self.always_remediated {
                return Ok(report(RemediationStatus::AlreadyCompliant));
            }
            if request.mode == Mode::DryRun {
                let calls = if self.mutate_in_dry_run {
                    vec![call("SetPrivate", true)]
                } else {
                    vec![]
                };
                return Ok(report(RemediationStatus::WouldRemediate).with_calls(calls));
            }
            self.public.store(false, Ordering::SeqCst);
            let mut calls = vec![call("SetPrivate", true)];
            if self.undeclared_call {
                calls.push(call("ReadEverything", false));
            }
            let verification = self.verify(request).await?;
            Ok(report(RemediationStatus::Remediated)
                .with_calls(calls)
                .with_verification(verification))
        }
        async fn verify(
            &self,
            _request: &RemediationRequest<'_>,
        ) -> Result<Verification, RemediationError> {
            let private = !self.public.load(Ordering::SeqCst) || self.verify_always_passes;
            Ok(Verification::from_checks(vec![VerificationCheck {
                name: "private".into(),
                expected: "true".into(),
                observed: private.to_string(),
                passed: private,
            }]))
        }
    }

    struct Scenario(Arc<Bucket>);

    #[async_trait]
    impl FixScenario for Scenario {
        async fn prepare(&self) -> Result<UnifiedEvent, ScenarioError> {
            self.0.public.store(true, Ordering::SeqCst);
            Ok(finding("b", "r", None, &ScanContext::new(Default::default())).event)
        }
        async fn change_back(&self, _event: &UnifiedEvent) -> Result<(), ScenarioError> {
            self.0.public.store(true, Ordering::SeqCst);
            Ok(())
        }
    }

    fn permission_of(call: &ApiCall) -> String {
        format!("{}:{}", call.service, call.operation)
    }

    async fn run(bucket: Bucket) -> Result<Vec<String>, ConformanceFailure> {
        let bucket = Arc::new(bucket);
        check_fix(bucket.as_ref(), &Scenario(bucket.clone()), permission_of).await
    }

    fn rule_of(result: Result<Vec<String>, ConformanceFailure>) -> &'static str {
        match result {
            Err(ConformanceFailure::Broken { rule, .. }) => rule,
            other => panic!("expected a broken rule, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_well_behaved_fix_passes_and_each_broken_rule_is_caught() {
        let steps = run(Bucket::default()).await.expect("conforms");
        assert_eq!(steps.len(), 4, "{steps:?}");
        let cases = [
            (
                Bucket {
                    mutate_in_dry_run: true,
                    ..Bucket::default()
                },
                FIX_RULES[0],
            ),
            (
                Bucket {
                    undeclared_call: true,
                    ..Bucket::default()
                },
                FIX_RULES[1],
            ),
            (
                Bucket {
                    always_remediated: true,
                    ..Bucket::default()
                },
                FIX_RULES[2],
            ),
            (
                Bucket {
                    verify_always_passes: true,
                    ..Bucket::default()
                },
                FIX_RULES[4],
            ),
        ];
        for (bucket, rule) in cases {
            assert_eq!(rule_of(run(bucket).await), rule);
        }
    }

    fn finding(name: &str, region: &str, action: Option<Action>, scan: &ScanContext) -> Finding {
        FindingDraft {
            check: "mem_public",
            cloud: CloudProvider::Gcp,
            account_id: "p".into(),
            region: region.into(),
            event_type: EventType::BucketPublic,
            resource: Resource {
                kind: "mem_bucket".into(),
                id: format!("mem/{name}"),
                name: name.to_string(),
                ..Resource::default()
            },
            title: format!("{name} is public"),
            action,
            manual_command: Some(format!("mem private {name}")),
            monthly_saving_usd: None,
            questions: vec![],
        }
        .finish(scan)
    }

    /// Findings for the names it holds; the set can change between two runs.
    struct Listing {
        runs: AtomicUsize,
        action: Option<Action>,
        second_run_differs: bool,
        /// Keys its findings by the resource's name instead of its id.
        keyed_by_name: bool,
    }

    #[async_trait]
    impl ScanCheck for Listing {
        fn id(&self) -> &'static str {
            "mem_public"
        }
        fn cloud(&self) -> CloudProvider {
            CloudProvider::Gcp
        }
        async fn run(&self, region: &str, scan: &ScanContext) -> Result<Vec<Finding>, ScanError> {
            let run = self.runs.fetch_add(1, Ordering::SeqCst);
            let names: &[&str] = if run > 0 && self.second_run_differs {
                &["a"]
            } else {
                &["a", "b"]
            };
            Ok(names
                .iter()
                .map(|name| {
                    let mut found = finding(name, region, self.action, scan);
                    if self.keyed_by_name {
                        found.key = format!("{}:{name}", found.check);
                    }
                    found
                })
                .collect())
        }
    }

    #[tokio::test]
    async fn a_check_must_be_stable_and_offer_only_fixes_that_exist() {
        let fixes = FixRegistry::new()
            .with(Arc::new(Bucket::default()))
            .expect("registry");
        let scan = ScanContext::new(Default::default());
        let check = |action, second_run_differs| Listing {
            runs: AtomicUsize::new(0),
            action,
            second_run_differs,
            keyed_by_name: false,
        };
        let found = check_scan_check(
            &check(Some(Action::MakeBucketPrivate), false),
            &fixes,
            "r",
            &scan,
        )
        .await
        .expect("conforms");
        assert_eq!(found, 2);
        let unstable = check_scan_check(&check(None, true), &fixes, "r", &scan).await;
        assert!(
            matches!(unstable, Err(ConformanceFailure::Broken { rule, .. }) if rule == "a second run gives the same findings")
        );
        let no_fix = check_scan_check(
            &check(Some(Action::StopIdleInstance), false),
            &fixes,
            "r",
            &scan,
        )
        .await;
        assert!(
            matches!(no_fix, Err(ConformanceFailure::Broken { rule, .. }) if rule == "a finding offers only a fix the cloud has")
        );
        let badly_keyed = Listing {
            keyed_by_name: true,
            ..check(None, false)
        };
        let badly_keyed = check_scan_check(&badly_keyed, &fixes, "r", &scan).await;
        assert!(
            matches!(badly_keyed, Err(ConformanceFailure::Broken { rule, .. }) if rule == "every finding's key is its check's name and its resource")
        );
    }
}
