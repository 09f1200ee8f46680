//! The Azure deployment: `templates/azure/*.hbs` rendered into an ARM template (what
//! `extend` deploys), its parameters file, and the same resources in Bicep for people who
//! keep their infrastructure in Bicep.
//!
//! Everything the templates decide from data is computed here, where it can be tested: the
//! custom role's actions (from the remediations' [`RequiredPermission`]s), the data-plane
//! role assignments, the Event Grid topics, and the notice groups with their receivers.

#[cfg(test)]
mod checks;
mod names;
mod notify;

use std::collections::BTreeSet;

use escher_core::remediate::RequiredPermission;
use serde::Serialize;
use serde_json::{json, Value};

use super::{registry, RenderError, RenderedFile, Rendering};
use crate::config::{EscherConfig, TimeZoneName};

pub use names::{is_storage_account_name, AccountNames};
use notify::{notice_groups, NoticeGroup};

const ARM_TEMPLATE: &str = include_str!("../../../../templates/azure/escher-azure.json.hbs");
const BICEP_TEMPLATE: &str = include_str!("../../../../templates/azure/escher-azure.bicep.hbs");

/// File names inside the output folder.
pub const TEMPLATE_FILE: &str = "escher-azure.json";
pub const PARAMETERS_FILE: &str = "escher-azure.parameters.json";
pub const BICEP_FILE: &str = "escher-azure.bicep";

/// The function that receives Event Grid events (an `eventGridTrigger`) and the one Azure
/// Monitor action groups call (an `httpTrigger`): folder names in the function package.
pub const EVENT_FUNCTION: &str = "events";
pub const ALERT_FUNCTION: &str = "alert";

/// Everything the Azure templates are rendered from.
#[derive(Debug, Clone)]
pub struct AzureRenderInputs<'a> {
    pub config: &'a EscherConfig,
    /// Time zone of the nightly scan (the function decides from it when it is 02:00).
    pub timezone: TimeZoneName,
    /// What the remediations need (`escher_azure::all_required_permissions()`).
    pub permissions: &'a [RequiredPermission],
    /// The storage accounts' names, when the subscription is known: written into the
    /// templates. `None`: Azure computes them at deployment (the same names).
    pub accounts: Option<AccountNames>,
}

/// The ARM template as `render` writes it, to read before anything is deployed.
pub fn for_review(config: &EscherConfig, timezone: TimeZoneName) -> Result<Rendering, RenderError> {
    let permissions = remediation_permissions();
    let azure = &config.azure;
    let accounts = accounts_of(config);
    let files = render(&AzureRenderInputs {
        config,
        timezone,
        permissions: &permissions,
        accounts: accounts.clone(),
    })?;
    let details = vec![
        format!(
            "resource group `{}` in {}{}",
            azure.resource_group,
            azure.location,
            azure
                .subscription
                .as_ref()
                .map(|s| format!(", subscription {s}"))
                .unwrap_or_default()
        ),
        format!("Bicep companion  {BICEP_FILE} (the same resources)"),
        match &accounts {
            Some(a) => format!("storage accounts {} (state) and {} (audit)", a.state, a.audit),
            None => "storage accounts named by Azure at deployment (escher.toml names no subscription)".to_string(),
        },
        "deployed twice: first as written; then, with the function package uploaded, with createEventSubscriptions = true and lockAuditRetention = true".to_string(),
    ];
    Ok(Rendering {
        files,
        template_file: TEMPLATE_FILE,
        parameters_file: PARAMETERS_FILE,
        region: Some(azure.location.to_string()),
        missing_parameters: Vec::new(),
        remediation_permissions: role_actions(&permissions)?.len(),
        create_trail: None,
        notices: Vec::new(),
        details,
    })
}

/// The storage accounts' names for escher.toml's subscription and resource group; `None`
/// when it names no subscription.
pub fn accounts_of(config: &EscherConfig) -> Option<AccountNames> {
    let azure = &config.azure;
    azure
        .subscription
        .as_ref()
        .map(|s| AccountNames::for_group(s.as_str(), azure.resource_group.as_str()))
}

/// The permissions the Azure remediations need.
fn remediation_permissions() -> Vec<RequiredPermission> {
    escher_azure::all_required_permissions()
}

