//! Whether a machine is idle, judged from its CPU over a window: the same rule for every
//! cloud's `stop_idle_instance` and the scan's idle check (CloudWatch, Azure Monitor and
//! Cloud Monitoring each give per-period CPU figures). Missing or sparse data never counts as
//! idle, and one busy period is enough to say no.

use chrono::{DateTime, Utc};

use crate::words::hours;

/// Average CPU below which an instance counts as idle, when the alarm that raised the
/// event states no threshold of its own. 5 % is what AWS Compute Optimizer, Trusted
/// Advisor and Azure Advisor treat as "idle" territory: an instance doing real work (serving requests,
/// running jobs) rarely stays under it for hours, while an OS with only agents running
/// sits at 0-2 %.
pub const DEFAULT_IDLE_CPU_PERCENT: f64 = 5.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuSample {
    pub at: DateTime<Utc>,
    /// The period's average CPU, in percent.
    pub average: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Idleness {
    Idle {
        average: f64,
        peak: f64,
    },
    /// Not idle, or not provably so: the reason says which.
    NotIdle(String),
}

/// The average of the per-period averages, when the datapoints cover enough of the window
/// to speak for it; else what is missing.
pub fn average_over(samples: &[CpuSample], window_hours: f64, period: i64) -> Result<f64, String> {
    let span = hours(window_hours);
    if samples.is_empty() {
        return Err(format!("no CPU datapoints in the last {span}"));
    }
    let expected = ((window_hours * 3600.0) / period as f64).floor().max(1.0) as usize;
    // Detailed or basic monitoring both give one datapoint per period; fewer than half means
    // the instance was not running (or not reporting) for much of the window.
    if samples.len() * 2 < expected {
        return Err(format!(
            "only {} of {expected} {}-minute periods in the last {span} have CPU datapoints",
            samples.len(),
            period / 60
        ));
    }
    Ok(samples.iter().map(|s| s.average).sum::<f64>() / samples.len() as f64)
}

/// Decides from the per-period averages; `window_hours` only words the reasons.
pub fn judge(samples: &[CpuSample], threshold: f64, window_hours: f64, period: i64) -> Idleness {
    let span = hours(window_hours);
    let average = match average_over(samples, window_hours, period) {
        Ok(average) => average,
        Err(gap) => return Idleness::NotIdle(format!("{gap}: cannot confirm idleness")),
    };
    let busiest =
        samples
            .iter()
            .copied()
            .fold(samples[0], |a, b| if b.average > a.average { b } else { a });
    if average >= threshold {
        return Idleness::NotIdle(format!(
            "average CPU {average:.1} % over the last {span}, above {threshold} %"
        ));
    }
    if busiest.average >= threshold {
        return Idleness::NotIdle(format!(
            "CPU averaged {:.1} % in the {}-minute period from {} UTC, above {threshold} % (average over the last {span}: {average:.1} %)",
            busiest.average,
            period / 60,
            busiest.at.format("%H:%M")
        ));
    }
    Idleness::Idle {
        average,
        peak: busiest.average,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn samples(values: &[f64]) -> Vec<CpuSample> {
        let start = DateTime::from_timestamp(1_700_000_000, 0).expect("valid time");
        values
            .iter()
            .enumerate()
            .map(|(i, v)| CpuSample {
                at: start + Duration::seconds(300 * i as i64),
                average: *v,
            })
            .collect()
    }

    #[test]
    fn idle_only_when_every_period_is_below_the_threshold() {
        let low = samples(&[1.0; 24]);
        assert!(matches!(judge(&low, 5.0, 2.0, 300), Idleness::Idle { .. }));

        let mut one_busy = vec![1.0; 24];
        one_busy[10] = 40.0;
        match judge(&samples(&one_busy), 5.0, 2.0, 300) {
            Idleness::NotIdle(reason) => {
                assert!(reason.contains("CPU averaged 40.0 %"), "{reason}");
                assert!(reason.contains("above 5 %"), "{reason}");
            }
            other => panic!("{other:?}"),
        }

        match judge(&samples(&[37.2; 24]), 5.0, 2.0, 300) {
            Idleness::NotIdle(reason) => {
                assert_eq!(reason, "average CPU 37.2 % over the last 2 h, above 5 %")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn missing_data_never_counts_as_idle() {
        assert_eq!(
            judge(&[], 5.0, 2.0, 300),
            Idleness::NotIdle("no CPU datapoints in the last 2 h: cannot confirm idleness".into())
        );
        match judge(&samples(&[0.5; 3]), 5.0, 2.0, 300) {
            Idleness::NotIdle(reason) => assert!(reason.contains("only 3 of 24"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }
}
