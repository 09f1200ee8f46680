//! The `open_admin_port` check: network security groups with an admin port open to the
//! internet, read as `revoke_open_ingress` reads them.

use async_trait::async_trait;
use escher_core::approvals::Action;
use escher_core::resource_types::azure as azure_types;
use escher_core::scan::{CheckScope, Finding, ScanCheck, ScanContext, ScanError};
use escher_core::words::join_words;
use escher_core::{CloudProvider, EventType};
use serde_json::json;

use super::{resource_of, AzureScan, LIST_NSGS};
use crate::nsg_ingress::open_rules;

pub(super) struct OpenAdminPorts(pub AzureScan);

#[async_trait]
impl ScanCheck for OpenAdminPorts {
    fn id(&self) -> &'static str {
        "open_admin_port"
    }

    fn cloud(&self) -> CloudProvider {
        CloudProvider::Azure
    }

    fn scope(&self) -> CheckScope {
        CheckScope::Account
    }

    async fn run(&self, _: &str, scan: &ScanContext) -> Result<Vec<Finding>, ScanError> {
        let groups = self
            .0
            .list(&LIST_NSGS, "Microsoft.Network/networkSecurityGroups")
            .await?;
        let mut findings = Vec::new();
        for group in &groups {
            let open = open_rules(group, None);
            if open.is_empty() {
                continue;
            }
            let exposed: Vec<String> = open
                .iter()
                .flat_map(|r| r.exposed.iter().cloned())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let rules: Vec<&str> = open.iter().map(|r| r.name.as_str()).collect();
            let resource = resource_of(
                azure_types::NSG,
                group,
                json!({"open_rules": rules, "exposed": exposed}),
            );
            let mut draft = self.0.draft(
                self.id(),
                group,
                EventType::FirewallOpen,
                resource.clone(),
                format!(
                    "Network security group {} opens {} to the internet (rules {})",
                    resource.name,
                    join_words(&exposed),
                    rules.join(", ")
                ),
            );
            draft.action = Some(Action::RevokeOpenIngress);
            draft.questions = vec![
                "Who connects on these ports, and from which addresses?".into(),
                "Could they use Azure Bastion or a VPN instead?".into(),
            ];
            findings.push(draft.finish(scan));
        }
        Ok(findings)
    }
}
