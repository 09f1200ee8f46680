//! `extend`, `status`, `credentials` and `destroy --cloud azure` as a user runs them, against
//! the Resource Manager stand-in (Microsoft's published examples; every request checked
//! against them), with the App Service managed-identity endpoint as the credential.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use escher_test_support::azure_arm::ArmDouble;
use serde_json::Value;

const SUBSCRIPTION: &str = "00000000-0000-0000-0000-0000000e5c4e";
const STACK: &str = "escher-extend";

struct Account {
    double: ArmDouble,
    dir: tempfile::TempDir,
}

impl Account {
    async fn new() -> Account {
        let double = ArmDouble::start().await;
        double.subscription(SUBSCRIPTION, "Escher test subscription");
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join("escher.toml"),
            "[azure]\noperator_addresses = [\"203.0.113.7\"]\n",
        )
        .expect("escher.toml");
        let account = Account { double, dir };
        account.package(b"first build");
        account
    }

    /// A complete package whose handler is this machine's CLI binary (an x86_64 ELF; the
    /// stand-in never runs it), made distinct by `tag`.
    fn package(&self, tag: &[u8]) {
        let host = Path::new(env!("CARGO_MANIFEST_DIR")).join("../handlers/azure/host");
        let mut handler =
            std::fs::read(env!("CARGO_BIN_EXE_escher-provision")).expect("the CLI binary");
        handler.extend_from_slice(tag);
        let mut out = std::io::Cursor::new(Vec::new());
        let mut zip = zip::ZipWriter::new(&mut out);
        let options = zip::write::SimpleFileOptions::default();
        let mut add = |name: &str, bytes: &[u8], mode: u32| {
            zip.start_file(name, options.unix_permissions(mode))
                .expect("file");
            zip.write_all(bytes).expect("write");
        };
        add(
            "host.json",
            &std::fs::read(host.join("host.json")).expect("host.json"),
            0o644,
        );
        for f in ["alert", "events", "nightly"] {
            let path = host.join(f).join("function.json");
            add(
                &format!("{f}/function.json"),
                &std::fs::read(path).expect("function.json"),
                0o644,
            );
        }
        add("escher-azure-functions", &handler, 0o755);
        zip.finish().expect("zip");
        std::fs::write(
            self.artifacts().join("azure-functions.zip"),
            out.into_inner(),
        )
        .expect("write package");
    }

    fn artifacts(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    fn stack_id(&self) -> String {
        format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/escher/providers/Microsoft.Resources/deploymentStacks/{STACK}")
    }

    /// Runs the CLI on a blocking thread (the stand-in keeps answering on the runtime).
    async fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_escher-provision"));
        command
            .current_dir(self.dir.path())
            .args(args)
            .args([
                "--escher-dir",
                &self.dir.path().join("home").display().to_string(),
            ])
            .env_remove("AZURE_TENANT_ID")
            .env_remove("AZURE_CLIENT_ID")
            .env_remove("AZURE_CLIENT_SECRET")
            .env("AZURE_SUBSCRIPTION_ID", SUBSCRIPTION)
            .env("IDENTITY_ENDPOINT", self.double.identity_endpoint())
            .env("IDENTITY_HEADER", self.double.identity_header());
        for (k, v) in env {
            command.env(k, v);
        }
        tokio::task::spawn_blocking(move || command.output().expect("run escher-provision"))
            .await
            .expect("join")
    }

    fn target<'a>(&'a self, args: &[&'a str]) -> Vec<String> {
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        all.extend(["--cloud".into(), "azure".into()]);
        all.extend(["--endpoint-url".into(), self.double.endpoint().to_string()]);
        all
    }

    async fn extend(&self, extra: &[&str]) -> Output {
        let artifacts = self.artifacts().display().to_string();
        let mut args = self.target(&["extend", "--json"]);
        args.extend(["--artifacts".to_string(), artifacts]);
        args.extend(extra.iter().map(|a| a.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run(&args, &[]).await
    }

    /// `credentials --on azure <args>` against the stand-in.
    async fn credentials(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let endpoint = self.double.endpoint().to_string();
        let mut all = vec!["credentials", "--on", "azure", "--endpoint-url", &endpoint];
        all.extend_from_slice(args);
        self.run(&all, env).await
    }

    fn assert_no_violation(&self) {
        assert!(
            self.double.violations().is_empty(),
            "{:?}",
            self.double.violations()
        );
    }
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn succeeded(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extend_deploys_twice_publishes_the_package_and_destroy_keeps_the_audit_account() {
    let account = Account::new().await;

    // A dry run of a new deployment changes nothing, not even the resource group.
    let dry = account.extend(&["--dry-run"]).await;
    succeeded(&dry);
    let report = json_of(&dry);
    assert_eq!(report["result"], "dry_run");
    assert_eq!(report["change_set_type"], "create");
    let changes = report["changes"].as_array().expect("changes");
    assert!(changes
        .iter()
        .any(|c| c["resource_type"] == "Microsoft.Resources/resourceGroups"));
    assert!(changes.iter().any(|c| c["logical_id"] == "functionApp"));
    assert!(
        !changes
            .iter()
            .any(|c| c["logical_id"] == "alertActionGroup"),
        "the webhook comes with the second pass"
    );
    assert!(account
        .double
        .resource(&format!(
            "/subscriptions/{SUBSCRIPTION}/resourcegroups/escher"
        ))
        .is_none());

    // Without --yes and without a terminal nothing is deployed.
    let refused = account.extend(&[]).await;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--yes"));

    let out = account.extend(&["--yes"]).await;
    succeeded(&out);
    let report = json_of(&out);
    assert_eq!(report["result"], "deployed", "{report}");
    assert_eq!(report["outputs"]["functionAppName"], "functionApp");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("first pass"), "{stderr}");
    assert!(
        stderr.contains("functions listed: alert, events, nightly"),
        "{stderr}"
    );
    assert!(stderr.contains("second pass"), "{stderr}");
    let parameters = account
        .double
        .stack_parameters(&account.stack_id())
        .expect("the stack");
    assert_eq!(parameters["createEventSubscriptions"]["value"], true);
    assert_eq!(parameters["lockAuditRetention"]["value"], true);
    assert_eq!(
        parameters["operatorAddresses"]["value"],
        serde_json::json!(["203.0.113.7"]),
        "escher.toml's operator addresses reach the firewalls"
    );
    // The names Azure's uniqueString gives the group, so earlier accounts are kept:
    // uniqueString('/subscriptions/00000000-0000-0000-0000-0000000e5c4e/resourceGroups/escher').
    assert_eq!(
        parameters["stateStorageAccountName"]["value"],
        "escstf3onra6hfimhy"
    );
    assert_eq!(
        parameters["auditStorageAccountName"]["value"],
        "escauf3onra6hfimhy"
    );
    let package = std::fs::read(account.artifacts().join("azure-functions.zip")).expect("zip");
    assert_eq!(
        parameters["packageSha256"]["value"],
        escher_core::ids::sha256_hex(&package)
    );
    let managed = account.double.stack_resources(&account.stack_id());
    assert!(managed.iter().any(|id| id.ends_with("/alertactiongroup")));
    assert!(managed.iter().any(|id| id.contains("/eventsubscriptions/")));
    let saved = account
        .dir
        .path()
        .join(format!("home/extend/azure-{SUBSCRIPTION}-westeurope.json"));
    assert!(saved.is_file(), "outputs saved to {}", saved.display());
    account.assert_no_violation();

    // Nothing changed: said so, and nothing is deployed again.
    let requests_before = account.double.requests().len();
    let again = account.extend(&["--yes"]).await;
    succeeded(&again);
    assert_eq!(json_of(&again)["result"], "no_changes");
    assert!(!account.double.requests()[requests_before..]
        .iter()
        .any(|r| r.method == "PUT"));

    // New code: the what-if shows the function app modified, with the new package's hash.
    account.package(b"second build");
    let dry = account.extend(&["--dry-run"]).await;
    succeeded(&dry);
    let report = json_of(&dry);
    assert_eq!(report["change_set_type"], "update");
    assert_eq!(
        report["changed_parameters"],
        serde_json::json!(["packageSha256"])
    );
    assert!(report["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .any(|c| c["logical_id"] == "functionApp" && c["action"] == "modify"));

    // Status: the stack and its three functions with the deployed code's hash.
    let args = account.target(&["status", "--json"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let status = account.run(&args, &[]).await;
    succeeded(&status);
    let status = json_of(&status);
    assert_eq!(status["exists"], true);
    let functions = status["functions"].as_array().expect("functions");
    assert_eq!(functions.len(), 3);
    assert!(functions
        .iter()
        .all(|f| f["code_sha256"] == escher_core::ids::sha256_hex(&package)));

    // Another cloud's credentials in the deployment's Key Vault, never printed back.
    let set = account
        .credentials(
            &["set", "--cloud", "aws"],
            &[
                ("AWS_ACCESS_KEY_ID", "AKIAESCHERTEST"),
                ("AWS_SECRET_ACCESS_KEY", "do-not-print"),
            ],
        )
        .await;
    succeeded(&set);
    assert!(!String::from_utf8_lossy(&set.stdout).contains("do-not-print"));
    let list = account.credentials(&["list", "--json"], &[]).await;
    succeeded(&list);
    assert_eq!(json_of(&list)[0]["cloud"], "aws");
    assert!(!String::from_utf8_lossy(&list.stdout).contains("do-not-print"));
    let own = account
        .credentials(
            &[
                "set",
                "--cloud",
                "azure",
                "--tenant-id",
                "t",
                "--client-id",
                "c",
            ],
            &[],
        )
        .await;
    assert!(!own.status.success());
    assert!(String::from_utf8_lossy(&own.stderr).contains("own identity"));

    // Destroy: everything but the audit account, the state account and their network.
    let args = account.target(&["destroy", "--yes", "--json"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let destroyed = account.run(&args, &[]).await;
    succeeded(&destroyed);
    let report = json_of(&destroyed);
    assert_eq!(report["result"], "deleted");
    // Every deployment of the stack, the teardown included, names the same accounts, in its
    // parameters and in the template it deploys.
    let deployments: Vec<Value> = account
        .double
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT" && r.path.contains("/deploymentStacks/"))
        .filter_map(|r| r.body)
        .collect();
    assert_eq!(deployments.len(), 3, "two passes and the teardown");
    for body in &deployments {
        for (parameter, name) in [
            ("stateStorageAccountName", "escstf3onra6hfimhy"),
            ("auditStorageAccountName", "escauf3onra6hfimhy"),
        ] {
            assert_eq!(body["properties"]["parameters"][parameter]["value"], name);
            assert_eq!(
                body["properties"]["template"]["parameters"][parameter]["defaultValue"],
                name
            );
        }
    }
    // Resource Manager compares names without case; so does this.
    let kept: Vec<String> = report["kept"]
        .as_array()
        .expect("kept")
        .iter()
        .filter_map(|k| k["logical_id"].as_str())
        .map(str::to_ascii_lowercase)
        .collect();
    assert!(kept.iter().any(|k| k == "auditaccount"), "{kept:?}");
    assert!(kept.iter().any(|k| k == "stateaccount"), "{kept:?}");
    assert!(!kept.iter().any(|k| k == "functionapp"), "{kept:?}");
    assert!(kept.iter().any(|k| k == "vault"), "{kept:?}");
    let deleted = account.double.deleted_by_stacks();
    assert!(deleted.iter().any(|id| id.ends_with("/sites/functionapp")));
    assert!(
        !deleted.iter().any(|id| id.contains("/storageaccounts/")),
        "{deleted:?}"
    );
    assert!(account.double.resource(&account.stack_id()).is_none());
    assert!(account
        .double
        .resource(&format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/escher/providers/Microsoft.Storage/storageAccounts/auditAccount"))
        .is_some());
    let args = account.target(&["status", "--json"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(json_of(&account.run(&args, &[]).await)["exists"], false);
    account.assert_no_violation();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_deployment_names_the_resource_and_azures_reason() {
    let account = Account::new().await;
    account.double.fail_next_stack(
        "plan",
        "SkuNotAvailable",
        "The requested SKU FC1 is not available in location 'westeurope'.",
    );
    let out = account.extend(&["--yes"]).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("plan"), "{stderr}");
    assert!(stderr.contains("SkuNotAvailable"), "{stderr}");
    assert!(stderr.contains("FC1 is not available"), "{stderr}");
    account.assert_no_violation();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_with_delete_data_deletes_the_state_account_but_never_the_audit_account() {
    let account = Account::new().await;
    succeeded(&account.extend(&["--yes"]).await);
    let args = account.target(&["destroy", "--yes", "--json", "--delete-data"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = account.run(&args, &[]).await;
    succeeded(&out);
    let deleted = account.double.deleted_by_stacks();
    assert!(deleted
        .iter()
        .any(|id| id.ends_with("/storageaccounts/stateaccount")));
    assert!(!deleted
        .iter()
        .any(|id| id.contains("/storageaccounts/auditaccount")));
    account.assert_no_violation();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_package_that_failed_to_publish_is_published_again_by_the_next_extend() {
    let account = Account::new().await;
    succeeded(&account.extend(&["--yes"]).await);
    account.package(b"second build");
    account
        .double
        .fail_next_publish("the custom handler did not start");
    let failed = account.extend(&["--yes"]).await;
    assert_eq!(failed.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("did not start"), "{stderr}");

    // The stack still records the package that runs, so the new one is still a change.
    let dry = account.extend(&["--dry-run"]).await;
    succeeded(&dry);
    assert_eq!(
        json_of(&dry)["changed_parameters"],
        serde_json::json!(["packageSha256"])
    );
    succeeded(&account.extend(&["--yes"]).await);
    let package = std::fs::read(account.artifacts().join("azure-functions.zip")).expect("zip");
    assert_eq!(
        account
            .double
            .stack_parameters(&account.stack_id())
            .expect("stack")["packageSha256"]["value"],
        escher_core::ids::sha256_hex(&package)
    );
    account.assert_no_violation();
}
