//! `escher.toml`: what the user decides about their Escher Extend deployment.
//!
//! Every field has a default, so a missing file deploys a working stack. Values are checked
//! while parsing (each field is a type that only holds valid values), so a typo fails at
//! `render` time with the file, the line and what is accepted, not halfway through a deploy.
//!
//! The file has a section per cloud beside the sections every cloud shares:
//!
//! ```toml
//! # Shared: what Escher does, wherever it runs.
//! [stack]
//! name = "escher-extend"        # the deployment's name (a CloudFormation stack on AWS), prefix of function and topic names
//!
//! [schedule]
//! timezone = "Europe/Berlin"    # absent: the machine's time zone, else UTC
//! scan_time = "02:00"
//!
//! [audit]
//! retention_days = 365          # days every audit record stays locked (S3 Object Lock on AWS)
//!
//! [notifications.critical]
//! emails = ["oncall@example.com"]
//! sms = ["+4915112345678"]
//! [notifications.high]
//! emails = ["ops@example.com"]
//!
//! # AWS only: how the AWS stack is built.
//! [aws]
//! region = "eu-west-1"          # absent: the AWS configuration chain decides
//!
//! [aws.cloudtrail]
//! create_trail = "auto"         # auto | always | never
//!
//! [aws.functions]
//! architecture = "arm64"        # arm64 | x86_64
//! log_retention_days = 365
//! dlq_retention_days = 14
//! alert = { memory_mb = 256, timeout_seconds = 60, reserved_concurrency = 10 }
//! scan = { memory_mb = 512, timeout_seconds = 300, reserved_concurrency = 1 }
//!
//! [aws.buckets]                 # absent: CloudFormation generates unique names
//! state = "acme-escher-state"
//! audit = "acme-escher-audit"
//! trail = "acme-escher-trail"
//! access_logs = "acme-escher-access-logs"
//!
//! [aws.artifacts]               # normally filled by `extend` after packaging
//! bucket = "acme-escher-artifacts"
//! alert_zip_key = "<sha256 of the zip>.zip"
//! scan_zip_key = "<sha256 of the zip>.zip"
//!
//! # Azure only: where the Azure deployment goes.
//! [azure]
//! subscription = "00000000-0000-0000-0000-000000000000"  # absent: the Azure CLI's current one
//! location = "westeurope"
//! resource_group = "escher"
//! zone_redundant = true         # false in a region without availability zones
//! operator_addresses = []       # public IPv4s / CIDRs of the machines running escher-provision
//!
//! # Google Cloud only: where the Google Cloud deployment goes.
//! [gcp]
//! project = "acme-prod-1234"    # absent: the Terraform variable `project` decides
//! region = "europe-west1"
//! organization = "123456789012" # absent: no Security Command Center notifications
//! lock_audit_retention = false  # true locks the audit bucket's retention: irreversible
//!
//! [gcp.buckets]                 # absent: <project>-escher-state, -audit, -access-logs
//! state = "acme-escher-state"
//! audit = "acme-escher-audit"
//! access_logs = "acme-escher-access-logs"
//! ```
//!
//! Why each key sits where it does:
//! - shared: `[stack] name` (every cloud names its deployment and prefixes what it creates),
//!   `[schedule]` (the nightly scan runs wherever Escher is deployed), `[audit]
//!   retention_days` (every cloud's storage can lock a record for a number of days: S3 Object
//!   Lock, Azure immutable blobs, GCS bucket locks), `[notifications.*]` (e-mail and SMS
//!   subscribers of the critical and high channels, whichever service sends them);
//! - `[aws]`: `region` (an AWS region code; Azure and GCP name their regions differently),
//!   `cloudtrail` (CloudTrail), `functions` (Lambda's architectures and limits, CloudWatch
//!   Logs retention values, an SQS dead-letter queue), `buckets` and `artifacts` (S3 names and
//!   keys);
//! - `[azure]`: `subscription`, `location` (an Azure region name), `resource_group`,
//!   `zone_redundant` (the Flex Consumption plan), `operator_addresses` (the storage and Key
//!   Vault firewalls);
//! - `[gcp]`: `project`, `region` (a Google Cloud region name), `organization` (Security
//!   Command Center notifications are organization-wide), `lock_audit_retention` (a bucket
//!   lock cannot be undone, so it is asked for explicitly), `buckets` (global names).
//!
//! Files written before the per-cloud sections keep working: `[stack] region`,
//! `[cloudtrail]`, `[functions]` (with `[functions.alert]` / `[functions.scan]`), `[buckets]`
//! and `[artifacts]` are still read as their `[aws…]` spelling, and each one read is named
//! with its new spelling in a warning ([`load_for_command`]). A file that gives one setting
//! in both spellings is refused, since either choice would silently drop the other.

