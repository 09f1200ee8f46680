//! The nightly scan's Google Cloud checks ([`escher_core::scan::ScanCheck`]), through the
//! REST client.
//!
//! Every check reads the whole project at once (Cloud Storage lists buckets by project;
//! Compute Engine's `aggregatedList` covers every zone; firewall rules and snapshots are
//! global), so each is account-wide ([`escher_core::scan::CheckScope::Account`]) and runs once per scan. Each
//! judges a resource with the helper its fix uses (a bucket's public members, a firewall
//! rule's open admin ports, a VM's CPU from Cloud Monitoring), so the scan and the fix never
//! disagree about what "public", "open" or "idle" means. Every listing follows
//! `nextPageToken`. A denied listing fails only its check, with the permission to grant.
//!
//! The cost summary comes from the BigQuery billing export and the budgets from the Budget
//! API, when [`GcpScanSettings`] names them; otherwise the report says what to set.

mod cost;
mod firewall;
mod instance_usage;
mod prices;
mod public_buckets;
mod storage;

use std::collections::BTreeMap;
use std::sync::Arc;

use escher_core::remediate::RequiredPermission;
use escher_core::scan::{FindingDraft, ScanCheck, ScanError, ACCOUNT_WIDE};
use escher_core::{CloudProvider, EventType, Resource};
use escher_runtime::RemoteCallMeter;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::rest::{GcpClient, GcpError, GcpOperation, HttpMethod, Problem, Service};

pub(crate) const LIST_BUCKETS: GcpOperation = GcpOperation {
    id: "storage.buckets.list",
    service: Service::Storage,
    method: HttpMethod::Get,
    permission: "storage.buckets.list",
    mutating: false,
    long_running: false,
};
pub(crate) const LIST_FIREWALLS: GcpOperation = GcpOperation {
    id: "compute.firewalls.list",
    service: Service::Compute,
    method: HttpMethod::Get,
    permission: "compute.firewalls.list",
    mutating: false,
    long_running: false,
};
pub(crate) const LIST_DISKS: GcpOperation = GcpOperation {
    id: "compute.disks.aggregatedList",
    service: Service::Compute,
    method: HttpMethod::Get,
    permission: "compute.disks.list",
    mutating: false,
    long_running: false,
};
pub(crate) const LIST_SNAPSHOTS: GcpOperation = GcpOperation {
    id: "compute.snapshots.list",
    service: Service::Compute,
    method: HttpMethod::Get,
    permission: "compute.snapshots.list",
    mutating: false,
    long_running: false,
};
pub(crate) const LIST_INSTANCES: GcpOperation = GcpOperation {
    id: "compute.instances.aggregatedList",
    service: Service::Compute,
    method: HttpMethod::Get,
    permission: "compute.instances.list",
    mutating: false,
    long_running: false,
};
pub(crate) const QUERY_BILLING: GcpOperation = GcpOperation {
    id: "bigquery.jobs.query",
    service: Service::BigQuery,
    method: HttpMethod::Post,
    permission: "bigquery.jobs.create",
    mutating: false,
    long_running: false,
};
pub(crate) const LIST_BUDGETS: GcpOperation = GcpOperation {
    id: "billingbudgets.billingAccounts.budgets.list",
    service: Service::BillingBudgets,
    method: HttpMethod::Get,
    permission: "billing.budgets.list",
    mutating: false,
    long_running: false,
};

/// Every method a check calls, so a recorded call maps back to its IAM permission.
pub(crate) const OPERATIONS: &[&GcpOperation] = &[
    &LIST_BUCKETS,
    &LIST_FIREWALLS,
    &LIST_DISKS,
    &LIST_SNAPSHOTS,
    &LIST_INSTANCES,
    &QUERY_BILLING,
    &LIST_BUDGETS,
];

