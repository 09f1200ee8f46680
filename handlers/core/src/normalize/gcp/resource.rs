//! GCP resource names, monitored-resource types and locations turned into the
//! `UnifiedEvent` vocabulary (`resource.type`, `account_id`, `region`).
//!
//! GCP names one resource three ways depending on the source: a monitored-resource type
//! with labels (Cloud Monitoring, Cloud Logging), a relative resource name
//! (`projects/p/global/firewalls/f`, audit logs) and a full resource name with an asset type
//! (`//compute.googleapis.com/projects/p/...`, Security Command Center). All three map to
//! the same snake_case kinds so a rule written for `gce_firewall` sees every source.

use crate::normalize::snake_case;
use crate::resource_types::gcp as gcp_types;

/// Kind for a Cloud Monitoring / Cloud Logging monitored-resource type.
pub(super) fn kind_from_monitored_type(monitored: &str) -> Option<&'static str> {
    Some(match monitored {
        gcp_types::GCS_BUCKET => gcp_types::GCS_BUCKET,
        gcp_types::GCE_INSTANCE => gcp_types::GCE_INSTANCE,
        "gce_firewall_rule" => gcp_types::GCE_FIREWALL,
        "gce_instance_template" => "gce_instance_template",
        "gce_instance_group" => "gce_instance_group",
        gcp_types::GCE_DISK => gcp_types::GCE_DISK,
        "gce_snapshot" => "gce_snapshot",
        "gce_image" => "gce_image",
        "gce_network" => "gce_network",
        "gce_subnetwork" => "gce_subnetwork",
        "gce_route" => "gce_route",
        "iam_role" => "iam_role",
        "service_account" => "iam_service_account",
        "pubsub_topic" => "pubsub_topic",
        "pubsub_subscription" => "pubsub_subscription",
        "project" => gcp_types::PROJECT,
        "organization" => "gcp_organization",
        "folder" => "gcp_folder",
        "billing_account" => "gcp_billing_account",
        "bigquery_dataset" => "bigquery_dataset",
        "gke_cluster" | "k8s_cluster" => "gke_cluster",
        "cloudsql_database" => "cloudsql_instance",
        "cloud_function" => "cloud_function",
        "cloud_run_revision" => "cloud_run_service",
        "cloud_scheduler_job" => "cloud_scheduler_job",
        _ => return None,
    })
}

/// Kind from a relative (`projects/p/zones/z/instances/i`) or full
/// (`//storage.googleapis.com/bucket`) resource name, read from its collection segment.
pub(super) fn kind_from_resource_name(name: &str) -> Option<&'static str> {
    let (service, path) = match name.strip_prefix("//") {
        Some(rest) => rest.split_once('/').unwrap_or((rest, "")),
        None => ("", name),
    };
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    // Full storage names have no collection: `//storage.googleapis.com/<bucket>`.
    if service.starts_with("storage.") && segments.len() == 1 {
        return Some(gcp_types::GCS_BUCKET);
    }
    let collection = segments
        .len()
        .checked_sub(2)
        .and_then(|i| segments.get(i))?;
    Some(match *collection {
        "buckets" => gcp_types::GCS_BUCKET,
        "objects" => "gcs_object",
        "firewalls" => gcp_types::GCE_FIREWALL,
        "instances" if service.starts_with("sqladmin.") => "cloudsql_instance",
        "instances" if service.starts_with("compute.") || segments.contains(&"zones") => {
            gcp_types::GCE_INSTANCE
        }
        "instanceTemplates" => "gce_instance_template",
        "instanceGroups" | "instanceGroupManagers" => "gce_instance_group",
        "disks" => gcp_types::GCE_DISK,
        "snapshots" => "gce_snapshot",
        "images" => "gce_image",
        "networks" => "gce_network",
        "subnetworks" => "gce_subnetwork",
        "routes" => "gce_route",
        "roles" => "iam_role",
        "serviceAccounts" => "iam_service_account",
        "topics" => "pubsub_topic",
        "subscriptions" => "pubsub_subscription",
        "projects" => gcp_types::PROJECT,
        "organizations" => "gcp_organization",
        "folders" => "gcp_folder",
        "datasets" => "bigquery_dataset",
        "clusters" if service.starts_with("container.") || segments.contains(&"locations") => {
            "gke_cluster"
        }
        "functions" => "cloud_function",
        "jobs" if service.starts_with("cloudscheduler.") => "cloud_scheduler_job",
        "budgets" => "gcp_billing_budget",
        _ => return None,
    })
}

/// Kind from a Cloud Asset type such as `google.compute.Firewall`.
pub(super) fn kind_from_asset_type(asset_type: &str) -> Option<String> {
    let (service, kind) = asset_type.rsplit_once('.')?;
    if kind.is_empty() {
        return None;
    }
    let prefix = match service {
        "google.compute" => "gce",
        "google.cloud.storage" | "storage.googleapis.com" => "gcs",
        "google.container" => "gke",
        "google.iam" => "iam",
        "google.pubsub" => "pubsub",
        _ => "gcp",
    };
    Some(match (prefix, kind) {
        ("gce", "Firewall") => gcp_types::GCE_FIREWALL.into(),
        ("gcp", "Project") => gcp_types::PROJECT.into(),
        (prefix, kind) => format!("{prefix}_{}", snake_case(kind)),
    })
}

