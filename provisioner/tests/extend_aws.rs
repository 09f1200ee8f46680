//! `extend`, `status` and `destroy --cloud aws` run as a user runs them (the CLI as a
//! process) against moto, whose endpoint arrives in `ESCHER_TEST_AWS_ENDPOINT` (written by
//! `tests/emulators.sh`). What the stack created is checked through the AWS SDK, service by
//! service, not only through CloudFormation's word.
//!
//! Each test deploys its own stack (a unique `[stack] name` in a test escher.toml) into its
//! own HOME, so the tests run in parallel on one moto. moto skips some resource types
//! (Scheduler schedules, SNS subscriptions, bucket and queue policies) and does not apply
//! bucket versioning / Object Lock through CloudFormation: /work/shared/emulators.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use aws_sdk_sts::config::Credentials;
use base64::Engine as _;
use escher_test_support::moto::{self, s3::client as s3};
use escher_test_support::names::unique;
use serde_json::Value;
use sha2::{Digest, Sha256};

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";

/// A stack of its own: a working folder with escher.toml and the zips, and a HOME.
struct Deployment {
    endpoint: String,
    stack: String,
    dir: tempfile::TempDir,
    home: tempfile::TempDir,
    /// The credentials the CLI runs with.
    credentials: Credentials,
    account: String,
    /// `[aws.cloudtrail] create_trail`. The tests sharing moto's default account create their
    /// trails with "always": with "auto" each would depend on whether another test's trail
    /// exists at that moment. "auto" is tested in accounts of its own.
    create_trail: &'static str,
}

/// A function zip whose `bootstrap` is a script (Lambda custom runtimes may be one; the
/// glibc check applies to binaries); the comment in it makes its SHA-256 unique.
fn zip_with_comment(comment: &str) -> Vec<u8> {
    use std::io::Write as _;
    let mut out = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    zip.start_file("bootstrap", zip::write::SimpleFileOptions::default())
        .expect("zip entry");
    write!(zip, "#!/bin/sh\n# {comment}\n").expect("zip write");
    zip.finish().expect("zip");
    out.into_inner()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl Deployment {
    fn new(test: &str) -> Option<Self> {
        let endpoint = moto::endpoint("the moto extend tests")?;
        let stack = unique(&format!("t{test}"));
        let d = Deployment {
            endpoint,
            stack,
            dir: tempfile::tempdir().expect("dir"),
            home: tempfile::tempdir().expect("home"),
            credentials: Credentials::new("escher-test", "escher-test", None, None, "tests"),
            account: ACCOUNT.into(),
            create_trail: "always",
        };
        std::fs::create_dir_all(d.artifacts()).expect("artifacts dir");
        d.write_zip("alert", "alert v1");
        d.write_zip("scan", "scan v1");
        d.write_config("");
        Some(d)
    }

    fn artifacts(&self) -> PathBuf {
        self.dir.path().join("artifacts")
    }

    /// The Escher folder the CLI is given (ESCHER_HOME), away from HOME's `.escher`.
    fn escher_dir(&self) -> PathBuf {
        self.dir.path().join("escher-folder")
    }

    fn write_zip(&self, function: &str, comment: &str) -> Vec<u8> {
        let bytes = zip_with_comment(&format!("{} {comment}", self.stack));
        std::fs::write(self.artifacts().join(format!("{function}.zip")), &bytes).expect("zip");
        bytes
    }

    /// escher.toml: the stack name plus `extra`.
    fn write_config(&self, extra: &str) {
        std::fs::write(
            self.dir.path().join("escher.toml"),
            format!(
                "[stack]\nname = \"{}\"\n[aws.cloudtrail]\ncreate_trail = \"{}\"\n{extra}",
                self.stack, self.create_trail
            ),
        )
        .expect("escher.toml");
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, &[])
    }

    /// `run` with extra environment variables.
    fn run_with(&self, args: &[&str], env: &[(&str, &Path)]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_escher-provision"))
            .envs(env.iter().copied())
            .current_dir(self.dir.path())
            .env("HOME", self.home.path())
            .env("ESCHER_HOME", self.escher_dir())
            .env("AWS_ACCESS_KEY_ID", self.credentials.access_key_id())
            .env(
                "AWS_SECRET_ACCESS_KEY",
                self.credentials.secret_access_key(),
            )
            .env(
                "AWS_SESSION_TOKEN",
                self.credentials.session_token().unwrap_or(""),
            )
            .env("AWS_REGION", REGION)
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ENDPOINT_URL")
            .args(args)
            .args(["--cloud", "aws", "--endpoint-url", &self.endpoint])
            .stdin(Stdio::null())
            .output()
            .expect("run escher-provision")
    }

    /// Runs a command that must succeed and print JSON.
    fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed ({}):\n{}",
            out.status,
            text(&out.stderr)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", text(&out.stdout)))
    }

    fn extend(&self, extra: &[&str]) -> Value {
        self.extend_capturing(extra).0
    }

    /// `extend --json` with the zips in `artifacts()`: the report and the progress on stderr.
    fn extend_capturing(&self, extra: &[&str]) -> (Value, String) {
        let artifacts = self.artifacts();
        let mut args = vec![
            "extend",
            "--json",
            "--timezone",
            "UTC",
            "--artifacts",
            artifacts.to_str().expect("utf-8 path"),
        ];
        args.extend_from_slice(extra);
        let out = self.run(&args);
        assert!(
            out.status.success(),
            "{args:?} failed ({}):\n{}",
            out.status,
            text(&out.stderr)
        );
        let report = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", text(&out.stdout)));
        (report, text(&out.stderr))
    }

    async fn sdk(&self) -> aws_config::SdkConfig {
        moto::sdk_config(&self.endpoint, REGION, Some(self.credentials.clone())).await
    }

    /// A deployment into an account nobody else uses (see `moto::assume_role`), with
    /// `create_trail = "auto"`.
    async fn in_own_account(test: &str) -> Option<Self> {
        let mut d = Deployment::new(test)?;
        let account = moto::fresh_account();
        d.credentials = moto::assume_role(&d.sdk().await, &account)
            .await
            .expect("assume a role in a fresh account");
        d.account = account;
        d.create_trail = "auto";
        d.write_config("");
        Some(d)
    }

    /// Logical id → physical id, as CloudFormation lists them.
    async fn physical_ids(&self, sdk: &aws_config::SdkConfig) -> BTreeMap<String, String> {
        let cfn = aws_sdk_cloudformation::Client::new(sdk);
        let out = cfn
            .list_stack_resources()
            .stack_name(&self.stack)
            .send()
            .await
            .expect("list stack resources");
        out.stack_resource_summaries()
            .iter()
            .map(|r| {
                (
                    r.logical_resource_id().unwrap_or_default().to_string(),
                    r.physical_resource_id().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }
}

/// Lambda's CodeSha256: base64 of the zip's SHA-256.
fn lambda_sha(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes))
}

