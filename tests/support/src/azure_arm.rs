//! A stand-in for Azure Resource Manager on 127.0.0.1, since no ARM emulator exists. It knows
//! only the operations vendored under `tests/support/azure-rest-api-specs/` (Microsoft's
//! published examples, commits in its SOURCES.md) and holds every request to them: method and
//! path template, `api-version`, query parameters and body fields must be ones the published
//! example (or the schema fields listed beside it) has; anything else is answered 400 and
//! recorded as a contract violation, which a test asserts is empty.
//!
//! Resources are seeded from the examples' response bodies (with the test's names) and kept as
//! state, so a PATCH is seen by the next GET. Long-running operations answer 201/202 with the
//! headers the example shows (`Azure-AsyncOperation` and/or `Location`) and finish after
//! [`ArmDouble::lro_polls`] polls. [`ArmDouble::throttle`] answers the next requests 429 with
//! `Retry-After`. `/msi/token` is an App Service managed-identity endpoint; the stand-in takes
//! only the tokens it issued, or [`ArmDouble::TEST_TOKEN`]. Beside Resource Manager it stands in
//! for the two data planes the handler calls: Key Vault's secret read (`/secrets/{name}`) and
//! Application Insights' ingestion (`/v2/track`), which records each telemetry item.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Map, Value};

const SPECS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/azure-rest-api-specs");

#[path = "azure_arm_deploy.rs"]
mod deploy;

/// One vendored operation.
#[derive(Debug, Clone)]
struct Operation {
    id: String,
    method: String,
    path: Vec<String>,
    api_version: String,
    long_running: bool,
    final_state_via: Option<String>,
    example: Value,
    body_properties: Option<Value>,
    /// Query parameters the swagger declares beyond the example's.
    query_parameters: Vec<String>,
}

