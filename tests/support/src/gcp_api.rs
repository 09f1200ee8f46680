//! A contract server for the Google Cloud APIs the fixes and the nightly scan call, on
//! 127.0.0.1, since no fake exists for Compute Engine, bucket IAM, Cloud Monitoring, BigQuery's
//! billing export or the Budget API (fake-gcs-server answers bucket IAM 404 and drops public
//! access prevention). It holds a small project in memory (buckets with IAM policies and
//! `iamConfiguration`, firewall rules, VMs, disks, snapshots, CPU utilization, a billing export
//! table's rows, a billing account's budgets) and answers Cloud Storage JSON API v1, Compute
//! Engine v1, Cloud Monitoring v3, BigQuery v2 and the Cloud Billing Budget API v1 under one
//! origin, at Google's own paths (`/storage/v1/…`, `/compute/v1/…`, `/v3/…`,
//! `/bigquery/v2/…`, `/v1/billingAccounts/…`).
//!
//! Every request is held to Google's published discovery documents, sliced into
//! `tests/support/gcp-discovery/` (see its SOURCES.md): the method and path template must be
//! published, required parameters present, query parameters known, and every request body
//! field must exist in the method's request schema (an unknown field is a violation). A
//! request that breaks the contract is answered 400 and recorded; tests assert
//! [`GcpApi::violations`] is empty.
//!
//! It also plays what a client must cope with: [`GcpApi::throttle`] answers the next requests
//! 429 with `Retry-After`, [`GcpApi::lro_polls`] keeps Compute operations running for that
//! many polls, [`GcpApi::fail_next_operation`] ends the next one with an error,
//! [`GcpApi::deny`] answers 403 to calls that need a permission, and
//! [`GcpApi::page_size`] splits every listing (and Monitoring's points) into pages behind
//! `nextPageToken`. The metadata server's token
//! endpoint is served too, so the production token source can be exercised.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use crate::gcp_discovery::google_error;
use crate::gcp_incoming::{
    loopback, not_played, ok, param, serve_in_background, unauthenticated, ContractLog,
    GoogleRequest, Incoming,
};

const DOCUMENTS: [&str; 5] = [
    "storage.v1",
    "compute.v1",
    "monitoring.v3",
    "bigquery.v2",
    "billingbudgets.v1",
];

/// The project number every seeded project answers with (buckets and budgets name projects
/// by number).
pub const PROJECT_NUMBER: &str = "480028761092";

#[derive(Debug, Clone)]
enum Change {
    Firewall { key: String, patch: Value },
    Stop { key: String },
}

#[derive(Debug, Clone)]
struct PendingOperation {
    resource: Value,
    polls_left: u32,
    change: Option<Change>,
    error: Option<String>,
}

/// One line of the billing export: a day's cost of one service in one project.
#[derive(Debug, Clone)]
struct BillingRow {
    day: chrono::NaiveDate,
    service: String,
    project: String,
    cost: f64,
    currency: String,
}

#[derive(Debug, Default)]
struct Inner {
    buckets: BTreeMap<String, Value>,
    policies: BTreeMap<String, Value>,
    firewalls: BTreeMap<String, Value>,
    instances: BTreeMap<String, Value>,
    disks: BTreeMap<String, Value>,
    snapshots: BTreeMap<String, Value>,
    /// The billing export table (`project.dataset.table`) and its rows: (day, service,
    /// project id, cost, currency).
    billing_export: Option<(String, Vec<BillingRow>)>,
    /// Budgets by billing account id.
    budgets: BTreeMap<String, Vec<Value>>,
    /// CPU utilization in percent by instance id; `None`: no datapoints.
    cpu: HashMap<String, Option<f64>>,
    operations: HashMap<String, PendingOperation>,
    next_id: u64,
    lro_polls: u32,
    fail_next: Option<String>,
    throttle: VecDeque<u64>,
    denied: BTreeSet<String>,
    page_size: usize,
    tokens: Vec<String>,
}

/// The contract server; stops when dropped with its runtime.
#[derive(Clone)]
pub struct GcpApi {
    endpoint: String,
    contract: ContractLog,
    inner: Arc<Mutex<Inner>>,
}

/// The IAM permission each published method needs (Google's IAM permissions reference).
fn permission_of(method: &str) -> &'static str {
    match method {
        "storage.buckets.list" => "storage.buckets.list",
        "storage.buckets.get" => "storage.buckets.get",
        "storage.buckets.patch" => "storage.buckets.update",
        "storage.buckets.getIamPolicy" => "storage.buckets.getIamPolicy",
        "storage.buckets.setIamPolicy" => "storage.buckets.setIamPolicy",
        "compute.firewalls.list" => "compute.firewalls.list",
        "compute.firewalls.get" => "compute.firewalls.get",
        "compute.instances.aggregatedList" => "compute.instances.list",
        "compute.disks.aggregatedList" => "compute.disks.list",
        "compute.snapshots.list" => "compute.snapshots.list",
        "bigquery.jobs.query" => "bigquery.jobs.create",
        "billingbudgets.billingAccounts.budgets.list" => "billing.budgets.list",
        "compute.firewalls.patch" => "compute.firewalls.update",
        "compute.instances.get" => "compute.instances.get",
        "compute.instances.stop" => "compute.instances.stop",
        "compute.disks.get" => "compute.disks.get",
        "compute.zoneOperations.get" | "compute.zoneOperations.wait" => {
            "compute.zoneOperations.get"
        }
        "compute.globalOperations.get" | "compute.globalOperations.wait" => {
            "compute.globalOperations.get"
        }
        "monitoring.projects.timeSeries.list" => "monitoring.timeSeries.list",
        _ => "an unlisted permission",
    }
}

/// RFC 7396 merge patch, as Compute Engine and Cloud Storage apply PATCH bodies.
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

impl GcpApi {
    /// A bearer token the server always accepts.
    pub const TEST_TOKEN: &'static str = "escher-gcp-api-test-token";

    pub async fn start() -> GcpApi {
        let (listener, endpoint) = loopback().await;
        let api = GcpApi {
            endpoint,
            contract: ContractLog::load(&DOCUMENTS),
            inner: Arc::new(Mutex::new(Inner {
                lro_polls: 1,
                page_size: 100_000,
                next_id: 4_711_000_000_000_000_000,
                ..Inner::default()
            })),
        };
        serve_in_background(listener, handle, api.clone());
        api
    }

