//! `[schedule]` and the time values of `escher.toml`: when the nightly scan runs, in which
//! time zone, and where that zone came from. Shared by every cloud (the scan runs nightly
//! wherever it is deployed).

use std::fmt;
use std::str::FromStr;

use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// `[schedule]`: when the nightly scan runs.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    /// IANA time zone of `scan_time` (`Europe/Berlin`); absent: `--timezone`, else the
    /// machine's zone, else UTC.
    pub timezone: Option<TimeZoneName>,
    /// Local time of the daily scan, `HH:MM` (24 h). Default `02:00`.
    pub scan_time: ScanTime,
}

/// An IANA time zone name (`Europe/Berlin`, `America/New_York`, `UTC`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeZoneName(pub Tz);

impl FromStr for TimeZoneName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.parse::<Tz>().map(TimeZoneName).map_err(|_| {
            format!(
                "time zone `{s}` is not an IANA time zone name; use one such as `Europe/Berlin`, `America/New_York` or `UTC`"
            )
        })
    }
}

impl TryFrom<String> for TimeZoneName {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        value.parse()
    }
}

impl From<TimeZoneName> for String {
    fn from(value: TimeZoneName) -> String {
        value.0.name().to_string()
    }
}

impl fmt::Display for TimeZoneName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name())
    }
}

/// Where the scan's time zone came from (shown by `render`, so a surprising zone can be
/// traced back).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeZoneSource {
    Flag,
    Config,
    Machine,
    /// The machine's zone could not be read or is not an IANA name.
    UtcFallback,
}

/// `--timezone` wins over `escher.toml`, which wins over the machine's zone; UTC when none
/// is known.
pub fn resolve_timezone(
    flag: Option<TimeZoneName>,
    config: &ScheduleConfig,
) -> (TimeZoneName, TimeZoneSource) {
    if let Some(tz) = flag {
        return (tz, TimeZoneSource::Flag);
    }
    if let Some(tz) = config.timezone {
        return (tz, TimeZoneSource::Config);
    }
    // iana-time-zone reads the /etc/localtime symlink, then /etc/timezone.
    match iana_time_zone::get_timezone()
        .ok()
        .and_then(|name| name.parse::<TimeZoneName>().ok())
    {
        Some(tz) => (tz, TimeZoneSource::Machine),
        None => (TimeZoneName(Tz::UTC), TimeZoneSource::UtcFallback),
    }
}

/// A local time of day, `HH:MM` in 24-hour form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct ScanTime {
    pub hour: u8,
    pub minute: u8,
}

impl Default for ScanTime {
    fn default() -> Self {
        ScanTime { hour: 2, minute: 0 }
    }
}

impl FromStr for ScanTime {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("scan time `{s}`: use `HH:MM` in 24-hour form, e.g. `02:00` or `23:30`");
        let (h, m) = s.split_once(':').ok_or_else(bad)?;
        if h.len() != 2 || m.len() != 2 {
            return Err(bad());
        }
        let hour: u8 = h.parse().map_err(|_| bad())?;
        let minute: u8 = m.parse().map_err(|_| bad())?;
        if hour > 23 || minute > 59 {
            return Err(bad());
        }
        Ok(ScanTime { hour, minute })
    }
}

impl TryFrom<String> for ScanTime {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        value.parse()
    }
}

impl From<ScanTime> for String {
    fn from(value: ScanTime) -> String {
        value.to_string()
    }
}

impl fmt::Display for ScanTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.hour, self.minute)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timezone_flag_beats_config_beats_machine() {
        let config = ScheduleConfig {
            timezone: Some(TimeZoneName(Tz::Asia__Tokyo)),
            ..ScheduleConfig::default()
        };
        let flag = Some(TimeZoneName(Tz::America__New_York));
        assert_eq!(
            resolve_timezone(flag, &config),
            (TimeZoneName(Tz::America__New_York), TimeZoneSource::Flag)
        );
        assert_eq!(
            resolve_timezone(None, &config),
            (TimeZoneName(Tz::Asia__Tokyo), TimeZoneSource::Config)
        );
        let (_, source) = resolve_timezone(None, &ScheduleConfig::default());
        assert!(matches!(
            source,
            TimeZoneSource::Machine | TimeZoneSource::UtcFallback
        ));
    }
}
