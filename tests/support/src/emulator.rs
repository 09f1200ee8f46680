//! The rule every test that needs an emulator follows: `tests/emulators.sh start` writes the
//! emulators' addresses to `.emulators/env`; without them a test prints a notice and passes,
//! unless `ESCHER_REQUIRE_EMULATORS=1` (set by that same file), when it fails, so a run that
//! started the emulators can never skip silently.

use std::io::Write as _;

/// Whether the emulators were started, so a missing variable is a failure, not a skip.
pub fn required() -> bool {
    std::env::var("ESCHER_REQUIRE_EMULATORS").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The value of `variable`, or `None` after `NOTICE: <variable> not set; <skipped>`, or a
/// panic when the emulators are [`required`].
pub fn var(variable: &str, skipped: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(value) => Some(value),
        Err(_) if required() => panic!(
            "{variable} is not set although the emulators were started (ESCHER_REQUIRE_EMULATORS; see tests/emulators.sh)"
        ),
        Err(_) => {
            notice(&format!("{variable} not set; {skipped}"));
            None
        }
    }
}

/// Prints `NOTICE: <text>` straight to the process's stderr: `eprintln!` inside a test is
/// captured and shown only on failure, and a skip must be visible in a passing run.
pub fn notice(text: &str) {
    let _ = writeln!(std::io::stderr(), "NOTICE: {text}");
}

/// The store `folder` below the store at `uri` (an opendal-style URI whose options follow
/// `?`), so each test writes under a folder of its own in the emulators' shared bucket.
pub fn sub_store(uri: &str, folder: &str) -> String {
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let path = format!(
        "{}/{}",
        path.trim_end_matches('/'),
        folder.trim_matches('/')
    );
    if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    }
}

#[cfg(test)]
mod tests {
    use super::sub_store;

    #[test]
    fn a_sub_store_keeps_the_options_after_its_folder() {
        assert_eq!(
            sub_store(
                "s3://b/conformance?region=us-east-1&endpoint=http://h:1",
                "run-1"
            ),
            "s3://b/conformance/run-1?region=us-east-1&endpoint=http://h:1"
        );
        assert_eq!(sub_store("fs:///tmp/x/", "/a/b/"), "fs:///tmp/x/a/b");
    }
}
