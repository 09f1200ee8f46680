//! CRITICAL and HIGH notices by e-mail and SMS, natively: the handler records each notice
//! as an Application Insights custom event `EscherNotice` (dimensions `severity`, `subject`,
//! `resource`); one log alert rule per severity finds them and fires that severity's
//! action group, whose receivers are `[notifications.critical]` / `[notifications.high]`.

use serde::Serialize;
use serde_json::{json, Value};

use crate::config::{NotificationsConfig, Subscriptions};

/// The custom event the handler writes for a CRITICAL or HIGH notice.
pub const NOTICE_EVENT: &str = "EscherNotice";

#[derive(Debug, Serialize)]
pub(super) struct NoticeGroup {
    /// `critical` or `high`: the `severity` dimension, and part of the resource names.
    severity: &'static str,
    group_symbol: &'static str,
    rule_symbol: &'static str,
    /// An action group's short name (at most 12 characters, shown in SMS and e-mail).
    short_name: &'static str,
    display_name: &'static str,
    description: &'static str,
    /// Azure Monitor severity: 0 critical, 1 error.
    alert_severity: u8,
    /// How often the rule looks, over the same window (ISO 8601 duration).
    frequency: &'static str,
    query: String,
    email_receivers: Value,
    sms_receivers: Value,
}

pub(super) fn notice_groups(notifications: &NotificationsConfig) -> Vec<NoticeGroup> {
    vec![
        NoticeGroup {
            severity: "critical",
            group_symbol: "criticalGroup",
            rule_symbol: "criticalNotices",
            short_name: "escher-crit",
            display_name: "Escher Extend: CRITICAL",
            description: "A CRITICAL event or a failed remediation: Escher's notice, to e-mail and SMS within minutes.",
            alert_severity: 0,
            frequency: "PT1M",
            query: query("critical"),
            email_receivers: emails(&notifications.critical),
            sms_receivers: sms(&notifications.critical),
        },
        NoticeGroup {
            severity: "high",
            group_symbol: "highGroup",
            rule_symbol: "highNotices",
            short_name: "escher-high",
            display_name: "Escher Extend: HIGH",
            description: "A HIGH event or a remediation report: Escher's notice, to e-mail.",
            alert_severity: 1,
            frequency: "PT5M",
            query: query("high"),
            email_receivers: emails(&notifications.high),
            sms_receivers: sms(&notifications.high),
        },
    ]
}

/// The notices of one severity, one row each, split by subject so two notices with
/// different subjects are two alerts.
fn query(severity: &str) -> String {
    format!(
        "customEvents | where name == \"{NOTICE_EVENT}\" and tostring(customDimensions.severity) == \"{severity}\" | extend subject = tostring(customDimensions.subject), resource = tostring(customDimensions.resource) | project timestamp, subject, resource"
    )
}

/// Receiver names are unique within a group and stable under reordering: derived from the
/// address, not its position.
fn receiver_name(kind: &str, address: &str) -> String {
    format!(
        "{kind}-{}",
        &escher_core::ids::sha256_hex(address.as_bytes())[..10]
    )
}

fn emails(subs: &Subscriptions) -> Value {
    let mut seen = std::collections::BTreeSet::new();
    Value::Array(
        subs.emails
            .iter()
            .filter(|e| seen.insert(e.as_str()))
            .map(|e| {
                json!({
                    "name": receiver_name("email", e.as_str()),
                    "emailAddress": e.as_str(),
                    "useCommonAlertSchema": true,
                })
            })
            .collect(),
    )
}

fn sms(subs: &Subscriptions) -> Value {
    let mut seen = std::collections::BTreeSet::new();
    Value::Array(
        subs.sms
            .iter()
            .filter(|n| seen.insert(n.as_str()))
            .map(|n| {
                let (country, number) = split_e164(n.as_str());
                json!({
                    "name": receiver_name("sms", n.as_str()),
                    "countryCode": country,
                    "phoneNumber": number,
                })
            })
            .collect(),
    )
}

/// Splits an E.164 number (`+4915112345678`, already checked) into the country code and the
/// national number, as Azure's SMS receivers take them. Country codes are prefix-free: 1 and
/// 7 are one digit, the two-digit codes are listed, every other code has three digits
/// (ITU-T E.164 assignments).
pub(super) fn split_e164(number: &str) -> (String, String) {
    const TWO_DIGITS: [&str; 44] = [
        "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46",
        "47", "48", "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63",
        "64", "65", "66", "81", "82", "84", "86", "90", "91", "92", "93", "94", "95", "98",
    ];
    let digits = number.trim_start_matches('+');
    let len = if digits.starts_with('1') || digits.starts_with('7') {
        1
    } else if TWO_DIGITS.iter().any(|c| digits.starts_with(c)) {
        2
    } else {
        3
    };
    let (country, national) = digits.split_at(len.min(digits.len()));
    (country.to_string(), national.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_numbers_split_at_the_country_code() {
        assert_eq!(
            split_e164("+4915112345678"),
            ("49".into(), "15112345678".into())
        );
        assert_eq!(
            split_e164("+14155550123"),
            ("1".into(), "4155550123".into())
        );
        assert_eq!(
            split_e164("+79161234567"),
            ("7".into(), "9161234567".into())
        );
        assert_eq!(
            split_e164("+353861234567"),
            ("353".into(), "861234567".into())
        );
        assert_eq!(
            split_e164("+819012345678"),
            ("81".into(), "9012345678".into())
        );
    }

    #[test]
    fn critical_gets_email_and_sms_high_gets_its_own_receivers() {
        let config = crate::config::EscherConfig::parse(
            "[notifications.critical]\nemails = [\"oncall@example.com\", \"oncall@example.com\"]\nsms = [\"+4915112345678\"]\n[notifications.high]\nemails = [\"ops@example.com\"]\n",
            std::path::Path::new("escher.toml"),
        )
        .expect("config");
        let groups = notice_groups(&config.notifications);
        let critical = &groups[0];
        assert_eq!(critical.email_receivers.as_array().map(Vec::len), Some(1));
        assert_eq!(critical.sms_receivers[0]["countryCode"], "49");
        assert_eq!(critical.frequency, "PT1M");
        assert!(critical.query.contains("== \"critical\""));
        let high = &groups[1];
        assert_eq!(high.email_receivers[0]["emailAddress"], "ops@example.com");
        assert_eq!(high.sms_receivers, json!([]));
        assert_eq!(high.frequency, "PT5M");
        for g in &groups {
            assert!(g.short_name.len() <= 12, "{}", g.short_name);
        }
    }
}