fn changes(report: &Value) -> Vec<(String, String)> {
    report["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| {
            (
                c["action"].as_str().unwrap_or_default().to_string(),
                c["logical_id"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn extend_creates_the_stack_and_what_moto_really_creates() {
    let Some(d) = Deployment::new("create") else {
        return;
    };
    let alert_zip = std::fs::read(d.artifacts().join("alert.zip")).expect("alert zip");
    let report = d.extend(&["--yes"]);
    assert_eq!(report["result"], "deployed", "{report:#}");
    assert_eq!(report["change_set_type"], "create");
    assert_eq!(report["account"], ACCOUNT);
    assert_eq!(report["uploaded"].as_array().map(Vec::len), Some(2));
    let kinds: Vec<(String, String)> = changes(&report);
    assert!(kinds.iter().all(|(a, _)| a == "add"), "{kinds:?}");
    for id in [
        "AlertFunction",
        "ScanFunction",
        "StateBucket",
        "AuditBucket",
        "ScanSchedule",
    ] {
        assert!(
            kinds.iter().any(|(_, l)| l == id),
            "{id} missing from {kinds:?}"
        );
    }

    // The outputs, printed and saved in the Escher folder (ESCHER_HOME), nothing under HOME.
    let outputs = &report["outputs"];
    let saved_path = d
        .escher_dir()
        .join(format!("extend/aws-{ACCOUNT}-{REGION}.json"));
    assert!(
        !d.home.path().join(".escher").exists(),
        "ESCHER_HOME is set, so nothing goes to ~/.escher"
    );
    let saved: Value =
        serde_json::from_slice(&std::fs::read(&saved_path).expect("saved outputs")).expect("json");
    assert_eq!(&saved["outputs"], outputs);
    assert_eq!(saved["stack"], d.stack.as_str());
    let sdk = d.sdk().await;
    let ids = d.physical_ids(&sdk).await;
    let state_bucket = ids.get("StateBucket").expect("state bucket").as_str();
    let audit_bucket = ids.get("AuditBucket").expect("audit bucket").as_str();
    // moto builds no Outputs for a stack made from a change set; real CloudFormation does.
    if let Some(uri) = outputs.get("StateStoreUri") {
        assert_eq!(uri, format!("s3://{state_bucket}/state").as_str());
    }
    let s3 = s3(&sdk);

    // Buckets: the stack's and the artifacts bucket (bootstrapped by extend, configured by
    // direct API calls, which moto does apply).
    for bucket in [state_bucket, audit_bucket] {
        s3.head_bucket()
            .bucket(bucket)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{bucket}: {e:?}"));
    }
    let artifacts = format!("escher-artifacts-{ACCOUNT}-{REGION}");
    // Versioning is not checked here: moto answers GetBucketVersioning with a root element
    // (`GetBucketVersioningResponse`) the SDK cannot parse.
    let pab = s3
        .get_public_access_block()
        .bucket(&artifacts)
        .send()
        .await
        .expect("artifacts public access block");
    let pab = pab.public_access_block_configuration().expect("pab");
    assert_eq!(pab.block_public_acls(), Some(true));
    assert_eq!(pab.restrict_public_buckets(), Some(true));
    s3.get_bucket_encryption()
        .bucket(&artifacts)
        .send()
        .await
        .expect("artifacts encryption");
    let alert_key = format!("{:x}.zip", Sha256::digest(&alert_zip));
    s3.head_object()
        .bucket(&artifacts)
        .key(&alert_key)
        .send()
        .await
        .expect("the alert zip is stored under its sha256");

    // The functions run the uploaded code, with the stores in their environment.
    let lambda = aws_sdk_lambda::Client::new(&sdk);
    let alert = lambda
        .get_function()
        .function_name(format!("{}-alert", d.stack))
        .send()
        .await
        .expect("alert function");
    let config = alert.configuration().expect("configuration");
    assert_eq!(config.code_sha256(), Some(lambda_sha(&alert_zip).as_str()));
    assert_eq!(config.handler(), Some("bootstrap"));
    assert_eq!(
        config.runtime().map(|r| r.as_str()),
        Some("provided.al2023")
    );
    let env = config
        .environment()
        .and_then(|e| e.variables())
        .expect("environment");
    assert_eq!(
        env.get("ESCHER_STATE_URI").map(String::as_str),
        Some(format!("s3://{state_bucket}/state").as_str())
    );
    assert_eq!(
        env.get("ESCHER_SECRETS_PREFIX").map(String::as_str),
        Some(format!("/escher/{}/", d.stack).as_str())
    );
    lambda
        .get_function()
        .function_name(format!("{}-scan", d.stack))
        .send()
        .await
        .expect("scan function");

    // Every alert rule targets the alert function.
    let events = aws_sdk_eventbridge::Client::new(&sdk);
    let alert_arn = alert
        .configuration()
        .and_then(|c| c.function_arn())
        .expect("alert arn")
        .to_string();
    let rules: Vec<(&String, &String)> = ids
        .iter()
        .filter(|(logical, _)| logical.ends_with("Rule"))
        .collect();
    assert_eq!(rules.len(), 10, "{ids:?}");
    for (logical, name) in rules {
        let rule = events
            .describe_rule()
            .name(name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{logical}: {e:?}"));
        assert!(rule.event_pattern().is_some(), "{logical} has a pattern");
        let targets = events
            .list_targets_by_rule()
            .rule(name)
            .send()
            .await
            .expect("targets");
        let arns: Vec<&str> = targets.targets().iter().map(|t| t.arn()).collect();
        assert_eq!(arns, [alert_arn.as_str()], "{logical}");
    }

    // Dead-letter queues with the configured retention.
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    for function in ["alert", "scan"] {
        let url = sqs
            .get_queue_url()
            .queue_name(format!("{}-{function}-dlq", d.stack))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{function} dlq: {e:?}"));
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(url.queue_url().expect("url"))
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::MessageRetentionPeriod)
            .send()
            .await
            .expect("queue attributes");
        let retention = attrs
            .attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::MessageRetentionPeriod))
            .map(String::as_str);
        assert_eq!(retention, Some("1209600"), "{function}: 14 days");
    }

    // Topics.
    let sns = aws_sdk_sns::Client::new(&sdk);
    for topic in ["CriticalTopic", "HighTopic"] {
        let arn = ids.get(topic).expect("topic arn");
        sns.get_topic_attributes()
            .topic_arn(arn)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{topic}: {e:?}"));
    }

    // Roles and their inline policies: the remediations' actions, never a wildcard action.
    let iam = aws_sdk_iam::Client::new(&sdk);
    let role = ids.get("AlertFunctionRole").expect("alert role");
    let policy = iam
        .get_role_policy()
        .role_name(role)
        .policy_name(format!("{}-alert", d.stack))
        .send()
        .await
        .expect("alert role policy");
    let document = policy.policy_document();
    let mut document = urlencoding_decode(document);
    // moto stores a CloudFormation role's inline policy as a Python dict repr
    // (`{'Version': ...}`); our documents hold no quote characters of their own.
    if document.starts_with("{'") {
        document = document.replace('\'', "\"");
    }
    let document: Value = serde_json::from_str(&document).expect("policy JSON");
    let actions: Vec<String> = document["Statement"]
        .as_array()
        .expect("statements")
        .iter()
        .flat_map(|s| match &s["Action"] {
            Value::String(a) => vec![a.clone()],
            Value::Array(a) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => vec![],
        })
        .collect();
    assert!(
        actions.iter().any(|a| a == "s3:PutBucketPublicAccessBlock"),
        "{actions:?}"
    );
    assert!(
        actions.iter().any(|a| a == "ssm:GetParameter"),
        "{actions:?}"
    );
    assert!(actions.iter().all(|a| !a.contains('*')), "{actions:?}");

    // The stores parameter and the log groups.
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    let stores = ssm
        .get_parameter()
        .name(format!("/escher/{}/stores", d.stack))
        .send()
        .await
        .expect("stores parameter");
    let stores: Value =
        serde_json::from_str(stores.parameter().and_then(|p| p.value()).expect("value"))
            .expect("stores JSON");
    // The audit bucket holds only the audit store (records under audit/, listings under
    // listing/), so the store is the bucket's root.
    assert_eq!(stores["audit"], format!("s3://{audit_bucket}").as_str());
    let logs = aws_sdk_cloudwatchlogs::Client::new(&sdk);
    let groups = logs
        .describe_log_groups()
        .log_group_name_prefix(format!("/aws/lambda/{}-", d.stack))
        .send()
        .await
        .expect("log groups");
    let retention: Vec<(Option<&str>, Option<i32>)> = groups
        .log_groups()
        .iter()
        .map(|g| (g.log_group_name(), g.retention_in_days()))
        .collect();
    assert_eq!(retention.len(), 2, "{retention:?}");
    assert!(
        retention.iter().all(|(_, days)| *days == Some(365)),
        "{retention:?}"
    );

    // status reports the stack and the deployed code.
    let status = d.json(&["status", "--json"]);
    assert_eq!(status["exists"], true);
    assert_eq!(status["stack_status"], "CREATE_COMPLETE");
    assert_eq!(status["outputs"], *outputs);
    let alert_status = status["functions"]
        .as_array()
        .expect("functions")
        .iter()
        .find(|f| f["function"] == "alert")
        .expect("alert in status");
    assert_eq!(alert_status["code_sha256"], lambda_sha(&alert_zip).as_str());
    assert!(status["drift"].as_str().is_some_and(|s| !s.is_empty()));
}

/// Policy documents come back URL-encoded from IAM.
fn urlencoding_decode(s: &str) -> String {
    if s.trim_start().starts_with('{') {
        return s.to_string();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("00");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_re_run_without_changes_is_a_no_op() {
    let Some(d) = Deployment::new("noop") else {
        return;
    };
    assert_eq!(d.extend(&["--yes"])["result"], "deployed");
    let out = d.run(&[
        "extend",
        "--yes",
        "--timezone",
        "UTC",
        "--artifacts",
        d.artifacts().to_str().expect("utf-8"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("no changes"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains("unchanged"),
        "{}",
        text(&out.stderr)
    );
    let again = d.extend(&["--yes"]);
    assert_eq!(again["result"], "no_changes", "{again:#}");
    assert_eq!(
        again["uploaded"],
        serde_json::json!([]),
        "nothing uploaded twice"
    );
    assert_eq!(again["changes"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn changing_the_scan_time_or_a_subscription_changes_exactly_that() {
    let Some(d) = Deployment::new("change") else {
        return;
    };
    d.write_config("[notifications.critical]\nemails = [\"oncall@example.com\"]\n");
    assert_eq!(d.extend(&["--yes"])["result"], "deployed");

    d.write_config(
        "[schedule]\nscan_time = \"03:30\"\n[notifications.critical]\nemails = [\"oncall@example.com\"]\n",
    );
    let report = d.extend(&["--dry-run"]);
    assert_eq!(report["result"], "dry_run");
    assert_eq!(changes(&report), [("modify".into(), "ScanSchedule".into())]);
    assert_eq!(
        report["changes"][0]["resource_type"],
        "AWS::Scheduler::Schedule"
    );
    assert_eq!(report["changes"][0]["replacement"], "no");

    d.write_config(
        "[notifications.critical]\nemails = [\"oncall@example.com\", \"boss@example.com\"]\n",
    );
    let report = d.extend(&["--dry-run"]);
    let c = changes(&report);
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0].0, "add");
    assert!(c[0].1.starts_with("CriticalEmailSubscription"), "{c:?}");

    // A dry run changed nothing: the original config is still a no-op.
    d.write_config("[notifications.critical]\nemails = [\"oncall@example.com\"]\n");
    assert_eq!(d.extend(&["--dry-run"])["result"], "no_changes");
}

#[tokio::test(flavor = "multi_thread")]
async fn new_function_code_updates_only_that_function() {
    let Some(d) = Deployment::new("code") else {
        return;
    };
    assert_eq!(d.extend(&["--yes"])["result"], "deployed");
    let new_zip = d.write_zip("alert", "alert v2");
    let report = d.extend(&["--yes"]);
    assert_eq!(report["result"], "deployed", "{report:#}");
    // Only the alert function's code key changed. CloudFormation lists AlertFunction as the
    // one modified resource; moto lists none for a parameter-only change (but applies it).
    assert_eq!(
        report["changed_parameters"],
        serde_json::json!(["AlertFunctionCodeKey"])
    );
    let listed = changes(&report);
    assert!(
        listed.is_empty() || listed == [("modify".to_string(), "AlertFunction".to_string())],
        "{listed:?}"
    );
    let new_key = format!("{:x}.zip", Sha256::digest(&new_zip));
    assert_eq!(report["uploaded"], serde_json::json!([new_key]));

    let sdk = d.sdk().await;
    let lambda = aws_sdk_lambda::Client::new(&sdk);
    let alert = lambda
        .get_function()
        .function_name(format!("{}-alert", d.stack))
        .send()
        .await
        .expect("alert function");
    assert_eq!(
        alert.configuration().and_then(|c| c.code_sha256()),
        Some(lambda_sha(&new_zip).as_str())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn destroy_deletes_the_stack_and_keeps_the_data_buckets() {
    let Some(d) = Deployment::new("destroy") else {
        return;
    };
    assert_eq!(d.extend(&["--yes"])["result"], "deployed");
    let sdk = d.sdk().await;
    let ids = d.physical_ids(&sdk).await;
    let state = ids["StateBucket"].clone();
    let audit = ids["AuditBucket"].clone();
    let s3 = s3(&sdk);
    s3.put_object()
        .bucket(&state)
        .key("approvals/a.json")
        .body(b"{}".to_vec().into())
        .send()
        .await
        .expect("put approval");

    let report = d.json(&["destroy", "--yes", "--json"]);
    assert_eq!(report["result"], "deleted", "{report:#}");
    let kept: Vec<&str> = report["kept"]
        .as_array()
        .expect("kept")
        .iter()
        .filter_map(|k| k["logical_id"].as_str())
        .collect();
    for id in ["AuditBucket", "StateBucket", "EncryptionKey"] {
        assert!(kept.contains(&id), "{id} not kept: {kept:?}");
    }
    let deleted: Vec<&str> = report["deleted"]
        .as_array()
        .expect("deleted")
        .iter()
        .filter_map(|k| k["logical_id"].as_str())
        .collect();
    assert!(deleted.contains(&"AlertFunction"), "{deleted:?}");

    // What it said: the stack and the function are gone, both buckets and the data stay.
    let cfn = aws_sdk_cloudformation::Client::new(&sdk);
    assert!(cfn
        .describe_stacks()
        .stack_name(&d.stack)
        .send()
        .await
        .is_err());
    let lambda = aws_sdk_lambda::Client::new(&sdk);
    assert!(lambda
        .get_function()
        .function_name(format!("{}-alert", d.stack))
        .send()
        .await
        .is_err());
    s3.head_bucket()
        .bucket(&audit)
        .send()
        .await
        .expect("audit bucket kept");
    s3.head_object()
        .bucket(&state)
        .key("approvals/a.json")
        .send()
        .await
        .expect("state bucket and its data kept");
    assert!(!d
        .escher_dir()
        .join(format!("extend/aws-{ACCOUNT}-{REGION}.json"))
        .exists());
    let again = d.json(&["destroy", "--yes", "--json"]);
    assert_eq!(again["result"], "no_stack");
}

#[tokio::test(flavor = "multi_thread")]
async fn destroy_with_delete_data_removes_the_state_bucket_but_never_the_audit_bucket() {
    let Some(d) = Deployment::new("deldata") else {
        return;
    };
    assert_eq!(d.extend(&["--yes"])["result"], "deployed");
    let sdk = d.sdk().await;
    let ids = d.physical_ids(&sdk).await;
    let state = ids["StateBucket"].clone();
    let audit = ids["AuditBucket"].clone();
    let s3 = s3(&sdk);
    // Versions too: emptying must remove every version, or the bucket cannot be deleted.
    s3.put_bucket_versioning()
        .bucket(&state)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .expect("versioning");
    for body in ["v1", "v2"] {
        s3.put_object()
            .bucket(&state)
            .key("state/x.json")
            .body(body.as_bytes().to_vec().into())
            .send()
            .await
            .expect("put");
    }
    let report = d.json(&["destroy", "--yes", "--delete-data", "--json"]);
    assert_eq!(report["emptied_buckets"], serde_json::json!([state]));
    let kept: Vec<&str> = report["kept"]
        .as_array()
        .expect("kept")
        .iter()
        .filter_map(|k| k["logical_id"].as_str())
        .collect();
    assert!(
        kept.contains(&"AuditBucket") && !kept.contains(&"StateBucket"),
        "{kept:?}"
    );
    assert!(
        s3.head_bucket().bucket(&state).send().await.is_err(),
        "state bucket deleted"
    );
    s3.head_bucket()
        .bucket(&audit)
        .send()
        .await
        .expect("audit bucket kept");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_yes_and_without_a_terminal_nothing_is_deployed() {
    let Some(d) = Deployment::new("noyes") else {
        return;
    };
    let out = d.run(&[
        "extend",
        "--timezone",
        "UTC",
        "--artifacts",
        d.artifacts().to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("--yes"), "{}", text(&out.stderr));
    // The change set was shown, then discarded with the empty stack made for it.
    assert!(
        text(&out.stdout).contains("AlertFunction"),
        "{}",
        text(&out.stdout)
    );
    let status = d.json(&["status", "--json"]);
    assert_eq!(status["exists"], false, "{status:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_zips_say_how_to_build_them() {
    let Some(d) = Deployment::new("nozip") else {
        return;
    };
    std::fs::remove_file(d.artifacts().join("scan.zip")).expect("rm");
    let out = d.run(&[
        "extend",
        "--yes",
        "--artifacts",
        d.artifacts().to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("scan.zip") && err.contains("make package"),
        "{err}"
    );
    // Without --artifacts extend builds what is missing; --no-build only looks. A target
    // folder of its own, so zips a developer packaged in the workspace do not count.
    let build = tempfile::tempdir().expect("dir");
    let target = build.path().join("target");
    let out = d.run_with(
        &["extend", "--yes", "--no-build"],
        &[("CARGO_TARGET_DIR", target.as_path())],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("target/lambda/escher-scan/bootstrap.zip") && err.contains("missing"),
        "the default is cargo lambda's output: {err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_are_secure_strings_never_printed_back() {
    let Some(d) = Deployment::new("creds") else {
        return;
    };
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_escher-provision"))
            .current_dir(d.dir.path())
            .env("HOME", d.home.path())
            .env("AWS_ACCESS_KEY_ID", "escher-test")
            .env("AWS_SECRET_ACCESS_KEY", "escher-test")
            .env("AWS_REGION", REGION)
            .env("AZURE_CLIENT_SECRET", "very-secret-value")
            .args(["credentials", "--endpoint-url", &d.endpoint])
            .args(args)
            .output()
            .expect("run")
    };
    let set = run(&[
        "set",
        "--cloud",
        "azure",
        "--tenant-id",
        "t",
        "--client-id",
        "c",
    ]);
    assert!(set.status.success(), "{}", text(&set.stderr));
    let name = format!("/escher/{}/credentials/azure", d.stack);
    let ssm = aws_sdk_ssm::Client::new(&d.sdk().await);
    let stored = ssm
        .get_parameter()
        .name(&name)
        .with_decryption(true)
        .send()
        .await
        .expect("parameter");
    let p = stored.parameter().expect("parameter");
    assert_eq!(
        p.r#type(),
        Some(&aws_sdk_ssm::types::ParameterType::SecureString)
    );
    let value: Value = serde_json::from_str(p.value().expect("value")).expect("json");
    assert_eq!(value["client_secret"], "very-secret-value");

    let list = run(&["list", "--json"]);
    assert!(list.status.success());
    assert!(!text(&list.stdout).contains("very-secret-value"));
    let listed: Value = serde_json::from_slice(&list.stdout).expect("json");
    assert_eq!(listed[0]["parameter"], name.as_str());
    assert!(!text(&set.stdout).contains("very-secret-value"));

    assert!(run(&["remove", "--cloud", "azure"]).status.success());
    assert!(ssm.get_parameter().name(&name).send().await.is_err());
}

fn adds(report: &Value, logical_id: &str) -> bool {
    changes(report)
        .iter()
        .any(|(action, id)| action == "add" && id == logical_id)
}

#[tokio::test(flavor = "multi_thread")]
async fn create_trail_auto_adds_a_trail_to_an_account_without_one_and_keeps_it() {
    let Some(d) = Deployment::in_own_account("trailnone").await else {
        return;
    };
    let (report, stderr) = d.extend_capturing(&["--yes"]);
    assert_eq!(report["result"], "deployed", "{report:#}");
    assert_eq!(report["account"], d.account.as_str());
    assert!(stderr.contains("the account has no trail"), "{stderr}");
    assert!(
        adds(&report, "Trail") && adds(&report, "TrailBucket"),
        "{report:#}"
    );
    // moto accepts AWS::CloudTrail::Trail in a template but neither creates nor lists it
    // (../shared/emulators.md), so the stack's own trail is invisible here: the unit test
    // of `TrailDecision::auto` covers keeping it. The re-run must still be a no-op.
    let (again, stderr) = d.extend_capturing(&["--yes"]);
    assert_eq!(again["result"], "no_changes", "{again:#}\n{stderr}");
    assert!(
        stderr.contains("the stack's own trail is kept")
            || stderr.contains("the account has no trail"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn create_trail_auto_leaves_the_trail_out_when_the_account_has_one() {
    let Some(d) = Deployment::in_own_account("trailexists").await else {
        return;
    };
    let sdk = d.sdk().await;
    let bucket = format!("org-trail-{}", d.account);
    s3(&sdk)
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("trail bucket");
    aws_sdk_cloudtrail::Client::new(&sdk)
        .create_trail()
        .name("organization-trail")
        .s3_bucket_name(&bucket)
        .is_multi_region_trail(true)
        .send()
        .await
        .expect("the account's own trail");
    let (report, stderr) = d.extend_capturing(&["--dry-run"]);
    assert_eq!(report["result"], "dry_run", "{report:#}");
    assert!(
        stderr.contains("already has a trail (organization-trail)"),
        "{stderr}"
    );
    let ids: Vec<String> = changes(&report).into_iter().map(|(_, id)| id).collect();
    assert!(ids.contains(&"AlertFunction".to_string()), "{ids:?}");
    assert!(
        !ids.iter().any(|id| id.starts_with("Trail")),
        "no trail resources: {ids:?}"
    );

    // `always` creates one regardless.
    let mut always = d;
    always.create_trail = "always";
    always.write_config("");
    let (report, stderr) = always.extend_capturing(&["--dry-run"]);
    assert!(adds(&report, "Trail"), "{report:#}\n{stderr}");
}
