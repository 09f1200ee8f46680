//! `[aws]`: what only an AWS deployment has. The region is an AWS region code, the trail
//! is CloudTrail's, the function settings are Lambda's limits (memory, timeout, reserved
//! concurrency, CloudWatch Logs retention, an SQS dead-letter queue), the buckets and the
//! artifacts are S3's; Azure and GCP will bring sections of their own (`[azure]`, `[gcp]`)
//! beside this one.

use serde::{Deserialize, Serialize};

use super::checked::{bounded_number, checked_string};

/// `[aws]`: where and how the AWS stack is deployed.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AwsConfig {
    /// The region to deploy into; absent: `AWS_REGION` / the profile (the AWS chain).
    pub region: Option<AwsRegion>,
    pub cloudtrail: CloudTrailConfig,
    pub functions: FunctionsConfig,
    pub buckets: BucketsConfig,
    pub artifacts: ArtifactsConfig,
}

/// `[aws.cloudtrail]`
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

/// `[aws.functions]`
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

/// `[aws.buckets]`: explicit names; absent names are generated by CloudFormation (unique, but
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

/// `[aws.artifacts]`: where the functions' zips are. Zip keys are content-addressed
/// (`<sha256>.zip`), so unchanged code is never uploaded or redeployed. `extend` fills
/// these after packaging; set them here to pin a build.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArtifactsConfig {
    pub bucket: Option<BucketName>,
    pub alert_zip_key: Option<ZipKey>,
    pub scan_zip_key: Option<ZipKey>,
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