/// What the scan reads, beyond what the fixes already need (the fixes' own reads of a
/// bucket's policy and a VM's CPU are theirs).
pub const PERMISSIONS: &[RequiredPermission] = &[
    RequiredPermission {
        action: "storage.buckets.list",
        resource: "project",
        why: "the scan lists the project's buckets for allUsers and allAuthenticatedUsers",
    },
    RequiredPermission {
        action: "storage.buckets.getIamPolicy",
        resource: "project",
        why: "the scan reads each bucket's IAM policy for public members",
    },
    RequiredPermission {
        action: "storage.buckets.get",
        resource: "project",
        why: "the scan reads each public bucket's public access prevention",
    },
    RequiredPermission {
        action: "compute.firewalls.list",
        resource: "project",
        why: "the scan lists the project's firewall rules for admin ports open to the internet",
    },
    RequiredPermission {
        action: "compute.disks.list",
        resource: "project",
        why: "the scan finds persistent disks attached to no VM, in every zone",
    },
    RequiredPermission {
        action: "compute.snapshots.list",
        resource: "project",
        why: "the scan finds old snapshots of deleted disks",
    },
    RequiredPermission {
        action: "compute.instances.list",
        resource: "project",
        why: "the scan lists VMs and their status, in every zone, to judge idle and over-provisioned ones",
    },
    RequiredPermission {
        action: "monitoring.timeSeries.list",
        resource: "project",
        why: "the scan reads each running VM's CPU utilization over the judged window",
    },
    RequiredPermission {
        action: "bigquery.jobs.create",
        resource: "project",
        why: "the scan's cost summary runs one query on the billing export table",
    },
    RequiredPermission {
        action: "bigquery.tables.getData",
        resource: "project",
        why: "the scan's query reads the billing export table (when its dataset is in another project, grant BigQuery Data Viewer on that dataset instead)",
    },
];

/// What the scan reads on the billing account, which a project's custom role cannot grant:
/// given to the service account on the billing account itself (Billing Account Viewer holds
/// it), and only when the scan is told the billing account.
pub const BILLING_ACCOUNT_PERMISSIONS: &[RequiredPermission] = &[RequiredPermission {
    action: "billing.budgets.list",
    resource: "billing account",
    why: "the scan compares the month's cost with the budgets that track the project",
}];

/// Where the scan finds the project's cost and budgets; both optional. Read from the
/// service's environment ([`GcpScanSettings::from_env`]) or the user's own settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcpScanSettings {
    /// The BigQuery table Cloud Billing exports detailed usage cost to
    /// (`project.dataset.gcp_billing_export_v1_XXXXXX_XXXXXX_XXXXXX`).
    #[serde(default)]
    pub billing_export_table: Option<String>,
    /// The Cloud Billing account id whose budgets the report compares with
    /// (`012345-6789AB-CDEF01`).
    #[serde(default)]
    pub billing_account: Option<String>,
}

/// The environment variables [`GcpScanSettings::from_env`] reads.
pub const BILLING_EXPORT_TABLE_ENV: &str = "ESCHER_GCP_BILLING_EXPORT_TABLE";
pub const BILLING_ACCOUNT_ENV: &str = "ESCHER_GCP_BILLING_ACCOUNT";

impl GcpScanSettings {
    /// From `ESCHER_GCP_BILLING_EXPORT_TABLE` and `ESCHER_GCP_BILLING_ACCOUNT`; unset or blank:
    /// not configured.
    pub fn from_env() -> Self {
        let read = |name: &str| {
            std::env::var(name)
                .ok()
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        GcpScanSettings {
            billing_export_table: read(BILLING_EXPORT_TABLE_ENV),
            billing_account: read(BILLING_ACCOUNT_ENV)
                .map(|a| a.trim_start_matches("billingAccounts/").to_string()),
        }
    }
}

/// The Google Cloud checks of one project, sharing one REST client.
#[derive(Clone)]
pub struct GcpScan {
    pub(crate) client: GcpClient,
    pub(crate) project: String,
    pub(crate) settings: GcpScanSettings,
    pub(crate) meter: Option<RemoteCallMeter>,
}

impl GcpScan {
    pub fn new(
        client: GcpClient,
        project: impl Into<String>,
        settings: GcpScanSettings,
        meter: Option<RemoteCallMeter>,
    ) -> Self {
        GcpScan {
            client,
            project: project.into(),
            settings,
            meter,
        }
    }

