//! A morning report with something in every block the templates render: findings of every
//! section and severity (one PII-tagged, so CRITICAL; names with characters HTML must
//! escape), savings, a finding fixed automatically, changes since a previous report, a
//! region that could not be scanned, the cost summary, a critical alert of the last 24 h and
//! an INFO event from the report queue. Plain data, no cloud: the findings are made by
//! `FindingDraft::finish` as the AWS checks make theirs, with the checks' titles and commands.
//! For escher-scan's Chromium render test and `make report-preview`
//! (`handlers/scan/examples/report_preview.rs`).

use std::collections::BTreeMap;

use escher_core::approvals::Action;
use escher_core::scan::report::HandledFinding;
use escher_core::scan::{
    CostSummary, CostWindow, CriticalAlert, CriticalAlerts, DailyCosts, FindingDraft, InfoEvents,
    MorningReport, QueuedEvent, RegionFailure, ReportSettings, ScanContext, ScanError, ScanOutcome,
};
use escher_core::{CloudProvider, EventType, Resource};

const ACCOUNT: &str = "123456789012";

struct Sample {
    check: &'static str,
    region: &'static str,
    event_type: EventType,
    kind: &'static str,
    id: String,
    name: String,
    tags: &'static [(&'static str, &'static str)],
    title: String,
    action: Option<Action>,
    manual_command: Option<String>,
    saving: Option<f64>,
    questions: &'static [&'static str],
}

impl Sample {
    fn draft(self) -> FindingDraft {
        FindingDraft {
            check: self.check,
            cloud: CloudProvider::Aws,
            account_id: ACCOUNT.into(),
            region: self.region.into(),
            event_type: self.event_type,
            resource: Resource {
                kind: self.kind.into(),
                id: self.id,
                name: self.name,
                tags: self
                    .tags
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
                metadata: serde_json::Map::new(),
            },
            title: self.title,
            action: self.action,
            manual_command: self.manual_command,
            monthly_saving_usd: self.saving,
            questions: self.questions.iter().map(|q| q.to_string()).collect(),
        }
    }
}

fn bucket(name: &str, tags: &'static [(&'static str, &'static str)]) -> Sample {
    Sample {
        check: "public_bucket",
        region: "us-east-1",
        event_type: EventType::BucketPublic,
        kind: "s3_bucket",
        id: format!("arn:aws:s3:::{name}"),
        name: name.into(),
        tags,
        title: format!("S3 bucket {name} is public: ACL grants READ to AllUsers"),
        action: Some(Action::MakeBucketPrivate),
        manual_command: None,
        saving: None,
        questions: &[
            "Does anything serve files from it publicly on purpose (a website, a CDN origin)?",
            "Who reads this bucket, and can they use signed URLs or a role instead?",
        ],
    }
}

fn ec2_arn(region: &str, kind: &str, id: &str) -> String {
    format!("arn:aws:ec2:{region}:{ACCOUNT}:{kind}/{id}")
}

