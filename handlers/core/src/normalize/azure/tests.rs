//! Unit tests for the Azure rules that golden files show poorly: severity table, detection
//! edge cases (never claiming AWS or GCP shapes), error paths, and id stability.

use serde_json::{json, Value};

use super::monitor::{amount, is_capacity_metric};
use super::*;
use crate::event::{EventType, UnifiedEvent};
use crate::normalize::{Normalized, Normalizer};
use crate::severity::SeverityPolicy;

fn run(value: &Value) -> Option<Result<Normalized, NormalizeError>> {
    let cx = Cx::new(SeverityPolicy::built_in(), value);
    normalize(value, &cx)
}

fn events(value: &Value) -> Vec<UnifiedEvent> {
    match run(value) {
        Some(Ok(Normalized::Events(events))) => events,
        other => panic!("expected events, got {other:?}"),
    }
}

fn error(value: &Value) -> String {
    match run(value) {
        Some(Err(e)) => e.to_string(),
        other => panic!("expected an error, got {other:?}"),
    }
}

fn grid_event(id: &str, event_type: &str, data: Value) -> Value {
    json!({
        "id": id,
        "topic": "/subscriptions/sub-1/resourceGroups/rg",
        "subject": "/subscriptions/sub-1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1",
        "eventType": event_type,
        "eventTime": "2024-01-02T03:04:05Z",
        "dataVersion": "2",
        "data": data,
    })
}

fn metric_alert(condition: &str, sev: &str, metric: &str) -> Value {
    json!({
        "schemaId": "azureMonitorCommonAlertSchema",
        "data": {
            "essentials": {
                "alertId": "/subscriptions/sub-1/providers/Microsoft.AlertsManagement/alerts/a-1",
                "severity": sev,
                "signalType": "Metric",
                "monitorCondition": condition,
                "monitoringService": "Platform",
                "alertTargetIDs": [
                    "/subscriptions/sub-1/resourcegroups/rg/providers/microsoft.compute/virtualmachines/vm1",
                    "/subscriptions/sub-1/resourcegroups/rg/providers/microsoft.compute/virtualmachines/vm2"
                ],
                "firedDateTime": "2024-01-02T03:04:05Z",
                "resolvedDateTime": "2024-01-02T04:00:00Z"
            },
            "alertContext": {"condition": {"allOf": [{"metricName": metric, "metricValue": 97}]}}
        }
    })
}

#[test]
fn sev_levels_map_to_the_severity_table() {
    for (text, want) in [
        ("Sev0", Some(Severity::Critical)),
        ("sev1", Some(Severity::High)),
        ("Sev2", Some(Severity::Medium)),
        ("Sev3", Some(Severity::Info)),
        ("Sev4", Some(Severity::Info)),
        ("3", Some(Severity::Info)),
        ("Sev9", None),
        ("", None),
        ("S", None),
    ] {
        assert_eq!(sev_severity(text), want, "{text}");
    }
}

#[test]
fn firing_alerts_take_the_sev_and_resolved_ones_the_default() {
    let fired = events(&metric_alert("Fired", "Sev0", "Transactions"));
    assert_eq!(fired[0].event_type, EventType::MetricAlarm);
    assert_eq!(fired[0].severity, Severity::Critical);
    let resolved = events(&metric_alert("Resolved", "Sev0", "Transactions"));
    assert_eq!(resolved[0].event_type, EventType::AlarmResolved);
    assert_eq!(resolved[0].severity, Severity::Info);
    assert_ne!(fired[0].event_id, resolved[0].event_id);
}

#[test]
fn capacity_metrics_become_capacity_high() {
    for name in [
        "Percentage CPU",
        "Available Memory Bytes",
        "Used capacity",
        "storage_percent",
        "OS Disk Used Percentage",
        "cpu_percent",
    ] {
        assert!(is_capacity_metric(name), "{name}");
    }
    for name in [
        "Transactions",
        "Requests",
        "Network In Total",
        "SuccessE2ELatency",
    ] {
        assert!(!is_capacity_metric(name), "{name}");
    }
    let events = events(&metric_alert("Fired", "Sev2", "Percentage CPU"));
    assert_eq!(events[0].event_type, EventType::CapacityHigh);
}

#[test]
fn multi_resource_alert_is_one_event_about_the_first_target() {
    let events = events(&metric_alert("Fired", "Sev2", "Transactions"));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].resource.name, "vm1");
    assert_eq!(events[0].resource.kind, "azure_vm");
    assert_eq!(events[0].account_id, "sub-1");
    let targets = &events[0].resource.metadata["target_resource_ids"];
    assert_eq!(targets.as_array().map(Vec::len), Some(2));
}