    /// The origin every API answers under (`Endpoints::all_at` in escher-gcp).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// `GCE_METADATA_HOST` for a metadata-server token source (host:port).
    pub fn metadata_host(&self) -> &str {
        self.endpoint.trim_start_matches("http://")
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn requests(&self) -> Vec<GoogleRequest> {
        self.contract.requests()
    }

    /// Requests that broke the published contract (each was answered 400).
    pub fn violations(&self) -> Vec<String> {
        self.contract.violations()
    }

    /// Answers the next `count` requests 429 with `Retry-After: retry_after_secs`.
    pub fn throttle(&self, count: usize, retry_after_secs: u64) {
        self.lock()
            .throttle
            .extend(std::iter::repeat_n(retry_after_secs, count));
    }

    /// How many polls a Compute operation answers RUNNING before it is DONE (0: done at once).
    pub fn lro_polls(&self, polls: u32) {
        self.lock().lro_polls = polls;
    }

    /// The next Compute operation ends DONE with this error, and changes nothing.
    pub fn fail_next_operation(&self, message: &str) {
        self.lock().fail_next = Some(message.to_string());
    }

    /// Answers 403 to every call that needs `permission` (`storage.buckets.setIamPolicy`).
    pub fn deny(&self, permission: &str) {
        self.lock().denied.insert(permission.to_string());
    }

    /// At most this many items per page of every listing, and Monitoring points per page
    /// (the rest behind `nextPageToken`).
    pub fn page_size(&self, size: usize) {
        self.lock().page_size = size.max(1);
    }

    // ---- the project ----

    /// A bucket; `public` grants `allUsers` object read. Returns its resource name.
    pub fn bucket(&self, name: &str, public: bool) -> String {
        let mut inner = self.lock();
        let mut bindings = vec![
            json!({"role": "roles/storage.legacyBucketOwner", "members": ["projectOwner:shop-prod-4711", "projectEditor:shop-prod-4711"]}),
            json!({"role": "roles/storage.legacyBucketReader", "members": ["projectViewer:shop-prod-4711"]}),
        ];
        if public {
            bindings.push(json!({"role": "roles/storage.objectViewer", "members": ["allUsers"]}));
        }
        inner.buckets.insert(
            name.to_string(),
            json!({
                "kind": "storage#bucket", "id": name, "name": name,
                "selfLink": format!("https://www.googleapis.com/storage/v1/b/{name}"),
                "projectNumber": "480028761092", "metageneration": "1",
                "location": "EUROPE-WEST3", "storageClass": "STANDARD",
                "labels": {"team": "payments", "environment": "prod"},
                "iamConfiguration": {
                    "uniformBucketLevelAccess": {"enabled": true},
                    "publicAccessPrevention": "inherited"
                }
            }),
        );
        inner.policies.insert(
            name.to_string(),
            json!({"kind": "storage#policy", "resourceId": format!("projects/_/buckets/{name}"),
                   "version": 1, "etag": "CAE=", "bindings": bindings}),
        );
        format!("projects/_/buckets/{name}")
    }

    /// The bucket's resource and IAM policy as the server holds them.
    pub fn bucket_state(&self, name: &str) -> Option<(Value, Value)> {
        let inner = self.lock();
        Some((
            inner.buckets.get(name)?.clone(),
            inner.policies.get(name)?.clone(),
        ))
    }

    /// Whether the bucket is not as the public-bucket fix leaves it: a public member
    /// (`allUsers`, `allAuthenticatedUsers`) left in its policy, or public access
    /// prevention not enforced.
    pub fn bucket_still_public(&self, name: &str) -> Result<bool, String> {
        let (resource, policy) = self
            .bucket_state(name)
            .ok_or_else(|| format!("bucket {name} is gone from the contract server"))?;
        let public_member = policy["bindings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| b["members"].as_array())
            .flatten()
            .any(|m| m == "allUsers" || m == "allAuthenticatedUsers");
        let prevented = resource
            .pointer("/iamConfiguration/publicAccessPrevention")
            .and_then(Value::as_str)
            == Some("enforced");
        Ok(public_member || !prevented)
    }

    /// Changes a bucket's resource and policy as a person would (the policy's etag moves).
    pub fn update_bucket(&self, name: &str, change: impl FnOnce(&mut Value, &mut Value)) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let (Some(bucket), Some(policy)) =
            (inner.buckets.get_mut(name), inner.policies.get_mut(name))
        else {
            panic!("no bucket {name} on the GCP contract server");
        };
        change(bucket, policy);
        bump_etag(policy);
    }

    /// A firewall rule from its published fields (`allowed`, `sourceRanges`, …). Returns its
    /// resource name.
    pub fn firewall(&self, project: &str, name: &str, fields: Value) -> String {
        let key = format!("projects/{project}/global/firewalls/{name}");
        let mut inner = self.lock();
        inner.next_id += 1;
        let mut rule = json!({
            "kind": "compute#firewall", "id": inner.next_id.to_string(), "name": name,
            "network": format!("https://www.googleapis.com/compute/v1/projects/{project}/global/networks/default"),
            "priority": 1000, "direction": "INGRESS", "disabled": false,
            "selfLink": format!("https://www.googleapis.com/compute/v1/{key}"),
            "creationTimestamp": "2026-11-30T08:12:44.000-08:00"
        });
        merge(&mut rule, &fields);
        inner.firewalls.insert(key.clone(), rule);
        key
    }

    pub fn firewall_rule(&self, name: &str) -> Option<Value> {
        self.lock().firewalls.get(name).cloned()
    }

    pub fn update_firewall(&self, name: &str, change: impl FnOnce(&mut Value)) {
        let mut inner = self.lock();
        let rule = inner
            .firewalls
            .get_mut(name)
            .unwrap_or_else(|| panic!("no firewall rule {name} on the GCP contract server"));
        change(rule);
    }

    /// A VM in `status` (`RUNNING`, `TERMINATED`, …). Returns its resource name.
    pub fn instance(&self, project: &str, zone: &str, name: &str, status: &str) -> String {
        let key = format!("projects/{project}/zones/{zone}/instances/{name}");
        let mut inner = self.lock();
        inner.next_id += 1;
        let id = inner.next_id.to_string();
        inner.instances.insert(
            key.clone(),
            json!({
                "kind": "compute#instance", "id": id, "name": name,
                "zone": format!("https://www.googleapis.com/compute/v1/projects/{project}/zones/{zone}"),
                "machineType": format!("https://www.googleapis.com/compute/v1/projects/{project}/zones/{zone}/machineTypes/e2-standard-4"),
                "status": status, "labels": {"team": "batch", "environment": "prod"},
                "selfLink": format!("https://www.googleapis.com/compute/v1/{key}")
            }),
        );
        key
    }

    pub fn instance_status(&self, name: &str) -> Option<String> {
        self.lock()
            .instances
            .get(name)
            .and_then(|i| i["status"].as_str().map(str::to_string))
    }

    pub fn set_instance_status(&self, name: &str, status: &str) {
        let mut inner = self.lock();
        let instance = inner
            .instances
            .get_mut(name)
            .unwrap_or_else(|| panic!("no VM {name} on the GCP contract server"));
        instance["status"] = json!(status);
    }

    /// The VM's CPU utilization in percent at every point; `None`: no datapoints at all.
    pub fn cpu(&self, instance: &str, percent: Option<f64>) {
        let mut inner = self.lock();
        let id = inner
            .instances
            .get(instance)
            .and_then(|i| i["id"].as_str().map(str::to_string))
            .unwrap_or_else(|| panic!("no VM {instance} on the GCP contract server"));
        inner.cpu.insert(id, percent);
    }

    /// A persistent disk; `kms_key` names a Cloud KMS key. Returns its resource name.
    pub fn disk(&self, project: &str, zone: &str, name: &str, kms_key: Option<&str>) -> String {
        let key = format!("projects/{project}/zones/{zone}/disks/{name}");
        let mut inner = self.lock();
        inner.next_id += 1;
        let mut disk = json!({
            "kind": "compute#disk", "id": inner.next_id.to_string(), "name": name,
            "sizeGb": "50", "status": "READY", "labels": {"team": "batch"},
            "zone": format!("https://www.googleapis.com/compute/v1/projects/{project}/zones/{zone}"),
            "type": format!("https://www.googleapis.com/compute/v1/projects/{project}/zones/{zone}/diskTypes/pd-balanced"),
            "creationTimestamp": "2026-09-14T06:51:02.316-07:00",
            "selfLink": format!("https://www.googleapis.com/compute/v1/{key}")
        });
        if let Some(kms) = kms_key {
            disk["diskEncryptionKey"] = json!({"kmsKeyName": kms});
        }
        inner.disks.insert(key.clone(), disk);
        key
    }

    /// Changes a persistent disk as a person would (`users`, `sizeGb`, `type`, …).
    pub fn update_disk(&self, name: &str, change: impl FnOnce(&mut Value)) {
        let mut inner = self.lock();
        let disk = inner
            .disks
            .get_mut(name)
            .unwrap_or_else(|| panic!("no disk {name} on the GCP contract server"));
        change(disk);
    }

    /// A snapshot of `source_disk` (a disk's resource name, which may no longer exist) taken
    /// `age_days` ago, storing `storage_gb`. Returns its resource name.
    pub fn snapshot(
        &self,
        project: &str,
        name: &str,
        source_disk: &str,
        storage_gb: u64,
        age_days: i64,
    ) -> String {
        let key = format!("projects/{project}/global/snapshots/{name}");
        let created = chrono::Utc::now() - chrono::Duration::days(age_days);
        let mut inner = self.lock();
        inner.next_id += 1;
        let snapshot = json!({
            "kind": "compute#snapshot", "id": inner.next_id.to_string(), "name": name,
            "status": "READY", "diskSizeGb": "100",
            "storageBytes": (storage_gb * 1024 * 1024 * 1024).to_string(),
            "storageBytesStatus": "UP_TO_DATE",
            "sourceDisk": format!("https://www.googleapis.com/compute/v1/{source_disk}"),
            "creationTimestamp": created.format("%Y-%m-%dT%H:%M:%S%.3f+00:00").to_string(),
            "storageLocations": ["eu"], "labels": {"team": "batch"},
            "selfLink": format!("https://www.googleapis.com/compute/v1/{key}")
        });
        inner.snapshots.insert(key.clone(), snapshot);
        key
    }

    /// The BigQuery billing export table (`project.dataset.table`) the scan may read.
    pub fn billing_export(&self, table: &str) {
        let mut inner = self.lock();
        let rows = inner.billing_export.take().map(|(_, rows)| rows);
        inner.billing_export = Some((table.to_string(), rows.unwrap_or_default()));
    }

    /// One service's cost on `day` in `project`, as a line of the billing export.
    pub fn cost(&self, project: &str, day: chrono::NaiveDate, service: &str, amount: f64) {
        let mut inner = self.lock();
        let export = inner
            .billing_export
            .get_or_insert_with(|| (String::new(), Vec::new()));
        export.1.push(BillingRow {
            day,
            service: service.to_string(),
            project: project.to_string(),
            cost: amount,
            currency: "USD".to_string(),
        });
    }

    /// A monthly budget of `amount` USD on `billing_account`, tracking `project` (or the
    /// whole account when `None`), with thresholds at 50 %, 90 % and 100 % of current spend.
    pub fn budget(&self, billing_account: &str, name: &str, project: Option<&str>, amount: f64) {
        let mut inner = self.lock();
        inner.next_id += 1;
        let mut filter =
            json!({"calendarPeriod": "MONTH", "creditTypesTreatment": "INCLUDE_ALL_CREDITS"});
        if project.is_some() {
            filter["projects"] = json!([format!("projects/{PROJECT_NUMBER}")]);
        }
        let budget = json!({
            "name": format!("billingAccounts/{billing_account}/budgets/{}", inner.next_id),
            "displayName": name,
            "budgetFilter": filter,
            "amount": {"specifiedAmount": {"currencyCode": "USD", "units": format!("{}", amount.trunc() as i64), "nanos": ((amount.fract() * 1e9).round() as i64)}},
            "thresholdRules": [
                {"thresholdPercent": 0.5, "spendBasis": "CURRENT_SPEND"},
                {"thresholdPercent": 0.9, "spendBasis": "CURRENT_SPEND"},
                {"thresholdPercent": 1.0, "spendBasis": "FORECASTED_SPEND"}
            ],
            "etag": "a8e3c1",
            "ownershipScope": "ALL_USERS"
        });
        inner
            .budgets
            .entry(billing_account.to_string())
            .or_default()
            .push(budget);
    }
}

fn bump_etag(policy: &mut Value) {
    let n = policy["etag"].as_str().map(|e| e.len() as u64).unwrap_or(0);
    policy["etag"] = json!(format!("CA{}=", "E".repeat((n % 7 + 1) as usize)));
}

async fn handle(State(api): State<GcpApi>, incoming: Incoming) -> Response {
    api.contract
        .answer(incoming, |incoming| route(&api, incoming))
}

fn route(api: &GcpApi, incoming: &Incoming) -> (Response, Option<String>) {
    if incoming.path() == "/computeMetadata/v1/instance/service-accounts/default/token" {
        return (metadata_token(api, &incoming.headers), None);
    }
    let segments = &incoming.segments;
    let published = match api.contract.hold(incoming, segments) {
        Ok(p) => p.id.clone(),
        Err(refused) => return (refused, None),
    };
    let id = Some(published.clone());
    let mut inner = api.lock();
    let bearer = incoming.bearer().unwrap_or_default();
    if bearer != GcpApi::TEST_TOKEN && !inner.tokens.iter().any(|t| t == bearer) {
        return (unauthenticated(), id);
    }
    if let Some(seconds) = inner.throttle.pop_front() {
        let mut response = google_error(
            StatusCode::TOO_MANY_REQUESTS,
            "rateLimitExceeded",
            "Quota exceeded for quota metric 'Queries' of service.",
        );
        if let Ok(value) = seconds.to_string().parse() {
            response.headers_mut().insert("retry-after", value);
        }
        return (response, id);
    }
    let permission = permission_of(&published);
    if inner.denied.contains(permission) {
        return (
            google_error(
                StatusCode::FORBIDDEN,
                "forbidden",
                &format!("escher@shop-prod-4711.iam.gserviceaccount.com does not have {permission} access to the resource."),
            ),
            id,
        );
    }
    let response = serve(
        &mut inner,
        &api.endpoint,
        &published,
        segments,
        &incoming.query,
        incoming.body.as_ref(),
    );
    (response, id)
}

fn metadata_token(api: &GcpApi, headers: &HeaderMap) -> Response {
    if headers.get("metadata-flavor").and_then(|v| v.to_str().ok()) != Some("Google") {
        return (
            StatusCode::FORBIDDEN,
            "Missing Metadata-Flavor:Google header.",
        )
            .into_response();
    }
    let mut inner = api.lock();
    let token = format!("ya29.escher-metadata-{}", inner.tokens.len() + 1);
    inner.tokens.push(token.clone());
    ok(json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"}))
}

fn not_found(what: &str) -> Response {
    google_error(
        StatusCode::NOT_FOUND,
        "notFound",
        &format!("The resource '{what}' was not found"),
    )
}

/// The relative name after the service prefix (`projects/p/zones/z/instances/i`).
fn name_from(segments: &[String], skip: usize, take: usize) -> String {
    segments[skip..skip + take].join("/")
}

fn serve(
    inner: &mut Inner,
    endpoint: &str,
    id: &str,
    segments: &[String],
    query: &[(String, String)],
    body: Option<&Value>,
) -> Response {
    // storage/v1/b/{bucket}[/iam]; compute/v1/projects/…; v3/projects/{p}/timeSeries
    match id {
        "storage.buckets.list" => {
            let items: Vec<Value> = inner.buckets.values().cloned().collect();
            ok(page_of(
                json!({"kind": "storage#buckets"}),
                "items",
                &items,
                query,
                inner.page_size,
            ))
        }
        "compute.firewalls.list" => {
            let prefix = format!("projects/{}/global/firewalls/", segments[3]);
            let items = under(&inner.firewalls, &prefix);
            ok(page_of(
                json!({"kind": "compute#firewallList", "id": format!("projects/{}/global/firewalls", segments[3]),
                       "selfLink": format!("https://www.googleapis.com/compute/v1/projects/{}/global/firewalls", segments[3])}),
                "items",
                &items,
                query,
                inner.page_size,
            ))
        }
        "compute.snapshots.list" => {
            let prefix = format!("projects/{}/global/snapshots/", segments[3]);
            let items = under(&inner.snapshots, &prefix);
            ok(page_of(
                json!({"kind": "compute#snapshotList", "id": format!("projects/{}/global/snapshots", segments[3]),
                       "selfLink": format!("https://www.googleapis.com/compute/v1/projects/{}/global/snapshots", segments[3])}),
                "items",
                &items,
                query,
                inner.page_size,
            ))
        }
        "compute.disks.aggregatedList" => {
            let prefix = format!("projects/{}/zones/", segments[3]);
            let items: Vec<(String, Value)> = inner
                .disks
                .iter()
                .filter(|(k, _)| k.starts_with(&prefix))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            ok(aggregated_page(
                "compute#diskAggregatedList",
                "disks",
                &segments[3],
                &items,
                query,
                inner.page_size,
            ))
        }
        "compute.instances.aggregatedList" => {
            let prefix = format!("projects/{}/zones/", segments[3]);
            let items: Vec<(String, Value)> = inner
                .instances
                .iter()
                .filter(|(k, _)| k.starts_with(&prefix))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            ok(aggregated_page(
                "compute#instanceAggregatedList",
                "instances",
                &segments[3],
                &items,
                query,
                inner.page_size,
            ))
        }
        "bigquery.jobs.query" => billing_query(inner, &segments[3], body),
        "billingbudgets.billingAccounts.budgets.list" => {
            let all = inner.budgets.get(&segments[2]).cloned().unwrap_or_default();
            let scope = param(query, "scope");
            let tracked: Vec<Value> = all
                .into_iter()
                .filter(|b| match scope {
                    // The scope names the project by id; budgets name it by number.
                    Some(_) => b
                        .pointer("/budgetFilter/projects")
                        .and_then(Value::as_array)
                        .is_none_or(|p| {
                            p.is_empty()
                                || p.iter().any(|p| {
                                    p.as_str() == Some(&format!("projects/{PROJECT_NUMBER}"))
                                })
                        }),
                    None => true,
                })
                .collect();
            ok(page_of(
                json!({}),
                "budgets",
                &tracked,
                query,
                inner.page_size,
            ))
        }
        "storage.buckets.get" => match inner.buckets.get(&segments[3]) {
            Some(b) => ok(b.clone()),
            None => not_found(&format!("projects/_/buckets/{}", segments[3])),
        },
        "storage.buckets.patch" => match inner.buckets.get_mut(&segments[3]) {
            Some(bucket) => {
                if let Some(patch) = body {
                    merge(bucket, patch);
                }
                let generation = bucket["metageneration"]
                    .as_str()
                    .and_then(|g| g.parse::<u64>().ok())
                    .unwrap_or(1);
                bucket["metageneration"] = json!((generation + 1).to_string());
                ok(bucket.clone())
            }
            None => not_found(&format!("projects/_/buckets/{}", segments[3])),
        },
        "storage.buckets.getIamPolicy" => match inner.policies.get(&segments[3]) {
            Some(p) => ok(p.clone()),
            None => not_found(&format!("projects/_/buckets/{}", segments[3])),
        },
        "storage.buckets.setIamPolicy" => {
            let Some(policy) = inner.policies.get_mut(&segments[3]) else {
                return not_found(&format!("projects/_/buckets/{}", segments[3]));
            };
            let sent = body.cloned().unwrap_or(Value::Null);
            if let Some(etag) = sent.get("etag").and_then(Value::as_str) {
                if Some(etag) != policy["etag"].as_str() {
                    return google_error(
                        StatusCode::PRECONDITION_FAILED,
                        "conditionNotMet",
                        "The precondition you specified did not hold (etag).",
                    );
                }
            }
            policy["bindings"] = sent.get("bindings").cloned().unwrap_or(json!([]));
            if let Some(version) = sent.get("version") {
                policy["version"] = version.clone();
            }
            bump_etag(policy);
            ok(policy.clone())
        }
        "compute.firewalls.get" => {
            let key = name_from(segments, 2, 5);
            match inner.firewalls.get(&key) {
                Some(f) => ok(f.clone()),
                None => not_found(&key),
            }
        }
        "compute.firewalls.patch" => {
            let key = name_from(segments, 2, 5);
            if !inner.firewalls.contains_key(&key) {
                return not_found(&key);
            }
            let project = segments[3].clone();
            let change = Change::Firewall {
                key: key.clone(),
                patch: body.cloned().unwrap_or(json!({})),
            };
            ok(start_operation(
                inner, endpoint, &project, None, "patch", &key, change,
            ))
        }
        "compute.instances.get" => {
            let key = name_from(segments, 2, 6);
            match inner.instances.get(&key) {
                Some(i) => ok(i.clone()),
                None => not_found(&key),
            }
        }
        "compute.instances.stop" => {
            let key = name_from(segments, 2, 6);
            let Some(instance) = inner.instances.get_mut(&key) else {
                return not_found(&key);
            };
            if instance["status"] == "RUNNING" {
                instance["status"] = json!("STOPPING");
            }
            let (project, zone) = (segments[3].clone(), segments[5].clone());
            let change = Change::Stop { key: key.clone() };
            ok(start_operation(
                inner,
                endpoint,
                &project,
                Some(&zone),
                "stop",
                &key,
                change,
            ))
        }
        "compute.disks.get" => {
            let key = name_from(segments, 2, 6);
            match inner.disks.get(&key) {
                Some(d) => ok(d.clone()),
                None => not_found(&key),
            }
        }
        "compute.zoneOperations.get"
        | "compute.zoneOperations.wait"
        | "compute.globalOperations.get"
        | "compute.globalOperations.wait" => {
            let name = segments
                .iter()
                .position(|s| s == "operations")
                .and_then(|i| segments.get(i + 1))
                .cloned()
                .unwrap_or_default();
            poll_operation(inner, &name)
        }
        "monitoring.projects.timeSeries.list" => time_series(inner, &segments[2], query),
        other => not_played(&format!(
            "{other} is published but this server does not play it"
        )),
    }
}

/// The values whose key starts with `prefix`, in key order.
fn under(map: &BTreeMap<String, Value>, prefix: &str) -> Vec<Value> {
    map.range(prefix.to_string()..)
        .take_while(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| v.clone())
        .collect()
}

/// Where a page starts: the offset its `pageToken` carries.
fn offset_of(query: &[(String, String)]) -> usize {
    param(query, "pageToken")
        .and_then(|t| t.parse().ok())
        .unwrap_or(0)
}

/// One page of `items` under `key` in `envelope`, with `nextPageToken` when more follow.
fn page_of(
    mut envelope: Value,
    key: &str,
    items: &[Value],
    query: &[(String, String)],
    page_size: usize,
) -> Value {
    let offset = offset_of(query);
    let page: Vec<Value> = items.iter().skip(offset).take(page_size).cloned().collect();
    if !page.is_empty() {
        envelope[key] = Value::Array(page);
    }
    if offset + page_size < items.len() {
        envelope["nextPageToken"] = json!((offset + page_size).to_string());
    }
    envelope
}

/// One page of an `aggregatedList`: the page's items grouped by zone (`zones/<zone>`), and,
/// as Compute Engine answers, a zone with nothing on the page as a `warning` only.
fn aggregated_page(
    kind: &str,
    key: &str,
    project: &str,
    items: &[(String, Value)],
    query: &[(String, String)],
    page_size: usize,
) -> Value {
    let offset = offset_of(query);
    let mut scopes = Map::new();
    for (name, item) in items.iter().skip(offset).take(page_size) {
        let zone = name.split('/').nth(3).unwrap_or("unknown");
        let scope = scopes
            .entry(format!("zones/{zone}"))
            .or_insert_with(|| json!({ key: [] }));
        if let Some(list) = scope[key].as_array_mut() {
            list.push(item.clone());
        }
    }
    scopes.insert(
        "zones/us-central1-a".to_string(),
        json!({"warning": {"code": "NO_RESULTS_ON_PAGE", "message": "There are no results for scope 'zones/us-central1-a' on this page.",
                            "data": [{"key": "scope", "value": "zones/us-central1-a"}]}}),
    );
    let mut answer = json!({
        "kind": kind, "id": format!("projects/{project}/aggregated/{key}"),
        "items": scopes,
        "selfLink": format!("https://www.googleapis.com/compute/v1/projects/{project}/aggregated/{key}")
    });
    if offset + page_size < items.len() {
        answer["nextPageToken"] = json!((offset + page_size).to_string());
    }
    answer
}

/// A query parameter's value out of a `jobs.query` request.
fn parameter<'a>(request: &'a Value, name: &str) -> Option<&'a str> {
    request
        .get("queryParameters")
        .and_then(Value::as_array)?
        .iter()
        .find(|p| p.get("name").and_then(Value::as_str) == Some(name))?
        .pointer("/parameterValue/value")
        .and_then(Value::as_str)
}