fn samples() -> Vec<Sample> {
    let volume = "vol-0a1b2c3d4e5f60718";
    let idle_volume = "vol-0f1e2d3c4b5a69788";
    let snapshot = "snap-0123456789abcdef0";
    let group = "sg-0badc0ffee1234567";
    let instance = "i-0fedcba9876543210";
    vec![
        bucket("customer-exports", &[("data-classification", "pii")]),
        // A name with characters HTML must escape: the page shows it as written.
        bucket("logs-<team>&co", &[]),
        Sample {
            check: "open_admin_port",
            region: "eu-west-1",
            event_type: EventType::FirewallOpen,
            kind: "security_group",
            id: ec2_arn("eu-west-1", "security-group", group),
            name: "bastion".into(),
            tags: &[],
            title: format!(
                "Security group bastion ({group}) opens port 22 to the internet: tcp 22 from 0.0.0.0/0"
            ),
            action: Some(Action::RevokeOpenIngress),
            manual_command: None,
            saving: None,
            questions: &[
                "Who connects on these ports, and from which addresses?",
                "Could they use Session Manager or a VPN instead?",
            ],
        },
        Sample {
            check: "unencrypted_volume",
            region: "us-east-1",
            event_type: EventType::VolumeUnencrypted,
            kind: "ebs_volume",
            id: ec2_arn("us-east-1", "volume", volume),
            name: volume.into(),
            tags: &[],
            title: format!("EBS volume {volume} (100 GiB gp3) is not encrypted"),
            action: Some(Action::EncryptVolume),
            manual_command: None,
            saving: None,
            questions: &[
                "Does the volume hold personal or confidential data?",
                "Can its instance take the short stop the encrypted copy needs?",
            ],
        },
        Sample {
            check: "unattached_volume",
            region: "us-east-1",
            event_type: EventType::ResourceUnused,
            kind: "ebs_volume",
            id: ec2_arn("us-east-1", "volume", idle_volume),
            name: idle_volume.into(),
            tags: &[],
            title: format!("EBS volume {idle_volume} (500 GiB gp2) is attached to nothing"),
            action: None,
            manual_command: Some(format!(
                "aws ec2 create-snapshot --region us-east-1 --volume-id {idle_volume} --description 'before deleting the unattached volume' && aws ec2 delete-volume --region us-east-1 --volume-id {idle_volume}"
            )),
            saving: Some(50.0),
            questions: &[
                "Was this volume detached on purpose, to be attached again?",
                "Is a snapshot enough to keep its data?",
            ],
        },
        Sample {
            check: "orphaned_snapshot",
            region: "eu-west-1",
            event_type: EventType::ResourceUnused,
            kind: "ebs_snapshot",
            id: format!("arn:aws:ec2:eu-west-1::snapshot/{snapshot}"),
            name: snapshot.into(),
            tags: &[],
            title: format!(
                "EBS snapshot {snapshot} (80 GiB) is 214 days old and its volume vol-0123abcd is gone"
            ),
            action: None,
            manual_command: Some(format!(
                "aws ec2 delete-snapshot --region eu-west-1 --snapshot-id {snapshot}"
            )),
            saving: Some(4.0),
            questions: &[
                "Is this snapshot a backup someone must keep (compliance, retention)?",
                "Is an AMI still built from it?",
            ],
        },
        Sample {
            check: "idle_instance",
            region: "eu-west-1",
            event_type: EventType::InstanceIdle,
            kind: "ec2_instance",
            id: ec2_arn("eu-west-1", "instance", instance),
            name: "reporting-batch".into(),
            tags: &[("Name", "reporting-batch")],
            title: format!(
                "EC2 instance {instance} (m5.xlarge) averaged 1.2 % CPU over 7 days (peak 3.9 %)"
            ),
            action: Some(Action::StopIdleInstance),
            manual_command: None,
            saving: Some(140.16),
            questions: &[
                "Is this a standby or a batch host that is idle by design?",
                "Would a smaller instance or a schedule do?",
            ],
        },
        Sample {
            check: "volume_capacity",
            region: "us-east-1",
            event_type: EventType::CapacityHigh,
            kind: "ebs_volume",
            id: ec2_arn("us-east-1", "volume", volume),
            name: volume.into(),
            tags: &[],
            title: format!("EBS volume {volume} is 93 % full"),
            action: None,
            manual_command: Some(format!(
                "aws ec2 modify-volume --region us-east-1 --volume-id {volume} --size 150"
            )),
            saving: None,
            questions: &["Is the growth expected, or is something writing logs it should not?"],
        },
    ]
}

