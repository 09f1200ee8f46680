//! Fuzz the policy files a user can edit and load: `policies/remediations.yaml` (which
//! action fixes which event type), `policies/approvals.default.yaml` (the setup wizard's
//! choices, which become approvals and are decided on) and `policies/severity.yaml`.
#![no_main]

use escher_core::approvals::{Approval, RemediationPolicy, WizardDefaults};
use escher_core::SeverityPolicy;
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(policy) = RemediationPolicy::from_yaml(text) {
        for event in common::events() {
            let _ = policy.actions_for(event.event_type);
        }
    }
    if let Ok(defaults) = WizardDefaults::from_yaml(text) {
        let approvals: Vec<Approval> = defaults
            .choices
            .iter()
            .map(|c| c.to_approval("fuzz", common::now()))
            .collect();
        common::decide_all(&approvals);
    }
    if let Ok(severity) = SeverityPolicy::from_yaml(text) {
        for event in common::events() {
            let _ = severity.resolve(event.event_type, Some(event.severity), &event.context);
            let _ = severity.resolve(event.event_type, None, &event.context);
        }
    }
});
