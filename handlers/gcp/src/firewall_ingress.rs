//! `revoke_open_ingress` for VPC firewall rules: close the admin ports (SSH, RDP, WinRM) that an
//! enabled ingress `allow` rule opens to the whole internet (`0.0.0.0/0`, `::/0`), as the
//! Azure fix does for security rules. A rule that opens only admin ports is disabled (kept,
//! so it can be switched back on), or narrowed to the approval's `keep_networks`; a rule
//! that also opens other ports keeps those, because closing a web port may cut off
//! legitimate users. Compute Engine applies a change as a long-running operation, which is
//! waited for before the rule is read back.

use async_trait::async_trait;
use escher_core::admin_ports::{format_range, without_admin_ports, PortRange, ADMIN_PORTS};
use escher_core::approvals::Action;
use escher_core::remediate::{
    FixDescription, Mode, Remediation, RemediationError, RemediationReport, RemediationRequest,
    RemediationStatus, RequiredPermission, Verification, VerificationCheck,
};
use escher_core::resource_types::gcp as gcp_types;
use escher_core::words::join_words;
use escher_runtime::RemoteCallMeter;
use serde_json::{json, Value};

use crate::rest::{CallLog, GcpClient, GcpOperation, HttpMethod, Service};
use crate::target::{self, Global};

pub(crate) const GET_FIREWALL: GcpOperation = GcpOperation {
    id: "compute.firewalls.get",
    service: Service::Compute,
    method: HttpMethod::Get,
    permission: "compute.firewalls.get",
    mutating: false,
    long_running: false,
};
pub(crate) const PATCH_FIREWALL: GcpOperation = GcpOperation {
    id: "compute.firewalls.patch",
    service: Service::Compute,
    method: HttpMethod::Patch,
    permission: "compute.firewalls.update",
    mutating: true,
    long_running: true,
};

pub(crate) const PERMISSIONS: &[RequiredPermission] = &[
    RequiredPermission {
        action: "compute.firewalls.get",
        resource: "project",
        why: "revoke_open_ingress reads the firewall rule before and after the change",
    },
    RequiredPermission {
        action: "compute.firewalls.update",
        resource: "project",
        why: "revoke_open_ingress disables a rule that opens admin ports to the internet, or narrows it to its other ports or the approved networks",
    },
    RequiredPermission {
        action: "compute.networks.updatePolicy",
        resource: "project",
        why: "revoke_open_ingress: Compute Engine asks for it on the rule's network when a firewall rule changes",
    },
    RequiredPermission {
        action: "compute.globalOperations.get",
        resource: "project",
        why: "revoke_open_ingress waits for the firewall change to be applied",
    },
];

const FIX: FixDescription = FixDescription {
    action: Action::RevokeOpenIngress,
    resource_types: &[gcp_types::GCE_FIREWALL],
    permissions: PERMISSIONS,
};

/// Source ranges that mean "anyone on the internet".
const WORLD: [&str; 2] = ["0.0.0.0/0", "::/0"];

/// Protocols (by name or number) whose rules carry ports, and so admin services.
const PORT_PROTOCOLS: [&str; 6] = ["tcp", "udp", "sctp", "6", "17", "132"];

/// Closes admin ports that firewall rules open to the internet.
#[derive(Debug, Clone)]
pub struct FirewallOpenIngressRemediation {
    client: GcpClient,
    meter: Option<RemoteCallMeter>,
}

impl FirewallOpenIngressRemediation {
    pub fn new(client: GcpClient, meter: Option<RemoteCallMeter>) -> Self {
        FirewallOpenIngressRemediation { client, meter }
    }
}

fn parse_range(text: &str) -> Option<PortRange> {
    match text.trim().split_once('-') {
        Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok()?)),
        None => text.trim().parse().ok().map(|p| (p, p)),
    }
}

