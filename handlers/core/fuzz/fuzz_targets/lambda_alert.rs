//! Fuzz what `escher-alert` does with a Lambda invocation's payload before the pipeline: the
//! runtime reads the bytes as JSON, the function writes that JSON back out and hands it to
//! the normalizer, which finds the envelope (EventBridge, SNS, a direct payload).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // lambda_runtime deserializes the invocation body into a `serde_json::Value`.
    let Ok(payload) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok(bytes) = serde_json::to_vec(&payload) else {
        return;
    };
    let _ = escher_core::normalize(&bytes);
});
