//! CRITICAL and HIGH notices by e-mail and SMS, natively: the handler logs each notice as
//! one JSON line with the field `escher_notice: {severity, title, event_id, ...}`; one
//! log-based alert policy per severity matches those lines of the handler's Cloud Run
//! service and notifies that severity's Cloud Monitoring channels, which are
//! `[notifications.critical]` / `[notifications.high]`.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::config::{NotificationsConfig, Subscriptions};

/// The structured log field the handler writes a notice under.
pub const NOTICE_FIELD: &str = "escher_notice";

/// One Cloud Monitoring notification channel (an e-mail address or a phone number).
#[derive(Debug, Serialize)]
pub(super) struct NoticeChannel {
    pub symbol: String,
    /// Deployment Manager's resource name.
    pub dm_name: String,
    /// `critical` or `high`.
    pub severity: &'static str,
    /// The channel type: `email` or `sms`.
    pub kind: &'static str,
    /// The label holding the address: `email_address` or `number`.
    pub label: &'static str,
    pub address: String,
    pub display_name: String,
}

/// One log-based alert policy: the notices of one severity.
#[derive(Debug, Serialize)]
pub(super) struct NoticePolicy {
    pub symbol: &'static str,
    pub dm_name: &'static str,
    /// Cloud Monitoring's severity, also the notice's.
    pub severity: &'static str,
    pub display_name: &'static str,
    pub condition_name: &'static str,
    pub filter: String,
    /// At most one notification per period (log-match policies require a limit).
    pub rate_limit: &'static str,
    pub documentation: &'static str,
    /// The channels' symbols (Terraform) and names (Deployment Manager).
    pub channels: Vec<String>,
    pub dm_channels: Vec<String>,
}

/// The channels of both severities, each address once per severity. Names derive from the
/// address, not its position, so reordering escher.toml changes nothing.
pub(super) fn notice_channels(notifications: &NotificationsConfig) -> Vec<NoticeChannel> {
    let mut out = Vec::new();
    for (severity, subs) in [
        ("critical", &notifications.critical),
        ("high", &notifications.high),
    ] {
        channels_of(severity, subs, &mut out);
    }
    out
}

fn channels_of(severity: &'static str, subs: &Subscriptions, out: &mut Vec<NoticeChannel>) {
    let upper = severity.to_ascii_uppercase();
    let mut seen = BTreeSet::new();
    let emails = subs
        .emails
        .iter()
        .map(|e| ("email", "email_address", e.as_str()));
    let numbers = subs.sms.iter().map(|n| ("sms", "number", n.as_str()));
    for (kind, label, address) in emails.chain(numbers) {
        if !seen.insert((kind, address)) {
            continue;
        }
        let hash = &escher_core::ids::sha256_hex(address.as_bytes())[..10];
        out.push(NoticeChannel {
            symbol: format!("{severity}_{kind}_{hash}"),
            dm_name: format!("{severity}-{kind}-{hash}"),
            severity,
            kind,
            label,
            address: address.to_string(),
            display_name: format!("Escher Extend {upper}: {address}"),
        });
    }
}

/// The two policies, each notifying its severity's channels.
pub(super) fn notice_policies(service: &str, channels: &[NoticeChannel]) -> Vec<NoticePolicy> {
    let of = |severity: &str| {
        let mine: Vec<&NoticeChannel> =
            channels.iter().filter(|c| c.severity == severity).collect();
        (
            mine.iter().map(|c| c.symbol.clone()).collect(),
            mine.iter().map(|c| c.dm_name.clone()).collect(),
        )
    };
    let (critical, dm_critical) = of("critical");
    let (high, dm_high) = of("high");
    vec![
        NoticePolicy {
            symbol: "critical_notices",
            dm_name: "critical-notices",
            severity: "CRITICAL",
            display_name: "Escher Extend: CRITICAL",
            condition_name: "A CRITICAL notice from the Escher Extend handler",
            filter: filter(service, "CRITICAL"),
            rate_limit: "300s",
            documentation: "A CRITICAL event or a failed remediation. The notice's title and event id are in the incident's labels; `escher-provision audit` shows what was done.",
            channels: critical,
            dm_channels: dm_critical,
        },
        NoticePolicy {
            symbol: "high_notices",
            dm_name: "high-notices",
            severity: "ERROR",
            display_name: "Escher Extend: HIGH",
            condition_name: "A HIGH notice from the Escher Extend handler",
            filter: filter(service, "HIGH"),
            rate_limit: "300s",
            documentation: "A HIGH event or a remediation report. The notice's title and event id are in the incident's labels; `escher-provision audit` shows what was done.",
            channels: high,
            dm_channels: dm_high,
        },
    ]
}

/// The handler's notice lines of one severity.
pub(super) fn filter(service: &str, severity: &str) -> String {
    format!(
        "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"{service}\" AND jsonPayload.{NOTICE_FIELD}.severity=\"{severity}\""
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_severity_gets_its_own_channels_once_per_address() {
        let config = crate::config::EscherConfig::parse(
            "[notifications.critical]\nemails = [\"oncall@example.com\", \"oncall@example.com\"]\nsms = [\"+4915112345678\"]\n[notifications.high]\nemails = [\"ops@example.com\", \"oncall@example.com\"]\n",
            std::path::Path::new("escher.toml"),
        )
        .expect("config");
        let channels = notice_channels(&config.notifications);
        let of = |sev: &str| -> Vec<(&str, &str)> {
            channels
                .iter()
                .filter(|c| c.severity == sev)
                .map(|c| (c.kind, c.address.as_str()))
                .collect()
        };
        assert_eq!(
            of("critical"),
            [("email", "oncall@example.com"), ("sms", "+4915112345678")]
        );
        assert_eq!(
            of("high"),
            [
                ("email", "ops@example.com"),
                ("email", "oncall@example.com")
            ]
        );
        let symbols: BTreeSet<&str> = channels.iter().map(|c| c.symbol.as_str()).collect();
        assert_eq!(symbols.len(), channels.len(), "symbols are unique");

        let policies = notice_policies("escher-extend", &channels);
        assert_eq!(policies[0].channels.len(), 2);
        assert_eq!(policies[1].channels.len(), 2);
        assert!(policies[0]
            .filter
            .ends_with("jsonPayload.escher_notice.severity=\"CRITICAL\""));
        assert!(policies[1]
            .filter
            .contains("resource.labels.service_name=\"escher-extend\""));
        assert!(policies[1]
            .filter
            .ends_with("jsonPayload.escher_notice.severity=\"HIGH\""));
    }
}
