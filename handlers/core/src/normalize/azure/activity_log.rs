//! Activity-log alerts, shared by the common alert schema (`data.alertContext`) and the
//! older webhook (`data.context.activityLog`): both carry the same activity-log record.
//!
//! Category → event: Administrative → resource_created/changed/deleted from the operation
//! (a failed `Microsoft.Resources/deployments/write` → deployment_failed), Security →
//! threat_detected, Policy → compliance_violation, Autoscale → resource_changed (the
//! instance count changed), ServiceHealth and ResourceHealth → service_health.

use serde_json::{Map, Value};

use super::{operation_says_create, put, put_str, region_name, resource_from_id, text};
use crate::event::{EventSource, EventType, Resource, Severity};

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Category {
    Administrative,
    Security,
    Policy,
    Autoscale,
    ServiceHealth,
    ResourceHealth,
}

impl Category {
    /// Reads `Administrative`, `ServiceHealth`, `Resource Health`, `Activity Log - Policy`…
    pub fn parse(text: &str) -> Option<Category> {
        let key: String = text
            .rsplit(" - ")
            .next()
            .unwrap_or(text)
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        match key.as_str() {
            "administrative" => Some(Category::Administrative),
            "security" => Some(Category::Security),
            "policy" => Some(Category::Policy),
            "autoscale" => Some(Category::Autoscale),
            "servicehealth" => Some(Category::ServiceHealth),
            "resourcehealth" => Some(Category::ResourceHealth),
            _ => None,
        }
    }

    /// The category an activity-log record states (`eventSource` is sometimes a number in
    /// published samples, so `properties.eventCategory` is the second place to look).
    pub fn of_record(record: &Value) -> Option<Category> {
        text(record, "/eventSource")
            .and_then(Category::parse)
            .or_else(|| text(record, "/properties/eventCategory").and_then(Category::parse))
    }

    pub fn source(self) -> EventSource {
        match self {
            Category::ServiceHealth | Category::ResourceHealth => EventSource::AzureHealth,
            Category::Policy => EventSource::AzurePolicy,
            Category::Administrative | Category::Security | Category::Autoscale => {
                EventSource::AzureMonitor
            }
        }
    }

    pub fn event_type(self, record: &Value) -> EventType {
        match self {
            Category::Administrative => {
                let operation = operation(record);
                let op = operation.unwrap_or_default().to_ascii_lowercase();
                let failed =
                    text(record, "/status").is_some_and(|s| s.eq_ignore_ascii_case("Failed"));
                if failed && op == "microsoft.resources/deployments/write" {
                    EventType::DeploymentFailed
                } else if op.ends_with("/delete") {
                    EventType::ResourceDeleted
                } else if operation_says_create(operation) {
                    EventType::ResourceCreated
                } else {
                    EventType::ResourceChanged
                }
            }
            Category::Security => EventType::ThreatDetected,
            Category::Policy => EventType::ComplianceViolation,
            Category::Autoscale => EventType::ResourceChanged,
            Category::ServiceHealth | Category::ResourceHealth => EventType::ServiceHealth,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Category::Administrative => "Administrative",
            Category::Security => "Security",
            Category::Policy => "Policy",
            Category::Autoscale => "Autoscale",
            Category::ServiceHealth => "ServiceHealth",
            Category::ResourceHealth => "ResourceHealth",
        }
    }
}

fn operation(record: &Value) -> Option<&str> {
    text(record, "/operationName").or(text(record, "/authorization/action"))
}

/// The severity the record itself implies, used when the alert rule gives none: Defender's
/// own severity on a Security record (`High`, `Medium`, `Low`, `Informational`), and INFO
/// for a recovery (a resource back to Available, a resolved Service Health incident).
pub(super) fn record_severity(category: Category, record: &Value) -> Option<Severity> {
    let is = |pointer: &str, expected: &str| {
        text(record, pointer).is_some_and(|v| v.eq_ignore_ascii_case(expected))
    };
    match category {
        Category::Security => {
            match text(record, "/properties/severity")?
                .to_ascii_lowercase()
                .as_str()
            {
                "critical" => Some(Severity::Critical),
                "high" => Some(Severity::High),
                "medium" => Some(Severity::Medium),
                "low" | "informational" | "info" => Some(Severity::Info),
                _ => None,
            }
        }
        Category::ResourceHealth if is("/properties/currentHealthStatus", "Available") => {
            Some(Severity::Info)
        }
        Category::ServiceHealth if is("/properties/stage", "Resolved") => Some(Severity::Info),
        _ => None,
    }
}

