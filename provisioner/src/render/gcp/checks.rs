//! The rendered Google Cloud files checked as a whole: the golden files, checkov on the
//! Terraform module (`--framework terraform`; checkov has no Deployment Manager framework),
//! a planted misconfiguration that checkov must catch, every resource type and attribute
//! known to the Google provider's schema, the custom role, and the Deployment Manager file
//! describing the same resources as the Terraform module.
//!
//! The role's permissions come from the test list [`PERMISSIONS`], so the golden files change
//! only when the templates do. checkov's path arrives in `ESCHER_CHECKOV` (tests/emulators.sh).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

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
    let dir = manifest_dir().join("tests/golden/escher-gcp");
    for (name, files) in [
        (MAIN_FILE, &terraform),
        (VARIABLES_FILE, &terraform),
        (OUTPUTS_FILE, &terraform),
        (TFVARS_FILE, &terraform),
        (DM_FILE, &dm),
    ] {
        escher_test_support::golden::check(&dir.join(name), file(files, name));
    }
}

/// The default escher.toml (no project, no organization, no e-mail) and the fully
/// configured one (project, organization, locked audit bucket, e-mail and SMS).
fn both_configs() -> Vec<(&'static str, EscherConfig)> {
    vec![
        ("default escher.toml", EscherConfig::default()),
        ("fully-configured escher.toml", full_config()),
    ]
}

/// The Terraform files of `config`, written into a fresh folder (a root module).
fn module_dir(config: &EscherConfig) -> (tempfile::TempDir, Vec<RenderedFile>) {
    let files = rendered(config, GcpFormat::Terraform);
    let dir = tempfile::tempdir().expect("temp dir");
    for f in &files {
        std::fs::write(dir.path().join(f.name), &f.contents).expect("write rendered file");
    }
    (dir, files)
}

/// checkov's path, or `None` (with a notice) when absent and not required.
fn checkov() -> Option<PathBuf> {
    escher_test_support::emulator::var(
        "ESCHER_CHECKOV",
        "template check skipped (run `make test`, or set -a; . .emulators/env)",
    )
    .map(PathBuf::from)
}

/// The Python beside checkov (tests/emulators.sh's venv), which has python-hcl2 and PyYAML:
/// checkov parses Terraform with that same python-hcl2.
fn venv_python() -> Option<PathBuf> {
    checkov().map(|c| c.with_file_name("python"))
}

/// checkov's results for one module folder.
#[derive(Debug)]
struct Scan {
    failed: Vec<String>,
    passed: Vec<String>,
    skipped: Vec<String>,
    output: String,
}

