//! The Google Cloud deployment: `templates/gcp/*.hbs` rendered into a Terraform root module
//! that Infrastructure Manager deploys (`main.tf`, `variables.tf`, `outputs.tf` and the
//! values in `terraform.tfvars`), or into the Deployment Manager configuration of the same
//! resources for users who keep Deployment Manager files.
//!
//! Everything the templates decide from data is computed here, where it can be tested: the
//! custom role's permissions (from the fixes' [`RequiredPermission`]s), resource names that
//! fit Google's limits, the handler's environment, the audit-log filter of the alert sink,
//! and the notification channels and log-based alert policies of CRITICAL and HIGH notices.

#[cfg(test)]
mod checks;
mod notify;

use std::collections::BTreeSet;

use base64::Engine as _;
use escher_core::remediate::RequiredPermission;
use serde::Serialize;

use super::{registry, RenderError, RenderedFile, Rendering};
use crate::config::{EscherConfig, TimeZoneName};

use notify::{notice_channels, notice_policies, NoticeChannel, NoticePolicy};

const MAIN_TEMPLATE: &str = include_str!("../../../../templates/gcp/main.tf.hbs");
const VARIABLES_TEMPLATE: &str = include_str!("../../../../templates/gcp/variables.tf.hbs");
const OUTPUTS_TEMPLATE: &str = include_str!("../../../../templates/gcp/outputs.tf.hbs");
const DM_TEMPLATE: &str = include_str!("../../../../templates/gcp/deployment-manager.yaml.hbs");

/// File names inside the output folder.
pub const MAIN_FILE: &str = "main.tf";
pub const VARIABLES_FILE: &str = "variables.tf";
pub const OUTPUTS_FILE: &str = "outputs.tf";
pub const TFVARS_FILE: &str = "terraform.tfvars";
pub const DM_FILE: &str = "escher-gcp.dm.yaml";

/// The Google provider versions the module is written for: its attributes are checked
/// against the 8.7 schema (provisioner/tests/gcp-provider-schema/).
pub const PROVIDER_VERSION: &str = ">= 8.7, < 9.0";

/// The body of the nightly scan's request: what tells the handler that Escher's own
/// scheduler job, not some other caller, asks for the scan.
pub const SCAN_BODY: &str = r#"{"escher":"nightly-scan"}"#;

/// How long one request of the handler may run; the scheduler's attempt deadline is the
/// same (Cloud Scheduler allows at most 30 minutes for HTTP targets).
const REQUEST_TIMEOUT_SECONDS: u32 = 1800;
/// How long the handler trusts an unfinished claim on an event: longer than a request may
/// run, so a delivery still at work is never taken over (which could fix twice).
const CLAIM_LEASE_SECONDS: u32 = REQUEST_TIMEOUT_SECONDS + 60;

/// Which files `render --cloud gcp` writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GcpFormat {
    /// A Terraform root module for Infrastructure Manager.
    #[default]
    Terraform,
    /// Deployment Manager YAML of the same resources (Deployment Manager no longer deploys;
    /// for users who keep or migrate its configurations).
    DeploymentManager,
}

/// Everything the Google Cloud templates are rendered from.
#[derive(Debug, Clone)]
pub struct GcpRenderInputs<'a> {
    pub config: &'a EscherConfig,
    /// Time zone of the nightly scan (Cloud Scheduler runs the job in it).
    pub timezone: TimeZoneName,
    /// What the fixes need (`escher_gcp::all_required_permissions()`).
    pub permissions: &'a [RequiredPermission],
    pub format: GcpFormat,
}

/// The Terraform module as `render` writes it by default.
pub fn for_review(config: &EscherConfig, timezone: TimeZoneName) -> Result<Rendering, RenderError> {
    for_review_as(config, timezone, GcpFormat::Terraform)
}

