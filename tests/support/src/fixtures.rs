//! The repository's sample payloads (`tests/fixtures/<cloud>/`, and the real published
//! samples in `../shared/fixtures/` beside a checkout when present), and what tests do to
//! them: move a payload into the emulator's account and region, set one field.

pub mod aws;

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::emulator;

/// The account every AWS fixture is in.
pub const FIXTURE_ACCOUNT: &str = "210987654321";
/// The region every AWS fixture is in.
pub const FIXTURE_REGION: &str = "eu-west-1";

/// The workspace's root folder (this crate is `tests/support` in it).
pub fn workspace_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::canonicalize(&root).unwrap_or(root)
}

/// `tests/fixtures/<folder>`, e.g. `dir("aws")` or `dir("invalid/gcp")`.
pub fn dir(folder: &str) -> PathBuf {
    workspace_root().join("tests/fixtures").join(folder)
}

/// The JSON of `tests/fixtures/<name>`, e.g. `json("aws/ec2-instance-state-change-stopped.json")`.
pub fn json(name: &str) -> Value {
    let path = dir(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `*.json` payload in `dir`, not the `*.expected.json` beside them, sorted.
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

/// `../shared/fixtures/<cloud>` beside the workspace, or `None` after a notice: it sits
/// beside the project's own checkout only, not a user's clone.
pub fn shared(cloud: &str) -> Option<PathBuf> {
    let root = workspace_root();
    let dir = root
        .parent()
        .unwrap_or(&root)
        .join("shared/fixtures")
        .join(cloud);
    if dir.is_dir() {
        return Some(dir);
    }
    emulator::notice(&format!(
        "skipping the shared {cloud} samples: {} not found (it sits beside the project's own checkout only)",
        dir.display()
    ));
    None
}

/// Sets the field at JSON `pointer`, which the payload must have.
pub fn set(payload: &mut Value, pointer: &str, value: Value) {
    *payload
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("fixture has no {pointer}")) = value;
}

/// Moves an AWS fixture payload from [`FIXTURE_ACCOUNT`] and [`FIXTURE_REGION`] into
/// `account` and `region` (every mention: ARNs, hosts and fields alike).
pub fn retarget(payload: Value, account: &str, region: &str) -> Value {
    let text = payload
        .to_string()
        .replace(FIXTURE_ACCOUNT, account)
        .replace(FIXTURE_REGION, region);
    serde_json::from_str(&text).expect("a fixture is still JSON with other names in it")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_retargeted_payload_names_only_the_new_account_and_region() {
        let payload = json!({"account": FIXTURE_ACCOUNT, "arn": format!("arn:aws:s3:{FIXTURE_REGION}:{FIXTURE_ACCOUNT}:x")});
        assert_eq!(
            retarget(payload, "123456789012", "us-east-1"),
            json!({"account": "123456789012", "arn": "arn:aws:s3:us-east-1:123456789012:x"})
        );
    }

    #[test]
    fn the_aws_fixtures_are_found_and_read() {
        let inputs = inputs(&dir("aws"));
        assert!(!inputs.is_empty());
        assert!(
            json("aws/cloudtrail-eventbridge-putbucketacl-allusers.json")["detail"].is_object()
        );
    }
}
