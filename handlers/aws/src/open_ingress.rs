//! `revoke_open_ingress` for EC2 security groups: revoke exactly the ingress rules open to
//! the whole internet (`0.0.0.0/0`, `::/0`) that the event names, and nothing else. Other
//! rules, including world-open ones the event did not name, are left alone and reported,
//! because closing a port may cut off legitimate users and only the named change was seen.
//!
//! With the approval's `keep_networks` (the company's ranges), a world-open rule is narrowed
//! instead: the same protocol and ports are first allowed from each kept network of the same
//! address family, then the world-open rule is revoked, so those users never lose access.

use async_trait::async_trait;
use aws_sdk_ec2::types::{IpPermission, IpRange, Ipv6Range};
use escher_core::approvals::Action;
use escher_core::remediate::{
    FixDescription, Mode, Remediation, RemediationError, RemediationReport, RemediationRequest,
    RemediationStatus, RequiredPermission, Verification,
};
use escher_core::resource_types::aws as aws_types;
use escher_core::UnifiedEvent;
use serde_json::{json, Value};

use crate::calls::{Access, CallLog};
use crate::clients::AwsClients;
use crate::report::check;
use crate::target::{security_group_id, Target};

pub(crate) const PERMISSIONS: &[RequiredPermission] = &[
    RequiredPermission {
        action: "ec2:RevokeSecurityGroupIngress",
        resource: "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:security-group/*",
        why: "revoke_open_ingress removes the ingress rules open to 0.0.0.0/0 or ::/0",
    },
    RequiredPermission {
        action: "ec2:AuthorizeSecurityGroupIngress",
        resource: "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:security-group/*",
        why: "revoke_open_ingress narrows a world-open rule to the networks the approval keeps (keep_networks) before revoking it",
    },
    RequiredPermission {
        action: "ec2:DescribeSecurityGroups",
        resource: "*",
        why: "revoke_open_ingress reads the group's rules before and after the change (Describe calls have no resource-level permissions)",
    },
];

const WORLD: [&str; 2] = ["0.0.0.0/0", "::/0"];

/// Revokes world-open ingress rules of a security group.
#[derive(Debug, Clone)]
pub struct OpenIngressRemediation {
    clients: AwsClients,
}

impl OpenIngressRemediation {
    pub fn new(clients: AwsClients) -> Self {
        OpenIngressRemediation { clients }
    }
}

/// One ingress rule for one CIDR, as EC2 stores it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rule {
    /// `tcp`, `udp`, `icmp`, `icmpv6`, `-1` (all traffic) or a protocol number.
    pub protocol: String,
    pub from_port: Option<i32>,
    pub to_port: Option<i32>,
    pub cidr: String,
    pub description: Option<String>,
}

impl Rule {
    /// The same protocol and ports, from `cidr`.
    fn from(&self, cidr: &str) -> Rule {
        Rule {
            cidr: cidr.to_string(),
            description: Some("kept by Escher (keep_networks)".into()),
            ..self.clone()
        }
    }

    pub(crate) fn is_world_open(&self) -> bool {
        WORLD.contains(&self.cidr.as_str())
    }

    fn is_ipv6(&self) -> bool {
        self.cidr.contains(':')
    }

    fn same_rule(&self, other: &Rule) -> bool {
        self.protocol == other.protocol
            && self.from_port == other.from_port
            && self.to_port == other.to_port
            && self.cidr == other.cidr
    }

    pub(crate) fn words(&self) -> String {
        let ports = match (self.protocol.as_str(), self.from_port, self.to_port) {
            ("-1", _, _) => return format!("all traffic from {}", self.cidr),
            (_, Some(from), Some(to)) if from == to => format!(" port {from}"),
            (_, Some(-1), _) | (_, None, _) => String::new(),
            (_, Some(from), Some(to)) => format!(" ports {from}-{to}"),
            (_, Some(from), None) => format!(" port {from}"),
        };
        format!("{}{ports} from {}", self.protocol, self.cidr)
    }

    fn permission(&self) -> IpPermission {
        let mut p = IpPermission::builder()
            .ip_protocol(&self.protocol)
            .set_from_port(self.from_port)
            .set_to_port(self.to_port);
        p = if self.is_ipv6() {
            p.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(&self.cidr).build())
        } else {
            p.ip_ranges(IpRange::builder().cidr_ip(&self.cidr).build())
        };
        p.build()
    }

    /// The AWS CLI `--ip-permissions` JSON that recreates the rule, description included.
    fn cli_json(&self) -> Value {
        let mut range = serde_json::Map::new();
        range.insert(
            if self.is_ipv6() { "CidrIpv6" } else { "CidrIp" }.into(),
            json!(self.cidr),
        );
        if let Some(d) = &self.description {
            range.insert("Description".into(), json!(d));
        }
        let mut p = serde_json::Map::new();
        p.insert("IpProtocol".into(), json!(self.protocol));
        if let Some(f) = self.from_port {
            p.insert("FromPort".into(), json!(f));
        }
        if let Some(t) = self.to_port {
            p.insert("ToPort".into(), json!(t));
        }
        p.insert(
            if self.is_ipv6() {
                "Ipv6Ranges"
            } else {
                "IpRanges"
            }
            .into(),
            json!([range]),
        );
        Value::Object(p)
    }
}

