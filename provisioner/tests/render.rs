//! `escher-provision render` as a user runs it: the files it writes, what it prints, its
//! exit codes; the golden template for a fully-configured escher.toml; and the rendered
//! templates checked by cfn-lint and checkov (their paths arrive in `ESCHER_CFN_LINT` and
//! `ESCHER_CHECKOV`, written by `tests/emulators.sh`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use escher_test_support::emulator;

const TEMPLATE: &str = "escher-aws.yaml";
const PARAMETERS: &str = "escher-aws.parameters.json";

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_escher-provision"))
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// The fully-configured escher.toml in the current spelling (`[aws]`, `[aws.functions]`, …).
fn full_config() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/escher.toml")
        .to_str()
        .expect("utf-8 path")
        .to_string()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `render --cloud aws` in a fresh folder (so no ./escher.toml of the developer's is
/// read) and returns the output and the folder.
fn render(extra: &[&str]) -> (Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = bin()
        .current_dir(dir.path())
        .args(["render", "--cloud", "aws", "--out", "out"])
        .args(extra)
        .output()
        .expect("run escher-provision");
    (out, dir)
}

fn render_ok(extra: &[&str]) -> tempfile::TempDir {
    let (out, dir) = render(extra);
    assert!(
        out.status.success(),
        "render {extra:?} failed: {}",
        text(&out.stderr)
    );
    dir
}

#[test]
fn render_writes_the_template_and_parameters_into_out() {
    let dir = render_ok(&["--timezone", "Asia/Tokyo"]);
    let template =
        std::fs::read_to_string(dir.path().join("out").join(TEMPLATE)).expect("template");
    assert!(template.starts_with("AWSTemplateFormatVersion"));
    assert!(template.contains("ScheduleExpressionTimezone: \"Asia/Tokyo\""));
    assert!(template.contains("FunctionName: \"escher-extend-alert\""));
    let params: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("out").join(PARAMETERS)).expect("parameters"),
    )
    .expect("parameters are JSON");
    assert!(params.is_array());
}

