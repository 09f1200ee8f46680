//! The AWS stack: `templates/aws/*.hbs` rendered into a CloudFormation template and the
//! parameters file that goes with it.
//!
//! Everything the template decides from data is computed here, where it can be tested: the
//! functions' IAM statements (from the remediations' [`RequiredPermission`]s and the stores
//! each function touches), the EventBridge rules, the schedule and the subscriptions.

use std::collections::BTreeSet;

use escher_core::remediate::RequiredPermission;
use serde::Serialize;
use serde_json::{json, Value};

mod iam;

use iam::{baseline_statements, remediation_statements, IamStatement};

use super::{registry, RenderError, RenderedFile, Rendering};
use crate::config::{CreateTrail, EscherConfig, TimeZoneName};

const STACK_TEMPLATE: &str = include_str!("../../../../templates/aws/stack.yaml.hbs");
const PARTIALS: [(&str, &str); 4] = [
    (
        "bucket_baseline",
        include_str!("../../../../templates/aws/partials/bucket_baseline.yaml.hbs"),
    ),
    (
        "tls_only_statement",
        include_str!("../../../../templates/aws/partials/tls_only_statement.yaml.hbs"),
    ),
    (
        "function",
        include_str!("../../../../templates/aws/partials/function.yaml.hbs"),
    ),
    (
        "alert_rule",
        include_str!("../../../../templates/aws/partials/alert_rule.yaml.hbs"),
    ),
];

/// File names inside the output folder.
pub const TEMPLATE_FILE: &str = "escher-aws.yaml";
pub const PARAMETERS_FILE: &str = "escher-aws.parameters.json";

/// Everything the AWS template is rendered from. Decisions that need the machine or the
/// account (the time zone, whether a trail exists) are made by the caller.
#[derive(Debug, Clone, Copy)]
pub struct AwsRenderInputs<'a> {
    pub config: &'a EscherConfig,
    /// Time zone of the nightly scan.
    pub timezone: TimeZoneName,
    /// Whether the stack creates its own CloudTrail trail (`create_trail` resolved).
    pub create_trail: bool,
    /// What the remediations need (`escher_aws::all_required_permissions()`).
    pub permissions: &'a [RequiredPermission],
}

/// The rendered stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsRendering {
    /// `escher-aws.yaml` and `escher-aws.parameters.json`.
    pub files: Vec<RenderedFile>,
    /// Template parameters with no value yet (the artifacts, before packaging): `extend`
    /// fills them; a hand deploy must pass them.
    pub missing_parameters: Vec<&'static str>,
}

/// The stack as `render` writes it, to read before anything is deployed. `render` does not
/// talk to AWS, so `create_trail = "auto"` includes the trail (`extend` asks CloudTrail).
pub fn for_review(config: &EscherConfig, timezone: TimeZoneName) -> Result<Rendering, RenderError> {
    let mut notices = Vec::new();
    let create_trail = match config.aws.cloudtrail.create_trail {
        CreateTrail::Always => true,
        CreateTrail::Never => false,
        CreateTrail::Auto => {
            notices.push(
                "notice: create_trail = \"auto\": the template includes a CloudTrail trail; `extend` leaves it out when the account already has one".to_string(),
            );
            true
        }
    };
    let permissions = remediation_permissions();
    let rendering = render(&AwsRenderInputs {
        config,
        timezone,
        create_trail,
        permissions: &permissions,
    })?;
    let mut details = vec![format!(
        "CloudTrail trail: {}",
        if create_trail {
            "created"
        } else {
            "not created"
        }
    )];
    if !rendering.missing_parameters.is_empty() {
        details.push(format!(
            "parameters without a value yet: {} (`extend` fills them after packaging; set [aws.artifacts] in escher.toml to pin them)",
            rendering.missing_parameters.join(", ")
        ));
    }
    Ok(Rendering {
        files: rendering.files,
        template_file: TEMPLATE_FILE,
        parameters_file: PARAMETERS_FILE,
        region: config.aws.region.as_ref().map(|r| r.to_string()),
        missing_parameters: rendering.missing_parameters,
        remediation_permissions: permissions.len(),
        create_trail: Some(create_trail),
        notices,
        details,
    })
}

/// The template `extend` deploys; `create_trail` is `[aws.cloudtrail] create_trail`
/// resolved against the account (`auto` looks at its trails).
pub fn for_deploy(
    config: &EscherConfig,
    timezone: TimeZoneName,
    create_trail: bool,
) -> Result<String, RenderError> {
    let permissions = remediation_permissions();
    template(&AwsRenderInputs {
        config,
        timezone,
        create_trail,
        permissions: &permissions,
    })
}