fn load_operations() -> Vec<Operation> {
    let path = format!("{SPECS}/operations.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let all: Vec<Value> = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    all.into_iter()
        .map(|o| {
            let text = |k: &str| o[k].as_str().unwrap_or_default().to_string();
            let example_file = o["examples"][0].as_str().unwrap_or_default();
            Operation {
                id: text("operation_id"),
                method: text("method"),
                path: segments(&text("path")),
                api_version: text("api_version"),
                long_running: o["long_running"].as_bool().unwrap_or(false),
                final_state_via: o["final_state_via"].as_str().map(str::to_string),
                example: example(example_file),
                body_properties: o.get("body_properties").cloned(),
                query_parameters: o["query_parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect(),
            }
        })
        .collect()
}

/// A vendored example, parsed (panics with the path: a missing file is a broken checkout).
pub fn example(relative: &str) -> Value {
    let path = format!("{SPECS}/{relative}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Whether `path` fits `template`; `{resourceUri}` takes one or more segments.
fn matches(template: &[String], path: &[&str]) -> bool {
    match template.split_first() {
        None => path.is_empty(),
        // Parameters ARM does not URL-encode span segments (`subscriptions/{id}`).
        Some((head, rest)) if head == "{resourceUri}" || head == "{scope}" => {
            (1..=path.len()).any(|n| matches(rest, &path[n..]))
        }
        Some((head, rest)) => match path.split_first() {
            Some((seg, more)) => {
                let fits = if head.starts_with('{') {
                    !seg.is_empty()
                } else {
                    head.eq_ignore_ascii_case(seg)
                };
                fits && matches(rest, more)
            }
            None => false,
        },
    }
}

/// A request the stand-in received.
#[derive(Debug, Clone)]
pub struct ArmRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    /// The vendored operation it matched.
    pub operation: Option<String>,
    pub body: Option<Value>,
    pub status: u16,
}

#[derive(Debug)]
enum Effect {
    /// A security rule written into its group.
    PutRule {
        id: String,
        body: Value,
    },
    DeleteRule {
        id: String,
    },
    PowerState {
        vm: String,
        state: &'static str,
    },
    /// A deployment stack deployed, or deleted.
    Stack(deploy::StackEffect),
}

#[derive(Debug)]
struct Pending {
    polls_left: u32,
    effect: Option<Effect>,
    /// The final answer's body (a what-if's result), when it has one.
    result: Option<Value>,
    /// How the operation ends when it fails: the status document's `error`.
    failure: Option<Value>,
}

#[derive(Debug, Default)]
struct Inner {
    resources: BTreeMap<String, Value>,
    cpu: HashMap<String, Option<f64>>,
    requests: Vec<ArmRequest>,
    violations: Vec<String>,
    throttle: VecDeque<u64>,
    lro_polls: u32,
    page_size: usize,
    pending: HashMap<u64, Pending>,
    next_operation: u64,
    tokens: Vec<String>,
    secrets: HashMap<String, String>,
    notices: Vec<Value>,
    /// Cost per (day, service), for Cost Management's query.
    costs: BTreeMap<(chrono::NaiveDate, String), f64>,
    /// Deployment stacks, their templates and what they manage.
    deploy: deploy::DeployState,
}

/// The Resource Manager stand-in; stops when dropped with its runtime.
#[derive(Clone)]
pub struct ArmDouble {
    endpoint: String,
    operations: Arc<Vec<Operation>>,
    inner: Arc<Mutex<Inner>>,
}

const IDENTITY_HEADER: &str = "escher-test-identity-header";
const INSTRUMENTATION_KEY: &str = "00000000-0000-0000-0000-00000000e5c4";

/// Azure Policy's built-in "Storage account public access should be disallowed".
pub const PUBLIC_BLOB_POLICY: &str =
    "/providers/microsoft.authorization/policydefinitions/4fa4b6c0-31ca-4c0d-b10d-24b96f62a751";

/// Event Grid's `PolicyStateChanged` for `resource` turning NonCompliant on
/// [`PUBLIC_BLOB_POLICY`], as Event Grid delivers it (`delivery`: the event id).
pub fn public_storage_policy_event(subscription: &str, resource: &str, delivery: &str) -> Value {
    json!({
        "id": delivery,
        "topic": format!("/subscriptions/{subscription}"),
        "subject": resource,
        "eventType": "Microsoft.PolicyInsights.PolicyStateChanged",
        "eventTime": "2026-12-03T02:14:00.1234567Z",
        "data": {
            "timestamp": "2026-12-03T02:13:59.0000000Z",
            "policyAssignmentId": format!("/subscriptions/{subscription}/providers/microsoft.authorization/policyassignments/deny-public-blob"),
            "policyDefinitionId": PUBLIC_BLOB_POLICY,
            "policyDefinitionReferenceId": "",
            "complianceState": "NonCompliant",
            "subscriptionId": subscription,
            "complianceReasonCode": ""
        },
        "dataVersion": "1",
        "metadataVersion": "1"
    })
}

impl ArmDouble {
    /// A bearer token the stand-in always accepts (for tests that do not exercise identity).
    pub const TEST_TOKEN: &'static str = "escher-arm-double-test-token";

    pub async fn start() -> ArmDouble {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("local address").port();
        let double = ArmDouble {
            endpoint: format!("http://127.0.0.1:{port}"),
            operations: Arc::new(load_operations()),
            inner: Arc::new(Mutex::new(Inner {
                lro_polls: 1,
                page_size: 50,
                ..Inner::default()
            })),
        };
        // Function packages are tens of megabytes; axum's default limit is 2 MB.
        let app = Router::new()
            .fallback(handle)
            .layer(axum::extract::DefaultBodyLimit::max(512 << 20))
            .with_state(double.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        double
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// `IDENTITY_ENDPOINT` for an App Service managed-identity credential.
    pub fn identity_endpoint(&self) -> String {
        format!("{}/msi/token", self.endpoint)
    }

    /// `IDENTITY_HEADER` (the secret the endpoint checks).
    pub fn identity_header(&self) -> &'static str {
        IDENTITY_HEADER
    }

    /// Makes the stand-in this process's managed identity: sets `IDENTITY_ENDPOINT` and
    /// `IDENTITY_HEADER` as App Service sets them for a function.
    ///
    /// # Safety
    /// As [`std::env::set_var`]: no other thread may read or write the environment
    /// meanwhile.
    pub unsafe fn serve_identity_to_this_process(&self) {
        // SAFETY: the caller holds off every other thread's use of the environment.
        unsafe {
            std::env::set_var("IDENTITY_ENDPOINT", self.identity_endpoint());
            std::env::set_var("IDENTITY_HEADER", self.identity_header());
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<ArmRequest> {
        self.lock().requests.clone()
    }

    /// Requests that broke the published contract (each was answered 400).
    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    /// Answers the next `count` requests 429 with `Retry-After: retry_after_secs`.
    pub fn throttle(&self, count: usize, retry_after_secs: u64) {
        self.lock()
            .throttle
            .extend(std::iter::repeat_n(retry_after_secs, count));
    }

    /// How many polls a long-running operation answers "still running" before it ends.
    pub fn lro_polls(&self, polls: u32) {
        self.lock().lro_polls = polls;
    }

    /// At most this many items per list page (the rest behind `nextLink`).
    pub fn page_size(&self, size: usize) {
        self.lock().page_size = size.max(1);
    }

    /// The resource as the stand-in holds it.
    pub fn resource(&self, id: &str) -> Option<Value> {
        self.lock().resources.get(&id.to_ascii_lowercase()).cloned()
    }

    /// Changes a resource as a person would in the portal.
    pub fn update(&self, id: &str, change: impl FnOnce(&mut Value)) {
        let mut inner = self.lock();
        let resource = inner
            .resources
            .get_mut(&id.to_ascii_lowercase())
            .unwrap_or_else(|| panic!("no resource {id} in the ARM stand-in"));
        change(resource);
    }

    fn put(&self, id: &str, resource: Value) -> String {
        self.lock()
            .resources
            .insert(id.to_ascii_lowercase(), resource);
        id.to_string()
    }

    fn seeded(&self, example_file: &str, id: &str) -> Value {
        let mut body = example(example_file)["responses"]["200"]["body"].clone();
        body["id"] = json!(id);
        body["name"] = json!(id.rsplit('/').next().unwrap_or(id));
        body
    }

    /// A storage account; `allow_public: None` leaves the setting out (older accounts).
    pub fn storage_account(
        &self,
        subscription: &str,
        group: &str,
        name: &str,
        allow_public: Option<bool>,
    ) -> String {
        let id = format!("/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.Storage/storageAccounts/{name}");
        let mut body = self.seeded("storage/2023-05-01/StorageAccountGetProperties.json", &id);
        match allow_public {
            Some(v) => body["properties"]["allowBlobPublicAccess"] = json!(v),
            None => {
                if let Some(p) = body["properties"].as_object_mut() {
                    p.remove("allowBlobPublicAccess");
                }
            }
        }
        self.put(&id, body)
    }

    /// Whether a storage account and its container are not as the public-storage fix leaves
    /// them: the account still allows anonymous blob access, or the container still offers it.
    pub fn storage_still_public(&self, account: &str, container: &str) -> Result<bool, String> {
        let account_state = self
            .resource(account)
            .ok_or_else(|| format!("storage account {account} is gone from the stand-in"))?;
        let container_state = self
            .resource(container)
            .ok_or_else(|| format!("container {container} is gone from the stand-in"))?;
        let open =
            account_state.pointer("/properties/allowBlobPublicAccess") != Some(&json!(false));
        let public = container_state
            .pointer("/properties/publicAccess")
            .and_then(Value::as_str)
            .is_none_or(|level| !level.eq_ignore_ascii_case("None"));
        Ok(open || public)
    }

    /// A blob container with public access `None`, `Blob` or `Container`.
    pub fn blob_container(&self, account: &str, name: &str, public_access: &str) -> String {
        let id = format!("{account}/blobServices/default/containers/{name}");
        let mut body = self.seeded("storage/2023-05-01/BlobContainersGet.json", &id);
        body["properties"]["publicAccess"] = json!(public_access);
        self.put(&id, body)
    }

    /// A network security group with no rules of its own (its default rules as published).
    pub fn nsg(&self, subscription: &str, group: &str, name: &str) -> String {
        let id = format!("/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.Network/networkSecurityGroups/{name}");
        let mut body = self.seeded("network/2024-05-01/NetworkSecurityGroupGet.json", &id);
        body["properties"]["securityRules"] = json!([]);
        if let Some(defaults) = body["properties"]["defaultSecurityRules"].as_array_mut() {
            for rule in defaults {
                let rule_name = rule["name"].as_str().unwrap_or_default().to_string();
                rule["id"] = json!(format!("{id}/defaultSecurityRules/{rule_name}"));
            }
        }
        self.put(&id, body)
    }

    /// Adds (or replaces) a rule in a group, as the portal would; `properties` as ARM has them.
    pub fn security_rule(&self, nsg: &str, name: &str, properties: Value) -> String {
        let id = format!("{nsg}/securityRules/{name}");
        let mut rule = example("network/2024-05-01/NetworkSecurityGroupRuleGet.json")["responses"]
            ["200"]["body"]
            .clone();
        rule["id"] = json!(id);
        rule["name"] = json!(name);
        let mut p = properties;
        p["provisioningState"] = json!("Succeeded");
        rule["properties"] = p;
        let mut inner = self.lock();
        write_rule(&mut inner, &id, rule);
        id
    }

    /// A VM in power state `power` (`running`, `stopped`, `deallocated`).
    pub fn vm(&self, subscription: &str, group: &str, name: &str, power: &str) -> String {
        let id = format!("/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.Compute/virtualMachines/{name}");
        let mut body = self.seeded("compute/2024-07-01/VirtualMachine_Get.json", &id);
        let mut view = example("compute/2024-07-01/VirtualMachine_Get_InstanceView.json")
            ["responses"]["200"]["body"]
            .clone();
        view["statuses"] = json!([
            {"code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Provisioning succeeded"},
            {"code": format!("PowerState/{power}"), "level": "Info", "displayStatus": format!("VM {power}")}
        ]);
        body["properties"]["instanceView"] = view;
        self.put(&id, body)
    }

    /// The VM's power state as the stand-in holds it.
    pub fn power_state(&self, vm: &str) -> Option<String> {
        let resource = self.resource(vm)?;
        resource["properties"]["instanceView"]["statuses"]
            .as_array()?
            .iter()
            .filter_map(|s| s["code"].as_str())
            .find_map(|c| c.strip_prefix("PowerState/"))
            .map(str::to_string)
    }

    /// Sets the VM's power state (as a person starting it again would).
    pub fn set_power_state(&self, vm: &str, power: &str) {
        let mut inner = self.lock();
        set_power(&mut inner, vm, power);
    }

    /// Azure Monitor's `Percentage CPU` for `resource`: `Some(p)` in every period asked for,
    /// `None` for periods without data.
    pub fn cpu(&self, resource: &str, percent: Option<f64>) {
        self.lock()
            .cpu
            .insert(resource.to_ascii_lowercase(), percent);
    }

    /// A Key Vault secret, read at [`ArmDouble::vault_prefix`]`<name>`.
    pub fn secret(&self, name: &str, value: &str) {
        self.lock()
            .secrets
            .insert(name.to_string(), value.to_string());
    }

    /// `ESCHER_SECRETS_PREFIX` for the stand-in's vault.
    pub fn vault_prefix(&self) -> String {
        format!("{}/secrets/", self.endpoint)
    }

    /// `APPLICATIONINSIGHTS_CONNECTION_STRING` for the stand-in's ingestion endpoint.
    pub fn app_insights_connection_string(&self) -> String {
        format!(
            "InstrumentationKey={INSTRUMENTATION_KEY};IngestionEndpoint={}/;LiveEndpoint={}/",
            self.endpoint, self.endpoint
        )
    }

    /// The telemetry items Application Insights received, in order.
    pub fn notices(&self) -> Vec<Value> {
        self.lock().notices.clone()
    }

    /// What `service` cost on `day` (USD), as Cost Management reports it.
    pub fn cost(&self, day: chrono::NaiveDate, service: &str, usd: f64) {
        self.lock().costs.insert((day, service.to_string()), usd);
    }

    /// A monthly cost budget of `usd` on the subscription.
    pub fn budget(&self, subscription: &str, name: &str, usd: f64) -> String {
        let id =
            format!("/subscriptions/{subscription}/providers/Microsoft.Consumption/budgets/{name}");
        let mut body =
            example("consumption/2024-08-01/Budget.json")["responses"]["200"]["body"].clone();
        body["id"] = json!(id);
        body["name"] = json!(name);
        body["properties"]["amount"] = json!(usd);
        body["properties"]["timeGrain"] = json!("Monthly");
        body["properties"]["category"] = json!("Cost");
        self.put(&id, body)
    }

    /// A managed disk.
    pub fn disk(&self, subscription: &str, group: &str, name: &str) -> String {
        let id = format!("/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.Compute/disks/{name}");
        let mut body = self.seeded("disk/2024-03-02/Disk_Get.json", &id);
        body["type"] = json!("Microsoft.Compute/disks");
        self.put(&id, body)
    }

    /// A snapshot of `source_disk` taken `age_days` ago.
    pub fn snapshot(
        &self,
        subscription: &str,
        group: &str,
        name: &str,
        source_disk: &str,
        age_days: i64,
    ) -> String {
        let id = format!("/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.Compute/snapshots/{name}");
        let mut body = self.seeded("disk/2024-03-02/Snapshot_Get.json", &id);
        body["type"] = json!("Microsoft.Compute/snapshots");
        body["properties"]["creationData"]["sourceResourceId"] = json!(source_disk);
        body["properties"]["timeCreated"] =
            json!((chrono::Utc::now() - chrono::Duration::days(age_days)).to_rfc3339());
        self.put(&id, body)
    }
}

fn write_rule(inner: &mut Inner, id: &str, rule: Value) {
    let nsg = id
        .rsplit_once("/securityRules/")
        .map(|(n, _)| n.to_ascii_lowercase())
        .unwrap_or_default();
    let Some(group) = inner.resources.get_mut(&nsg) else {
        return;
    };
    let rules = group["properties"]["securityRules"]
        .as_array_mut()
        .expect("a group's rules");
    rules.retain(|r| {
        !r["id"]
            .as_str()
            .unwrap_or_default()
            .eq_ignore_ascii_case(id)
    });
    rules.push(rule);
}

fn delete_rule(inner: &mut Inner, id: &str) -> bool {
    let Some((nsg, _)) = id.rsplit_once("/securityRules/") else {
        return false;
    };
    let Some(group) = inner.resources.get_mut(&nsg.to_ascii_lowercase()) else {
        return false;
    };
    let Some(rules) = group["properties"]["securityRules"].as_array_mut() else {
        return false;
    };
    let before = rules.len();
    rules.retain(|r| {
        !r["id"]
            .as_str()
            .unwrap_or_default()
            .eq_ignore_ascii_case(id)
    });
    rules.len() != before
}

fn find_rule(inner: &Inner, id: &str) -> Option<Value> {
    let (nsg, _) = id.rsplit_once("/securityRules/")?;
    let group = inner.resources.get(&nsg.to_ascii_lowercase())?;
    group["properties"]["securityRules"]
        .as_array()?
        .iter()
        .find(|r| {
            r["id"]
                .as_str()
                .unwrap_or_default()
                .eq_ignore_ascii_case(id)
        })
        .cloned()
}

fn set_power(inner: &mut Inner, vm: &str, power: &str) {
    if let Some(resource) = inner.resources.get_mut(&vm.to_ascii_lowercase()) {
        if let Some(statuses) = resource["properties"]["instanceView"]["statuses"].as_array_mut() {
            statuses.retain(|s| {
                !s["code"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("PowerState/")
            });
            statuses.push(json!({"code": format!("PowerState/{power}"), "level": "Info", "displayStatus": format!("VM {power}")}));
        }
    }
}

fn apply(inner: &mut Inner, effect: Effect) {
    match effect {
        Effect::PutRule { id, body } => {
            let mut rule = find_rule(inner, &id).unwrap_or_else(|| json!({}));
            rule["id"] = json!(id);
            rule["name"] = json!(id.rsplit('/').next().unwrap_or_default());
            let mut properties = body["properties"].clone();
            properties["provisioningState"] = json!("Succeeded");
            rule["properties"] = properties;
            write_rule(inner, &id, rule);
        }
        Effect::DeleteRule { id } => {
            delete_rule(inner, &id);
        }
        Effect::PowerState { vm, state } => set_power(inner, &vm, state),
        Effect::Stack(effect) => deploy::apply(inner, effect),
    }
}

fn error(status: StatusCode, code: &str, message: String) -> Response {
    (
        status,
        [("content-type", "application/json")],
        json!({"error": {"code": code, "message": message}}).to_string(),
    )
        .into_response()
}

fn ok(status: StatusCode, body: Value) -> Response {
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    uri.query()
        .map(|q| url_pairs(q).into_iter().collect::<Vec<(String, String)>>())
        .unwrap_or_default()
}

/// `application/x-www-form-urlencoded` pairs (`+` is a space).
fn url_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Field paths of a JSON body (`properties.allowBlobPublicAccess`); array items share their
/// array's path.
fn field_paths(value: &Value, prefix: &str, out: &mut Vec<(String, &'static str)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.push((path.clone(), kind(v)));
                field_paths(v, &path, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                field_paths(item, prefix, out);
            }
        }
        _ => {}
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// What the body may hold: the example request body's fields, and the listed schema fields.
fn allowed_fields(operation: &Operation) -> Option<Vec<(String, &'static str)>> {
    let body = operation.example["parameters"]
        .as_object()?
        .values()
        .find(|v| v.is_object())?
        .clone();
    let mut allowed = Vec::new();
    field_paths(&body, "", &mut allowed);
    if let Some(Value::Object(extra)) = &operation.body_properties {
        for (parent, names) in extra {
            for name in names
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                let path = if parent.is_empty() {
                    name.to_string()
                } else {
                    format!("{parent}.{name}")
                };
                allowed.push((path, "any"));
            }
        }
    }
    Some(allowed)
}

fn contract_problems(
    operation: &Operation,
    query: &[(String, String)],
    body: Option<&Value>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let api_version = query
        .iter()
        .find(|(k, _)| k == "api-version")
        .map(|(_, v)| v.as_str());
    if api_version != Some(operation.api_version.as_str()) {
        problems.push(format!(
            "api-version {api_version:?}, the published contract is {}",
            operation.api_version
        ));
    }
    let declared = operation.example["parameters"].as_object();
    for (k, _) in query {
        if k == "api-version" || k == "$skiptoken" {
            continue;
        }
        if !declared.is_some_and(|d| d.contains_key(k)) && !operation.query_parameters.contains(k) {
            problems.push(format!(
                "query parameter {k} is not in the published example"
            ));
        }
    }
    match (body, allowed_fields(operation)) {
        (Some(body), Some(allowed)) => {
            let mut sent = Vec::new();
            field_paths(body, "", &mut sent);
            for (path, k) in sent {
                // A field the schema lists as `any` (a template, its parameters) may hold
                // anything beneath it.
                let known = allowed.iter().any(|(p, ak)| {
                    (*p == path && (*ak == "any" || *ak == k))
                        || (*ak == "any" && path.starts_with(&format!("{p}.")))
                });
                if !known {
                    problems.push(format!(
                        "body field {path} ({k}) is not in the published request"
                    ));
                }
            }
        }
        (Some(_), None) => problems.push("a body was sent; the operation takes none".into()),
        (None, Some(_)) if operation.method != "GET" && operation.method != "DELETE" => {
            problems.push("no body was sent; the operation takes one".into())
        }
        _ => {}
    }
    problems
}

/// The header names a long-running answer carries, as the example shows them.
fn lro_headers(operation: &Operation) -> (bool, bool) {
    let mut async_op = false;
    let mut location = false;
    if let Some(responses) = operation.example["responses"].as_object() {
        for (status, response) in responses {
            if status != "201" && status != "202" {
                continue;
            }
            if let Some(headers) = response["headers"].as_object() {
                for name in headers.keys() {
                    async_op |= name.eq_ignore_ascii_case("azure-asyncoperation");
                    location |= name.eq_ignore_ascii_case("location");
                }
            }
        }
    }
    if !async_op && !location {
        match operation.final_state_via.as_deref() {
            Some("location") | None => location = true,
            _ => async_op = true,
        }
    }
    (async_op, location)
}

async fn handle(
    State(double): State<ArmDouble>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query = query_pairs(&uri);
    let body_json: Option<Value> = if body.is_empty() {
        None
    } else {
        serde_json::from_slice(&body).ok()
    };
    let (response, operation) = route(
        &double,
        &method,
        &path,
        &query,
        &headers,
        body_json.as_ref(),
        &body,
    );
    let mut inner = double.lock();
    inner.requests.push(ArmRequest {
        method: method.to_string(),
        path,
        query: uri.query().unwrap_or_default().to_string(),
        operation,
        body: body_json,
        status: response.status().as_u16(),
    });
    response
}

fn route(
    double: &ArmDouble,
    method: &Method,
    path: &str,
    query: &[(String, String)],
    headers: &HeaderMap,
    body: Option<&Value>,
    raw: &[u8],
) -> (Response, Option<String>) {
    if path == "/msi/token" {
        return (issue_token(double, headers, query), None);
    }
    if path == "/v2/track" && method == Method::POST {
        let items: Vec<Value> = match body {
            Some(Value::Array(items)) => items.clone(),
            Some(item @ Value::Object(_)) => vec![item.clone()],
            _ => Vec::new(),
        };
        // Ingestion is authorized by the instrumentation key of the connection string.
        let accepted = items
            .iter()
            .filter(|i| i["iKey"] == INSTRUMENTATION_KEY)
            .count();
        let mut inner = double.lock();
        inner.notices.extend(items.iter().cloned());
        return (
            ok(
                StatusCode::OK,
                json!({"itemsReceived": items.len(), "itemsAccepted": accepted, "errors": []}),
            ),
            None,
        );
    }
    let mut inner = double.lock();
    if let Some(wait) = inner.throttle.pop_front() {
        let mut response = error(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "The request is being throttled.".into(),
        );
        response
            .headers_mut()
            .insert("retry-after", wait.to_string().parse().expect("a number"));
        return (response, None);
    }
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_string();
    if bearer != ArmDouble::TEST_TOKEN && !inner.tokens.contains(&bearer) {
        return (
            error(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                "The access token is missing or was not issued by this identity endpoint.".into(),
            ),
            None,
        );
    }
    if path.starts_with("/api/") {
        return deploy::kudu(&mut inner, method, path, query, raw);
    }
    if let Some(name) = path
        .strip_prefix("/secrets/")
        .filter(|_| method == Method::GET)
    {
        let api = query
            .iter()
            .find(|(k, _)| k == "api-version")
            .map(|(_, v)| v.as_str());
        if api != Some("7.4") {
            return (
                error(
                    StatusCode::BAD_REQUEST,
                    "BadParameter",
                    format!("api-version {api:?}"),
                ),
                None,
            );
        }
        return match inner.secrets.get(name) {
            Some(value) => (
                ok(StatusCode::OK, json!({"value": value, "id": path})),
                None,
            ),
            None => (
                error(
                    StatusCode::NOT_FOUND,
                    "SecretNotFound",
                    format!("A secret with (name/id) {name} was not found in this key vault."),
                ),
                None,
            ),
        };
    }
    if let Some(rest) = path.strip_prefix("/operations/") {
        return (poll(&mut inner, rest, false, &double.endpoint), None);
    }
    if let Some(rest) = path.strip_prefix("/locations/") {
        return (poll(&mut inner, rest, true, &double.endpoint), None);
    }
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let Some(operation) = double
        .operations
        .iter()
        .find(|o| o.method.eq_ignore_ascii_case(method.as_str()) && matches(&o.path, &parts))
    else {
        let problem = format!("{method} {path}: no operation in the vendored contract");
        inner.violations.push(problem.clone());
        return (
            error(StatusCode::BAD_REQUEST, "ContractViolation", problem),
            None,
        );
    };
    let problems = contract_problems(operation, query, body);
    if !problems.is_empty() {
        let problem = format!("{} {method} {path}: {}", operation.id, problems.join("; "));
        inner.violations.push(problem.clone());
        return (
            error(StatusCode::BAD_REQUEST, "ContractViolation", problem),
            Some(operation.id.clone()),
        );
    }
    let response = match deploy::act(&mut inner, operation, path, query, body, &double.endpoint) {
        Some(response) => response,
        None => act(&mut inner, operation, path, query, body, &double.endpoint),
    };
    (response, Some(operation.id.clone()))
}

fn issue_token(double: &ArmDouble, headers: &HeaderMap, query: &[(String, String)]) -> Response {
    let secret = headers
        .get("x-identity-header")
        .and_then(|v| v.to_str().ok());
    if secret != Some(IDENTITY_HEADER) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "X-IDENTITY-HEADER is missing or wrong".into(),
        );
    }
    let param = |k: &str| query.iter().find(|(q, _)| q == k).map(|(_, v)| v.clone());
    if param("api-version").as_deref() != Some("2019-08-01") {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "api-version must be 2019-08-01".into(),
        );
    }
    let resource = param("resource").unwrap_or_default();
    let mut inner = double.lock();
    let token = format!("issued-token-{}", inner.tokens.len() + 1);
    inner.tokens.push(token.clone());
    let expires_on = chrono::Utc::now().timestamp() + 3600;
    ok(
        StatusCode::OK,
        json!({
            "access_token": token,
            "expires_on": expires_on.to_string(),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": "00000000-0000-0000-0000-00000000e5c4"
        }),
    )
}

fn not_found(path: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        format!("The Resource '{path}' was not found."),
    )
}

fn act(
    inner: &mut Inner,
    operation: &Operation,
    path: &str,
    query: &[(String, String)],
    body: Option<&Value>,
    endpoint: &str,
) -> Response {
    let key = path.to_ascii_lowercase();
    match operation.id.as_str() {
        "Metrics_List" => {
            let resource = key
                .rsplit_once("/providers/microsoft.insights/metrics")
                .map(|(r, _)| r.to_string())
                .unwrap_or_default();
            metrics(inner, &resource, query)
        }
        "Query_Usage" => query_usage(inner, body),
        "VirtualMachines_InstanceView" => {
            let vm = key.trim_end_matches("/instanceview");
            match inner.resources.get(vm) {
                Some(r) => ok(StatusCode::OK, r["properties"]["instanceView"].clone()),
                None => not_found(path),
            }
        }
        "VirtualMachines_Get" => match inner.resources.get(&key) {
            Some(r) => {
                let mut r = r.clone();
                if let Some(p) = r["properties"].as_object_mut() {
                    p.remove("instanceView");
                }
                ok(StatusCode::OK, r)
            }
            None => not_found(path),
        },
        "SecurityRules_Get" => match find_rule(inner, path) {
            Some(rule) => ok(StatusCode::OK, rule),
            None => not_found(path),
        },
        id if id.ends_with("_List") || id.ends_with("_ListAll") => {
            list(inner, operation, path, query, endpoint)
        }
        _ => match operation.method.as_str() {
            "GET" => match inner.resources.get(&key) {
                Some(r) => ok(StatusCode::OK, r.clone()),
                None => not_found(path),
            },
            "PATCH" => match inner.resources.get_mut(&key) {
                Some(r) => {
                    merge(r, body.cloned().unwrap_or(Value::Null));
                    ok(StatusCode::OK, r.clone())
                }
                None => not_found(path),
            },
            "PUT" if operation.id == "SecurityRules_CreateOrUpdate" => {
                let nsg = key
                    .rsplit_once("/securityrules/")
                    .map(|(n, _)| n.to_string());
                if !nsg.is_some_and(|n| inner.resources.contains_key(&n)) {
                    return not_found(path);
                }
                let effect = Effect::PutRule {
                    id: path.to_string(),
                    body: body.cloned().unwrap_or(Value::Null),
                };
                let mut answer = body.cloned().unwrap_or_else(|| json!({}));
                answer["id"] = json!(path);
                answer["properties"]["provisioningState"] = json!("Updating");
                start_lro(
                    inner,
                    operation,
                    effect,
                    StatusCode::CREATED,
                    answer,
                    endpoint,
                )
            }
            "DELETE" if operation.id == "SecurityRules_Delete" => {
                if find_rule(inner, path).is_none() {
                    // ARM answers 204 to a delete of something already gone.
                    return StatusCode::NO_CONTENT.into_response();
                }
                let effect = Effect::DeleteRule {
                    id: path.to_string(),
                };
                start_lro(
                    inner,
                    operation,
                    effect,
                    StatusCode::ACCEPTED,
                    Value::Null,
                    endpoint,
                )
            }
            "POST" if operation.id == "VirtualMachines_Deallocate" => {
                let vm = key.trim_end_matches("/deallocate").to_string();
                if !inner.resources.contains_key(&vm) {
                    return not_found(path);
                }
                set_power(inner, &vm, "deallocating");
                let effect = Effect::PowerState {
                    vm,
                    state: "deallocated",
                };
                start_lro(
                    inner,
                    operation,
                    effect,
                    StatusCode::ACCEPTED,
                    Value::Null,
                    endpoint,
                )
            }
            _ => error(
                StatusCode::NOT_IMPLEMENTED,
                "NotImplementedInStandIn",
                format!(
                    "{} is vendored but the stand-in does not act on it",
                    operation.id
                ),
            ),
        },
    }
}

fn start_lro(
    inner: &mut Inner,
    operation: &Operation,
    effect: Effect,
    status: StatusCode,
    body: Value,
    endpoint: &str,
) -> Response {
    if !operation.long_running {
        apply(inner, effect);
        return ok(StatusCode::OK, body);
    }
    inner.next_operation += 1;
    let id = inner.next_operation;
    inner.pending.insert(
        id,
        Pending {
            polls_left: inner.lro_polls,
            effect: Some(effect),
            result: None,
            failure: None,
        },
    );
    let (async_op, location) = lro_headers(operation);
    let mut response = if body.is_null() {
        status.into_response()
    } else {
        ok(status, body)
    };
    let headers = response.headers_mut();
    if async_op {
        headers.insert(
            "azure-asyncoperation",
            format!("{endpoint}/operations/{id}")
                .parse()
                .expect("a URL"),
        );
    }
    if location {
        headers.insert(
            "location",
            format!("{endpoint}/locations/{id}").parse().expect("a URL"),
        );
    }
    headers.insert("retry-after", "0".parse().expect("a number"));
    response
}

fn poll(inner: &mut Inner, id: &str, location_style: bool, endpoint: &str) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return not_found(id);
    };
    let Some(pending) = inner.pending.get_mut(&id) else {
        return not_found(&format!("operation {id}"));
    };
    if pending.polls_left > 0 {
        pending.polls_left -= 1;
        let mut response = if location_style {
            StatusCode::ACCEPTED.into_response()
        } else {
            ok(StatusCode::OK, json!({"status": "InProgress"}))
        };
        response
            .headers_mut()
            .insert("retry-after", "0".parse().expect("a number"));
        if location_style {
            response.headers_mut().insert(
                "location",
                format!("{endpoint}/locations/{id}").parse().expect("a URL"),
            );
        }
        return response;
    }
    let result = pending.result.take();
    let failure = pending.failure.take();
    if let Some(effect) = pending.effect.take() {
        apply(inner, effect);
    }
    match (failure, location_style) {
        (Some(error), false) => ok(StatusCode::OK, json!({"status": "Failed", "error": error})),
        (Some(error), true) => ok(StatusCode::BAD_REQUEST, json!({"error": error})),
        (None, true) => match result {
            Some(body) => ok(StatusCode::OK, body),
            None => StatusCode::OK.into_response(),
        },
        (None, false) => ok(StatusCode::OK, json!({"status": "Succeeded"})),
    }
}

fn merge(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                merge(t.entry(k).or_insert(Value::Null), v);
            }
        }
        (t, p) => *t = p,
    }
}