    /// Every Google Cloud check, in report order.
    pub fn checks(&self) -> Vec<Arc<dyn ScanCheck>> {
        vec![
            Arc::new(public_buckets::PublicBuckets(self.clone())),
            Arc::new(firewall::OpenAdminPorts(self.clone())),
            Arc::new(storage::UnusedStorage(self.clone())),
            Arc::new(instance_usage::InstanceUsage(self.clone())),
            Arc::new(cost::Cost(self.clone())),
        ]
    }

    /// A finding about the project's resource, attributed to `region`.
    pub(crate) fn draft(
        &self,
        check: &'static str,
        region: &str,
        event_type: EventType,
        resource: Resource,
        title: String,
    ) -> FindingDraft {
        FindingDraft {
            check,
            cloud: CloudProvider::Gcp,
            account_id: self.project.clone(),
            region: region.to_string(),
            event_type,
            resource,
            title,
            action: None,
            manual_command: None,
            monthly_saving_usd: None,
            questions: Vec::new(),
        }
    }
}

pub(crate) fn text<'a>(item: &'a Value, pointer: &str) -> Option<&'a str> {
    item.pointer(pointer).and_then(Value::as_str)
}

/// A Compute Engine resource's relative name (`projects/p/zones/z/disks/d`) from its
/// `selfLink`, as the fixes and the alerts name it.
pub(crate) fn compute_name(item: &Value) -> Option<String> {
    text(item, "/selfLink").map(|link| crate::ids::relative(link).to_string())
}

/// The region of a zone (`europe-west3-b` → `europe-west3`).
pub(crate) fn region_of_zone(zone: &str) -> &str {
    zone.rsplit_once('-').map_or(zone, |(region, _)| region)
}

/// A listed item as a finding's resource: its labels as tags.
pub(crate) fn resource_of(kind: &str, id: String, item: &Value, metadata: Value) -> Resource {
    let tags: BTreeMap<String, String> = item
        .get("labels")
        .and_then(Value::as_object)
        .map(|t| {
            t.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    Resource {
        kind: kind.into(),
        id,
        name: text(item, "/name").unwrap_or_default().to_string(),
        tags,
        metadata: match metadata {
            Value::Object(fields) => fields,
            _ => Map::new(),
        },
    }
}

/// A failed read as the report lists it; a 403 says the scan needs that permission.
pub(crate) fn scan_error(e: GcpError) -> ScanError {
    let transient = e.is_transient();
    let message = match &e.problem {
        Problem::Denied { .. } => format!(
            "{}; the scan needs this read (escher-provision extend grants it)",
            e.problem
        ),
        other => other.to_string(),
    };
    ScanError {
        operation: e.operation.to_string(),
        resource: e.target,
        message,
        transient,
    }
}

/// The region label of project-wide resources (firewall rules, snapshots, the bill).
pub(crate) const GLOBAL: &str = ACCOUNT_WIDE;

pub(crate) fn round_cents(usd: f64) -> f64 {
    (usd * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_the_scan_calls_has_its_permission_declared() {
        for operation in OPERATIONS {
            assert!(!operation.mutating, "{} reads only", operation.id);
            assert!(
                PERMISSIONS
                    .iter()
                    .chain(BILLING_ACCOUNT_PERMISSIONS)
                    .any(|p| p.action == operation.permission),
                "{} needs {}",
                operation.id,
                operation.permission
            );
        }
        let role = crate::all_required_permissions();
        for p in PERMISSIONS {
            assert!(role.iter().any(|r| r.action == p.action), "{}", p.action);
        }
        assert!(
            !role.iter().any(|r| r.action == "billing.budgets.list"),
            "a project's custom role cannot hold a billing account's permission"
        );
    }

    #[test]
    fn a_zone_belongs_to_its_region() {
        assert_eq!(region_of_zone("europe-west3-b"), "europe-west3");
        assert_eq!(region_of_zone("us-central1-f"), "us-central1");
    }

    #[test]
    fn the_settings_refuse_a_misspelt_key() {
        let parsed: Result<GcpScanSettings, _> =
            serde_json::from_str(r#"{"billing_export": "p.d.t"}"#);
        assert!(parsed.is_err());
        let parsed: GcpScanSettings =
            serde_json::from_str(r#"{"billing_account": "012345-6789AB-CDEF01"}"#).expect("valid");
        assert_eq!(parsed.billing_export_table, None);
    }
}
