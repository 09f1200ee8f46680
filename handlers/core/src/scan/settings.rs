//! The report settings, `policies/report.yaml`: user-edited, so unknown keys are rejected
//! (a misspelt section would otherwise be silently ignored) and every value is checked.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

const BUILT_IN: &str = include_str!("../../../../policies/report.yaml");

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("report settings {origin}: {source}; compare with policies/report.yaml as shipped")]
    Parse {
        origin: String,
        #[source]
        source: serde_norway::Error,
    },
    #[error("report settings {origin}: {field} = {value} is not valid: {expected}")]
    Invalid {
        origin: String,
        field: &'static str,
        value: String,
        expected: &'static str,
    },
}

/// How long the report is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReportFormat {
    /// About 50 lines: every finding.
    Detailed,
    /// About 20 lines.
    Compact,
    /// About 15 lines: the top 3 findings.
    Executive,
}

impl ReportFormat {
    /// How many findings the rendering lists (the JSON always has them all).
    pub fn finding_limit(self) -> Option<usize> {
        match self {
            ReportFormat::Detailed => None,
            ReportFormat::Compact => Some(10),
            ReportFormat::Executive => Some(3),
        }
    }
}

/// What comes first in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReportFocus {
    Balanced,
    Cost,
    Security,
    Operational,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sections {
    /// Public buckets, open admin ports, unencrypted volumes.
    pub security: bool,
    /// Idle instances, unattached volumes, old snapshots.
    pub optimisation: bool,
    /// New and resolved findings since the previous report.
    pub changes: bool,
    /// Regions or checks that could not be scanned.
    pub failures: bool,
    /// Yesterday against the day before, the month against the budget, the top services.
    #[serde(default = "on")]
    pub cost: bool,
    /// CRITICAL alerts of the last 24 hours, from the audit records (shown first).
    #[serde(default = "on")]
    pub critical_alerts: bool,
    /// INFO events queued for the report since the previous one.
    #[serde(default = "on")]
    pub info_events: bool,
}

fn on() -> bool {
    true
}

/// The numbers the checks compare with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScanThresholds {
    pub idle_cpu_percent: f64,
    pub idle_days: u32,
    pub snapshot_age_days: u32,
    pub admin_ports: Vec<u16>,
    /// A running instance whose average CPU over `overprovisioned_days` is below this (and
    /// that is not idle) is one size too big. Defaults keep older settings files valid.
    #[serde(default = "default_overprovisioned_cpu_percent")]
    pub overprovisioned_cpu_percent: f64,
    #[serde(default = "default_overprovisioned_days")]
    pub overprovisioned_days: u32,
    /// Yesterday's cost is flagged when it rose by more than this amount (USD) or by more
    /// than `cost_spike_percent` against the day before.
    #[serde(default = "default_cost_spike_usd")]
    pub cost_spike_usd: f64,
    #[serde(default = "default_cost_spike_percent")]
    pub cost_spike_percent: f64,
    /// The month's budget in USD; none: no budget check.
    #[serde(default)]
    pub monthly_budget_usd: Option<f64>,
}

fn default_cost_spike_usd() -> f64 {
    100.0
}

fn default_cost_spike_percent() -> f64 {
    10.0
}

fn default_overprovisioned_cpu_percent() -> f64 {
    30.0
}

fn default_overprovisioned_days() -> u32 {
    30
}

