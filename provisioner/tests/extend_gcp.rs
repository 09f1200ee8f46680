//! `extend`, `status`, `credentials` and `destroy --cloud gcp` as a user runs them: the real
//! binary against a Google Cloud project on loopback (`GoogleProjectApi`: every API the CLI
//! calls at one origin, each request held to Google's published discovery documents, with
//! Infrastructure Manager planning the uploaded Terraform files), a real OCI registry
//! (`container-registry`) behind it for the image, and gcloud's application default login
//! (`authorized_user`) whose token endpoint is the stand-in's. A small program (`/bin/ls`,
//! `/bin/cat`) stands in for the handler binary, as the image tests do.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Arc;

use escher_test_support::gcp_infra_manager::TerraformError;
use escher_test_support::gcp_project_api::GoogleProjectApi;
use serde_json::{json, Value};

const PROJECT: &str = "shop-prod-4711";
const DEPLOYMENT: &str = "projects/shop-prod-4711/locations/europe-west1/deployments/escher-extend";
const DEPLOYER: &str = "escher-extend-deployer@shop-prod-4711.iam.gserviceaccount.com";
const BLUEPRINTS: &str = "shop-prod-4711-escher-extend-blueprints";
const REPOSITORY: &str =
    "projects/shop-prod-4711/locations/europe-west1/repositories/escher-extend";
const STATE_BUCKET: &str = "shop-prod-4711-escher-state";
const AUDIT_BUCKET: &str = "shop-prod-4711-escher-audit";

struct Project {
    api: GoogleProjectApi,
    dir: tempfile::TempDir,
    _registry: tempfile::TempDir,
}