/// The permissions the AWS remediations and the handler's enrich step need. The handler's
/// own store, SSM, KMS and SNS access is granted by the template's fixed statements.
fn remediation_permissions() -> Vec<RequiredPermission> {
    escher_aws::all_required_permissions()
}

/// Renders the CloudFormation template and its parameters (CLI `--parameters file://` form).
pub fn render(inputs: &AwsRenderInputs<'_>) -> Result<AwsRendering, RenderError> {
    let template = template(inputs)?;
    let (parameters, missing_parameters) = parameters(inputs.config);
    Ok(AwsRendering {
        files: vec![
            RenderedFile {
                name: TEMPLATE_FILE,
                contents: template,
            },
            RenderedFile {
                name: PARAMETERS_FILE,
                contents: parameters,
            },
        ],
        missing_parameters,
    })
}

/// The CloudFormation template alone.
fn template(inputs: &AwsRenderInputs<'_>) -> Result<String, RenderError> {
    render_context(&StackContext::new(inputs)?)
}

fn render_context(context: &impl Serialize) -> Result<String, RenderError> {
    let mut hb = registry();
    for (name, text) in PARTIALS {
        hb.register_partial(name, text)
            .map_err(|e| RenderError::Template {
                name,
                source: Box::new(e),
            })?;
    }
    hb.register_template_string("stack", STACK_TEMPLATE)
        .map_err(|e| RenderError::Template {
            name: "stack.yaml.hbs",
            source: Box::new(e),
        })?;
    hb.render("stack", context)
        .map_err(|e| RenderError::Render {
            name: "stack.yaml.hbs",
            source: Box::new(e),
        })
}

fn parameters(config: &EscherConfig) -> (String, Vec<&'static str>) {
    let artifacts = &config.aws.artifacts;
    let known = [
        (
            "ArtifactsBucket",
            artifacts.bucket.as_ref().map(|b| b.as_str()),
        ),
        (
            "AlertFunctionCodeKey",
            artifacts.alert_zip_key.as_ref().map(|k| k.as_str()),
        ),
        (
            "ScanFunctionCodeKey",
            artifacts.scan_zip_key.as_ref().map(|k| k.as_str()),
        ),
    ];
    let mut values = Vec::new();
    let mut missing = Vec::new();
    for (key, value) in known {
        match value {
            Some(v) => values.push(json!({"ParameterKey": key, "ParameterValue": v})),
            None => missing.push(key),
        }
    }
    let mut text = serde_json::to_string_pretty(&values).unwrap_or_default();
    text.push('\n');
    (text, missing)
}

/// What `stack.yaml.hbs` reads.
#[derive(Debug, Serialize)]
struct StackContext {
    description: String,
    stack_name: String,
    ssm_prefix: String,
    timezone: String,
    scan_time: String,
    scan_cron: String,
    /// The scheduler target's input (a `Fn::Sub` string).
    scan_input: String,
    audit_retention_days: u32,
    log_retention_days: u32,
    dlq_retention_seconds: u32,
    architecture: &'static str,
    create_trail: bool,
    buckets: BucketNames,
    lifecycle: Lifecycle,
    functions: Vec<FunctionContext>,
    alert_rules: Vec<AlertRule>,
    subscriptions: Vec<SubscriptionContext>,
}

#[derive(Debug, Serialize)]
struct BucketNames {
    state: Option<String>,
    audit: Option<String>,
    trail: Option<String>,
    access_logs: Option<String>,
}

#[derive(Debug, Serialize)]
struct Lifecycle {
    inbox_days: u32,
    markers_days: u32,
    noncurrent_days: u32,
}

/// A claim outlives its function's timeout by this much (the clocks of a store and a
/// function differ by a little); Lambda's first retry comes about a minute after a timeout.
const CLAIM_LEASE_MARGIN_SECONDS: u32 = 30;

#[derive(Debug, Serialize)]
struct FunctionContext {
    logical_id: &'static str,
    name: String,
    description: &'static str,
    role_description: String,
    code_key_parameter: &'static str,
    memory_mb: u32,
    timeout_seconds: u32,
    /// How long the function's claim on an event is trusted: past its timeout, a claim
    /// belongs to a run Lambda stopped, and the retry takes the event over.
    claim_lease_seconds: u32,
    /// Absent: no reservation.
    reserved_concurrency: Option<u32>,
    statements: Vec<IamStatement>,
}