/// The files of `format` with the summary `render` prints.
pub fn for_review_as(
    config: &EscherConfig,
    timezone: TimeZoneName,
    format: GcpFormat,
) -> Result<Rendering, RenderError> {
    let permissions = escher_gcp::all_required_permissions();
    let files = render(&GcpRenderInputs {
        config,
        timezone,
        permissions: &permissions,
        format,
    })?;
    let gcp = &config.gcp;
    let mut missing_parameters = Vec::new();
    if gcp.project.is_none() {
        missing_parameters.push("project");
    }
    missing_parameters.push("handler_image");
    let mut details = vec![match &gcp.project {
        Some(project) => format!("project `{project}`, region {}", gcp.region),
        None => format!(
            "region {}; no project in escher.toml: set [gcp] project, or fill `project` in the values",
            gcp.region
        ),
    }];
    let mut notices = Vec::new();
    match format {
        GcpFormat::Terraform => {
            details.push(format!(
                "Terraform for Infrastructure Manager: {MAIN_FILE}, {VARIABLES_FILE}, {OUTPUTS_FILE}, values in {TFVARS_FILE} (google provider {PROVIDER_VERSION}, Terraform 1.5)"
            ));
        }
        GcpFormat::DeploymentManager => {
            notices.push(format!(
                "notice: Deployment Manager no longer deploys (past its end of support); {DM_FILE} is for keeping or migrating Deployment Manager configurations. Deploy with Infrastructure Manager: render --cloud gcp --format terraform"
            ));
            details.push(format!(
                "left out of {DM_FILE} (no Deployment Manager type): {}",
                DM_LEFT_OUT.join(", ")
            ));
            details.push(format!(
                "replace {} in {DM_FILE} before using it",
                dm_placeholders(config).join(" and ")
            ));
        }
    }
    if !config.notifications.critical.sms.is_empty() || !config.notifications.high.sms.is_empty() {
        details.push(
            "SMS channels deliver once each number is verified in the Cloud console (Monitoring, notification channels)".to_string(),
        );
    }
    match &gcp.organization {
        Some(org) => details.push(format!(
            "Security Command Center findings of organization {org} reach the handler"
        )),
        None => details.push(
            "no Security Command Center notifications: they are organization-wide; set [gcp] organization to add them"
                .to_string(),
        ),
    }
    if gcp.lock_audit_retention {
        notices.push(format!(
            "warning: [gcp] lock_audit_retention = true locks the audit bucket's retention policy when deployed: irreversible, nobody can shorten the {} days or delete the bucket before its records expire",
            config.audit.retention_days.0
        ));
    } else {
        details.push(format!(
            "audit bucket retention {} days, not locked ([gcp] lock_audit_retention = true locks it, irreversibly)",
            config.audit.retention_days.0
        ));
    }
    Ok(Rendering {
        files,
        template_file: match format {
            GcpFormat::Terraform => MAIN_FILE,
            GcpFormat::DeploymentManager => DM_FILE,
        },
        parameters_file: match format {
            GcpFormat::Terraform => TFVARS_FILE,
            GcpFormat::DeploymentManager => "",
        },
        region: Some(gcp.region.to_string()),
        missing_parameters,
        remediation_permissions: role_permissions(&permissions)?.len(),
        create_trail: None,
        notices,
        details,
    })
}

/// What the Deployment Manager file cannot hold: resources without a Deployment Manager
/// type (said in the file and in the summary).
pub const DM_LEFT_OUT: [&str; 7] = [
    "the project's APIs (google_project_service: enable them by hand)",
    "IAM on the secrets",
    "IAM on the Cloud Run service",
    "IAM on the topics and the subscription",
    "the Pub/Sub service agent's token creator grant on the invoker",
    "the Security Command Center notification config",
    "the audit bucket's retention lock (a bucket method, not a property)",
];

/// The placeholders a Deployment Manager file carries where escher.toml gives no value.
fn dm_placeholders(config: &EscherConfig) -> Vec<&'static str> {
    let mut out = Vec::new();
    if config.gcp.project.is_none() {
        out.push(PROJECT_PLACEHOLDER);
    }
    out.push(IMAGE_PLACEHOLDER);
    out
}

const PROJECT_PLACEHOLDER: &str = "PROJECT_ID";
const IMAGE_PLACEHOLDER: &str = "HANDLER_IMAGE";

