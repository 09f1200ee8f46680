//! A CloudFormation stand-in for what moto cannot play: a stack stuck after a failed update
//! (`UPDATE_ROLLBACK_FAILED`, `UPDATE_FAILED`) and the two calls that take it out,
//! `ContinueUpdateRollback` and `RollbackStack` (moto has neither).
//!
//! It speaks CloudFormation's query protocol on 127.0.0.1 and holds every request to the
//! published API model (`tests/support/aws-api-models/cloudformation-2010-05-15.json`, the
//! operations used, from botocore's service model, see `SOURCES.md`): the action and version,
//! every parameter a member of the operation's input, the required ones present, lengths,
//! patterns and enums as the model states them. A request outside the model is answered 400
//! and kept in [`CloudFormationStandIn::violations`], which a test asserts empty. Answers carry
//! only members of the output shapes (checked by this module's tests).
//!
//! A rollback started here runs for [`CloudFormationStandIn::describes_per_rollback`]
//! `DescribeStacks` calls in `UPDATE_ROLLBACK_IN_PROGRESS`, then ends as the seed says
//! (`UPDATE_ROLLBACK_COMPLETE` unless told otherwise). A repeated client request token is
//! answered as CloudFormation does: success, nothing started again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use aws_config::SdkConfig;
use aws_sdk_sts::config::Credentials;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::http::read_request;

/// One stack the test puts in the stand-in.
#[derive(Debug, Clone)]
pub struct StackSeed {
    pub name: String,
    pub status: String,
    pub reason: String,
    /// The stack's service role; without one CloudFormation acts with the caller's rights.
    pub role_arn: Option<String>,
    pub last_updated: DateTime<Utc>,
    /// How a rollback started on it ends.
    pub rollback_ends_in: String,
}

impl StackSeed {
    /// A stack whose update failed and whose rollback failed too, with a service role,
    /// updated a minute ago.
    pub fn stuck(name: &str) -> StackSeed {
        StackSeed {
            name: name.to_string(),
            status: "UPDATE_ROLLBACK_FAILED".into(),
            reason: "The following resource(s) failed to update: [ApiFunction]. ".into(),
            role_arn: Some(format!(
                "arn:aws:iam::{ACCOUNT}:role/cloudformation-deployer"
            )),
            last_updated: Utc::now() - chrono::Duration::minutes(1),
            rollback_ends_in: "UPDATE_ROLLBACK_COMPLETE".into(),
        }
    }
}

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";
const XMLNS: &str = "http://cloudformation.amazonaws.com/doc/2010-05-15/";

#[derive(Debug, Clone)]
struct Stack {
    seed: StackSeed,
    id: String,
    created: DateTime<Utc>,
    status: String,
    reason: String,
    /// Describes left before a running rollback ends.
    rollback_left: Option<u32>,
}

#[derive(Default)]
struct State {
    stacks: Vec<Stack>,
    requests: Vec<(String, BTreeMap<String, String>)>,
    violations: Vec<String>,
    tokens: BTreeSet<(String, String, String)>,
    describes_per_rollback: u32,
}

/// The stand-in, serving until the runtime that started it ends.
#[derive(Clone)]
pub struct CloudFormationStandIn {
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    state: Arc<Mutex<State>>,
}

