//! The morning report with plain data: rendering, the write-once store with its latest
//! pointer, the committed schema accepting what is stored, and deltas between two runs.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use escher_core::approvals::Action;
use escher_core::scan::{
    CheckOutput, CheckScope, CostSummary, CostWindow, DailyCosts, Finding, FindingDraft,
    ReportSettings, ScanCheck, ScanContext, ScanError,
};
use escher_core::{CloudProvider, EventType, Resource};
use escher_scan::{render_html, render_markdown, ReportStore, ScanRun, StoreError};
use escher_test_support::schema;

/// A check over a fixed list of buckets, failing in one region.
struct Buckets {
    public: Vec<&'static str>,
}

fn draft(name: &str, region: &str) -> FindingDraft {
    FindingDraft {
        check: "public_bucket",
        cloud: CloudProvider::Aws,
        account_id: "123456789012".into(),
        region: region.into(),
        event_type: EventType::BucketPublic,
        resource: Resource {
            kind: "s3_bucket".into(),
            id: format!("arn:aws:s3:::{name}"),
            name: name.into(),
            ..Resource::default()
        },
        title: format!("S3 bucket {name} is public: ACL grants READ to AllUsers"),
        action: Some(Action::MakeBucketPrivate),
        manual_command: None,
        monthly_saving_usd: None,
        questions: vec!["Does anything serve files from it publicly on purpose?".into()],
    }
}

#[async_trait]
impl ScanCheck for Buckets {
    fn id(&self) -> &'static str {
        "public_bucket"
    }
    fn cloud(&self) -> CloudProvider {
        CloudProvider::Aws
    }
    async fn run(&self, region: &str, scan: &ScanContext) -> Result<Vec<Finding>, ScanError> {
        if region == "eu-west-3" {
            return Err(ScanError {
                operation: "ListBuckets".into(),
                resource: region.into(),
                message: "AccessDenied: not allowed".into(),
                transient: false,
            });
        }
        Ok(self
            .public
            .iter()
            .map(|n| draft(n, region).finish(scan))
            .collect())
    }
}

fn memory_store() -> ReportStore {
    ReportStore::new(
        escher_core::store::open("memory://").expect("memory store"),
        "memory://",
    )
}

async fn run(
    store: &ReportStore,
    public: Vec<&'static str>,
    settings: &ReportSettings,
) -> escher_scan::ScanResult {
    ScanRun {
        checks: vec![Arc::new(Buckets { public })],
        regions: vec!["us-east-1".into(), "eu-west-3".into()],
        settings,
        store,
        pipeline: None,
        audit: None,
    }
    .run()
    .await
    .expect("scan stored")
}

#[tokio::test]
async fn a_second_run_stores_a_new_report_with_deltas_and_moves_latest() {
    let store = memory_store();
    let settings = ReportSettings::built_in();
    let first = run(&store, vec!["a", "b"], settings).await;
    assert_eq!(first.report.deltas.previous_report, None);
    assert_eq!(
        first.report.failures.len(),
        1,
        "eu-west-3 reported, not fatal"
    );
    assert_eq!(first.report.findings.len(), 2);
    assert!(first
        .files
        .json
        .starts_with(&format!("reports/{}/", first.report.report_date)));
    assert_eq!(
        store.latest_files().await.expect("read"),
        Some(first.files.clone())
    );

    let second = run(&store, vec!["b", "c"], settings).await;
    let deltas = &second.report.deltas;
    assert_eq!(deltas.previous_report, Some(first.report.report_date));
    assert_eq!(deltas.new, ["public_bucket:arn:aws:s3:::c"]);
    assert_eq!(deltas.unchanged, ["public_bucket:arn:aws:s3:::b"]);
    assert_eq!(deltas.resolved.len(), 1);
    assert_eq!(deltas.resolved[0].key, "public_bucket:arn:aws:s3:::a");
    assert_ne!(second.files.json, first.files.json);
    assert_eq!(
        store.latest().await.expect("read"),
        Some(second.report.clone())
    );
    assert_eq!(
        store
            .files_on(second.report.report_date)
            .await
            .expect("list"),
        Some(second.files.clone()),
        "the last report of the day"
    );

    // Write-once: the same report again is refused, and the stored one is unchanged.
    let again = store.write(&second.report).await;
    assert!(matches!(again, Err(StoreError::Exists { .. })), "{again:?}");
    let stored: serde_json::Value =
        serde_json::from_slice(&store.read(&second.files.json).await.expect("read")).expect("json");
    let errors = schema::errors(&schema::validator("morning-report.schema.json"), &stored);
    assert!(errors.is_empty(), "{errors:?}");
    let markdown =
        String::from_utf8(store.read(&second.files.markdown).await.expect("md")).expect("utf8");
    assert!(markdown.contains("## Changes since"), "{markdown}");
    assert!(
        markdown.contains("S3 bucket a is public"),
        "resolved finding named: {markdown}"
    );
}

