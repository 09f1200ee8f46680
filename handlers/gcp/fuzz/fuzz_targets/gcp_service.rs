//! Fuzz what the Google Cloud service reads from a request before it trusts anything: the
//! `Authorization` header (the first line of the input) up to the key look-up, and the
//! unverified claims a refusal's message quotes (`escher_gcp::oidc`); then the body (the rest):
//! whether it is the Scheduler job's marker (`/scan`), the push envelope's delivery for the
//! log, and what the pipeline does first with a push (`/alerts`), the normalizer.
#![no_main]

use escher_gcp::oidc::{read_bearer, unverified_claims};
use escher_gcp::service::{delivery_of, is_scan_marker};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (header, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &data[data.len()..]),
    };
    if let Ok(header) = std::str::from_utf8(header) {
        match read_bearer(Some(header)) {
            Ok(token) => {
                let _ = unverified_claims(token.token);
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
    let _ = is_scan_marker(body);
    let _ = delivery_of(body);
    let _ = escher_core::normalize(body);
});
