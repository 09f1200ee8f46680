//! How the benches print what they measured, the same in every bench: percentiles of sorted
//! durations, milliseconds, and PASS / MISS against a target.

use std::time::Duration;

/// The `p` percentile (0.0–1.0) of `sorted` (nearest rank); `sorted` must not be empty.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// `12.3 ms`, or `0.41 ms` below 10 ms (CPU per event lives there).
pub fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

/// `PASS` when `measured` is within `target`, else `MISS`.
pub fn verdict(measured: Duration, target: Duration) -> &'static str {
    if measured <= target {
        "PASS"
    } else {
        "MISS"
    }
}

/// xorshift: deterministic benchmark data without a dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    /// Below `n`, low numbers far more often (the few that recur in a real estate).
    pub fn skewed(&mut self, n: usize) -> usize {
        self.below(n).min(self.below(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&sorted, 0.5), Duration::from_millis(51));
        assert_eq!(percentile(&sorted, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&sorted[..1], 0.99), Duration::from_millis(1));
        assert_eq!(ms(Duration::from_micros(12_340)), "12.3 ms");
        assert_eq!(ms(Duration::from_micros(410)), "0.41 ms");
        assert_eq!(
            verdict(Duration::from_millis(1), Duration::from_millis(1)),
            "PASS"
        );
    }
}
