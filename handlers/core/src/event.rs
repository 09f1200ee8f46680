//! The `UnifiedEvent` contract: what every cloud's alert becomes.
//!
//! Field names and enum spellings here are the wire format described in
//! `schemas/unified-event.schema.json`; a test regenerates that schema from these types and
//! fails when the two drift.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Version of the `UnifiedEvent` contract; bumped only on a breaking change.
pub const SCHEMA_VERSION: &str = "1";

/// One alert, finding or notification, in the same shape whatever cloud produced it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "UnifiedEvent", extend("$id" = "https://escher.dev/schemas/unified-event.schema.json"))]
pub struct UnifiedEvent {
    /// Deterministic id: derived from the source's own id, so a redelivery of the same
    /// payload gets the same `event_id` (this is what makes handling idempotent).
    pub event_id: String,
    pub event_type: EventType,
    pub severity: Severity,
    pub cloud_provider: CloudProvider,
    /// AWS account id, Azure subscription id or GCP project id.
    pub account_id: String,
    /// Cloud region, or `global` when the event has none.
    pub region: String,
    pub resource: Resource,
    pub context: EventContext,
    /// When the source says the event happened (UTC).
    pub timestamp: DateTime<Utc>,
    /// The producing service.
    pub source: EventSource,
    /// The original payload, decoded (a Pub/Sub message's base64 `data` is decoded).
    // Shared, not copied, by the events of one payload (a call launching ten instances).
    pub raw_event: Arc<serde_json::Value>,
    /// Always `"1"` for this version of the contract.
    #[schemars(extend("const" = "1"))]
    pub schema_version: String,
}

/// The resource an event is about.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resource {
    /// Cloud-specific snake_case kind, e.g. `s3_bucket`, `azure_vm`, `gce_firewall`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The cloud's full identifier (ARN, Azure resource id, GCP resource name).
    pub id: String,
    /// The short, human name.
    pub name: String,
    pub tags: BTreeMap<String, String>,
    /// Source-specific details a remediation or a reader may need (always a JSON object).
    #[schemars(schema_with = "json_object_schema")]
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

fn json_object_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "type": "object" })
}

/// Business context, from the resource's tags/labels or the source itself.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Environment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_classification: Option<DataClassification>,
    /// Estimated cost impact in USD per month.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_impact: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affected_users: Option<u64>,
}

/// How urgently a person must look. Ordered: `Info < Medium < High < Critical`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    Info,
    Medium,
    High,
    Critical,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CloudProvider {
    Aws,
    Azure,
    Gcp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Production,
    Staging,
    Dev,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum DataClassification {
    #[serde(rename = "PII")]
    Pii,
    #[serde(rename = "confidential")]
    Confidential,
    #[serde(rename = "public")]
    Public,
}

/// Cloud-neutral kind of event. Adding a value needs a README entry (the contract table).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// A bucket / Blob container readable by anyone.
    BucketPublic,
    /// A security group / NSG / firewall rule open to 0.0.0.0/0 or ::/0.
    FirewallOpen,
    VolumeUnencrypted,
    InstanceIdle,
    InstanceStateChanged,
    ResourceCreated,
    ResourceChanged,
    ResourceDeleted,
    /// A metric alert firing.
    MetricAlarm,
    AlarmResolved,
    /// Storage, CPU or memory near a limit.
    CapacityHigh,
    BudgetExceeded,
    CostSpike,
    ComplianceViolation,
    ThreatDetected,
    ServiceHealth,
    DeploymentFailed,
    ScheduledScan,
    /// A resource that costs money and nothing uses (an unattached volume, a snapshot of a
    /// deleted volume).
    ResourceUnused,
    /// A running instance using far less CPU than its size offers, over weeks (from the
    /// scan): one size down would do.
    InstanceOverprovisioned,
}

/// The service that produced the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum EventSource {
    #[serde(rename = "aws.cloudwatch")]
    AwsCloudWatch,
    #[serde(rename = "aws.cloudtrail")]
    AwsCloudTrail,
    #[serde(rename = "aws.config")]
    AwsConfig,
    #[serde(rename = "aws.guardduty")]
    AwsGuardDuty,
    #[serde(rename = "aws.securityhub")]
    AwsSecurityHub,
    #[serde(rename = "aws.health")]
    AwsHealth,
    #[serde(rename = "aws.ec2")]
    AwsEc2,
    #[serde(rename = "aws.ecs")]
    AwsEcs,
    #[serde(rename = "aws.cloudformation")]
    AwsCloudFormation,
    #[serde(rename = "aws.events")]
    AwsEvents,
    #[serde(rename = "azure.monitor")]
    AzureMonitor,
    #[serde(rename = "azure.resources")]
    AzureResources,
    #[serde(rename = "azure.policy")]
    AzurePolicy,
    #[serde(rename = "azure.storage")]
    AzureStorage,
    #[serde(rename = "azure.health")]
    AzureHealth,
    #[serde(rename = "gcp.monitoring")]
    GcpMonitoring,
    #[serde(rename = "gcp.audit")]
    GcpAudit,
    #[serde(rename = "gcp.scc")]
    GcpScc,
    #[serde(rename = "gcp.billing")]
    GcpBilling,
    #[serde(rename = "gcp.scheduler")]
    GcpScheduler,
    /// Escher's own nightly scan, on any cloud: the event's `cloud_provider` says which.
    #[serde(rename = "escher.scan")]
    EscherScan,
}