#[test]
fn batch_ids_are_distinct_per_event_and_stable_on_redelivery() {
    let batch = json!([
        grid_event("e-1", "Microsoft.Resources.ResourceWriteSuccess", json!({})),
        grid_event(
            "e-2",
            "Microsoft.Resources.ResourceDeleteSuccess",
            json!({})
        ),
    ]);
    let first = events(&batch);
    let again = events(&batch);
    assert_eq!(first.len(), 2);
    assert_ne!(first[0].event_id, first[1].event_id);
    assert_eq!(first[0].event_id, again[0].event_id);
    // The same event delivered alone (not in a batch) keeps its id.
    let alone = events(&batch[1]);
    assert_eq!(alone[0].event_id, first[1].event_id);
    // A sender repeating an id in one batch still gets two distinct events.
    let repeated = json!([batch[0].clone(), batch[0].clone()]);
    let repeated = events(&repeated);
    assert_ne!(repeated[0].event_id, repeated[1].event_id);
}

#[test]
fn write_is_changed_unless_the_operation_says_create() {
    let write = |op: &str| {
        events(&grid_event(
            "e",
            "Microsoft.Resources.ResourceWriteSuccess",
            json!({"operationName": op}),
        ))[0]
            .event_type
    };
    assert_eq!(
        write("Microsoft.Compute/virtualMachines/write"),
        EventType::ResourceChanged
    );
    assert_eq!(
        write("Microsoft.Foo/things/create/action"),
        EventType::ResourceCreated
    );
    let failed = grid_event(
        "e",
        "Microsoft.Resources.ResourceActionFailure",
        json!({"operationName": "Microsoft.Compute/virtualMachines/restart/action"}),
    );
    assert!(events(&failed).is_empty());
}

#[test]
fn validation_event_in_an_array_is_a_handshake() {
    let payload = json!([{
        "id": "v", "topic": "/subscriptions/s", "subject": "",
        "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
        "eventTime": "2024-01-01T00:00:00Z", "dataVersion": "1",
        "data": {"validationCode": "code-1"}
    }]);
    match run(&payload) {
        Some(Ok(Normalized::Handshake(h))) => {
            assert_eq!(h.validation_code, "code-1");
            assert_eq!(h.kind, "eventgrid_subscription_validation");
            assert_eq!(h.validation_url, None);
        }
        other => panic!("expected a handshake, got {other:?}"),
    }
}

#[test]
fn other_clouds_shapes_are_not_claimed() {
    let not_azure = [
        // EventBridge
        json!({"version": "0", "id": "1", "detail-type": "EC2 Instance State-change Notification",
               "source": "aws.ec2", "account": "1", "time": "2024-01-01T00:00:00Z",
               "region": "us-east-1", "resources": [], "detail": {}}),
        // SNS records
        json!({"Records": [{"EventSource": "aws:sns", "Sns": {"Message": "{}"}}]}),
        // Raw CloudTrail record: has eventType but no id/subject/topic
        json!({"eventVersion": "1.08", "eventTime": "2024-01-01T00:00:00Z", "eventSource": "s3.amazonaws.com",
               "eventName": "CreateBucket", "eventType": "AwsApiCall", "eventID": "x"}),
        // Pub/Sub push
        json!({"message": {"data": "e30=", "messageId": "1"}, "subscription": "projects/p/subscriptions/s"}),
        // GCP CloudEvent
        json!({"specversion": "1.0", "type": "google.cloud.pubsub.topic.v1.messagePublished",
               "source": "//pubsub.googleapis.com/projects/p/topics/t", "id": "1", "data": {}}),
        json!({"schemaId": "something-else", "data": {}}),
        json!([]),
        json!([1, 2]),
        json!("text"),
        Value::Null,
    ];
    for payload in not_azure {
        assert!(run(&payload).is_none(), "claimed {payload}");
    }
}

#[test]
fn azure_cloudevents_are_claimed_by_type_or_source() {
    let event = json!({"specversion": "1.0", "type": "Microsoft.Storage.BlobDeleted",
        "source": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct",
        "subject": "/blobServices/default/containers/c/blobs/a/b.txt", "id": "1",
        "time": "2024-01-01T00:00:00Z", "data": {}});
    let events = events(&event);
    assert_eq!(events[0].event_type, EventType::ResourceDeleted);
    assert_eq!(events[0].resource.name, "a/b.txt");
    assert_eq!(events[0].resource.metadata["container"], "c");
}