impl Project {
    async fn new() -> Project {
        let api = GoogleProjectApi::start(PROJECT).await;
        let storage = tempfile::tempdir().expect("tempdir");
        let users: HashMap<String, sec::Secret<String>> = HashMap::from([(
            "oauth2accesstoken".to_string(),
            sec::Secret::new(GoogleProjectApi::TEST_TOKEN.to_string()),
        )]);
        let registry = container_registry::ContainerRegistry::builder()
            .storage(storage.path())
            .auth_provider(Arc::new(users))
            .build()
            .expect("a registry");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let app = registry.make_router();
        tokio::spawn(async move {
            let _ = axum07::serve(listener, app).await;
        });
        api.registry_behind(&format!("http://{address}"));
        api.plan_output("state_bucket", STATE_BUCKET);
        api.plan_output("audit_bucket", AUDIT_BUCKET);

        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join("escher.toml"),
            format!("[schedule]\ntimezone = \"Europe/Berlin\"\n\n[gcp]\nproject = \"{PROJECT}\"\n"),
        )
        .expect("escher.toml");
        let gcloud = dir.path().join("gcloud");
        std::fs::create_dir_all(&gcloud).expect("gcloud folder");
        std::fs::write(
            gcloud.join("application_default_credentials.json"),
            json!({
                "type": "authorized_user",
                "client_id": "764086051850-test.apps.googleusercontent.com",
                "client_secret": "d-FL95Q19q7MQmFpd7hHD0Ty",
                "refresh_token": "1//refresh-me",
                "token_uri": format!("{}/token", api.endpoint()),
            })
            .to_string(),
        )
        .expect("application default credentials");
        let project = Project {
            api,
            dir,
            _registry: storage,
        };
        project.handler("ls", "/bin/ls");
        project.handler("cat", "/bin/cat");
        project
    }

    /// A folder holding `program` as the handler binary.
    fn handler(&self, name: &str, program: &str) {
        let folder = self.artifacts(name);
        std::fs::create_dir_all(&folder).expect("artifacts");
        std::fs::copy(program, folder.join("escher-gcp-service")).expect("copy the stand-in");
    }

    fn artifacts(&self, name: &str) -> PathBuf {
        self.dir.path().join("artifacts").join(name)
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
            .env_remove("GOOGLE_APPLICATION_CREDENTIALS")
            .env_remove("GOOGLE_CLOUD_PROJECT")
            .env_remove("CLOUDSDK_CORE_PROJECT")
            .env("CLOUDSDK_CONFIG", self.dir.path().join("gcloud"))
            // No gcloud: the application default login is what is used.
            .env("PATH", "/usr/bin:/bin");
        for (k, v) in env {
            command.env(k, v);
        }
        tokio::task::spawn_blocking(move || command.output().expect("run escher-provision"))
            .await
            .expect("join")
    }

    fn target(&self, command: &str) -> Vec<String> {
        vec![
            command.to_string(),
            "--cloud".into(),
            "gcp".into(),
            "--endpoint-url".into(),
            self.api.endpoint().to_string(),
        ]
    }

    async fn extend(&self, handler: &str, extra: &[&str]) -> Output {
        let mut args = self.target("extend");
        args.push("--json".into());
        args.extend([
            "--artifacts".to_string(),
            self.artifacts(handler).display().to_string(),
        ]);
        args.extend(extra.iter().map(|a| a.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run(&args, &[]).await
    }

    async fn command(&self, command: &str, extra: &[&str]) -> Output {
        let mut args = self.target(command);
        args.extend(extra.iter().map(|a| a.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run(&args, &[]).await
    }

    async fn credentials(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let endpoint = self.api.endpoint().to_string();
        let mut all = vec!["credentials", "--on", "gcp", "--endpoint-url", &endpoint];
        all.extend_from_slice(args);
        self.run(&all, env).await
    }

    /// The published methods called since `from` requests were made.
    fn calls_since(&self, from: usize) -> Vec<String> {
        self.api.operations().into_iter().skip(from).collect()
    }

    fn assert_no_violation(&self) {
        assert!(
            self.api.violations().is_empty(),
            "{:?}",
            self.api.violations()
        );
    }

    fn deployed_image(&self) -> String {
        self.api
            .infra_manager()
            .deployment(DEPLOYMENT)
            .expect("a deployment")["terraformBlueprint"]["inputValues"]["handler_image"]
            ["inputValue"]
            .as_str()
            .expect("an image input")
            .to_string()
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

fn logical_ids(report: &Value, key: &str) -> Vec<String> {
    report[key]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["logical_id"].as_str().map(str::to_string))
        .collect()
}

fn has_role(policy: &Value, role: &str, member: &str) -> bool {
    policy["bindings"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|b| {
            b["role"] == role
                && b["members"]
                    .as_array()
                    .is_some_and(|m| m.iter().any(|x| x == member))
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extend_readies_the_project_deploys_once_and_a_second_run_changes_nothing() {
    let project = Project::new().await;
    let member = format!("serviceAccount:{DEPLOYER}");

    // A dry run makes what the preview reads, and no image.
    let dry = project.extend("ls", &["--dry-run"]).await;
    succeeded(&dry);
    let report = json_of(&dry);
    assert_eq!(report["result"], "dry_run", "{report}");
    assert_eq!(report["change_set_type"], "create");
    assert_eq!(report["account"], PROJECT);
    assert_eq!(report["region"], "europe-west1");
    let rows = logical_ids(&report, "changes");
    for address in [
        "google_cloud_run_v2_service.handler",
        "google_storage_bucket.audit",
        "google_pubsub_topic.alerts",
        "google_cloud_scheduler_job.nightly_scan",
    ] {
        assert!(rows.iter().any(|r| r == address), "{address} in {rows:?}");
    }
    assert!(report["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .all(|c| c["action"] == "add"));
    let enabled = project.api.enabled_services();
    for service in [
        "config.googleapis.com",
        "run.googleapis.com",
        "artifactregistry.googleapis.com",
    ] {
        assert!(enabled.contains(service), "{service} in {enabled:?}");
    }
    assert!(project.api.service_account(DEPLOYER).is_some());
    let policy = project.api.policy();
    assert!(has_role(&policy, "roles/config.agent", &member), "{policy}");
    assert!(has_role(&policy, "roles/run.admin", &member), "{policy}");
    assert!(
        !has_role(&policy, "roles/owner", &member) && !has_role(&policy, "roles/editor", &member)
    );
    assert!(
        has_role(&policy, "roles/owner", "user:owner@example.com"),
        "the owner stays"
    );
    let bucket = project
        .api
        .bucket(BLUEPRINTS)
        .expect("the blueprint bucket");
    assert_eq!(
        bucket["iamConfiguration"]["publicAccessPrevention"],
        "enforced"
    );
    assert_eq!(
        bucket["iamConfiguration"]["uniformBucketLevelAccess"]["enabled"],
        true
    );
    let files = project.api.objects(BLUEPRINTS);
    assert_eq!(files.len(), 4, "{files:?}");
    let folder = files[0].rsplit_once('/').expect("a folder").0.to_string();
    assert!(folder.starts_with("escher/"), "{folder}");
    for name in ["main.tf", "variables.tf", "outputs.tf", "terraform.tfvars"] {
        assert!(
            files.contains(&format!("{folder}/{name}")),
            "{name} in {files:?}"
        );
    }
    assert!(
        project.api.repository(REPOSITORY).is_none(),
        "a dry run pushes no image"
    );
    assert!(project.api.infra_manager().deployment(DEPLOYMENT).is_none());
    assert!(
        project.api.infra_manager().previews().is_empty(),
        "the preview is deleted"
    );

    // Without --yes and without a terminal nothing is deployed.
    let refused = project.extend("ls", &[]).await;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--yes"));
    assert!(project.api.infra_manager().deployment(DEPLOYMENT).is_none());

    let out = project.extend("ls", &["--yes"]).await;
    succeeded(&out);
    let report = json_of(&out);
    assert_eq!(report["result"], "deployed", "{report}");
    assert_eq!(report["stack_status"], "ACTIVE");
    assert_eq!(
        report["outputs"]["service_url"],
        "https://escher-handler-test-ew.a.run.app"
    );
    let saved = report["outputs_file"].as_str().expect("an outputs file");
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(saved).expect("saved")).expect("JSON");
    assert_eq!(saved["account"], PROJECT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("terraform apply"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "Google Cloud project {PROJECT} (europe-west1), as application default credentials"
        )),
        "the identity is said: {stderr}"
    );
    assert!(project.api.repository(REPOSITORY).is_some());
    let image = project.deployed_image();
    let registry = project
        .api
        .endpoint()
        .trim_start_matches("http://")
        .to_string();
    assert!(
        image.starts_with(&format!(
            "{registry}/{PROJECT}/escher-extend/escher-handler@sha256:"
        )),
        "{image}"
    );
    let deployment = project
        .api
        .infra_manager()
        .deployment(DEPLOYMENT)
        .expect("deployed");
    assert_eq!(
        deployment["serviceAccount"],
        format!("projects/{PROJECT}/serviceAccounts/{DEPLOYER}")
    );
    assert_eq!(
        deployment["terraformBlueprint"]["gcsSource"],
        format!("gs://{BLUEPRINTS}/{folder}/")
    );
    assert!(project.api.infra_manager().previews().is_empty());

    // The same files and the same image: nothing to change, and nothing is changed to find out.
    let before = project.api.operations().len();
    let again = project.extend("ls", &["--yes"]).await;
    succeeded(&again);
    let report = json_of(&again);
    assert_eq!(report["result"], "no_changes", "{report}");
    assert_eq!(report["outputs"]["state_bucket"], STATE_BUCKET);
    let calls = project.calls_since(before);
    let changing: Vec<&String> = calls
        .iter()
        .filter(|c| {
            [
                "create",
                "insert",
                "setIamPolicy",
                "batchEnable",
                "addVersion",
            ]
            .iter()
            .any(|verb| c.ends_with(verb))
        })
        .collect();
    assert!(changing.is_empty(), "{changing:?}");
    assert_eq!(project.deployed_image(), image);
    project.assert_no_violation();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_handler_updates_the_service_status_shows_it_and_a_failed_apply_names_the_resource() {
    let project = Project::new().await;
    succeeded(&project.extend("ls", &["--yes"]).await);
    let first = project.deployed_image();

    let out = project.extend("cat", &["--yes"]).await;
    succeeded(&out);
    let report = json_of(&out);
    assert_eq!(report["result"], "deployed", "{report}");
    assert_eq!(report["change_set_type"], "update");
    assert_eq!(report["changed_parameters"], json!(["handler_image"]));
    let modified: Vec<&Value> = report["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .collect();
    assert_eq!(
        modified.len(),
        1,
        "only the service reads the image: {modified:?}"
    );
    assert_eq!(
        modified[0]["logical_id"],
        "google_cloud_run_v2_service.handler"
    );
    assert_eq!(modified[0]["action"], "modify");
    let second = project.deployed_image();
    assert_ne!(second, first);

    let status = project.command("status", &["--json"]).await;
    succeeded(&status);
    let report = json_of(&status);
    assert_eq!(report["exists"], true);
    assert_eq!(report["stack_status"], "ACTIVE");
    let digest = second.rsplit_once("@sha256:").expect("a digest").1;
    assert_eq!(report["functions"][0]["code_sha256"], digest);
    assert!(
        report["drift"]
            .as_str()
            .is_some_and(|d| d.starts_with("not available")),
        "{report}"
    );

    project.api.infra_manager().fail_next_apply(vec![TerraformError {
        resource_address: "google_cloud_run_v2_service.handler".into(),
        http_response_code: 403,
        description: "Error updating Service: googleapi: Error 403: Permission 'iam.serviceaccounts.actAs' denied on service account escher-extend-handler@shop-prod-4711.iam.gserviceaccount.com".into(),
    }]);
    let failed = project.extend("ls", &["--yes"]).await;
    assert_eq!(failed.status.code(), Some(2), "{failed:?}");
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("google_cloud_run_v2_service.handler: HTTP 403"),
        "{stderr}"
    );
    assert!(stderr.contains("iam.serviceaccounts.actAs"), "{stderr}");
    assert!(
        project.api.infra_manager().previews().is_empty(),
        "no preview left behind"
    );

    let status = project.command("status", &["--json"]).await;
    succeeded(&status);
    let report = json_of(&status);
    assert_eq!(report["stack_status"], "FAILED");
    assert!(
        report["status_reason"]
            .as_str()
            .is_some_and(|r| r.contains("google_cloud_run_v2_service.handler")),
        "{report}"
    );
    project.assert_no_violation();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_versions_of_the_deployments_secrets_never_printed() {
    let project = Project::new().await;
    let aws = [
        ("AWS_ACCESS_KEY_ID", "AKIAESCHERTEST000001"),
        (
            "AWS_SECRET_ACCESS_KEY",
            "escher/test/secret/key/never/printed",
        ),
    ];
    let early = project.credentials(&["set", "--cloud", "aws"], &aws).await;
    assert_eq!(early.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&early.stderr).contains("extend --cloud gcp"),
        "{early:?}"
    );

    // The deployment's secrets, as Terraform makes them.
    project.api.put_secret("escher-extend-credentials-aws");
    project.api.put_secret("escher-extend-credentials-azure");
    let set = project.credentials(&["set", "--cloud", "aws"], &aws).await;
    succeeded(&set);
    let stdout = String::from_utf8_lossy(&set.stdout);
    assert!(!stdout.contains("never/printed"), "{stdout}");
    let stored = project.api.secret_versions("escher-extend-credentials-aws");
    assert_eq!(stored.len(), 1);
    let value: Value = serde_json::from_slice(&stored[0]).expect("JSON");
    assert_eq!(value["access_key_id"], "AKIAESCHERTEST000001");

    let list = project.credentials(&["list", "--json"], &[]).await;
    succeeded(&list);
    let listed = json_of(&list);
    let listed = listed.as_array().expect("a list");
    assert_eq!(
        listed.len(),
        1,
        "the Azure secret holds no credentials: {listed:?}"
    );
    assert_eq!(listed[0]["cloud"], "aws");
    assert!(!String::from_utf8_lossy(&list.stdout).contains("never/printed"));

    let own = project
        .credentials(&["set", "--cloud", "gcp", "--key-file", "/dev/null"], &[])
        .await;
    assert!(!own.status.success());
    assert!(String::from_utf8_lossy(&own.stderr).contains("own identity"));

    let removed = project
        .credentials(&["remove", "--cloud", "aws"], &[])
        .await;
    succeeded(&removed);
    assert!(project
        .api
        .secret_versions("escher-extend-credentials-aws")
        .is_empty());
    assert!(
        project
            .api
            .secret("escher-extend-credentials-aws")
            .is_some(),
        "the secret stays with the deployment"
    );
    let list = project.credentials(&["list", "--json"], &[]).await;
    succeeded(&list);
    assert_eq!(json_of(&list), json!([]));
    project.assert_no_violation();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_handler_or_a_wrong_region_stops_extend_before_the_project_is_touched() {
    let project = Project::new().await;
    let empty = project.dir.path().join("artifacts").join("empty");
    std::fs::create_dir_all(&empty).expect("folder");
    let out = project.extend("empty", &["--yes"]).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("escher-gcp-service is missing"), "{stderr}");
    assert!(
        stderr.contains("cargo build --release -p escher-gcp"),
        "{stderr}"
    );

    let out = project
        .extend("ls", &["--yes", "--region", "eu-west-1"])
        .await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--region"), "{stderr}");

    let changed: Vec<String> = project
        .api
        .operations()
        .into_iter()
        .filter(|c| !c.ends_with(".get") && !c.ends_with("batchGet") && !c.ends_with(".list"))
        .collect();
    assert!(changed.is_empty(), "{changed:?}");
    assert!(project.api.enabled_services().is_empty());
    assert!(project
        .api
        .infra_manager()
        .requests()
        .iter()
        .all(|r| r.method == "GET"));
}

fn not_empty(address: &str) -> TerraformError {
    TerraformError {
        resource_address: address.into(),
        http_response_code: 409,
        description: "Error trying to delete bucket: googleapi: Error 409: The bucket you tried to delete is not empty., conflict".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_keeps_the_audit_trail_and_delete_data_takes_the_state_and_what_extend_made() {
    let project = Project::new().await;
    succeeded(&project.extend("ls", &["--yes"]).await);
    // Terraform made the audit bucket; the handler has written no record yet.
    project.api.put_bucket(AUDIT_BUCKET);

    // Cloud Storage refuses the buckets that hold objects; everything else is deleted.
    project.api.infra_manager().fail_next_delete(vec![
        not_empty("google_storage_bucket.audit"),
        not_empty("google_storage_bucket.access_logs"),
        not_empty("google_storage_bucket.state"),
    ]);
    let out = project.command("destroy", &["--yes", "--json"]).await;
    succeeded(&out);
    let report = json_of(&out);
    assert_eq!(report["result"], "deleted", "{report}");
    let kept = logical_ids(&report, "kept");
    for address in [
        "google_storage_bucket.audit",
        "google_storage_bucket.access_logs",
        "google_storage_bucket.state",
        "blueprints",
        "handler images",
    ] {
        assert!(kept.iter().any(|k| k == address), "{address} in {kept:?}");
    }
    let deleted = logical_ids(&report, "deleted");
    assert!(deleted
        .iter()
        .any(|d| d == "google_cloud_run_v2_service.handler"));
    assert!(
        !deleted
            .iter()
            .any(|d| d.starts_with("google_storage_bucket.")),
        "{deleted:?}"
    );
    assert!(project.api.infra_manager().deployment(DEPLOYMENT).is_none());
    let mut abandoned = project.api.infra_manager().abandoned();
    abandoned.sort();
    assert_eq!(
        abandoned,
        vec![
            "google_storage_bucket.access_logs",
            "google_storage_bucket.audit",
            "google_storage_bucket.state"
        ]
    );
    assert!(project.api.bucket(BLUEPRINTS).is_some());
    assert!(project.api.repository(REPOSITORY).is_some());
    // The destroy's own record keeps even an audit bucket the handler never wrote to.
    let records = project.api.objects(AUDIT_BUCKET);
    assert_eq!(records.len(), 1, "{records:?}");
    assert!(records[0].starts_with("destroyed/"), "{records:?}");

    let status = project.command("status", &["--json"]).await;
    succeeded(&status);
    assert_eq!(json_of(&status)["exists"], false);

    // Again, with the data: the state bucket is emptied first, so Terraform deletes it.
    succeeded(&project.extend("ls", &["--yes"]).await);
    project.api.put_bucket(STATE_BUCKET);
    project
        .api
        .put_object(STATE_BUCKET, "approvals/index.tar", b"approvals");
    project
        .api
        .put_object(STATE_BUCKET, "state/markers/e-1.json", b"{}");
    project.api.infra_manager().fail_next_delete(vec![
        not_empty("google_storage_bucket.audit"),
        not_empty("google_storage_bucket.access_logs"),
    ]);
    let out = project
        .command("destroy", &["--yes", "--json", "--delete-data"])
        .await;
    succeeded(&out);
    let report = json_of(&out);
    assert_eq!(
        report["emptied_buckets"],
        json!([STATE_BUCKET, BLUEPRINTS]),
        "{report}"
    );
    let kept = logical_ids(&report, "kept");
    assert!(
        kept.iter().any(|k| k == "google_storage_bucket.audit"),
        "{kept:?}"
    );
    assert!(
        !kept.iter().any(|k| k == "google_storage_bucket.state"),
        "{kept:?}"
    );
    assert!(project.api.objects(STATE_BUCKET).is_empty());
    assert!(project.api.bucket(BLUEPRINTS).is_none());
    assert!(project.api.repository(REPOSITORY).is_none());
    assert!(project.api.infra_manager().deployment(DEPLOYMENT).is_none());

    // A deletion that fails on anything else is a failure, naming it.
    succeeded(&project.extend("ls", &["--yes"]).await);
    project.api.infra_manager().fail_next_delete(vec![TerraformError {
        resource_address: "google_pubsub_topic.alerts".into(),
        http_response_code: 403,
        description: "Error when reading or editing Topic: googleapi: Error 403: User not authorized to perform this action.".into(),
    }]);
    let out = project.command("destroy", &["--yes", "--json"]).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("google_pubsub_topic.alerts: HTTP 403"),
        "{stderr}"
    );
    assert!(project.api.infra_manager().deployment(DEPLOYMENT).is_some());
    project.assert_no_violation();
}

/// Without `--artifacts`, `extend` builds the handler in the workspace this CLI was built
/// from (cargo is a recording stand-in here: a release build takes minutes), makes the image
/// of what it built, and builds nothing while the binary is newer than the sources.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extend_builds_the_handler_it_deploys_when_no_artifacts_are_given() {
    let project = Project::new().await;
    let target = project.dir.path().join("target");
    let calls = project.dir.path().join("cargo-calls");
    let cargo = project.dir.path().join("cargo");
    std::fs::write(
        &cargo,
        format!(
            "#!/bin/sh\necho \"$(pwd) $*\" >> '{calls}'\nmkdir -p '{release}'\ncp /bin/ls '{release}/escher-gcp-service'\n",
            calls = calls.display(),
            release = target.join("release").display(),
        ),
    )
    .expect("the cargo stand-in");
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&cargo, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let (cargo, target) = (cargo.display().to_string(), target.display().to_string());
    let env = [
        ("CARGO", cargo.as_str()),
        ("CARGO_TARGET_DIR", target.as_str()),
    ];
    let mut args = project.target("extend");
    args.extend(["--json".to_string(), "--yes".to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    let out = project.run(&args, &env).await;
    succeeded(&out);
    assert_eq!(json_of(&out)["result"], "deployed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("building escher-gcp-service"), "{stderr}");
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .canonicalize()
        .expect("the workspace's path");
    let recorded = std::fs::read_to_string(&calls).expect("cargo was run");
    assert_eq!(
        recorded.trim(),
        format!(
            "{} build --release -p escher-gcp --bin escher-gcp-service",
            workspace.display()
        )
    );
    assert!(project.deployed_image().contains("escher-handler@sha256:"));

    // Built and newer than every source: deployed as it is.
    let again = project.run(&args, &env).await;
    succeeded(&again);
    assert_eq!(json_of(&again)["result"], "no_changes");
    let recorded = std::fs::read_to_string(&calls).expect("calls");
    assert_eq!(recorded.lines().count(), 1, "built once: {recorded}");
    project.assert_no_violation();
}
