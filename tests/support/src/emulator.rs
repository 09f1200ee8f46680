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

/// `uri`'s `endpoint` option (the emulator's address, with azurite's account path).
pub fn store_endpoint(uri: &str) -> Option<&str> {
    let (_, options) = uri.split_once('?')?;
    options.split('&').find_map(|o| o.strip_prefix("endpoint="))
}

/// An endpoint's origin (`http://host:port`) and the path after it (azurite's account).
pub fn origin_and_path(endpoint: &str) -> (&str, &str) {
    let after_scheme = endpoint.find("://").map_or(0, |i| i + 3);
    match endpoint[after_scheme..].find('/') {
        Some(i) => endpoint.split_at(after_scheme + i),
        None => (endpoint, ""),
    }
}

/// `uri` with its requests sent to `origin` (a proxy in front of the emulator), the
/// endpoint's path and every other option kept.
pub fn store_through(uri: &str, origin: &str) -> String {
    let (path, options) = uri.split_once('?').unwrap_or((uri, ""));
    let options: Vec<String> = options
        .split('&')
        .filter(|o| !o.is_empty())
        .map(|o| match o.strip_prefix("endpoint=") {
            Some(endpoint) => format!("endpoint={origin}{}", origin_and_path(endpoint).1),
            None => o.to_string(),
        })
        .collect();
    format!("{path}?{}", options.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_is_sent_through_a_proxy_with_its_account_and_options_kept() {
        let azurite = "azblob://escher-conformance/conformance/f1/state?account=devstoreaccount1&endpoint=http://127.0.0.1:10055/devstoreaccount1";
        assert_eq!(
            store_endpoint(azurite),
            Some("http://127.0.0.1:10055/devstoreaccount1")
        );
        assert_eq!(
            origin_and_path("http://127.0.0.1:10055/devstoreaccount1"),
            ("http://127.0.0.1:10055", "/devstoreaccount1")
        );
        assert_eq!(
            store_through(azurite, "http://127.0.0.1:9"),
            "azblob://escher-conformance/conformance/f1/state?account=devstoreaccount1&endpoint=http://127.0.0.1:9/devstoreaccount1"
        );
        let gcs = "gcs://escher-conformance/conformance/f1/state?endpoint=http://127.0.0.1:4455&anonymous=true";
        assert_eq!(store_endpoint(gcs), Some("http://127.0.0.1:4455"));
        assert_eq!(
            store_through(gcs, "http://127.0.0.1:9"),
            "gcs://escher-conformance/conformance/f1/state?endpoint=http://127.0.0.1:9&anonymous=true"
        );
        assert_eq!(store_endpoint("fs:///tmp/x"), None);
    }

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
