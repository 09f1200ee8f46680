//! The night's summary notification on moto: a report with a HIGH finding sends one summary
//! to the `high` SNS topic (delivered to a subscribed SQS queue, as the alert tests check
//! SNS), naming the counts, the top finding with its command and where the report is; a
//! report where everything is INFO sends nothing.
//!
//! Needs moto (`ESCHER_TEST_AWS_ENDPOINT`, see `tests/emulators.sh`); without it the test
//! prints a notice and returns, unless `ESCHER_REQUIRE_EMULATORS=1`.

use std::sync::Arc;

use async_trait::async_trait;
use escher_aws::build_pipeline;
use escher_core::approvals::Action;
use escher_core::scan::{Finding, FindingDraft, ReportSettings, ScanCheck, ScanContext, ScanError};
use escher_core::{CloudProvider, EventType, Resource};
use escher_runtime::HandlerConfig;
use escher_scan::{Progress, ReportStore, ScanRun};
use escher_test_support::moto::{sns, Moto};

/// One finding per name, of one event type (`bucket_public` is HIGH, `resource_unused` INFO).
struct Fixed {
    event_type: EventType,
    names: Vec<String>,
}

#[async_trait]
impl ScanCheck for Fixed {
    fn id(&self) -> &'static str {
        "fixed"
    }
    fn cloud(&self) -> CloudProvider {
        CloudProvider::Aws
    }
    async fn run(&self, region: &str, scan: &ScanContext) -> Result<Vec<Finding>, ScanError> {
        Ok(self
            .names
            .iter()
            .map(|name| {
                FindingDraft {
                    check: "fixed",
                    cloud: CloudProvider::Aws,
                    account_id: "123456789012".into(),
                    region: region.into(),
                    event_type: self.event_type,
                    resource: Resource {
                        kind: "s3_bucket".into(),
                        id: format!("arn:aws:s3:::{name}"),
                        name: name.clone(),
                        ..Resource::default()
                    },
                    title: format!("bucket {name} needs a look"),
                    action: (self.event_type == EventType::BucketPublic)
                        .then_some(Action::MakeBucketPrivate),
                    manual_command: Some(format!("aws s3 rb s3://{name}")),
                    monthly_saving_usd: None,
                    questions: vec![],
                }
                .finish(scan)
            })
            .collect())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_with_a_high_finding_sends_one_summary_and_an_all_info_report_none() {
    let Some(moto) = Moto::connect("us-east-1", "the summary notification test").await else {
        return;
    };
    let (critical_topic, critical_queue) = moto.topic_with_queue("escher-summary-critical").await;
    let (high_topic, high_queue) = moto.topic_with_queue("escher-summary-high").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let uri = |name: &str| format!("fs://{}", dir.path().join(name).display());
    let config = HandlerConfig::from_lookup(|name| match name {
        "ESCHER_STATE_URI" => Some(uri("state")),
        "ESCHER_AUDIT_URI" => Some(uri("audit")),
        "ESCHER_APPROVALS_URI" => Some(uri("approvals")),
        "ESCHER_CRITICAL_TOPIC_ARN" => Some(critical_topic.clone()),
        "ESCHER_HIGH_TOPIC_ARN" => Some(high_topic.clone()),
        _ => None,
    })
    .expect("config");
    let pipeline = build_pipeline(&config, &moto.config).expect("pipeline");
    let store = ReportStore::new(
        escher_core::store::open(&uri("state")).expect("state"),
        uri("state"),
    );
    let scan = |event_type, names: &[&str]| ScanRun {
        checks: vec![Arc::new(Fixed {
            event_type,
            names: names.iter().map(|n| n.to_string()).collect(),
        })],
        regions: vec!["us-east-1".into()],
        settings: ReportSettings::built_in(),
        store: &store,
        pipeline: Some(&pipeline),
        audit: Some(&pipeline.audit),
    };

    let night = chrono::Utc::now().date_naive();
    let Progress::Finished(loud) = scan(EventType::BucketPublic, &["summary-public"])
        .step_for_trigger("summary-night", night, None)
        .await
        .expect("report")
    else {
        panic!("no deadline: the run finishes")
    };
    assert_eq!(
        loud.notified.len(),
        2,
        "HIGH: topic + Slack: {:?}",
        loud.notified
    );
    let messages = moto.delivered(&high_queue).await;
    assert_eq!(messages.len(), 1, "one summary: {messages:?}");
    let sns::Delivered {
        subject,
        message: text,
    } = &messages[0];
    assert!(
        subject.starts_with(&format!(
            "[HIGH] Escher morning report {}: 0 critical, 1 high, 0 medium",
            loud.report.report_date
        )),
        "{subject}"
    );
    assert!(
        text.contains("1 findings (0 critical, 1 high, 0 medium, 0 info) in 1 regions"),
        "{text}"
    );
    assert!(
        text.contains("[HIGH] bucket summary-public needs a look: escher-provision approvals add --action make_bucket_private"),
        "the top finding with its command: {text}"
    );
    assert!(
        text.contains(&loud.files.markdown),
        "where the report is: {text}"
    );
    assert!(
        moto.delivered(&critical_queue).await.is_empty(),
        "HIGH is not CRITICAL"
    );
    // A retry of the finished night returns its report and where its summary went, and
    // sends nothing again.
    let Progress::Finished(again) = scan(EventType::BucketPublic, &["summary-public"])
        .step_for_trigger("summary-night", night, None)
        .await
        .expect("rerun")
    else {
        panic!("the finished run's report")
    };
    assert_eq!(again.files, loud.files);
    assert_eq!(again.notified, loud.notified);
    assert!(moto.delivered(&high_queue).await.is_empty(), "sent once");

    let quiet = scan(EventType::ResourceUnused, &["summary-unused"])
        .run()
        .await
        .expect("report");
    assert_eq!(quiet.report.summary.info, 1);
    assert!(quiet.notified.is_empty(), "{:?}", quiet.notified);
    assert!(moto.delivered(&high_queue).await.is_empty());
    assert!(moto.delivered(&critical_queue).await.is_empty());
}
