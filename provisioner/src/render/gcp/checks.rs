//! The rendered Google Cloud files checked as a whole: the golden files, checkov on the
//! Terraform module (`--framework terraform`; checkov has no Deployment Manager framework),
//! a planted misconfiguration that checkov must catch, every resource type and attribute
//! known to the Google provider's schema, the custom role, and the Deployment Manager file
//! describing the same resources as the Terraform module.
//!
//! The role's permissions come from the test list [`PERMISSIONS`], so the golden files change
//! only when the templates do. checkov's path arrives in `ESCHER_CHECKOV` (tests/emulators.sh).

use std::path::Path;

use super::tests::rendered;
use super::{GcpFormat, DM_FILE, MAIN_FILE, OUTPUTS_FILE, TFVARS_FILE, VARIABLES_FILE};
use crate::config::EscherConfig;
use crate::render::RenderedFile;

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn full_config() -> EscherConfig {
    let path = manifest_dir().join("tests/fixtures/escher.toml");
    EscherConfig::load(&path, true).expect("fixture escher.toml")
}

fn file<'a>(files: &'a [RenderedFile], name: &str) -> &'a str {
    &files
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("{name} not rendered"))
        .contents
}

/// `UPDATE_GOLDEN=1` rewrites the expected files; read the diff before committing it.
#[test]
fn golden_files_for_a_fully_configured_escher_toml() {
    let config = full_config();
    let terraform = rendered(&config, GcpFormat::Terraform);
    let dm = rendered(&config, GcpFormat::DeploymentManager);
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let dir = manifest_dir().join("tests/golden/escher-gcp");
    for (name, files) in [
        (MAIN_FILE, &terraform),
        (VARIABLES_FILE, &terraform),
        (OUTPUTS_FILE, &terraform),
        (TFVARS_FILE, &terraform),
        (DM_FILE, &dm),
    ] {
        let rendered = file(files, name);
        let golden = dir.join(name);
        if update {
            std::fs::create_dir_all(&dir).expect("golden dir");
            std::fs::write(&golden, rendered).expect("update golden");
            continue;
        }
        let expected = std::fs::read_to_string(&golden)
            .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", golden.display()));
        if rendered != expected {
            let first = rendered
                .lines()
                .zip(expected.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(rendered.lines().count().min(expected.lines().count()));
            panic!(
                "{name} differs from {} from line {}:\n  rendered: {:?}\n  expected: {:?}\n(UPDATE_GOLDEN=1 to accept)",
                golden.display(),
                first + 1,
                rendered.lines().nth(first),
                expected.lines().nth(first),
            );
        }
    }
}
