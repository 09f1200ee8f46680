//! The night's scan where the trigger cannot hand a long run on (Azure's timer, Google's
//! Cloud Scheduler calling a Cloud Run service): the run is named after the night in the
//! user's own zone (`ESCHER_TIME_ZONE`, from `ESCHER_SCAN_TIME`, 02:00 unless the user
//! chose another), and each call takes that run a step further within its deadline —
//! starting it, continuing one that ran out of time (the next tick on Azure, Scheduler's
//! retry on Google Cloud), or answering at once with the stored report when the night is
//! done. Every call of one night works on the same run, so it runs once per night.
//!
//! Which night a call belongs to differs: Azure's quarter-hourly UTC timer only counts
//! inside the night's window ([`night_of`]); Scheduler calls only at the scan time or
//! retries after it ([`last_night`]).

use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;
use escher_core::pipeline::Pipeline;
use escher_core::scan::{ReportSettings, ScanCheck};
use serde_json::{json, Value};

use crate::{Progress, ReportStore, RunRef, RunStore, ScanRun};

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

/// The night of the latest scan time at or before `now` in `zone`: a call at or after
/// `start` belongs to today's night, an earlier one (a retry past midnight of a late scan)
/// to yesterday's.
pub fn last_night(now: DateTime<Utc>, zone: Tz, start: NaiveTime) -> NaiveDate {
    let local = now.with_timezone(&zone);
    let today = local.date_naive();
    if local.time() >= start {
        today
    } else {
        today.pred_opt().unwrap_or(today)
    }
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
/// unset) and `ESCHER_SCAN_TIME` (02:00 when unset), as the templates write them.
pub fn schedule_from(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<(Tz, NaiveTime), ScheduleError> {
    let zone = match lookup("ESCHER_TIME_ZONE").filter(|z| !z.trim().is_empty()) {
        Some(name) => name.trim().parse().map_err(|_| ScheduleError::Zone(name))?,
        None => chrono_tz::UTC,
    };
    let time = match lookup("ESCHER_SCAN_TIME").filter(|t| !t.trim().is_empty()) {
        Some(text) => scan_time(&text).ok_or(ScheduleError::Time(text))?,
        None => DEFAULT_SCAN_TIME,
    };
    Ok((zone, time))
}

#[derive(Debug, thiserror::Error)]
#[error("the night's scan of {date} failed: {source}; the next call tries again")]
pub struct NightlyError {
    pub date: NaiveDate,
    #[source]
    pub source: crate::ScanRunError,
}

/// One night's run: what to scan, where its report goes, and how long a call may work.
pub struct NightRun<'a> {
    /// The run's name is `{cloud}-night-{date}` (`azure-night-2026-12-03`).
    pub cloud: &'a str,
    pub date: NaiveDate,
    pub checks: Vec<Arc<dyn ScanCheck>>,
    /// Empty for checks that read the whole account at once.
    pub regions: Vec<String>,
    pub store: &'a ReportStore,
    pub pipeline: &'a Pipeline,
    /// When this call must leave the rest to the next one.
    pub deadline: DateTime<Utc>,
}

impl NightRun<'_> {
    /// Takes the night's run a step: what it did, for the caller's log and answer
    /// (`already_done` when an earlier call stored the report).
    pub async fn step(self) -> Result<Value, NightlyError> {
        let date = self.date;
        let failed = |source| NightlyError { date, source };
        let trigger = format!("{}-night-{date}", self.cloud);
        let runs = RunStore {
            operator: self.store.operator(),
            location: self.store.location(),
        };
        let already_done = runs
            .finished(&RunRef::for_trigger(&trigger, date))
            .await
            .map_err(|e| failed(e.into()))?
            .is_some();
        let run = ScanRun {
            checks: self.checks,
            regions: self.regions,
            settings: ReportSettings::built_in(),
            store: self.store,
            pipeline: Some(self.pipeline),
            audit: Some(&self.pipeline.audit),
        };
        let progress = run
            .step_for_trigger(&trigger, date, Some(self.deadline))
            .await
            .map_err(failed)?;
        Ok(match progress {
            Progress::Finished(result) => json!({
                "night": date,
                "already_done": already_done,
                "report": result.files,
                "findings": result.report.summary.findings,
                "notified": result.notified.len(),
            }),
            Progress::HandOn(next) => {
                tracing::info!(run = %next.run, "the night's scan continues at the next call");
                json!({"night": date, "continues": next.run})
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

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("a date")
    }

    #[test]
    fn the_night_is_read_in_the_users_zone() {
        let berlin: Tz = "Europe/Berlin".parse().expect("a zone");
        // 01:30 UTC is 02:30 in Berlin in winter: the night of the 3rd.
        assert_eq!(
            night_of(at("2026-12-03T01:30:00Z"), berlin, hm("02:00")),
            Some(day(2026, 12, 3))
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
            Some(day(2026, 7, 1))
        );
        // West of UTC the local night is the previous UTC day's date.
        let la: Tz = "America/Los_Angeles".parse().expect("a zone");
        assert_eq!(
            night_of(at("2026-12-03T10:00:00Z"), la, hm("02:00")),
            Some(day(2026, 12, 3))
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
    fn a_call_belongs_to_the_night_of_the_latest_scan_time() {
        let berlin: Tz = "Europe/Berlin".parse().expect("a zone");
        // Scheduler's call at 02:00 Berlin (01:00 UTC in winter), and its retry at 02:40.
        assert_eq!(
            last_night(at("2026-12-03T01:00:00Z"), berlin, hm("02:00")),
            day(2026, 12, 3)
        );
        assert_eq!(
            last_night(at("2026-12-03T01:40:00Z"), berlin, hm("02:00")),
            day(2026, 12, 3)
        );
        // A late scan whose retry runs past midnight stays on its night.
        let utc: Tz = "UTC".parse().expect("a zone");
        assert_eq!(
            last_night(at("2026-12-04T00:20:00Z"), utc, hm("23:30")),
            day(2026, 12, 3)
        );
        // Before the scan time, the night that counts is the previous one.
        assert_eq!(
            last_night(at("2026-12-03T00:59:00Z"), berlin, hm("02:00")),
            day(2026, 12, 2)
        );
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
            Some(day(2026, 3, 29))
        );
    }
}
