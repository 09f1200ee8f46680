//! Fuzz the requests the Azure Functions host posts to the custom handler
//! (`escher_azure::functions::parse_invocation`): the same body as the Event Grid trigger's
//! (`events`), the action group's webhook (`alert`) and the timer's (`nightly`), and then
//! what the pipeline does first with the payload found inside (the normalizer).
#![no_main]

use escher_azure::functions::{parse_invocation, Invocation};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for function in ["events", "alert", "nightly"] {
        match parse_invocation(function, data) {
            Ok(Invocation::Event(payload) | Invocation::Alert(payload)) => {
                let _ = escher_core::normalize(&payload);
            }
            Ok(Invocation::Tick) => {}
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
});
