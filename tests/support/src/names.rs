//! Names no other test uses: the emulators are shared by every test of a run (and by earlier
//! runs against the same emulator) and never reset, so each test makes its own resources.

use std::sync::atomic::{AtomicU32, Ordering};

use chrono::Utc;

/// `<prefix>-<process>-<time>-<counter>`: unique within the process (tests run in parallel
/// threads) and across processes and runs. Short enough for an S3 bucket name (63
/// characters) with a prefix of up to 30.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        Utc::now().timestamp_micros() % 1_000_000_000,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::unique;

    #[test]
    fn names_made_at_once_differ() {
        let (a, b) = (unique("escher-test"), unique("escher-test"));
        assert_ne!(a, b);
        assert!(a.starts_with("escher-test-") && a.len() <= 63, "{a}");
    }
}
