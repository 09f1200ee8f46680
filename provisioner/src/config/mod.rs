//! `escher.toml`: what the user decides about their Escher Extend deployment.
//!
//! Every field has a default, so a missing file deploys a working stack. Values are checked
//! while parsing (each field is a type that only holds valid values), so a typo fails at
//! `render` time with the file, the line and what is accepted, not halfway through a deploy.
//!
//! ```toml
//! [stack]
//! name = "escher-extend"        # CloudFormation stack name, prefix of function and topic names
//! region = "eu-west-1"          # absent: the AWS configuration chain decides
//!
//! [schedule]
//! timezone = "Europe/Berlin"    # absent: the machine's time zone, else UTC
//! scan_time = "02:00"
//!
//! [audit]
//! retention_days = 365          # Object Lock (compliance mode) default retention
//!
//! [notifications.critical]
//! emails = ["oncall@example.com"]
//! sms = ["+4915112345678"]
//! [notifications.high]
//! emails = ["ops@example.com"]
//!
//! [cloudtrail]
//! create_trail = "auto"         # auto | always | never
//!
//! [functions]
//! architecture = "arm64"        # arm64 | x86_64
//! log_retention_days = 365
//! dlq_retention_days = 14
//! alert = { memory_mb = 256, timeout_seconds = 60, reserved_concurrency = 10 }
//! scan = { memory_mb = 512, timeout_seconds = 300, reserved_concurrency = 1 }
//!
//! [buckets]                     # absent: CloudFormation generates unique names
//! state = "acme-escher-state"
//! audit = "acme-escher-audit"
//! trail = "acme-escher-trail"
//! access_logs = "acme-escher-access-logs"
//!
//! [artifacts]                   # normally filled by `extend` after packaging
//! bucket = "acme-escher-artifacts"
//! alert_zip_key = "<sha256 of the zip>.zip"
//! scan_zip_key = "<sha256 of the zip>.zip"
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

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
}

/// The whole `escher.toml`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EscherConfig {
    pub stack: StackConfig,
    pub schedule: ScheduleConfig,
    pub audit: AuditConfig,
    pub notifications: NotificationsConfig,
    pub cloudtrail: CloudTrailConfig,
    pub functions: FunctionsConfig,
    pub buckets: BucketsConfig,
    pub artifacts: ArtifactsConfig,
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
        toml::from_str(text).map_err(|e| ConfigError::Invalid {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }
}

/// `[stack]`
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StackConfig {
    /// The CloudFormation stack name; also the prefix of function, topic and trail names and
    /// of the SSM path `/escher/<name>/`. Default `escher-extend`.
    pub name: StackName,
    /// The region to deploy into; absent: `AWS_REGION` / the profile (the AWS chain).
    pub region: Option<AwsRegion>,
}

/// `[schedule]`: when the nightly scan runs.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    /// IANA time zone of `scan_time` (`Europe/Berlin`); absent: `--timezone`, else the
    /// machine's zone, else UTC.
    pub timezone: Option<TimeZoneName>,
    /// Local time of the daily scan, `HH:MM` (24 h). Default `02:00`.
    pub scan_time: ScanTime,
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

/// `[cloudtrail]`
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CloudTrailConfig {
    /// API-call alerts (a bucket made public, a security group opened) reach EventBridge only
    /// when a trail records them.
    pub create_trail: CreateTrail,
}

/// Whether the stack creates its own CloudTrail trail.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CreateTrail {
    /// Create one when the account has no trail (checked by `extend`; `render`, which does
    /// not talk to AWS, includes it).
    #[default]
    Auto,
    Always,
    Never,
}

/// `[functions]`
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FunctionsConfig {
    /// CPU architecture of both functions. Default `arm64` (cheaper, starts faster).
    pub architecture: Architecture,
    /// Days the functions' CloudWatch logs are kept (a value CloudWatch accepts). Default 365.
    pub log_retention_days: LogRetentionDays,
    /// Days a failed invocation waits in its dead-letter queue (1..=14). Default 14.
    pub dlq_retention_days: DlqRetentionDays,
    /// The function that handles alerts. Default 256 MB, 60 s, 10 concurrent runs.
    pub alert: FunctionSettings,
    /// The function that runs the nightly scan. Default 512 MB, 300 s, 1 run at a time.
    pub scan: FunctionSettings,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Architecture {
    #[default]
    Arm64,
    X86_64,
}

impl Architecture {
    pub fn as_lambda(self) -> &'static str {
        match self {
            Architecture::Arm64 => "arm64",
            Architecture::X86_64 => "x86_64",
        }
    }
}

