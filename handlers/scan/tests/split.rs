//! A scan split across invocations, on memory and on moto S3: an invocation whose deadline
//! is inside the safety margin finishes one pair and hands on; the next finishes the rest
//! and stores the report; no pair ever runs twice, and a rerun of a finished run returns
//! its report; a run out of invocations reports what is left as not scanned.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{Duration, Utc};
use escher_core::scan::{
    CheckScope, Finding, FindingDraft, ReportSettings, ScanCheck, ScanContext, ScanError,
};
use escher_core::{CloudProvider, EventType, Resource};
use escher_scan::{Progress, ReportStore, ScanRun};
use escher_test_support::emulator::sub_store;
use escher_test_support::moto;
use escher_test_support::names::unique;

type Runs = Arc<Mutex<BTreeMap<(String, String), usize>>>;

/// One finding per region, counting how often each (check, region) pair ran.
struct Counting {
    id: &'static str,
    runs: Runs,
}

/// An account-wide check reading billing data, counting its runs.
struct Billing {
    runs: Runs,
}

#[async_trait]
impl ScanCheck for Billing {
    fn id(&self) -> &'static str {
        "cost"
    }
    fn cloud(&self) -> CloudProvider {
        CloudProvider::Aws
    }
    fn scope(&self) -> CheckScope {
        CheckScope::Account
    }
    fn feeds_cost_section(&self) -> bool {
        true
    }
    async fn run(&self, region: &str, _: &ScanContext) -> Result<Vec<Finding>, ScanError> {
        *self
            .runs
            .lock()
            .expect("lock")
            .entry(("cost".to_string(), region.to_string()))
            .or_default() += 1;
        Ok(Vec::new())
    }
}

#[async_trait]
impl ScanCheck for Counting {
    fn id(&self) -> &'static str {
        self.id
    }
    fn cloud(&self) -> CloudProvider {
        CloudProvider::Aws
    }
    async fn run(&self, region: &str, scan: &ScanContext) -> Result<Vec<Finding>, ScanError> {
        *self
            .runs
            .lock()
            .expect("lock")
            .entry((self.id.to_string(), region.to_string()))
            .or_default() += 1;
        let name = format!("{}-{region}", self.id);
        Ok(vec![FindingDraft {
            check: self.id,
            cloud: CloudProvider::Aws,
            account_id: "123456789012".into(),
            region: region.into(),
            event_type: EventType::ResourceUnused,
            resource: Resource {
                kind: "ebs_volume".into(),
                id: name.clone(),
                name,
                ..Resource::default()
            },
            title: "unused".into(),
            action: None,
            manual_command: Some("aws ec2 delete-volume".into()),
            monthly_saving_usd: Some(1.0),
            questions: vec![],
        }
        .finish(scan)])
    }
}

fn scan_run<'a>(store: &'a ReportStore, settings: &'a ReportSettings, runs: &Runs) -> ScanRun<'a> {
    ScanRun {
        checks: ["volumes", "snapshots"]
            .map(|id| {
                Arc::new(Counting {
                    id,
                    runs: runs.clone(),
                }) as Arc<dyn ScanCheck>
            })
            .to_vec(),
        regions: ["us-east-1", "eu-west-1", "eu-north-1"]
            .map(String::from)
            .to_vec(),
        settings,
        store,
        pipeline: None,
        audit: None,
    }
}

