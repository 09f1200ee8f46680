//! The Azure deployment: the rendered ARM template deployed as a deployment stack in the
//! user's resource group, so `destroy` removes exactly what was created.
//!
//! `extend` previews with Resource Manager's what-if, creates the group if needed, deploys
//! the stack, publishes the function package (Flex Consumption's one-deploy), waits until
//! the host lists the functions, then deploys the stack again with the Event Grid
//! subscriptions, the alert webhook and the audit retention lock, which need the
//! functions to exist. `destroy` deploys the stack once more with `teardown` (every
//! resource but the kept data accounts is left out, so the stack deletes them), then
//! removes the stack, detaching what was kept.
//!
//! Credentials: a service principal from `AZURE_TENANT_ID` / `AZURE_CLIENT_ID` /
//! `AZURE_CLIENT_SECRET`, else the App Service managed identity where `IDENTITY_ENDPOINT`
//! is set, else the Azure CLI's login (`az login`).

pub mod package;
mod package_publish;
mod vault;
pub mod what_if;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use azure_core::credentials::TokenCredential;
use escher_azure::arm::{ArmClient, ArmError, ArmOperation, HttpMethod, Patience, PUBLIC_ENDPOINT};
use serde_json::{json, Value};

use super::seam::{
    Current, Deletion, Deployed, Deployment, DestroyPlan, FunctionStatus, KeptResource, Preview,
    PreviewKind, PreviewRequest, Resource, SecretList, Session, Status,
};
use super::{AccessArgs, OtherCloud};
use crate::cloud::Cloud;
use crate::config::EscherConfig;
use crate::render::azure::{is_storage_account_name, AccountNames};
use package::FunctionsPackage;

const fn op(
    id: &'static str,
    method: HttpMethod,
    api_version: &'static str,
    permission: &'static str,
) -> ArmOperation {
    ArmOperation {
        id,
        method,
        api_version,
        permission,
    }
}

const GET_SUBSCRIPTION: ArmOperation = op(
    "Subscriptions_Get",
    HttpMethod::Get,
    "2022-12-01",
    "Microsoft.Resources/subscriptions/read",
);
const GET_GROUP: ArmOperation = op(
    "ResourceGroups_Get",
    HttpMethod::Get,
    "2025-04-01",
    "Microsoft.Resources/subscriptions/resourceGroups/read",
);
const PUT_GROUP: ArmOperation = op(
    "ResourceGroups_CreateOrUpdate",
    HttpMethod::Put,
    "2025-04-01",
    "Microsoft.Resources/subscriptions/resourceGroups/write",
);
const WHAT_IF: ArmOperation = op(
    "Deployments_WhatIf",
    HttpMethod::Post,
    "2025-04-01",
    "Microsoft.Resources/deployments/whatIf/action",
);
const GET_STACK: ArmOperation = op(
    "DeploymentStacks_GetAtResourceGroup",
    HttpMethod::Get,
    "2024-03-01",
    "Microsoft.Resources/deploymentStacks/read",
);
const PUT_STACK: ArmOperation = op(
    "DeploymentStacks_CreateOrUpdateAtResourceGroup",
    HttpMethod::Put,
    "2024-03-01",
    "Microsoft.Resources/deploymentStacks/write",
);
const DELETE_STACK: ArmOperation = op(
    "DeploymentStacks_DeleteAtResourceGroup",
    HttpMethod::Delete,
    "2024-03-01",
    "Microsoft.Resources/deploymentStacks/delete",
);
const LIST_FUNCTIONS: ArmOperation = op(
    "WebApps_ListFunctions",
    HttpMethod::Get,
    "2024-04-01",
    "Microsoft.Web/sites/functions/read",
);

/// How long a stack deployment may take (a new Function App and its network take minutes).
const DEPLOY_PATIENCE: Patience = Patience {
    attempts: 4,
    poll_interval: Duration::from_secs(10),
    max_wait: Duration::from_secs(60),
    operation_timeout: Duration::from_secs(45 * 60),
};

/// Escher Extend's deployment in one Azure subscription and resource group.
pub struct AzureDeployment {
    session: Session,
    arm: ArmClient,
    credential: Arc<dyn TokenCredential>,
    /// `--endpoint-url`: every Azure call (Resource Manager, the app's deployment site, Key
    /// Vault) goes there.
    endpoint_override: Option<String>,
    config: EscherConfig,
    subscription: String,
    group: String,
    location: String,
    stack_name: String,
    /// What `preview` prepared and `apply` deploys.
    pending: Option<PendingDeploy>,
}