/// Renders the files of `inputs.format`.
pub fn render(inputs: &GcpRenderInputs<'_>) -> Result<Vec<RenderedFile>, RenderError> {
    let context = Context::new(inputs)?;
    let mut hb = registry();
    let templates: &[(&'static str, &'static str, &'static str)] = match inputs.format {
        GcpFormat::Terraform => {
            // Terraform strings: JSON's escapes are HCL's, and `${` / `%{` would start a
            // template sequence, so user text has them doubled.
            hb.register_escape_fn(hcl_string);
            &[
                (MAIN_FILE, "main.tf.hbs", MAIN_TEMPLATE),
                (VARIABLES_FILE, "variables.tf.hbs", VARIABLES_TEMPLATE),
                (OUTPUTS_FILE, "outputs.tf.hbs", OUTPUTS_TEMPLATE),
            ]
        }
        GcpFormat::DeploymentManager => &[(DM_FILE, "deployment-manager.yaml.hbs", DM_TEMPLATE)],
    };
    let mut files = Vec::new();
    for &(file, name, text) in templates {
        hb.register_template_string(name, text)
            .map_err(|e| RenderError::Template {
                name,
                source: Box::new(e),
            })?;
        let contents = hb.render(name, &context).map_err(|e| RenderError::Render {
            name,
            source: Box::new(e),
        })?;
        files.push(RenderedFile {
            name: file,
            contents,
        });
    }
    if inputs.format == GcpFormat::Terraform {
        files.push(RenderedFile {
            name: TFVARS_FILE,
            contents: tfvars(inputs.config),
        });
    }
    Ok(files)
}

/// A string as an HCL quoted literal: JSON's escapes, with `${` and `%{` written `$${` and
/// `%%{` so that the text stays text.
pub(crate) fn hcl_string(s: &str) -> String {
    serde_json::Value::from(s)
        .to_string()
        .replace("${", "$${")
        .replace("%{", "%%{")
}

/// The values escher.toml gives; `handler_image` is left for the deployment to add, and
/// `project` too when escher.toml names none.
fn tfvars(config: &EscherConfig) -> String {
    let gcp = &config.gcp;
    let mut out = String::from("# Filled from escher.toml by escher-provision render.\n");
    match &gcp.project {
        Some(project) => out.push_str(&format!("project = {}\n", hcl_string(project.as_str()))),
        None => out.push_str("# project = \"...\"  (escher.toml names no [gcp] project)\n"),
    }
    out.push_str(&format!("region  = {}\n", hcl_string(gcp.region.as_str())));
    out.push_str("# handler_image is set when the handler's image has been pushed.\n");
    out
}

/// The custom role's permissions: exactly the fixes' permissions, each once, sorted. A
/// wildcard or anything not shaped `service.resource.verb` is refused: the role must name
/// every permission it grants.
pub fn role_permissions(permissions: &[RequiredPermission]) -> Result<Vec<String>, RenderError> {
    let mut out = BTreeSet::new();
    for p in permissions {
        let shaped = p.action.split('.').count() >= 3
            && p.action
                .split('.')
                .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric()));
        let problem = if p.action.contains('*') {
            Some("a wildcard grants more than the fix needs; name each permission")
        } else if !shaped {
            Some("a Google Cloud IAM permission reads `<service>.<resource>.<verb>`")
        } else if p
            .action
            .starts_with("resourcemanager.projects.setIamPolicy")
        {
            Some("the handler must not change who holds which role in the project")
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(RenderError::Permission {
                action: p.action.to_string(),
                resource: p.resource.to_string(),
                problem: problem.to_string(),
            });
        }
        out.insert(p.action.to_string());
    }
    Ok(out.into_iter().collect())
}

/// The audit-log entries the alert sink sends: the admin-activity writes the fixes act on
/// (bucket IAM and bucket settings, firewall rules written, instances created), as the GCP
/// normalizer classifies them.
pub const SINK_FILTER: &str = concat!(
    r#"logName:"cloudaudit.googleapis.com%2Factivity" AND ("#,
    r#"(protoPayload.serviceName="storage.googleapis.com" AND protoPayload.methodName=("storage.setIamPermissions" OR "storage.buckets.update" OR "storage.buckets.create"))"#,
    r#" OR (protoPayload.serviceName="compute.googleapis.com" AND protoPayload.methodName=~"compute\.(firewalls\.(insert|patch|update)|instances\.insert)$"))"#
);