/// Protocol spellings differ between CloudTrail, Config and the EC2 API (`6` vs `tcp`).
fn protocol_name(p: &str) -> String {
    match p.trim().to_ascii_lowercase().as_str() {
        "6" | "tcp" => "tcp".into(),
        "17" | "udp" => "udp".into(),
        "1" | "icmp" => "icmp".into(),
        "58" | "icmpv6" => "icmpv6".into(),
        "-1" | "all" | "" => "-1".into(),
        other => other.into(),
    }
}

pub(crate) fn rules_of(permissions: &[IpPermission]) -> Vec<Rule> {
    let mut rules = Vec::new();
    for p in permissions {
        let protocol = protocol_name(p.ip_protocol().unwrap_or("-1"));
        let ranges = p
            .ip_ranges()
            .iter()
            .filter_map(|r| Some((r.cidr_ip()?, r.description())))
            .chain(
                p.ipv6_ranges()
                    .iter()
                    .filter_map(|r| Some((r.cidr_ipv6()?, r.description()))),
            );
        for (cidr, description) in ranges {
            rules.push(Rule {
                protocol: protocol.clone(),
                from_port: p.from_port(),
                to_port: p.to_port(),
                cidr: cidr.to_string(),
                description: description.map(str::to_string),
            });
        }
    }
    rules
}

/// What the event says was opened: `resource.metadata.open_permissions`, as the CloudTrail
/// and Config normalizers write it (`protocol`, `from_port`, `to_port`, `cidrs`).
#[derive(Debug, Clone)]
struct NamedPermission {
    protocol: String,
    from_port: Option<i64>,
    to_port: Option<i64>,
    cidrs: Vec<String>,
}

impl NamedPermission {
    fn matches(&self, rule: &Rule) -> bool {
        let ports_match = self.protocol == "-1"
            || (self
                .from_port
                .is_none_or(|f| rule.from_port.map(i64::from) == Some(f))
                && self
                    .to_port
                    .is_none_or(|t| rule.to_port.map(i64::from) == Some(t)));
        self.protocol == rule.protocol
            && ports_match
            && (self.cidrs.is_empty() || self.cidrs.contains(&rule.cidr))
    }
}