/// `jobs.query` on the billing export. No SQL engine runs here: the server answers the one
/// question the scan asks (cost per day and service of one project between two dates, in
/// columns `day`, `service`, `cost`, `currency`) when the statement reads the seeded table
/// in standard SQL with the named parameters `project`, `start_day` and `end_day`, and says
/// what is wrong otherwise, as BigQuery would (404 for an unknown table, 400 for a bad query).
fn billing_query(inner: &mut Inner, project: &str, body: Option<&Value>) -> Response {
    let request = body.cloned().unwrap_or(Value::Null);
    let statement = request
        .get("query")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some((table, rows)) = inner.billing_export.clone() else {
        return google_error(
            StatusCode::NOT_FOUND,
            "notFound",
            &format!("Not found: Dataset {project}:billing was not found in location EU"),
        );
    };
    if !statement.contains(&format!("`{table}`")) {
        return google_error(
            StatusCode::NOT_FOUND,
            "notFound",
            &format!(
                "Not found: Table named in the query; this project's billing export is {table}"
            ),
        );
    }
    if request.get("useLegacySql").and_then(Value::as_bool) != Some(false)
        || request.get("parameterMode").and_then(Value::as_str) != Some("NAMED")
    {
        return google_error(
            StatusCode::BAD_REQUEST,
            "invalidQuery",
            "Query parameters cannot be used in legacy SQL queries; set useLegacySql to false and parameterMode to NAMED",
        );
    }
    let day =
        |name: &str| parameter(&request, name).and_then(|d| d.parse::<chrono::NaiveDate>().ok());
    let (Some(wanted), Some(start), Some(end)) = (
        parameter(&request, "project"),
        day("start_day"),
        day("end_day"),
    ) else {
        return google_error(
            StatusCode::BAD_REQUEST,
            "invalidQuery",
            "Query parameters project, start_day and end_day must be set (start_day and end_day as DATE)",
        );
    };
    let mut totals: BTreeMap<(chrono::NaiveDate, String, String), f64> = BTreeMap::new();
    for row in rows
        .iter()
        .filter(|r| r.project == wanted && r.day >= start && r.day < end)
    {
        *totals
            .entry((row.day, row.service.clone(), row.currency.clone()))
            .or_default() += row.cost;
    }
    let cell = |v: String| json!({ "v": v });
    let answer_rows: Vec<Value> = totals
        .iter()
        .map(|((day, service, currency), cost)| {
            json!({"f": [cell(day.to_string()), cell(service.clone()), cell(cost.to_string()), cell(currency.clone())]})
        })
        .collect();
    inner.next_id += 1;
    ok(json!({
        "kind": "bigquery#queryResponse",
        "schema": {"fields": [
            {"name": "day", "type": "DATE", "mode": "NULLABLE"},
            {"name": "service", "type": "STRING", "mode": "NULLABLE"},
            {"name": "cost", "type": "FLOAT", "mode": "NULLABLE"},
            {"name": "currency", "type": "STRING", "mode": "NULLABLE"}
        ]},
        "jobReference": {"projectId": project, "jobId": format!("job_{}", inner.next_id), "location": "EU"},
        "totalRows": answer_rows.len().to_string(),
        "rows": answer_rows,
        "totalBytesProcessed": "1048576",
        "jobComplete": true,
        "cacheHit": false
    }))
}

