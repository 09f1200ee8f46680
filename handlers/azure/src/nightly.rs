//! The night's scan on Azure. Flex Consumption has no time zones for timers, so the `nightly`
//! function fires every hour in UTC and this module decides, in the user's own zone, whether
//! it is the night's window: from 02:00 to 06:59 local time each tick takes the night's run a
//! step further (starting it at the first tick, continuing one that ran out of time, answering
//! at once when the report is stored). The run is named after the local date, so every tick of
//! one night, and every retry, works on the same run: it runs once per night.

use chrono::{DateTime, Duration, NaiveDate, Timelike, Utc};
use chrono_tz::Tz;
use escher_core::pipeline::Pipeline;
use escher_core::scan::ReportSettings;
use escher_scan::{Progress, ReportStore, ScanRun};
use serde_json::{json, Value};

use crate::scan::AzureScan;

/// The local hours (inclusive) in which a tick works on the night's scan.
const FIRST_HOUR: u32 = 2;
const LAST_HOUR: u32 = 6;

/// The night a tick at `now` belongs to, in `zone`; `None` outside 02:00–06:59 local time.
pub fn night_of(now: DateTime<Utc>, zone: Tz) -> Option<NaiveDate> {
    let local = now.with_timezone(&zone);
    (FIRST_HOUR..=LAST_HOUR)
        .contains(&local.hour())
        .then(|| local.date_naive())
}

/// What the nightly function needs besides the alert pipeline.
pub struct Nightly {
    pub scan: AzureScan,
    pub store: ReportStore,
    pub zone: Tz,
    /// How long one tick may work before it leaves the rest to the next tick (the host's
    /// function timeout, less a margin).
    pub budget: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("the night's scan of {date} failed: {source}; the next hourly tick tries again")]
pub struct NightlyError {
    date: NaiveDate,
    #[source]
    source: escher_scan::ScanRunError,
}

impl Nightly {
    /// One hourly tick at `now`: what it did, for the host's log.
    pub async fn tick(
        &self,
        now: DateTime<Utc>,
        pipeline: &Pipeline,
    ) -> Result<Value, NightlyError> {
        let Some(date) = night_of(now, self.zone) else {
            let local = now.with_timezone(&self.zone);
            return Ok(json!({
                "skipped": format!("{} in {}: the night's scan runs from 02:00", local.format("%H:%M"), self.zone)
            }));
        };
        let run = ScanRun {
            checks: self.scan.checks(),
            // Azure's checks read the whole subscription at once.
            regions: Vec::new(),
            settings: ReportSettings::built_in(),
            store: &self.store,
            pipeline: Some(pipeline),
            audit: Some(&pipeline.audit),
        };
        let trigger = format!("azure-night-{date}");
        let progress = run
            .step_for_trigger(&trigger, date, Some(now + self.budget))
            .await
            .map_err(|source| NightlyError { date, source })?;
        Ok(match progress {
            Progress::Finished(result) => json!({
                "report": result.files,
                "findings": result.report.summary.findings,
                "notified": result.notified.len(),
            }),
            Progress::HandOn(next) => {
                tracing::info!(run = %next.run, "the night's scan continues at the next hourly tick");
                json!({"continues": next.run})
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("a time")
            .with_timezone(&Utc)
    }

    #[test]
    fn the_night_is_read_in_the_users_zone() {
        let berlin: Tz = "Europe/Berlin".parse().expect("a zone");
        // 01:30 UTC is 02:30 in Berlin in winter: the night of the 3rd.
        assert_eq!(
            night_of(at("2026-12-03T01:30:00Z"), berlin),
            NaiveDate::from_ymd_opt(2026, 12, 3)
        );
        assert_eq!(
            night_of(at("2026-12-03T00:30:00Z"), berlin),
            None,
            "01:30 local"
        );
        assert_eq!(
            night_of(at("2026-12-03T06:00:00Z"), berlin),
            None,
            "07:00 local"
        );
        // Summer time: 02:00 in Berlin is 00:00 UTC.
        assert_eq!(
            night_of(at("2026-07-01T00:00:00Z"), berlin),
            NaiveDate::from_ymd_opt(2026, 7, 1)
        );
        // West of UTC the local night is the previous UTC day's date.
        let la: Tz = "America/Los_Angeles".parse().expect("a zone");
        assert_eq!(
            night_of(at("2026-12-03T10:00:00Z"), la),
            NaiveDate::from_ymd_opt(2026, 12, 3)
        );
    }

    #[test]
    fn a_night_whose_0200_is_skipped_by_summer_time_still_has_its_ticks() {
        // 2026-03-29 in Berlin jumps from 02:00 to 03:00: the 03:00 tick takes the night.
        let berlin: Tz = "Europe/Berlin".parse().expect("a zone");
        assert_eq!(
            night_of(at("2026-03-29T01:00:00Z"), berlin),
            NaiveDate::from_ymd_opt(2026, 3, 29)
        );
    }
}