fn list(
    inner: &Inner,
    operation: &Operation,
    path: &str,
    query: &[(String, String)],
    endpoint: &str,
) -> Response {
    let key = path.to_ascii_lowercase();
    let items: Vec<Value> = if key.contains("/resourcegroups/") {
        // Children of one parent: `<parent>/<collection>/<name>`.
        let prefix = format!("{key}/");
        inner
            .resources
            .iter()
            .filter(|(id, _)| id.starts_with(&prefix) && !id[prefix.len()..].contains('/'))
            .map(|(_, r)| r.clone())
            .collect()
    } else {
        // Every resource of the type in the subscription.
        let parts: Vec<&str> = key.split('/').filter(|s| !s.is_empty()).collect();
        let subscription = parts.get(1).copied().unwrap_or_default();
        let kind = parts[parts.len().saturating_sub(2)..].join("/");
        inner
            .resources
            .iter()
            .filter(|(id, r)| {
                id.starts_with(&format!("/subscriptions/{subscription}/"))
                    && r["type"]
                        .as_str()
                        .is_some_and(|t| t.eq_ignore_ascii_case(&kind))
            })
            .map(|(_, r)| {
                // A listing, like a plain GET, leaves out a VM's instance view.
                let mut r = r.clone();
                if let Some(p) = r["properties"].as_object_mut() {
                    p.remove("instanceView");
                }
                r
            })
            .collect()
    };
    let skip: usize = query
        .iter()
        .find(|(k, _)| k == "$skiptoken")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let page: Vec<Value> = items
        .iter()
        .skip(skip)
        .take(inner.page_size)
        .cloned()
        .collect();
    let mut answer = Map::new();
    answer.insert("value".into(), Value::Array(page));
    if skip + inner.page_size < items.len() {
        answer.insert(
            "nextLink".into(),
            json!(format!(
                "{endpoint}{path}?api-version={}&$skiptoken={}",
                operation.api_version,
                skip + inner.page_size
            )),
        );
    }
    ok(StatusCode::OK, Value::Object(answer))
}

