//! The nightly scan's Azure checks ([`escher_core::scan::ScanCheck`]), through Resource
//! Manager. Azure's listings are subscription-wide (every resource carries its `location`), so
//! each check runs once per scan (`CheckScope::Account`) and attributes each finding to its
//! resource's location. Each check judges a resource with the helpers its fix uses (a group's
//! open admin ports, a VM's CPU), so the scan and the fix never disagree.

mod admin_ports;
mod cost;
mod disks;
mod public_storage;
mod vm_usage;

use std::collections::BTreeMap;
use std::sync::Arc;

use escher_core::remediate::RequiredPermission;
use escher_core::scan::{FindingDraft, ScanCheck, ScanError, ACCOUNT_WIDE};
use escher_core::{CloudProvider, EventType, Resource};
use escher_runtime::RemoteCallMeter;
use serde_json::{Map, Value};

use crate::arm::{ArmClient, ArmError, ArmOperation, CallLog, HttpMethod};

pub(crate) const LIST_NSGS: ArmOperation = ArmOperation {
    id: "NetworkSecurityGroups_ListAll",
    method: HttpMethod::Get,
    api_version: "2024-05-01",
    permission: "Microsoft.Network/networkSecurityGroups/read",
};
pub(crate) const LIST_DISKS: ArmOperation = ArmOperation {
    id: "Disks_List",
    method: HttpMethod::Get,
    api_version: "2024-03-02",
    permission: "Microsoft.Compute/disks/read",
};
pub(crate) const LIST_SNAPSHOTS: ArmOperation = ArmOperation {
    id: "Snapshots_List",
    method: HttpMethod::Get,
    api_version: "2024-03-02",
    permission: "Microsoft.Compute/snapshots/read",
};
pub(crate) const LIST_STORAGE_ACCOUNTS: ArmOperation = ArmOperation {
    id: "StorageAccounts_List",
    method: HttpMethod::Get,
    api_version: "2023-05-01",
    permission: "Microsoft.Storage/storageAccounts/read",
};
pub(crate) const QUERY_COSTS: ArmOperation = ArmOperation {
    id: "Query_Usage",
    method: HttpMethod::Post,
    api_version: "2023-11-01",
    permission: "Microsoft.CostManagement/query/action",
};
pub(crate) const LIST_BUDGETS: ArmOperation = ArmOperation {
    id: "Budgets_List",
    method: HttpMethod::Get,
    api_version: "2024-08-01",
    permission: "Microsoft.Consumption/budgets/read",
};
pub(crate) const LIST_VMS: ArmOperation = ArmOperation {
    id: "VirtualMachines_ListAll",
    method: HttpMethod::Get,
    api_version: "2024-07-01",
    permission: "Microsoft.Compute/virtualMachines/read",
};

/// What the scan reads, beyond what the fixes already need.
pub(crate) const PERMISSIONS: &[RequiredPermission] = &[
    RequiredPermission {
        action: "Microsoft.Storage/storageAccounts/read",
        resource: "subscription",
        why: "the scan lists the subscription's storage accounts for anonymous blob access",
    },
    RequiredPermission {
        action: "Microsoft.Storage/storageAccounts/blobServices/containers/read",
        resource: "subscription",
        why: "the scan finds the containers that offer public access",
    },
    RequiredPermission {
        action: "Microsoft.Network/networkSecurityGroups/read",
        resource: "subscription",
        why: "the scan lists the subscription's network security groups for admin ports open to the internet",
    },
    RequiredPermission {
        action: "Microsoft.Compute/disks/read",
        resource: "subscription",
        why: "the scan finds managed disks attached to nothing",
    },
    RequiredPermission {
        action: "Microsoft.Compute/snapshots/read",
        resource: "subscription",
        why: "the scan finds old snapshots of deleted disks",
    },
    RequiredPermission {
        action: "Microsoft.Compute/virtualMachines/read",
        resource: "subscription",
        why: "the scan lists VMs and their power state to judge idle and over-provisioned ones",
    },
    RequiredPermission {
        action: "Microsoft.Insights/metrics/read",
        resource: "subscription",
        why: "the scan reads each running VM's Percentage CPU over the judged window",
    },
    RequiredPermission {
        action: "Microsoft.CostManagement/query/action",
        resource: "subscription",
        why: "the scan's cost summary reads the subscription's daily cost per service",
    },
    RequiredPermission {
        action: "Microsoft.Consumption/budgets/read",
        resource: "subscription",
        why: "the scan compares the month's cost with the subscription's monthly budget",
    },
];

