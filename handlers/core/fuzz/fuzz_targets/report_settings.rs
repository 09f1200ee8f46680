//! Fuzz the report settings a user points `scan run --settings` at (`policies/report.yaml`
//! and their copies): any text must give settings that passed their checks, or an error.
#![no_main]

use escher_core::scan::ReportSettings;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(settings) = ReportSettings::from_yaml(text, "fuzz.yaml") {
        // What the scan and the report read from valid settings.
        let _ = settings.format.finding_limit();
        assert!(settings.scan.concurrency >= 1 && settings.scan.max_invocations >= 1);
    }
});
