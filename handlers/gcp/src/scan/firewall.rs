//! The `open_admin_port` check: enabled ingress firewall rules that open an admin port (SSH,
//! RDP, WinRM: core's `admin_ports`) to `0.0.0.0/0` or `::/0`, read as `revoke_open_ingress`
//! reads them.

use async_trait::async_trait;
use escher_core::approvals::Action;
use escher_core::resource_types::gcp as gcp_types;
use escher_core::scan::{CheckScope, Finding, ScanCheck, ScanContext, ScanError};
use escher_core::words::join_words;
use escher_core::{CloudProvider, EventType};
use serde_json::json;

use super::{compute_name, resource_of, scan_error, GcpScan, GLOBAL, LIST_FIREWALLS};
use crate::firewall_ingress::open_rule;
use crate::rest::CallLog;

pub(super) struct OpenAdminPorts(pub GcpScan);

#[async_trait]
impl ScanCheck for OpenAdminPorts {
    fn id(&self) -> &'static str {
        "open_admin_port"
    }

    fn cloud(&self) -> CloudProvider {
        CloudProvider::Gcp
    }

    fn scope(&self) -> CheckScope {
        CheckScope::Account
    }

    async fn run(&self, _: &str, scan: &ScanContext) -> Result<Vec<Finding>, ScanError> {
        let scan_of = &self.0;
        let mut log = CallLog::metered(scan_of.meter.as_ref());
        let rules = log
            .list(
                &scan_of.client,
                &LIST_FIREWALLS,
                &format!("projects/{}/global/firewalls", scan_of.project),
                &[],
                "items",
            )
            .await
            .map_err(scan_error)?;
        let mut findings = Vec::new();
        for rule in &rules {
            let Some(open) = open_rule(rule) else {
                continue;
            };
            let Some(id) = compute_name(rule) else {
                continue;
            };
            let resource = resource_of(
                gcp_types::GCE_FIREWALL,
                id,
                rule,
                json!({"exposed": open.exposed, "source_ranges": open.source_ranges}),
            );
            let mut draft = scan_of.draft(
                self.id(),
                GLOBAL,
                EventType::FirewallOpen,
                resource.clone(),
                format!(
                    "Firewall rule {} opens {} to the internet ({})",
                    resource.name,
                    join_words(&open.exposed),
                    open.source_ranges.join(", ")
                ),
            );
            draft.action = Some(Action::RevokeOpenIngress);
            draft.questions = vec![
                "Who connects on these ports, and from which addresses?".into(),
                "Could they use IAP TCP forwarding or a VPN instead?".into(),
            ];
            findings.push(draft.finish(scan));
        }
        Ok(findings)
    }
}
