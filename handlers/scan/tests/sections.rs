//! The report sections from the day's records, with plain data on memory stores: the
//! CRITICAL alerts of the last 24 h from the audit records (first in both renderings, off
//! when switched off, a failure entry when the audit store cannot be read) and the INFO
//! events the notifier queued since the previous report (nothing deleted).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use escher_core::approvals::Action;
use escher_core::pipeline::audit::{AuditLog, AuditRecord, Outcome};
use escher_core::pipeline::notify::{Notification, Notifier, NotifyConfig};
use escher_core::remediate::{
    Mode, RemediationReport, RemediationStatus, Verification, VerificationCheck,
};
use escher_core::scan::{FindingDraft, ReportSettings, ScanContext, ScanThresholds};
use escher_core::{CloudProvider, EventSource, EventType, Resource, Severity, UnifiedEvent};
use escher_scan::{render_html, render_markdown, ReportStore, ScanResult, ScanRun};
use escher_test_support::emulator::sub_store;
use escher_test_support::moto;
use escher_test_support::names::unique;

fn event(name: &str, severity: Severity) -> UnifiedEvent {
    let mut event = FindingDraft {
        check: "public_bucket",
        cloud: CloudProvider::Aws,
        account_id: "123456789012".into(),
        region: "us-east-1".into(),
        event_type: EventType::BucketPublic,
        resource: Resource {
            kind: "s3_bucket".into(),
            id: format!("arn:aws:s3:::{name}"),
            name: name.into(),
            ..Resource::default()
        },
        title: String::new(),
        action: None,
        manual_command: None,
        monthly_saving_usd: None,
        questions: vec![],
    }
    .finish(&ScanContext::new(ScanThresholds::default()))
    .event;
    event.event_id = format!("aws-{name}");
    event.source = EventSource::AwsCloudTrail;
    event.severity = severity;
    event
}

fn record(event: UnifiedEvent, outcome: Outcome, handled_at: DateTime<Utc>) -> AuditRecord {
    let remediation = (outcome == Outcome::Remediated).then(|| RemediationReport {
        action: Action::MakeBucketPrivate,
        resource_id: event.resource.id.clone(),
        status: RemediationStatus::Remediated,
        summary: format!("made {} private", event.resource.name),
        steps: vec![],
        api_calls: vec![],
        verification: Some(Verification::from_checks(vec![VerificationCheck {
            name: "public access block".into(),
            expected: "all four on".into(),
            observed: "all four on".into(),
            passed: true,
        }])),
        created: vec![],
        next_steps: vec![],
        undo: None,
    });
    AuditRecord {
        record_id: format!("r-{}-{}", event.event_id, outcome),
        handled_at,
        mode: Mode::Apply,
        outcome,
        summary: format!("{outcome}: {}", event.resource.name),
        event_id: Some(event.event_id.clone()),
        event: Some(event),
        payload_sha256: "00".into(),
        action: Some(Action::MakeBucketPrivate),
        decision: None,
        remediation,
        notifications: vec![],
        timings_ms: BTreeMap::new(),
        notes: vec![],
        history: None,
        error: None,
        sha256: String::new(),
    }
}

fn memory_store() -> ReportStore {
    ReportStore::new(
        escher_core::store::open("memory://").expect("memory store"),
        "memory://",
    )
}

async fn scan(store: &ReportStore, audit: &AuditLog, settings: &ReportSettings) -> ScanResult {
    ScanRun {
        checks: vec![],
        regions: vec!["us-east-1".into()],
        settings,
        store,
        pipeline: None,
        audit: Some(audit),
    }
    .run()
    .await
    .expect("report stored")
}