/// Daily cost per service over the body's `timePeriod`, in Cost Management's table shape.
fn query_usage(inner: &Inner, body: Option<&Value>) -> Response {
    let day = |pointer: &str| {
        body.and_then(|b| b.pointer(pointer))
            .and_then(Value::as_str)
            .and_then(|t| t.get(..10))
            .and_then(|d| d.parse::<chrono::NaiveDate>().ok())
    };
    let (Some(from), Some(to)) = (day("/timePeriod/from"), day("/timePeriod/to")) else {
        return error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "the stand-in answers custom timePeriod queries only".into(),
        );
    };
    let rows: Vec<Value> = inner
        .costs
        .iter()
        .filter(|((d, _), _)| *d >= from && *d <= to)
        .map(|((d, service), usd)| {
            let date: u64 = d.format("%Y%m%d").to_string().parse().unwrap_or_default();
            json!([usd, date, service, "USD"])
        })
        .collect();
    ok(
        StatusCode::OK,
        json!({
            "id": "subscriptions/query",
            "name": "escher-stand-in",
            "type": "microsoft.costmanagement/Query",
            "properties": {
                "nextLink": null,
                "columns": [
                    {"name": "Cost", "type": "Number"},
                    {"name": "UsageDate", "type": "Number"},
                    {"name": "ServiceName", "type": "String"},
                    {"name": "Currency", "type": "String"}
                ],
                "rows": rows
            }
        }),
    )
}

