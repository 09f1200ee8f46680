//! The night's scan on Azure. Flex Consumption has no time zones for timers, so the `nightly`
//! function fires every quarter hour in UTC and this module decides, in the user's own zone,
//! whether it is the night's window: from the scan time (`ESCHER_SCAN_TIME`, 02:00 unless the
//! user chose another) for five hours, each tick takes the night's run a step further
//! (starting it at the first tick, continuing one that ran out of time, answering at once
//! when the report is stored). The run is named after the local date, so every tick of
//! one night, and every retry, works on the same run: it runs once per night.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;
use escher_core::pipeline::Pipeline;
use escher_core::scan::ReportSettings;
use escher_scan::{Progress, ReportStore, ScanRun};
use serde_json::{json, Value};

use crate::scan::AzureScan;

/// The scan's time when none is configured: 02:00.
pub const DEFAULT_SCAN_TIME: NaiveTime = match NaiveTime::from_hms_opt(2, 0, 0) {
    Some(t) => t,
    None => NaiveTime::MIN,
};
/// How long after the scan time ticks may still take the night's run further.
const WINDOW_MINUTES: i64 = 5 * 60;

/// The night a tick at `now` belongs to, in `zone`: `None` outside the window that opens at
/// `start` local time (the window ends at midnight rather than crossing into the next day,
/// which would start that day's run).
pub fn night_of(now: DateTime<Utc>, zone: Tz, start: NaiveTime) -> Option<NaiveDate> {
    let local = now.with_timezone(&zone);
    let since = local.time().signed_duration_since(start);
    (since >= Duration::zero() && since < Duration::minutes(WINDOW_MINUTES))
        .then(|| local.date_naive())
}

/// `ESCHER_SCAN_TIME` (`HH:MM`, as escher.toml's schedule writes it).
pub fn scan_time(text: &str) -> Option<NaiveTime> {
    let (hour, minute) = text.trim().split_once(':')?;
    NaiveTime::from_hms_opt(hour.parse().ok()?, minute.parse().ok()?, 0)
}

/// A schedule setting the function cannot use.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ScheduleError {
    #[error(
        "ESCHER_TIME_ZONE={0:?} is not an IANA time zone (Europe/Berlin, America/New_York, UTC)"
    )]
    Zone(String),
    #[error("ESCHER_SCAN_TIME={0:?} is not a time of day (HH:MM, e.g. 02:00)")]
    Time(String),
}

/// The night's zone and scan time from the function's settings: `ESCHER_TIME_ZONE` (UTC when
/// unset) and `ESCHER_SCAN_TIME` (02:00 when unset), as the template writes them.
pub fn schedule_from(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<(Tz, NaiveTime), ScheduleError> {
    let zone = match lookup("ESCHER_TIME_ZONE") {
        Some(name) => name.parse().map_err(|_| ScheduleError::Zone(name))?,
        None => chrono_tz::UTC,
    };
    let time = match lookup("ESCHER_SCAN_TIME") {
        Some(text) => scan_time(&text).ok_or(ScheduleError::Time(text))?,
        None => DEFAULT_SCAN_TIME,
    };
    Ok((zone, time))
}

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

#[derive(Debug, thiserror::Error)]
#[error("the night's scan of {date} failed: {source}; the next tick tries again")]
pub struct NightlyError {
    date: NaiveDate,
    #[source]
    source: escher_scan::ScanRunError,
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
                tracing::info!(run = %next.run, "the night's scan continues at the next tick");
                json!({"continues": next.run})
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hm(text: &str) -> NaiveTime {
        scan_time(text).expect("HH:MM")
    }

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
            night_of(at("2026-12-03T01:30:00Z"), berlin, hm("02:00")),
            NaiveDate::from_ymd_opt(2026, 12, 3)
        );
        assert_eq!(
            night_of(at("2026-12-03T00:30:00Z"), berlin, hm("02:00")),
            None,
            "01:30 local"
        );
        assert_eq!(
            night_of(at("2026-12-03T06:00:00Z"), berlin, hm("02:00")),
            None,
            "07:00 local"
        );
        // Summer time: 02:00 in Berlin is 00:00 UTC.
        assert_eq!(
            night_of(at("2026-07-01T00:00:00Z"), berlin, hm("02:00")),
            NaiveDate::from_ymd_opt(2026, 7, 1)
        );
        // West of UTC the local night is the previous UTC day's date.
        let la: Tz = "America/Los_Angeles".parse().expect("a zone");
        assert_eq!(
            night_of(at("2026-12-03T10:00:00Z"), la, hm("02:00")),
            NaiveDate::from_ymd_opt(2026, 12, 3)
        );
    }

    #[test]
    fn the_users_scan_time_moves_the_window_and_never_crosses_midnight() {
        let utc: Tz = "UTC".parse().expect("a zone");
        assert_eq!(scan_time("23:30"), NaiveTime::from_hms_opt(23, 30, 0));
        assert_eq!(scan_time("02:00"), Some(DEFAULT_SCAN_TIME));
        assert_eq!(scan_time("25:00"), None);
        assert_eq!(scan_time("2am"), None);
        // The minutes count: a 02:30 scan does not start at the 02:15 tick.
        assert_eq!(night_of(at("2026-12-03T02:15:00Z"), utc, hm("02:30")), None);
        assert!(night_of(at("2026-12-03T02:30:00Z"), utc, hm("02:30")).is_some());
        assert!(night_of(at("2026-12-03T07:15:00Z"), utc, hm("02:30")).is_some());
        assert_eq!(night_of(at("2026-12-03T07:30:00Z"), utc, hm("02:30")), None);
        assert!(night_of(at("2026-12-03T23:10:00Z"), utc, hm("23:00")).is_some());
        assert_eq!(night_of(at("2026-12-04T00:10:00Z"), utc, hm("23:00")), None);
        assert!(night_of(at("2026-12-03T05:10:00Z"), utc, hm("05:00")).is_some());
    }

    #[test]
    fn the_schedule_comes_from_the_settings_or_the_defaults() {
        assert_eq!(
            schedule_from(|_| None),
            Ok((chrono_tz::UTC, DEFAULT_SCAN_TIME))
        );
        let set = |k: &str| match k {
            "ESCHER_TIME_ZONE" => Some("Europe/Berlin".to_string()),
            "ESCHER_SCAN_TIME" => Some("03:30".to_string()),
            _ => None,
        };
        assert_eq!(
            schedule_from(set),
            Ok((chrono_tz::Europe::Berlin, hm("03:30")))
        );
        let bad_zone = |k: &str| (k == "ESCHER_TIME_ZONE").then(|| "Mars/Olympus".to_string());
        assert_eq!(
            schedule_from(bad_zone),
            Err(ScheduleError::Zone("Mars/Olympus".into()))
        );
        let bad_time = |k: &str| (k == "ESCHER_SCAN_TIME").then(|| "2am".to_string());
        assert_eq!(
            schedule_from(bad_time),
            Err(ScheduleError::Time("2am".into()))
        );
    }

    #[test]
    fn a_night_whose_0200_is_skipped_by_summer_time_still_has_its_ticks() {
        // 2026-03-29 in Berlin jumps from 02:00 to 03:00: the 03:00 tick takes the night.
        let berlin: Tz = "Europe/Berlin".parse().expect("a zone");
        assert_eq!(
            night_of(at("2026-03-29T01:00:00Z"), berlin, hm("02:00")),
            NaiveDate::from_ymd_opt(2026, 3, 29)
        );
    }
}
