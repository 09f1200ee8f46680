//! [`GcpCloud`]: what the pipeline asks of Google Cloud, the fixes and a resource's labels
//! (Google's tags), read from the resource's own GET.

use std::collections::BTreeMap;

use async_trait::async_trait;
use escher_core::fixes::FixRegistry;
use escher_core::pipeline::CloudOperations;
use escher_core::remediate::{RemediationError, RequiredPermission};
use escher_core::resource_types::gcp as gcp_types;
use escher_core::UnifiedEvent;
use escher_runtime::RemoteCallMeter;
use serde_json::Value;

use crate::rest::{CallLog, GcpClient, GcpOperation};
use crate::{bucket_private, disk_encryption, gcp_fixes, idle_instance, ids};

/// The reads behind labels, for the role.
pub(crate) const TAG_PERMISSIONS: &[RequiredPermission] = &[
    RequiredPermission {
        action: "storage.buckets.get",
        resource: "project",
        why: "reads a bucket's labels to enrich its alerts",
    },
    RequiredPermission {
        action: "compute.instances.get",
        resource: "project",
        why: "reads a VM's labels to enrich its alerts",
    },
    RequiredPermission {
        action: "compute.disks.get",
        resource: "project",
        why: "reads a persistent disk's labels to enrich its alerts",
    },
];

/// Google Cloud as the pipeline sees it.
#[derive(Debug, Clone)]
pub struct GcpCloud {
    fixes: FixRegistry,
    client: GcpClient,
    meter: Option<RemoteCallMeter>,
}

impl GcpCloud {
    pub fn new(client: GcpClient, meter: Option<RemoteCallMeter>) -> Self {
        GcpCloud {
            fixes: gcp_fixes(client.clone(), meter.clone()),
            client,
            meter,
        }
    }
}

/// The GET that returns a resource of this kind with its labels. Firewall rules have none.
fn label_read(kind: &str, id: &str) -> Option<(&'static GcpOperation, String)> {
    let name = ids::relative(id);
    let at = |c: &str| ids::value_after(name, c);
    match kind {
        k if k == gcp_types::GCS_BUCKET => {
            let bucket = at("buckets").or(Some(name).filter(|n| !n.contains('/')))?;
            Some((&bucket_private::GET_BUCKET, format!("b/{bucket}")))
        }
        k if k == gcp_types::GCE_INSTANCE => Some((
            &idle_instance::GET_INSTANCE,
            format!(
                "projects/{}/zones/{}/instances/{}",
                at("projects")?,
                at("zones")?,
                at("instances")?
            ),
        )),
        k if k == gcp_types::GCE_DISK => Some((
            &disk_encryption::GET_DISK,
            format!(
                "projects/{}/zones/{}/disks/{}",
                at("projects")?,
                at("zones")?,
                at("disks")?
            ),
        )),
        _ => None,
    }
}

#[async_trait]
impl CloudOperations for GcpCloud {
    fn fixes(&self) -> &FixRegistry {
        &self.fixes
    }

    async fn resource_tags(
        &self,
        event: &UnifiedEvent,
    ) -> Result<Option<BTreeMap<String, String>>, RemediationError> {
        let Some((operation, path)) = label_read(&event.resource.kind, &event.resource.id) else {
            return Ok(None);
        };
        let mut log = CallLog::metered(self.meter.as_ref());
        let resource = match log.call(&self.client, operation, &path, &[], None).await {
            Ok(resource) => resource,
            // Deleted since the alert: no labels to read, and nothing to enrich.
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(log.fail(e)),
        };
        let labels = resource
            .get("labels")
            .and_then(Value::as_object)
            .map(|l| {
                l.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Some(labels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_read_where_the_resource_keeps_them() {
        let (op, path) = label_read(gcp_types::GCS_BUCKET, "projects/_/buckets/crm-exports-eu")
            .expect("a bucket");
        assert_eq!(
            (op.id, path.as_str()),
            ("storage.buckets.get", "b/crm-exports-eu")
        );
        let (op, path) = label_read(
            gcp_types::GCE_INSTANCE,
            "//compute.googleapis.com/projects/shop/zones/us-central1-a/instances/api-7",
        )
        .expect("a VM");
        assert_eq!(op.id, "compute.instances.get");
        assert_eq!(path, "projects/shop/zones/us-central1-a/instances/api-7");
        assert!(label_read(gcp_types::GCE_FIREWALL, "projects/shop/global/firewalls/f").is_none());
    }
}