impl CloudFormationStandIn {
    pub async fn start() -> CloudFormationStandIn {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the CloudFormation stand-in to a local port");
        let endpoint = format!("http://{}", listener.local_addr().expect("its address"));
        let state = Arc::new(Mutex::new(State {
            describes_per_rollback: 1,
            ..State::default()
        }));
        let model = Arc::new(model());
        let shared = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (state, model) = (Arc::clone(&shared), Arc::clone(&model));
                tokio::spawn(async move {
                    let (head, body) = read_request(&mut socket).await;
                    if head.is_empty() {
                        return;
                    }
                    let (status, xml) = answer(&state, &model, &body);
                    let reply = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: text/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{xml}",
                        xml.len()
                    );
                    let _ = socket.write_all(reply.as_bytes()).await;
                });
            }
        });
        CloudFormationStandIn { endpoint, state }
    }

    /// An SDK configuration whose CloudFormation calls reach the stand-in.
    pub async fn config(&self) -> SdkConfig {
        crate::moto::sdk_config(
            &self.endpoint,
            REGION,
            Some(Credentials::new(
                "stand-in", "stand-in", None, None, "stand-in",
            )),
        )
        .await
    }

    /// Puts a stack in; returns its id (ARN).
    pub fn seed(&self, seed: StackSeed) -> String {
        let id = format!(
            "arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{}/{}",
            seed.name,
            crate::names::unique("uuid")
        );
        let stack = Stack {
            id: id.clone(),
            created: seed.last_updated - chrono::Duration::days(30),
            status: seed.status.clone(),
            reason: seed.reason.clone(),
            rollback_left: None,
            seed,
        };
        self.lock().stacks.push(stack);
        id
    }

    /// How many `DescribeStacks` a rollback stays in progress for (1 unless set).
    pub fn describes_per_rollback(&self, count: u32) {
        self.lock().describes_per_rollback = count;
    }

    /// The stack's status now.
    pub fn status(&self, name: &str) -> String {
        let state = self.lock();
        let stack = state
            .stacks
            .iter()
            .find(|s| s.seed.name == name || s.id == name)
            .unwrap_or_else(|| panic!("no stack {name} in the stand-in"));
        stack.status.clone()
    }

    /// Puts the stack in `status`, as a failed update by a person would.
    pub fn set_status(&self, name: &str, status: &str) {
        let mut state = self.lock();
        let stack = find(&mut state, name).unwrap_or_else(|e| panic!("{e}"));
        stack.status = status.to_string();
        stack.rollback_left = None;
    }

    /// The actions received, in order (`DescribeStacks`, `ContinueUpdateRollback`, …).
    pub fn actions(&self) -> Vec<String> {
        self.lock()
            .requests
            .iter()
            .map(|(a, _)| a.clone())
            .collect()
    }

    /// The parameters of every request of `action`.
    pub fn requests_of(&self, action: &str) -> Vec<BTreeMap<String, String>> {
        self.lock()
            .requests
            .iter()
            .filter(|(a, _)| a == action)
            .map(|(_, p)| p.clone())
            .collect()
    }

    /// Requests the published model does not allow, each with why.
    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("stand-in lock")
    }
}

/// The vendored slice of the service model.
fn model() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("aws-api-models/cloudformation-2010-05-15.json");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

fn answer(state: &Mutex<State>, model: &Value, body: &[u8]) -> (&'static str, String) {
    let params: BTreeMap<String, String> = form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let action = params.get("Action").cloned().unwrap_or_default();
    let mut state = state.lock().expect("stand-in lock");
    if let Err(why) = check_request(model, &params) {
        state.violations.push(format!("{action}: {why}"));
        return error("ValidationError", &why);
    }
    let mut input = params.clone();
    input.remove("Action");
    input.remove("Version");
    state.requests.push((action.clone(), input.clone()));
    let result = match action.as_str() {
        "DescribeStacks" => describe(&mut state, input.get("StackName")),
        "ContinueUpdateRollback" => {
            start_rollback(&mut state, &action, &input, "UPDATE_ROLLBACK_FAILED")
        }
        "RollbackStack" => start_rollback(&mut state, &action, &input, "UPDATE_FAILED"),
        other => Err(format!("{other} is not played by this stand-in")),
    };
    match result {
        Ok(inner) => (
            "200 OK",
            format!(
                "<{action}Response xmlns=\"{XMLNS}\"><{action}Result>{inner}</{action}Result><ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></{action}Response>",
                crate::names::unique("req")
            ),
        ),
        Err(message) => error("ValidationError", &message),
    }
}

fn error(code: &str, message: &str) -> (&'static str, String) {
    (
        "400 Bad Request",
        format!(
            "<ErrorResponse xmlns=\"{XMLNS}\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
            escape(message),
            crate::names::unique("req")
        ),
    )
}

fn find<'a>(state: &'a mut State, name: &str) -> Result<&'a mut Stack, String> {
    state
        .stacks
        .iter_mut()
        .find(|s| s.seed.name == name || s.id == name)
        .ok_or_else(|| format!("Stack with id {name} does not exist"))
}