#[derive(Debug, Serialize)]
struct AlertRule {
    logical_id: &'static str,
    description: &'static str,
    pattern: Value,
}

#[derive(Debug, Serialize)]
struct SubscriptionContext {
    logical_id: String,
    topic: &'static str,
    protocol: &'static str,
    endpoint: String,
}

impl StackContext {
    fn new(inputs: &AwsRenderInputs<'_>) -> Result<Self, RenderError> {
        let config = inputs.config;
        let stack = config.stack.name.as_str().to_string();
        let ssm_prefix = format!("/escher/{stack}/");
        let remediation = remediation_statements(inputs.permissions)?;
        let functions = [FunctionKind::Alert, FunctionKind::Scan]
            .into_iter()
            .map(|kind| {
                let sizing = match kind {
                    FunctionKind::Alert => config.aws.functions.alert_sizing(),
                    FunctionKind::Scan => config.aws.functions.scan_sizing(),
                };
                let mut statements = baseline_statements(kind, &stack);
                statements.extend(remediation.iter().cloned());
                FunctionContext {
                    logical_id: kind.logical_id(),
                    name: format!("{stack}-{}", kind.suffix()),
                    description: kind.description(),
                    role_description: format!(
                        "Escher {} function of stack {stack}: its stores, secrets, topics and the remediations' permissions.",
                        kind.suffix()
                    ),
                    code_key_parameter: kind.code_key_parameter(),
                    memory_mb: sizing.memory_mb,
                    timeout_seconds: sizing.timeout_seconds,
                    claim_lease_seconds: sizing.timeout_seconds + CLAIM_LEASE_MARGIN_SECONDS,
                    reserved_concurrency: Some(sizing.reserved_concurrency).filter(|n| *n > 0),
                    statements,
                }
            })
            .collect();
        let scan_time = config.schedule.scan_time;
        Ok(StackContext {
            // No CLI version here: upgrading the CLI alone must not produce a stack update.
            description: format!(
                "Escher Extend ({stack}): alert and scan functions, their stores, notifications and triggers."
            ),
            ssm_prefix,
            timezone: inputs.timezone.to_string(),
            scan_time: scan_time.to_string(),
            scan_cron: format!("cron({} {} * * ? *)", scan_time.minute, scan_time.hour),
            scan_input: scan_input(),
            audit_retention_days: config.audit.retention_days.0,
            log_retention_days: config.aws.functions.log_retention_days.0,
            dlq_retention_seconds: config.aws.functions.dlq_retention_days.0 * 86_400,
            architecture: config.aws.functions.architecture.as_lambda(),
            create_trail: inputs.create_trail,
            buckets: BucketNames {
                state: config.aws.buckets.state.as_ref().map(|b| b.to_string()),
                audit: config.aws.buckets.audit.as_ref().map(|b| b.to_string()),
                trail: config.aws.buckets.trail.as_ref().map(|b| b.to_string()),
                access_logs: config.aws.buckets.access_logs.as_ref().map(|b| b.to_string()),
            },
            lifecycle: Lifecycle {
                inbox_days: 7,
                // Longer than the 14 days a dead-letter queue can keep an event.
                markers_days: 30,
                noncurrent_days: 30,
            },
            functions,
            alert_rules: alert_rules(),
            subscriptions: subscriptions(config),
            stack_name: stack,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FunctionKind {
    Alert,
    Scan,
}

impl FunctionKind {
    fn logical_id(self) -> &'static str {
        match self {
            FunctionKind::Alert => "AlertFunction",
            FunctionKind::Scan => "ScanFunction",
        }
    }
    fn suffix(self) -> &'static str {
        match self {
            FunctionKind::Alert => "alert",
            FunctionKind::Scan => "scan",
        }
    }
    fn description(self) -> &'static str {
        match self {
            FunctionKind::Alert => "Escher alert handler: normalize, check approvals, remediate, verify, audit, notify.",
            FunctionKind::Scan => "Escher nightly scan: find what alerts missed and handle it like an alert.",
        }
    }
    fn code_key_parameter(self) -> &'static str {
        match self {
            FunctionKind::Alert => "AlertFunctionCodeKey",
            FunctionKind::Scan => "ScanFunctionCodeKey",
        }
    }
}

