//! Small helpers shared by the remediations' reports.

use escher_core::remediate::VerificationCheck;

pub(crate) fn check(
    name: impl Into<String>,
    expected: impl Into<String>,
    observed: impl Into<String>,
    passed: bool,
) -> VerificationCheck {
    VerificationCheck::new(name, expected, observed, passed)
}

pub(crate) use escher_core::words::join_words;