/// The APIs the deployment uses (the Security Command Center's only with an organization).
fn apis(with_scc: bool) -> Vec<Api> {
    let mut apis = vec![
        Api::new("run"),
        Api::new("pubsub"),
        Api::new("secretmanager"),
        Api::new("cloudscheduler"),
        Api::new("logging"),
        Api::new("monitoring"),
        Api::new("iam"),
        Api::new("storage"),
    ];
    if with_scc {
        apis.push(Api::new("securitycenter"));
    }
    apis
}

#[derive(Debug, Serialize)]
struct Api {
    symbol: &'static str,
    service: String,
}

impl Api {
    fn new(symbol: &'static str) -> Self {
        Api {
            symbol,
            service: format!("{symbol}.googleapis.com"),
        }
    }
}

/// One secret the handler reads (under the secrets prefix).
#[derive(Debug, Serialize)]
struct Secret {
    symbol: String,
    /// Deployment Manager's resource name.
    dm_name: String,
    secret_id: String,
}

/// One of the handler's environment variables: as a Terraform expression and as a
/// Deployment Manager value.
#[derive(Debug, Serialize)]
struct EnvVar {
    name: &'static str,
    value: String,
    dm_value: String,
}

/// What the templates read.
#[derive(Debug, Serialize)]
struct Context {
    description: String,
    stack: String,
    provider_version: &'static str,
    /// Deployment Manager: the project id, or its placeholder.
    project: String,
    region: String,
    /// HCL expressions (quoted strings) of the bucket names.
    state_bucket: String,
    audit_bucket: String,
    access_logs_bucket: String,
    oidc_audience: String,
    /// Deployment Manager: the literal names.
    dm_state_bucket: String,
    dm_audit_bucket: String,
    dm_access_logs_bucket: String,
    dm_oidc_audience: String,
    dm_image: &'static str,
    dm_left_out: &'static [&'static str],
    access_log_days: u32,
    audit_retention_days: u32,
    audit_retention_seconds: u64,
    lock_audit_retention: bool,
    apis: Vec<Api>,
    handler_account: String,
    invoker_account: String,
    role_id: String,
    role_title: String,
    role_description: String,
    role_permissions: Vec<String>,
    secrets: Vec<Secret>,
    service_name: String,
    request_timeout: String,
    max_instances: u32,
    memory: &'static str,
    env: Vec<EnvVar>,
    alerts_topic: String,
    dead_letter_topic: String,
    alerts_subscription: String,
    dead_letter_subscription: String,
    max_delivery_attempts: u32,
    sink_name: String,
    sink_filter: &'static str,
    organization: Option<String>,
    scc_config_id: String,
    scheduler_job: String,
    schedule: String,
    timezone: String,
    scan_time: String,
    scan_body: &'static str,
    scan_body_base64: String,
    notice_channels: Vec<NoticeChannel>,
    notice_policies: Vec<NoticePolicy>,
    any_sms: bool,
}

/// The secrets the handler reads: the webhook secrets the notifier asks for, and the other
/// clouds' credentials (`escher-provision credentials set --on gcp`).
const SECRETS: [(&str, &str); 4] = [
    (
        "slack_webhook_url",
        escher_runtime::config::SLACK_WEBHOOK_SECRET,
    ),
    (
        "pagerduty_routing_key",
        escher_runtime::config::PAGERDUTY_KEY_SECRET,
    ),
    ("credentials_aws", "credentials-aws"),
    ("credentials_azure", "credentials-azure"),
];