fn start_operation(
    inner: &mut Inner,
    endpoint: &str,
    project: &str,
    zone: Option<&str>,
    kind: &str,
    target: &str,
    change: Change,
) -> Value {
    inner.next_id += 1;
    let name = format!("operation-{}-{kind}", inner.next_id);
    let scope = match zone {
        Some(z) => format!("projects/{project}/zones/{z}"),
        None => format!("projects/{project}/global"),
    };
    let mut resource = json!({
        "kind": "compute#operation", "id": inner.next_id.to_string(), "name": name,
        "operationType": kind, "status": "RUNNING", "progress": 0,
        "targetLink": format!("{endpoint}/compute/v1/{target}"),
        "selfLink": format!("{endpoint}/compute/v1/{scope}/operations/{name}"),
        "user": "escher@shop-prod-4711.iam.gserviceaccount.com"
    });
    if let Some(z) = zone {
        resource["zone"] = json!(format!(
            "{endpoint}/compute/v1/projects/{project}/zones/{z}"
        ));
    }
    let pending = PendingOperation {
        resource,
        polls_left: inner.lro_polls,
        change: Some(change),
        error: inner.fail_next.take(),
    };
    inner.operations.insert(name.clone(), pending);
    if inner.lro_polls == 0 {
        finish(inner, &name);
    }
    inner.operations[&name].resource.clone()
}

