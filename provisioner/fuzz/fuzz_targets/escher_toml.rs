//! Fuzz `escher.toml` as every command reads it (`EscherConfig::parse`): any text must give a
//! configuration whose values passed their checks, or an error naming the file.
//!
//! The CLI is a binary that links every cloud's SDK, so this target compiles the config
//! module's own source (`src/config/`, which depends on nothing else of the CLI) rather than
//! the CLI: the parser fuzzed is the one the CLI runs, without building the SDKs.
#![no_main]
// The CLI's other readers of the configuration are not compiled here.
#![allow(dead_code, unused_imports)]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

#[path = "../../src/config/mod.rs"]
mod config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match config::EscherConfig::parse(text, Path::new("escher.toml")) {
        Ok(config) => {
            // What `render` and `extend` read from a valid file.
            let _ = config.aws.functions.alert_sizing();
            let _ = config.aws.functions.scan_sizing();
            let _ = config.schedule.scan_time.to_string();
            if config.schedule.timezone.is_some() {
                let _ = config::resolve_timezone(None, &config.schedule);
            }
            for spelling in &config.old_spellings {
                let _ = spelling.to_string();
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