pub mod aws;
pub mod azure;
mod checked;
pub mod gcp;
mod schedule;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use aws::{Architecture, AwsConfig, AwsRegion, CreateTrail};
pub use azure::{AzureConfig, SubscriptionId};
pub use gcp::{GcpConfig, GcpRegion};
pub use schedule::{resolve_timezone, ScheduleConfig, TimeZoneName, TimeZoneSource};

use aws::{ArtifactsConfig, BucketsConfig, CloudTrailConfig, FunctionsConfig};
use checked::{bounded_number, checked_string};

/// The file a command reads when `--config` is not given (and only when it exists).
pub const DEFAULT_FILE: &str = "escher.toml";

/// Why `escher.toml` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The parser's message shows the line and the key; ours says what is accepted.
    #[error("{path} is not a valid Escher configuration: {message}")]
    Invalid { path: PathBuf, message: String },
    /// An old and a new spelling of the same setting: neither may silently win.
    #[error("{path} sets both `{old}` and `{new}`, the old and the new spelling of the same setting; keep `{new}` only (move what `{old}` holds into it)")]
    BothSpellings {
        path: PathBuf,
        old: &'static str,
        new: &'static str,
    },
}

/// The whole `escher.toml`, old spellings resolved into their current place.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EscherConfig {
    pub stack: StackConfig,
    pub schedule: ScheduleConfig,
    pub audit: AuditConfig,
    pub notifications: NotificationsConfig,
    pub aws: AwsConfig,
    pub azure: AzureConfig,
    pub gcp: GcpConfig,
    /// The old spellings this file used (read all the same), for the warnings.
    pub old_spellings: Vec<OldSpelling>,
}

/// A setting read under the spelling it had before the per-cloud sections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OldSpelling {
    pub old: &'static str,
    pub new: &'static str,
}

impl fmt::Display for OldSpelling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is now spelled `{}`; the old spelling is still read, but rename it",
            self.old, self.new
        )
    }
}

/// The settings that moved into `[aws]`, old spelling first.
const fn moved(old: &'static str, new: &'static str) -> OldSpelling {
    OldSpelling { old, new }
}
const OLD_REGION: OldSpelling = moved("[stack] region", "[aws] region");
const OLD_CLOUDTRAIL: OldSpelling = moved("[cloudtrail]", "[aws.cloudtrail]");
const OLD_FUNCTIONS: OldSpelling = moved("[functions]", "[aws.functions]");
const OLD_BUCKETS: OldSpelling = moved("[buckets]", "[aws.buckets]");
const OLD_ARTIFACTS: OldSpelling = moved("[artifacts]", "[aws.artifacts]");

/// `escher.toml` as written: the current layout, plus the old spellings still read. Every
/// table is checked for unknown keys, so a typo is named with the accepted keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ConfigFile {
    stack: StackSection,
    schedule: ScheduleConfig,
    audit: AuditConfig,
    notifications: NotificationsConfig,
    aws: AwsSection,
    azure: AzureConfig,
    gcp: GcpConfig,
    /// Old spelling of `[aws.cloudtrail]`.
    cloudtrail: Option<CloudTrailConfig>,
    /// Old spelling of `[aws.functions]`.
    functions: Option<FunctionsConfig>,
    /// Old spelling of `[aws.buckets]`.
    buckets: Option<BucketsConfig>,
    /// Old spelling of `[aws.artifacts]`.
    artifacts: Option<ArtifactsConfig>,
}

/// `[stack]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct StackSection {
    name: StackName,
    /// Old spelling of `[aws] region`.
    region: Option<AwsRegion>,
}

