//! Fuzz what a scan function does with its invocation's payload before the scan (AWS's
//! `escher-scan`: the Lambda runtime reads the bytes as JSON, then
//! `escher_scan::invocation::start_of`): a hand-off's run, or the trigger's id and day.
#![no_main]

use escher_scan::invocation::{start_of, Start, RUN_KEY};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(payload) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    match start_of(&payload, "fuzz-request") {
        Ok(Start::Continue(run)) => {
            // A run read from a payload is handed on in the same form, and read back the same.
            let handed_on = serde_json::json!({ RUN_KEY: run });
            assert_eq!(
                start_of(&handed_on, "fuzz-request").ok(),
                Some(Start::Continue(run))
            );
        }
        Ok(Start::Trigger { id, .. }) => assert!(!id.is_empty()),
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