struct PendingDeploy {
    template: Value,
    package: FunctionsPackage,
    group_exists: bool,
    /// The storage accounts the template names, passed on every pass.
    accounts: AccountNames,
    /// The functions already run (a stack from an earlier `extend`): no first pass without
    /// the event subscriptions is needed.
    functions_listed: bool,
    /// The package hash the stack records: the package the app runs.
    recorded_sha: Option<String>,
}

impl AzureDeployment {
    fn group_path(&self) -> String {
        format!(
            "/subscriptions/{}/resourcegroups/{}",
            self.subscription, self.group
        )
    }

    fn stack_path(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Resources/deploymentStacks/{}",
            self.subscription, self.group, self.stack_name
        )
    }

    fn site_path(&self, app: &str) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Web/sites/{app}",
            self.subscription, self.group
        )
    }

    /// The stack as Resource Manager holds it; `None` when there is none.
    async fn stack(&self) -> anyhow::Result<Option<Value>> {
        match self
            .arm
            .call(&GET_STACK, &self.stack_path(), &[], None)
            .await
        {
            Ok(stack) => Ok(Some(stack)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e).context(format!("cannot read {}", self.session.label)),
        }
    }

    /// The resource group as Resource Manager holds it; `None` when there is none.
    async fn resource_group(&self) -> anyhow::Result<Option<Value>> {
        match self
            .arm
            .call(&GET_GROUP, &self.group_path(), &[], None)
            .await
        {
            Ok(group) => Ok(Some(group)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e).context(format!("cannot read resource group {}", self.group)),
        }
    }

    /// [`account_names`] in this deployment's subscription and group.
    fn account_names(&self, stack: Option<&Value>, group: Option<&Value>) -> AccountNames {
        account_names(&self.subscription, &self.group, stack, group)
    }

    /// The functions the app's host lists (`alert`, `events`, `nightly`).
    async fn listed_functions(&self, app: &str) -> anyhow::Result<Vec<String>> {
        let path = format!("{}/functions", self.site_path(app));
        let functions = match self.arm.list(&LIST_FUNCTIONS, &path, &[]).await {
            Ok(list) => list,
            Err(e) if is_not_found(&e) => return Ok(Vec::new()),
            Err(e) => return Err(e).context(format!("cannot list the functions of {app}")),
        };
        let mut names: Vec<String> = functions
            .iter()
            .filter_map(|f| f["name"].as_str())
            // `app/alert`
            .map(|n| n.rsplit('/').next().unwrap_or(n).to_string())
            .collect();
        names.sort();
        Ok(names)
    }

    /// Deploys the stack with `parameters`, printing its progress until it settles; a
    /// failure names the failing resources and Azure's reasons.
    async fn deploy_stack(
        &self,
        template: &Value,
        parameters: &Value,
        what: &str,
    ) -> anyhow::Result<Value> {
        let body = json!({
            "tags": {"escher:managed-by": "escher-provision"},
            "properties": {
                "description": "Escher Extend (escher-provision extend --cloud azure)",
                "template": template,
                "parameters": parameters,
                // Resources taken out of the template are deleted; a resource group is never.
                "actionOnUnmanage": {"resources": "delete", "resourceGroups": "detach", "managementGroups": "detach"},
                "denySettings": {"mode": "none"}
            }
        });
        eprintln!("{what}: deploying {} …", self.session.label);
        let path = self.stack_path();
        let deploy = self.arm.call(&PUT_STACK, &path, &[], Some(&body));
        let watch = self.watch_stack();
        let result = tokio::select! {
            result = deploy => result,
            never = watch => match never {},
        };
        match result {
            Ok(_) => {
                let stack = self.stack().await?.unwrap_or(Value::Null);
                eprintln!(
                    "{what}: {} ({} resources managed)",
                    state_of(&stack),
                    stack["properties"]["resources"]
                        .as_array()
                        .map_or(0, Vec::len)
                );
                Ok(stack)
            }
            Err(e) => {
                let stack = self.stack().await.ok().flatten().unwrap_or(Value::Null);
                let reasons = failure_reasons(&stack);
                if reasons.is_empty() {
                    Err(e).context(format!("{what} of {} failed", self.session.label))
                } else {
                    bail!(
                        "{what} of {} failed ({e}):\n{}\nfix what is named above, then run `escher-provision extend --cloud azure` again (the stack resumes from where it stopped)",
                        self.session.label,
                        reasons.join("\n")
                    )
                }
            }
        }
    }

    /// Prints the stack's state every 15 s while a deployment runs (never ends by itself).
    async fn watch_stack(&self) -> std::convert::Infallible {
        let started = std::time::Instant::now();
        loop {
            tokio::time::sleep(Duration::from_secs(15)).await;
            if let Ok(Some(stack)) = self.stack().await {
                eprintln!(
                    "  {} s: {}, {} resources so far",
                    started.elapsed().as_secs(),
                    state_of(&stack),
                    stack["properties"]["resources"]
                        .as_array()
                        .map_or(0, Vec::len)
                );
            }
        }
    }

    /// Waits until the host lists every function of the package.
    async fn await_functions(&self, app: &str) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        loop {
            let listed = self.listed_functions(app).await?;
            if package::FUNCTIONS
                .iter()
                .all(|f| listed.iter().any(|l| l == f))
            {
                eprintln!("functions listed: {}", listed.join(", "));
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(600) {
                bail!(
                    "the function app {app} still lists [{}] 10 minutes after the package was published, not {}; see its log stream in the portal, then run `escher-provision extend --cloud azure` again",
                    listed.join(", "),
                    package::FUNCTIONS.join(", ")
                );
            }
            eprintln!("waiting for the host to list the functions …");
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
    }

    fn vault_uri(&self, outputs: &BTreeMap<String, String>) -> anyhow::Result<String> {
        if let Some(endpoint) = &self.endpoint_override {
            return Ok(format!("{endpoint}/"));
        }
        outputs.get("vaultUri").cloned().with_context(|| {
            format!(
                "{} reports no vaultUri output; run `escher-provision extend --cloud azure` first",
                self.session.label
            )
        })
    }

    fn scm_endpoint(&self, app: &str) -> String {
        match &self.endpoint_override {
            Some(endpoint) => endpoint.clone(),
            None => format!("https://{app}.scm.azurewebsites.net"),
        }
    }

    async fn deployed_outputs(&self) -> anyhow::Result<BTreeMap<String, String>> {
        let stack = self.stack().await?.with_context(|| {
            format!(
                "{} does not exist; `escher-provision extend --cloud azure` creates it",
                self.session.label
            )
        })?;
        Ok(outputs_of(&stack))
    }
}

