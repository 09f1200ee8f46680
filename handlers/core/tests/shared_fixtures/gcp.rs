//! Expected results for the shared samples of this cloud (file name → event types), decided
//! by reading each sample (see `../shared/fixtures/SOURCES.md`).

use crate::Expect;

pub const EXPECTED: &[(&str, Expect)] = &[
    // Ingress tcp/80 + icmp with no sourceRanges and no source tags: GCP defaults to 0.0.0.0/0.
    (
        "auditlog-compute-firewalls-insert.json",
        Expect::Events(&["firewall_open"]),
    ),
    (
        "auditlog-compute-instanceTemplates-insert-custodian.json",
        Expect::Events(&["resource_created"]),
    ),
    (
        "auditlog-compute-instances-insert.json",
        Expect::Events(&["resource_created"]),
    ),
    (
        "auditlog-iam-createrole-custodian.json",
        Expect::Events(&["resource_created"]),
    ),
    (
        "auditlog-logentrydata-pubsub-createtopic-cloudevents.json",
        Expect::Events(&["resource_created"]),
    ),
    (
        "auditlog-storage-buckets-create.json",
        Expect::Events(&["resource_created"]),
    ),
    // allUsers gets roles/storage.objectViewer.
    (
        "auditlog-storage-setIamPermissions-allUsers.json",
        Expect::Events(&["bucket_public"]),
    ),
    // A named user gets objectViewer: an IAM change, not public.
    (
        "auditlog-storage-setIamPermissions-bucket.json",
        Expect::Events(&["resource_changed"]),
    ),
    // costAmount 100.01 ≥ budgetAmount 100.00.
    (
        "billing-budget-notification-data-decoded-docs-test-message.json",
        Expect::Events(&["budget_exceeded"]),
    ),
    (
        "monitoring-incident-v1.2-closed-gce-sent-packets.json",
        Expect::Events(&["alarm_resolved"]),
    ),
    // Sent packets is a traffic metric, not a capacity one.
    (
        "monitoring-incident-v1.2-open-gce-sent-packets.json",
        Expect::Events(&["metric_alarm"]),
    ),
    // The three push envelopes carry non-JSON bodies (bytes 01 02 03 04, "test message 3",
    // "Hello Cloud Pub/Sub! Here is my message!"): no alert, and no scan either (only
    // Escher's own Scheduler job starts one, on the service's /scan).
    (
        "pubsub-push-envelope-cloudevents-binary.json",
        Expect::Unrecognized,
    ),
    (
        "pubsub-push-envelope-cloudevents-text.json",
        Expect::Unrecognized,
    ),
    (
        "pubsub-push-envelope-docs-example.json",
        Expect::Unrecognized,
    ),
    // Event Threat Detection "C2: Bad IP".
    (
        "scc-notificationmessage-etd-bad-ip.json",
        Expect::Events(&["threat_detected"]),
    ),
    (
        "scc-notificationmessage-flow-logs-disabled-decoded.json",
        Expect::Events(&["compliance_violation"]),
    ),
    (
        "scc-notificationmessage-open-ssh-port.json",
        Expect::Events(&["firewall_open"]),
    ),
    (
        "scc-notificationmessage-public-bucket-acl.json",
        Expect::Events(&["bucket_public"]),
    ),
    (
        "scheduler-job-data-cloudevents.json",
        Expect::Events(&["scheduled_scan"]),
    ),
];