fn describe(state: &mut State, name: Option<&String>) -> Result<String, String> {
    let names: Vec<String> = match name {
        Some(n) => vec![find(state, n)?.id.clone()],
        None => state.stacks.iter().map(|s| s.id.clone()).collect(),
    };
    let mut members = String::new();
    for id in names {
        let stack = find(state, &id)?;
        if let Some(left) = stack.rollback_left {
            if left == 0 {
                stack.status = stack.seed.rollback_ends_in.clone();
                stack.reason = if stack.status == "UPDATE_ROLLBACK_COMPLETE" {
                    String::new()
                } else {
                    "The following resource(s) failed to update: [ApiFunction]. ".into()
                };
                stack.rollback_left = None;
            } else {
                stack.rollback_left = Some(left - 1);
            }
        }
        members.push_str(&stack_xml(stack));
    }
    Ok(format!("<Stacks>{members}</Stacks>"))
}

fn start_rollback(
    state: &mut State,
    action: &str,
    input: &BTreeMap<String, String>,
    from: &str,
) -> Result<String, String> {
    let name = input.get("StackName").cloned().unwrap_or_default();
    let per_rollback = state.describes_per_rollback;
    let token = input.get("ClientRequestToken").cloned();
    let id = find(state, &name)?.id.clone();
    if let Some(token) = &token {
        if !state
            .tokens
            .insert((id.clone(), action.to_string(), token.clone()))
        {
            return Ok(rollback_result(action, &id));
        }
    }
    let stack = find(state, &id)?;
    if stack.status != from {
        return Err(format!(
            "Stack:{id} is in {} state and can not be updated.",
            stack.status
        ));
    }
    stack.status = "UPDATE_ROLLBACK_IN_PROGRESS".into();
    stack.reason = "User Initiated".into();
    stack.rollback_left = Some(per_rollback);
    Ok(rollback_result(action, &id))
}

fn rollback_result(action: &str, id: &str) -> String {
    if action == "RollbackStack" {
        format!("<StackId>{id}</StackId>")
    } else {
        String::new()
    }
}

