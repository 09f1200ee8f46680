//! The night's scan on Azure. Flex Consumption has no time zones for timers, so the `nightly`
//! function fires every quarter hour in UTC and decides, in the user's own zone, whether it
//! is the night's window ([`night_of`]): from the scan time for five hours, each tick takes
//! the night's run a step further (`escher_scan::nightly`, shared with Google Cloud).

use chrono::{DateTime, Duration, NaiveTime, Utc};
use chrono_tz::Tz;
use escher_core::pipeline::Pipeline;
use escher_scan::nightly::NightRun;
use escher_scan::ReportStore;
use serde_json::{json, Value};

pub use escher_scan::nightly::{
    night_of, scan_time, schedule_from, NightlyError, ScheduleError, DEFAULT_SCAN_TIME,
};

use crate::scan::AzureScan;

/// What the nightly function needs besides the alert pipeline.
pub struct Nightly {
    pub scan: AzureScan,
    pub store: ReportStore,
    pub zone: Tz,
    /// The local time the night's scan starts (02:00 by default).
    pub scan_time: NaiveTime,
    /// How long one tick may work before it leaves the rest to the next tick (the host's
    /// function timeout, less a margin).
    pub budget: Duration,
}

impl Nightly {
    /// One tick at `now`: what it did, for the host's log.
    pub async fn tick(
        &self,
        now: DateTime<Utc>,
        pipeline: &Pipeline,
    ) -> Result<Value, NightlyError> {
        let Some(date) = night_of(now, self.zone, self.scan_time) else {
            let local = now.with_timezone(&self.zone);
            return Ok(json!({
                "skipped": format!(
                    "{} in {}: the night's scan runs from {}",
                    local.format("%H:%M"),
                    self.zone,
                    self.scan_time.format("%H:%M")
                )
            }));
        };
        NightRun {
            cloud: "azure",
            date,
            checks: self.scan.checks(),
            // Azure's checks read the whole subscription at once.
            regions: Vec::new(),
            store: &self.store,
            pipeline,
            deadline: now + self.budget,
        }
        .step()
        .await
    }
}