fn metrics(inner: &Inner, resource: &str, query: &[(String, String)]) -> Response {
    let param = |k: &str| {
        query
            .iter()
            .find(|(q, _)| q == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    };
    let Some(percent) = inner.cpu.get(resource) else {
        return ok(
            StatusCode::OK,
            json!({"cost": 0, "timespan": param("timespan"), "interval": param("interval"), "value": []}),
        );
    };
    let (start, end) = param("timespan").split_once('/').unwrap_or_default();
    let parse =
        |t: &str| chrono::DateTime::parse_from_rfc3339(t).map(|d| d.with_timezone(&chrono::Utc));
    let (Ok(start), Ok(end)) = (parse(start), parse(end)) else {
        return error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("timespan {:?} is not start/end", param("timespan")),
        );
    };
    let step = match param("interval") {
        "PT1M" => chrono::Duration::minutes(1),
        "PT5M" => chrono::Duration::minutes(5),
        "PT1H" => chrono::Duration::hours(1),
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!("interval {other} is not one the stand-in serves"),
            )
        }
    };
    let mut data = Vec::new();
    let mut at = start;
    while at < end {
        let mut point = json!({"timeStamp": at.format("%Y-%m-%dT%H:%M:%SZ").to_string()});
        if let Some(p) = percent {
            point["average"] = json!(p);
        }
        data.push(point);
        at += step;
    }
    ok(
        StatusCode::OK,
        json!({
            "cost": data.len(),
            "timespan": param("timespan"),
            "interval": param("interval"),
            "value": [{
                "id": format!("{resource}/providers/Microsoft.Insights/metrics/Percentage CPU"),
                "type": "Microsoft.Insights/metrics",
                "name": {"value": "Percentage CPU", "localizedValue": "Percentage CPU"},
                "unit": "Percent",
                "timeseries": [{"metadatavalues": [], "data": data}]
            }],
            "namespace": "Microsoft.Compute/virtualMachines"
        }),
    )
}