fn run_checkov(checkov: &Path, dir: &Path) -> Scan {
    let out = Command::new(checkov)
        .args([
            "--framework",
            "terraform",
            "--skip-download",
            "-o",
            "json",
            "-d",
        ])
        .arg(dir)
        .env("BC_SKIP_MAPPING", "TRUE")
        .env("CKV_SKIP_PACKAGE_UPDATE_CHECK", "true")
        .output()
        .expect("run checkov");
    let output = String::from_utf8_lossy(&out.stdout).into_owned();
    let report: Value = serde_json::from_str(&output).unwrap_or_else(|e| {
        panic!(
            "checkov gave no JSON report ({e}) on {}:\n{output}\n{}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(
        report["summary"]["parsing_errors"].as_u64(),
        Some(0),
        "checkov could not parse the module: {output}"
    );
    let ids = |kind: &str| -> Vec<String> {
        report["results"][kind]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|c| {
                        format!(
                            "{} on {}",
                            c["check_id"].as_str().unwrap_or_default(),
                            c["resource"].as_str().unwrap_or_default()
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    Scan {
        failed: ids("failed_checks"),
        passed: ids("passed_checks"),
        skipped: ids("skipped_checks"),
        output,
    }
}

/// The skips, each justified in the template: the access-log bucket does not log its own
/// access, and the two topics keep Google's encryption at rest.
const SKIPS: [&str; 3] = [
    "CKV_GCP_62 on google_storage_bucket.access_logs",
    "CKV_GCP_83 on google_pubsub_topic.alerts",
    "CKV_GCP_83 on google_pubsub_topic.dead_letter",
];

#[test]
fn checkov_passes_the_terraform_module_with_only_the_justified_skips() {
    let Some(checkov) = checkov() else {
        return;
    };
    for (label, config) in both_configs() {
        let (dir, files) = module_dir(&config);
        let scan = run_checkov(&checkov, dir.path());
        eprintln!(
            "checkov --framework terraform, {label}: {} passed, {} failed, {} skipped",
            scan.passed.len(),
            scan.failed.len(),
            scan.skipped.len()
        );
        assert!(scan.failed.is_empty(), "{label}: {:?}", scan.failed);
        assert!(
            scan.passed.len() > 20,
            "{label}: too few checks ran: {scan:?}"
        );
        let skipped: BTreeSet<&str> = scan.skipped.iter().map(String::as_str).collect();
        assert_eq!(
            skipped,
            SKIPS.into_iter().collect(),
            "{label}: the skips changed"
        );
        assert_eq!(scan.skipped.len(), SKIPS.len(), "{label}");
        // Each bucket: public access prevention enforced, uniform access, versioning.
        for check in ["CKV_GCP_114", "CKV_GCP_29", "CKV_GCP_78"] {
            for bucket in ["state", "audit", "access_logs"] {
                let id = format!("{check} on google_storage_bucket.{bucket}");
                assert!(scan.passed.contains(&id), "{label}: {id} must pass");
            }
        }
        for id in [
            "CKV_GCP_62 on google_storage_bucket.state",
            "CKV_GCP_62 on google_storage_bucket.audit",
        ] {
            assert!(scan.passed.iter().any(|p| p == id), "{label}: {id}");
        }
        // Every skip carries its reason in the template, one line each.
        let main = file(&files, MAIN_FILE);
        let skips: Vec<&str> = main
            .lines()
            .filter(|l| l.contains("checkov:skip="))
            .collect();
        assert_eq!(skips.len(), SKIPS.len(), "{label}: {skips:?}");
        for line in skips {
            let reason = line.splitn(3, ':').nth(2).unwrap_or_default();
            assert!(
                reason.len() > 40,
                "{label}: skip without a real reason: {line}"
            );
        }
    }
}

/// The scan is not hollow: a bucket planted into a rendered copy without public access
/// prevention, without uniform access, or open to everyone makes checkov fail.
#[test]
fn checkov_fails_a_rendered_copy_with_a_planted_misconfiguration() {
    let Some(checkov) = checkov() else {
        return;
    };
    let (dir, files) = module_dir(&full_config());
    let main = file(&files, MAIN_FILE);
    for (from, to, check) in [
        (
            "public_access_prevention    = \"enforced\"",
            "public_access_prevention    = \"inherited\"",
            "CKV_GCP_114",
        ),
        (
            "uniform_bucket_level_access = true",
            "uniform_bucket_level_access = false",
            "CKV_GCP_29",
        ),
        (
            "member = \"group:cloud-storage-analytics@google.com\"",
            "member = \"allUsers\"",
            "CKV_GCP_28",
        ),
    ] {
        assert!(
            main.contains(from),
            "plant site `{from}` is gone from main.tf"
        );
        std::fs::write(dir.path().join(MAIN_FILE), main.replacen(from, to, 1))
            .expect("write planted copy");
        let scan = run_checkov(&checkov, dir.path());
        assert!(
            scan.failed.iter().any(|f| f.starts_with(check)),
            "planting `{to}` must fail {check}: {:?}\n{}",
            scan.failed,
            scan.output
        );
    }
}

/// The Google provider's schema for the types the module uses: resource type -> attribute
/// (null) or nested block (its own members). Derived by `extract.py` beside it.
fn provider_schema() -> Value {
    let path = manifest_dir().join("tests/gcp-provider-schema/schema.json");
    let text = std::fs::read_to_string(&path).expect("vendored provider schema");
    serde_json::from_str(&text).expect("schema is JSON")
}

/// Meta-arguments Terraform takes on every resource.
const META_ARGUMENTS: [&str; 5] = ["depends_on", "count", "for_each", "lifecycle", "provider"];

/// `dir`'s .tf files as python-hcl2 reads them (one JSON object per file).
fn parse_hcl(python: &Path, path: &Path) -> Value {
    let script = "import hcl2, json, sys\nprint(json.dumps(hcl2.load(open(sys.argv[1]))))";
    let out = Command::new(python)
        .args(["-c", script])
        .arg(path)
        .output()
        .expect("run python-hcl2");
    assert!(
        out.status.success(),
        "python-hcl2 cannot parse {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("python-hcl2 JSON")
}

/// Every name the body uses that the schema does not know, as `path.name`. python-hcl2
/// writes each attribute and each block as a list; a block's items are objects.
fn unknown_names(body: &Value, schema: &Value, path: &str, out: &mut Vec<String>) {
    let Some(body) = body.as_object() else {
        return;
    };
    for (name, value) in body {
        if name.starts_with("__") {
            continue;
        }
        let here = format!("{path}.{name}");
        match schema.get(name) {
            None => out.push(here),
            Some(Value::Object(members)) => {
                let members = Value::Object(members.clone());
                for block in value.as_array().into_iter().flatten() {
                    unknown_names(block, &members, &here, out);
                }
            }
            Some(_) => {}
        }
    }
}

/// Every resource and data source type, every attribute and nested block, and every
/// attribute read from another resource (`google_x.name.attr`) in the module.
fn schema_problems(python: &Path, dir: &Path, main: &str) -> Vec<String> {
    let schema = provider_schema();
    let types = &schema["types"];
    let parsed = parse_hcl(python, &dir.join(MAIN_FILE));
    let mut problems = Vec::new();
    for (kind, prefix) in [("resource", ""), ("data", "data.")] {
        for item in parsed[kind].as_array().into_iter().flatten() {
            for (rtype, named) in item.as_object().into_iter().flatten() {
                let key = format!("{prefix}{rtype}");
                let Some(members) = types.get(&key) else {
                    problems.push(format!("{key}: not a type of the provider"));
                    continue;
                };
                let mut allowed = members.clone();
                for meta in META_ARGUMENTS {
                    allowed[meta] = Value::Null;
                }
                for (name, body) in named.as_object().into_iter().flatten() {
                    unknown_names(body, &allowed, &format!("{key}.{name}"), &mut problems);
                }
            }
        }
    }
    // Attributes read from other resources (`google_x.name.attr`, `data.google_x.name.attr`).
    for (i, _) in main.match_indices("google_") {
        let before = &main[..i];
        if before.ends_with(|c: char| {
            c.is_ascii_alphanumeric() || c == '_' || c == '"' || c == '-' || c == '/' || c == '@'
        }) {
            continue;
        }
        let data = before.ends_with("data.");
        let reference: String = main[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
            .collect();
        let parts: Vec<&str> = reference.trim_end_matches('.').split('.').collect();
        if parts.len() < 3 {
            continue;
        }
        let key = if data {
            format!("data.{}", parts[0])
        } else {
            parts[0].to_string()
        };
        if types.get(&key).and_then(|t| t.get(parts[2])).is_none() {
            problems.push(format!(
                "reference {reference}: {key} has no attribute {}",
                parts[2]
            ));
        }
    }
    problems
}

#[test]
fn every_type_attribute_and_block_is_in_the_google_providers_schema() {
    let Some(python) = venv_python() else {
        return;
    };
    let schema = provider_schema();
    assert_eq!(schema["provider"], "hashicorp/google 8.7.0");
    for (label, config) in both_configs() {
        let (dir, files) = module_dir(&config);
        let problems = schema_problems(&python, dir.path(), file(&files, MAIN_FILE));
        assert!(problems.is_empty(), "{label}: {problems:#?}");
        // Every type of the module is in the vendored schema, and nothing more is vendored.
        let main = file(&files, MAIN_FILE);
        if label.starts_with("fully") {
            let used: BTreeSet<String> = main
                .lines()
                .filter_map(|l| {
                    let kind = l.strip_prefix("resource \"").map(|r| ("", r));
                    let kind = kind.or_else(|| l.strip_prefix("data \"").map(|r| ("data.", r)));
                    kind.map(|(p, r)| format!("{p}{}", r.split('"').next().unwrap_or_default()))
                })
                .collect();
            let vendored: BTreeSet<String> = schema["types"]
                .as_object()
                .expect("types")
                .keys()
                .cloned()
                .collect();
            assert_eq!(used, vendored, "regenerate schema.json with extract.py");
        }
    }
    // Not hollow: a misspelt attribute, an attribute in the wrong block, an unknown type
    // and a computed attribute that does not exist are each reported.
    let (dir, files) = module_dir(&full_config());
    let main = file(&files, MAIN_FILE);
    for (from, to, reported) in [
        (
            "uniform_bucket_level_access = true",
            "uniform_bucket_access = true",
            "google_storage_bucket.access_logs.uniform_bucket_access",
        ),
        (
            "      max_instance_count = ",
            "      max_instances = ",
            "google_cloud_run_v2_service.handler.template.scaling.max_instances",
        ),
        (
            "resource \"google_pubsub_topic\" \"alerts\"",
            "resource \"google_pubsub_topics\" \"alerts\"",
            "google_pubsub_topics: not a type",
        ),
        (
            "google_cloud_run_v2_service.handler.uri}/scan",
            "google_cloud_run_v2_service.handler.url}/scan",
            "reference google_cloud_run_v2_service.handler.url",
        ),
    ] {
        assert!(main.contains(from), "plant site `{from}` is gone");
        let planted = main.replacen(from, to, 1);
        std::fs::write(dir.path().join(MAIN_FILE), &planted).expect("write planted copy");
        let problems = schema_problems(&python, dir.path(), &planted);
        assert!(
            problems.iter().any(|p| p.starts_with(reported)),
            "planting `{to}` must report {reported}: {problems:#?}"
        );
    }
}

/// The custom role holds exactly `escher_gcp::all_required_permissions()` (each once,
/// sorted), is bound to the handler, and no basic role appears in either format.
#[test]
fn the_role_is_the_fixes_permissions_and_no_basic_role_is_granted() {
    let mut expected: Vec<String> = escher_gcp::all_required_permissions()
        .iter()
        .map(|p| p.action.to_string())
        .collect();
    expected.sort();
    expected.dedup();
    assert!(!expected.is_empty());
    for (label, config) in both_configs() {
        let rendering = super::for_review(&config, "UTC".parse().expect("UTC")).expect("render");
        assert_eq!(rendering.remediation_permissions, expected.len(), "{label}");
        let main = file(&rendering.files, MAIN_FILE);
        let role = main
            .split("resource \"google_project_iam_custom_role\" \"remediation\" {")
            .nth(1)
            .and_then(|r| r.split("\n}\n").next())
            .expect("the custom role");
        let granted: Vec<String> = role
            .split("permissions = [")
            .nth(1)
            .and_then(|p| p.split(']').next())
            .expect("permissions")
            .lines()
            .map(|l| l.trim().trim_end_matches(',').trim_matches('"').to_string())
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(granted, expected, "{label}");
        assert!(main.contains(
            "role    = google_project_iam_custom_role.remediation.name\n  member  = \"serviceAccount:${google_service_account.handler.email}\""
        ));
        let dm = super::for_review_as(
            &config,
            "UTC".parse().expect("UTC"),
            GcpFormat::DeploymentManager,
        )
        .expect("dm");
        let yaml = file(&dm.files, DM_FILE);
        for permission in &expected {
            assert!(
                yaml.contains(&format!("      - \"{permission}\"\n")),
                "{label}: {permission}"
            );
        }
        for text in [main, yaml] {
            for basic in [
                "roles/owner",
                "roles/editor",
                "roles/viewer",
                "allUsers",
                "allAuthenticatedUsers",
            ] {
                assert!(!text.contains(basic), "{label}: {basic} granted");
            }
        }
    }
}

/// The Deployment Manager type of each Terraform resource type that has one. The names were
/// checked through the search tool (December 2026) in Google's deploymentmanager-samples
/// (`google/resource-snippets/`: `storage.v1.bucket`, `pubsub.v1.topic` and `.subscription`,
/// `gcp-types/cloudresourcemanager-v1:virtual.projects.iamMemberBinding`) and in published
/// Deployment Manager configurations and templates (`gcp-types/storage-v1:virtual.buckets.
/// iamMemberBinding`, `gcp-types/iam-v1:projects.roles`, `gcp-types/secretmanager-v1:projects.
/// secrets`, `gcp-types/run-v2:projects.locations.services`, `gcp-types/monitoring-v3:projects.
/// notificationChannels`); `gcp-types/<api>-<version>:<collection>` names the API's
/// collection as its discovery document does (`monitoring-v3:projects.alertPolicies`,
/// `cloudscheduler-v1:projects.locations.jobs`).
const DM_TYPES: [(&str, &str); 14] = [
    ("google_storage_bucket", "storage.v1.bucket"),
    (
        "google_storage_bucket_iam_member",
        "gcp-types/storage-v1:virtual.buckets.iamMemberBinding",
    ),
    ("google_service_account", "iam.v1.serviceAccount"),
    (
        "google_project_iam_custom_role",
        "gcp-types/iam-v1:projects.roles",
    ),
    (
        "google_project_iam_member",
        "gcp-types/cloudresourcemanager-v1:virtual.projects.iamMemberBinding",
    ),
    (
        "google_secret_manager_secret",
        "gcp-types/secretmanager-v1:projects.secrets",
    ),
    (
        "google_cloud_run_v2_service",
        "gcp-types/run-v2:projects.locations.services",
    ),
    ("google_pubsub_topic", "pubsub.v1.topic"),
    ("google_pubsub_subscription", "pubsub.v1.subscription"),
    ("google_logging_project_sink", "logging.v2.sink"),
    (
        "google_monitoring_notification_channel",
        "gcp-types/monitoring-v3:projects.notificationChannels",
    ),
    (
        "google_monitoring_alert_policy",
        "gcp-types/monitoring-v3:projects.alertPolicies",
    ),
    (
        "google_cloud_scheduler_job",
        "gcp-types/cloudscheduler-v1:projects.locations.jobs",
    ),
    // Listed so that the parity below names it; it has no DM type: see DM_ABSENT.
    ("google_scc_notification_config", ""),
];

/// The differences, on purpose: Terraform resource types the Deployment Manager file leaves
/// out (super::DM_LEFT_OUT says so in the file and the summary).
const DM_ABSENT: [&str; 7] = [
    "google_project_service",
    "google_secret_manager_secret_iam_member",
    "google_cloud_run_v2_service_iam_member",
    "google_pubsub_topic_iam_member",
    "google_pubsub_subscription_iam_member",
    "google_service_account_iam_member",
    "google_scc_notification_config",
];

/// Terraform names mapped to Deployment Manager names: `_` becomes `-`, except the service,
/// whose plain name (`handler`) is the service account's there.
fn dm_name(tf_type: &str, tf_name: &str) -> String {
    match (tf_type, tf_name) {
        ("google_cloud_run_v2_service", "handler") => "handler-service".to_string(),
        (_, other) => other.replace('_', "-"),
    }
}

/// (type, name) of each `resource "type" "name"` in main.tf.
fn terraform_resources(main: &str) -> Vec<(String, String)> {
    main.lines()
        .filter_map(|l| l.strip_prefix("resource \""))
        .map(|rest| {
            let parts: Vec<&str> = rest.split('"').collect();
            (parts[0].to_string(), parts[2].to_string())
        })
        .collect()
}

/// (type, name) of each resource in the Deployment Manager file: `- name:` then `type:`.
fn dm_resources(yaml: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = yaml.lines().collect();
    lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let name = l.strip_prefix("- name: ")?;
            let kind = lines.get(i + 1)?.strip_prefix("  type: ")?;
            Some((kind.to_string(), name.to_string()))
        })
        .collect()
}

#[test]
fn the_deployment_manager_file_holds_the_terraform_resources_but_the_listed_ones() {
    let dm_type: BTreeMap<&str, &str> = DM_TYPES.into_iter().collect();
    for (label, config) in both_configs() {
        let terraform = rendered(&config, GcpFormat::Terraform);
        let dm = rendered(&config, GcpFormat::DeploymentManager);
        let tf = terraform_resources(file(&terraform, MAIN_FILE));
        let yaml = file(&dm, DM_FILE);
        let mut expected = BTreeSet::new();
        for (kind, name) in &tf {
            if DM_ABSENT.contains(&kind.as_str()) {
                continue;
            }
            let dm_kind = dm_type
                .get(kind.as_str())
                .unwrap_or_else(|| panic!("{label}: {kind} in neither DM_TYPES nor DM_ABSENT"));
            expected.insert((dm_kind.to_string(), dm_name(kind, name)));
        }
        let found: BTreeSet<(String, String)> = dm_resources(yaml).into_iter().collect();
        assert_eq!(
            dm_resources(yaml).len(),
            found.len(),
            "{label}: names are unique"
        );
        assert_eq!(
            found, expected,
            "{label}: DM (left) and Terraform (right) differ"
        );
        assert!(found.len() > 20, "{label}: {} resources", found.len());
        // The file says what it leaves out.
        for left_out in super::DM_LEFT_OUT {
            assert!(
                yaml.contains(&format!("#   - {left_out}\n")),
                "{label}: {left_out}"
            );
        }
    }
    // Every listed difference exists in the fully-configured module (no stale entry).
    let tf = terraform_resources(file(
        &rendered(&full_config(), GcpFormat::Terraform),
        MAIN_FILE,
    ));
    for absent in DM_ABSENT {
        assert!(
            tf.iter().any(|(k, _)| k == absent),
            "{absent} no longer rendered"
        );
    }
}

/// The Deployment Manager file is YAML whose resources are the ones counted above (checked
/// with PyYAML from tests/emulators.sh's venv), and its buckets' properties are Cloud
/// Storage's published Bucket resource.
#[test]
fn the_deployment_manager_file_is_yaml_of_name_type_properties() {
    let Some(python) = venv_python() else {
        return;
    };
    for (label, config) in both_configs() {
        let dm = rendered(&config, GcpFormat::DeploymentManager);
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(DM_FILE);
        std::fs::write(&path, file(&dm, DM_FILE)).expect("write");
        let script = "import yaml, json, sys\nprint(json.dumps(yaml.safe_load(open(sys.argv[1]))))";
        let out = Command::new(&python)
            .args(["-c", script])
            .arg(&path)
            .output()
            .expect("run python");
        assert!(
            out.status.success(),
            "{label}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let value: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        let resources = value["resources"].as_array().expect("resources");
        assert_eq!(
            resources.len(),
            dm_resources(file(&dm, DM_FILE)).len(),
            "{label}"
        );
        for r in resources {
            let keys: BTreeSet<&str> = r
                .as_object()
                .expect("object")
                .keys()
                .map(String::as_str)
                .collect();
            assert!(
                keys.is_subset(
                    &["name", "type", "properties", "metadata"]
                        .into_iter()
                        .collect()
                ),
                "{label}: {keys:?}"
            );
            assert!(r["properties"].is_object(), "{label}: {r}");
        }
        // The buckets' properties are Cloud Storage's Bucket resource, held to the published
        // discovery document (the vendored slice has buckets.patch, which takes a Bucket).
        let storage = escher_test_support::gcp_discovery::Discovery::load(&["storage.v1"]);
        let buckets: Vec<&Value> = resources
            .iter()
            .filter(|r| r["type"] == "storage.v1.bucket")
            .collect();
        assert_eq!(buckets.len(), 3, "{label}");
        for bucket in buckets {
            let mut body = bucket["properties"].clone();
            let project = body
                .as_object_mut()
                .and_then(|b| b.remove("project"))
                .expect("the bucket's project");
            assert!(project.is_string(), "{label}: {bucket}");
            let path: Vec<String> = ["storage", "v1", "b", body["name"].as_str().expect("name")]
                .iter()
                .map(|s| s.to_string())
                .collect();
            if let Err(problems) =
                storage.check(&axum::http::Method::PATCH, &path, &[], Some(&body))
            {
                panic!(
                    "{label}: {} is not a Cloud Storage bucket: {problems:?}",
                    bucket["name"]
                );
            }
        }
        let job = resources
            .iter()
            .find(|r| r["name"] == "nightly-scan")
            .expect("the scheduler job");
        assert_eq!(
            job["properties"]["httpTarget"]["headers"]["Content-Type"],
            "application/json"
        );
    }
}
