//! The rendered Azure files checked as a whole: the golden files, checkov on the ARM
//! template (`--framework arm`) and on the Bicep (`--framework bicep`), a planted
//! misconfiguration that checkov must catch (so a scan that sees nothing cannot pass), the
//! ARM and Bicep files describing the same resources, and every API version known to exist.
//!
//! The role's actions come from the test list [`PERMISSIONS`], so the golden files change
//! only when the templates do. checkov's path arrives in `ESCHER_CHECKOV` (tests/emulators.sh).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::tests::PERMISSIONS;
use super::{
    accounts_of, render, AccountNames, AzureRenderInputs, BICEP_FILE, PARAMETERS_FILE,
    TEMPLATE_FILE,
};
use crate::config::EscherConfig;
use crate::render::RenderedFile;

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn full_config() -> EscherConfig {
    let path = manifest_dir().join("tests/fixtures/escher.toml");
    EscherConfig::load(&path, true).expect("fixture escher.toml")
}

/// As `render` writes it: the storage accounts named when escher.toml names the subscription.
fn rendered(config: &EscherConfig) -> Vec<RenderedFile> {
    rendered_with(config, accounts_of(config))
}

fn rendered_with(config: &EscherConfig, accounts: Option<AccountNames>) -> Vec<RenderedFile> {
    render(&AzureRenderInputs {
        config,
        timezone: config
            .schedule
            .timezone
            .unwrap_or_else(|| "UTC".parse().expect("UTC")),
        permissions: &PERMISSIONS,
        accounts,
    })
    .expect("render")
}

/// The subscription `extend` resolves for the default escher.toml in these tests.
const DEPLOYED_SUBSCRIPTION: &str = "00000000-0000-0000-0000-0000000e5c4e";

fn file<'a>(files: &'a [RenderedFile], name: &str) -> &'a str {
    &files
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("{name} not rendered"))
        .contents
}

/// The default config (no escher.toml, so no subscription) as `render` writes it and as
/// `extend` deploys it (the subscription resolved, the accounts named), and the
/// fully-configured one (its subscription given).
fn both_configs() -> Vec<(&'static str, Vec<RenderedFile>)> {
    let default = EscherConfig::default();
    let deployed =
        AccountNames::for_group(DEPLOYED_SUBSCRIPTION, default.azure.resource_group.as_str());
    vec![
        ("default escher.toml", rendered(&default)),
        (
            "default escher.toml as extend deploys it",
            rendered_with(&default, Some(deployed)),
        ),
        ("fully-configured escher.toml", rendered(&full_config())),
    ]
}

/// `UPDATE_GOLDEN=1` rewrites the expected files; read the diff before committing it.
#[test]
fn golden_files_for_a_fully_configured_escher_toml() {
    let files = rendered(&full_config());
    for name in [TEMPLATE_FILE, PARAMETERS_FILE, BICEP_FILE] {
        let golden = manifest_dir().join("tests/golden").join(name);
        escher_test_support::golden::check(&golden, file(&files, name));
    }
}

/// The resources of the ARM template: (type, apiVersion, symbol), the nested deployment's
/// resources included.
fn arm_resources(template: &Value) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    let mut stack: Vec<&Value> = template["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .collect();
    while let Some(r) = stack.pop() {
        let field = |k: &str| r[k].as_str().unwrap_or_default().to_string();
        let symbol = r["metadata"]["symbol"]
            .as_str()
            .unwrap_or_else(|| panic!("{} has no metadata.symbol", r["name"]))
            .to_string();
        out.insert((field("type"), field("apiVersion"), symbol));
        if let Some(nested) = r["properties"]["template"]["resources"].as_array() {
            stack.extend(nested);
        }
    }
    out
}

/// The resources of the Bicep file: `resource <symbol> '<type>@<apiVersion>'` lines, and the
/// nested deployment's resources (`// <symbol>` above `type:` and `apiVersion:`).
fn bicep_resources(bicep: &str) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    let lines: Vec<&str> = bicep.lines().map(str::trim).collect();
    for (i, line) in lines.iter().enumerate() {
        if let Some(rest) = line.strip_prefix("resource ") {
            let (symbol, rest) = rest.split_once(' ').expect("resource <symbol> '<type>'");
            let quoted = rest.split('\'').nth(1).expect("quoted type");
            let (kind, version) = quoted.split_once('@').expect("type@apiVersion");
            out.insert((kind.to_string(), version.to_string(), symbol.to_string()));
        } else if let (Some(kind), Some(version)) = (
            line.strip_prefix("type: '"),
            lines
                .get(i + 1)
                .and_then(|l| l.strip_prefix("apiVersion: '")),
        ) {
            let symbol = lines[i - 1].trim_start_matches("// ").to_string();
            out.insert((
                kind.trim_end_matches('\'').to_string(),
                version.trim_end_matches('\'').to_string(),
                symbol,
            ));
        }
    }
    out
}

