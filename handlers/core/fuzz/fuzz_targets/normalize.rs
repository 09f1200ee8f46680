//! Fuzz the normalizer entry point: any bytes must give events, a handshake or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = escher_core::normalize(data);
});
