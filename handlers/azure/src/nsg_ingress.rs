//! `revoke_open_ingress` for network security groups: close the admin ports (SSH, RDP,
//! WinRM) that inbound `Allow` rules open to the whole internet (`*`, `Internet`,
//! `0.0.0.0/0`, `::/0`). A rule that opens only admin ports is deleted; a rule that also
//! opens other ports keeps those (it is narrowed to them), because closing a web port may cut
//! off legitimate users. When the event names one rule, only that rule is touched.

use async_trait::async_trait;
use escher_core::admin_ports::{format_range, without_admin_ports, PortRange, ADMIN_PORTS};
use escher_core::approvals::Action;
use escher_core::remediate::{
    FixDescription, Mode, Remediation, RemediationError, RemediationReport, RemediationRequest,
    RemediationStatus, RequiredPermission, Verification, VerificationCheck,
};
use escher_core::resource_types::azure as azure_types;
use escher_core::words::join_words;
use escher_runtime::RemoteCallMeter;
use serde_json::{json, Map, Value};

use crate::arm::{ArmClient, ArmOperation, CallLog, HttpMethod};
use crate::ids;
use crate::target::arm_target;

const API_VERSION: &str = "2024-05-01";

pub(crate) const GET_NSG: ArmOperation = ArmOperation {
    id: "NetworkSecurityGroups_Get",
    method: HttpMethod::Get,
    api_version: API_VERSION,
    permission: "Microsoft.Network/networkSecurityGroups/read",
};
pub(crate) const PUT_RULE: ArmOperation = ArmOperation {
    id: "SecurityRules_CreateOrUpdate",
    method: HttpMethod::Put,
    api_version: API_VERSION,
    permission: "Microsoft.Network/networkSecurityGroups/securityRules/write",
};
pub(crate) const DELETE_RULE: ArmOperation = ArmOperation {
    id: "SecurityRules_Delete",
    method: HttpMethod::Delete,
    api_version: API_VERSION,
    permission: "Microsoft.Network/networkSecurityGroups/securityRules/delete",
};

pub(crate) const PERMISSIONS: &[RequiredPermission] = &[
    RequiredPermission {
        action: "Microsoft.Network/networkSecurityGroups/read",
        resource: "subscription",
        why: "revoke_open_ingress reads the group's rules before and after the change",
    },
    RequiredPermission {
        action: "Microsoft.Network/networkSecurityGroups/securityRules/write",
        resource: "subscription",
        why: "revoke_open_ingress narrows a rule that opens admin ports and other ports to the other ports",
    },
    RequiredPermission {
        action: "Microsoft.Network/networkSecurityGroups/securityRules/delete",
        resource: "subscription",
        why: "revoke_open_ingress deletes a rule that opens only admin ports to the internet",
    },
];

const FIX: FixDescription = FixDescription {
    action: Action::RevokeOpenIngress,
    resource_types: &[azure_types::NSG, azure_types::NSG_RULE],
    permissions: PERMISSIONS,
};

/// Source prefixes that mean "anyone on the internet" in an NSG rule.
const WORLD: [&str; 5] = ["*", "internet", "any", "0.0.0.0/0", "::/0"];

/// Protocols that can carry the admin services (ICMP, ESP and AH cannot).
const PORT_PROTOCOLS: [&str; 3] = ["*", "tcp", "udp"];

/// Closes admin ports that network security groups open to the internet.
#[derive(Debug, Clone)]
pub struct NsgOpenIngressRemediation {
    arm: ArmClient,
    meter: Option<RemoteCallMeter>,
}

impl NsgOpenIngressRemediation {
    pub fn new(arm: ArmClient, meter: Option<RemoteCallMeter>) -> Self {
        NsgOpenIngressRemediation { arm, meter }
    }
}

