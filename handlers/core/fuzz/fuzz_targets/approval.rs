//! Fuzz an approval file (`approvals add --file`, `schemas/approval.schema.json`) and what
//! its words go through: the action, tag selectors and networks to keep, then the decision
//! over the bundled alerts, so scope matching and the conditions are fuzzed with the parse.
#![no_main]

use escher_core::approvals::{checked_network, Action, Approval, TagSelector};
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        // The flags' parsers (`--action`, `--tag`, `--keep-network`) get the same text.
        let _ = text.parse::<Action>();
        let _ = text.parse::<TagSelector>();
        let _ = checked_network(text);
    }
    // As `approvals add --file` reads it: JSON first, then the approval, missing
    // `approved_by` / `approved_at` / `id` filled in.
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Some(object) = value.as_object_mut() {
        object.entry("approved_by").or_insert_with(|| "fuzz".into());
        object
            .entry("approved_at")
            .or_insert_with(|| common::now().to_rfc3339().into());
        object.entry("id").or_insert_with(|| "apr-fuzz".into());
    }
    let approvals: Vec<Approval> = match serde_json::from_value::<Approval>(value.clone()) {
        Ok(approval) => vec![approval],
        // `approvals list --json` writes a list of them.
        Err(_) => match serde_json::from_value::<Vec<Approval>>(value) {
            Ok(list) => list,
            Err(_) => return,
        },
    };
    common::decide_all(&approvals);
});