/// The storage accounts' names: those the stack was deployed with (its parameters, else, for a
/// stack deployed before they were parameters, its outputs), else the ones Azure gives the
/// group (`escst` / `escau` and `uniqueString(resourceGroup().id)`, with the group's name as
/// Azure spells it, from `found`), which an earlier deployment's accounts already have.
fn account_names(
    subscription: &str,
    group: &str,
    stack: Option<&Value>,
    found: Option<&Value>,
) -> AccountNames {
    let group = found.and_then(|g| g["name"].as_str()).unwrap_or(group);
    let computed = AccountNames::for_group(subscription, group);
    let outputs = stack.map(outputs_of).unwrap_or_default();
    let recorded = |parameter: &str, output: &str| {
        stack
            .and_then(|s| s["properties"]["parameters"][parameter]["value"].as_str())
            .or_else(|| outputs.get(output).map(String::as_str))
            .filter(|name| is_storage_account_name(name))
            .map(str::to_string)
    };
    AccountNames {
        state: recorded("stateStorageAccountName", "stateAccountName").unwrap_or(computed.state),
        audit: recorded("auditStorageAccountName", "auditAccountName").unwrap_or(computed.audit),
    }
}

fn is_not_found(e: &ArmError) -> bool {
    e.status == Some(404)
        || matches!(
            e.code(),
            Some("ResourceGroupNotFound" | "ResourceNotFound" | "DeploymentStackNotFound")
        )
}

/// The stack's `provisioningState`.
fn state_of(stack: &Value) -> String {
    stack["properties"]["provisioningState"]
        .as_str()
        .unwrap_or("unknown")
        .to_string()
}

/// The stack's outputs, each as its value's text.
fn outputs_of(stack: &Value) -> BTreeMap<String, String> {
    stack["properties"]["outputs"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, output)| {
            // `{"type", "value"}` as deployments report outputs, or the value itself.
            let value = match output.get("value") {
                Some(value) if output.is_object() => value,
                _ => output,
            };
            let text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (name.clone(), text)
        })
        .collect()
}

/// `resource: reason` lines from a failed stack's error and its failed resources.
fn failure_reasons(stack: &Value) -> Vec<String> {
    fn walk(error: &Value, out: &mut Vec<String>) {
        let details = error["details"].as_array().filter(|d| !d.is_empty());
        match details {
            Some(details) => details.iter().for_each(|d| walk(d, out)),
            None => {
                let message = error["message"].as_str().unwrap_or_default();
                if message.is_empty() {
                    return;
                }
                let target = error["target"]
                    .as_str()
                    .map(|t| what_if::type_and_name(t).1)
                    .filter(|t| !t.is_empty());
                let code = error["code"].as_str().unwrap_or("error");
                out.push(match target {
                    Some(t) => format!("  {t}: {code}: {message}"),
                    None => format!("  {code}: {message}"),
                });
            }
        }
    }
    let mut out = Vec::new();
    walk(&stack["properties"]["error"], &mut out);
    for failed in stack["properties"]["failedResources"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let id = failed["id"].as_str().unwrap_or_default();
        let (kind, name) = what_if::type_and_name(id);
        let message = failed["error"]["message"].as_str().unwrap_or("failed");
        let line = format!("  {name} ({kind}): {message}");
        if !out.contains(&line) {
            out.push(line);
        }
    }
    out
}