/// A rule's destination ports: `destinationPortRange` or `destinationPortRanges`, each `*`,
/// `N` or `N-M`. `None` when one cannot be read (such a rule is left alone).
pub(crate) fn port_ranges(properties: &Value) -> Option<Vec<PortRange>> {
    let mut texts: Vec<&str> = Vec::new();
    if let Some(one) = properties
        .get("destinationPortRange")
        .and_then(Value::as_str)
    {
        texts.push(one);
    }
    if let Some(many) = properties
        .get("destinationPortRanges")
        .and_then(Value::as_array)
    {
        texts.extend(many.iter().filter_map(Value::as_str));
    }
    texts
        .iter()
        .map(|t| match t.trim() {
            "*" => Some((0, 65535)),
            t => match t.split_once('-') {
                Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok()?)),
                None => t.parse().ok().map(|p| (p, p)),
            },
        })
        .collect()
}

fn lower(v: &Value) -> Option<String> {
    v.as_str().map(str::to_ascii_lowercase)
}

/// A rule's sources, lowercase: `sourceAddressPrefix` and `sourceAddressPrefixes`.
fn sources(properties: &Value) -> Vec<String> {
    let mut sources: Vec<String> = properties
        .get("sourceAddressPrefix")
        .and_then(lower)
        .into_iter()
        .collect();
    if let Some(many) = properties
        .get("sourceAddressPrefixes")
        .and_then(Value::as_array)
    {
        sources.extend(many.iter().filter_map(lower));
    }
    sources
}

/// A rule that opens admin ports to the internet, with what it opens.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OpenRule {
    pub name: String,
    pub properties: Value,
    /// The admin services it exposes (`SSH (22)`).
    pub exposed: Vec<String>,
    /// The ports it should keep; empty: delete the rule.
    pub keep: Vec<PortRange>,
}