#[test]
fn errors_name_the_field_and_the_envelope() {
    let missing_code = json!({
        "id": "v", "topic": "/subscriptions/s", "subject": "",
        "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
        "eventTime": "2024-01-01T00:00:00Z", "data": {"validationCode": 7}
    });
    let message = error(&missing_code);
    assert!(
        message.contains("`data.validationCode` must be a string, found a number"),
        "{message}"
    );
    let no_condition =
        json!({"schemaId": "azureMonitorCommonAlertSchema", "data": {"essentials": {}}});
    let message = error(&no_condition);
    assert!(
        message.contains("data.essentials.monitorCondition"),
        "{message}"
    );
    let essentials_string =
        json!({"schemaId": "azureMonitorCommonAlertSchema", "data": {"essentials": "x"}});
    assert!(error(&essentials_string).contains("must be an object, found a string"));
    let legacy = json!({"schemaId": "AzureMonitorMetricAlert", "data": {"status": "Activated", "context": {}}});
    assert!(error(&legacy).contains("data.context.resourceId` is missing"));
    let mixed =
        json!([grid_event("e", "Microsoft.Resources.ResourceWriteSuccess", json!({})), {"x": 1}]);
    let message = error(&mixed);
    assert!(
        message.contains("`[1]`") && message.contains("keys [x]"),
        "{message}"
    );
    let unknown_category = json!({"schemaId": "azureMonitorCommonAlertSchema", "data": {
        "essentials": {"monitorCondition": "Fired", "signalType": "Activity Log", "monitoringService": "Activity Log - Recommendation"},
        "alertContext": {"eventSource": "Recommendation"}}});
    let message = error(&unknown_category);
    assert!(
        message.contains("`Recommendation` is not supported"),
        "{message}"
    );
}

#[test]
fn budget_amounts_and_cost_impact() {
    assert_eq!(amount("$11,111.00"), Some(11111.0));
    assert_eq!(amount(" 25 "), Some(25.0));
    assert_eq!(amount("n/a"), None);
    let budget = |spent: &str| {
        json!({"schemaId": "azureMonitorCommonAlertSchema", "data": {
            "essentials": {"monitoringService": "CostAlerts", "monitorCondition": "Fired",
                           "firedDateTime": "2024-01-01T00:00:00Z", "alertId": "/subscriptions/s/providers/Microsoft.CostManagement/alerts/b"},
            "alertContext": {"AlertCategory": "budgets", "AlertData": {
                "BudgetThreshold": "$100.00", "SpentAmount": spent, "Unit": "USD",
                "BudgetId": "/subscriptions/s/providers/Microsoft.Consumption/budgets/b"}}}})
    };
    let over = events(&budget("$150.25"));
    assert_eq!(over[0].event_type, EventType::BudgetExceeded);
    assert_eq!(over[0].context.cost_impact, Some(50.25));
    assert_eq!(over[0].account_id, "s");
    let under = events(&budget("$80.00"));
    assert_eq!(under[0].event_type, EventType::CostSpike);
    assert_eq!(under[0].context.cost_impact, None);
}

#[test]
fn placeholders_still_normalize() {
    let mut alert = metric_alert("Fired", "Sev3", "Transactions");
    if let Some(essentials) = alert.pointer_mut("/data/essentials") {
        essentials["firedDateTime"] = json!("yyyy-mm-ddThh:mm:ssZ");
        essentials["alertTargetIDs"] = json!(["/subscriptions/{subscription-id}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{vm}"]);
    }
    let events = events(&alert);
    assert_eq!(events[0].account_id, "{subscription-id}");
    assert_eq!(events[0].resource.name, "{vm}");
}

#[test]
fn arbitrary_values_inside_known_envelopes_never_panic() {
    let junk = [
        json!(null),
        json!(1),
        json!("s"),
        json!([]),
        json!({}),
        json!([null]),
        json!({"a": [1, {"b": null}]}),
    ];
    let normalizer = Normalizer::default();
    for body in &junk {
        for wrapper in [
            json!({"schemaId": "azureMonitorCommonAlertSchema", "data": body}),
            json!({"schemaId": "azureMonitorCommonAlertSchema", "data": {"essentials": {"monitorCondition": "Fired", "signalType": "Metric", "alertTargetIDs": body}, "alertContext": body}}),
            json!({"schemaId": "AzureMonitorMetricAlert", "data": {"status": "Activated", "context": {"resourceId": "/x", "condition": body}}}),
            json!({"schemaId": "Microsoft.Insights/activityLogs", "data": {"context": {"activityLog": {"eventSource": "ServiceHealth", "properties": body}}}}),
            json!([{"id": body, "subject": body, "topic": body, "eventType": "Microsoft.Storage.BlobCreated", "eventTime": body, "data": body}]),
            json!({"id": "1", "subject": body, "eventType": "Microsoft.PolicyInsights.PolicyStateChanged", "dataVersion": body, "data": body}),
            json!({"id": "1", "subject": "s", "eventType": "Microsoft.ResourceNotifications.HealthResources.AvailabilityStatusChanged", "eventTime": "t", "data": {"resourceInfo": body}}),
        ] {
            let _ = normalizer.normalize_value(&wrapper);
        }
    }
}
