//! The stand-in's deployments: resource groups, what-if, deployment stacks, the app's
//! deployment site (Kudu's one-deploy) and Key Vault's secret writes.
//!
//! A template is not run, but read: each resource is named by its `metadata.symbol` (its
//! id `<group>/providers/<type>/<parent symbol>/…/<symbol>`), its `condition` is evaluated
//! (`parameters`, `variables`, `not`, `and`, `or`, `equals`, literals), and a stack manages
//! the resources whose condition holds. A resource a new deployment leaves out is deleted
//! (the stack's `actionOnUnmanage`), as Resource Manager does. What-if compares the
//! template with what the group's stack manages: new resources are `Create`, resources
//! whose text names a parameter whose value changed are `Modify`, the rest `NoChange`.

use std::collections::BTreeMap;
use std::io::Read as _;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::{error, not_found, ok, start_lro, Effect, Inner, Operation};

#[derive(Debug, Default)]
pub(super) struct DeployState {
    /// Per stack id (lowercase): the parameters it was deployed with and the resources it
    /// manages (id → the template's resource).
    stacks: BTreeMap<String, StackRecord>,
    /// Ids of resources a stack deleted, in order.
    deleted: Vec<String>,
    /// The next stack deployment fails on this symbol: (symbol, code, message).
    fail_next: Option<(String, String, String)>,
    /// The next publish ends failed with this text.
    fail_publish: Option<String>,
    /// The deployment site's deployments so far, and the last one's failure text.
    deployments: u32,
    last_failure: Option<String>,
}

#[derive(Debug, Clone, Default)]
struct StackRecord {
    parameters: Value,
    managed: BTreeMap<String, Value>,
}

#[derive(Debug)]
pub(super) enum StackEffect {
    Deploy {
        id: String,
        body: Value,
        endpoint: String,
    },
    Delete {
        id: String,
        delete_resources: bool,
    },
}

impl super::ArmDouble {
    /// A subscription the stand-in knows (from the published example).
    pub fn subscription(&self, id: &str, display_name: &str) {
        let mut body = super::example("resources/2022-12-01/GetSubscription.json")["responses"]
            ["200"]["body"]
            .clone();
        body["id"] = json!(format!("/subscriptions/{id}"));
        body["subscriptionId"] = json!(id);
        body["displayName"] = json!(display_name);
        self.lock()
            .resources
            .insert(format!("/subscriptions/{id}").to_ascii_lowercase(), body);
    }

    /// Makes the next stack deployment fail on the resource `symbol`.
    pub fn fail_next_stack(&self, symbol: &str, code: &str, message: &str) {
        self.lock().deploy.fail_next = Some((symbol.into(), code.into(), message.into()));
    }

    /// Makes the next one-deploy end failed, with `text` as its reason.
    pub fn fail_next_publish(&self, text: &str) {
        self.lock().deploy.fail_publish = Some(text.into());
    }

    /// Ids of the resources stacks deleted, in order.
    pub fn deleted_by_stacks(&self) -> Vec<String> {
        self.lock().deploy.deleted.clone()
    }

