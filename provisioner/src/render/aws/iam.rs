//! The functions' IAM roles: the statements every function needs (its logs, dead-letter
//! queue, stores, secrets, key and topics, each scoped to the stack's own resources) and
//! the remediations' statements, built from their [`RequiredPermission`]s with every
//! action named (no wildcard is ever granted).

use std::collections::{BTreeMap, BTreeSet};

use escher_core::remediate::RequiredPermission;
use serde::Serialize;
use serde_json::{json, Value};

use super::FunctionKind;
use crate::render::RenderError;

/// One `Allow` statement of a function's role.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IamStatement {
    pub sid: String,
    /// Why the function needs it (YAML comments above the statement).
    pub why: Vec<String>,
    pub actions: Vec<String>,
    pub resources: Vec<IamResource>,
    pub condition: Option<Value>,
}

/// A resource pattern, written with `!Sub` when it holds `${…}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct IamResource {
    pub value: String,
    pub sub: bool,
}

impl IamResource {
    fn new(value: impl Into<String>) -> Self {
        let value = value.into();
        IamResource {
            sub: value.contains("${"),
            value,
        }
    }
}

/// Where each store lives in the stack's buckets (the prefixes the roles are scoped to).
const STATE_PREFIX: &str = "state";
const APPROVALS_PREFIX: &str = "approvals";
/// The audit bucket holds nothing else, so the audit store is its root; these are the
/// store's own folders (records and the daily listings, `escher_core::pipeline::audit`).
const AUDIT_RECORDS_PREFIX: &str = "audit";
const AUDIT_LISTING_PREFIX: &str = "listing";