/// An inbound rule allowing `port` from the internet.
fn open_rule(port: &str) -> serde_json::Value {
    json!({"protocol": "Tcp", "sourcePortRange": "*", "destinationPortRange": port,
           "sourceAddressPrefix": "Internet", "destinationAddressPrefix": "*",
           "access": "Allow", "priority": 200, "direction": "Inbound"})
}

/// A subscription of about 340 resources on the stand-in for the Azure scan's tests and
/// bench: most fine, a few of each problem every check reports. [`AzureEstate::expected`]
/// holds the key of every finding the checks must report about it, and nothing else is there
/// to report; compare with [`AzureEstate::check_reported`].
pub struct AzureEstate {
    pub expected: BTreeSet<String>,
    pub resources: usize,
}

impl AzureEstate {
    /// Seeds `subscription`'s resource group `group` on `double`: network security groups
    /// (some open to RDP from the internet), storage accounts (some public), managed disks
    /// (some unattached), snapshots (some old with their disk gone), VMs (idle,
    /// over-provisioned, busy and deallocated), forty days of cost with yesterday's spike and
    /// a budget the month runs past.
    pub fn seed(double: &ArmDouble, subscription: &str, group: &str) -> AzureEstate {
        Self::seed_scaled(double, subscription, group, 1)
    }

