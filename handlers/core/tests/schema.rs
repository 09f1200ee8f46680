//! The committed JSON Schema and the Rust type must not drift. `UPDATE_SCHEMA=1 cargo test
//! --test schema` regenerates `schemas/unified-event.schema.json` from the type.

mod common;

use escher_core::UnifiedEvent;

#[test]
fn committed_schema_matches_the_rust_type() {
    let generated = serde_json::to_value(schemars::schema_for!(UnifiedEvent)).expect("schema");
    let path = common::schema_path();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        let text = serde_json::to_string_pretty(&generated).expect("serialize") + "\n";
        std::fs::write(&path, text).expect("write schema");
    }
    let committed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("read schema")).expect("schema JSON");
    assert_eq!(
        committed, generated,
        "schemas/unified-event.schema.json differs from the UnifiedEvent type: \
         run `UPDATE_SCHEMA=1 cargo test -p escher-core --test schema` and review the diff"
    );
    assert_eq!(
        committed["$schema"], "https://json-schema.org/draft/2020-12/schema",
        "the contract is JSON Schema 2020-12"
    );
}

#[test]
fn schema_rejects_what_the_contract_forbids() {
    let validator = common::validator();
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
        common::schema_errors(&validator, &good)
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
