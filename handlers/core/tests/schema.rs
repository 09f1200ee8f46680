//! The committed JSON Schemas and the Rust types must not drift. `UPDATE_SCHEMA=1 cargo test
//! --test schema` (`make schema`) regenerates `schemas/*.schema.json` from the types.

use escher_core::approvals::{Approval, WizardDefaults};
use escher_core::UnifiedEvent;
use escher_test_support::{fixtures, schema};

/// Compares (or, with `UPDATE_SCHEMA`, rewrites) one committed schema.
fn check_committed(file: &str, generated: schemars::Schema) -> serde_json::Value {
    let generated = serde_json::to_value(generated).expect("schema");
    let path = fixtures::workspace_root().join("schemas").join(file);
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        let text = serde_json::to_string_pretty(&generated).expect("serialize") + "\n";
        std::fs::write(&path, text).expect("write schema");
    }
    let committed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("read schema")).expect("schema JSON");
    assert_eq!(
        committed, generated,
        "schemas/{file} differs from its Rust type: run `make schema` and review the diff"
    );
    assert_eq!(
        committed["$schema"], "https://json-schema.org/draft/2020-12/schema",
        "the contracts are JSON Schema 2020-12"
    );
    committed
}

#[test]
fn committed_schema_matches_the_rust_type() {
    check_committed(
        "unified-event.schema.json",
        schemars::schema_for!(UnifiedEvent),
    );
}

#[test]
fn morning_report_schema_matches_the_rust_type() {
    check_committed(
        "morning-report.schema.json",
        escher_core::scan::report::morning_report_schema(),
    );
}

#[test]
fn approval_schema_matches_and_accepts_the_wizard_defaults() {
    let schema = check_committed("approval.schema.json", schemars::schema_for!(Approval));
    let validator = schema::compile(&schema);
    let now = chrono::DateTime::parse_from_rfc3339("2026-11-02T08:00:00Z")
        .expect("time")
        .with_timezone(&chrono::Utc);
    for choice in &WizardDefaults::built_in().choices {
        let approval = serde_json::to_value(choice.to_approval("ana", now)).expect("serialize");
        let errors = schema::errors(&validator, &approval);
        assert!(errors.is_empty(), "{}: {errors:?}", choice.id);
    }
    let mut typo =
        serde_json::to_value(WizardDefaults::built_in().choices[0].to_approval("ana", now))
            .expect("serialize");
    typo["scope"] = serde_json::json!({"enviroments": ["dev"]});
    assert!(
        !validator.is_valid(&typo),
        "unknown scope fields are rejected"
    );
    typo["scope"] = serde_json::json!({"tags": ["environment=dev"], "environments": ["dev"]});
    assert!(
        validator.is_valid(&typo),
        "{:?}",
        schema::errors(&validator, &typo)
    );
}

#[test]
fn schema_rejects_what_the_contract_forbids() {
    let validator = schema::validator("unified-event.schema.json");
    let good = serde_json::json!({
        "event_id": "aws-0123", "event_type": "bucket_public", "severity": "HIGH",
        "cloud_provider": "aws", "account_id": "123456789012", "region": "global",
        "resource": {"type": "s3_bucket", "id": "arn:aws:s3:::b", "name": "b", "tags": {}, "metadata": {}},
        "context": {}, "timestamp": "2026-11-02T03:04:05Z", "source": "aws.cloudtrail",
        "raw_event": {}, "schema_version": "1"
    });
    assert!(
        validator.is_valid(&good),
        "{:?}",
        schema::errors(&validator, &good)
    );
    for (field, bad) in [
        ("severity", serde_json::json!("LOW")),
        ("cloud_provider", serde_json::json!("oracle")),
        ("event_type", serde_json::json!("bucket_open")),
        ("schema_version", serde_json::json!("2")),
    ] {
        let mut event = good.clone();
        event[field] = bad;
        assert!(!validator.is_valid(&event), "{field} should be rejected");
    }
    let round_trip: UnifiedEvent = serde_json::from_value(good).expect("deserializes");
    assert_eq!(round_trip.region, "global");
}