fn stack_xml(stack: &Stack) -> String {
    let time = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut xml = format!(
        "<member><StackId>{}</StackId><StackName>{}</StackName><CreationTime>{}</CreationTime><LastUpdatedTime>{}</LastUpdatedTime><StackStatus>{}</StackStatus>",
        stack.id,
        escape(&stack.seed.name),
        time(stack.created),
        time(stack.seed.last_updated),
        stack.status
    );
    if !stack.reason.is_empty() {
        xml.push_str(&format!(
            "<StackStatusReason>{}</StackStatusReason>",
            escape(&stack.reason)
        ));
    }
    if let Some(role) = &stack.seed.role_arn {
        xml.push_str(&format!("<RoleARN>{}</RoleARN>", escape(role)));
    }
    xml.push_str(&format!(
        "<DisableRollback>{}</DisableRollback><Tags/></member>",
        stack.seed.status == "UPDATE_FAILED"
    ));
    xml
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The request held to the model: `Ok` or why not.
fn check_request(model: &Value, params: &BTreeMap<String, String>) -> Result<(), String> {
    let action = params.get("Action").ok_or("no Action parameter")?;
    let version = params
        .get("Version")
        .map(String::as_str)
        .unwrap_or_default();
    let expected = model["metadata"]["apiVersion"].as_str().unwrap_or_default();
    if version != expected {
        return Err(format!("Version `{version}`, the API's is {expected}"));
    }
    let operation = model["operations"]
        .get(action)
        .ok_or_else(|| format!("{action} is not an operation of this contract"))?;
    let input_name = operation["input"]["shape"].as_str().unwrap_or_default();
    let input = &model["shapes"][input_name];
    let members = input["members"].as_object().cloned().unwrap_or_default();
    for required in input["required"].as_array().into_iter().flatten() {
        let required = required.as_str().unwrap_or_default();
        if !params.contains_key(required) {
            return Err(format!("{required} is required by {input_name}"));
        }
    }
    for (key, value) in params {
        if key == "Action" || key == "Version" {
            continue;
        }
        let (top, rest) = key.split_once('.').unwrap_or((key.as_str(), ""));
        let member = members
            .get(top)
            .ok_or_else(|| format!("{key} is not a member of {input_name}"))?;
        let mut shape_name = member["shape"].as_str().unwrap_or_default().to_string();
        if !rest.is_empty() {
            // Lists are sent `Name.member.N`.
            let shape = &model["shapes"][&shape_name];
            let index = rest.strip_prefix("member.").unwrap_or_default();
            if shape["type"] != "list" || index.parse::<u32>().map_or(true, |n| n == 0) {
                return Err(format!("{key} is not how {shape_name} is sent"));
            }
            shape_name = shape["member"]["shape"]
                .as_str()
                .unwrap_or_default()
                .to_string();
        }
        check_value(model, &shape_name, key, value)?;
    }
    Ok(())
}

fn check_value(model: &Value, shape_name: &str, key: &str, value: &str) -> Result<(), String> {
    let shape = &model["shapes"][shape_name];
    match shape["type"].as_str().unwrap_or_default() {
        "string" => {
            let length = value.chars().count() as u64;
            if shape["min"].as_u64().is_some_and(|min| length < min)
                || shape["max"].as_u64().is_some_and(|max| length > max)
            {
                return Err(format!(
                    "{key} has {length} characters, outside {shape_name}'s bounds"
                ));
            }
            if let Some(pattern) = shape["pattern"].as_str() {
                let whole = regex::Regex::new(&format!("^(?:{pattern})$"))
                    .map_err(|e| format!("{shape_name}'s pattern: {e}"))?;
                if !whole.is_match(value) {
                    return Err(format!(
                        "{key} `{value}` does not match {shape_name}'s pattern {pattern}"
                    ));
                }
            }
            if let Some(values) = shape["enum"].as_array() {
                if !values.iter().any(|v| v == value) {
                    return Err(format!(
                        "{key} `{value}` is not one of {shape_name}'s values"
                    ));
                }
            }
            Ok(())
        }
        "boolean" if value == "true" || value == "false" => Ok(()),
        "boolean" => Err(format!("{key} `{value}` is not a boolean")),
        other => Err(format!("{key}: a {other} is not sent as one value")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(model: &Value, shape: &str) -> BTreeSet<String> {
        model["shapes"][shape]["members"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    #[test]
    fn a_stack_answer_holds_only_members_of_the_stack_shape() {
        let model = model();
        let seed = StackSeed::stuck("web");
        let stack = Stack {
            id: "arn:aws:cloudformation:us-east-1:1:stack/web/u".into(),
            created: seed.last_updated,
            status: seed.status.clone(),
            reason: seed.reason.clone(),
            rollback_left: None,
            seed,
        };
        let xml = stack_xml(&stack);
        let inner = xml
            .trim_start_matches("<member>")
            .trim_end_matches("</member>");
        let allowed = members(&model, "Stack");
        let names = regex::Regex::new(r"<([A-Za-z]+)[ />]").expect("regex");
        for name in names.captures_iter(inner).map(|c| c[1].to_string()) {
            assert!(allowed.contains(&name), "{name} is not a member of Stack");
        }
        assert!(members(&model, "RollbackStackOutput").contains("StackId"));
    }

    #[test]
    fn requests_outside_the_model_are_refused() {
        let model = model();
        let params = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let good = params(&[
            ("Action", "ContinueUpdateRollback"),
            ("Version", "2010-05-15"),
            ("StackName", "web"),
            ("ClientRequestToken", "escher-aws-1"),
            ("ResourcesToSkip.member.1", "ApiFunction"),
        ]);
        assert_eq!(check_request(&model, &good), Ok(()));
        for (change, why) in [
            (("StackName", ""), "too short"),
            (("ClientRequestToken", "escher_aws/1"), "pattern"),
            (("Force", "true"), "not a member"),
            (("Version", "2011-01-01"), "version"),
        ] {
            let mut bad = good.clone();
            bad.insert(change.0.to_string(), change.1.to_string());
            assert!(check_request(&model, &bad).is_err(), "{why}: {bad:?}");
        }
        let mut missing = good.clone();
        missing.remove("StackName");
        assert!(check_request(&model, &missing).is_err());
        let mut unknown = good;
        unknown.insert("Action".into(), "CreateStack".into());
        assert!(check_request(&model, &unknown).is_err());
    }
}