/// Renders the ARM template, its parameters file and the Bicep file.
pub fn render(inputs: &AzureRenderInputs<'_>) -> Result<Vec<RenderedFile>, RenderError> {
    let context = Context::new(inputs)?;
    let mut hb = registry();
    hb.register_helper("bicep", Box::new(bicep_helper));
    let mut files = Vec::new();
    for (file, name, text) in [
        (TEMPLATE_FILE, "escher-azure.json.hbs", ARM_TEMPLATE),
        (BICEP_FILE, "escher-azure.bicep.hbs", BICEP_TEMPLATE),
    ] {
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
    files.insert(
        1,
        RenderedFile {
            name: PARAMETERS_FILE,
            contents: parameters(inputs.config),
        },
    );
    Ok(files)
}

/// The first deployment's parameters (deploymentParameters form, `--parameters @file`).
fn parameters(config: &EscherConfig) -> String {
    let value = json!({
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#",
        "contentVersion": "1.0.0.0",
        "parameters": {
            "location": {"value": config.azure.location.as_str()},
            "createEventSubscriptions": {"value": false},
            "lockAuditRetention": {"value": false},
            "operatorAddresses": {"value": config.azure.operator_addresses.iter().map(|a| a.as_str()).collect::<Vec<_>>()},
        },
    });
    let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
    text.push('\n');
    text
}

/// The custom role's actions: exactly the remediations' actions, each once, sorted (so a
/// reordering of the fixes does not change the role). A wildcard is refused: the role must
/// name every action it grants.
pub fn role_actions(permissions: &[RequiredPermission]) -> Result<Vec<String>, RenderError> {
    let mut actions = BTreeSet::new();
    for p in permissions {
        let problem = if p.action.contains('*') {
            Some("a wildcard grants more than the fix needs; name each action")
        } else if p.action.split('/').count() < 2 || !p.action.starts_with("Microsoft.") {
            Some("an Azure action reads `Microsoft.<Provider>/<type>/<operation>`")
        } else if p.resource != "subscription" {
            Some("the custom role is assignable at the subscription only; use resource `subscription`")
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
        actions.insert(p.action.to_string());
    }
    Ok(actions.into_iter().collect())
}

/// What the templates read.
#[derive(Debug, Serialize)]
struct Context {
    description: String,
    /// The stack name, checked (letters, digits, hyphens), shortened so that every derived
    /// name fits Azure's limits (function app names: 60 characters with the 14-character
    /// unique suffix).
    name_prefix: String,
    timezone: String,
    scan_time: String,
    log_retention_days: u32,
    audit_retention_days: u32,
    zone_redundant: bool,
    maximum_instances: u32,
    instance_memory_mb: u32,
    role_name: String,
    role_description: String,
    role_actions: Vec<String>,
    event_function: &'static str,
    alert_function: &'static str,
    /// The storage accounts' names, or null: the templates then let Azure compute them.
    accounts: Option<AccountNames>,
    state_containers: Vec<Container>,
    data_roles: Vec<DataRole>,
    system_topics: Vec<SystemTopic>,
    notice_groups: Vec<NoticeGroup>,
}

#[derive(Debug, Serialize)]
struct Container {
    name: &'static str,
    symbol: &'static str,
}

/// A built-in role given to the function on one of its own resources.
#[derive(Debug, Serialize)]
struct DataRole {
    symbol: &'static str,
    /// ARM: the `scope` expression (`type/name` form) and the resource id expression.
    scope: &'static str,
    scope_id: &'static str,
    /// Bicep: the scoped resource's symbolic name.
    bicep_scope: &'static str,
    /// The template variable holding the built-in role's id.
    role: &'static str,
    description: &'static str,
}

#[derive(Debug, Serialize)]
struct SystemTopic {
    symbol: &'static str,
    subscription_symbol: &'static str,
    suffix: &'static str,
    topic_type: &'static str,
    event_types: Vec<&'static str>,
}

impl Context {
    fn new(inputs: &AzureRenderInputs<'_>) -> Result<Self, RenderError> {
        let config = inputs.config;
        let stack = config.stack.name.as_str();
        let name_prefix = stack[..stack.len().min(40)]
            .trim_end_matches('-')
            .to_string();
        Ok(Context {
            // No CLI version here: upgrading the CLI alone must not change the deployment.
            description: format!(
                "Escher Extend ({stack}): the function that handles alerts and runs the nightly scan, its stores, secrets, notifications and triggers."
            ),
            timezone: inputs.timezone.to_string(),
            scan_time: config.schedule.scan_time.to_string(),
            // Log Analytics' included retention; the audit trail itself lives in the audit account.
            log_retention_days: 90,
            audit_retention_days: config.audit.retention_days.0,
            zone_redundant: config.azure.zone_redundant.0,
            maximum_instances: 40,
            instance_memory_mb: 2048,
            role_name: format!("Escher Extend remediation {name_prefix}"),
            role_description: format!(
                "Escher Extend ({stack}): exactly the actions its remediations and checks call, nothing else."
            ),
            role_actions: role_actions(inputs.permissions)?,
            event_function: EVENT_FUNCTION,
            alert_function: ALERT_FUNCTION,
            accounts: inputs.accounts.clone(),
            state_containers: vec![
                Container { name: "state", symbol: "stateContainer" },
                Container { name: "approvals", symbol: "approvalsContainer" },
                Container { name: "reports", symbol: "reportsContainer" },
                // Flex Consumption's deployment storage: the package `extend` uploads.
                Container { name: "app-package", symbol: "packageContainer" },
            ],
            data_roles: data_roles(),
            system_topics: system_topics(),
            notice_groups: notice_groups(&config.notifications),
            name_prefix,
        })
    }
}

/// The function's own data: the state account (its host storage too, hence owner: the
/// Functions host takes blob leases), the audit account (contributor: it writes records,
/// the locked policy keeps them), the vault (reads secrets; escher-provision writes them).
fn data_roles() -> Vec<DataRole> {
    vec![
        DataRole {
            symbol: "stateDataRole",
            scope: "concat('Microsoft.Storage/storageAccounts/', variables('stateAccountName'))",
            scope_id: "resourceId('Microsoft.Storage/storageAccounts', variables('stateAccountName'))",
            bicep_scope: "stateAccount",
            role: "blobDataOwner",
            description: "Escher Extend's function: its state, approvals, reports and package (and the Functions host's own storage).",
        },
        DataRole {
            symbol: "auditDataRole",
            scope: "concat('Microsoft.Storage/storageAccounts/', variables('auditAccountName'))",
            scope_id: "resourceId('Microsoft.Storage/storageAccounts', variables('auditAccountName'))",
            bicep_scope: "auditAccount",
            role: "blobDataContributor",
            description: "Escher Extend's function: writes audit records (the locked retention policy keeps them).",
        },
        DataRole {
            symbol: "vaultSecretsRole",
            scope: "concat('Microsoft.KeyVault/vaults/', variables('vaultName'))",
            scope_id: "resourceId('Microsoft.KeyVault/vaults', variables('vaultName'))",
            bicep_scope: "vault",
            role: "keyVaultSecretsUser",
            description: "Escher Extend's function: reads webhook secrets and the other clouds' credentials.",
        },
    ]
}

/// The subscription's own events: resources written or deleted (what the Azure normalizers
/// read as activity), and Azure Policy compliance states.
fn system_topics() -> Vec<SystemTopic> {
    vec![
        SystemTopic {
            symbol: "subscriptionEvents",
            subscription_symbol: "subscriptionEventsToFunction",
            suffix: "-subscription-events",
            topic_type: "Microsoft.Resources.Subscriptions",
            event_types: vec![
                "Microsoft.Resources.ResourceWriteSuccess",
                "Microsoft.Resources.ResourceDeleteSuccess",
            ],
        },
        SystemTopic {
            symbol: "policyStates",
            subscription_symbol: "policyStatesToFunction",
            suffix: "-policy-states",
            topic_type: "Microsoft.PolicyInsights.PolicyStates",
            event_types: vec![
                "Microsoft.PolicyInsights.PolicyStateCreated",
                "Microsoft.PolicyInsights.PolicyStateChanged",
            ],
        },
    ]
}

/// `{{{bicep value}}}`: any JSON value as a Bicep literal (single-quoted strings with `\`,
/// `'` and `${` escaped, so user text cannot become Bicep; arrays and objects one item a line).
fn bicep_helper(
    h: &handlebars::Helper<'_>,
    _: &handlebars::Handlebars<'_>,
    _: &handlebars::Context,
    _: &mut handlebars::RenderContext<'_, '_>,
    out: &mut dyn handlebars::Output,
) -> handlebars::HelperResult {
    let value = h
        .param(0)
        .ok_or_else(|| handlebars::RenderErrorReason::ParamNotFoundForIndex("bicep", 0))?;
    let indent = h
        .hash_get("indent")
        .and_then(|v| v.value().as_u64())
        .unwrap_or(0) as usize;
    out.write(&bicep_literal(value.value(), indent))?;
    Ok(())
}

/// A JSON value as Bicep source, nested lines indented from `indent` spaces.
pub(crate) fn bicep_literal(value: &Value, indent: usize) -> String {
    let pad = " ".repeat(indent + 2);
    let end = " ".repeat(indent);
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => bicep_string(s),
        Value::Array(items) if items.is_empty() => "[]".to_string(),
        Value::Array(items) => {
            let lines: Vec<String> = items
                .iter()
                .map(|v| format!("{pad}{}", bicep_literal(v, indent + 2)))
                .collect();
            format!("[\n{}\n{end}]", lines.join("\n"))
        }
        Value::Object(map) if map.is_empty() => "{}".to_string(),
        Value::Object(map) => {
            let lines: Vec<String> = map
                .iter()
                .map(|(k, v)| {
                    let key = if !k.is_empty()
                        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        && !k.starts_with(|c: char| c.is_ascii_digit())
                    {
                        k.clone()
                    } else {
                        bicep_string(k)
                    };
                    format!("{pad}{key}: {}", bicep_literal(v, indent + 2))
                })
                .collect();
            format!("{{\n{}\n{end}}}", lines.join("\n"))
        }
    }
}

fn bicep_string(s: &str) -> String {
    let mut out = String::from("'");
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' if chars.peek() == Some(&'{') => out.push_str("\\$"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const PERMISSIONS: [RequiredPermission; 4] = [
        RequiredPermission {
            action: "Microsoft.Storage/storageAccounts/write",
            resource: "subscription",
            why: "block public blob access",
        },
        RequiredPermission {
            action: "Microsoft.Network/networkSecurityGroups/securityRules/delete",
            resource: "subscription",
            why: "remove an open inbound rule",
        },
        RequiredPermission {
            action: "Microsoft.Storage/storageAccounts/write",
            resource: "subscription",
            why: "a second fix needing the same action",
        },
        RequiredPermission {
            action: "Microsoft.Compute/virtualMachines/deallocate/action",
            resource: "subscription",
            why: "stop an idle machine",
        },
    ];

    fn rendered(config: &EscherConfig, permissions: &[RequiredPermission]) -> Vec<RenderedFile> {
        render(&AzureRenderInputs {
            config,
            timezone: "Europe/Berlin".parse().expect("tz"),
            permissions,
            accounts: None,
        })
        .expect("render")
    }

    fn arm(files: &[RenderedFile]) -> Value {
        let file = files.iter().find(|f| f.name == TEMPLATE_FILE).expect("arm");
        serde_json::from_str(&file.contents)
            .unwrap_or_else(|e| panic!("{TEMPLATE_FILE} is not JSON: {e}\n{}", file.contents))
    }

    #[test]
    fn the_role_holds_exactly_the_permissions_sorted_and_once() {
        let config = EscherConfig::default();
        let template = arm(&rendered(&config, &PERMISSIONS));
        let role = template["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .find(|r| r["type"] == "Microsoft.Authorization/roleDefinitions")
            .expect("role definition");
        let actions: Vec<&str> = role["properties"]["permissions"][0]["actions"]
            .as_array()
            .expect("actions")
            .iter()
            .map(|a| a.as_str().expect("string"))
            .collect();
        assert_eq!(
            actions,
            [
                "Microsoft.Compute/virtualMachines/deallocate/action",
                "Microsoft.Network/networkSecurityGroups/securityRules/delete",
                "Microsoft.Storage/storageAccounts/write",
            ]
        );
        assert_eq!(
            role["properties"]["assignableScopes"],
            json!(["[subscription().id]"])
        );
    }

    #[test]
    fn a_wildcard_or_a_narrower_scope_is_refused_with_the_action_named() {
        for (action, resource, says) in [
            ("Microsoft.Storage/*", "subscription", "wildcard"),
            ("*", "subscription", "wildcard"),
            ("storage/write", "subscription", "Microsoft."),
            (
                "Microsoft.Storage/storageAccounts/write",
                "resourceGroup",
                "subscription",
            ),
        ] {
            let err = role_actions(&[RequiredPermission {
                action,
                resource,
                why: "test",
            }])
            .expect_err(action);
            let text = err.to_string();
            assert!(text.contains(action) && text.contains(says), "{text}");
        }
    }

    #[test]
    fn the_parameters_are_the_first_deployment() {
        let config = EscherConfig::default();
        let files = rendered(&config, &PERMISSIONS);
        let params: Value = serde_json::from_str(&files[1].contents).expect("parameters are JSON");
        assert_eq!(files[1].name, PARAMETERS_FILE);
        assert_eq!(
            params["parameters"]["createEventSubscriptions"]["value"],
            false
        );
        assert_eq!(params["parameters"]["lockAuditRetention"]["value"], false);
        assert_eq!(params["parameters"]["location"]["value"], "westeurope");
    }

    #[test]
    fn user_text_stays_a_string_in_both_languages() {
        let config = EscherConfig::parse(
            "[notifications.critical]\nemails = [\"a'b${x}\\\\q\\\"z@example.com\"]\n",
            std::path::Path::new("escher.toml"),
        )
        .expect("config");
        let files = rendered(&config, &PERMISSIONS);
        let template = arm(&files);
        let text = template.to_string();
        assert!(text.contains(r#"a'b${x}\\q\"z@example.com"#), "{text}");
        let bicep = &files[2].contents;
        assert!(bicep.contains(r#"'a\'b\${x}\\q"z@example.com'"#), "{bicep}");
    }

    #[test]
    fn bicep_literals() {
        assert_eq!(bicep_literal(&json!("it's ${a}"), 0), r"'it\'s \${a}'");
        assert_eq!(bicep_literal(&json!([]), 0), "[]");
        assert_eq!(
            bicep_literal(&json!({"name": "x", "odd-key": [1, true]}), 2),
            "{\n    name: 'x'\n    'odd-key': [\n      1\n      true\n    ]\n  }"
        );
    }
}
