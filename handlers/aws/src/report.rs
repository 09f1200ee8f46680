//! Small helpers shared by the remediations' reports.

use escher_core::remediate::VerificationCheck;

pub(crate) fn check(
    name: impl Into<String>,
    expected: impl Into<String>,
    observed: impl Into<String>,
    passed: bool,
) -> VerificationCheck {
    VerificationCheck {
        name: name.into(),
        expected: expected.into(),
        observed: observed.into(),
        passed,
    }
}

/// Hours as people write them: `2 h`, `1.5 h`.
pub(crate) fn hours(h: f64) -> String {
    if h.fract() == 0.0 {
        format!("{h:.0} h")
    } else {
        format!("{h} h")
    }
}

/// `a, b and c`.
pub(crate) fn join_words(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}