    /// The ids a stack manages now (empty when there is no such stack).
    pub fn stack_resources(&self, stack_id: &str) -> Vec<String> {
        self.lock()
            .deploy
            .stacks
            .get(&stack_id.to_ascii_lowercase())
            .map(|s| s.managed.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The parameters a stack was last deployed with.
    pub fn stack_parameters(&self, stack_id: &str) -> Option<Value> {
        self.lock()
            .deploy
            .stacks
            .get(&stack_id.to_ascii_lowercase())
            .map(|s| s.parameters.clone())
    }
}

/// The deployments' operations; `None` for the others.
pub(super) fn act(
    inner: &mut Inner,
    operation: &Operation,
    path: &str,
    query: &[(String, String)],
    body: Option<&Value>,
    endpoint: &str,
) -> Option<Response> {
    let key = path.to_ascii_lowercase();
    let body = body.cloned().unwrap_or(Value::Null);
    Some(match operation.id.as_str() {
        "ResourceGroups_CreateOrUpdate" => {
            let existed = inner.resources.contains_key(&key);
            let group = json!({
                "id": path,
                "name": path.rsplit('/').next().unwrap_or_default(),
                "type": "Microsoft.Resources/resourceGroups",
                "location": body["location"],
                "tags": body["tags"],
                "properties": {"provisioningState": "Succeeded"}
            });
            inner.resources.insert(key, group.clone());
            ok(
                if existed {
                    StatusCode::OK
                } else {
                    StatusCode::CREATED
                },
                group,
            )
        }
        "Deployments_WhatIf" => {
            let group = group_of(&key);
            if !inner.resources.contains_key(&group) {
                return Some(error(
                    StatusCode::NOT_FOUND,
                    "ResourceGroupNotFound",
                    format!("Resource group '{group}' could not be found."),
                ));
            }
            let result = what_if(inner, &group, &body);
            let response = start_lro(
                inner,
                operation,
                Effect::Stack(StackEffect::Delete {
                    id: String::new(),
                    delete_resources: false,
                }),
                StatusCode::ACCEPTED,
                Value::Null,
                endpoint,
            );
            if let Some(pending) = inner.pending.get_mut(&inner.next_operation) {
                pending.result = Some(result);
            }
            response
        }
        "DeploymentStacks_CreateOrUpdateAtResourceGroup" => {
            if !inner.resources.contains_key(&group_of(&key)) {
                return Some(not_found(path));
            }
            let failure = inner.deploy.fail_next.take();
            let mut stack = inner.resources.get(&key).cloned().unwrap_or_else(|| {
                json!({"id": path, "name": path.rsplit('/').next().unwrap_or_default(),
                       "type": "Microsoft.Resources/deploymentStacks", "properties": {}})
            });
            stack["properties"]["provisioningState"] = json!("deploying");
            stack["properties"]["parameters"] = body["properties"]["parameters"].clone();
            stack["properties"]["actionOnUnmanage"] =
                body["properties"]["actionOnUnmanage"].clone();
            stack["properties"]["description"] = body["properties"]["description"].clone();
            stack["tags"] = body["tags"].clone();
            inner.resources.insert(key.clone(), stack.clone());
            // 201 for a new stack, 200 for an update; both with Azure-AsyncOperation.
            let status = if inner.deploy.stacks.contains_key(&key) {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            let effect = match &failure {
                Some((symbol, code, message)) => {
                    let error = stack_error(inner, &key, symbol, code, message);
                    if let Some(s) = inner.resources.get_mut(&key) {
                        s["properties"]["provisioningState"] = json!("failed");
                        s["properties"]["error"] = error["error"].clone();
                        s["properties"]["failedResources"] = error["failedResources"].clone();
                    }
                    None
                }
                None => Some(Effect::Stack(StackEffect::Deploy {
                    id: key.clone(),
                    body,
                    endpoint: endpoint.to_string(),
                })),
            };
            let response = start_lro(
                inner,
                operation,
                effect.unwrap_or(Effect::Stack(StackEffect::Delete {
                    id: String::new(),
                    delete_resources: false,
                })),
                status,
                stack,
                endpoint,
            );
            if let Some((symbol, code, message)) = failure {
                let error = stack_error(inner, &key, &symbol, &code, &message);
                if let Some(pending) = inner.pending.get_mut(&inner.next_operation) {
                    pending.failure = Some(error["error"].clone());
                }
            }
            response
        }
        "DeploymentStacks_DeleteAtResourceGroup" => {
            if !inner.resources.contains_key(&key) {
                return Some(StatusCode::NO_CONTENT.into_response());
            }
            let param = |k: &str| query.iter().find(|(q, _)| q == k).map(|(_, v)| v.as_str());
            let delete_resources = param("unmanageAction.Resources") == Some("delete");
            if let Some(s) = inner.resources.get_mut(&key) {
                s["properties"]["provisioningState"] = json!("deleting");
            }
            start_lro(
                inner,
                operation,
                Effect::Stack(StackEffect::Delete {
                    id: key,
                    delete_resources,
                }),
                StatusCode::ACCEPTED,
                Value::Null,
                endpoint,
            )
        }
        "SetSecret" => {
            let name = path.rsplit('/').next().unwrap_or_default().to_string();
            let value = body["value"].as_str().unwrap_or_default().to_string();
            inner.secrets.insert(name.clone(), value.clone());
            ok(
                StatusCode::OK,
                json!({"value": value, "id": format!("{endpoint}/secrets/{name}/1"),
                       "attributes": {"enabled": true, "created": chrono::Utc::now().timestamp(), "updated": chrono::Utc::now().timestamp()}}),
            )
        }
        "GetSecrets" => {
            let now = chrono::Utc::now().timestamp();
            let value: Vec<Value> = inner
                .secrets
                .keys()
                .map(|name| json!({"id": format!("{endpoint}/secrets/{name}"), "contentType": "application/json", "attributes": {"enabled": true, "created": now, "updated": now}}))
                .collect();
            ok(StatusCode::OK, json!({"value": value, "nextLink": null}))
        }
        "DeleteSecret" => {
            let name = path.rsplit('/').next().unwrap_or_default().to_string();
            match inner.secrets.remove(&name) {
                Some(_) => ok(
                    StatusCode::OK,
                    json!({"id": format!("{endpoint}/secrets/{name}/1"), "attributes": {"enabled": true}}),
                ),
                None => error(
                    StatusCode::NOT_FOUND,
                    "SecretNotFound",
                    format!("A secret with (name/id) {name} was not found in this key vault."),
                ),
            }
        }
        "WebApps_ListFunctions" => super::list(inner, operation, path, query, endpoint),
        _ => return None,
    })
}

/// `/subscriptions/s/resourcegroups/g` of any id under it.
fn group_of(key: &str) -> String {
    let parts: Vec<&str> = key.split('/').filter(|p| !p.is_empty()).collect();
    format!("/{}", parts[..parts.len().min(4)].join("/"))
}

fn stack_error(inner: &Inner, stack: &str, symbol: &str, code: &str, message: &str) -> Value {
    let group = group_of(stack);
    let target = inner
        .deploy
        .stacks
        .get(stack)
        .and_then(|s| {
            s.managed
                .keys()
                .find(|id| id.ends_with(&format!("/{}", symbol.to_ascii_lowercase())))
                .cloned()
        })
        .unwrap_or_else(|| format!("{group}/providers/unknown/{symbol}"));
    json!({
        "error": {"code": "DeploymentStackDeploymentFailed", "message": "One or more resources could not be deployed.",
                  "details": [{"code": code, "target": target, "message": message}]},
        "failedResources": [{"id": target, "error": {"code": code, "message": message}}]
    })
}

pub(super) fn apply(inner: &mut Inner, effect: StackEffect) {
    match effect {
        StackEffect::Deploy { id, body, endpoint } => deploy(inner, &id, &body, &endpoint),
        StackEffect::Delete {
            id,
            delete_resources,
        } => {
            if id.is_empty() {
                return;
            }
            inner.resources.remove(&id);
            let record = inner.deploy.stacks.remove(&id).unwrap_or_default();
            if delete_resources {
                for resource in record.managed.keys() {
                    inner.resources.remove(resource);
                    inner.deploy.deleted.push(resource.clone());
                }
            }
        }
    }
}

fn deploy(inner: &mut Inner, stack: &str, body: &Value, endpoint: &str) {
    let template = &body["properties"]["template"];
    let parameters = body["properties"]["parameters"].clone();
    let group = group_of(stack);
    let managed = managed_resources(&group, template, &parameters);
    let previous = inner.deploy.stacks.remove(stack).unwrap_or_default();
    for id in previous.managed.keys() {
        if !managed.contains_key(id) {
            inner.resources.remove(id);
            inner.deploy.deleted.push(id.clone());
        }
    }
    for (id, resource) in &managed {
        let entry = inner
            .resources
            .entry(id.clone())
            .or_insert_with(|| json!({}));
        entry["id"] = json!(id);
        entry["name"] = json!(id.rsplit('/').next().unwrap_or_default());
        entry["type"] = resource["type"].clone();
        entry["properties"]["provisioningState"] = json!("Succeeded");
    }
    let outputs = outputs(template, &managed, endpoint);
    if let Some(s) = inner.resources.get_mut(stack) {
        s["properties"]["provisioningState"] = json!("succeeded");
        s["properties"]["outputs"] = outputs;
        s["properties"]["resources"] = managed
            .keys()
            .map(|id| json!({"id": id, "status": "managed", "denyStatus": "none"}))
            .collect();
        s["properties"]["error"] = Value::Null;
        s["properties"]["failedResources"] = json!([]);
        s["systemData"] = json!({"lastModifiedAt": chrono::Utc::now().to_rfc3339()});
    }
    inner.deploy.stacks.insert(
        stack.to_string(),
        StackRecord {
            parameters,
            managed,
        },
    );
}

/// The template's resources whose condition holds, by the id the stand-in gives them.
fn managed_resources(group: &str, template: &Value, parameters: &Value) -> BTreeMap<String, Value> {
    let resources = template["resources"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    // Which symbol a `[variables('x')]` name belongs to, for children's parents.
    let mut by_name: BTreeMap<String, String> = BTreeMap::new();
    for r in &resources {
        if let (Some(name), Some(symbol)) = (r["name"].as_str(), r["metadata"]["symbol"].as_str()) {
            by_name.insert(name.to_string(), symbol.to_string());
        }
    }
    let mut out = BTreeMap::new();
    for r in resources {
        let holds = match r["condition"].as_str() {
            Some(c) => !matches!(evaluate(c, template, parameters), Val::Bool(false)),
            None => true,
        };
        if !holds {
            continue;
        }
        out.insert(resource_id(group, &r, &by_name).to_ascii_lowercase(), r);
    }
    out
}

fn resource_id(group: &str, resource: &Value, by_name: &BTreeMap<String, String>) -> String {
    let kind = resource["type"].as_str().unwrap_or_default();
    let symbol = resource["metadata"]["symbol"].as_str().unwrap_or("unnamed");
    let segments: Vec<&str> = kind.split('/').collect();
    let namespace = segments.first().copied().unwrap_or_default();
    let types = &segments[1.min(segments.len())..];
    let name = resource["name"].as_str().unwrap_or_default();
    // The parent: the resource named by the name's first `variables('x')`.
    let parent = name
        .find("variables('")
        .and_then(|at| {
            let rest = &name[at + "variables('".len()..];
            rest.find('\'')
                .map(|end| format!("[variables('{}')]", &rest[..end]))
        })
        .and_then(|expr| by_name.get(&expr).cloned())
        .unwrap_or_else(|| "parent".into());
    let mut id = format!("{group}/providers/{namespace}");
    for (i, t) in types.iter().enumerate() {
        let n = if i + 1 == types.len() {
            symbol.to_string()
        } else if i == 0 {
            parent.clone()
        } else {
            "default".to_string()
        };
        id.push_str(&format!("/{t}/{n}"));
    }
    id
}

/// Outputs as the stand-in evaluates them: a name output is the symbol of the resource
/// with that name; `vaultUri` is the stand-in itself (it answers Key Vault).
fn outputs(template: &Value, managed: &BTreeMap<String, Value>, endpoint: &str) -> Value {
    let mut out = serde_json::Map::new();
    for (name, output) in template["outputs"].as_object().into_iter().flatten() {
        let expression = output["value"].as_str().unwrap_or_default();
        let value = if name == "vaultUri" {
            format!("{endpoint}/")
        } else if let Some(r) = managed
            .values()
            .find(|r| r["name"].as_str() == Some(expression))
        {
            r["metadata"]["symbol"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        } else {
            format!("{name}-value")
        };
        // Stacks report outputs flat, as the published example shows.
        out.insert(name.clone(), json!(value));
    }
    Value::Object(out)
}

fn what_if(inner: &Inner, group: &str, body: &Value) -> Value {
    let template = &body["properties"]["template"];
    let parameters = &body["properties"]["parameters"];
    let wanted = managed_resources(group, template, parameters);
    let current = inner
        .deploy
        .stacks
        .iter()
        .find(|(id, _)| id.starts_with(&format!("{group}/")))
        .map(|(_, s)| s.clone())
        .unwrap_or_default();
    let changed: Vec<String> = parameters
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, v)| current.parameters.get(k.as_str()) != Some(*v))
        .map(|(k, _)| format!("parameters('{k}')"))
        .collect();
    let changes: Vec<Value> = wanted
        .iter()
        .map(|(id, resource)| {
            let change = match current.managed.get(id) {
                None => "Create",
                Some(before) => {
                    let text = resource.to_string();
                    if before != resource || changed.iter().any(|c| text.contains(c.as_str())) {
                        "Modify"
                    } else {
                        "NoChange"
                    }
                }
            };
            // Keys are lowercase; Resource Manager answers with the names as written.
            let symbol = resource["metadata"]["symbol"].as_str().unwrap_or_default();
            let shown = match id.rsplit_once('/') {
                Some((parent, _)) => format!("{parent}/{symbol}"),
                None => id.clone(),
            };
            json!({"resourceId": shown, "changeType": change})
        })
        .collect();
    json!({"status": "Succeeded", "properties": {"changes": changes}})
}

/// Kudu's one-deploy on the app's deployment site.
pub(super) fn kudu(
    inner: &mut Inner,
    method: &Method,
    path: &str,
    query: &[(String, String)],
    raw: &[u8],
) -> (Response, Option<String>) {
    let param = |k: &str| query.iter().find(|(q, _)| q == k).map(|(_, v)| v.as_str());
    match (method.as_str(), path) {
        ("POST", "/api/publish") => {
            if param("type") != Some("zip") || param("RemoteBuild") != Some("false") {
                let problem =
                    format!("Kudu_Publish: query {query:?} is not type=zip&RemoteBuild=false");
                inner.violations.push(problem.clone());
                return (
                    error(StatusCode::BAD_REQUEST, "ContractViolation", problem),
                    None,
                );
            }
            let functions = match functions_of(raw) {
                Ok(f) => f,
                Err(e) => {
                    return (
                        error(StatusCode::BAD_REQUEST, "BadPackage", e),
                        Some("Kudu_Publish".into()),
                    )
                }
            };
            inner.deploy.deployments += 1;
            inner.deploy.last_failure = inner.deploy.fail_publish.take();
            if inner.deploy.last_failure.is_none() {
                let sites: Vec<String> = inner
                    .resources
                    .iter()
                    .filter(|(_, r)| r["type"] == "Microsoft.Web/sites")
                    .map(|(id, _)| id.clone())
                    .collect();
                for site in sites {
                    let app = site.rsplit('/').next().unwrap_or_default().to_string();
                    for f in &functions {
                        inner.resources.insert(
                            format!("{site}/functions/{f}"),
                            json!({"id": format!("{site}/functions/{f}"), "name": format!("{app}/{f}"),
                                   "type": "Microsoft.Web/sites/functions",
                                   "properties": {"name": f, "language": "custom", "isDisabled": false}}),
                        );
                    }
                }
            }
            (
                StatusCode::ACCEPTED.into_response(),
                Some("Kudu_Publish".into()),
            )
        }
        ("GET", "/api/deployments/latest") => {
            let id = format!("deployment-{}", inner.deploy.deployments);
            let body = match (&inner.deploy.last_failure, inner.deploy.deployments) {
                (_, 0) => {
                    return (
                        error(
                            StatusCode::NOT_FOUND,
                            "NotFound",
                            "no deployment yet".into(),
                        ),
                        Some("Kudu_DeploymentStatus".into()),
                    )
                }
                (Some(text), _) => {
                    json!({"id": id, "status": 3, "status_text": text, "complete": true, "log_url": "stand-in"})
                }
                (None, _) => json!({"id": id, "status": 4, "status_text": "", "complete": true}),
            };
            (
                ok(StatusCode::OK, body),
                Some("Kudu_DeploymentStatus".into()),
            )
        }
        _ => {
            let problem = format!("{method} {path}: not a deployment-site path the stand-in knows");
            inner.violations.push(problem.clone());
            (
                error(StatusCode::NOT_FOUND, "ContractViolation", problem),
                None,
            )
        }
    }
}

/// The folders of a zip that hold a function.json, as the Functions host lists them.
fn functions_of(zip_bytes: &[u8]) -> Result<Vec<String>, String> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes))
        .map_err(|e| format!("the package is not a zip: {e}"))?;
    let mut found = Vec::new();
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).map_err(|e| e.to_string())?;
        let name = file.name().to_string();
        if let Some(folder) = name.strip_suffix("/function.json") {
            let mut text = String::new();
            file.read_to_string(&mut text).map_err(|e| e.to_string())?;
            serde_json::from_str::<Value>(&text)
                .map_err(|e| format!("{folder}/function.json is not JSON: {e}"))?;
            found.push(folder.to_string());
        }
    }
    found.sort();
    Ok(found)
}