#[test]
fn json_says_where_the_files_went_and_what_was_decided() {
    let (out, dir) = render(&["--json", "--timezone", "America/New_York"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    let out_dir = std::fs::canonicalize(dir.path().join("out")).expect("out dir");
    for (key, name) in [("template", TEMPLATE), ("parameters", PARAMETERS)] {
        let path = PathBuf::from(summary[key].as_str().expect(key));
        assert!(path.is_absolute(), "{key}: {}", path.display());
        assert_eq!(std::fs::canonicalize(&path).expect(key), out_dir.join(name));
    }
    assert_eq!(summary["cloud"], "aws");
    assert_eq!(summary["stack"], "escher-extend");
    assert_eq!(summary["timezone"], "America/New_York");
    assert_eq!(summary["timezone_source"], "flag");
    assert_eq!(summary["scan_time"], "02:00");
    assert_eq!(summary["create_trail"], true);
    assert_eq!(summary["config"], serde_json::Value::Null);
    assert_eq!(
        summary["missing_parameters"],
        serde_json::json!([
            "ArtifactsBucket",
            "AlertFunctionCodeKey",
            "ScanFunctionCodeKey"
        ])
    );
}

/// `render --cloud gcp` writes the Terraform module for Infrastructure Manager by default,
/// with the custom role derived from the Google Cloud fixes; `--format deployment-manager`
/// writes the Deployment Manager YAML instead and says that Deployment Manager no longer
/// deploys. The files themselves are checked in `src/render/gcp/checks.rs` (golden files,
/// checkov, the provider's schema, parity of the two formats).
#[test]
fn render_gcp_writes_the_terraform_module_or_the_deployment_manager_yaml() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = bin()
        .current_dir(dir.path())
        .args([
            "render",
            "--cloud",
            "gcp",
            "--out",
            "tf",
            "--json",
            "--timezone",
            "Asia/Tokyo",
        ])
        .output()
        .expect("run escher-provision");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(summary["cloud"], "gcp");
    assert_eq!(summary["format"], "terraform");
    assert_eq!(summary["region"], "europe-west1");
    assert_eq!(
        summary["missing_parameters"],
        serde_json::json!(["project", "handler_image"])
    );
    let tf = dir.path().join("tf");
    for name in ["main.tf", "variables.tf", "outputs.tf", "terraform.tfvars"] {
        assert!(tf.join(name).exists(), "{name} written");
    }
    assert!(summary["template"]
        .as_str()
        .is_some_and(|t| t.ends_with("main.tf")));
    assert!(summary["parameters"]
        .as_str()
        .is_some_and(|t| t.ends_with("terraform.tfvars")));
    let main = std::fs::read_to_string(tf.join("main.tf")).expect("main.tf");
    assert!(
        !main.contains("backend \""),
        "Infrastructure Manager keeps the state"
    );
    assert!(main.contains("time_zone        = \"Asia/Tokyo\""));
    let role = main
        .split("resource \"google_project_iam_custom_role\" \"remediation\"")
        .nth(1)
        .and_then(|r| r.split("\n}\n").next())
        .expect("the custom role");
    let permissions = role
        .lines()
        .filter(|l| l.trim_end().ends_with("\","))
        .count() as u64;
    assert_eq!(
        permissions,
        summary["remediation_permissions"].as_u64().unwrap_or(0)
    );
    assert!(permissions > 0);
    assert!(
        !main.contains("google_scc_notification_config"),
        "without an organization there is no SCC notification config"
    );

    let out = bin()
        .current_dir(dir.path())
        .args([
            "render",
            "--cloud",
            "gcp",
            "--format",
            "deployment-manager",
            "--out",
            "dm",
        ])
        .output()
        .expect("run escher-provision");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("Deployment Manager no longer deploys"),
        "{stderr}"
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("left out of escher-gcp.dm.yaml"),
        "{stdout}"
    );
    assert!(!stdout.contains("parameters  "), "{stdout}");
    assert!(dir.path().join("dm/escher-gcp.dm.yaml").exists());
    assert!(!dir.path().join("dm/main.tf").exists());

    let out = bin()
        .current_dir(dir.path())
        .args([
            "render",
            "--cloud",
            "aws",
            "--format",
            "terraform",
            "--out",
            "aws",
        ])
        .output()
        .expect("run escher-provision");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--format"),
        "{}",
        text(&out.stderr)
    );
    assert!(!dir.path().join("aws").exists(), "nothing is written");
}