fn finish(inner: &mut Inner, name: &str) {
    let Some(mut op) = inner.operations.remove(name) else {
        return;
    };
    op.resource["status"] = json!("DONE");
    op.resource["progress"] = json!(100);
    match (&op.error, op.change.take()) {
        (Some(message), _) => {
            op.resource["error"] =
                json!({"errors": [{"code": "RESOURCE_OPERATION_FAILED", "message": message}]});
            op.resource["httpErrorStatusCode"] = json!(400);
        }
        (None, Some(Change::Firewall { key, patch })) => {
            if let Some(rule) = inner.firewalls.get_mut(&key) {
                merge(rule, &patch);
            }
        }
        (None, Some(Change::Stop { key })) => {
            if let Some(instance) = inner.instances.get_mut(&key) {
                instance["status"] = json!("TERMINATED");
            }
        }
        (None, None) => {}
    }
    inner.operations.insert(name.to_string(), op);
}

fn poll_operation(inner: &mut Inner, name: &str) -> Response {
    let Some(op) = inner.operations.get_mut(name) else {
        return not_found(&format!("operations/{name}"));
    };
    if op.resource["status"] != "DONE" {
        if op.polls_left > 0 {
            op.polls_left -= 1;
            op.resource["progress"] = json!(50);
            return ok(op.resource.clone());
        }
        finish(inner, name);
    }
    ok(inner.operations[name].resource.clone())
}