    /// [`AzureEstate::seed`] with every kind of resource `scale` times over (10: about 3,400
    /// resources, for the scan bench); the cost and the budget once.
    pub fn seed_scaled(
        double: &ArmDouble,
        subscription: &str,
        group: &str,
        scale: usize,
    ) -> AzureEstate {
        let scale = scale.max(1);
        let mut expected = BTreeSet::new();
        let mut resources = 0;
        for i in 0..100 * scale {
            let nsg = double.nsg(subscription, group, &format!("nsg-{i:03}"));
            let port = if i % 10 == 0 { "3389" } else { "443" };
            double.security_rule(&nsg, "inbound", open_rule(port));
            if i % 10 == 0 {
                expected.insert(format!("open_admin_port:{nsg}"));
            }
            resources += 1;
        }
        for i in 0..20 * scale {
            // Public: the account allows it and a container offers it. Not public: the account
            // refuses anonymous access (whatever the container says), or no container offers it.
            let allow = i % 4 != 1;
            let account =
                double.storage_account(subscription, group, &format!("store{i:03}"), Some(allow));
            let level = if i % 4 == 2 { "None" } else { "Blob" };
            double.blob_container(&account, "assets", level);
            if allow && level != "None" {
                expected.insert(format!("public_storage:{account}"));
            }
            resources += 2;
        }
        let mut disks = Vec::new();
        for i in 0..100 * scale {
            let disk = double.disk(subscription, group, &format!("disk-{i:03}"));
            let state = if i % 10 == 3 {
                "Unattached"
            } else {
                "Attached"
            };
            double.update(&disk, |d| {
                d["properties"]["diskState"] = json!(state);
                d["properties"]["diskSizeGB"] = json!(128);
                d["sku"] = json!({"name": "Premium_LRS"});
            });
            if state == "Unattached" {
                expected.insert(format!("unattached_disk:{disk}"));
            }
            disks.push(disk);
            resources += 1;
        }
        for (i, live_disk) in disks.iter().take(40 * scale).enumerate() {
            // Old snapshots of deleted disks are reported; recent ones, or of live disks, not.
            let deleted = format!(
                "/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.Compute/disks/deleted-{i}"
            );
            let (source, age) = match i % 8 {
                0 => (deleted, 200),
                1 => (deleted, 10),
                _ => (live_disk.clone(), 400),
            };
            let snapshot =
                double.snapshot(subscription, group, &format!("snap-{i:03}"), &source, age);
            double.update(&snapshot, |s| s["properties"]["diskSizeGB"] = json!(64));
            if i % 8 == 0 {
                expected.insert(format!("old_snapshot:{snapshot}"));
            }
            resources += 1;
        }
        for i in 0..60 * scale {
            let power = if i % 20 == 19 {
                "deallocated"
            } else {
                "running"
            };
            let vm = double.vm(subscription, group, &format!("vm-{i:03}"), power);
            let cpu = match i % 10 {
                1 => 0.7,  // idle
                2 => 14.0, // over-provisioned
                _ => 55.0,
            };
            double.cpu(&vm, Some(cpu));
            if power == "running" && i % 10 == 1 {
                expected.insert(format!("instance_usage:{vm}"));
            }
            if power == "running" && i % 10 == 2 {
                expected.insert(format!("overprovisioned_instance:{vm}"));
            }
            resources += 1;
        }
        // Cost: yesterday jumped from 100 to 400 USD (a spike); the month, projected, runs far
        // past the subscription's 1 000 USD budget.
        let today = chrono::Utc::now().date_naive();
        for back in 1..=40 {
            let day = today - chrono::Duration::days(back);
            let compute = if back == 1 { 400.0 } else { 100.0 };
            double.cost(day, "Virtual Machines", compute);
            double.cost(day, "Storage", 5.0);
        }
        double.budget(subscription, "monthly", 1000.0);
        let subscription = format!("/subscriptions/{subscription}");
        expected.insert(format!("cost_spike:{subscription}"));
        expected.insert(format!("budget_exceeded:{subscription}"));
        AzureEstate {
            expected,
            resources,
        }
    }