/// The EventBridge rules feeding the alert function: the payloads the AWS normalizers
/// understand (README, "Event sources").
fn alert_rules() -> Vec<AlertRule> {
    let detail_type =
        |source: &str, detail_type: &str| json!({"source": [source], "detail-type": [detail_type]});
    let api_calls = |source: &str, event_source: &str, names: &[&str]| {
        json!({
            "source": [source],
            "detail-type": ["AWS API Call via CloudTrail"],
            "detail": {"eventSource": [event_source], "eventName": names},
        })
    };
    vec![
        AlertRule {
            logical_id: "AlarmStateChange",
            description: "CloudWatch alarms changing state.",
            pattern: detail_type("aws.cloudwatch", "CloudWatch Alarm State Change"),
        },
        AlertRule {
            logical_id: "S3ApiCalls",
            description: "S3 calls that can make a bucket public (recorded by CloudTrail).",
            pattern: api_calls(
                "aws.s3",
                "s3.amazonaws.com",
                &[
                    "PutBucketAcl",
                    "PutBucketPolicy",
                    "DeleteBucketPublicAccessBlock",
                    "PutBucketPublicAccessBlock",
                    "CreateBucket",
                ],
            ),
        },
        AlertRule {
            logical_id: "Ec2ApiCalls",
            description:
                "EC2 calls that open a security group or start instances (recorded by CloudTrail).",
            pattern: api_calls(
                "aws.ec2",
                "ec2.amazonaws.com",
                &["AuthorizeSecurityGroupIngress", "RunInstances"],
            ),
        },
        AlertRule {
            logical_id: "ConfigComplianceChange",
            description: "AWS Config rules changing compliance.",
            pattern: detail_type("aws.config", "Config Rules Compliance Change"),
        },
        AlertRule {
            logical_id: "GuardDutyFinding",
            description: "GuardDuty findings.",
            pattern: detail_type("aws.guardduty", "GuardDuty Finding"),
        },
        AlertRule {
            logical_id: "SecurityHubFindings",
            description: "Security Hub findings imported.",
            pattern: detail_type("aws.securityhub", "Security Hub Findings - Imported"),
        },
        AlertRule {
            logical_id: "HealthEvent",
            description: "AWS Health events for this account.",
            pattern: detail_type("aws.health", "AWS Health Event"),
        },
        AlertRule {
            logical_id: "Ec2StateChange",
            description: "EC2 instances changing state.",
            pattern: detail_type("aws.ec2", "EC2 Instance State-change Notification"),
        },
        AlertRule {
            logical_id: "EcsServiceProblem",
            // INFO (steady states, reported again and again) would only fill the audit log.
            description: "ECS services that cannot keep their tasks up, and failed deployments.",
            pattern: json!({
                "source": ["aws.ecs"],
                "detail-type": ["ECS Service Action", "ECS Deployment State Change"],
                "detail": {"eventType": ["WARN", "ERROR"]},
            }),
        },
        AlertRule {
            logical_id: "CloudFormationStackFailure",
            // Progress and success statuses would only fill the audit log.
            description: "CloudFormation stacks whose operation failed, stuck or rolled back.",
            pattern: json!({
                "source": ["aws.cloudformation"],
                "detail-type": ["CloudFormation Stack Status Change"],
                "detail": {"status-details": {"status": [
                    "UPDATE_ROLLBACK_FAILED",
                    "UPDATE_FAILED",
                    "UPDATE_ROLLBACK_COMPLETE",
                    "CREATE_FAILED",
                    "ROLLBACK_FAILED",
                    "ROLLBACK_COMPLETE",
                    "DELETE_FAILED",
                    "IMPORT_ROLLBACK_FAILED",
                ]}},
            }),
        },
    ]
}

/// Logical ids come from the endpoint, not its position, so adding or removing one
/// subscription changes only that subscription (no re-confirmation of the others).
fn subscriptions(config: &EscherConfig) -> Vec<SubscriptionContext> {
    let mut out = Vec::new();
    let topics = [
        ("Critical", "CriticalTopic", &config.notifications.critical),
        ("High", "HighTopic", &config.notifications.high),
    ];
    for (prefix, topic, subs) in topics {
        let endpoints = subs
            .emails
            .iter()
            .map(|e| ("email", "Email", e.as_str()))
            .chain(subs.sms.iter().map(|n| ("sms", "Sms", n.as_str())));
        let mut seen = BTreeSet::new();
        for (protocol, kind, endpoint) in endpoints {
            if !seen.insert((protocol, endpoint)) {
                continue;
            }
            let short = escher_core::ids::sha256_hex(endpoint.as_bytes())[..10].to_string();
            out.push(SubscriptionContext {
                logical_id: format!("{prefix}{kind}Subscription{short}"),
                topic,
                protocol,
                endpoint: endpoint.to_string(),
            });
        }
    }
    out
}