fn named_permissions(event: &UnifiedEvent) -> Vec<NamedPermission> {
    let Some(list) = event
        .resource
        .metadata
        .get("open_permissions")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    list.iter()
        .map(|p| {
            let port = |key: &str| {
                p.get(key).and_then(|v| {
                    v.as_i64()
                        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                })
            };
            NamedPermission {
                protocol: protocol_name(
                    &p.get("protocol")
                        .map(|v| match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })
                        .unwrap_or_default(),
                ),
                from_port: port("from_port"),
                to_port: port("to_port"),
                cidrs: p
                    .get("cidrs")
                    .and_then(Value::as_array)
                    .map(|c| {
                        c.iter()
                            .filter_map(Value::as_str)
                            .filter(|c| WORLD.contains(c))
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        })
        .collect()
}

async fn describe_rules(
    clients: &AwsClients,
    group_id: &str,
    log: &mut CallLog,
) -> Result<Vec<Rule>, RemediationError> {
    let out = log
        .must(
            "ec2",
            "DescribeSecurityGroups",
            group_id,
            Access::Read,
            clients
                .ec2()
                .describe_security_groups()
                .group_ids(group_id)
                .send(),
        )
        .await?;
    Ok(out
        .security_groups()
        .iter()
        .find(|g| g.group_id() == Some(group_id))
        .map(|g| rules_of(g.ip_permissions()))
        .unwrap_or_default())
}

/// The rules the fix revokes: the world-open ones the event names, or every world-open one
/// when it names none.
fn targets(rules: &[Rule], named: &[NamedPermission]) -> Vec<Rule> {
    rules
        .iter()
        .filter(|r| r.is_world_open())
        .filter(|r| named.is_empty() || named.iter().any(|n| n.matches(r)))
        .cloned()
        .collect()
}

const FIX: FixDescription = FixDescription {
    action: Action::RevokeOpenIngress,
    resource_types: &[aws_types::SECURITY_GROUP],
    permissions: PERMISSIONS,
};

#[async_trait]
impl Remediation for OpenIngressRemediation {
    fn description(&self) -> &'static FixDescription {
        &FIX
    }

    async fn verify(
        &self,
        request: &RemediationRequest<'_>,
    ) -> Result<Verification, RemediationError> {
        let event = request.event;
        let target = Target::of(request, &FIX, &self.clients, security_group_id)?;
        let (clients, group, mut log) = (&target.clients, target.id.clone(), target.log());
        let now = describe_rules(clients, &group, &mut log).await?;
        let open: Vec<String> = targets(&now, &named_permissions(event))
            .iter()
            .map(Rule::words)
            .collect();
        Ok(Verification::from_checks(vec![check(
            "world-open ingress the event names",
            "absent",
            if open.is_empty() {
                "absent".to_string()
            } else {
                open.join("; ")
            },
            open.is_empty(),
        )]))
    }

    async fn remediate(
        &self,
        request: &RemediationRequest<'_>,
    ) -> Result<RemediationReport, RemediationError> {
        let event = request.event;
        let target = Target::of(request, &FIX, &self.clients, security_group_id)?;
        let (clients, group, mut log) = (&target.clients, target.id.clone(), target.log());

        let before = describe_rules(clients, &group, &mut log).await?;
        let named = named_permissions(event);
        let world: Vec<&Rule> = before.iter().filter(|r| r.is_world_open()).collect();
        let targets = targets(&before, &named);
        let untouched_world: Vec<String> = world
            .iter()
            .filter(|r| !targets.iter().any(|t| t.same_rule(r)))
            .map(|r| r.words())
            .collect();

        let keep = match request.conditions.keep_networks() {
            Ok(keep) => keep,
            Err(why) => {
                return Err(RemediationError::of_call(
                    false,
                    "keep_networks",
                    group.clone(),
                    format!("the approval's {why}; correct the approval"),
                    log.into_calls(),
                ))
            }
        };
        // The rules that replace the world-open ones: each kept network of the same family,
        // unless the group already allows it.
        let mut added: Vec<Rule> = Vec::new();
        for target in &targets {
            for network in keep.iter().filter(|n| n.contains(':') == target.is_ipv6()) {
                let rule = target.from(network);
                let exists = before
                    .iter()
                    .chain(added.iter())
                    .any(|r| r.same_rule(&rule));
                if !exists {
                    added.push(rule);
                }
            }
        }

        let mut steps = Vec::new();
        if named.is_empty() {
            steps.push(format!(
                "the event names no rule, so every ingress rule of {group} open to 0.0.0.0/0 or ::/0 is revoked"
            ));
        }
        steps.extend(added.iter().map(|r| {
            format!(
                "allow ingress {} on {group} (a network the approval keeps)",
                r.words()
            )
        }));
        steps.extend(
            targets
                .iter()
                .map(|r| format!("revoke ingress {} on {group}", r.words())),
        );
        let kept = before.len() - targets.len();
        if !targets.is_empty() {
            steps.push(format!(
                "leave the other {kept} ingress rule{} of {group} unchanged",
                if kept == 1 { "" } else { "s" }
            ));
        }
        let mut next_steps = Vec::new();
        if !untouched_world.is_empty() {
            next_steps.push(format!(
                "{group} still allows {} from the whole internet; the event did not name {}, so {} left as is: review them",
                untouched_world.join("; "),
                if untouched_world.len() == 1 { "it" } else { "them" },
                if untouched_world.len() == 1 { "it was" } else { "they were" },
            ));
        }
        let report =
            |status, summary: String, steps, log: CallLog, verification, undo: Option<String>| {
                RemediationReport::new(request, status, summary)
                    .with_steps(steps)
                    .with_calls(log.into_calls())
                    .with_verification(verification)
                    .with_next_steps(next_steps.clone())
                    .with_undo(undo)
            };

        if targets.is_empty() {
            let verification = Verification::from_checks(vec![check(
                "named world-open ingress rules",
                "absent",
                "absent",
                true,
            )]);
            return Ok(report(
                RemediationStatus::AlreadyCompliant,
                format!("{group} has no ingress rule open to the world that the event names; nothing changed."),
                Vec::new(),
                log,
                Some(verification),
                None,
            ));
        }
        let listed: Vec<String> = targets.iter().map(Rule::words).collect();
        if request.mode == Mode::DryRun {
            return Ok(report(
                RemediationStatus::WouldRemediate,
                format!("Dry run: would revoke {} on {group}.", listed.join("; ")),
                steps.into_iter().map(|s| format!("would {s}")).collect(),
                log,
                None,
                None,
            ));
        }

        if !added.is_empty() {
            // Allowed first: the kept networks never lose access in between.
            log.must(
                "ec2",
                "AuthorizeSecurityGroupIngress",
                &group,
                Access::Write,
                clients
                    .ec2()
                    .authorize_security_group_ingress()
                    .group_id(&group)
                    .set_ip_permissions(Some(added.iter().map(Rule::permission).collect()))
                    .send(),
            )
            .await?;
        }
        log.must(
            "ec2",
            "RevokeSecurityGroupIngress",
            &group,
            Access::Write,
            clients
                .ec2()
                .revoke_security_group_ingress()
                .group_id(&group)
                .set_ip_permissions(Some(targets.iter().map(Rule::permission).collect()))
                .send(),
        )
        .await?;

        let after = describe_rules(clients, &group, &mut log).await?;
        let mut checks: Vec<_> = targets
            .iter()
            .map(|t| {
                let present = after.iter().any(|r| r.same_rule(t));
                check(
                    format!("ingress {}", t.words()),
                    "absent",
                    if present { "present" } else { "absent" },
                    !present,
                )
            })
            .collect();
        checks.extend(added.iter().map(|a| {
            let present = after.iter().any(|r| r.same_rule(a));
            check(
                format!("ingress {} (kept network)", a.words()),
                "present",
                if present { "present" } else { "absent" },
                present,
            )
        }));
        let others: Vec<&Rule> = before
            .iter()
            .filter(|r| !targets.iter().any(|t| t.same_rule(r)))
            .collect();
        let missing: Vec<String> = others
            .iter()
            .filter(|o| !after.iter().any(|r| r.same_rule(o)))
            .map(|o| o.words())
            .collect();
        checks.push(check(
            "other ingress rules kept",
            format!("{} rules unchanged", others.len()),
            if missing.is_empty() {
                format!("{} rules unchanged", others.len())
            } else {
                format!("missing: {}", missing.join("; "))
            },
            missing.is_empty(),
        ));
        let verification = Verification::from_checks(checks);
        let mut undo = format!(
            "To reopen (this exposes the ports to the internet again): aws ec2 authorize-security-group-ingress --region {} --group-id {group} --ip-permissions '{}'",
            event.region,
            Value::Array(targets.iter().map(Rule::cli_json).collect())
        );
        if !added.is_empty() {
            undo.push_str(&format!(
                "; and to remove the kept networks' rules Escher added: aws ec2 revoke-security-group-ingress --region {} --group-id {group} --ip-permissions '{}'",
                event.region,
                Value::Array(added.iter().map(Rule::cli_json).collect())
            ));
        }
        let narrowed: Vec<String> = added.iter().map(|r| r.cidr.clone()).collect();
        let summary = if verification.passed && !narrowed.is_empty() {
            format!(
                "Revoked {} on {group}, keeping access from {}; verified.",
                listed.join("; "),
                narrowed.join(", ")
            )
        } else if verification.passed {
            format!("Revoked {} on {group}; verified.", listed.join("; "))
        } else {
            format!("Revoked rules on {group} but verification failed; check the group by hand.")
        };
        Ok(report(
            RemediationStatus::Remediated,
            summary,
            steps,
            log,
            Some(verification),
            Some(undo),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(protocol: &str, from: i32, to: i32, cidr: &str) -> Rule {
        Rule {
            protocol: protocol.into(),
            from_port: Some(from),
            to_port: Some(to),
            cidr: cidr.into(),
            description: None,
        }
    }

    #[test]
    fn named_permissions_match_only_their_port_protocol_and_world_cidr() {
        let named = NamedPermission {
            protocol: protocol_name("6"),
            from_port: Some(22),
            to_port: Some(22),
            cidrs: vec!["0.0.0.0/0".into()],
        };
        assert!(named.matches(&rule("tcp", 22, 22, "0.0.0.0/0")));
        assert!(!named.matches(&rule("tcp", 22, 22, "::/0")));
        assert!(!named.matches(&rule("tcp", 23, 23, "0.0.0.0/0")));
        assert!(!named.matches(&rule("udp", 22, 22, "0.0.0.0/0")));
    }

    #[test]
    fn rules_read_like_a_person_would_say_them() {
        assert_eq!(rule("tcp", 22, 22, "::/0").words(), "tcp port 22 from ::/0");
        assert_eq!(
            rule("-1", -1, -1, "0.0.0.0/0").words(),
            "all traffic from 0.0.0.0/0"
        );
        assert_eq!(
            rule("udp", 1000, 2000, "0.0.0.0/0").words(),
            "udp ports 1000-2000 from 0.0.0.0/0"
        );
    }
}