/// `[aws]` as written: each table optional, so one given in both spellings is noticed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct AwsSection {
    region: Option<AwsRegion>,
    cloudtrail: Option<CloudTrailConfig>,
    functions: Option<FunctionsConfig>,
    buckets: Option<BucketsConfig>,
    artifacts: Option<ArtifactsConfig>,
}

impl EscherConfig {
    /// Reads `path`; a missing file gives the defaults unless `must_exist` (the user named
    /// the file explicitly, so a typo in the path must not silently deploy defaults).
    pub fn load(path: &Path, must_exist: bool) -> Result<Self, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => {
                Ok(Self::default())
            }
            Err(source) => Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Parses the text of a config file; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let mut old = Vec::new();
        let aws = AwsConfig {
            region: either(
                file.stack.region,
                file.aws.region,
                OLD_REGION,
                path,
                &mut old,
            )?,
            cloudtrail: either(
                file.cloudtrail,
                file.aws.cloudtrail,
                OLD_CLOUDTRAIL,
                path,
                &mut old,
            )?
            .unwrap_or_default(),
            functions: either(
                file.functions,
                file.aws.functions,
                OLD_FUNCTIONS,
                path,
                &mut old,
            )?
            .unwrap_or_default(),
            buckets: either(file.buckets, file.aws.buckets, OLD_BUCKETS, path, &mut old)?
                .unwrap_or_default(),
            artifacts: either(
                file.artifacts,
                file.aws.artifacts,
                OLD_ARTIFACTS,
                path,
                &mut old,
            )?
            .unwrap_or_default(),
        };
        Ok(EscherConfig {
            stack: StackConfig {
                name: file.stack.name,
            },
            schedule: file.schedule,
            audit: file.audit,
            notifications: file.notifications,
            aws,
            azure: file.azure,
            gcp: file.gcp,
            old_spellings: old,
        })
    }
}

/// A setting with an old and a new spelling: the new one, else the old one (noted in
/// `read_old`); both at once is refused.
fn either<T>(
    old: Option<T>,
    new: Option<T>,
    spelling: OldSpelling,
    path: &Path,
    read_old: &mut Vec<OldSpelling>,
) -> Result<Option<T>, ConfigError> {
    match (old, new) {
        (Some(_), Some(_)) => Err(ConfigError::BothSpellings {
            path: path.to_path_buf(),
            old: spelling.old,
            new: spelling.new,
        }),
        (Some(old), None) => {
            read_old.push(spelling);
            Ok(Some(old))
        }
        (None, new) => Ok(new),
    }
}

/// The configuration a command runs with: `--config FILE` (which must exist), else
/// `./escher.toml` when there is one, else the defaults; with the file that was read.
/// Each old spelling in it is named on stderr, one line each, with its new spelling: the
/// file still works, and the user learns what to rename before the old spelling goes.
pub fn load_for_command(
    flag: Option<&Path>,
) -> Result<(EscherConfig, Option<PathBuf>), ConfigError> {
    let (path, must_exist) = match flag {
        Some(path) => (path.to_path_buf(), true),
        None => (PathBuf::from(DEFAULT_FILE), false),
    };
    let config = EscherConfig::load(&path, must_exist)?;
    for spelling in &config.old_spellings {
        eprintln!("warning: {}: {spelling}", path.display());
    }
    let read = path.exists().then_some(path);
    Ok((config, read))
}

/// `[stack]`
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StackConfig {
    /// The deployment's name (the CloudFormation stack on AWS); also the prefix of function,
    /// topic and trail names and of the secrets path `/escher/<name>/`. Default
    /// `escher-extend`.
    pub name: StackName,
}

/// `[audit]`
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Days every audit record is locked (S3 Object Lock, compliance mode: nobody, not even
    /// the account root, can delete it earlier). Default 365.
    pub retention_days: AuditRetentionDays,
}

/// `[notifications]`: who hears about what. Subscriptions are confirmed by their owners
/// (AWS sends a confirmation e-mail); SMS needs the account's SMS sandbox lifted.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationsConfig {
    /// The `critical` topic: CRITICAL events and failed remediations.
    pub critical: Subscriptions,
    /// The `high` topic: HIGH events and remediation reports.
    pub high: Subscriptions,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Subscriptions {
    /// E-mail addresses.
    pub emails: Vec<EmailAddress>,
    /// Phone numbers in E.164 form (`+4915112345678`).
    pub sms: Vec<SmsNumber>,
}