#[tokio::test]
async fn critical_alerts_of_the_last_24_hours_come_first_newest_first_with_what_was_done() {
    let audit = AuditLog::new(
        escher_core::store::open("memory://").expect("memory"),
        "memory://".into(),
    );
    let now = Utc::now();
    let mut scan_finding = event("found-by-scan", Severity::Critical);
    scan_finding.source = EventSource::EscherScan;
    for r in [
        record(
            event("fixed", Severity::Critical),
            Outcome::Remediated,
            now - Duration::hours(2),
        ),
        record(
            event("waiting", Severity::Critical),
            Outcome::ApprovalRequired,
            now - Duration::hours(1),
        ),
        record(
            event("waiting", Severity::Critical),
            Outcome::Duplicate,
            now - Duration::minutes(30),
        ),
        record(
            event("yesterday", Severity::Critical),
            Outcome::Remediated,
            now - Duration::hours(30),
        ),
        record(
            event("only-high", Severity::High),
            Outcome::Remediated,
            now - Duration::hours(1),
        ),
        record(scan_finding, Outcome::Remediated, now - Duration::hours(1)),
    ] {
        audit.write(r).await.expect("audit record");
    }
    let store = memory_store();
    let result = scan(&store, &audit, ReportSettings::built_in()).await;
    let section = result
        .report
        .critical_alerts
        .as_ref()
        .expect("the section is on by default");
    assert!(section.failure.is_none(), "{:?}", section.failure);
    let names: Vec<&str> = section
        .alerts
        .iter()
        .map(|a| a.resource_name.as_str())
        .collect();
    assert_eq!(
        names,
        ["waiting", "fixed"],
        "newest first, CRITICAL alerts of 24 h only"
    );
    let fixed = &section.alerts[1];
    assert_eq!(fixed.outcome, "remediated");
    assert_eq!(fixed.action, Some(Action::MakeBucketPrivate));
    assert_eq!(fixed.verification.as_deref(), Some("passed"));
    assert!(
        fixed.audit.starts_with("audit/")
            && fixed
                .audit
                .ends_with("-remediated-r-aws-fixed-remediated.json"),
        "{}",
        fixed.audit
    );
    assert_eq!(section.alerts[0].outcome, "approval_required");
    assert_eq!(section.alerts[0].verification, None);
    assert_eq!(
        store.latest().await.expect("read").as_ref(),
        Some(&result.report),
        "stored with the report"
    );

    let markdown = render_markdown(&result.report).expect("markdown");
    let critical = markdown.find("## Critical alerts since").expect(&markdown);
    let security = markdown
        .find("## Security and compliance")
        .expect(&markdown);
    assert!(critical < security, "critical alerts first: {markdown}");
    assert!(
        markdown.contains(&format!("  - Audit: `{}`", fixed.audit)),
        "{markdown}"
    );
    assert!(
        markdown.contains("bucket_public on s3_bucket fixed (aws 123456789012 us-east-1): remediated (make_bucket_private), verification passed"),
        "{markdown}"
    );
    assert!(!markdown.contains("yesterday") && !markdown.contains("only-high"));
    let html = render_html(&result.report).expect("html");
    let critical = html.find("<h2>Critical alerts since").expect(&html);
    let security = html.find("<h2>Security and compliance").expect(&html);
    assert!(critical < security, "{html}");
    assert!(html.contains(&format!("Audit: <code>{}</code>", fixed.audit)));

    let mut off = ReportSettings::built_in().clone();
    off.sections.critical_alerts = false;
    let quiet = scan(&store, &audit, &off).await;
    assert_eq!(quiet.report.critical_alerts, None);
    let markdown = render_markdown(&quiet.report).expect("markdown");
    assert!(!markdown.contains("Critical alerts"), "{markdown}");
}

#[tokio::test]
async fn an_unreadable_audit_store_is_reported_and_the_report_still_stored() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let uri = format!("s3://escher-down/audit?region=us-east-1&endpoint=http://127.0.0.1:{closed}");
    let audit = AuditLog::new(escher_core::store::open(&uri).expect("uri"), uri.clone());
    let store = memory_store();
    let result = scan(&store, &audit, ReportSettings::built_in()).await;
    let section = result.report.critical_alerts.as_ref().expect("section");
    let failure = section.failure.as_ref().expect("a failure entry");
    assert!(failure.resource.contains(&uri), "{failure}");
    assert!(failure.message.contains("may be incomplete"), "{failure}");
    assert!(
        store.latest().await.expect("read").is_some(),
        "report stored"
    );
    let markdown = render_markdown(&result.report).expect("markdown");
    assert!(
        markdown.contains("**The audit store could not be read, so this list may be incomplete:** read audit records on "),
        "{markdown}"
    );
}

