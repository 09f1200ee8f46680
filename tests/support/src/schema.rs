//! The committed JSON Schemas (`schemas/*.schema.json`, draft 2020-12) as validators, for the
//! tests that check what the code writes against the contract it publishes.

use serde_json::Value;

use crate::fixtures::workspace_root;

/// A validator for `schemas/<file>`, e.g. `validator("unified-event.schema.json")`.
pub fn validator(file: &str) -> jsonschema::Validator {
    let path = workspace_root().join("schemas").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let schema: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    compile(&schema)
}

/// A validator for a schema in hand (one a test has just generated, say).
pub fn compile(schema: &Value) -> jsonschema::Validator {
    jsonschema::draft202012::new(schema).expect("the schema compiles")
}

/// Every violation of `value`, as text naming where it is; empty when it is valid.
pub fn errors(validator: &jsonschema::Validator, value: &Value) -> Vec<String> {
    validator
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}