/// The Azure CLI's current subscription (`az account show`), when the CLI is there and
/// logged in.
fn cli_subscription() -> Option<String> {
    let out = std::process::Command::new("az")
        .args(["account", "show", "--query", "id", "--output", "tsv"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let id = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !id.is_empty()).then_some(id)
}

/// The chain's first credential that applies here, and how to name it.
pub(crate) fn credential_chain() -> anyhow::Result<(Arc<dyn TokenCredential>, String)> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let (Some(tenant), Some(client), Some(secret)) = (
        env("AZURE_TENANT_ID"),
        env("AZURE_CLIENT_ID"),
        env("AZURE_CLIENT_SECRET"),
    ) {
        let credential = azure_identity::ClientSecretCredential::new(
            &tenant,
            client.clone(),
            secret.into(),
            None,
        )
        .context("AZURE_TENANT_ID / AZURE_CLIENT_ID / AZURE_CLIENT_SECRET do not describe a service principal")?;
        return Ok((credential, format!("service principal {client}")));
    }
    if env("IDENTITY_ENDPOINT").is_some() {
        let credential = escher_azure::managed_identity()
            .context("IDENTITY_ENDPOINT is set, but the managed identity cannot be used")?;
        return Ok((credential, "managed identity".into()));
    }
    let credential = azure_identity::AzureCliCredential::new(None)
        .context("no Azure credential: set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET, or run `az login`")?;
    Ok((credential, "Azure CLI login".into()))
}

impl Deployment for AzureDeployment {
    const UNIT: &'static str = "deployment stack";
    const PREVIEW: &'static str = "what-if";

    async fn connect(access: &AccessArgs, config: EscherConfig) -> anyhow::Result<Self> {
        let subscription = access
            .subscription
            .clone()
            .or_else(|| config.azure.subscription.as_ref().map(|s| s.to_string()))
            .or_else(|| std::env::var("AZURE_SUBSCRIPTION_ID").ok().filter(|s| !s.is_empty()))
            .or_else(cli_subscription)
            .context("no Azure subscription: pass --subscription, set [azure] subscription in escher.toml or AZURE_SUBSCRIPTION_ID, or choose one with `az account set`")?;
        let group = access
            .resource_group
            .clone()
            .unwrap_or_else(|| config.azure.resource_group.to_string());
        let location = access
            .location
            .clone()
            .unwrap_or_else(|| config.azure.location.to_string());
        let endpoint_override = access
            .endpoint_url
            .clone()
            .map(|e| e.trim_end_matches('/').to_string());
        let (credential, identity) = credential_chain()?;
        let arm = ArmClient::new(
            endpoint_override.as_deref().unwrap_or(PUBLIC_ENDPOINT),
            credential.clone(),
        )
        .with_patience(DEPLOY_PATIENCE);
        let described = arm
            .call(
                &GET_SUBSCRIPTION,
                &format!("/subscriptions/{subscription}"),
                &[],
                None,
            )
            .await
            .with_context(|| {
                format!("cannot read subscription {subscription} as the {identity}; check the id (`az account list -o table`) and that you may read it")
            })?;
        let display = described["displayName"]
            .as_str()
            .unwrap_or(&subscription)
            .to_string();
        let stack_name = config.stack.name.to_string();
        Ok(AzureDeployment {
            session: Session {
                cloud: Cloud::Azure,
                name: stack_name.clone(),
                account: subscription.clone(),
                region: location.clone(),
                identity,
                label: format!(
                    "deployment stack `{stack_name}` (subscription {display}, resource group {group}, {location})"
                ),
            },
            arm,
            credential,
            endpoint_override,
            config,
            subscription,
            group,
            location,
            stack_name,
            pending: None,
        })
    }

    fn session(&self) -> &Session {
        &self.session
    }

    async fn current(&mut self) -> anyhow::Result<Current> {
        let Some(stack) = self.stack().await? else {
            return Ok(Current::default());
        };
        let state = state_of(&stack);
        let settled = ["succeeded", "failed", "canceled"];
        if !settled.contains(&state.to_ascii_lowercase().as_str()) {
            bail!(
                "{} is {state}: another deployment or deletion is running; wait until it ends (`escher-provision status --cloud azure`), then run this again",
                self.session.label
            );
        }
        Ok(Current {
            deployed: Some(Deployed {
                status: state,
                status_reason: failure_reasons(&stack).first().cloned(),
                outputs: outputs_of(&stack),
            }),
            // A stack that failed is updated in place by the next deployment.
            recreate: None,
        })
    }