/// The rules of `nsg` (its `properties.securityRules`) that open admin ports to the
/// internet; only `only_rule` when the event names one.
pub(crate) fn open_rules(nsg: &Value, only_rule: Option<&str>) -> Vec<OpenRule> {
    let rules = nsg
        .pointer("/properties/securityRules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    rules
        .into_iter()
        .filter_map(|rule| {
            let name = rule.get("name").and_then(Value::as_str)?.to_string();
            if only_rule.is_some_and(|r| !r.eq_ignore_ascii_case(&name)) {
                return None;
            }
            let p = rule.get("properties")?.clone();
            let is = |key: &str, want: &str| p.get(key).and_then(lower).is_some_and(|v| v == want);
            if !is("access", "allow") || !is("direction", "inbound") {
                return None;
            }
            let protocol = p.get("protocol").and_then(lower).unwrap_or_default();
            if !PORT_PROTOCOLS.contains(&protocol.as_str()) {
                return None;
            }
            if !sources(&p).iter().any(|s| WORLD.contains(&s.as_str())) {
                return None;
            }
            let ranges = port_ranges(&p)?;
            let exposed: Vec<String> = ADMIN_PORTS
                .iter()
                .filter(|(port, _)| ranges.iter().any(|(a, b)| a <= port && port <= b))
                .map(|(port, service)| format!("{service} ({port})"))
                .collect();
            if exposed.is_empty() {
                return None;
            }
            Some(OpenRule {
                name,
                keep: without_admin_ports(&ranges),
                properties: p,
                exposed,
            })
        })
        .collect()
}

/// The rule as PUT back open only to `networks` instead of the internet (read-only fields
/// out): the approval's `keep_networks`.
fn kept_for(properties: &Value, networks: &[String]) -> Value {
    let mut p: Map<String, Value> = properties.as_object().cloned().unwrap_or_default();
    p.remove("provisioningState");
    p.remove("sourceAddressPrefix");
    p.insert(
        "sourceAddressPrefixes".into(),
        Value::Array(networks.iter().cloned().map(Value::String).collect()),
    );
    json!({ "properties": p })
}

/// The approval's networks of the family the rule's internet source is (`::/0` is IPv6).
fn networks_for(rule: &OpenRule, keep: &[String]) -> Vec<String> {
    let ipv6_only = sources(&rule.properties).iter().all(|s| s == "::/0");
    keep.iter()
        .filter(|n| n.contains(':') == ipv6_only)
        .cloned()
        .collect()
}

/// The rule as PUT back with only `keep` as its destination ports (read-only fields out).
fn narrowed(properties: &Value, keep: &[PortRange]) -> Value {
    let mut p: Map<String, Value> = properties.as_object().cloned().unwrap_or_default();
    p.remove("provisioningState");
    p.remove("destinationPortRange");
    p.insert(
        "destinationPortRanges".into(),
        Value::Array(
            keep.iter()
                .map(|r| Value::String(format_range(*r)))
                .collect(),
        ),
    );
    json!({ "properties": p })
}

fn describe(rule: &OpenRule) -> String {
    let action = if rule.keep.is_empty() {
        "delete it".to_string()
    } else {
        format!(
            "keep only ports {}",
            rule.keep
                .iter()
                .map(|r| format_range(*r))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    format!(
        "rule {} opens {} to the internet ({action})",
        rule.name,
        join_words(&rule.exposed)
    )
}

/// The `az` command that puts a rule back as it was.
fn recreate_command(nsg: &str, rule: &OpenRule) -> String {
    let p = &rule.properties;
    let text = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("*").to_string();
    let list = |one: &str, many: &str| -> String {
        match p.get(many).and_then(Value::as_array) {
            Some(items) if !items.is_empty() => items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" "),
            _ => text(one),
        }
    };
    format!(
        "az network nsg rule create -g {} --nsg-name {} -n {} --priority {} --direction Inbound --access Allow --protocol {} --source-address-prefixes {} --source-port-ranges {} --destination-address-prefixes {} --destination-port-ranges {}",
        ids::value_after(nsg, "resourceGroups").unwrap_or("<resource group>"),
        ids::name(nsg),
        rule.name,
        p.get("priority").and_then(Value::as_i64).unwrap_or_default(),
        text("protocol"),
        list("sourceAddressPrefix", "sourceAddressPrefixes"),
        list("sourcePortRange", "sourcePortRanges"),
        list("destinationAddressPrefix", "destinationAddressPrefixes"),
        list("destinationPortRange", "destinationPortRanges"),
    )
}

fn checks(open: &[OpenRule]) -> Vec<VerificationCheck> {
    vec![VerificationCheck::new(
        "admin ports open to the internet",
        "none",
        if open.is_empty() {
            "none".to_string()
        } else {
            join_words(&open.iter().map(describe).collect::<Vec<_>>())
        },
        open.is_empty(),
    )]
}

impl NsgOpenIngressRemediation {
    async fn open(
        &self,
        request: &RemediationRequest<'_>,
        log: &mut CallLog,
    ) -> Result<(String, Vec<OpenRule>), RemediationError> {
        let nsg = arm_target(request, "networkSecurityGroups")?;
        let only_rule = ids::through(&request.event.resource.id, "securityRules")
            .and_then(|rule| ids::value_after(&rule, "securityRules").map(str::to_string));
        let group = log
            .call(&self.arm, &GET_NSG, &nsg, &[], None)
            .await
            .map_err(|e| log.fail(e))?;
        let open = open_rules(&group, only_rule.as_deref());
        Ok((nsg, open))
    }
}

#[async_trait]
impl Remediation for NsgOpenIngressRemediation {
    fn description(&self) -> &'static FixDescription {
        &FIX
    }

    async fn remediate(
        &self,
        request: &RemediationRequest<'_>,
    ) -> Result<RemediationReport, RemediationError> {
        let keep_networks = request.conditions.keep_networks().map_err(|why| {
            RemediationError::of_call(
                false,
                "keep_networks",
                request.event.resource.id.clone(),
                format!("the approval's {why}; correct the approval"),
                Vec::new(),
            )
        })?;
        let mut log = CallLog::metered(self.meter.as_ref());
        let (nsg, open) = self.open(request, &mut log).await?;
        let name = ids::name(&nsg);
        if open.is_empty() {
            return Ok(RemediationReport::new(
                request,
                RemediationStatus::AlreadyCompliant,
                format!("Network security group {name} opens no admin port to the internet; nothing was changed."),
            )
            .with_calls(log.into_calls())
            .with_verification(Verification::from_checks(checks(&open))));
        }
        let findings: Vec<String> = open.iter().map(describe).collect();
        if request.mode == Mode::DryRun {
            return Ok(RemediationReport::new(
                request,
                RemediationStatus::WouldRemediate,
                format!(
                    "Would close admin ports on network security group {name}: {}.",
                    join_words(&findings)
                ),
            )
            .with_calls(log.into_calls()));
        }
        let mut steps = Vec::new();
        let mut next_steps = Vec::new();
        for rule in &open {
            let path = format!("{nsg}/securityRules/{}", rule.name);
            let networks = networks_for(rule, &keep_networks);
            if rule.keep.is_empty() && !networks.is_empty() {
                // An admin-only rule: the kept networks keep it, the internet loses it.
                let body = kept_for(&rule.properties, &networks);
                log.call(&self.arm, &PUT_RULE, &path, &[], Some(&body))
                    .await
                    .map_err(|e| log.fail(e))?;
                steps.push(format!(
                    "Narrowed rule {} to {} (it opened {} to the internet)",
                    rule.name,
                    networks.join(", "),
                    join_words(&rule.exposed)
                ));
                continue;
            }
            if !networks.is_empty() {
                next_steps.push(format!(
                    "Rule {} also serves other ports, so its admin ports were closed rather than narrowed; if {} need {}, add a rule for them",
                    rule.name,
                    networks.join(", "),
                    join_words(&rule.exposed)
                ));
            }
            if rule.keep.is_empty() {
                log.call(&self.arm, &DELETE_RULE, &path, &[], None)
                    .await
                    .map_err(|e| log.fail(e))?;
                steps.push(format!(
                    "Deleted rule {} (it opened {} to the internet)",
                    rule.name,
                    join_words(&rule.exposed)
                ));
            } else {
                let body = narrowed(&rule.properties, &rule.keep);
                log.call(&self.arm, &PUT_RULE, &path, &[], Some(&body))
                    .await
                    .map_err(|e| log.fail(e))?;
                steps.push(format!(
                    "Narrowed rule {} to ports {} (closed {})",
                    rule.name,
                    rule.keep
                        .iter()
                        .map(|r| format_range(*r))
                        .collect::<Vec<_>>()
                        .join(", "),
                    join_words(&rule.exposed)
                ));
            }
        }
        let (_, after) = self.open(request, &mut log).await?;
        let verification = Verification::from_checks(checks(&after));
        let status = if verification.passed {
            RemediationStatus::Remediated
        } else {
            RemediationStatus::Skipped
        };
        let summary = if verification.passed {
            format!(
                "Closed admin ports on network security group {name}: {}.",
                join_words(&findings)
            )
        } else {
            format!(
                "Changed network security group {name}, but admin ports still read as open: {}.",
                verification.failed_checks()
            )
        };
        let undo = open
            .iter()
            .map(|rule| recreate_command(&nsg, rule))
            .collect::<Vec<_>>()
            .join("; ");
        Ok(RemediationReport::new(request, status, summary)
            .with_steps(steps)
            .with_calls(log.into_calls())
            .with_verification(verification)
            .with_next_steps(next_steps)
            .with_undo(format!("To open them again: {undo}")))
    }

    async fn verify(
        &self,
        request: &RemediationRequest<'_>,
    ) -> Result<Verification, RemediationError> {
        let mut log = CallLog::metered(self.meter.as_ref());
        let (_, open) = self.open(request, &mut log).await?;
        Ok(Verification::from_checks(checks(&open)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nsg(rules: Value) -> Value {
        json!({"properties": {"securityRules": rules}})
    }

    fn rule(name: &str, source: &str, ports: Value, access: &str) -> Value {
        let mut properties = json!({
            "protocol": "Tcp", "sourcePortRange": "*", "sourceAddressPrefix": source,
            "destinationAddressPrefix": "*", "access": access, "priority": 100,
            "direction": "Inbound", "provisioningState": "Succeeded"
        });
        match ports {
            Value::Array(_) => properties["destinationPortRanges"] = ports,
            one => properties["destinationPortRange"] = one,
        }
        json!({"name": name, "properties": properties})
    }

    #[test]
    fn only_internet_open_allow_rules_on_admin_ports_count() {
        let group = nsg(json!([
            rule("ssh-world", "*", json!("22"), "Allow"),
            rule("rdp-internet", "Internet", json!("3389"), "Allow"),
            rule("ssh-office", "203.0.113.0/24", json!("22"), "Allow"),
            rule("https-world", "0.0.0.0/0", json!("443"), "Allow"),
            rule("ssh-deny", "*", json!("22"), "Deny"),
        ]));
        let open = open_rules(&group, None);
        let names: Vec<&str> = open.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["ssh-world", "rdp-internet"]);
        assert!(
            open.iter().all(|r| r.keep.is_empty()),
            "admin-only rules are deleted"
        );
        assert_eq!(open_rules(&group, Some("RDP-INTERNET")).len(), 1);
    }

    #[test]
    fn a_kept_network_replaces_the_internet_as_the_source() {
        let group = nsg(json!([rule("ssh", "Internet", json!("22"), "Allow")]));
        let open = open_rules(&group, None);
        let keep = vec!["203.0.113.0/24".to_string(), "2001:db8::/48".to_string()];
        let networks = networks_for(&open[0], &keep);
        assert_eq!(
            networks,
            ["203.0.113.0/24"],
            "an IPv4 rule keeps the IPv4 network"
        );
        let body = kept_for(&open[0].properties, &networks);
        assert_eq!(
            body["properties"]["sourceAddressPrefixes"],
            json!(["203.0.113.0/24"])
        );
        assert!(body["properties"].get("sourceAddressPrefix").is_none());
        assert_eq!(body["properties"]["destinationPortRange"], "22");
    }

    #[test]
    fn a_rule_that_also_opens_other_ports_keeps_them() {
        let group = nsg(json!([rule(
            "mixed",
            "*",
            json!(["22", "443", "3000-3400"]),
            "Allow"
        )]));
        let open = open_rules(&group, None);
        assert_eq!(open[0].exposed, ["SSH (22)", "RDP (3389)"]);
        assert_eq!(open[0].keep, [(443, 443), (3000, 3388), (3390, 3400)]);
        let body = narrowed(&open[0].properties, &open[0].keep);
        assert_eq!(
            body["properties"]["destinationPortRanges"],
            json!(["443", "3000-3388", "3390-3400"])
        );
        assert!(body["properties"].get("provisioningState").is_none());
        assert!(body["properties"].get("destinationPortRange").is_none());
    }

    #[test]
    fn all_ports_keeps_everything_but_the_admin_ports() {
        assert_eq!(
            without_admin_ports(&[(0, 65535)]),
            [(0, 21), (23, 3388), (3390, 5984), (5987, 65535)]
        );
        assert_eq!(port_ranges(&json!({"destinationPortRange": "x"})), None);
    }

    #[test]
    fn the_undo_recreates_the_rule_as_it_was() {
        let group = nsg(json!([rule("rdp", "Internet", json!("3389"), "Allow")]));
        let open = open_rules(&group, None);
        let text = recreate_command(
            "/subscriptions/s/resourceGroups/app/providers/Microsoft.Network/networkSecurityGroups/web",
            &open[0],
        );
        assert!(
            text.starts_with(
                "az network nsg rule create -g app --nsg-name web -n rdp --priority 100"
            ),
            "{text}"
        );
        assert!(
            text.contains("--source-address-prefixes Internet"),
            "{text}"
        );
        assert!(text.contains("--destination-port-ranges 3389"), "{text}");
    }
}
