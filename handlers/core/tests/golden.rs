//! Golden tests: every project fixture under `tests/fixtures/<cloud>/` normalizes to exactly
//! the `<name>.expected.json` beside it; those under `tests/fixtures/invalid/<cloud>/` are
//! deliberately broken and must fail with the error recorded beside them. `UPDATE_EXPECTED=1 cargo test --test golden`
//! rewrites the expected files; review the diff before committing it.

use escher_core::{NormalizeError, Normalized};
use escher_test_support::{fixtures, schema};
use serde_json::{json, Value};

/// The stable JSON form of a normalization result, as stored in `*.expected.json`.
fn result_json(result: &Result<Normalized, NormalizeError>) -> Value {
    match result {
        Ok(Normalized::Events(events)) => json!({ "events": events }),
        Ok(Normalized::Handshake(h)) => json!({ "handshake": h }),
        Err(e) => json!({ "error": e.to_string() }),
    }
}

#[test]
fn project_fixtures_match_their_expected_output() {
    let update = std::env::var_os("UPDATE_EXPECTED").is_some();
    let validator = schema::validator("unified-event.schema.json");
    let mut checked = 0;
    let mut failures = Vec::new();
    for (folder, must_fail) in [
        ("aws", false),
        ("azure", false),
        ("gcp", false),
        ("invalid/aws", true),
        ("invalid/azure", true),
        ("invalid/gcp", true),
    ] {
        let dir = fixtures::dir(folder);
        if !dir.is_dir() {
            continue;
        }
        for input in fixtures::inputs(&dir) {
            let bytes = std::fs::read(&input).expect("read fixture");
            let result = escher_core::normalize(&bytes);
            if result.is_err() != must_fail {
                failures.push(format!(
                    "{}: expected {}, got {:?}",
                    input.display(),
                    if must_fail { "an error" } else { "success" },
                    result.as_ref().err()
                ));
            }
            let actual = result_json(&result);
            for event in actual["events"].as_array().into_iter().flatten() {
                for err in schema::errors(&validator, event) {
                    failures.push(format!("{}: schema: {err}", input.display()));
                }
            }
            let expected_path = input.with_extension("expected.json");
            if update {
                let text = serde_json::to_string_pretty(&actual).expect("serialize") + "\n";
                std::fs::write(&expected_path, text).expect("write expected");
            }
            let expected: serde_json::Value = match std::fs::read(&expected_path) {
                Ok(text) => serde_json::from_slice(&text).expect("expected file is JSON"),
                Err(_) => {
                    failures.push(format!(
                        "{}: no {} (run with UPDATE_EXPECTED=1 and review it)",
                        input.display(),
                        expected_path.display()
                    ));
                    continue;
                }
            };
            if actual != expected {
                failures.push(format!(
                    "{}: differs from expected\n--- expected\n{}\n--- actual\n{}",
                    input.display(),
                    serde_json::to_string_pretty(&expected).unwrap_or_default(),
                    serde_json::to_string_pretty(&actual).unwrap_or_default()
                ));
            }
            checked += 1;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(checked > 0, "no fixtures found under tests/fixtures");
}