    async fn remove_failed(&mut self) -> anyhow::Result<()> {
        Ok(())
    }

    async fn preview(&mut self, request: &PreviewRequest<'_>) -> anyhow::Result<Preview> {
        let package = self.package(request)?;
        let stack = self.stack().await?;
        let group = self.resource_group().await?;
        let group_exists = group.is_some();
        let accounts = self.account_names(stack.as_ref(), group.as_ref());
        let template = self.template(request.timezone, &accounts)?;
        let functions_listed = match stack.as_ref().map(outputs_of) {
            Some(outputs) => match outputs.get("functionAppName") {
                Some(app) => !self.listed_functions(app).await?.is_empty(),
                None => false,
            },
            None => false,
        };
        let parameters = self.parameters(&package.sha256, functions_listed, false, true, &accounts);
        let changes = if group_exists {
            let body = json!({"properties": {
                "template": template,
                "parameters": parameters,
                "mode": "Incremental",
                "whatIfSettings": {"resultFormat": "ResourceIdOnly"}
            }});
            let path = format!(
                "{}/providers/Microsoft.Resources/deployments/{}-preview/whatIf",
                self.group_path(),
                self.stack_name
            );
            let result = self
                .arm
                .call(&WHAT_IF, &path, &[], Some(&body))
                .await
                .with_context(|| format!("the what-if of {} failed", self.session.label))?;
            what_if::changes(&result)
        } else {
            what_if::all_created(&self.group, &template)
        };
        let recorded_sha = stack
            .as_ref()
            .and_then(|s| s["properties"]["parameters"]["packageSha256"]["value"].as_str())
            .filter(|sha| !sha.is_empty())
            .map(str::to_string);
        let changed_parameters = if recorded_sha.as_deref() == Some(package.sha256.as_str()) {
            Vec::new()
        } else {
            vec!["packageSha256".to_string()]
        };
        let up_to_date = changes.is_empty() && changed_parameters.is_empty();
        self.pending = Some(PendingDeploy {
            template,
            package,
            group_exists,
            accounts,
            functions_listed,
            recorded_sha,
        });
        Ok(Preview {
            kind: if stack.is_some() {
                PreviewKind::Update
            } else {
                PreviewKind::Create
            },
            changes,
            changed_parameters,
            uploaded: Vec::new(),
            up_to_date,
        })
    }

    async fn discard(&mut self) {
        self.pending = None;
    }

    async fn apply(&mut self, _preview: &Preview) -> anyhow::Result<Deployed> {
        let pending = self
            .pending
            .take()
            .context("nothing to apply: the what-if was not run")?;
        if !pending.group_exists {
            eprintln!(
                "creating resource group {} in {}",
                self.group, self.location
            );
            let body = json!({"location": self.location, "tags": {"escher:managed-by": "escher-provision"}});
            self.arm
                .call(&PUT_GROUP, &self.group_path(), &[], Some(&body))
                .await
                .with_context(|| format!("cannot create resource group {}", self.group))?;
        }
        let new_sha = pending.package.sha256.as_str();
        let publish = !pending.functions_listed || pending.recorded_sha.as_deref() != Some(new_sha);
        // The stack records a package's hash only once the package runs: after a failed
        // publish it still names the old one, so the next `extend` publishes again.
        let first_sha = if publish {
            pending.recorded_sha.as_deref().unwrap_or_default()
        } else {
            new_sha
        };
        let first_pass = match (pending.functions_listed, publish) {
            (false, _) => "first pass (without the event subscriptions)",
            (true, true) => "first pass (the new package is recorded once it runs)",
            (true, false) => "deployment",
        };
        let parameters = self.parameters(
            first_sha,
            pending.functions_listed,
            false,
            true,
            &pending.accounts,
        );
        let stack = self
            .deploy_stack(&pending.template, &parameters, first_pass)
            .await?;
        let stack = if publish {
            self.publish_and_record(&pending, stack).await?
        } else {
            stack
        };
        Ok(Deployed {
            status: state_of(&stack),
            status_reason: None,
            outputs: outputs_of(&stack),
        })
    }