/// One function's settings as written; absent values take that function's defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FunctionSettings {
    /// Memory in MB (128..=10240); Lambda gives CPU in proportion.
    pub memory_mb: Option<MemoryMb>,
    /// Seconds before an invocation is stopped (1..=900).
    pub timeout_seconds: Option<TimeoutSeconds>,
    /// Concurrent runs reserved for (and capping) the function, so an alert storm cannot
    /// starve the account's other functions and two scans never overlap. `0` reserves
    /// nothing: needed on new accounts whose Lambda concurrency limit is 10, where AWS
    /// refuses any reservation.
    pub reserved_concurrency: Option<ReservedConcurrency>,
}

/// A function's settings with the defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FunctionSizing {
    pub memory_mb: u32,
    pub timeout_seconds: u32,
    /// 0: no reservation.
    pub reserved_concurrency: u32,
}

impl FunctionSettings {
    fn with_defaults(&self, defaults: FunctionSizing) -> FunctionSizing {
        FunctionSizing {
            memory_mb: self.memory_mb.map_or(defaults.memory_mb, |v| v.0),
            timeout_seconds: self
                .timeout_seconds
                .map_or(defaults.timeout_seconds, |v| v.0),
            reserved_concurrency: self
                .reserved_concurrency
                .map_or(defaults.reserved_concurrency, |v| v.0),
        }
    }
}

impl FunctionsConfig {
    /// The alert function: 256 MB, 60 s, 10 concurrent runs unless configured.
    pub fn alert_sizing(&self) -> FunctionSizing {
        self.alert.with_defaults(FunctionSizing {
            memory_mb: 256,
            timeout_seconds: 60,
            reserved_concurrency: 10,
        })
    }

    /// The scan function: 512 MB, 300 s, one run at a time unless configured.
    pub fn scan_sizing(&self) -> FunctionSizing {
        self.scan.with_defaults(FunctionSizing {
            memory_mb: 512,
            timeout_seconds: 300,
            reserved_concurrency: 1,
        })
    }
}

/// `[buckets]`: explicit names; absent names are generated by CloudFormation (unique, but
/// not chosen by you).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BucketsConfig {
    /// Approvals, idempotency markers and the event inbox.
    pub state: Option<BucketName>,
    /// Object-locked audit records.
    pub audit: Option<BucketName>,
    /// The CloudTrail trail's log files (only when a trail is created).
    pub trail: Option<BucketName>,
    /// S3 server access logs of the other buckets.
    pub access_logs: Option<BucketName>,
}

/// `[artifacts]`: where the functions' zips are. Zip keys are content-addressed
/// (`<sha256>.zip`), so unchanged code is never uploaded or redeployed. `extend` fills
/// these after packaging; set them here to pin a build.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArtifactsConfig {
    pub bucket: Option<BucketName>,
    pub alert_zip_key: Option<ZipKey>,
    pub scan_zip_key: Option<ZipKey>,
}

/// A string type that is checked when it is parsed.
macro_rules! checked_string {
    ($(#[$doc:meta])* $name:ident, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(value: String) -> Result<Self, String> {
                let check: fn(&str) -> Result<(), String> = $check;
                check(&value)?;
                Ok($name(value))
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                Self::try_from(s.to_string())
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
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
    /// An AWS region code such as `eu-west-1`.
    AwsRegion,
    |s| {
        let parts: Vec<&str> = s.split('-').collect();
        let ok = parts.len() >= 3
            && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()))
            && parts.last().is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()));
        if ok {
            Ok(())
        } else {
            Err(format!("region `{s}`: use an AWS region code such as `eu-west-1` or `us-east-1`"))
        }
    }
);

checked_string!(
    /// An S3 bucket name: 3 to 63 lowercase letters, digits, dots and hyphens, starting and
    /// ending with a letter or digit.
    BucketName,
    |s| {
        let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        let ok = (3..=63).contains(&s.len())
            && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
            && edge_ok(s.chars().next())
            && edge_ok(s.chars().last())
            && !s.contains("..");
        if ok {
            Ok(())
        } else {
            Err(format!(
                "bucket name `{s}`: use 3 to 63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit"
            ))
        }
    }
);

checked_string!(
    /// A content-addressed zip key: 64 lowercase hex digits (the zip's SHA-256) and `.zip`.
    ZipKey,
    |s| {
        let ok = s.strip_suffix(".zip").is_some_and(|h| {
            h.len() == 64 && h.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        });
        if ok {
            Ok(())
        } else {
            Err(format!("zip key `{s}`: use `<sha256 of the zip in lowercase hex>.zip`"))
        }
    }
);

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