#[derive(Debug, Clone, PartialEq)]
enum Val {
    Bool(bool),
    Str(String),
    Unknown,
}

/// Evaluates an ARM template expression far enough for conditions.
fn evaluate(expression: &str, template: &Value, parameters: &Value) -> Val {
    let inner = expression
        .strip_prefix('[')
        .and_then(|e| e.strip_suffix(']'))
        .unwrap_or(expression);
    let mut parser = Parser {
        text: inner.as_bytes(),
        at: 0,
        template,
        parameters,
    };
    parser.value()
}

struct Parser<'a> {
    text: &'a [u8],
    at: usize,
    template: &'a Value,
    parameters: &'a Value,
}

impl Parser<'_> {
    fn skip_space(&mut self) {
        while self.text.get(self.at).is_some_and(u8::is_ascii_whitespace) {
            self.at += 1;
        }
    }

    fn value(&mut self) -> Val {
        self.skip_space();
        if self.text.get(self.at) == Some(&b'\'') {
            self.at += 1;
            let start = self.at;
            while self.text.get(self.at).is_some_and(|c| *c != b'\'') {
                self.at += 1;
            }
            let s = String::from_utf8_lossy(&self.text[start..self.at]).into_owned();
            self.at += 1;
            return Val::Str(s);
        }
        let start = self.at;
        while self
            .text
            .get(self.at)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
        {
            self.at += 1;
        }
        let name = String::from_utf8_lossy(&self.text[start..self.at]).into_owned();
        self.skip_space();
        if self.text.get(self.at) != Some(&b'(') {
            return match name.as_str() {
                "true" => Val::Bool(true),
                "false" => Val::Bool(false),
                _ => Val::Unknown,
            };
        }
        self.at += 1;
        let mut args = Vec::new();
        loop {
            self.skip_space();
            match self.text.get(self.at) {
                Some(b')') => {
                    self.at += 1;
                    break;
                }
                Some(b',') => self.at += 1,
                None => break,
                _ => args.push(self.value()),
            }
        }
        self.call(&name, args)
    }

    fn call(&self, name: &str, args: Vec<Val>) -> Val {
        let text = |v: &Val| match v {
            Val::Str(s) => s.clone(),
            _ => String::new(),
        };
        match name {
            "parameters" => {
                let key = args.first().map(text).unwrap_or_default();
                let given = &self.parameters[&key]["value"];
                let value = if given.is_null() {
                    &self.template["parameters"][&key]["defaultValue"]
                } else {
                    given
                };
                literal(value, self.template, self.parameters)
            }
            "variables" => literal(
                &self.template["variables"][args.first().map(text).unwrap_or_default()],
                self.template,
                self.parameters,
            ),
            "not" => match args.first() {
                Some(Val::Bool(b)) => Val::Bool(!b),
                _ => Val::Unknown,
            },
            "and" | "or" => {
                let bools: Option<Vec<bool>> = args
                    .iter()
                    .map(|a| match a {
                        Val::Bool(b) => Some(*b),
                        _ => None,
                    })
                    .collect();
                match bools {
                    Some(b) if name == "and" => Val::Bool(b.iter().all(|x| *x)),
                    Some(b) => Val::Bool(b.iter().any(|x| *x)),
                    None => Val::Unknown,
                }
            }
            "equals" if args.len() == 2 && args[0] != Val::Unknown => Val::Bool(args[0] == args[1]),
            _ => Val::Unknown,
        }
    }
}