    /// `Ok(n)` when `reported` (finding key → times reported) holds each expected finding
    /// exactly once and nothing else; else what differs.
    pub fn check_reported(&self, reported: &BTreeMap<String, usize>) -> Result<usize, String> {
        crate::load::reported_once(&self.expected, reported)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_case_insensitively_and_resource_uris_span_segments() {
        let t = segments(
            "/subscriptions/{subscriptionId}/providers/Microsoft.Network/networkSecurityGroups",
        );
        assert!(matches(
            &t,
            &[
                "subscriptions",
                "s1",
                "providers",
                "microsoft.network",
                "networksecuritygroups"
            ]
        ));
        assert!(!matches(
            &t,
            &["subscriptions", "s1", "providers", "Microsoft.Network"]
        ));
        let m = segments("/{resourceUri}/providers/Microsoft.Insights/metrics");
        let path: Vec<&str> = "subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm/providers/Microsoft.Insights/metrics"
            .split('/')
            .collect();
        assert!(matches(&m, &path));
    }

    #[test]
    fn every_vendored_operation_has_its_example() {
        let operations = load_operations();
        assert!(operations.len() >= 19);
        for o in &operations {
            assert!(o.example["responses"].is_object(), "{}", o.id);
        }
    }

    #[test]
    fn a_body_field_outside_the_published_request_is_a_violation() {
        let operations = load_operations();
        let update = operations
            .iter()
            .find(|o| o.id == "StorageAccounts_Update")
            .expect("vendored");
        let query = vec![("api-version".to_string(), "2023-05-01".to_string())];
        assert!(contract_problems(
            update,
            &query,
            Some(&json!({"properties": {"allowBlobPublicAccess": false}}))
        )
        .is_empty());
        let wrong = contract_problems(
            update,
            &query,
            Some(&json!({"properties": {"allowBlobPublicAccess": "no", "madeUp": 1}})),
        );
        assert_eq!(wrong.len(), 2, "{wrong:?}");
        let old = vec![("api-version".to_string(), "2021-01-01".to_string())];
        assert_eq!(
            contract_problems(update, &old, Some(&json!({"properties": {}}))).len(),
            1
        );
    }

    #[test]
    fn query_values_decode_as_forms_do() {
        assert_eq!(decode("Percentage+CPU"), "Percentage CPU");
        assert_eq!(decode("a%2Fb%3A"), "a/b:");
    }
}