/// An IANA time zone name (`Europe/Berlin`, `America/New_York`, `UTC`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeZoneName(pub Tz);

impl FromStr for TimeZoneName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.parse::<Tz>().map(TimeZoneName).map_err(|_| {
            format!(
                "time zone `{s}` is not an IANA time zone name; use one such as `Europe/Berlin`, `America/New_York` or `UTC`"
            )
        })
    }
}

impl TryFrom<String> for TimeZoneName {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        value.parse()
    }
}

impl From<TimeZoneName> for String {
    fn from(value: TimeZoneName) -> String {
        value.0.name().to_string()
    }
}

impl fmt::Display for TimeZoneName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name())
    }
}

/// Where the scan's time zone came from (shown by `render`, so a surprising zone can be
/// traced back).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeZoneSource {
    Flag,
    Config,
    Machine,
    /// The machine's zone could not be read or is not an IANA name.
    UtcFallback,
}

/// `--timezone` wins over `escher.toml`, which wins over the machine's zone; UTC when none
/// is known.
pub fn resolve_timezone(
    flag: Option<TimeZoneName>,
    config: &ScheduleConfig,
) -> (TimeZoneName, TimeZoneSource) {
    if let Some(tz) = flag {
        return (tz, TimeZoneSource::Flag);
    }
    if let Some(tz) = config.timezone {
        return (tz, TimeZoneSource::Config);
    }
    // iana-time-zone reads the /etc/localtime symlink, then /etc/timezone.
    match iana_time_zone::get_timezone()
        .ok()
        .and_then(|name| name.parse::<TimeZoneName>().ok())
    {
        Some(tz) => (tz, TimeZoneSource::Machine),
        None => (TimeZoneName(Tz::UTC), TimeZoneSource::UtcFallback),
    }
}

/// A local time of day, `HH:MM` in 24-hour form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct ScanTime {
    pub hour: u8,
    pub minute: u8,
}

impl Default for ScanTime {
    fn default() -> Self {
        ScanTime { hour: 2, minute: 0 }
    }
}

impl FromStr for ScanTime {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("scan time `{s}`: use `HH:MM` in 24-hour form, e.g. `02:00` or `23:30`");
        let (h, m) = s.split_once(':').ok_or_else(bad)?;
        if h.len() != 2 || m.len() != 2 {
            return Err(bad());
        }
        let hour: u8 = h.parse().map_err(|_| bad())?;
        let minute: u8 = m.parse().map_err(|_| bad())?;
        if hour > 23 || minute > 59 {
            return Err(bad());
        }
        Ok(ScanTime { hour, minute })
    }
}

impl TryFrom<String> for ScanTime {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        value.parse()
    }
}

impl From<ScanTime> for String {
    fn from(value: ScanTime) -> String {
        value.to_string()
    }
}

impl fmt::Display for ScanTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.hour, self.minute)
    }
}