#[test]
fn an_invalid_config_names_the_file_and_the_problem() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("escher.toml"),
        "[schedule]\nscan_time = \"25:00\"\n",
    )
    .expect("write config");
    let out = bin()
        .current_dir(dir.path())
        .args(["render", "--cloud", "aws"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("escher.toml"), "{stderr}");
    assert!(stderr.contains("scan_time"), "{stderr}");
    assert!(stderr.contains("HH:MM"), "{stderr}");

    let out = bin()
        .current_dir(dir.path())
        .args(["render", "--cloud", "aws", "--config", "missing.toml"])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(2),
        "an explicitly named config must exist"
    );
    assert!(
        text(&out.stderr).contains("missing.toml"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_bad_timezone_flag_is_rejected() {
    let (out, _dir) = render(&["--timezone", "Berlin"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("IANA"), "{}", text(&out.stderr));
}

/// `UPDATE_GOLDEN=1` rewrites the expected files; read the diff before committing it.
#[test]
fn golden_template_for_a_fully_configured_escher_toml() {
    let dir = render_ok(&["--config", &full_config()]);
    for name in [TEMPLATE, PARAMETERS] {
        let rendered = std::fs::read_to_string(dir.path().join("out").join(name)).expect(name);
        escher_test_support::golden::check(&golden_dir().join(name), &rendered);
    }
}

/// golden/escher.toml keeps the spelling from before the per-cloud sections: it is still
/// read, renders the same files, and each old key is named with its new spelling.
#[test]
fn the_old_spelling_renders_the_same_files_and_names_the_new_one() {
    let old = golden_dir().join("escher.toml");
    let (out, old_dir) = render(&["--config", old.to_str().expect("utf-8 path")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    for (was, is) in [
        ("[stack] region", "[aws] region"),
        ("[cloudtrail]", "[aws.cloudtrail]"),
        ("[functions]", "[aws.functions]"),
        ("[buckets]", "[aws.buckets]"),
        ("[artifacts]", "[aws.artifacts]"),
    ] {
        let line = format!("warning: {}: `{was}` is now spelled `{is}`", old.display());
        assert!(stderr.contains(&line), "{line}\nmissing from:\n{stderr}");
    }
    let new_dir = render_ok(&["--config", &full_config()]);
    for name in [TEMPLATE, PARAMETERS] {
        let read = |dir: &tempfile::TempDir| {
            std::fs::read_to_string(dir.path().join("out").join(name)).expect(name)
        };
        assert!(read(&old_dir) == read(&new_dir), "{name} differs");
    }
}

#[test]
fn a_setting_in_both_spellings_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("escher.toml"),
        "[functions]\narchitecture = \"x86_64\"\n[aws.functions]\narchitecture = \"arm64\"\n",
    )
    .expect("write config");
    let out = bin()
        .current_dir(dir.path())
        .args(["render", "--cloud", "aws", "--out", "out"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("`[functions]`") && stderr.contains("keep `[aws.functions]` only"),
        "{stderr}"
    );
    assert!(!dir.path().join("out").exists(), "nothing is written");
}

/// A template-checking tool from `.emulators/env`, or `None` (with a notice) when absent
/// and not required.
fn tool(var: &str) -> Option<PathBuf> {
    emulator::var(
        var,
        "template check skipped (run `make test`, or set -a; . .emulators/env)",
    )
    .map(PathBuf::from)
}

/// The default config (no escher.toml) and the fully-configured one.
fn rendered_templates() -> Vec<(&'static str, tempfile::TempDir)> {
    let config = full_config();
    vec![
        ("default escher.toml", render_ok(&["--timezone", "UTC"])),
        (
            "fully-configured escher.toml",
            render_ok(&["--config", &config]),
        ),
    ]
}

fn assert_tool_passes(what: &str, label: &str, out: &Output) {
    assert!(
        out.status.code() == Some(0),
        "{what} failed on the template for the {label} (exit {:?}):\n{}\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn rendered_templates_pass_cfn_lint_without_errors_or_warnings() {
    let Some(cfn_lint) = tool("ESCHER_CFN_LINT") else {
        return;
    };
    for (label, dir) in rendered_templates() {
        let out = Command::new(&cfn_lint)
            .arg(dir.path().join("out").join(TEMPLATE))
            .output()
            .expect("run cfn-lint");
        // Exit code bits: 2 errors, 4 warnings, 8 informational; all must be clear.
        assert_tool_passes("cfn-lint", label, &out);
    }
}

#[test]
fn rendered_templates_pass_checkov_with_at_most_three_justified_skips() {
    let Some(checkov) = tool("ESCHER_CHECKOV") else {
        return;
    };
    for (label, dir) in rendered_templates() {
        let template = dir.path().join("out").join(TEMPLATE);
        let out = Command::new(&checkov)
            .args([
                "--framework",
                "cloudformation",
                "--compact",
                "--quiet",
                "--skip-download",
            ])
            .arg("-f")
            .arg(&template)
            .env("BC_SKIP_MAPPING", "TRUE")
            .env("CKV_SKIP_PACKAGE_UPDATE_CHECK", "true")
            .output()
            .expect("run checkov");
        assert_tool_passes("checkov", label, &out);
        let stdout = text(&out.stdout);
        assert!(stdout.contains("Failed checks: 0"), "{label}: {stdout}");

        // Every skip carries a reason, and there are at most three.
        let yaml = std::fs::read_to_string(&template).expect("template");
        let skips: Vec<&str> = yaml
            .lines()
            .filter(|l| l.trim_start().starts_with("- id: CKV_"))
            .collect();
        assert!(
            skips.len() <= 3,
            "{label}: {} checkov skips: {skips:?}",
            skips.len()
        );
        let comments = yaml
            .lines()
            .filter(|l| l.trim_start().starts_with("comment: "))
            .count();
        assert_eq!(comments, skips.len(), "{label}: every skip needs a comment");
    }
}

/// `render --cloud azure` writes the ARM template, its parameters and the Bicep file, with
/// the custom role derived from the Azure remediations (no wildcard). The templates
/// themselves are checked in `src/render/azure/checks.rs` (golden files, checkov).
#[test]
fn render_azure_writes_the_arm_template_its_parameters_and_the_bicep() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = bin()
        .current_dir(dir.path())
        .args([
            "render",
            "--cloud",
            "azure",
            "--out",
            "out",
            "--json",
            "--timezone",
            "Asia/Tokyo",
        ])
        .output()
        .expect("run escher-provision");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(summary["cloud"], "azure");
    assert_eq!(summary["region"], "westeurope");
    assert!(
        summary["remediation_permissions"].as_u64().unwrap_or(0) > 0,
        "{summary}"
    );
    let out_dir = dir.path().join("out");
    let template: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out_dir.join("escher-azure.json")).expect("template"),
    )
    .expect("template is JSON");
    let role = template["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .find(|r| r["type"] == "Microsoft.Authorization/roleDefinitions")
        .expect("custom role");
    let actions: Vec<&str> = role["properties"]["permissions"][0]["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .map(|a| a.as_str().expect("action"))
        .collect();
    assert_eq!(
        actions.len() as u64,
        summary["remediation_permissions"].as_u64().unwrap_or(0)
    );
    assert!(
        actions
            .iter()
            .all(|a| a.starts_with("Microsoft.") && !a.contains('*')),
        "{actions:?}"
    );
    let mut sorted = actions.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, actions, "sorted and deduplicated");
    assert!(template.to_string().contains("Asia/Tokyo"));
    assert!(out_dir.join("escher-azure.parameters.json").exists());
    let bicep = std::fs::read_to_string(out_dir.join("escher-azure.bicep")).expect("bicep");
    for action in &actions {
        assert!(
            bicep.contains(&format!("'{action}'")),
            "{action} missing from the Bicep"
        );
    }
}

/// With the subscription given (`--subscription`, escher.toml or AZURE_SUBSCRIPTION_ID), the
/// Azure template names its storage accounts itself, as Azure would; without one it leaves
/// the names to Azure. `--subscription` is refused for another cloud.
#[test]
fn render_azure_names_the_storage_accounts_when_the_subscription_is_given() {
    let render = |extra: &[&str]| {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = bin()
            .current_dir(dir.path())
            .env_remove("AZURE_SUBSCRIPTION_ID")
            .args(["render", "--cloud", "azure", "--out", "out", "--json"])
            .args(extra)
            .output()
            .expect("run escher-provision");
        assert!(out.status.success(), "{}", text(&out.stderr));
        let template: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.path().join("out/escher-azure.json")).expect("template"),
        )
        .expect("template is JSON");
        template["parameters"]["stateStorageAccountName"]["defaultValue"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let named = render(&["--subscription", "0a1b2c3d-0000-4000-8000-00000000abcd"]);
    assert!(
        named.starts_with("escst")
            && named.len() <= 24
            && named
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
        "a literal storage account name: {named:?}"
    );
    let other = render(&["--subscription", "0a1b2c3d-0000-4000-8000-00000000abce"]);
    assert_ne!(named, other, "each subscription its own names");
    let unnamed = render(&[]);
    assert!(
        unnamed.starts_with('['),
        "without a subscription Azure computes the name: {unnamed:?}"
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let out = bin()
        .current_dir(dir.path())
        .args([
            "render",
            "--cloud",
            "aws",
            "--subscription",
            "0a1b2c3d-0000-4000-8000-00000000abcd",
        ])
        .output()
        .expect("run escher-provision");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("Azure subscription"),
        "{}",
        text(&out.stderr)
    );
    let bad = bin()
        .current_dir(dir.path())
        .args(["render", "--cloud", "azure", "--subscription", "my-sub"])
        .output()
        .expect("run escher-provision");
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("GUID"), "{}", text(&bad.stderr));
}