#[tokio::test]
async fn renderings_carry_each_finding_its_command_and_questions() {
    let store = memory_store();
    let mut settings = ReportSettings::built_in().clone();
    let result = run(&store, vec!["logs-<script>", "b"], &settings).await;
    let markdown = render_markdown(&result.report).expect("markdown");
    assert!(markdown.starts_with(&format!(
        "# Escher morning report — {}",
        result.report.report_date
    )));
    assert!(markdown.contains("2 findings (0 critical, 2 high, 0 medium, 0 info) in 2 regions, 1 could not be fully scanned"), "{markdown}");
    assert!(markdown.contains("## Security and compliance"));
    assert!(markdown.contains(
        "`escher-provision approvals add --action make_bucket_private --cloud aws --account 123456789012 --resource-type s3_bucket --resource 'b' --reason '...'`"
    ), "{markdown}");
    assert!(markdown.contains("  - Ask: Does anything serve files from it publicly on purpose?"));
    assert!(markdown.contains("## Not scanned\n- eu-west-3 public_bucket: ListBuckets on eu-west-3 failed: AccessDenied: not allowed"), "{markdown}");
    assert!(!markdown.contains("## Changes since"), "no previous report");

    let html = render_html(&result.report).expect("html");
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("logs-&lt;script&gt;"), "names are escaped");
    assert!(!html.contains("logs-<script>"));
    assert!(html.contains("<span class=\"sev HIGH\">HIGH</span>"));

    // Executive: the top 3 only, and the rest counted; a section switched off is gone.
    settings.format = escher_core::scan::ReportFormat::Executive;
    let many = run(&store, vec!["a1", "a2", "a3", "a4", "a5"], &settings).await;
    let markdown = render_markdown(&many.report).expect("markdown");
    assert_eq!(markdown.matches("- **HIGH**").count(), 3, "{markdown}");
    assert!(
        markdown.contains("(2 more in the full report"),
        "{markdown}"
    );
    settings.sections.security = false;
    let quiet = run(&store, vec!["a1"], &settings).await;
    let markdown = render_markdown(&quiet.report).expect("markdown");
    assert!(
        !markdown.contains("## Security and compliance"),
        "{markdown}"
    );
}

/// Billing data as a cloud's cost check would return it: 40 a day, 90 yesterday.
struct FixedCosts;

#[async_trait]
impl ScanCheck for FixedCosts {
    fn id(&self) -> &'static str {
        "cost"
    }
    fn cloud(&self) -> CloudProvider {
        CloudProvider::Aws
    }
    fn scope(&self) -> CheckScope {
        CheckScope::Account
    }
    async fn run(&self, region: &str, scan: &ScanContext) -> Result<Vec<Finding>, ScanError> {
        Ok(self.output(region, scan).await?.findings)
    }
    async fn output(&self, _region: &str, scan: &ScanContext) -> Result<CheckOutput, ScanError> {
        let window = CostWindow::for_report(scan.report_date());
        let mut costs = DailyCosts {
            currency: "USD".into(),
            ..DailyCosts::default()
        };
        let mut day = window.start;
        while day <= window.yesterday {
            let ec2 = if day == window.yesterday { 80.0 } else { 30.0 };
            costs.by_day.insert(
                day,
                BTreeMap::from([
                    ("Amazon EC2".to_string(), ec2),
                    ("Amazon S3".to_string(), 10.0),
                ]),
            );
            day += chrono::Duration::days(1);
        }
        costs.estimated.insert(window.yesterday);
        let cost = CostSummary::from_daily(&costs, window, &scan.thresholds)
            .map_err(|e| e.into_scan_error("GetCostAndUsage", "us-east-1"))?;
        Ok(CheckOutput {
            findings: Vec::new(),
            cost: Some(cost),
        })
    }
}

#[tokio::test]
async fn the_cost_summary_comes_after_the_counts_and_before_security_in_both_renderings() {
    let store = memory_store();
    let mut settings = ReportSettings::built_in().clone();
    settings.thresholds.monthly_budget_usd = Some(10.0);
    let report = ScanRun {
        checks: vec![
            Arc::new(Buckets { public: vec!["a"] }),
            Arc::new(FixedCosts),
        ],
        regions: vec!["us-east-1".into()],
        settings: &settings,
        store: &store,
        pipeline: None,
        audit: None,
    }
    .run()
    .await
    .expect("scan stored");
    let cost = report.report.cost.as_ref().expect("cost summary");
    assert_eq!(cost.yesterday_amount, 90.0);
    assert!(cost.spike && cost.over_budget);

    let markdown = render_markdown(&report.report).expect("markdown");
    let at = |text: &str| {
        markdown
            .find(text)
            .unwrap_or_else(|| panic!("{text:?} missing: {markdown}"))
    };
    assert!(at("Possible saving") < at("## Cost summary"));
    assert!(at("## Cost summary") < at("## Security and compliance"));
    assert!(
        markdown.contains(&format!(
        "- Yesterday ({}): 90.00 USD (estimated), +50.00 (+125.0 %) against the day before (40.00)",
        cost.yesterday
    )),
        "{markdown}"
    );
    assert!(markdown.contains("against a budget of 10.00"), "{markdown}");
    assert!(
        markdown.contains("- Top services this month: Amazon EC2 "),
        "{markdown}"
    );
    assert_eq!(markdown.matches("- **Flagged:** ").count(), 2, "{markdown}");

    let html = render_html(&report.report).expect("html");
    let cost_at = html.find("<h2>Cost summary</h2>").expect("cost section");
    assert!(
        cost_at
            < html
                .find("<h2>Security and compliance</h2>")
                .expect("security")
    );
    assert!(html.contains("<strong>Flagged:</strong>"));

    let stored: serde_json::Value =
        serde_json::from_slice(&store.read(&report.files.json).await.expect("read")).expect("json");
    assert_eq!(stored["cost"]["yesterday_amount"], 90.0);
    let errors = schema::errors(&schema::validator("morning-report.schema.json"), &stored);
    assert!(errors.is_empty(), "{errors:?}");

    // The section switched off: no summary in the report or its renderings.
    settings.sections.cost = false;
    let quiet = ScanRun {
        checks: vec![Arc::new(FixedCosts)],
        regions: vec!["us-east-1".into()],
        settings: &settings,
        store: &store,
        pipeline: None,
        audit: None,
    }
    .run()
    .await
    .expect("scan stored");
    assert_eq!(quiet.report.cost, None);
    let markdown = render_markdown(&quiet.report).expect("markdown");
    assert!(!markdown.contains("Cost summary"), "{markdown}");
}