checked_string!(
    /// Letters, digits and hyphens, starting with a letter, at most 50 characters (so that
    /// `<name>-alert` fits Lambda's 64-character function names).
    StackName,
    |s| {
        let ok = s.len() <= 50
            && s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if ok {
            Ok(())
        } else {
            Err(format!(
                "stack name `{s}`: use 1 to 50 letters, digits and hyphens, starting with a letter (e.g. `escher-extend`)"
            ))
        }
    }
);

impl Default for StackName {
    fn default() -> Self {
        StackName("escher-extend".into())
    }
}

checked_string!(
    /// An e-mail address (`name@domain.tld`).
    EmailAddress,
    |s| {
        let ok = s.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        }) && s.matches('@').count() == 1;
        if ok {
            Ok(())
        } else {
            Err(format!("e-mail address `{s}`: use the form `name@example.com`"))
        }
    }
);

checked_string!(
    /// A phone number in E.164 form: `+`, then 8 to 15 digits, no spaces.
    SmsNumber,
    |s| {
        let ok = s.strip_prefix('+').is_some_and(|d| {
            (8..=15).contains(&d.len()) && d.chars().all(|c| c.is_ascii_digit()) && !d.starts_with('0')
        });
        if ok {
            Ok(())
        } else {
            Err(format!("SMS number `{s}`: use E.164 form, `+` and the country code, no spaces (e.g. `+4915112345678`)"))
        }
    }
);

bounded_number!(AuditRetentionDays, "audit retention_days", 1..=36500, default 365);

#[cfg(test)]
mod tests {
    use super::aws::FunctionSizing;
    use super::schedule::ScanTime;
    use super::*;
    use chrono_tz::Tz;

