//! The `open_admin_port` check: security groups with an admin or database port open to the world, read as `revoke_open_ingress` reads them.

use std::collections::BTreeSet;

use async_trait::async_trait;
use escher_core::approvals::Action;
use escher_core::resource_types::aws as aws_types;
use escher_core::scan::{Finding, ScanError};
use escher_core::EventType;
use serde_json::{json, Value};

use super::*;
use crate::calls::classify;
use crate::open_ingress::rules_of;

/// Security groups with an admin or database port open to 0.0.0.0/0 or ::/0.
pub(super) struct OpenAdminPorts;

#[async_trait]
impl AwsCheck for OpenAdminPorts {
    const ID: &'static str = "open_admin_port";

    async fn find(&self, at: InRegion<'_>) -> Result<Vec<Finding>, ScanError> {
        let (aws, clients, region, scan) = at.parts();
        let mut pages = clients
            .ec2()
            .describe_security_groups()
            .set_max_results(aws.page_size)
            .into_paginator()
            .items()
            .send();
        let ports = &scan.thresholds.admin_ports;
        let mut findings = Vec::new();
        while let Some(group) = pages.next().await {
            let group =
                group.map_err(|e| scan_error(classify("DescribeSecurityGroups", region, &e)))?;
            let Some(group_id) = group.group_id() else {
                continue;
            };
            let open: Vec<_> = rules_of(group.ip_permissions())
                .into_iter()
                .filter(|rule| rule.is_world_open())
                .filter_map(|rule| {
                    let exposed: Vec<u16> = ports
                        .iter()
                        .copied()
                        .filter(|p| covers(&rule, *p))
                        .collect();
                    (!exposed.is_empty()).then_some((rule, exposed))
                })
                .collect();
            if open.is_empty() {
                continue;
            }
            let exposed: BTreeSet<u16> = open.iter().flat_map(|(_, p)| p.clone()).collect();
            // The shape the normalizers write and `revoke_open_ingress` reads, so an approved
            // fix revokes exactly these rules.
            let permissions: Vec<Value> = open
                .iter()
                .map(|(rule, _)| {
                    json!({
                        "protocol": rule.protocol,
                        "from_port": rule.from_port,
                        "to_port": rule.to_port,
                        "cidrs": [rule.cidr],
                    })
                })
                .collect();
            let words: Vec<String> = open.iter().map(|(rule, _)| rule.words()).collect();
            let name = group.group_name().unwrap_or(group_id).to_string();
            let mut resource = ec2_resource(
                aws_types::SECURITY_GROUP,
                aws.arn(region, "security-group", group_id),
                group_id,
                group.tags(),
                json!({
                    "group_id": group_id,
                    "vpc_id": group.vpc_id(),
                    "open_permissions": permissions,
                    "admin_ports": exposed,
                }),
            );
            // A group is known by its group name, not by a Name tag.
            resource.name = name.clone();
            let ports_text: Vec<String> = exposed.iter().map(u16::to_string).collect();
            let mut draft = aws.draft(
                Self::ID,
                region,
                EventType::FirewallOpen,
                resource,
                format!(
                    "Security group {name} ({group_id}) opens port {} to the internet: {}",
                    ports_text.join(", "),
                    words.join("; ")
                ),
            );
            draft.action = Some(Action::RevokeOpenIngress);
            draft.questions = vec![
                "Who connects on these ports, and from which addresses?".into(),
                "Could they use Session Manager or a VPN instead?".into(),
            ];
            findings.push(draft.finish(scan));
        }
        Ok(findings)
    }
}

fn covers(rule: &crate::open_ingress::Rule, port: u16) -> bool {
    let port = i32::from(port);
    match (rule.protocol.as_str(), rule.from_port, rule.to_port) {
        ("-1", _, _) => true,
        ("tcp" | "udp", Some(from), Some(to)) => from <= port && port <= to,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(protocol: &str, from: Option<i32>, to: Option<i32>) -> crate::open_ingress::Rule {
        crate::open_ingress::Rule {
            protocol: protocol.into(),
            from_port: from,
            to_port: to,
            cidr: "0.0.0.0/0".into(),
            description: None,
        }
    }

    #[test]
    fn a_rule_covers_the_ports_in_its_range_and_all_traffic_covers_every_port() {
        assert!(covers(&rule("tcp", Some(22), Some(22)), 22));
        assert!(covers(&rule("tcp", Some(0), Some(65535)), 3389));
        assert!(!covers(&rule("tcp", Some(80), Some(443)), 22));
        assert!(covers(&rule("-1", None, None), 5432));
        assert!(!covers(&rule("icmp", Some(-1), Some(-1)), 22));
    }
}
