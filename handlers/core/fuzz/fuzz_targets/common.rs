//! What the approval targets decide against: bundled alerts, normalized once, and a fixed
//! decision time, so a decision depends only on the fuzzed approvals.

use std::sync::OnceLock;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use escher_core::approvals::{decide, Action, Approval, BlastRadiusUsage};
use escher_core::{Normalized, UnifiedEvent};

/// One alert for each kind of fix, from the bundled samples.
const ALERTS: [&[u8]; 6] = [
    include_bytes!("../../../../tests/fixtures/aws/cloudtrail-eventbridge-putbucketacl-allusers.json"),
    include_bytes!("../../../../tests/fixtures/aws/cloudtrail-record-authorizesecuritygroupingress-rdp-world.json"),
    include_bytes!("../../../../tests/fixtures/aws/cloudwatch-alarm-state-change-disk-used.json"),
    include_bytes!("../../../../tests/fixtures/aws/ecs-deployment-state-change-failed.json"),
    include_bytes!("../../../../tests/fixtures/aws/securityhub-asff-finding-ebs-unencrypted.json"),
    include_bytes!("../../../../tests/fixtures/azure/monitor-common-activity-log-administrative-delete.json"),
];

pub fn events() -> &'static [UnifiedEvent] {
    static EVENTS: OnceLock<Vec<UnifiedEvent>> = OnceLock::new();
    EVENTS.get_or_init(|| {
        ALERTS
            .iter()
            .flat_map(|bytes| match escher_core::normalize(bytes) {
                Ok(Normalized::Events(events)) => events,
                other => panic!("a bundled alert no longer normalizes: {other:?}"),
            })
            .collect()
    })
}

pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap()
}

/// Two resources already acted on today under every approval.
struct TwoUsed;

impl BlastRadiusUsage for TwoUsed {
    fn used(&self, _approval_id: &str, _day: NaiveDate) -> u32 {
        2
    }
}

/// Every action decided for every alert among `approvals`, explained as the CLI and the
/// audit record show it; and each approval's conditions read as the fixes read them.
pub fn decide_all(approvals: &[Approval]) {
    for event in events() {
        for action in Action::ALL {
            let decision = decide(event, action, approvals, now(), &TwoUsed);
            for candidate in &decision.explanation().candidates {
                if let escher_core::approvals::Outcome::Failed { failed } = &candidate.outcome {
                    let _ = failed.to_string();
                }
            }
            let _ = serde_json::to_vec(&decision);
        }
    }
    for approval in approvals {
        conditions(&approval.conditions);
    }
}

/// What the fixes read from an approval's conditions.
pub fn conditions(c: &escher_core::approvals::Conditions) {
    let _ = c.idle_window();
    let _ = c.rollback_window();
    let _ = c.max_restarts_per_hour();
    let _ = c.enable_default_encryption();
    let _ = c.keep_networks();
    let limits = c.growth_limits();
    for (current, ceiling, min_step, price) in [
        (100, 16_384, 1, Some(0.08)),
        (5, 50, 1, Some(30.0)),
        (1, 2, 1, None),
        (200, 65_536, 20, Some(0.115)),
    ] {
        let ask = escher_core::capacity::GrowthAsk {
            current,
            unit: "GiB",
            ceiling: ceiling.min(limits.max_storage_gib),
            ceiling_source: "fuzz".into(),
            min_step,
            unit_monthly_usd: price,
        };
        if let Ok(growth) = escher_core::capacity::plan_growth(&ask, &limits) {
            assert!(growth.to > growth.from && growth.to <= ask.ceiling);
        }
    }
}