impl EventSource {
    /// The cloud a source belongs to; `None` for [`EventSource::EscherScan`], which runs on
    /// every cloud (its findings carry the cloud of the check that produced them).
    pub fn cloud(self) -> Option<CloudProvider> {
        use EventSource::*;
        match self {
            AwsCloudWatch | AwsCloudTrail | AwsConfig | AwsGuardDuty | AwsSecurityHub
            | AwsHealth | AwsEc2 | AwsEcs | AwsCloudFormation | AwsEvents => {
                Some(CloudProvider::Aws)
            }
            AzureMonitor | AzureResources | AzurePolicy | AzureStorage | AzureHealth => {
                Some(CloudProvider::Azure)
            }
            GcpMonitoring | GcpAudit | GcpScc | GcpBilling | GcpScheduler => {
                Some(CloudProvider::Gcp)
            }
            EscherScan => None,
        }
    }
}

/// Display uses the wire spelling, so tables and messages match the JSON. The spellings are
/// spelled out here rather than asked of serde: the normalizer writes a source and a cloud
/// into every event id, and serializing an enum to a `Value` allocates each time. A test
/// checks every arm against serde, and the `match` makes sure there is an arm per variant.
macro_rules! wire_names {
    ($($t:ident { $($variant:ident => $name:literal),* $(,)? })*) => {$(
        impl $t {
            /// The wire spelling, as serde writes it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($t::$variant => $name),*
                }
            }

            #[cfg(test)]
            const WIRE_NAMES: &'static [($t, &'static str)] = &[$(($t::$variant, $name)),*];
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}
wire_names! {
    Severity {
        Info => "INFO",
        Medium => "MEDIUM",
        High => "HIGH",
        Critical => "CRITICAL",
    }
    CloudProvider {
        Aws => "aws",
        Azure => "azure",
        Gcp => "gcp",
    }
    Environment {
        Production => "production",
        Staging => "staging",
        Dev => "dev",
    }
    DataClassification {
        Pii => "PII",
        Confidential => "confidential",
        Public => "public",
    }
    EventType {
        BucketPublic => "bucket_public",
        FirewallOpen => "firewall_open",
        VolumeUnencrypted => "volume_unencrypted",
        InstanceIdle => "instance_idle",
        InstanceStateChanged => "instance_state_changed",
        ResourceCreated => "resource_created",
        ResourceChanged => "resource_changed",
        ResourceDeleted => "resource_deleted",
        MetricAlarm => "metric_alarm",
        AlarmResolved => "alarm_resolved",
        CapacityHigh => "capacity_high",
        BudgetExceeded => "budget_exceeded",
        CostSpike => "cost_spike",
        ComplianceViolation => "compliance_violation",
        ThreatDetected => "threat_detected",
        ServiceHealth => "service_health",
        DeploymentFailed => "deployment_failed",
        ScheduledScan => "scheduled_scan",
        ResourceUnused => "resource_unused",
        InstanceOverprovisioned => "instance_overprovisioned",
    }
    EventSource {
        AwsCloudWatch => "aws.cloudwatch",
        AwsCloudTrail => "aws.cloudtrail",
        AwsConfig => "aws.config",
        AwsGuardDuty => "aws.guardduty",
        AwsSecurityHub => "aws.securityhub",
        AwsHealth => "aws.health",
        AwsEc2 => "aws.ec2",
        AwsEcs => "aws.ecs",
        AwsCloudFormation => "aws.cloudformation",
        AwsEvents => "aws.events",
        AzureMonitor => "azure.monitor",
        AzureResources => "azure.resources",
        AzurePolicy => "azure.policy",
        AzureStorage => "azure.storage",
        AzureHealth => "azure.health",
        GcpMonitoring => "gcp.monitoring",
        GcpAudit => "gcp.audit",
        GcpScc => "gcp.scc",
        GcpBilling => "gcp.billing",
        GcpScheduler => "gcp.scheduler",
        EscherScan => "escher.scan",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_orders_from_info_to_critical() {
        assert!(Severity::Info < Severity::Medium);
        assert!(Severity::Medium < Severity::High);
        assert!(Severity::High < Severity::Critical);
    }

    /// The spellings written out in `wire_names!` are serde's, for every variant.
    #[test]
    fn display_spells_every_variant_as_serde_does() {
        fn check<T: Serialize + fmt::Display + fmt::Debug>(names: &[(T, &str)]) {
            for (variant, name) in names {
                assert_eq!(
                    serde_json::to_value(variant).ok(),
                    Some(serde_json::Value::String((*name).to_string())),
                    "{variant:?}"
                );
                assert_eq!(variant.to_string(), *name);
            }
        }
        check(Severity::WIRE_NAMES);
        check(CloudProvider::WIRE_NAMES);
        check(Environment::WIRE_NAMES);
        check(DataClassification::WIRE_NAMES);
        check(EventType::WIRE_NAMES);
        check(EventSource::WIRE_NAMES);
    }

    #[test]
    fn enums_use_the_contract_spelling() {
        assert_eq!(Severity::Critical.to_string(), "CRITICAL");
        assert_eq!(EventType::BucketPublic.to_string(), "bucket_public");
        assert_eq!(EventSource::AwsSecurityHub.to_string(), "aws.securityhub");
        assert_eq!(DataClassification::Pii.to_string(), "PII");
        assert_eq!(CloudProvider::Gcp.to_string(), "gcp");
        assert_eq!(EventSource::GcpScc.cloud(), Some(CloudProvider::Gcp));
        assert_eq!(EventSource::EscherScan.cloud(), None);
        assert_eq!(EventSource::EscherScan.to_string(), "escher.scan");
    }
}