fn literal(value: &Value, template: &Value, parameters: &Value) -> Val {
    match value {
        Value::Bool(b) => Val::Bool(*b),
        Value::String(s) if s.starts_with('[') => evaluate(s, template, parameters),
        Value::String(s) => Val::Str(s.clone()),
        _ => Val::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_evaluate_through_variables_and_parameter_defaults() {
        let template = json!({
            "parameters": {"teardown": {"type": "bool", "defaultValue": false}, "keepState": {"type": "bool", "defaultValue": true}},
            "variables": {"deployApp": "[not(parameters('teardown'))]", "keepState": "[or(not(parameters('teardown')), parameters('keepState'))]"}
        });
        let none = json!({});
        assert_eq!(
            evaluate("[variables('deployApp')]", &template, &none),
            Val::Bool(true)
        );
        let teardown = json!({"teardown": {"value": true}});
        assert_eq!(
            evaluate("[variables('deployApp')]", &template, &teardown),
            Val::Bool(false)
        );
        assert_eq!(
            evaluate("[variables('keepState')]", &template, &teardown),
            Val::Bool(true)
        );
        let all = json!({"teardown": {"value": true}, "keepState": {"value": false}});
        assert_eq!(
            evaluate("[variables('keepState')]", &template, &all),
            Val::Bool(false)
        );
        assert_eq!(
            evaluate(
                "[and(variables('deployApp'), parameters('x'))]",
                &template,
                &none
            ),
            Val::Unknown
        );
    }
}
