//! Expected results for the shared samples of this cloud (file name → event types),
//! decided by reading each sample (see `../shared/fixtures/SOURCES.md`).

use crate::Expect;

pub const EXPECTED: &[(&str, Expect)] = &[
    // Resource Health says the VM is available again: a health notice about the VM.
    (
        "cloudevents-healthresources-vm-availabilitystatuschanged.json",
        Expect::Events(&["service_health"]),
    ),
    (
        "cloudevents-policyinsights-policystatechanged.json",
        Expect::Events(&["compliance_violation"]),
    ),
    (
        "cloudevents-policyinsights-policystatecreated-mgmtgroup.json",
        Expect::Events(&["compliance_violation"]),
    ),
    // A storage account write: create-or-update, Event Grid cannot tell which.
    (
        "cloudevents-resources-resourcewritesuccess-specexample.json",
        Expect::Events(&["resource_changed"]),
    ),
    (
        "cloudevents-storage-blobcreated-specexample.json",
        Expect::Events(&["resource_created"]),
    ),
    // The VM is being deallocated (annotation from Resource Health).
    (
        "eventgrid-schema-healthresources-vm-resourceannotated.json",
        Expect::Events(&["service_health"]),
    ),
    (
        "eventgrid-schema-policyinsights-policystatechanged-mgmtgroup.json",
        Expect::Events(&["compliance_violation"]),
    ),
    (
        "eventgrid-schema-policyinsights-policystatecreated.json",
        Expect::Events(&["compliance_violation"]),
    ),
    // listKeys on an Event Hub authorization rule: an action on the resource.
    (
        "eventgrid-schema-resources-resourceactionsuccess.json",
        Expect::Events(&["resource_changed"]),
    ),
    (
        "eventgrid-schema-resources-resourcedeletesuccess.json",
        Expect::Events(&["resource_deleted"]),
    ),
    (
        "eventgrid-schema-resources-resourcewritesuccess.json",
        Expect::Events(&["resource_changed"]),
    ),
    (
        "eventgrid-schema-storage-blobcreated-sdk.json",
        Expect::Events(&["resource_created"]),
    ),
    (
        "eventgrid-schema-subscriptionvalidationevent.json",
        Expect::Handshake,
    ),
    // An alert on a VM restart action (Administrative category).
    (
        "monitor-common-schema-activity-log-administrative-test-action.json",
        Expect::Events(&["resource_changed"]),
    ),
    // Spent $11,111 against a $50 budget.
    (
        "monitor-common-schema-budget-actual-cost-test-action.json",
        Expect::Events(&["budget_exceeded"]),
    ),
    // A Heartbeat log query over its threshold: a firing alert, not a capacity metric.
    (
        "monitor-common-schema-log-search-alert-v2-test-action.json",
        Expect::Events(&["metric_alarm"]),
    ),
    // Storage Transactions above a dynamic threshold: load, not capacity.
    (
        "monitor-common-schema-metric-alert-dynamic-test-action.json",
        Expect::Events(&["metric_alarm"]),
    ),
    (
        "monitor-common-schema-metric-alert-resolved.json",
        Expect::Events(&["alarm_resolved"]),
    ),
    (
        "monitor-common-schema-metric-alert-static-test-action.json",
        Expect::Events(&["metric_alarm"]),
    ),
    (
        "monitor-common-schema-resource-health-test-action.json",
        Expect::Events(&["service_health"]),
    ),
    (
        "monitor-common-schema-service-health-test-action.json",
        Expect::Events(&["service_health"]),
    ),
    // An action group was written (Administrative record without eventSource).
    (
        "monitor-legacy-activity-log-alert-webhook-administrative.json",
        Expect::Events(&["resource_changed"]),
    ),
    (
        "monitor-legacy-activity-log-alert-webhook-resourcehealth.json",
        Expect::Events(&["service_health"]),
    ),
    // Defender: failed SSH brute force.
    (
        "monitor-legacy-activity-log-alert-webhook-security.json",
        Expect::Events(&["threat_detected"]),
    ),
    (
        "monitor-legacy-activity-log-alert-webhook-servicehealth.json",
        Expect::Events(&["service_health"]),
    ),
    (
        "monitor-legacy-metric-alert-webhook-AzureMonitorMetricAlert.json",
        Expect::Events(&["metric_alarm"]),
    ),
];