async fn handed_on_then_finished(uri: &str) {
    let store = ReportStore::new(escher_core::store::open(uri).expect("store"), uri);
    let settings = ReportSettings::built_in();
    let runs = Runs::default();
    let scan = scan_run(&store, settings, &runs);

    // The deadline is already inside the 120 s margin: one pair, then hand on.
    let Progress::HandOn(next) = scan.step(None, Some(Utc::now())).await.expect("first") else {
        panic!("expected a hand-on")
    };
    assert_eq!(next.invocation, 2);
    assert_eq!(runs.lock().expect("lock").values().sum::<usize>(), 1);
    assert!(
        store.latest().await.expect("read").is_none(),
        "no report yet"
    );

    let Progress::Finished(result) = scan
        .step(Some(next.clone()), Some(Utc::now() + Duration::minutes(15)))
        .await
        .expect("second")
    else {
        panic!("expected the report")
    };
    assert_eq!(result.report.findings.len(), 6, "every pair's finding");
    assert!(
        result.report.failures.is_empty(),
        "{:?}",
        result.report.failures
    );
    {
        let counted = runs.lock().expect("lock");
        assert_eq!(counted.len(), 6);
        assert!(
            counted.values().all(|&n| n == 1),
            "no pair ran twice: {counted:?}"
        );
    }
    assert_eq!(
        store.latest_files().await.expect("read"),
        Some(result.files.clone())
    );

    // A rerun of the finished run (a retried invocation) returns the same report.
    let Progress::Finished(again) = scan
        .step(Some(next), Some(Utc::now()))
        .await
        .expect("rerun")
    else {
        panic!("expected the stored report")
    };
    assert_eq!(again.files, result.files);
    assert_eq!(runs.lock().expect("lock").values().sum::<usize>(), 6);

    // Out of invocations: the last one reports what is left.
    let mut short = settings.clone();
    short.scan.max_invocations = 2;
    let scan = scan_run(&store, &short, &runs);
    let Progress::HandOn(next) = scan.step(None, Some(Utc::now())).await.expect("first") else {
        panic!("expected a hand-on")
    };
    let Progress::Finished(result) = scan.step(Some(next), Some(Utc::now())).await.expect("last")
    else {
        panic!("the last invocation assembles")
    };
    assert_eq!(result.report.findings.len(), 2, "one pair per invocation");
    assert_eq!(result.report.failures.len(), 4);
    assert!(
        result.report.failures[0]
            .error
            .message
            .contains("scan.max_invocations"),
        "{:?}",
        result.report.failures[0]
    );
}

#[tokio::test]
async fn a_retried_first_invocation_continues_its_run() {
    let store = ReportStore::new(
        escher_core::store::open("memory://").expect("store"),
        "memory://",
    );
    let settings = ReportSettings::built_in();
    let runs = Runs::default();
    let scan = scan_run(&store, settings, &runs);
    let night = Utc::now().date_naive();
    let trigger = "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa";
    // The first try runs one pair and would hand on; say the hand-off failed, so Lambda
    // retries the same scheduled event.
    let Progress::HandOn(_) = scan
        .step_for_trigger(trigger, night, Some(Utc::now()))
        .await
        .expect("first try")
    else {
        panic!("expected a hand-on")
    };
    assert_eq!(runs.lock().expect("lock").values().sum::<usize>(), 1);
    let Progress::Finished(result) = scan
        .step_for_trigger(trigger, night, Some(Utc::now() + Duration::minutes(15)))
        .await
        .expect("retry")
    else {
        panic!("expected the report")
    };
    assert_eq!(result.report.findings.len(), 6);
    {
        let counted = runs.lock().expect("lock");
        assert!(
            counted.values().all(|&n| n == 1),
            "the retry scanned no pair again: {counted:?}"
        );
    }
    // Another night's event is another run.
    let Progress::Finished(_) = scan
        .step_for_trigger(
            "another-event",
            night,
            Some(Utc::now() + Duration::minutes(15)),
        )
        .await
        .expect("next night")
    else {
        panic!("expected the report")
    };
    assert_eq!(runs.lock().expect("lock").values().sum::<usize>(), 12);
}

#[tokio::test]
async fn a_report_without_the_cost_section_reads_no_billing_data() {
    let store = ReportStore::new(
        escher_core::store::open("memory://").expect("store"),
        "memory://",
    );
    for cost_section in [false, true] {
        let mut settings = ReportSettings::built_in().clone();
        settings.sections.cost = cost_section;
        let runs = Runs::default();
        let mut scan = scan_run(&store, &settings, &runs);
        scan.checks.push(Arc::new(Billing { runs: runs.clone() }));
        let result = scan.run().await.expect("scan");
        let cost_runs = runs
            .lock()
            .expect("lock")
            .iter()
            .filter(|((check, _), _)| check == "cost")
            .map(|(_, n)| *n)
            .sum::<usize>();
        assert_eq!(
            cost_runs,
            usize::from(cost_section),
            "cost section {cost_section}: the billing check ran {cost_runs} times"
        );
        assert_eq!(
            result.report.findings.len(),
            6,
            "the other checks still ran"
        );
        assert!(
            result.report.failures.is_empty(),
            "{:?}",
            result.report.failures
        );
    }
}

#[tokio::test]
async fn on_memory_a_handed_on_run_finishes_without_repeating_a_pair() {
    handed_on_then_finished("memory://").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_s3_a_handed_on_run_finishes_without_repeating_a_pair() {
    let Some(base) = moto::s3_store("the S3 split-scan test") else {
        return;
    };
    handed_on_then_finished(&sub_store(&base, &unique("split"))).await;
}