#[test]
fn the_arm_template_and_the_bicep_describe_the_same_resources() {
    for (label, files) in both_configs() {
        let template: Value = serde_json::from_str(file(&files, TEMPLATE_FILE)).expect("JSON");
        let arm = arm_resources(&template);
        let bicep = bicep_resources(file(&files, BICEP_FILE));
        assert!(arm.len() > 25, "{label}: {} resources", arm.len());
        assert_eq!(arm, bicep, "{label}: ARM (left) and Bicep (right) differ");
    }
}

/// API versions checked to exist for their resource type, on the Azure resource reference
/// (learn.microsoft.com/azure/templates/<provider>/<version>/<type>) and the providers'
/// published SDKs, through the search tool in December 2026:
/// - Microsoft.Storage 2023-05-01 (storageAccounts, blobServices, containers): the
///   storage reference and Azure quickstart templates;
/// - Microsoft.KeyVault/vaults 2023-07-01; Microsoft.Web serverfarms and sites 2024-04-01
///   (Flex Consumption's `functionAppConfig` exists from 2023-12-01);
/// - Microsoft.Insights components 2020-02-02 (the resource reference's own Bicep sample),
///   actionGroups 2023-01-01, scheduledQueryRules 2023-12-01 (listed among the GA versions
///   by the Azure Native provider);
/// - Microsoft.OperationalInsights/workspaces 2023-09-01; Microsoft.Network/virtualNetworks
///   2023-05-01 (the resource reference, 2023-05-01 page);
/// - Microsoft.Authorization roleDefinitions and roleAssignments 2022-04-01 (the role
///   definition reference's resource format);
/// - Microsoft.EventGrid systemTopics and eventSubscriptions 2022-06-15;
/// - Microsoft.Resources/deployments 2022-09-01.
const KNOWN_API_VERSIONS: [(&str, &str); 16] = [
    ("Microsoft.Authorization/roleAssignments", "2022-04-01"),
    ("Microsoft.Authorization/roleDefinitions", "2022-04-01"),
    ("Microsoft.EventGrid/systemTopics", "2022-06-15"),
    (
        "Microsoft.EventGrid/systemTopics/eventSubscriptions",
        "2022-06-15",
    ),
    ("Microsoft.Insights/actionGroups", "2023-01-01"),
    ("Microsoft.Insights/components", "2020-02-02"),
    ("Microsoft.Insights/scheduledQueryRules", "2023-12-01"),
    ("Microsoft.KeyVault/vaults", "2023-07-01"),
    ("Microsoft.Network/virtualNetworks", "2023-05-01"),
    ("Microsoft.OperationalInsights/workspaces", "2023-09-01"),
    ("Microsoft.Resources/deployments", "2022-09-01"),
    ("Microsoft.Storage/storageAccounts", "2023-05-01"),
    (
        "Microsoft.Storage/storageAccounts/blobServices",
        "2023-05-01",
    ),
    (
        "Microsoft.Storage/storageAccounts/blobServices/containers",
        "2023-05-01",
    ),
    ("Microsoft.Web/serverfarms", "2024-04-01"),
    ("Microsoft.Web/sites", "2024-04-01"),
];

#[test]
fn every_api_version_is_one_known_to_exist_for_its_type() {
    let known: BTreeSet<(&str, &str)> = KNOWN_API_VERSIONS.into_iter().collect();
    for (label, files) in both_configs() {
        let template: Value = serde_json::from_str(file(&files, TEMPLATE_FILE)).expect("JSON");
        for (kind, version, symbol) in arm_resources(&template) {
            assert!(
                known.contains(&(kind.as_str(), version.as_str())),
                "{label}: {symbol} uses {kind}@{version}, not in KNOWN_API_VERSIONS"
            );
        }
        // `reference(...)` and `listKeys(...)` name API versions too.
        let text = file(&files, TEMPLATE_FILE);
        for used in [
            "'2020-02-02'",
            "'2023-07-01'",
            "'2023-05-01'",
            "'2024-04-01'",
        ] {
            assert!(
                text.contains(used),
                "{label}: {used} no longer used; update this test"
            );
        }
    }
}