/// What every function needs besides the remediations: its logs, its dead-letter queue, its
/// stores (only the stack's buckets and prefixes), its secrets path, the key and the topics.
pub(super) fn baseline_statements(kind: FunctionKind, stack: &str) -> Vec<IamStatement> {
    let id = kind.logical_id();
    let statement = |sid: &str, why: &str, actions: &[&str], resources: &[String]| IamStatement {
        sid: sid.to_string(),
        why: vec![why.to_string()],
        actions: actions.iter().map(|a| a.to_string()).collect(),
        resources: resources.iter().map(IamResource::new).collect(),
        condition: None,
    };
    let ssm_path = format!(
        "arn:${{AWS::Partition}}:ssm:${{AWS::Region}}:${{AWS::AccountId}}:parameter/escher/{stack}"
    );
    let mut statements = vec![
        statement(
            "WriteOwnLogs",
            "The function's own log group.",
            &["logs:CreateLogStream", "logs:PutLogEvents"],
            &[format!("${{{id}LogGroup.Arn}}")],
        ),
        statement(
            "ParkFailedEvents",
            "A failed invocation goes to the function's dead-letter queue.",
            &["sqs:SendMessage"],
            &[format!("${{{id}DeadLetterQueue.Arn}}")],
        ),
        statement(
            "TraceWithXRay",
            "X-Ray tracing; these actions have no resource-level permissions.",
            &["xray:PutTelemetryRecords", "xray:PutTraceSegments"],
            &["*".to_string()],
        ),
        IamStatement {
            condition: Some(json!({
                "StringLike": {"s3:prefix": [
                    format!("{STATE_PREFIX}/*"),
                    format!("{APPROVALS_PREFIX}/*"),
                ]}
            })),
            ..statement(
                "ListStateAndApprovals",
                "Listing is limited to the state and approvals stores' prefixes.",
                &["s3:ListBucket"],
                &["${StateBucket.Arn}".to_string()],
            )
        },
        statement(
            "ReadWriteStateStore",
            "The state store: event inbox, idempotency markers, usage counters.",
            &["s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
            &[format!("${{StateBucket.Arn}}/{STATE_PREFIX}/*")],
        ),
        statement(
            "ReadApprovals",
            "Approvals are written from the CLI; the functions only read them.",
            &["s3:GetObject"],
            &[format!("${{StateBucket.Arn}}/{APPROVALS_PREFIX}/*")],
        ),
        statement(
            "AppendAuditRecords",
            "Audit records and their daily listings are created and read back, never deleted (Object Lock forbids it anyway).",
            &["s3:GetObject", "s3:PutObject"],
            &[
                format!("${{AuditBucket.Arn}}/{AUDIT_RECORDS_PREFIX}/*"),
                format!("${{AuditBucket.Arn}}/{AUDIT_LISTING_PREFIX}/*"),
            ],
        ),
        IamStatement {
            condition: Some(json!({
                "StringLike": {"s3:prefix": [
                    format!("{AUDIT_RECORDS_PREFIX}/*"),
                    format!("{AUDIT_LISTING_PREFIX}/*"),
                ]}
            })),
            ..statement(
                "ListAuditRecords",
                "The morning report's critical alerts are found by listing a day's audit records.",
                &["s3:ListBucket"],
                &["${AuditBucket.Arn}".to_string()],
            )
        },
        statement(
            "ReadWebhookSecrets",
            "Webhook secrets: only the stack's SSM path.",
            &["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"],
            &[ssm_path.clone(), format!("{ssm_path}/*")],
        ),
        statement(
            "UseEncryptionKey",
            "SecureStrings, encrypted buckets and topics use the stack's key.",
            &["kms:Decrypt", "kms:GenerateDataKey"],
            &["${EncryptionKey.Arn}".to_string()],
        ),
        statement(
            "PublishNotifications",
            "The critical and high topics.",
            &["sns:Publish"],
            &["${CriticalTopic}".to_string(), "${HighTopic}".to_string()],
        ),
    ];
    if kind == FunctionKind::Scan {
        // By name: `${ScanFunction.Arn}` here would make the role depend on the function
        // that depends on the role.
        statements.push(statement(
            "HandOnTheScan",
            "A long scan hands the rest of its run to a new invocation of itself (asynchronous Invoke).",
            &["lambda:InvokeFunction"],
            &[format!(
                "arn:${{AWS::Partition}}:lambda:${{AWS::Region}}:${{AWS::AccountId}}:function:{stack}-{}",
                kind.suffix()
            )],
        ));
    }
    statements
}

/// One statement per resource pattern, holding every action needed on it, with the reasons
/// as comments. Rejects wildcard actions: a remediation must name what it calls.
pub fn remediation_statements(
    permissions: &[RequiredPermission],
) -> Result<Vec<IamStatement>, RenderError> {
    let mut by_resource: BTreeMap<&str, (BTreeSet<&str>, BTreeSet<&str>)> = BTreeMap::new();
    for p in permissions {
        check_action(p)?;
        if p.resource.trim().is_empty() {
            return Err(RenderError::Permission {
                action: p.action.into(),
                resource: p.resource.into(),
                problem: "the resource pattern is empty".into(),
            });
        }
        let entry = by_resource.entry(p.resource).or_default();
        entry.0.insert(p.action);
        entry.1.insert(p.why);
    }
    Ok(by_resource
        .into_iter()
        .enumerate()
        .map(|(i, (resource, (actions, whys)))| IamStatement {
            sid: format!("Remediation{}", i + 1),
            why: whys.into_iter().map(one_line).collect(),
            actions: actions.into_iter().map(str::to_string).collect(),
            resources: vec![IamResource::new(resource)],
            condition: None,
        })
        .collect())
}

/// Reasons become YAML comments: a line break would end the comment and inject YAML.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn check_action(p: &RequiredPermission) -> Result<(), RenderError> {
    let problem = match p.action.split_once(':') {
        _ if p.action.contains('*') || p.action.contains('?') => {
            Some("wildcard actions are never granted; list each action")
        }
        Some((service, name))
            if !service.is_empty()
                && !name.is_empty()
                && service
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && name.chars().all(|c| c.is_ascii_alphanumeric()) =>
        {
            None
        }
        _ => Some("an action is `service:Operation`, e.g. `s3:PutBucketPublicAccessBlock`"),
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(RenderError::Permission {
            action: p.action.into(),
            resource: p.resource.into(),
            problem: problem.into(),
        }),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::render::aws) const PERMISSIONS: [RequiredPermission; 4] = [
        RequiredPermission {
            action: "s3:PutBucketPublicAccessBlock",
            resource: "arn:${AWS::Partition}:s3:::*",
            why: "block public access",
        },
        RequiredPermission {
            action: "s3:GetBucketPolicyStatus",
            resource: "arn:${AWS::Partition}:s3:::*",
            why: "verify the bucket is private",
        },
        RequiredPermission {
            action: "ec2:DescribeSecurityGroups",
            resource: "*",
            why: "read the rule",
        },
        RequiredPermission {
            action: "s3:PutBucketPublicAccessBlock",
            resource: "arn:${AWS::Partition}:s3:::*",
            why: "block public access",
        },
    ];

    #[test]
    fn remediation_statements_group_actions_by_resource() {
        let statements = remediation_statements(&PERMISSIONS).expect("statements");
        assert_eq!(statements.len(), 2, "{statements:#?}");
        let s3 = statements
            .iter()
            .find(|s| s.resources[0].value == "arn:${AWS::Partition}:s3:::*")
            .expect("s3 statement");
        assert_eq!(
            s3.actions,
            ["s3:GetBucketPolicyStatus", "s3:PutBucketPublicAccessBlock"]
        );
        assert!(s3.resources[0].sub);
        assert_eq!(s3.why.len(), 2, "duplicate reasons are merged");
        let ec2 = statements
            .iter()
            .find(|s| s.resources[0].value == "*")
            .expect("describe statement");
        assert!(!ec2.resources[0].sub, "no !Sub without a variable");
        let sids: BTreeSet<&str> = statements.iter().map(|s| s.sid.as_str()).collect();
        assert_eq!(sids.len(), statements.len(), "Sids are unique");
    }

    #[test]
    fn wildcard_and_malformed_actions_are_refused() {
        for action in [
            "*",
            "s3:*",
            "s3:Put*",
            "ec2:Describe?",
            "PutBucketAcl",
            "s3:",
        ] {
            let p = RequiredPermission {
                action,
                resource: "*",
                why: "test",
            };
            let err = remediation_statements(&[p]).expect_err(action);
            assert!(err.to_string().contains(action), "{err}");
        }
    }

    #[test]
    fn store_access_is_scoped_to_the_stacks_buckets_and_prefixes() {
        let statements = baseline_statements(FunctionKind::Alert, "escher-extend");
        let s3: Vec<&IamStatement> = statements
            .iter()
            .filter(|s| s.actions.iter().any(|a| a.starts_with("s3:")))
            .collect();
        assert!(!s3.is_empty());
        for s in s3 {
            for r in &s.resources {
                let scoped = r.value.starts_with("${StateBucket.Arn}")
                    || r.value == "${AuditBucket.Arn}"
                    || r.value.starts_with("${AuditBucket.Arn}/audit/")
                    || r.value.starts_with("${AuditBucket.Arn}/listing/");
                assert!(scoped, "{}: {}", s.sid, r.value);
            }
        }
        let ssm = statements
            .iter()
            .find(|s| s.sid == "ReadWebhookSecrets")
            .expect("ssm");
        assert!(ssm
            .resources
            .iter()
            .all(|r| r.value.contains(":parameter/escher/escher-extend")));
    }
}