    fn parse(text: &str) -> Result<EscherConfig, String> {
        EscherConfig::parse(text, Path::new("escher.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn an_empty_file_gives_the_documented_defaults() {
        let config = parse("").expect("empty config");
        assert_eq!(config.stack.name.as_str(), "escher-extend");
        assert_eq!(config.aws.region, None);
        assert_eq!(config.schedule.scan_time, ScanTime { hour: 2, minute: 0 });
        assert_eq!(config.audit.retention_days.0, 365);
        assert_eq!(config.aws.cloudtrail.create_trail, CreateTrail::Auto);
        assert_eq!(config.aws.functions.architecture, Architecture::Arm64);
        assert_eq!(
            config.aws.functions.scan_sizing(),
            FunctionSizing {
                memory_mb: 512,
                timeout_seconds: 300,
                reserved_concurrency: 1
            }
        );
        assert_eq!(config.aws.functions.alert_sizing().memory_mb, 256);
        assert_eq!(config.aws.functions.alert_sizing().reserved_concurrency, 10);
        assert_eq!(config, EscherConfig::default());
    }

    #[test]
    fn a_missing_file_gives_defaults_only_when_not_named_explicitly() {
        let path = Path::new("/nonexistent/escher.toml");
        assert_eq!(
            EscherConfig::load(path, false).expect("defaults"),
            EscherConfig::default()
        );
        let err = EscherConfig::load(path, true).expect_err("named file must exist");
        assert!(
            err.to_string().contains("/nonexistent/escher.toml"),
            "{err}"
        );
    }

    #[test]
    fn a_full_file_parses_into_typed_values() {
        let config = parse(
            r#"
            [stack]
            name = "acme-escher"
            [schedule]
            timezone = "Europe/Berlin"
            scan_time = "23:30"
            [notifications.critical]
            emails = ["oncall@example.com"]
            sms = ["+4915112345678"]
            [aws]
            region = "eu-west-1"
            [aws.cloudtrail]
            create_trail = "never"
            [aws.functions]
            architecture = "x86_64"
            scan = { memory_mb = 1024, timeout_seconds = 900 }
            "#,
        )
        .expect("full config");
        assert_eq!(
            config.schedule.timezone,
            Some(TimeZoneName(Tz::Europe__Berlin))
        );
        assert_eq!(config.schedule.scan_time.to_string(), "23:30");
        assert_eq!(
            config.notifications.critical.sms[0].as_str(),
            "+4915112345678"
        );
        assert_eq!(config.aws.cloudtrail.create_trail, CreateTrail::Never);
        assert_eq!(config.aws.functions.architecture, Architecture::X86_64);
        // A function given in part keeps that function's defaults for the rest.
        assert_eq!(
            config.aws.functions.scan_sizing(),
            FunctionSizing {
                memory_mb: 1024,
                timeout_seconds: 900,
                reserved_concurrency: 1
            }
        );
        assert_eq!(config.aws.functions.alert_sizing().timeout_seconds, 60);
    }

    #[test]
    fn an_unknown_key_is_named_with_the_accepted_ones() {
        let err = parse("[schedule]\nscan_tme = \"02:00\"\n").expect_err("typo");
        assert!(err.contains("escher.toml"), "{err}");
        assert!(err.contains("scan_tme"), "{err}");
        assert!(err.contains("scan_time"), "accepted keys listed: {err}");
        let err = parse("[stak]\nname = \"x\"\n").expect_err("unknown section");
        assert!(err.contains("stak") && err.contains("stack"), "{err}");
    }

    #[test]
    fn a_bad_timezone_is_rejected_with_examples() {
        let err = parse("[schedule]\ntimezone = \"Mars/Olympus\"\n").expect_err("bad tz");
        assert!(err.contains("Mars/Olympus"), "{err}");
        assert!(err.contains("IANA"), "{err}");
        assert!(err.contains("timezone ="), "the key is shown: {err}");
        // Abbreviations are not IANA names and are ambiguous.
        assert!(parse("[schedule]\ntimezone = \"CEST\"\n").is_err());
    }

    #[test]
    fn a_bad_scan_time_is_rejected() {
        for bad in ["2:00", "24:00", "02:60", "0200", "02:00:00", "ab:cd", ""] {
            let err = parse(&format!("[schedule]\nscan_time = \"{bad}\"\n")).expect_err(bad);
            assert!(err.contains("HH:MM"), "{bad}: {err}");
        }
        assert!(parse("[schedule]\nscan_time = \"00:00\"\n").is_ok());
    }

    #[test]
    fn out_of_range_and_malformed_values_say_what_is_accepted() {
        let cases = [
            ("[aws.functions]\nlog_retention_days = 10\n", "365"),
            ("[aws.functions]\ndlq_retention_days = 30\n", "14"),
            ("[aws.functions.alert]\nmemory_mb = 64\n", "128"),
            ("[audit]\nretention_days = 0\n", "between 1"),
            ("[aws.functions]\narchitecture = \"arm\"\n", "x86_64"),
            ("[aws.cloudtrail]\ncreate_trail = \"yes\"\n", "auto"),
            (
                "[notifications.high]\nemails = [\"ops\"]\n",
                "name@example.com",
            ),
            ("[notifications.high]\nsms = [\"0151 1234\"]\n", "E.164"),
            ("[aws.buckets]\nstate = \"My_Bucket\"\n", "lowercase"),
            (
                "[aws.artifacts]\nalert_zip_key = \"bootstrap.zip\"\n",
                "sha256",
            ),
            ("[stack]\nname = \"1escher\"\n", "starting with a letter"),
            ("[aws]\nregion = \"Frankfurt\"\n", "eu-west-1"),
        ];
        for (text, accepted) in cases {
            let err = parse(text).expect_err(text);
            assert!(err.contains(accepted), "{text}: {err}");
        }
    }

    /// Each AWS setting under its new name, as one file.
    const NEW_SPELLING: &str = r#"
        [stack]
        name = "acme-escher"
        [aws]
        region = "eu-central-1"
        [aws.cloudtrail]
        create_trail = "always"
        [aws.functions]
        architecture = "x86_64"
        log_retention_days = 731
        dlq_retention_days = 7
        alert = { memory_mb = 512 }
        [aws.functions.scan]
        timeout_seconds = 900
        [aws.buckets]
        state = "acme-escher-state"
        [aws.artifacts]
        bucket = "acme-escher-artifacts"
        "#;

    /// The same settings as written before the per-cloud sections.
    const OLD_SPELLING: &str = r#"
        [stack]
        name = "acme-escher"
        region = "eu-central-1"
        [cloudtrail]
        create_trail = "always"
        [functions]
        architecture = "x86_64"
        log_retention_days = 731
        dlq_retention_days = 7
        alert = { memory_mb = 512 }
        [functions.scan]
        timeout_seconds = 900
        [buckets]
        state = "acme-escher-state"
        [artifacts]
        bucket = "acme-escher-artifacts"
        "#;

    #[test]
    fn every_aws_setting_is_read_under_its_new_name() {
        let config = parse(NEW_SPELLING).expect("new spelling");
        assert_eq!(config.stack.name.as_str(), "acme-escher");
        let aws = &config.aws;
        assert_eq!(
            aws.region.as_ref().map(|r| r.as_str()),
            Some("eu-central-1")
        );
        assert_eq!(aws.cloudtrail.create_trail, CreateTrail::Always);
        assert_eq!(aws.functions.architecture, Architecture::X86_64);
        assert_eq!(aws.functions.log_retention_days.0, 731);
        assert_eq!(aws.functions.dlq_retention_days.0, 7);
        assert_eq!(aws.functions.alert_sizing().memory_mb, 512);
        assert_eq!(aws.functions.scan_sizing().timeout_seconds, 900);
        assert_eq!(
            aws.buckets.state.as_ref().map(|b| b.as_str()),
            Some("acme-escher-state")
        );
        assert_eq!(
            aws.artifacts.bucket.as_ref().map(|b| b.as_str()),
            Some("acme-escher-artifacts")
        );
        assert!(
            config.old_spellings.is_empty(),
            "{:?}",
            config.old_spellings
        );
    }

    #[test]
    fn every_old_spelling_is_still_read_and_named_with_its_new_one() {
        let old = parse(OLD_SPELLING).expect("old spelling");
        let new = parse(NEW_SPELLING).expect("new spelling");
        assert_eq!(
            old.aws, new.aws,
            "the same settings, wherever they were written"
        );
        assert_eq!(
            old.old_spellings,
            [
                OLD_REGION,
                OLD_CLOUDTRAIL,
                OLD_FUNCTIONS,
                OLD_BUCKETS,
                OLD_ARTIFACTS
            ],
            "each old spelling is noted once"
        );
        assert_eq!(
            OLD_FUNCTIONS.to_string(),
            "`[functions]` is now spelled `[aws.functions]`; the old spelling is still read, but rename it"
        );
    }

    #[test]
    fn one_setting_in_both_spellings_is_refused_naming_the_new_one() {
        let cases = [
            ("[stack]\nregion = \"eu-west-1\"\n[aws]\nregion = \"eu-west-1\"\n", "[stack] region", "[aws] region"),
            ("[cloudtrail]\ncreate_trail = \"never\"\n[aws.cloudtrail]\ncreate_trail = \"always\"\n", "[cloudtrail]", "[aws.cloudtrail]"),
            ("[functions]\narchitecture = \"x86_64\"\n[aws.functions]\nlog_retention_days = 7\n", "[functions]", "[aws.functions]"),
            ("[functions.alert]\nmemory_mb = 512\n[aws.functions]\narchitecture = \"arm64\"\n", "[functions]", "[aws.functions]"),
            ("[buckets]\nstate = \"a-state\"\n[aws.buckets]\naudit = \"a-audit\"\n", "[buckets]", "[aws.buckets]"),
            ("[artifacts]\nbucket = \"a-artifacts\"\n[aws.artifacts]\nbucket = \"b-artifacts\"\n", "[artifacts]", "[aws.artifacts]"),
        ];
        for (text, old, new) in cases {
            let err = parse(text).expect_err(text);
            assert!(
                err.contains(&format!("`{old}`")) && err.contains(&format!("keep `{new}` only")),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn unknown_keys_in_the_aws_section_name_the_accepted_ones() {
        let err = parse("[aws]\nregoin = \"eu-west-1\"\n").expect_err("typo");
        assert!(err.contains("regoin") && err.contains("region"), "{err}");
        let err = parse("[aws.functions]\narch = \"arm64\"\n").expect_err("typo");
        assert!(
            err.contains("arch") && err.contains("architecture"),
            "{err}"
        );
    }
}