impl Default for ScanThresholds {
    fn default() -> Self {
        ReportSettings::built_in().thresholds.clone()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScanSettings {
    /// Empty: the region the scan runs in.
    pub regions: Vec<String>,
    pub concurrency: usize,
    /// A scan invocation starts no new (check, region) pair once its deadline is this
    /// close; it hands the rest of the run on to a new invocation.
    #[serde(default = "default_safety_margin_secs")]
    pub safety_margin_secs: u64,
    /// How many invocations one night's run may take; the last one reports what is left
    /// as not scanned.
    #[serde(default = "default_max_invocations")]
    pub max_invocations: u32,
}

fn default_safety_margin_secs() -> u64 {
    120
}

fn default_max_invocations() -> u32 {
    12
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportSettings {
    pub format: ReportFormat,
    pub focus: ReportFocus,
    pub sections: Sections,
    pub thresholds: ScanThresholds,
    pub scan: ScanSettings,
}

impl ReportSettings {
    /// The settings shipped in `policies/report.yaml` (checked by a unit test).
    pub fn built_in() -> &'static ReportSettings {
        static SETTINGS: std::sync::OnceLock<ReportSettings> = std::sync::OnceLock::new();
        SETTINGS.get_or_init(|| {
            ReportSettings::from_yaml(BUILT_IN, "built in").unwrap_or(ReportSettings {
                format: ReportFormat::Detailed,
                focus: ReportFocus::Balanced,
                sections: Sections {
                    security: true,
                    optimisation: true,
                    changes: true,
                    failures: true,
                    cost: true,
                    critical_alerts: true,
                    info_events: true,
                },
                thresholds: ScanThresholds {
                    idle_cpu_percent: 5.0,
                    idle_days: 7,
                    snapshot_age_days: 90,
                    admin_ports: vec![22, 3389],
                    overprovisioned_cpu_percent: default_overprovisioned_cpu_percent(),
                    overprovisioned_days: default_overprovisioned_days(),
                    cost_spike_usd: default_cost_spike_usd(),
                    cost_spike_percent: default_cost_spike_percent(),
                    monthly_budget_usd: None,
                },
                scan: ScanSettings {
                    regions: Vec::new(),
                    concurrency: 4,
                    safety_margin_secs: default_safety_margin_secs(),
                    max_invocations: default_max_invocations(),
                },
            })
        })
    }

    /// Parses and checks the settings; `origin` (a file name) goes into every error.
    pub fn from_yaml(text: &str, origin: &str) -> Result<ReportSettings, SettingsError> {
        let settings: ReportSettings =
            serde_norway::from_str(text).map_err(|source| SettingsError::Parse {
                origin: origin.to_string(),
                source,
            })?;
        let invalid = |field, value: String, expected| SettingsError::Invalid {
            origin: origin.to_string(),
            field,
            value,
            expected,
        };
        let t = &settings.thresholds;
        if !(t.idle_cpu_percent > 0.0 && t.idle_cpu_percent <= 100.0) {
            return Err(invalid(
                "thresholds.idle_cpu_percent",
                t.idle_cpu_percent.to_string(),
                "a percentage above 0 and at most 100",
            ));
        }
        if t.idle_days == 0 || t.idle_days > 14 {
            return Err(invalid(
                "thresholds.idle_days",
                t.idle_days.to_string(),
                "1 to 14 days (CloudWatch keeps 5-minute CPU averages for 15 days)",
            ));
        }
        if !(t.overprovisioned_cpu_percent > 0.0 && t.overprovisioned_cpu_percent <= 100.0) {
            return Err(invalid(
                "thresholds.overprovisioned_cpu_percent",
                t.overprovisioned_cpu_percent.to_string(),
                "a percentage above 0 and at most 100",
            ));
        }
        if t.overprovisioned_days == 0 || t.overprovisioned_days > 63 {
            return Err(invalid(
                "thresholds.overprovisioned_days",
                t.overprovisioned_days.to_string(),
                "1 to 63 days (CloudWatch keeps 5-minute CPU averages for 63 days)",
            ));
        }
        if !(t.cost_spike_usd >= 0.0 && t.cost_spike_percent >= 0.0) {
            return Err(invalid(
                "thresholds.cost_spike_usd / cost_spike_percent",
                format!("{} / {}", t.cost_spike_usd, t.cost_spike_percent),
                "amounts of 0 or more",
            ));
        }
        if t.monthly_budget_usd.is_some_and(|b| b.is_nan() || b <= 0.0) {
            return Err(invalid(
                "thresholds.monthly_budget_usd",
                format!("{:?}", t.monthly_budget_usd),
                "an amount above 0, or no value for no budget",
            ));
        }
        if settings.scan.max_invocations == 0 {
            return Err(invalid(
                "scan.max_invocations",
                "0".into(),
                "at least 1 invocation per run",
            ));
        }
        if settings.scan.concurrency == 0 {
            return Err(invalid(
                "scan.concurrency",
                "0".into(),
                "at least 1 check running at a time",
            ));
        }
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_settings_parse() {
        let settings = ReportSettings::from_yaml(BUILT_IN, "policies/report.yaml")
            .expect("the shipped settings are valid");
        assert_eq!(settings.format, ReportFormat::Detailed);
        assert_eq!(settings.thresholds.snapshot_age_days, 90);
        assert!(settings.thresholds.admin_ports.contains(&22));
        assert!(settings.thresholds.admin_ports.contains(&3389));
        assert_eq!(&settings, ReportSettings::built_in());
    }

    #[test]
    fn a_misspelt_key_is_an_error_naming_the_file() {
        let text = BUILT_IN.replace("optimisation: true", "optimization: true");
        let err = ReportSettings::from_yaml(&text, "my-report.yaml").unwrap_err();
        let message = err.to_string();
        assert!(message.contains("my-report.yaml"), "{message}");
        assert!(message.contains("optimization"), "{message}");
    }

    #[test]
    fn values_out_of_range_are_rejected_with_what_is_allowed() {
        let text = BUILT_IN.replace("idle_days: 7", "idle_days: 30");
        let message = ReportSettings::from_yaml(&text, "r.yaml")
            .unwrap_err()
            .to_string();
        assert!(message.contains("thresholds.idle_days = 30"), "{message}");
        assert!(message.contains("1 to 14 days"), "{message}");
        let text = BUILT_IN.replace("format: detailed", "format: short");
        assert!(ReportSettings::from_yaml(&text, "r.yaml").is_err());
        let text = BUILT_IN.replace("format: detailed", "format: executive");
        let settings = ReportSettings::from_yaml(&text, "r.yaml").expect("valid");
        assert_eq!(settings.format.finding_limit(), Some(3));
        let text = BUILT_IN.replace("overprovisioned_days: 30", "overprovisioned_days: 90");
        let message = ReportSettings::from_yaml(&text, "r.yaml")
            .unwrap_err()
            .to_string();
        assert!(message.contains("1 to 63 days"), "{message}");
    }

    #[test]
    fn a_settings_file_from_before_the_new_thresholds_still_parses() {
        let older: String = BUILT_IN
            .lines()
            .filter(|l| {
                ![
                    "overprovisioned_",
                    "cost_spike_",
                    "monthly_budget_usd",
                    "cost:",
                ]
                .iter()
                .any(|k| l.contains(k))
            })
            .collect::<Vec<_>>()
            .join("\n");
        let settings = ReportSettings::from_yaml(&older, "old.yaml").expect("valid");
        assert_eq!(settings.thresholds.overprovisioned_cpu_percent, 30.0);
        assert_eq!(settings.thresholds.overprovisioned_days, 30);
        assert_eq!(settings.thresholds.cost_spike_usd, 100.0);
        assert_eq!(settings.thresholds.cost_spike_percent, 10.0);
        assert_eq!(settings.thresholds.monthly_budget_usd, None);
        assert!(settings.sections.cost);
    }
}