/// A rule that opens admin ports to the internet, and what it should keep.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OpenRule {
    /// The admin services it exposes (`SSH (22)`).
    pub(crate) exposed: Vec<String>,
    /// Its `allowed` entries without the admin ports; empty: nothing else is open.
    keep: Vec<Value>,
    /// Whether an `all` entry was split into TCP and UDP (other protocols then close).
    dropped_other_protocols: bool,
    allowed: Value,
    pub(crate) source_ranges: Vec<String>,
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

fn entry(protocol: &str, ranges: &[PortRange]) -> Value {
    json!({
        "IPProtocol": protocol,
        "ports": ranges.iter().map(|r| format_range(*r)).collect::<Vec<_>>()
    })
}

/// The rule's exposure, when it is an enabled ingress allow rule open to the internet on an
/// admin port. `None` for anything else (a rule whose ports cannot be read is left alone).
pub(crate) fn open_rule(firewall: &Value) -> Option<OpenRule> {
    let direction = firewall
        .get("direction")
        .and_then(Value::as_str)
        .unwrap_or("INGRESS");
    if direction != "INGRESS" || firewall.get("disabled").and_then(Value::as_bool) == Some(true) {
        return None;
    }
    let source_ranges = strings(firewall.get("sourceRanges"));
    if !source_ranges.iter().any(|s| WORLD.contains(&s.as_str())) {
        return None;
    }
    let allowed = firewall.get("allowed").and_then(Value::as_array)?;
    let mut exposed: Vec<String> = Vec::new();
    let mut keep = Vec::new();
    let mut dropped_other_protocols = false;
    for item in allowed {
        let protocol = item
            .get("IPProtocol")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_ascii_lowercase();
        let all = protocol == "all";
        if !all && !PORT_PROTOCOLS.contains(&protocol.as_str()) {
            keep.push(item.clone());
            continue;
        }
        let ports = strings(item.get("ports"));
        let ranges: Vec<PortRange> = if ports.is_empty() {
            vec![(0, 65535)]
        } else {
            ports
                .iter()
                .map(|p| parse_range(p))
                .collect::<Option<Vec<_>>>()?
        };
        let hits: Vec<String> = ADMIN_PORTS
            .iter()
            .filter(|(port, _)| ranges.iter().any(|(a, b)| a <= port && port <= b))
            .map(|(port, service)| format!("{service} ({port})"))
            .collect();
        if hits.is_empty() {
            keep.push(item.clone());
            continue;
        }
        for hit in hits {
            if !exposed.contains(&hit) {
                exposed.push(hit);
            }
        }
        let left = without_admin_ports(&ranges);
        if left.is_empty() {
            continue;
        }
        if all {
            // `all` carries no ports: its ports survive as TCP and UDP entries.
            dropped_other_protocols = true;
            keep.push(entry("tcp", &left));
            keep.push(entry("udp", &left));
        } else {
            keep.push(entry(&protocol, &left));
        }
    }
    if exposed.is_empty() {
        return None;
    }
    Some(OpenRule {
        exposed,
        keep,
        dropped_other_protocols,
        allowed: Value::Array(allowed.clone()),
        source_ranges,
    })
}

/// The rule's sources with the internet replaced by the approval's networks of the same
/// family (`::/0` is IPv6); empty when no approved network fits.
fn kept_sources(rule: &OpenRule, keep: &[String]) -> Vec<String> {
    let v4 = rule.source_ranges.iter().any(|s| s == "0.0.0.0/0");
    let v6 = rule.source_ranges.iter().any(|s| s == "::/0");
    let networks: Vec<String> = keep
        .iter()
        .filter(|n| if n.contains(':') { v6 } else { v4 })
        .cloned()
        .collect();
    if networks.is_empty() {
        return networks;
    }
    rule.source_ranges
        .iter()
        .filter(|s| !WORLD.contains(&s.as_str()))
        .cloned()
        .chain(networks)
        .collect()
}