fn parse_time(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// `instance_id = "N"` (or `instance_id="N"`) out of a Monitoring filter.
fn filter_value<'a>(filter: &'a str, label: &str) -> Option<&'a str> {
    let rest = &filter[filter.find(label)? + label.len()..];
    let rest = rest
        .trim_start()
        .strip_prefix('=')?
        .trim_start()
        .strip_prefix('"')?;
    rest.split('"').next()
}

fn time_series(inner: &mut Inner, project: &str, query: &[(String, String)]) -> Response {
    let get = |k: &str| param(query, k);
    let filter = get("filter").unwrap_or_default();
    let (Some(start), Some(end)) = (
        get("interval.startTime").and_then(parse_time),
        get("interval.endTime").and_then(parse_time),
    ) else {
        return google_error(
            StatusCode::BAD_REQUEST,
            "badRequest",
            "interval.startTime and interval.endTime must be RFC 3339 times",
        );
    };
    let period = get("aggregation.alignmentPeriod")
        .and_then(|p| p.strip_suffix('s'))
        .and_then(|p| p.parse::<i64>().ok())
        .unwrap_or(60)
        .max(60);
    if !filter.contains("metric.type = \"compute.googleapis.com/instance/cpu/utilization\"")
        && !filter.contains("metric.type=\"compute.googleapis.com/instance/cpu/utilization\"")
    {
        return ok(json!({}));
    }
    let Some(instance_id) = filter_value(filter, "resource.labels.instance_id") else {
        return ok(json!({}));
    };
    let Some(Some(percent)) = inner.cpu.get(instance_id).copied() else {
        return ok(json!({}));
    };
    // Newest first, as Monitoring lists them; one point per alignment period.
    let mut points = Vec::new();
    let mut at = end;
    while at - chrono::Duration::seconds(period) >= start {
        points.push(json!({
            "interval": {
                "startTime": (at - chrono::Duration::seconds(period)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "endTime": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            },
            "value": {"doubleValue": percent / 100.0}
        }));
        at -= chrono::Duration::seconds(period);
    }
    let offset = offset_of(query);
    let page: Vec<Value> = points
        .iter()
        .skip(offset)
        .take(inner.page_size)
        .cloned()
        .collect();
    let mut answer = json!({"timeSeries": [{
        "metric": {"type": "compute.googleapis.com/instance/cpu/utilization", "labels": {"instance_name": "vm"}},
        "resource": {"type": "gce_instance", "labels": {"project_id": project, "instance_id": instance_id}},
        "metricKind": "GAUGE", "valueType": "DOUBLE", "points": page
    }]});
    if offset + inner.page_size < points.len() {
        answer["nextPageToken"] = json!((offset + inner.page_size).to_string());
    }
    ok(answer)
}

/// A project of about 300 resources on the contract server for the GCP scan's tests: most
/// fine, a few of each problem every check reports, spread over three zones. [`GcpEstate::expected`]
/// holds the key of every finding the checks must report about it (`<check>:<resource id>`),
/// and nothing else is there to report; compare with [`GcpEstate::check_reported`].
pub struct GcpEstate {
    pub project: String,
    pub resources: usize,
    pub expected: BTreeSet<String>,
}

/// The billing account and export table a seeded estate's cost comes from.
pub const ESTATE_BILLING_ACCOUNT: &str = "01A2B3-C4D5E6-F7A8B9";
pub const ESTATE_EXPORT_TABLE: &str =
    "shop-billing-4711.billing_export.gcp_billing_export_v1_01A2B3_C4D5E6_F7A8B9";

impl GcpEstate {
    pub const ZONES: [&'static str; 3] = ["europe-west3-a", "europe-west3-b", "us-central1-f"];

    /// Seeds `project` on `api`: buckets (some granting `allUsers`), firewall rules (some
    /// open to the internet on SSH or RDP, others on 443, from private ranges, disabled or
    /// egress), persistent disks (some attached to nothing), snapshots (some old with their
    /// disk gone, some recent, most of live disks), VMs (idle, over-provisioned, busy and
    /// stopped), a month of billing export with yesterday's spike and a budget it runs past.
    pub fn seed(api: &GcpApi, project: &str) -> GcpEstate {
        Self::seed_scaled(api, project, 1)
    }

    /// [`GcpEstate::seed`] with every kind of resource `scale` times over (10: about 3,000
    /// resources, for the scan bench); the cost and the budget once.
    pub fn seed_scaled(api: &GcpApi, project: &str, scale: usize) -> GcpEstate {
        let scale = scale.max(1);
        let mut expected = BTreeSet::new();
        let mut resources = 0;
        let zone = |i: usize| Self::ZONES[i % Self::ZONES.len()];
        for i in 0..40 * scale {
            let public = i % 8 == 0;
            let bucket = api.bucket(&format!("{project}-estate-{i:03}"), public);
            if i % 8 == 4 {
                // Private and locked: public access prevention enforced.
                api.update_bucket(&format!("{project}-estate-{i:03}"), |b, _| {
                    b["iamConfiguration"]["publicAccessPrevention"] = json!("enforced")
                });
            }
            if public {
                expected.insert(format!("public_bucket:{bucket}"));
            }
            resources += 1;
        }
        for i in 0..80 * scale {
            let fields = match i % 10 {
                0 => {
                    json!({"sourceRanges": ["0.0.0.0/0"], "allowed": [{"IPProtocol": "tcp", "ports": ["22", "443"]}]})
                }
                5 => {
                    json!({"sourceRanges": ["::/0"], "allowed": [{"IPProtocol": "tcp", "ports": ["3389"]}], "disabled": true})
                }
                6 => {
                    json!({"sourceRanges": ["::/0"], "allowed": [{"IPProtocol": "tcp", "ports": ["3000-4000"]}]})
                }
                7 => {
                    json!({"sourceRanges": ["10.0.0.0/8"], "allowed": [{"IPProtocol": "tcp", "ports": ["22"]}]})
                }
                3 => {
                    json!({"direction": "EGRESS", "destinationRanges": ["0.0.0.0/0"], "allowed": [{"IPProtocol": "tcp", "ports": ["22"]}]})
                }
                _ => {
                    json!({"sourceRanges": ["0.0.0.0/0"], "allowed": [{"IPProtocol": "tcp", "ports": ["443"]}]})
                }
            };
            let rule = api.firewall(project, &format!("estate-rule-{i:03}"), fields);
            if i % 10 == 0 || i % 10 == 6 {
                expected.insert(format!("open_admin_port:{rule}"));
            }
            resources += 1;
        }
        let mut live_disks = Vec::new();
        for i in 0..80 * scale {
            let disk = api.disk(project, zone(i), &format!("estate-disk-{i:03}"), None);
            let attached = i % 10 != 3;
            let users = if attached {
                json!([format!("https://www.googleapis.com/compute/v1/projects/{project}/zones/{}/instances/estate-vm-{i:03}", zone(i))])
            } else {
                Value::Null
            };
            api.update_disk(&disk, |d| {
                d["sizeGb"] = json!("200");
                d["type"] = json!(format!("https://www.googleapis.com/compute/v1/projects/{project}/zones/{}/diskTypes/pd-ssd", zone(i)));
                if !users.is_null() {
                    d["users"] = users;
                }
            });
            if !attached {
                expected.insert(format!("unattached_disk:{disk}"));
            }
            live_disks.push(disk);
            resources += 1;
        }
        for (i, live_disk) in live_disks.iter().take(40 * scale).enumerate() {
            let gone = format!("projects/{project}/zones/{}/disks/deleted-{i:03}", zone(i));
            let (source, age) = match i % 8 {
                0 => (gone, 200),
                1 => (gone, 10),
                _ => (live_disk.clone(), 400),
            };
            let snapshot = api.snapshot(project, &format!("estate-snap-{i:03}"), &source, 64, age);
            if i % 8 == 0 {
                expected.insert(format!("old_snapshot:{snapshot}"));
            }
            resources += 1;
        }
        for i in 0..60 * scale {
            let stopped = i % 20 == 19;
            let vm = api.instance(
                project,
                zone(i),
                &format!("estate-vm-{i:03}"),
                if stopped { "TERMINATED" } else { "RUNNING" },
            );
            let cpu = match (stopped, i % 10) {
                // A stopped VM idle before it stopped is not reported.
                (true, _) => 0.4,
                (false, 1) => 0.7,
                (false, 2) => 14.0,
                _ => 55.0,
            };
            api.cpu(&vm, Some(cpu));
            if !stopped && i % 10 == 1 {
                expected.insert(format!("instance_usage:{vm}"));
            }
            if !stopped && i % 10 == 2 {
                expected.insert(format!("overprovisioned_instance:{vm}"));
            }
            resources += 1;
        }
        // Cost: yesterday jumped from 100 to 400 USD (a spike); the month, projected, runs far
        // past the project's 1 000 USD budget. Another project's lines are not this one's.
        api.billing_export(ESTATE_EXPORT_TABLE);
        let today = chrono::Utc::now().date_naive();
        for back in 1..=40 {
            let day = today - chrono::Duration::days(back);
            api.cost(
                project,
                day,
                "Compute Engine",
                if back == 1 { 400.0 } else { 100.0 },
            );
            api.cost(project, day, "Cloud Storage", 5.0);
            api.cost("another-project", day, "Compute Engine", 9_000.0);
        }
        api.budget(
            ESTATE_BILLING_ACCOUNT,
            "shop monthly",
            Some(project),
            1000.0,
        );
        expected.insert(format!("cost_spike:projects/{project}"));
        expected.insert(format!("budget_exceeded:projects/{project}"));
        GcpEstate {
            project: project.to_string(),
            resources,
            expected,
        }
    }

    /// `Ok(n)` when `reported` (finding key → times reported) holds each expected finding
    /// exactly once and nothing else; else what differs (as the AWS estate's comparison).
    pub fn check_reported(&self, reported: &BTreeMap<String, usize>) -> Result<usize, String> {
        crate::load::reported_once(&self.expected, reported)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use axum::http::Method;

    use crate::gcp_discovery::{segments, Discovery};

    /// The contract every request to the server is held to.
    fn discovery() -> Discovery {
        Discovery::load(&DOCUMENTS)
    }

    fn path(p: &str) -> Vec<String> {
        segments(p)
    }

    #[test]
    fn published_methods_are_found_by_method_and_path() {
        let discovery = discovery();
        let found = discovery
            .check(&Method::PUT, &path("/storage/v1/b/site/iam"), &[], None)
            .expect("published");
        assert_eq!(found.id, "storage.buckets.setIamPolicy");
        let wait = discovery
            .check(
                &Method::POST,
                &path("/compute/v1/projects/p/zones/z/operations/op-1/wait"),
                &[],
                None,
            )
            .expect("published");
        assert_eq!(wait.id, "compute.zoneOperations.wait");
        let wrong = discovery
            .check(&Method::DELETE, &path("/storage/v1/b/site/iam"), &[], None)
            .expect_err("no DELETE on a policy");
        assert!(
            wrong[0].contains("PUT storage.buckets.setIamPolicy"),
            "{wrong:?}"
        );
        assert!(discovery
            .check(&Method::GET, &path("/storage/v1/b/site/acl"), &[], None)
            .is_err());
    }

    #[test]
    fn a_body_field_outside_the_published_schema_is_a_violation() {
        let discovery = discovery();
        let body = json!({"iamConfiguration": {"publicAccessPrevention": "enforced", "publicAccess": "off"}});
        let problems = discovery
            .check(
                &Method::PATCH,
                &path("/storage/v1/b/site"),
                &[],
                Some(&body),
            )
            .expect_err("an unknown field");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("iamConfiguration.publicAccess "),
            "{problems:?}"
        );
        let firewall =
            json!({"allowed": [{"IPProtocol": "tcp", "ports": ["443"]}], "disabled": true});
        assert!(discovery
            .check(
                &Method::PATCH,
                &path("/compute/v1/projects/p/global/firewalls/ssh"),
                &[],
                Some(&firewall)
            )
            .is_ok());
        let typed = json!({"disabled": "yes"});
        assert!(discovery
            .check(
                &Method::PATCH,
                &path("/compute/v1/projects/p/global/firewalls/ssh"),
                &[],
                Some(&typed)
            )
            .is_err());
    }

    #[test]
    fn unknown_and_missing_query_parameters_are_violations() {
        let discovery = discovery();
        let q = |k: &str| vec![(k.to_string(), "1".to_string())];
        assert!(discovery
            .check(
                &Method::GET,
                &path("/storage/v1/b/site/iam"),
                &q("optionsRequestedPolicyVersion"),
                None
            )
            .is_ok());
        assert!(discovery
            .check(
                &Method::GET,
                &path("/storage/v1/b/site/iam"),
                &q("policyVersion"),
                None
            )
            .is_err());
        assert!(discovery
            .check(
                &Method::GET,
                &path("/v3/projects/p/timeSeries"),
                &q("interval.endTime"),
                None
            )
            .is_ok());
        assert!(
            discovery
                .check(
                    &Method::POST,
                    &path("/compute/v1/projects/p/zones/z/instances/i/stop"),
                    &[],
                    Some(&json!({"force": true}))
                )
                .is_err(),
            "stop takes no body"
        );
    }

    #[test]
    fn the_scans_listings_are_published_and_aggregated_pages_group_by_zone() {
        let discovery = discovery();
        for (method, url, query) in [
            (Method::GET, "/storage/v1/b", vec![("project", "p")]),
            (
                Method::GET,
                "/compute/v1/projects/p/aggregated/disks",
                vec![],
            ),
            (
                Method::GET,
                "/compute/v1/projects/p/global/snapshots",
                vec![],
            ),
            (
                Method::GET,
                "/v1/billingAccounts/01A2B3-C4D5E6-F7A8B9/budgets",
                vec![("scope", "projects/p")],
            ),
        ] {
            let query: Vec<(String, String)> = query
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            assert!(
                discovery.check(&method, &path(url), &query, None).is_ok(),
                "{url}"
            );
        }
        assert!(
            discovery
                .check(&Method::GET, &path("/storage/v1/b"), &[], None)
                .is_err(),
            "buckets.list needs its project"
        );
        let items: Vec<(String, Value)> = ["a", "b", "c"]
            .iter()
            .enumerate()
            .map(|(i, n)| {
                (
                    format!("projects/p/zones/z{}/disks/{n}", i % 2),
                    json!({"name": n}),
                )
            })
            .collect();
        let first = aggregated_page("compute#diskAggregatedList", "disks", "p", &items, &[], 2);
        assert_eq!(first["items"]["zones/z0"]["disks"][0]["name"], "a");
        assert_eq!(first["items"]["zones/z1"]["disks"][0]["name"], "b");
        assert!(first["items"]["zones/us-central1-a"]["warning"].is_object());
        assert_eq!(first["nextPageToken"], "2");
        let rest = aggregated_page(
            "compute#diskAggregatedList",
            "disks",
            "p",
            &items,
            &[("pageToken".to_string(), "2".to_string())],
            2,
        );
        assert_eq!(rest["items"]["zones/z0"]["disks"][0]["name"], "c");
        assert!(rest.get("nextPageToken").is_none());
    }

    #[test]
    fn the_filter_names_the_instance() {
        assert_eq!(
            filter_value(
                "metric.type = \"compute.googleapis.com/instance/cpu/utilization\" AND resource.labels.instance_id = \"42\"",
                "resource.labels.instance_id"
            ),
            Some("42")
        );
    }
}