/// The Azure checks of one subscription, sharing one Resource Manager client.
#[derive(Clone)]
pub struct AzureScan {
    pub(crate) arm: ArmClient,
    pub(crate) subscription: String,
    pub(crate) meter: Option<RemoteCallMeter>,
}

impl AzureScan {
    pub fn new(
        arm: ArmClient,
        subscription: impl Into<String>,
        meter: Option<RemoteCallMeter>,
    ) -> Self {
        AzureScan {
            arm,
            subscription: subscription.into(),
            meter,
        }
    }

    /// Every Azure check, in report order.
    pub fn checks(&self) -> Vec<Arc<dyn ScanCheck>> {
        vec![
            Arc::new(public_storage::PublicStorage(self.clone())),
            Arc::new(admin_ports::OpenAdminPorts(self.clone())),
            Arc::new(disks::UnusedStorage(self.clone())),
            Arc::new(vm_usage::VmUsage(self.clone())),
            Arc::new(cost::Cost(self.clone())),
        ]
    }

    /// Every item of a subscription-wide listing.
    pub(crate) async fn list(
        &self,
        operation: &ArmOperation,
        kind: &str,
    ) -> Result<Vec<Value>, ScanError> {
        let path = format!("/subscriptions/{}/providers/{kind}", self.subscription);
        let mut log = CallLog::metered(self.meter.as_ref());
        log.list(&self.arm, operation, &path, &[])
            .await
            .map_err(scan_error)
    }

    /// A finding about a listed resource, in its location.
    pub(crate) fn draft(
        &self,
        check: &'static str,
        item: &Value,
        event_type: EventType,
        resource: Resource,
        title: String,
    ) -> FindingDraft {
        self.draft_in(
            check,
            text(item, "/location").unwrap_or(ACCOUNT_WIDE),
            event_type,
            resource,
            title,
        )
    }

    /// A finding attributed to `region` (`ACCOUNT_WIDE` for the subscription itself).
    pub(crate) fn draft_in(
        &self,
        check: &'static str,
        region: &str,
        event_type: EventType,
        resource: Resource,
        title: String,
    ) -> FindingDraft {
        FindingDraft {
            check,
            cloud: CloudProvider::Azure,
            account_id: self.subscription.clone(),
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

/// A listed item as a finding's resource: its id, name and tags as ARM gives them.
pub(crate) fn resource_of(kind: &str, item: &Value, metadata: Value) -> Resource {
    let tags: BTreeMap<String, String> = item
        .get("tags")
        .and_then(Value::as_object)
        .map(|t| {
            t.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    Resource {
        kind: kind.into(),
        id: text(item, "/id").unwrap_or_default().to_string(),
        name: text(item, "/name").unwrap_or_default().to_string(),
        tags,
        metadata: match metadata {
            Value::Object(fields) => fields,
            _ => Map::new(),
        },
    }
}

pub(crate) fn scan_error(e: ArmError) -> ScanError {
    ScanError {
        message: if matches!(e.status, Some(401 | 403)) {
            format!(
                "{}; the scan needs this read (escher-provision extend grants it)",
                e.message
            )
        } else {
            e.message.clone()
        },
        operation: e.operation.to_string(),
        resource: e.target.clone(),
        transient: e.transient,
    }
}

/// Managed-disk list prices in USD per GiB-month (West Europe, pay-as-you-go, 2026), by SKU;
/// other regions differ by a few percent, which is close enough to rank savings.
pub(crate) fn disk_price_per_gib(sku: &str) -> f64 {
    match sku {
        "Premium_LRS" | "Premium_ZRS" => 0.15,
        "PremiumV2_LRS" => 0.09,
        "StandardSSD_LRS" | "StandardSSD_ZRS" => 0.075,
        "UltraSSD_LRS" => 0.14,
        _ => 0.045,
    }
}

/// Snapshots bill their used size at the standard rate.
pub(crate) const SNAPSHOT_PRICE_PER_GIB: f64 = 0.05;

pub(crate) fn round_cents(usd: f64) -> f64 {
    (usd * 100.0).round() / 100.0
}