impl Context {
    fn new(inputs: &GcpRenderInputs<'_>) -> Result<Self, RenderError> {
        let config = inputs.config;
        let gcp = &config.gcp;
        let stack = config.stack.name.as_str();
        // Google's names are lowercase; a stack name is letters, digits and hyphens.
        let prefix = stack.to_ascii_lowercase();
        // Service account ids: 6 to 30 characters, so `<prefix>-handler` keeps 21 of it.
        let short = prefix[..prefix.len().min(21)]
            .trim_end_matches('-')
            .to_string();
        let project = gcp
            .project
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or_else(|| PROJECT_PLACEHOLDER.to_string());
        // Terraform derives unnamed buckets from the project variable; Deployment Manager
        // has no variables, so it gets the names (or the placeholder) written out.
        let tf_project = gcp
            .project
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or_else(|| "${var.project}".to_string());
        let tf_buckets = gcp.bucket_names(&tf_project);
        let dm_buckets = gcp.bucket_names(&project);
        let quoted = |s: &str| format!("\"{s}\"");
        let secrets_prefix = format!("{prefix}-");
        let scan_time = config.schedule.scan_time;
        let retention_days = config.audit.retention_days.0;
        let env = vec![
            EnvVar {
                name: "ESCHER_STATE_URI",
                value: quoted("gcs://${google_storage_bucket.state.name}/state"),
                dm_value: format!("gcs://{}/state", dm_buckets.state),
            },
            EnvVar {
                name: "ESCHER_APPROVALS_URI",
                value: quoted("gcs://${google_storage_bucket.state.name}/approvals"),
                dm_value: format!("gcs://{}/approvals", dm_buckets.state),
            },
            EnvVar {
                name: "ESCHER_AUDIT_URI",
                value: quoted("gcs://${google_storage_bucket.audit.name}/audit"),
                dm_value: format!("gcs://{}/audit", dm_buckets.audit),
            },
            EnvVar {
                name: "ESCHER_SECRETS_PREFIX",
                value: hcl_string(&secrets_prefix),
                dm_value: secrets_prefix.clone(),
            },
            EnvVar {
                name: "ESCHER_TIME_ZONE",
                value: hcl_string(&inputs.timezone.to_string()),
                dm_value: inputs.timezone.to_string(),
            },
            EnvVar {
                name: "ESCHER_SCAN_TIME",
                value: hcl_string(&scan_time.to_string()),
                dm_value: scan_time.to_string(),
            },
            EnvVar {
                name: "ESCHER_CLAIM_LEASE_SECS",
                value: hcl_string(&CLAIM_LEASE_SECONDS.to_string()),
                dm_value: CLAIM_LEASE_SECONDS.to_string(),
            },
            EnvVar {
                name: "ESCHER_GCP_PROJECT",
                value: "var.project".into(),
                dm_value: project.clone(),
            },
            EnvVar {
                name: "ESCHER_OIDC_AUDIENCE",
                value: "local.oidc_audience".into(),
                dm_value: format!("{prefix}-{project}"),
            },
            EnvVar {
                name: "ESCHER_INVOKER_SERVICE_ACCOUNT",
                value: "google_service_account.invoker.email".into(),
                dm_value: "$(ref.invoker.email)".into(),
            },
        ];
        // Cloud Run service names: at most 49 characters, not ending with a hyphen.
        let service_name = prefix[..prefix.len().min(49)]
            .trim_end_matches('-')
            .to_string();
        let channels = notice_channels(&config.notifications);
        Ok(Context {
            // No CLI version here: upgrading the CLI alone must not change the deployment.
            description: format!(
                "Escher Extend ({stack}): the handler that handles alerts and runs the nightly scan, its stores, secrets, notifications and triggers."
            ),
            stack: stack.to_string(),
            provider_version: PROVIDER_VERSION,
            region: gcp.region.to_string(),
            state_bucket: quoted(&tf_buckets.state),
            audit_bucket: quoted(&tf_buckets.audit),
            access_logs_bucket: quoted(&tf_buckets.access_logs),
            oidc_audience: quoted(&format!("{prefix}-{tf_project}")),
            dm_state_bucket: dm_buckets.state,
            dm_audit_bucket: dm_buckets.audit,
            dm_access_logs_bucket: dm_buckets.access_logs,
            dm_oidc_audience: format!("{prefix}-{project}"),
            dm_image: IMAGE_PLACEHOLDER,
            dm_left_out: &DM_LEFT_OUT,
            project,
            access_log_days: 90,
            audit_retention_days: retention_days,
            audit_retention_seconds: u64::from(retention_days) * 86_400,
            lock_audit_retention: gcp.lock_audit_retention,
            apis: apis(gcp.organization.is_some()),
            handler_account: format!("{short}-handler"),
            invoker_account: format!("{short}-invoker"),
            role_id: prefix.replace('-', "_") + "_remediation",
            role_title: format!("Escher Extend remediation ({stack})"),
            role_description: format!(
                "Escher Extend ({stack}): exactly the permissions its fixes and checks call, nothing else."
            ),
            role_permissions: role_permissions(inputs.permissions)?,
            secrets: SECRETS
                .iter()
                .map(|(symbol, name)| Secret {
                    symbol: symbol.to_string(),
                    dm_name: symbol.replace('_', "-"),
                    secret_id: format!("{secrets_prefix}{name}"),
                })
                .collect(),
            request_timeout: format!("{REQUEST_TIMEOUT_SECONDS}s"),
            max_instances: 10,
            memory: "512Mi",
            env,
            alerts_topic: format!("{prefix}-alerts"),
            dead_letter_topic: format!("{prefix}-alerts-dead-letter"),
            alerts_subscription: format!("{prefix}-alerts-push"),
            dead_letter_subscription: format!("{prefix}-alerts-dead-letter-hold"),
            max_delivery_attempts: 10,
            sink_name: format!("{prefix}-admin-activity"),
            sink_filter: SINK_FILTER,
            organization: gcp.organization.as_ref().map(|o| o.to_string()),
            scc_config_id: format!("{prefix}-findings"),
            scheduler_job: format!("{prefix}-nightly-scan"),
            schedule: format!("{} {} * * *", scan_time.minute, scan_time.hour),
            timezone: inputs.timezone.to_string(),
            scan_time: scan_time.to_string(),
            scan_body: SCAN_BODY,
            scan_body_base64: base64::engine::general_purpose::STANDARD.encode(SCAN_BODY),
            notice_policies: notice_policies(&service_name, &channels),
            any_sms: channels.iter().any(|c| c.kind == "sms"),
            notice_channels: channels,
            service_name,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A fixed permission list, so the golden files change only when the templates do.
    pub(crate) const PERMISSIONS: [RequiredPermission; 4] = [
        RequiredPermission {
            action: "storage.buckets.setIamPolicy",
            resource: "project",
            why: "test",
        },
        RequiredPermission {
            action: "compute.firewalls.update",
            resource: "project",
            why: "test",
        },
        RequiredPermission {
            action: "storage.buckets.getIamPolicy",
            resource: "project",
            why: "test",
        },
        RequiredPermission {
            action: "compute.firewalls.update",
            resource: "project",
            why: "test, again",
        },
    ];

    pub(crate) fn rendered(config: &EscherConfig, format: GcpFormat) -> Vec<RenderedFile> {
        render(&GcpRenderInputs {
            config,
            timezone: config
                .schedule
                .timezone
                .unwrap_or_else(|| "UTC".parse().expect("UTC")),
            permissions: &PERMISSIONS,
            format,
        })
        .expect("render")
    }

    #[test]
    fn the_role_is_each_permission_once_sorted() {
        assert_eq!(
            role_permissions(&PERMISSIONS).expect("role"),
            [
                "compute.firewalls.update",
                "storage.buckets.getIamPolicy",
                "storage.buckets.setIamPolicy"
            ]
        );
    }

    #[test]
    fn a_wildcard_or_a_malformed_permission_is_refused() {
        for (action, says) in [
            ("storage.buckets.*", "wildcard"),
            ("storage.*", "wildcard"),
            ("roles/editor", "<service>.<resource>.<verb>"),
            ("storage.buckets", "<service>.<resource>.<verb>"),
            ("resourcemanager.projects.setIamPolicy", "must not change"),
        ] {
            let err = role_permissions(&[RequiredPermission {
                action,
                resource: "project",
                why: "test",
            }])
            .expect_err(action);
            let text = err.to_string();
            assert!(text.contains(action) && text.contains(says), "{text}");
        }
    }

    #[test]
    fn user_text_cannot_become_a_terraform_template() {
        assert_eq!(hcl_string("a${b}%{c}\"d\n"), r#""a$${b}%%{c}\"d\n""#);
        let config = EscherConfig::parse(
            "[notifications.critical]\nemails = [\"a${var.x}%{if}b@example.com\"]\n",
            std::path::Path::new("escher.toml"),
        )
        .expect("config");
        let files = rendered(&config, GcpFormat::Terraform);
        let main = &files[0].contents;
        assert!(
            main.contains(r#""a$${var.x}%%{if}b@example.com""#),
            "{main}"
        );
    }

    #[test]
    fn names_fit_googles_limits_for_the_longest_stack_name() {
        let long = "A".repeat(30) + &"-b".repeat(10);
        let config = EscherConfig::parse(
            &format!("[stack]\nname = \"{long}\"\n"),
            std::path::Path::new("escher.toml"),
        )
        .expect("config");
        let inputs = GcpRenderInputs {
            config: &config,
            timezone: "UTC".parse().expect("UTC"),
            permissions: &PERMISSIONS,
            format: GcpFormat::Terraform,
        };
        let context = Context::new(&inputs).expect("context");
        for account in [&context.handler_account, &context.invoker_account] {
            assert!((6..=30).contains(&account.len()), "{account}");
            assert!(
                account
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{account}"
            );
            assert!(!account.contains("--"), "{account}");
        }
        assert!(context.role_id.len() <= 64, "{}", context.role_id);
        assert!(context.service_name.len() <= 49, "{}", context.service_name);
        assert!(!context.service_name.ends_with('-'));
        assert_eq!(context.service_name, context.service_name.to_lowercase());
    }

    #[test]
    fn the_schedule_is_the_scan_time_in_the_users_zone() {
        let config = EscherConfig::parse(
            "[schedule]\nscan_time = \"03:30\"\ntimezone = \"Asia/Tokyo\"\n",
            std::path::Path::new("escher.toml"),
        )
        .expect("config");
        let files = rendered(&config, GcpFormat::Terraform);
        let main = &files[0].contents;
        assert!(main.contains("schedule         = \"30 3 * * *\""), "{main}");
        assert!(main.contains("time_zone        = \"Asia/Tokyo\""));
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(
                    Context::new(&GcpRenderInputs {
                        config: &config,
                        timezone: "UTC".parse().expect("UTC"),
                        permissions: &PERMISSIONS,
                        format: GcpFormat::DeploymentManager,
                    })
                    .expect("context")
                    .scan_body_base64
                )
                .expect("base64"),
            SCAN_BODY.as_bytes()
        );
    }

    /// The contract with the Cloud Run service: the environment it reads, the paths it
    /// serves, the scan's marker body, and one audience for every token signed for it, the
    /// one it is told to accept.
    #[test]
    fn the_handler_gets_the_environment_paths_and_tokens_the_service_expects() {
        let config = EscherConfig::parse(
            "[gcp]\nproject = \"acme-prod-1234\"\n",
            std::path::Path::new("escher.toml"),
        )
        .expect("config");
        let inputs = GcpRenderInputs {
            config: &config,
            timezone: "Europe/Berlin".parse().expect("zone"),
            permissions: &PERMISSIONS,
            format: GcpFormat::Terraform,
        };
        let context = Context::new(&inputs).expect("context");
        let names: Vec<&str> = context.env.iter().map(|e| e.name).collect();
        assert_eq!(
            names,
            [
                "ESCHER_STATE_URI",
                "ESCHER_APPROVALS_URI",
                "ESCHER_AUDIT_URI",
                "ESCHER_SECRETS_PREFIX",
                "ESCHER_TIME_ZONE",
                "ESCHER_SCAN_TIME",
                "ESCHER_CLAIM_LEASE_SECS",
                "ESCHER_GCP_PROJECT",
                "ESCHER_OIDC_AUDIENCE",
                "ESCHER_INVOKER_SERVICE_ACCOUNT",
            ]
        );
        let value = |name: &str| {
            context
                .env
                .iter()
                .find(|e| e.name == name)
                .map(|e| e.dm_value.clone())
                .unwrap_or_default()
        };
        assert_eq!(
            value("ESCHER_STATE_URI"),
            "gcs://acme-prod-1234-escher-state/state"
        );
        assert_eq!(
            value("ESCHER_AUDIT_URI"),
            "gcs://acme-prod-1234-escher-audit/audit"
        );
        assert_eq!(value("ESCHER_SECRETS_PREFIX"), "escher-extend-");
        assert_eq!(value("ESCHER_TIME_ZONE"), "Europe/Berlin");
        assert_eq!(
            value("ESCHER_OIDC_AUDIENCE"),
            "escher-extend-acme-prod-1234"
        );
        for secret in &context.secrets {
            assert!(
                secret.secret_id.starts_with("escher-extend-"),
                "{}",
                secret.secret_id
            );
        }
        assert!(context.secrets.iter().any(|s| s
            .secret_id
            .ends_with(escher_runtime::config::SLACK_WEBHOOK_SECRET)));

        let main = &rendered(&config, GcpFormat::Terraform)[0].contents;
        assert!(
            main.contains("push_endpoint = \"${google_cloud_run_v2_service.handler.uri}/alerts\"")
        );
        assert!(main.contains("uri         = \"${google_cloud_run_v2_service.handler.uri}/scan\""));
        assert!(
            main.contains(r#"body        = base64encode("{\"escher\":\"nightly-scan\"}")"#),
            "{main}"
        );
        assert!(main.contains("\"Content-Type\" = \"application/json\""));
        assert!(main.contains("oidc_audience = \"escher-extend-acme-prod-1234\""));
        // Both signers use the invoker and the one audience.
        assert_eq!(
            main.matches("audience              = local.oidc_audience")
                .count(),
            2
        );
        assert_eq!(
            main.matches("service_account_email = google_service_account.invoker.email")
                .count(),
            2
        );
        assert!(main.contains("value = local.oidc_audience"));
        assert!(main.contains("value = google_service_account.invoker.email"));

        let dm = &rendered(&config, GcpFormat::DeploymentManager)[0].contents;
        assert!(dm.contains("pushEndpoint: $(ref.handler-service.uri)/alerts"));
        assert!(dm.contains("uri: $(ref.handler-service.uri)/scan"));
        assert_eq!(
            dm.matches("audience: \"escher-extend-acme-prod-1234\"")
                .count(),
            2
        );
    }

    #[test]
    fn the_tfvars_carry_escher_toml_and_leave_the_image_to_the_deployment() {
        let config = EscherConfig::parse(
            "[gcp]\nproject = \"acme-prod-1234\"\nregion = \"us-central1\"\n",
            std::path::Path::new("escher.toml"),
        )
        .expect("config");
        let text = tfvars(&config);
        assert!(text.contains("project = \"acme-prod-1234\"\n"), "{text}");
        assert!(text.contains("region  = \"us-central1\"\n"), "{text}");
        assert!(!text.contains("\nhandler_image"), "{text}");
        let text = tfvars(&EscherConfig::default());
        assert!(text.contains("# project = "), "{text}");
        assert!(text.contains("region  = \"europe-west1\""), "{text}");
    }

    #[test]
    fn the_summary_warns_before_an_irreversible_lock_and_names_what_is_missing() {
        let config = EscherConfig::parse(
            "[gcp]\nlock_audit_retention = true\n",
            std::path::Path::new("escher.toml"),
        )
        .expect("config");
        let rendering = for_review(&config, "UTC".parse().expect("UTC")).expect("rendering");
        assert!(
            rendering
                .notices
                .iter()
                .any(|n| n.starts_with("warning:") && n.contains("irreversible")),
            "{:?}",
            rendering.notices
        );
        assert_eq!(rendering.missing_parameters, ["project", "handler_image"]);
        assert!(
            rendering
                .details
                .iter()
                .any(|d| d.contains("no Security Command Center")),
            "{:?}",
            rendering.details
        );
        let dm = for_review_as(
            &EscherConfig::default(),
            "UTC".parse().expect("UTC"),
            GcpFormat::DeploymentManager,
        )
        .expect("dm");
        assert!(
            dm.notices
                .iter()
                .any(|n| n.contains("Deployment Manager no longer deploys")),
            "{:?}",
            dm.notices
        );
        assert!(
            dm.details.iter().any(|d| d.contains("left out")),
            "{:?}",
            dm.details
        );
    }
}