    async fn status(&self) -> anyhow::Result<Option<Status>> {
        let Some(stack) = self.stack().await? else {
            return Ok(None);
        };
        let outputs = outputs_of(&stack);
        let sha = stack["properties"]["parameters"]["packageSha256"]["value"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let mut functions = Vec::new();
        if let Some(app) = outputs.get("functionAppName") {
            let listed = self.listed_functions(app).await;
            for name in package::FUNCTIONS {
                let error = match &listed {
                    Ok(listed) if listed.iter().any(|l| l == name) => None,
                    Ok(_) => Some("not listed by the host (package not published?)".to_string()),
                    Err(e) => Some(format!("{e:#}")),
                };
                functions.push(FunctionStatus {
                    function: name.to_string(),
                    name: format!("{app}/{name}"),
                    code_sha256: if error.is_none() { sha.clone() } else { None },
                    last_modified: None,
                    version: None,
                    error,
                });
            }
        }
        Ok(Some(Status {
            deployed: Deployed {
                status: state_of(&stack),
                status_reason: failure_reasons(&stack).first().cloned(),
                outputs,
            },
            last_updated: stack["systemData"]["lastModifiedAt"]
                .as_str()
                .map(str::to_string),
            functions,
            drift: "not reported by deployment stacks; `escher-provision extend --cloud azure --dry-run` shows what differs from the template".into(),
        }))
    }

    async fn destroy_plan(&self, delete_data: bool) -> anyhow::Result<Option<DestroyPlan>> {
        let Some(stack) = self.stack().await? else {
            return Ok(None);
        };
        let outputs = outputs_of(&stack);
        let audit = outputs.get("auditAccountName").cloned().unwrap_or_default();
        let state = outputs.get("stateAccountName").cloned().unwrap_or_default();
        Ok(Some(destroy_plan(&stack, &audit, &state, delete_data)))
    }

    async fn destroy(&self, plan: &DestroyPlan) -> anyhow::Result<()> {
        let stack = self
            .stack()
            .await?
            .context("the deployment stack is gone already")?;
        // The stack does not hand its template back; with teardown set, what the template
        // says besides the kept accounts does not matter.
        let group = self.resource_group().await?;
        let accounts = self.account_names(Some(&stack), group.as_ref());
        let template = self.template(None, &accounts)?;
        let sha = stack["properties"]["parameters"]["packageSha256"]["value"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let keep_state = plan.emptied.is_empty();
        let parameters = self.parameters(&sha, false, true, keep_state, &accounts);
        self.deploy_stack(
            &template,
            &parameters,
            "teardown (deleting all but the kept data)",
        )
        .await?;
        eprintln!("removing the deployment stack (the kept resources are detached)");
        self.arm
            .call(
                &DELETE_STACK,
                &self.stack_path(),
                &[
                    ("unmanageAction.Resources", "detach"),
                    ("unmanageAction.ResourceGroups", "detach"),
                ],
                None,
            )
            .await
            .with_context(|| format!("cannot remove {}", self.session.label))?;
        Ok(())
    }

    async fn store_secret(&self, cloud: OtherCloud, value: String) -> anyhow::Result<String> {
        let outputs = self.deployed_outputs().await?;
        let vault = self.vault_uri(&outputs)?;
        vault::set(
            self.arm.http(),
            self.credential.as_ref(),
            &vault,
            cloud,
            value,
        )
        .await
    }

    async fn list_secrets(&self) -> anyhow::Result<SecretList> {
        let outputs = self.deployed_outputs().await?;
        let vault = self.vault_uri(&outputs)?;
        vault::list(self.arm.http(), self.credential.as_ref(), &vault).await
    }

    async fn remove_secret(&self, cloud: OtherCloud) -> anyhow::Result<String> {
        let outputs = self.deployed_outputs().await?;
        let vault = self.vault_uri(&outputs)?;
        vault::remove(self.arm.http(), self.credential.as_ref(), &vault, cloud).await
    }
}

impl AzureDeployment {
    /// Publishes the package to the app the first pass deployed, waits until its functions
    /// are listed, then deploys the stack again recording the package (and, on a first
    /// deployment, with the event subscriptions, the webhook and the retention lock).
    async fn publish_and_record(
        &self,
        pending: &PendingDeploy,
        stack: Value,
    ) -> anyhow::Result<Value> {
        let app = outputs_of(&stack)
            .remove("functionAppName")
            .with_context(|| {
                format!(
                    "{} reports no functionAppName output, so the package cannot be published",
                    self.session.label
                )
            })?;
        package_publish::publish(
            self.arm.http(),
            self.credential.as_ref(),
            &self.scm_endpoint(&app),
            &app,
            &pending.package,
        )
        .await?;
        self.await_functions(&app).await?;
        let second_pass = if pending.functions_listed {
            "second pass (recording the new package)"
        } else {
            "second pass (event subscriptions, alert webhook, audit retention lock)"
        };
        let parameters = self.parameters(
            &pending.package.sha256,
            true,
            false,
            true,
            &pending.accounts,
        );
        self.deploy_stack(&pending.template, &parameters, second_pass)
            .await
    }

    /// The ARM template rendered from escher.toml (`timezone`: `--timezone`), naming
    /// `accounts`.
    fn template(
        &self,
        timezone: Option<crate::config::TimeZoneName>,
        accounts: &AccountNames,
    ) -> anyhow::Result<Value> {
        let (timezone, _) = crate::config::resolve_timezone(timezone, &self.config.schedule);
        let files = crate::render::azure::render(&crate::render::azure::AzureRenderInputs {
            config: &self.config,
            timezone,
            permissions: &escher_azure::all_required_permissions(),
            accounts: Some(accounts.clone()),
        })?;
        serde_json::from_str(&files[0].contents).context("the rendered ARM template is not JSON")
    }

    /// The package `extend` publishes: `--artifacts DIR/azure-functions.zip`, else the
    /// release package, built when missing or stale.
    fn package(&self, request: &PreviewRequest<'_>) -> anyhow::Result<FunctionsPackage> {
        let path: PathBuf = match request.artifacts {
            Some(dir) => dir.join(package::PACKAGE_FILE),
            None => {
                let workspace = crate::deploy::package::Workspace::of_this_build().context(
                    "no --artifacts given, and the sources this escher-provision was built from are not here to build the function package; pass --artifacts DIR holding azure-functions.zip",
                )?;
                if request.build {
                    package::build_release(&workspace)?
                } else {
                    package::default_package(&workspace)
                }
            }
        };
        let package = FunctionsPackage::read(&path)?;
        match (package.glibc_too_new, &self.endpoint_override) {
            (Some(newest), Some(endpoint)) => eprintln!(
                "warning: the custom handler in {} needs {newest}, newer than the Functions workers' glibc 2.31; accepted for {endpoint}, which never runs it",
                path.display()
            ),
            _ => package.require_worker_glibc()?,
        }
        Ok(package)
    }
}

impl AzureDeployment {
    /// The stack's parameters: escher.toml's and what this pass sets.
    fn parameters(
        &self,
        package_sha256: &str,
        second_pass: bool,
        teardown: bool,
        keep_state: bool,
        accounts: &AccountNames,
    ) -> Value {
        let operators: Vec<&str> = self
            .config
            .azure
            .operator_addresses
            .iter()
            .map(|a| a.as_str())
            .collect();
        json!({
            "location": {"value": self.location},
            "packageSha256": {"value": package_sha256},
            "createEventSubscriptions": {"value": second_pass},
            "lockAuditRetention": {"value": second_pass},
            "teardown": {"value": teardown},
            "keepState": {"value": keep_state},
            "stateStorageAccountName": {"value": accounts.state},
            "auditStorageAccountName": {"value": accounts.audit},
            "operatorAddresses": {"value": operators}
        })
    }
}

/// What `destroy` deletes and keeps, from the stack's managed resources: the audit account
/// (locked records), the Key Vault (a deleted one's name stays reserved) and the network
/// their firewalls name are always kept, the state account unless `delete_data`.
fn destroy_plan(stack: &Value, audit: &str, state: &str, delete_data: bool) -> DestroyPlan {
    let mut plan = DestroyPlan {
        delete: Vec::new(),
        keep: Vec::new(),
        emptied: Vec::new(),
    };
    let under = |id: &str, account: &str| {
        !account.is_empty()
            && id.to_ascii_lowercase().contains(&format!(
                "/storageaccounts/{}",
                account.to_ascii_lowercase()
            ))
    };
    for managed in stack["properties"]["resources"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let id = managed["id"].as_str().unwrap_or_default();
        let (resource_type, name) = what_if::type_and_name(id);
        let resource = Resource {
            logical_id: name,
            resource_type,
            physical_id: id.to_string(),
        };
        let keep = |why: &str| KeptResource {
            logical_id: resource.logical_id.clone(),
            resource_type: resource.resource_type.clone(),
            physical_id: resource.physical_id.clone(),
            why: why.to_string(),
        };
        if under(id, audit) {
            plan.keep.push(keep(
                "audit records are immutable until their retention ends",
            ));
        } else if under(id, state) && !delete_data {
            plan.keep.push(keep(
                "approvals, state and reports (--delete-data deletes them)",
            ));
        } else if resource
            .resource_type
            .eq_ignore_ascii_case("Microsoft.Network/virtualNetworks")
        {
            plan.keep.push(keep(
                "the kept storage accounts' firewall rules name its subnet",
            ));
        } else if resource
            .resource_type
            .eq_ignore_ascii_case("Microsoft.KeyVault/vaults")
        {
            // Purge protection keeps a deleted vault's name for its retention days, and
            // `extend` again would then fail to create it.
            plan.keep.push(keep(
                "a deleted vault keeps its name for 90 days, which would stop `extend` from running again; `credentials remove` deletes its secrets",
            ));
        } else {
            let note = if under(id, state) {
                if resource
                    .resource_type
                    .eq_ignore_ascii_case("Microsoft.Storage/storageAccounts")
                {
                    plan.emptied.push(resource.logical_id.clone());
                }
                Some("with every blob in it (--delete-data)".to_string())
            } else {
                None
            };
            plan.delete.push(Deletion { resource, note });
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack_with(ids: &[&str]) -> Value {
        json!({"properties": {"resources": ids.iter().map(|id| json!({"id": id, "status": "managed"})).collect::<Vec<_>>()}})
    }

    const G: &str = "/subscriptions/s/resourceGroups/escher/providers";

    #[test]
    fn destroy_keeps_the_audit_account_and_the_state_account_unless_asked() {
        let stack = stack_with(&[
            &format!("{G}/Microsoft.Storage/storageAccounts/escau1"),
            &format!("{G}/Microsoft.Storage/storageAccounts/escau1/blobServices/default"),
            &format!("{G}/Microsoft.Storage/storageAccounts/escst1"),
            &format!("{G}/Microsoft.Web/sites/app"),
            &format!("{G}/Microsoft.KeyVault/vaults/v"),
            &format!("{G}/Microsoft.Network/virtualNetworks/net"),
        ]);
        let plan = destroy_plan(&stack, "escau1", "escst1", false);
        let kept: Vec<&str> = plan.keep.iter().map(|k| k.logical_id.as_str()).collect();
        assert_eq!(kept, ["escau1", "escau1/default", "escst1", "v", "net"]);
        let deleted: Vec<&str> = plan
            .delete
            .iter()
            .map(|d| d.resource.logical_id.as_str())
            .collect();
        assert_eq!(deleted, ["app"]);
        assert!(plan.emptied.is_empty());

        let plan = destroy_plan(&stack, "escau1", "escst1", true);
        assert!(plan
            .delete
            .iter()
            .any(|d| d.resource.logical_id == "escst1"));
        assert_eq!(plan.emptied, ["escst1"]);
        assert!(plan.keep.iter().any(|k| k.logical_id == "escau1"));
    }

    #[test]
    fn the_accounts_keep_the_names_they_were_deployed_with() {
        let subscription = "00000000-0000-0000-0000-0000000e5c4e";
        // A new deployment: the group's name as Azure spells it, not as escher.toml does.
        let found = json!({"name": "Escher"});
        assert_eq!(
            account_names(subscription, "escher", None, Some(&found)),
            AccountNames::for_group(subscription, "Escher")
        );
        assert_eq!(
            account_names(subscription, "escher", None, None),
            AccountNames::for_group(subscription, "escher")
        );
        // A stack's own parameters, else (deployed before they were parameters) its outputs.
        let stack = json!({"properties": {
            "parameters": {"stateStorageAccountName": {"value": "escstrecorded"}},
            "outputs": {"stateAccountName": {"type": "String", "value": "escstoutput"},
                        "auditAccountName": {"type": "String", "value": "escauoutput"}}
        }});
        let names = account_names(subscription, "escher", Some(&stack), Some(&found));
        assert_eq!(names.state, "escstrecorded");
        assert_eq!(names.audit, "escauoutput");
        // What is not a storage account name is not taken.
        let stack = json!({"properties": {"outputs": {"stateAccountName": "stateAccount"}}});
        let names = account_names(subscription, "escher", Some(&stack), None);
        assert_eq!(names, AccountNames::for_group(subscription, "escher"));
    }

    #[test]
    fn a_failed_stack_names_each_failing_resource_and_the_reason() {
        let stack = json!({"properties": {"provisioningState": "failed", "error": {
            "code": "DeploymentStackDeploymentFailed", "message": "One or more resources could not be deployed.",
            "details": [{"code": "DeploymentFailed", "message": "At least one resource deployment operation failed.", "details": [
                {"code": "SkuNotAvailable", "target": format!("{G}/Microsoft.Web/serverfarms/escher-plan"), "message": "The requested SKU FC1 is not available in location 'westeurope'."}
            ]}]
        }, "failedResources": [
            {"id": format!("{G}/Microsoft.Web/serverfarms/escher-plan"), "error": {"code": "SkuNotAvailable", "message": "The requested SKU FC1 is not available in location 'westeurope'."}}
        ]}});
        let reasons = failure_reasons(&stack);
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert!(reasons[0].contains("escher-plan: SkuNotAvailable: The requested SKU FC1"));
        assert!(reasons[1].contains("escher-plan (Microsoft.Web/serverfarms)"));
    }
}