fn notice(name: &str) -> Notification {
    let event = event(name, Severity::Info);
    Notification::compose(&event, Outcome::NotifyOnly, None, None, None)
}

#[tokio::test]
async fn info_events_queued_since_the_previous_report_are_gathered_and_none_deleted() {
    let state = escher_core::store::open("memory://").expect("memory");
    let store = ReportStore::new(state.clone(), "memory://");
    let audit = AuditLog::new(state.clone(), "memory://".into());
    let notifier = Notifier::new(state.clone(), NotifyConfig::default());
    for name in ["one", "two", "three"] {
        // Queue times are to the millisecond; apart, so "oldest first" has one answer.
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        let sent = notifier.send(&notice(name), Mode::Apply).await;
        assert_eq!(
            sent[0].detail.split('/').next(),
            Some("report-queue"),
            "{sent:?}"
        );
    }
    let first = scan(&store, &audit, ReportSettings::built_in()).await;
    let info = first.report.info_events.as_ref().expect("on by default");
    assert_eq!(info.since, None, "the first report takes everything");
    let ids: Vec<&str> = info.events.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids, ["aws-one", "aws-two", "aws-three"], "oldest first");
    assert!(info.events[0].title.contains("one"), "{:?}", info.events[0]);

    for name in ["four", "five"] {
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        notifier.send(&notice(name), Mode::Apply).await;
    }
    let second = scan(&store, &audit, ReportSettings::built_in()).await;
    let info = second.report.info_events.as_ref().expect("section");
    assert_eq!(
        info.since,
        Some(first.report.info_events.as_ref().expect("first").until)
    );
    let ids: Vec<&str> = info.events.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids, ["aws-four", "aws-five"], "only what was queued since");
    let markdown = render_markdown(&second.report).expect("markdown");
    assert!(markdown.contains("## INFO events since "), "{markdown}");
    assert!(markdown.contains("(2)"), "{markdown}");

    let queued = state
        .list_with("report-queue/")
        .recursive(true)
        .await
        .expect("list")
        .into_iter()
        .filter(|e| !e.path().ends_with('/'))
        .count();
    assert_eq!(queued, 5, "the queue keeps every notice");

    let third = scan(&store, &audit, ReportSettings::built_in()).await;
    assert!(third
        .report
        .info_events
        .as_ref()
        .expect("section")
        .events
        .is_empty());
}

/// More notices than one S3 listing page (1000 keys) on moto: every one is gathered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_longer_than_one_listing_page_is_read_completely_on_s3() {
    let Some(base) = moto::s3_store("the S3 report-queue test") else {
        return;
    };
    let uri = sub_store(&base, &unique("sections"));
    let state = escher_core::store::open(&uri).expect("s3 state store");
    let notifier = Notifier::new(state.clone(), NotifyConfig::default());
    let names: Vec<String> = (0..1005).map(|i| format!("queued-{i:04}")).collect();
    for chunk in names.chunks(50) {
        let sends = chunk.iter().map(|name| {
            let notifier = &notifier;
            async move { notifier.send(&notice(name), Mode::Apply).await }
        });
        for sent in futures::future::join_all(sends).await {
            assert_eq!(
                sent[0].status,
                escher_core::pipeline::notify::DeliveryStatus::Sent,
                "{sent:?}"
            );
        }
    }
    let info = escher_core::scan::sections::info_events(&state, &uri, None, Utc::now()).await;
    assert!(info.failure.is_none(), "{:?}", info.failure);
    let mut ids: Vec<&str> = info.events.iter().map(|e| e.event_id.as_str()).collect();
    ids.sort_unstable();
    let expected: Vec<String> = names.iter().map(|n| format!("aws-{n}")).collect();
    assert_eq!(ids, expected);
}