/// A whole number in a range, checked when parsed.
macro_rules! bounded_number {
    ($(#[$doc:meta])* $name:ident, $what:literal, $min:literal ..= $max:literal, default $default:literal) => {
        bounded_number!($(#[$doc])* $name, $what, $min..=$max);

        impl Default for $name {
            fn default() -> Self {
                $name($default)
            }
        }
    };
    ($(#[$doc:meta])* $name:ident, $what:literal, $min:literal ..= $max:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
        #[serde(try_from = "i64", into = "u32")]
        pub struct $name(pub u32);

        impl TryFrom<i64> for $name {
            type Error = String;
            fn try_from(value: i64) -> Result<Self, String> {
                if ($min..=$max).contains(&value) {
                    Ok($name(value as u32))
                } else {
                    Err(format!("{} must be between {} and {}, not {value}", $what, $min, $max))
                }
            }
        }

        impl From<$name> for u32 {
            fn from(value: $name) -> u32 {
                value.0
            }
        }
    };
}

bounded_number!(AuditRetentionDays, "audit retention_days", 1..=36500, default 365);
bounded_number!(DlqRetentionDays, "dlq_retention_days (SQS keeps messages at most 14 days)", 1..=14, default 14);
bounded_number!(MemoryMb, "memory_mb", 128..=10240);
bounded_number!(TimeoutSeconds, "timeout_seconds", 1..=900);
bounded_number!(
    ReservedConcurrency,
    "reserved_concurrency (0: no reservation)",
    0..=1000
);

/// The retention periods CloudWatch Logs accepts.
const LOG_RETENTION_DAYS: [u32; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// Days CloudWatch keeps the functions' logs; only the values CloudWatch accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "i64", into = "u32")]
pub struct LogRetentionDays(pub u32);

impl TryFrom<i64> for LogRetentionDays {
    type Error = String;
    fn try_from(value: i64) -> Result<Self, String> {
        match LOG_RETENTION_DAYS.iter().find(|d| i64::from(**d) == value) {
            Some(d) => Ok(LogRetentionDays(*d)),
            None => Err(format!(
                "log_retention_days must be one of the values CloudWatch Logs accepts ({}), not {value}",
                LOG_RETENTION_DAYS.map(|d| d.to_string()).join(", ")
            )),
        }
    }
}

impl From<LogRetentionDays> for u32 {
    fn from(value: LogRetentionDays) -> u32 {
        value.0
    }
}

impl Default for LogRetentionDays {
    fn default() -> Self {
        LogRetentionDays(365)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<EscherConfig, String> {
        EscherConfig::parse(text, Path::new("escher.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn an_empty_file_gives_the_documented_defaults() {
        let config = parse("").expect("empty config");
        assert_eq!(config.stack.name.as_str(), "escher-extend");
        assert_eq!(config.stack.region, None);
        assert_eq!(config.schedule.scan_time, ScanTime { hour: 2, minute: 0 });
        assert_eq!(config.audit.retention_days.0, 365);
        assert_eq!(config.cloudtrail.create_trail, CreateTrail::Auto);
        assert_eq!(config.functions.architecture, Architecture::Arm64);
        assert_eq!(
            config.functions.scan_sizing(),
            FunctionSizing {
                memory_mb: 512,
                timeout_seconds: 300,
                reserved_concurrency: 1
            }
        );
        assert_eq!(config.functions.alert_sizing().memory_mb, 256);
        assert_eq!(config.functions.alert_sizing().reserved_concurrency, 10);
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
            region = "eu-west-1"
            [schedule]
            timezone = "Europe/Berlin"
            scan_time = "23:30"
            [notifications.critical]
            emails = ["oncall@example.com"]
            sms = ["+4915112345678"]
            [cloudtrail]
            create_trail = "never"
            [functions]
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
        assert_eq!(config.cloudtrail.create_trail, CreateTrail::Never);
        assert_eq!(config.functions.architecture, Architecture::X86_64);
        // A function given in part keeps that function's defaults for the rest.
        assert_eq!(
            config.functions.scan_sizing(),
            FunctionSizing {
                memory_mb: 1024,
                timeout_seconds: 900,
                reserved_concurrency: 1
            }
        );
        assert_eq!(config.functions.alert_sizing().timeout_seconds, 60);
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
            ("[functions]\nlog_retention_days = 10\n", "365"),
            ("[functions]\ndlq_retention_days = 30\n", "14"),
            ("[functions.alert]\nmemory_mb = 64\n", "128"),
            ("[audit]\nretention_days = 0\n", "between 1"),
            ("[functions]\narchitecture = \"arm\"\n", "x86_64"),
            ("[cloudtrail]\ncreate_trail = \"yes\"\n", "auto"),
            (
                "[notifications.high]\nemails = [\"ops\"]\n",
                "name@example.com",
            ),
            ("[notifications.high]\nsms = [\"0151 1234\"]\n", "E.164"),
            ("[buckets]\nstate = \"My_Bucket\"\n", "lowercase"),
            ("[artifacts]\nalert_zip_key = \"bootstrap.zip\"\n", "sha256"),
            ("[stack]\nname = \"1escher\"\n", "starting with a letter"),
            ("[stack]\nregion = \"Frankfurt\"\n", "eu-west-1"),
        ];
        for (text, accepted) in cases {
            let err = parse(text).expect_err(text);
            assert!(err.contains(accepted), "{text}: {err}");
        }
    }

    #[test]
    fn timezone_flag_beats_config_beats_machine() {
        let config = ScheduleConfig {
            timezone: Some(TimeZoneName(Tz::Asia__Tokyo)),
            ..ScheduleConfig::default()
        };
        let flag = Some(TimeZoneName(Tz::America__New_York));
        assert_eq!(
            resolve_timezone(flag, &config),
            (TimeZoneName(Tz::America__New_York), TimeZoneSource::Flag)
        );
        assert_eq!(
            resolve_timezone(None, &config),
            (TimeZoneName(Tz::Asia__Tokyo), TimeZoneSource::Config)
        );
        let (_, source) = resolve_timezone(None, &ScheduleConfig::default());
        assert!(matches!(
            source,
            TimeZoneSource::Machine | TimeZoneSource::UtcFallback
        ));
    }
}