/// The scheduler's input, shaped like an EventBridge `Scheduled Event` (the scheduler fills
/// the `<aws.scheduler.*>` placeholders at run time).
fn scan_input() -> String {
    json!({
        "version": "0",
        "id": "<aws.scheduler.execution-id>",
        "detail-type": "Scheduled Event",
        "source": "aws.scheduler",
        "account": "${AWS::AccountId}",
        "time": "<aws.scheduler.scheduled-time>",
        "region": "${AWS::Region}",
        "resources": ["<aws.scheduler.schedule-arn>"],
        "detail": {},
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::iam::tests::PERMISSIONS;
    use super::*;

    fn inputs<'a>(
        config: &'a EscherConfig,
        permissions: &'a [RequiredPermission],
    ) -> AwsRenderInputs<'a> {
        AwsRenderInputs {
            config,
            timezone: "Europe/Berlin".parse().expect("tz"),
            create_trail: true,
            permissions,
        }
    }

    #[test]
    fn no_role_statement_has_a_wildcard_action() {
        let config = EscherConfig::default();
        let context = StackContext::new(&inputs(&config, &PERMISSIONS)).expect("context");
        for function in &context.functions {
            assert!(function.statements.len() > 10);
            for s in &function.statements {
                for action in &s.actions {
                    assert!(!action.contains('*'), "{}: {action}", function.name);
                }
                for r in &s.resources {
                    // `*` only where AWS has no resource-level permission.
                    if r.value == "*" {
                        assert!(
                            s.actions
                                .iter()
                                .all(|a| a.starts_with("xray:") || a.contains(":Describe")),
                            "{}: {:?} on *",
                            function.name,
                            s.actions
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn subscription_ids_depend_on_the_endpoint_not_its_position() {
        let mut config = EscherConfig::parse(
            "[notifications.critical]\nemails = [\"a@example.com\", \"b@example.com\"]\nsms = [\"+4915112345678\"]\n",
            std::path::Path::new("escher.toml"),
        )
        .expect("config");
        let before = subscriptions(&config);
        assert_eq!(before.len(), 3);
        config.notifications.critical.emails.remove(0);
        let after = subscriptions(&config);
        assert_eq!(after.len(), 2);
        for sub in &after {
            assert!(before
                .iter()
                .any(|b| b.logical_id == sub.logical_id && b.endpoint == sub.endpoint));
        }
    }

    #[test]
    fn schedule_uses_the_scan_time_and_the_timezone() {
        let config = EscherConfig::parse(
            "[schedule]\nscan_time = \"23:05\"\n",
            std::path::Path::new("escher.toml"),
        )
        .expect("config");
        let rendering = render(&inputs(&config, &PERMISSIONS)).expect("render");
        let template = &rendering.files[0].contents;
        assert!(
            template.contains("ScheduleExpression: \"cron(5 23 * * ? *)\""),
            "{template}"
        );
        assert!(template.contains("ScheduleExpressionTimezone: \"Europe/Berlin\""));
    }

    #[test]
    fn trail_resources_follow_create_trail() {
        let config = EscherConfig::default();
        let mut with = inputs(&config, &PERMISSIONS);
        let rendered = render(&with).expect("render").files[0].contents.clone();
        assert!(rendered.contains("Type: AWS::CloudTrail::Trail"));
        with.create_trail = false;
        let rendered = render(&with).expect("render").files[0].contents.clone();
        assert!(!rendered.contains("AWS::CloudTrail::Trail"));
        assert!(!rendered.contains("TrailBucket"));
    }

    #[test]
    fn parameters_list_only_known_values() {
        let config = EscherConfig::default();
        let rendering = render(&inputs(&config, &PERMISSIONS)).expect("render");
        assert_eq!(
            rendering.missing_parameters,
            [
                "ArtifactsBucket",
                "AlertFunctionCodeKey",
                "ScanFunctionCodeKey"
            ]
        );
        let params: Value = serde_json::from_str(&rendering.files[1].contents).expect("json");
        assert_eq!(params, json!([]));
    }
}