fn allowed_words(allowed: &Value) -> String {
    allowed
        .as_array()
        .into_iter()
        .flatten()
        .map(|item| {
            let protocol = item
                .get("IPProtocol")
                .and_then(Value::as_str)
                .unwrap_or("?");
            let ports = strings(item.get("ports"));
            if ports.is_empty() {
                protocol.to_string()
            } else {
                format!("{protocol}:{}", ports.join(","))
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn checks(firewall: &Value) -> Vec<VerificationCheck> {
    let open = open_rule(firewall);
    vec![VerificationCheck::new(
        "admin ports open to the internet",
        "none",
        match &open {
            None => "none".to_string(),
            Some(rule) => join_words(&rule.exposed),
        },
        open.is_none(),
    )]
}

impl FirewallOpenIngressRemediation {
    async fn read(&self, rule: &Global, log: &mut CallLog) -> Result<Value, RemediationError> {
        log.call(
            &self.client,
            &GET_FIREWALL,
            &rule.path("firewalls"),
            &[],
            None,
        )
        .await
        .map_err(|e| log.fail(e))
    }
}

#[async_trait]
impl Remediation for FirewallOpenIngressRemediation {
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
        let rule = target::global(request, "firewalls")?;
        let name = rule.name.clone();
        let mut log = CallLog::metered(self.meter.as_ref());
        let before = self.read(&rule, &mut log).await?;
        let Some(open) = open_rule(&before) else {
            return Ok(RemediationReport::new(
                request,
                RemediationStatus::AlreadyCompliant,
                format!("Firewall rule {name} opens no admin port to the internet; nothing was changed."),
            )
            .with_calls(log.into_calls())
            .with_verification(Verification::from_checks(checks(&before))));
        };
        let exposed = join_words(&open.exposed);
        let sources = kept_sources(&open, &keep_networks);
        // (the PATCH body, what it does in words, the gcloud flag that puts it back)
        let (body, change, undo) = if !open.keep.is_empty() {
            (
                json!({"allowed": open.keep}),
                format!(
                    "allow only {} (closing {exposed})",
                    allowed_words(&Value::Array(open.keep.clone()))
                ),
                format!("--allow={}", allowed_words(&open.allowed)),
            )
        } else if !sources.is_empty() {
            (
                json!({"sourceRanges": sources}),
                format!(
                    "admit only {} (instead of the internet, to {exposed})",
                    sources.join(", ")
                ),
                format!("--source-ranges={}", open.source_ranges.join(",")),
            )
        } else {
            (
                json!({"disabled": true}),
                format!("be disabled (it opens {exposed} to the internet)"),
                "--no-disabled".to_string(),
            )
        };
        if request.mode == Mode::DryRun {
            return Ok(RemediationReport::new(
                request,
                RemediationStatus::WouldRemediate,
                format!("Would change firewall rule {name} to {change}."),
            )
            .with_calls(log.into_calls()));
        }
        let step = format!("Changed firewall rule {name} to {change}");
        let mut next_steps = Vec::new();
        if !open.keep.is_empty() && !keep_networks.is_empty() {
            next_steps.push(format!(
                "Rule {name} also serves other ports, so its admin ports were closed rather than narrowed; if {} need {exposed}, add a rule for them",
                keep_networks.join(", ")
            ));
        }
        if open.dropped_other_protocols {
            next_steps.push(format!(
                "Rule {name} allowed every protocol; it now allows TCP and UDP on the other ports, so add a rule if ICMP or another protocol is needed"
            ));
        }
        log.call(
            &self.client,
            &PATCH_FIREWALL,
            &rule.path("firewalls"),
            &[],
            Some(&body),
        )
        .await
        .map_err(|e| log.fail(e))?;
        let after = self.read(&rule, &mut log).await?;
        let verification = Verification::from_checks(checks(&after));
        let (status, summary) = if verification.passed {
            (
                RemediationStatus::Remediated,
                format!("Closed {exposed} on firewall rule {name}."),
            )
        } else {
            (
                RemediationStatus::Skipped,
                format!(
                    "Changed firewall rule {name}, but admin ports still read as open: {}.",
                    verification.failed_checks()
                ),
            )
        };
        Ok(RemediationReport::new(request, status, summary)
            .with_steps(vec![step])
            .with_calls(log.into_calls())
            .with_verification(verification)
            .with_next_steps(next_steps)
            .with_undo(format!(
                "To open it again: gcloud compute firewall-rules update {name} --project {} {undo}",
                rule.project
            )))
    }

    async fn verify(
        &self,
        request: &RemediationRequest<'_>,
    ) -> Result<Verification, RemediationError> {
        let rule = target::global(request, "firewalls")?;
        let mut log = CallLog::metered(self.meter.as_ref());
        let firewall = self.read(&rule, &mut log).await?;
        Ok(Verification::from_checks(checks(&firewall)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(sources: Value, allowed: Value) -> Value {
        json!({"name": "r", "direction": "INGRESS", "sourceRanges": sources, "allowed": allowed})
    }

    #[test]
    fn only_enabled_ingress_rules_open_to_the_internet_on_admin_ports_count() {
        let ssh = json!([{"IPProtocol": "tcp", "ports": ["22"]}]);
        assert!(open_rule(&rule(json!(["0.0.0.0/0"]), ssh.clone())).is_some());
        assert!(open_rule(&rule(json!(["::/0"]), ssh.clone())).is_some());
        assert!(open_rule(&rule(json!(["203.0.113.0/24"]), ssh.clone())).is_none());
        assert!(open_rule(&rule(
            json!(["0.0.0.0/0"]),
            json!([{"IPProtocol": "tcp", "ports": ["443"]}])
        ))
        .is_none());
        assert!(open_rule(&rule(json!(["0.0.0.0/0"]), json!([{"IPProtocol": "icmp"}]))).is_none());
        let mut disabled = rule(json!(["0.0.0.0/0"]), ssh.clone());
        disabled["disabled"] = json!(true);
        assert!(open_rule(&disabled).is_none());
        let mut egress = rule(json!(["0.0.0.0/0"]), ssh);
        egress["direction"] = json!("EGRESS");
        assert!(open_rule(&egress).is_none());
    }

    #[test]
    fn a_rule_that_also_opens_other_ports_keeps_them() {
        let open = open_rule(&rule(
            json!(["0.0.0.0/0"]),
            json!([{"IPProtocol": "tcp", "ports": ["22", "443", "3000-3400"]}, {"IPProtocol": "icmp"}]),
        ))
        .expect("open");
        assert_eq!(open.exposed, ["SSH (22)", "RDP (3389)"]);
        assert_eq!(
            open.keep,
            [
                json!({"IPProtocol": "tcp", "ports": ["443", "3000-3388", "3390-3400"]}),
                json!({"IPProtocol": "icmp"})
            ]
        );
    }

    #[test]
    fn every_protocol_keeps_tcp_and_udp_on_the_other_ports() {
        let open =
            open_rule(&rule(json!(["0.0.0.0/0"]), json!([{"IPProtocol": "all"}]))).expect("open");
        assert!(open.dropped_other_protocols);
        assert_eq!(
            open.keep[0],
            json!({"IPProtocol": "tcp", "ports": ["0-21", "23-3388", "3390-5984", "5987-65535"]})
        );
        assert_eq!(open.keep[1]["IPProtocol"], "udp");
    }

    #[test]
    fn a_kept_network_replaces_the_internet_of_its_family() {
        let open = open_rule(&rule(
            json!(["0.0.0.0/0", "10.0.0.0/8"]),
            json!([{"IPProtocol": "tcp", "ports": ["3389"]}]),
        ))
        .expect("open");
        assert!(open.keep.is_empty());
        let keep = vec!["203.0.113.0/24".to_string(), "2001:db8::/48".to_string()];
        assert_eq!(kept_sources(&open, &keep), ["10.0.0.0/8", "203.0.113.0/24"]);
        assert!(kept_sources(&open, &["2001:db8::/48".to_string()]).is_empty());
    }
}
