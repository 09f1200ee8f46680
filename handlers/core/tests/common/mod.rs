//! Helpers shared by the integration tests: paths, the schema validator, result rendering.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use escher_core::{NormalizeError, Normalized};
use serde_json::{json, Value};

pub fn workspace_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::canonicalize(&root).unwrap_or(root)
}

/// `../shared/fixtures/<cloud>` beside the project root, or `None` after a notice. The notice
/// goes straight to the process's stderr: `eprintln!` inside a test is captured and shown
/// only on failure, and a skip must be visible in a passing run.
pub fn shared_fixtures(cloud: &str) -> Option<PathBuf> {
    let root = workspace_root();
    let dir = root
        .parent()
        .unwrap_or(&root)
        .join("shared/fixtures")
        .join(cloud);
    if dir.is_dir() {
        return Some(dir);
    }
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "NOTICE: skipping the shared {cloud} samples: {} not found (it sits beside the project's own checkout only)",
        dir.display()
    );
    None
}

pub fn schema_path() -> PathBuf {
    workspace_root().join("schemas/unified-event.schema.json")
}

/// Validator for the committed `schemas/unified-event.schema.json`.
pub fn validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(schema_path()).expect("read unified-event.schema.json");
    let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
    jsonschema::draft202012::new(&schema).expect("schema compiles")
}

/// Validates one event's JSON, returning every violation as text.
pub fn schema_errors(validator: &jsonschema::Validator, event: &Value) -> Vec<String> {
    validator
        .iter_errors(event)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// The stable JSON form of a normalization result, as stored in `*.expected.json`.
pub fn result_json(result: &Result<Normalized, NormalizeError>) -> Value {
    match result {
        Ok(Normalized::Events(events)) => json!({ "events": events }),
        Ok(Normalized::Handshake(h)) => json!({ "handshake": h }),
        Err(e) => json!({ "error": e.to_string() }),
    }
}

/// All `*.json` inputs under `dir` (not the `*.expected.json` beside them), sorted.
pub fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.ends_with(".json") && !name.ends_with(".expected.json")
        })
        .collect();
    files.sort();
    files
}

/// The URI of an emulator-backed store from `variable` (set by `tests/emulators.sh`), with
/// `suffix` appended to its prefix so each test writes under its own folder. `None`, with a
/// notice, when the variable is absent, unless `ESCHER_REQUIRE_EMULATORS` is set.
#[allow(dead_code)]
pub fn emulator_uri(variable: &str, suffix: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(uri) => {
            let (path, query) = uri.split_once('?').unwrap_or((uri.as_str(), ""));
            let path = format!("{}/{suffix}", path.trim_end_matches('/'));
            Some(if query.is_empty() {
                path
            } else {
                format!("{path}?{query}")
            })
        }
        Err(_) if std::env::var_os("ESCHER_REQUIRE_EMULATORS").is_some() => {
            panic!("{variable} is not set although the emulators were started (see tests/emulators.sh)")
        }
        Err(_) => {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "NOTICE: {variable} not set; this test runs under `make test`, which starts the emulators"
            );
            None
        }
    }
}

/// A name no earlier run used.
#[allow(dead_code)]
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    )
}