#[test]
fn the_role_is_the_permission_list_and_holds_no_wildcard() {
    let expected: BTreeSet<&str> = PERMISSIONS.iter().map(|p| p.action).collect();
    for (label, files) in both_configs() {
        let template: Value = serde_json::from_str(file(&files, TEMPLATE_FILE)).expect("JSON");
        let roles: Vec<&Value> = template["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .filter(|r| r["type"] == "Microsoft.Authorization/roleDefinitions")
            .collect();
        assert_eq!(roles.len(), 1, "{label}: one custom role");
        let permissions = roles[0]["properties"]["permissions"]
            .as_array()
            .expect("permissions");
        let actions: BTreeSet<&str> = permissions
            .iter()
            .flat_map(|p| p["actions"].as_array().expect("actions"))
            .map(|a| a.as_str().expect("action"))
            .collect();
        assert_eq!(actions, expected, "{label}");
        assert!(actions.iter().all(|a| !a.contains('*')), "{label}");
        for p in permissions {
            for key in ["notActions", "dataActions"] {
                let none = p[key].as_array().is_none_or(|a| a.is_empty());
                assert!(none, "{label}: {key} must stay empty");
            }
        }
        // The Bicep grants the same.
        let bicep = file(&files, BICEP_FILE);
        for action in &expected {
            assert!(bicep.contains(&format!("'{action}'")), "{label}: {action}");
        }
        let role = bicep
            .split("resource remediationRole ")
            .nth(1)
            .and_then(|rest| rest.split("assignableScopes").next())
            .expect("the role in the Bicep");
        assert!(!role.contains('*'), "{label}: {role}");
    }
}

/// The storage accounts' names: written out when escher.toml names the subscription, and
/// then the very names `concat('escst', uniqueString(resourceGroup().id))` gives in that
/// group (so an earlier deployment's accounts are kept); else Azure's own expression, in both
/// languages. The resources take their names from these parameters.
#[test]
fn the_storage_accounts_are_named_as_azure_names_them() {
    let default_of = |template: &Value, parameter: &str| {
        template["parameters"][parameter]["defaultValue"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let full = full_config();
    // uniqueString('/subscriptions/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d/resourceGroups/acme-escher')
    let expected = AccountNames {
        state: "escstvkygrhdfkwaaq".into(),
        audit: "escauvkygrhdfkwaaq".into(),
    };
    assert_eq!(accounts_of(&full), Some(expected.clone()));
    let files = rendered(&full);
    let template: Value = serde_json::from_str(file(&files, TEMPLATE_FILE)).expect("JSON");
    assert_eq!(
        default_of(&template, "stateStorageAccountName"),
        expected.state
    );
    assert_eq!(
        default_of(&template, "auditStorageAccountName"),
        expected.audit
    );
    let bicep = file(&files, BICEP_FILE);
    for line in [
        format!(
            "param stateStorageAccountName string = '{}'",
            expected.state
        ),
        format!(
            "param auditStorageAccountName string = '{}'",
            expected.audit
        ),
    ] {
        assert!(bicep.contains(&line), "{line}");
    }

    let files = rendered(&EscherConfig::default());
    let template: Value = serde_json::from_str(file(&files, TEMPLATE_FILE)).expect("JSON");
    assert_eq!(
        default_of(&template, "stateStorageAccountName"),
        "[concat('escst', uniqueString(resourceGroup().id))]"
    );
    assert_eq!(
        default_of(&template, "auditStorageAccountName"),
        "[concat('escau', uniqueString(resourceGroup().id))]"
    );
    let bicep = file(&files, BICEP_FILE);
    for line in [
        "param stateStorageAccountName string = 'escst${uniqueString(resourceGroup().id)}'",
        "param auditStorageAccountName string = 'escau${uniqueString(resourceGroup().id)}'",
    ] {
        assert!(bicep.contains(line), "{line}");
    }
    for (variable, parameter) in [
        ("stateAccountName", "stateStorageAccountName"),
        ("auditAccountName", "auditStorageAccountName"),
    ] {
        assert_eq!(
            template["variables"][variable],
            format!("[parameters('{parameter}')]")
        );
    }
    for (symbol, parameter) in [
        ("stateAccount", "stateStorageAccountName"),
        ("auditAccount", "auditStorageAccountName"),
    ] {
        assert!(
            bicep.contains(&format!("resource {symbol} 'Microsoft.Storage/storageAccounts@2023-05-01' = {{\n  // checkov:skip=CKV_AZURE_43: ")),
            "{symbol}: the skip comes with the name Azure computes"
        );
        assert!(
            bicep.contains(&format!("  name: {parameter}\n")),
            "{symbol}"
        );
    }
}

/// checkov's path, or `None` (with a notice) when absent and not required.
fn checkov() -> Option<PathBuf> {
    escher_test_support::emulator::var(
        "ESCHER_CHECKOV",
        "template check skipped (run `make test`, or set -a; . .emulators/env)",
    )
    .map(PathBuf::from)
}

/// checkov's counts for one file.
#[derive(Debug)]
struct Scan {
    passed: u64,
    failed: u64,
    skipped: u64,
    passed_ids: Vec<String>,
    failed_ids: Vec<String>,
    skipped_ids: Vec<String>,
    output: String,
}

/// The checks skipped, each with its reason in the template: three at most, each a
/// constraint of Flex Consumption (scale by instance count, no App Service health check,
/// triggers delivered over the public endpoint).
const SKIPS: [&str; 3] = ["CKV_AZURE_212", "CKV_AZURE_213", "CKV_AZURE_222"];

/// Skipped as well, once per storage account, when escher.toml names no subscription: Azure
/// then computes the accounts' names at deployment, and checkov cannot evaluate them.
const SKIPPED_WITHOUT_SUBSCRIPTION: &str = "CKV_AZURE_43";

/// Checks that pass on the configuration itself: the function's client certificates and the
/// vault's firewall (and CKV_AZURE_43 on both storage accounts when their names are known).
const PASSED: [&str; 2] = ["CKV_AZURE_17", "CKV_AZURE_189"];

fn run_checkov(checkov: &Path, framework: &str, path: &Path) -> Scan {
    let out = Command::new(checkov)
        .args(["--framework", framework, "--skip-download", "-o", "json"])
        .arg("-f")
        .arg(path)
        .env("BC_SKIP_MAPPING", "TRUE")
        .env("CKV_SKIP_PACKAGE_UPDATE_CHECK", "true")
        .output()
        .expect("run checkov");
    let output = String::from_utf8_lossy(&out.stdout).into_owned();
    let report: Value = serde_json::from_str(&output).unwrap_or_else(|e| {
        panic!(
            "checkov --framework {framework} gave no JSON report ({e}) on {}:\n{output}\n{}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let summary = &report["summary"];
    let count = |k: &str| summary[k].as_u64().unwrap_or(0);
    let passed_ids = report["results"]["passed_checks"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| c["check_id"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default();
    let failed_ids = report["results"]["failed_checks"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| format!("{} on {}", c["check_id"], c["resource"]))
                .collect()
        })
        .unwrap_or_default();
    let skipped_ids = report["results"]["skipped_checks"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| c["check_id"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        count("parsing_errors") == 0,
        "checkov could not parse {}: {output}",
        path.display()
    );
    Scan {
        passed: count("passed"),
        failed: count("failed"),
        skipped: count("skipped"),
        passed_ids,
        failed_ids,
        skipped_ids,
        output,
    }
}

fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write rendered file");
    path
}

#[test]
fn checkov_passes_the_arm_template_and_the_bicep_with_only_the_justified_skips() {
    let Some(checkov) = checkov() else {
        return;
    };
    for (label, files) in both_configs() {
        let dir = tempfile::tempdir().expect("temp dir");
        let named = file(&files, TEMPLATE_FILE).contains("\"defaultValue\": \"escst");
        for (framework, name) in [("arm", TEMPLATE_FILE), ("bicep", BICEP_FILE)] {
            let path = write(dir.path(), name, file(&files, name));
            let scan = run_checkov(&checkov, framework, &path);
            eprintln!(
                "checkov --framework {framework}, {label}: {} passed, {} failed, {} skipped",
                scan.passed, scan.failed, scan.skipped
            );
            assert!(
                scan.passed > 20,
                "{label} {framework}: too few checks ran: {scan:?}"
            );
            assert_eq!(scan.failed, 0, "{label} {framework}: {:?}", scan.failed_ids);
            let skipped: BTreeSet<&str> = scan.skipped_ids.iter().map(String::as_str).collect();
            let passed = |id: &str| scan.passed_ids.iter().filter(|p| *p == id).count();
            for id in PASSED {
                assert_eq!(passed(id), 1, "{label} {framework}: {id} must pass");
            }
            if named {
                assert_eq!(
                    skipped,
                    SKIPS.into_iter().collect::<BTreeSet<_>>(),
                    "{label} {framework}: the skips changed"
                );
                assert!(
                    scan.skipped <= SKIPS.len() as u64,
                    "{label} {framework}: {:?}",
                    scan.skipped_ids
                );
                assert_eq!(
                    passed(SKIPPED_WITHOUT_SUBSCRIPTION),
                    2,
                    "{label} {framework}: both storage account names are checked"
                );
            } else {
                let mut expected: BTreeSet<&str> = SKIPS.into_iter().collect();
                expected.insert(SKIPPED_WITHOUT_SUBSCRIPTION);
                assert_eq!(skipped, expected, "{label} {framework}: the skips changed");
                assert_eq!(
                    scan.skipped,
                    SKIPS.len() as u64 + 2,
                    "{label} {framework}: {:?}",
                    scan.skipped_ids
                );
            }
        }
        // Every skip carries its reason in the template.
        let template: Value = serde_json::from_str(file(&files, TEMPLATE_FILE)).expect("JSON");
        for r in template["resources"].as_array().expect("resources") {
            for skip in r["metadata"]["checkov"].as_array().into_iter().flatten() {
                let text = skip.as_str().expect("skip is a string");
                let (_, reason) = text.split_once(": ").expect("CKV_ID: reason");
                assert!(
                    reason.len() > 40,
                    "{label}: skip without a real reason: {text}"
                );
            }
        }
        for line in file(&files, BICEP_FILE)
            .lines()
            .filter(|l| l.contains("checkov:skip="))
        {
            let (_, reason) = line.split_once(": ").expect("checkov:skip=ID: reason");
            assert!(
                reason.len() > 40,
                "{label}: skip without a real reason: {line}"
            );
        }
    }
}

/// The scan is not hollow: the same misconfiguration planted into a rendered copy of each
/// file (the state account allowing TLS 1.0, and the audit container made public) makes
/// checkov fail, in both frameworks; so does a role with `*` planted into the ARM template.
#[test]
fn checkov_fails_a_rendered_copy_with_a_planted_misconfiguration() {
    let Some(checkov) = checkov() else {
        return;
    };
    let files = rendered(&EscherConfig::default());
    let dir = tempfile::tempdir().expect("temp dir");

    let arm = file(&files, TEMPLATE_FILE);
    let plants = [
        (
            "\"minimumTlsVersion\": \"TLS1_2\"",
            "\"minimumTlsVersion\": \"TLS1_0\"",
            "CKV_AZURE_44",
        ),
        (
            "\"publicAccess\": \"None\",\n        \"immutableStorageWithVersioning\"",
            "\"publicAccess\": \"Blob\",\n        \"immutableStorageWithVersioning\"",
            "CKV_AZURE_34",
        ),
        (
            "\"actions\": [",
            "\"actions\": [\n              \"*\",",
            "CKV_AZURE_39",
        ),
    ];
    for (from, to, check) in plants {
        assert!(
            arm.contains(from),
            "plant site `{from}` is gone from the template"
        );
        let planted = arm.replacen(from, to, 1);
        serde_json::from_str::<Value>(&planted).expect("the planted copy is still JSON");
        let path = write(dir.path(), TEMPLATE_FILE, &planted);
        let scan = run_checkov(&checkov, "arm", &path);
        assert!(
            scan.failed_ids.iter().any(|f| f.contains(check)),
            "arm: planting `{to}` must fail {check}: {:?}\n{}",
            scan.failed_ids,
            scan.output
        );
    }

    let bicep = file(&files, BICEP_FILE);
    for (from, to, check) in [
        (
            "minimumTlsVersion: 'TLS1_2'",
            "minimumTlsVersion: 'TLS1_0'",
            "CKV_AZURE_44",
        ),
        (
            "publicAccess: 'None'\n    immutableStorageWithVersioning",
            "publicAccess: 'Blob'\n    immutableStorageWithVersioning",
            "CKV_AZURE_34",
        ),
    ] {
        assert!(
            bicep.contains(from),
            "plant site `{from}` is gone from the Bicep"
        );
        let path = write(dir.path(), BICEP_FILE, &bicep.replacen(from, to, 1));
        let scan = run_checkov(&checkov, "bicep", &path);
        assert!(
            scan.failed_ids.iter().any(|f| f.contains(check)),
            "bicep: planting `{to}` must fail {check}: {:?}\n{}",
            scan.failed_ids,
            scan.output
        );
    }
}