/// The resource the record is about. Service Health is about a platform incident, so its
/// resource is the subscription's `Microsoft.ResourceHealth/events/{trackingId}`.
pub(super) fn resource(
    category: Category,
    record: &Value,
    target: Option<&str>,
    subscription: &str,
) -> Option<Resource> {
    if category == Category::ServiceHealth {
        if let Some(tracking) = text(record, "/properties/trackingId") {
            let mut resource = resource_from_id(&format!(
                "/subscriptions/{subscription}/providers/Microsoft.ResourceHealth/events/{tracking}"
            ));
            resource.name = tracking.to_string();
            return Some(resource);
        }
    }
    let id = target
        .or(text(record, "/resourceId"))
        .or(text(record, "/authorization/scope"))
        .or(text(record, "/properties/entity"))?;
    let mut resource = resource_from_id(id);
    if let Some(kind) = text(record, "/resourceType").filter(|t| t.contains('/')) {
        resource.kind = super::arm::resource_kind(kind);
    }
    Some(resource)
}

/// The region: Service Health's single impacted region, or a Defender alert's location.
pub(super) fn region(category: Category, record: &Value, resource: &Resource) -> Option<String> {
    match category {
        Category::ServiceHealth => text(record, "/properties/region").and_then(region_name),
        _ => super::arm::ArmId::parse(&resource.id)
            .location
            .and_then(region_name),
    }
}

/// What a reader or a remediation needs from the record.
pub(super) fn describe(category: Category, record: &Value, meta: &mut Map<String, Value>) {
    put_str(meta, "category", Some(category.label()));
    put_str(meta, "operation_name", operation(record));
    put_str(meta, "status", text(record, "/status"));
    put_str(meta, "sub_status", text(record, "/subStatus"));
    put_str(meta, "caller", text(record, "/caller"));
    put_str(meta, "level", text(record, "/level"));
    put_str(meta, "description", text(record, "/description"));
    put_str(meta, "correlation_id", text(record, "/correlationId"));
    put_str(meta, "event_data_id", text(record, "/eventDataId"));
    put_str(meta, "resource_group", text(record, "/resourceGroupName"));
    let props = record.get("properties").unwrap_or(&Value::Null);
    match category {
        Category::ServiceHealth => {
            for (key, field) in [
                ("title", "/title"),
                ("service", "/service"),
                ("region", "/region"),
                ("incident_type", "/incidentType"),
                ("tracking_id", "/trackingId"),
                ("stage", "/stage"),
                ("impact_start_time", "/impactStartTime"),
                ("impact_mitigation_time", "/impactMitigationTime"),
                ("communication_id", "/communicationId"),
            ] {
                put_str(meta, key, text(props, field));
            }
            // The older webhook sends the impacted services as JSON text.
            match props.get("impactedServices") {
                Some(Value::String(encoded)) => {
                    let parsed = serde_json::from_str::<Value>(encoded)
                        .unwrap_or_else(|_| Value::String(encoded.clone()));
                    meta.insert("impacted_services".into(), parsed);
                }
                other => put(meta, "impacted_services", other),
            }
        }
        Category::ResourceHealth => {
            for (key, field) in [
                ("title", "/title"),
                ("details", "/details"),
                ("current_health_status", "/currentHealthStatus"),
                ("previous_health_status", "/previousHealthStatus"),
                ("health_event_type", "/type"),
                ("cause", "/cause"),
            ] {
                put_str(meta, key, text(props, field));
            }
        }
        Category::Security => {
            for (key, field) in [
                ("alert_severity", "/severity"),
                ("compromised_entity", "/compromisedEntity"),
                ("attacked_resource_type", "/attackedResourceType"),
                ("action_taken", "/actionTaken"),
                ("remediation_steps", "/remediationSteps"),
            ] {
                put_str(meta, key, text(props, field));
            }
            put(meta, "properties", Some(props));
        }
        Category::Policy | Category::Autoscale | Category::Administrative => {
            put(meta, "properties", Some(props));
        }
    }
}
