//! Real published cloud samples from `../shared/fixtures/` (beside the project root): each
//! normalizes (or is a recognised handshake), validates against the schema, and has the
//! `event_type` a person reading it would expect. Skipped, with a notice, when `../shared`
//! is absent (a user's clone).

mod aws;
mod azure;
mod gcp;

use std::collections::BTreeSet;

use escher_core::Normalized;
use escher_test_support::{fixtures, schema};

/// What a shared sample must become.
pub enum Expect {
    /// These event types, in order, one per produced event.
    Events(&'static [&'static str]),
    /// A subscription handshake, not an alert.
    Handshake,
    /// Read, but no alert: audited as unrecognised and acknowledged.
    Unrecognized,
}

fn check_cloud(cloud: &str, table: &[(&str, Expect)]) {
    let Some(dir) = fixtures::shared(cloud) else {
        return;
    };
    let validator = schema::validator("unified-event.schema.json");
    let mut failures = Vec::new();
    let files = fixtures::inputs(&dir);
    let names: BTreeSet<String> = files
        .iter()
        .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
        .collect();
    for (name, _) in table {
        if !names.contains(*name) {
            failures.push(format!(
                "{name}: listed in the table but not in {}",
                dir.display()
            ));
        }
    }
    for path in &files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let Some((_, expect)) = table.iter().find(|(n, _)| *n == name) else {
            failures.push(format!("{name}: new shared fixture with no expectation in tests/shared_fixtures/{cloud}.rs"));
            continue;
        };
        let bytes = std::fs::read(path).expect("read fixture");
        let result = escher_core::normalize(&bytes);
        match (expect, result) {
            (Expect::Handshake, Ok(Normalized::Handshake(_))) => {}
            (Expect::Unrecognized, Err(escher_core::NormalizeError::Unrecognized { .. })) => {}
            (Expect::Events(want), Ok(Normalized::Events(events))) => {
                let got: Vec<String> = events.iter().map(|e| e.event_type.to_string()).collect();
                if got != *want {
                    failures.push(format!("{name}: event types {got:?}, expected {want:?}"));
                }
                let ids: BTreeSet<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
                if ids.len() != events.len() {
                    failures.push(format!("{name}: event ids are not distinct"));
                }
                for event in &events {
                    // No cloud's normalizer may claim another cloud's payload.
                    if event.cloud_provider.as_str() != cloud {
                        failures.push(format!(
                            "{name}: normalized as {} ({}), but it is a {cloud} sample",
                            event.cloud_provider, event.source
                        ));
                    }
                    let json = serde_json::to_value(event).expect("serialize");
                    for err in schema::errors(&validator, &json) {
                        failures.push(format!("{name}: schema: {err}"));
                    }
                }
            }
            (_, Ok(other)) => failures.push(format!("{name}: unexpected result {other:?}")),
            (_, Err(e)) => failures.push(format!("{name}: error: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn aws_samples() {
    check_cloud("aws", aws::EXPECTED);
}

#[test]
fn azure_samples() {
    check_cloud("azure", azure::EXPECTED);
}

#[test]
fn gcp_samples() {
    check_cloud("gcp", gcp::EXPECTED);
}