/// The sample report, as the scan would build it on the second night.
pub fn sample_report() -> MorningReport {
    let settings = ReportSettings::built_in();
    let scan = ScanContext::new(settings.thresholds.clone());
    let regions = vec![
        "us-east-1".to_string(),
        "eu-west-1".to_string(),
        "ap-south-1".to_string(),
    ];
    let mut findings: Vec<_> = samples()
        .into_iter()
        .map(|s| s.draft().finish(&scan))
        .collect();
    findings.sort_by(|a, b| a.key.cmp(&b.key));

    // Last night: one bucket that has since been made private, and one finding still open.
    let yesterday = ScanContext {
        started_at: scan.started_at - chrono::Duration::days(1),
        ..scan.clone()
    };
    let previous_findings = vec![
        bucket("old-website-assets", &[]).draft().finish(&yesterday),
        samples().swap_remove(2).draft().finish(&yesterday),
    ];
    let previous = MorningReport::build(
        ScanOutcome {
            findings: previous_findings,
            failures: vec![],
            regions: regions.clone(),
            cost: Some(sample_cost(&yesterday, 180.0)),
        },
        None,
        settings,
        yesterday.report_date(),
        yesterday.started_at,
    );

    let fixed = findings
        .iter()
        .find(|f| f.check == "public_bucket" && f.event.resource.name == "customer-exports")
        .map(|f| f.key.clone())
        .unwrap_or_default();
    let outcome = ScanOutcome {
        findings,
        failures: vec![RegionFailure {
            cloud: Some(CloudProvider::Aws),
            region: "ap-south-1".into(),
            check: "ebs".into(),
            error: ScanError {
                operation: "DescribeVolumes".into(),
                resource: "ap-south-1".into(),
                message: "UnauthorizedOperation: not allowed; the scan role needs this permission (escher-provision extend grants it)".into(),
                transient: false,
            },
        }],
        regions,
        cost: Some(sample_cost(&scan, 212.40)),
    };
    let mut report = MorningReport::build(
        outcome,
        Some(&previous),
        settings,
        scan.report_date(),
        scan.started_at,
    );
    report.handled = vec![HandledFinding {
        key: fixed,
        outcome: "remediated".into(),
        summary: "Bucket customer-exports now blocks all public access and no longer grants READ to AllUsers; verified.".into(),
        audit: format!("audit/{}/aws-0f3a.json", scan.report_date()),
    }];
    let now = scan.started_at;
    report.critical_alerts = Some(CriticalAlerts {
        since: now - chrono::Duration::hours(24),
        until: now,
        alerts: vec![CriticalAlert {
            event_id: "aws-5d1c9e0a".into(),
            event_type: EventType::FirewallOpen,
            cloud_provider: CloudProvider::Aws,
            account_id: ACCOUNT.into(),
            region: "eu-west-1".into(),
            resource_type: "AWS::EC2::SecurityGroup".into(),
            resource_name: "sg-0a1b2c3d4e5f60718".into(),
            handled_at: now - chrono::Duration::hours(5),
            outcome: "remediated".into(),
            summary:
                "Revoked tcp/22 from 0.0.0.0/0 on sg-0a1b2c3d4e5f60718 (payments-db); verified."
                    .into(),
            action: Some(Action::RevokeOpenIngress),
            verification: Some("passed".into()),
            audit: "audit/2026/11/30/210412345-aws-5d1c9e0a-remediated-r1.json".into(),
        }],
        failure: None,
    });
    report.info_events = Some(InfoEvents {
        since: Some(previous.generated_at),
        until: now,
        events: vec![QueuedEvent {
            event_id: "aws-77e0b1f2".into(),
            queued_at: now - chrono::Duration::hours(9),
            timestamp: now - chrono::Duration::hours(9),
            title: "Instance i-0abc123def4567890 changed state to stopped".into(),
            happened: "The instance batch-runner stopped (requested by its schedule).".into(),
            done: "Nothing: kept for this report.".into(),
            resource_id: "i-0abc123def4567890".into(),
            region: "us-east-1".into(),
            path: "report-queue/2026/11/30/171502000Z-aws-77e0b1f2.json".into(),
        }],
        failure: None,
    });
    report
}

/// EC2 at 180 USD a day but `ec2_yesterday` on the report's yesterday (212.40: 12 % above
/// the day before, flagged), the month on course to exceed its budget.
fn sample_cost(scan: &ScanContext, ec2_yesterday: f64) -> CostSummary {
    let window = CostWindow::for_report(scan.report_date());
    let mut costs = DailyCosts {
        currency: "USD".into(),
        ..DailyCosts::default()
    };
    let mut day = window.start;
    while day < window.end {
        let ec2 = if day == window.yesterday {
            ec2_yesterday
        } else {
            180.0
        };
        costs.by_day.insert(
            day,
            BTreeMap::from([
                ("Amazon Elastic Compute Cloud - Compute".to_string(), ec2),
                ("Amazon Simple Storage Service".to_string(), 21.75),
                ("Amazon Relational Database Service".to_string(), 64.10),
            ]),
        );
        let Some(next) = day.succ_opt() else { break };
        day = next;
    }
    costs.estimated.insert(window.yesterday);
    let mut thresholds = scan.thresholds.clone();
    thresholds.monthly_budget_usd = Some(7500.0);
    CostSummary::from_daily(&costs, window, &thresholds).expect("a figure for every day")
}