/// Fallback kind for a monitored-resource type we have no entry for: keep GCP's own
/// snake_case name, marked as GCP unless it already carries a product prefix.
pub(super) fn kind_from_unknown_monitored_type(monitored: &str) -> String {
    const PRODUCT_PREFIXES: &[&str] = &["gce_", "gcs_", "gke_", "gcp_", "k8s_", "cloud"];
    if monitored.is_empty() || monitored == "global" || monitored == "audited_resource" {
        gcp_types::RESOURCE.into()
    } else if PRODUCT_PREFIXES.iter().any(|p| monitored.starts_with(p)) {
        monitored.into()
    } else {
        format!("gcp_{}", snake_case(monitored))
    }
}

/// The project in a resource name (`projects/{p}/...`, relative or full); `_` and `-` are
/// GCP's "any project" placeholders, not projects.
pub(super) fn project_from_name(name: &str) -> Option<&str> {
    parent_id(name, "projects").filter(|p| *p != "_" && *p != "-")
}

/// The id after `collection/` in a resource name, e.g. the org number in
/// `organizations/123/sources/4`.
pub(super) fn parent_id<'a>(name: &'a str, collection: &str) -> Option<&'a str> {
    let mut segments = name.split('/');
    while let Some(segment) = segments.next() {
        if segment == collection {
            return segments.next().filter(|id| !id.is_empty());
        }
    }
    None
}

/// A region from a location label or value: zones are trimmed to their region
/// (`us-central1-a` → `us-central1`), `global` means none, case is folded (`US-CENTRAL1`).
pub(super) fn region_from_location(location: &str) -> Option<String> {
    let location = location.trim().to_ascii_lowercase();
    if location.is_empty() || location == "global" || location == "-" {
        return None;
    }
    let parts: Vec<&str> = location.split('-').collect();
    let is_zone = parts.len() >= 3
        && parts
            .last()
            .is_some_and(|z| z.len() == 1 && z.bytes().all(|b| b.is_ascii_lowercase()));
    if is_zone {
        Some(
            location
                .rsplit_once('-')
                .map_or(location.clone(), |(r, _)| r.to_string()),
        )
    } else {
        Some(location)
    }
}

/// The region named inside a resource name (`.../zones/z/...`, `/regions/r/`, `/locations/l/`).
pub(super) fn region_from_name(name: &str) -> Option<String> {
    ["zones", "regions", "locations"]
        .iter()
        .find_map(|c| parent_id(name, c))
        .and_then(region_from_location)
}

/// The short name: the last non-empty segment of a resource name.
pub(super) fn last_segment(name: &str) -> &str {
    name.split('/').rfind(|s| !s.is_empty()).unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_are_trimmed_to_regions() {
        assert_eq!(
            region_from_location("us-central1-a").as_deref(),
            Some("us-central1")
        );
        assert_eq!(
            region_from_location("europe-west1-b").as_deref(),
            Some("europe-west1")
        );
        assert_eq!(
            region_from_location("US-CENTRAL1").as_deref(),
            Some("us-central1")
        );
        assert_eq!(
            region_from_location("asia-northeast1").as_deref(),
            Some("asia-northeast1")
        );
        assert_eq!(region_from_location("us").as_deref(), Some("us"));
        assert_eq!(region_from_location("global"), None);
        assert_eq!(region_from_location(""), None);
    }

    #[test]
    fn kinds_from_names_of_every_shape() {
        assert_eq!(
            kind_from_resource_name("projects/p/global/firewalls/f"),
            Some("gce_firewall")
        );
        assert_eq!(
            kind_from_resource_name("projects/_/buckets/b"),
            Some("gcs_bucket")
        );
        assert_eq!(
            kind_from_resource_name("//storage.googleapis.com/my-bucket"),
            Some("gcs_bucket")
        );
        assert_eq!(
            kind_from_resource_name("projects/p/zones/us-east1-b/instances/vm"),
            Some("gce_instance")
        );
        assert_eq!(
            kind_from_resource_name("//sqladmin.googleapis.com/projects/p/instances/db"),
            Some("cloudsql_instance")
        );
        assert_eq!(
            kind_from_resource_name("//cloudresourcemanager.googleapis.com/projects/123"),
            Some("gcp_project")
        );
        assert_eq!(kind_from_resource_name("just-a-name"), None);
        assert_eq!(kind_from_resource_name(""), None);
        assert_eq!(kind_from_resource_name("//"), None);
        assert_eq!(
            kind_from_asset_type("google.compute.Firewall").as_deref(),
            Some("gce_firewall")
        );
        assert_eq!(
            kind_from_asset_type("google.cloud.storage.Bucket").as_deref(),
            Some("gcs_bucket")
        );
        assert_eq!(
            kind_from_asset_type("google.compute.Subnetwork").as_deref(),
            Some("gce_subnetwork")
        );
        assert_eq!(
            kind_from_asset_type("google.cloud.resourcemanager.Project").as_deref(),
            Some("gcp_project")
        );
        assert_eq!(
            kind_from_unknown_monitored_type("audited_resource"),
            "gcp_resource"
        );
        assert_eq!(
            kind_from_unknown_monitored_type("dataflow_job"),
            "gcp_dataflow_job"
        );
    }

    #[test]
    fn projects_and_short_names() {
        assert_eq!(project_from_name("projects/p1/logs/x"), Some("p1"));
        assert_eq!(project_from_name("projects/_/buckets/b"), None);
        assert_eq!(
            project_from_name("//compute.googleapis.com/projects/cc/regions/r/subnetworks/s"),
            Some("cc")
        );
        assert_eq!(
            parent_id("organizations/42/sources/1", "organizations"),
            Some("42")
        );
        assert_eq!(last_segment("projects/p/roles/CustomRole1"), "CustomRole1");
        assert_eq!(last_segment("//storage.googleapis.com/b/"), "b");
        assert_eq!(
            region_from_name("projects/p/zones/us-east1-b/instances/i").as_deref(),
            Some("us-east1")
        );
    }
}
