//! `extend`, `status`, `destroy` and `credentials` as the user sees them, written once for
//! every cloud, generic over [`Deployment`]: what is printed (tables on stdout, progress
//! and questions on stderr, `--json` on stdout), when the user is asked, where the outputs
//! are saved and the exit status (0 done, 1 declined, 2 failed).
//!
//! Every step that changes the account is shown first and asked for, unless `--yes`.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use serde::Serialize;

use super::seam::{
    ChangeKind, Deployed, Deployment, FunctionStatus, KeptResource, PreviewRequest, Replacement,
    Resource, ResourceChange, Session,
};
use super::{
    AccessArgs, CredentialsArgs, CredentialsCommand, CredentialsSetArgs, DestroyArgs, ExtendArgs,
    OtherCloud, StatusArgs, EXIT_DECLINED,
};
use crate::output::table;

/// Reads escher.toml (`--config`, else ./escher.toml) and connects to the cloud.
async fn connect<D: Deployment>(access: &AccessArgs) -> anyhow::Result<D> {
    let (config, _) = crate::config::load_for_command(access.config.as_deref())?;
    D::connect(access, config).await
}

/// What `extend --json` prints.
#[derive(Debug, Serialize)]
struct ExtendReport {
    stack: String,
    account: String,
    region: String,
    /// `create` or `update`.
    change_set_type: &'static str,
    /// `no_changes`, `dry_run`, `declined`, `deployed`.
    result: &'static str,
    changes: Vec<ResourceChange>,
    /// Template parameters whose value changes (the functions' code keys).
    changed_parameters: Vec<String>,
    uploaded: Vec<String>,
    stack_status: Option<String>,
    outputs: BTreeMap<String, String>,
    outputs_file: Option<PathBuf>,
}

/// `extend`: the preview, then (asked, unless `--yes`) the deployment and its outputs.
pub async fn extend<D: Deployment>(args: ExtendArgs) -> anyhow::Result<ExitCode> {
    let mut deployment: D = connect(&args.target.access).await?;
    let session = deployment.session().clone();

    let mut current = deployment.current().await?;
    if let Some(why) = current.recreate.take() {
        eprintln!("{why}");
        if args.dry_run {
            eprintln!("dry run: it would be deleted and created again; nothing was changed.");
            return Ok(ExitCode::SUCCESS);
        }
        if !confirm(
            "Delete it and create it again?",
            args.yes,
            &format!(
                "pass --yes to delete the failed {} and create it again",
                D::UNIT
            ),
        )? {
            eprintln!("nothing changed.");
            return Ok(ExitCode::from(EXIT_DECLINED));
        }
        deployment.remove_failed().await?;
        current.deployed = None;
    }

    let preview = deployment
        .preview(&PreviewRequest {
            timezone: args.timezone,
            artifacts: args.artifacts.as_deref(),
            build: !args.no_build,
            dry_run: args.dry_run,
        })
        .await?;
    let mut report = ExtendReport {
        stack: session.name.clone(),
        account: session.account.clone(),
        region: session.region.clone(),
        change_set_type: preview.kind.as_str(),
        result: "no_changes",
        changes: Vec::new(),
        changed_parameters: preview.changed_parameters.clone(),
        uploaded: preview.uploaded.clone(),
        stack_status: current.deployed.as_ref().map(|d| d.status.clone()),
        outputs: current
            .deployed
            .as_ref()
            .map(|d| d.outputs.clone())
            .unwrap_or_default(),
        outputs_file: None,
    };
    if preview.up_to_date {
        deployment.discard().await;
        if !args.json {
            println!("no changes: {} is up to date.", session.label);
        }
        if let Some(deployed) = &current.deployed {
            report.outputs_file = Some(save(&session, deployed)?);
        }
        finish(&report, args.json)?;
        return Ok(ExitCode::SUCCESS);
    }
    report.changes = preview.changes.clone();
    if !args.json {
        let count = preview.changes.len();
        println!(
            "{} for {} ({count} resource change{}):",
            capitalized(D::PREVIEW),
            session.label,
            if count == 1 { "" } else { "s" }
        );
        print_changes(&preview.changes);
        if !report.changed_parameters.is_empty() {
            println!(
                "changed parameters: {}",
                report.changed_parameters.join(", ")
            );
        }
    }
    if args.dry_run {
        deployment.discard().await;
        report.result = "dry_run";
        if !args.json {
            println!("dry run: nothing was changed.");
        }
        finish(&report, args.json)?;
        return Ok(ExitCode::SUCCESS);
    }
    let agreed = confirm(
        &format!("Deploy these changes to {}?", session.label),
        args.yes,
        &format!(
            "pass --yes to deploy, or --dry-run to only see the {}",
            D::PREVIEW
        ),
    );
    match agreed {
        Ok(true) => {}
        Ok(false) => {
            deployment.discard().await;
            eprintln!("nothing changed.");
            report.result = "declined";
            finish(&report, args.json)?;
            return Ok(ExitCode::from(EXIT_DECLINED));
        }
        Err(e) => {
            deployment.discard().await;
            return Err(e);
        }
    }

    let deployed = deployment.apply(&preview).await?;
    report.result = "deployed";
    report.stack_status = Some(deployed.status.clone());
    report.outputs = deployed.outputs.clone();
    report.outputs_file = Some(save(&session, &deployed)?);
    if !args.json {
        println!("{} is {}.", session.label, deployed.status);
        print_outputs(&deployed.outputs, D::UNIT);
        if let Some(path) = &report.outputs_file {
            println!("outputs saved to {}", path.display());
        }
    }
    finish(&report, args.json)?;
    Ok(ExitCode::SUCCESS)
}

fn finish(report: &ExtendReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    }
    Ok(())
}

/// `change set` → `Change set`, to open a sentence.
fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

pub fn print_changes(changes: &[ResourceChange]) {
    let mut t = table(vec!["action", "logical id", "type", "replacement"]);
    for c in changes {
        t.add_row(vec![
            match c.action {
                ChangeKind::Add => "add",
                ChangeKind::Modify => "modify",
                ChangeKind::Remove => "remove",
                ChangeKind::Other => "other",
            }
            .to_string(),
            c.logical_id.clone(),
            c.resource_type.clone(),
            match c.replacement {
                Replacement::Yes => "yes",
                Replacement::No => "no",
                Replacement::Conditional => "conditional",
            }
            .to_string(),
        ]);
    }
    println!("{t}");
}

/// Asks `question` on the terminal; `--yes` answers for the user. Without a terminal
/// (a pipe, CI) and without `--yes` nothing is changed: a deploy nobody saw must not run.
pub fn confirm(question: &str, yes: bool, refuse_hint: &str) -> anyhow::Result<bool> {
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        bail!("standard input is not a terminal, so nobody can confirm: {refuse_hint}");
    }
    let mut err = std::io::stderr();
    write!(err, "{question} [y/N] ")?;
    err.flush()?;
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("cannot read the answer from standard input")?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// Where `extend` saves the deployment's outputs:
/// `<Escher folder>/extend/<cloud>-<account>-<region>.json` (`~/.escher` unless
/// `--escher-dir` / `ESCHER_HOME`).
pub fn outputs_path(session: &Session) -> anyhow::Result<PathBuf> {
    Ok(crate::output::escher_dir()
        .context("the deployment outputs cannot be saved")?
        .join("extend")
        .join(format!(
            "{}-{}-{}.json",
            session.cloud, session.account, session.region
        )))
}

/// The saved outputs file.
#[derive(Debug, Clone, Serialize)]
pub struct SavedOutputs<'a> {
    pub stack: &'a str,
    pub account: &'a str,
    pub region: &'a str,
    pub stack_status: &'a str,
    pub outputs: &'a BTreeMap<String, String>,
}

pub fn save_outputs(path: &Path, saved: &SavedOutputs<'_>) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut text = serde_json::to_string_pretty(saved)?;
    text.push('\n');
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// Saves the outputs of `deployed`; returns the file.
fn save(session: &Session, deployed: &Deployed) -> anyhow::Result<PathBuf> {
    let path = outputs_path(session)?;
    save_outputs(
        &path,
        &SavedOutputs {
            stack: &session.name,
            account: &session.account,
            region: &session.region,
            stack_status: &deployed.status,
            outputs: &deployed.outputs,
        },
    )?;
    Ok(path)
}

/// `unit`: what the cloud calls the deployment (`stack`).
pub fn print_outputs(outputs: &BTreeMap<String, String>, unit: &str) {
    if outputs.is_empty() {
        // CloudFormation fills them once the stack is complete; an emulator may not.
        println!("the {unit} reports no outputs");
        return;
    }
    let mut t = table(vec!["output", "value"]);
    for (k, v) in outputs {
        t.add_row(vec![k.clone(), v.clone()]);
    }
    println!("{t}");
}

/// What `status --json` prints.
#[derive(Debug, Serialize)]
struct StatusReport {
    stack: String,
    account: String,
    region: String,
    exists: bool,
    stack_status: Option<String>,
    status_reason: Option<String>,
    last_updated: Option<String>,
    outputs: BTreeMap<String, String>,
    functions: Vec<FunctionStatus>,
    /// `IN_SYNC`, `DRIFTED`, … or why it is unknown.
    drift: String,
}

/// `status`: the deployment, its functions' code, drift; or that there is none.
pub async fn status<D: Deployment>(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let deployment: D = connect(&args.target.access).await?;
    let session = deployment.session();
    let Some(status) = deployment.status().await? else {
        let report = StatusReport {
            stack: session.name.clone(),
            account: session.account.clone(),
            region: session.region.clone(),
            exists: false,
            stack_status: None,
            status_reason: None,
            last_updated: None,
            outputs: BTreeMap::new(),
            functions: Vec::new(),
            drift: format!("no {}", D::UNIT),
        };
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            println!(
                "{} does not exist; `escher-provision extend --cloud {}` creates it.",
                session.label, session.cloud
            );
        }
        return Ok(ExitCode::SUCCESS);
    };
    let report = StatusReport {
        stack: session.name.clone(),
        account: session.account.clone(),
        region: session.region.clone(),
        exists: true,
        stack_status: Some(status.deployed.status.clone()),
        status_reason: status.deployed.status_reason,
        last_updated: status.last_updated,
        outputs: status.deployed.outputs,
        functions: status.functions,
        drift: status.drift,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}: {}", session.label, status.deployed.status);
    if let Some(r) = &report.status_reason {
        println!("  reason: {r}");
    }
    if let Some(t) = &report.last_updated {
        println!("  last update: {t}");
    }
    println!("  drift: {}", report.drift);
    let mut t = table(vec!["function", "name", "code sha256", "last modified"]);
    for f in &report.functions {
        t.add_row(vec![
            f.function.clone(),
            f.name.clone(),
            f.code_sha256
                .clone()
                .or_else(|| f.error.clone())
                .unwrap_or_default(),
            f.last_modified.clone().unwrap_or_default(),
        ]);
    }
    println!("{t}");
    print_outputs(&report.outputs, D::UNIT);
    Ok(ExitCode::SUCCESS)
}

/// What `destroy --json` prints.
#[derive(Debug, Serialize)]
struct DestroyReport {
    stack: String,
    account: String,
    region: String,
    /// `no_stack`, `declined`, `deleted`.
    result: &'static str,
    deleted: Vec<Resource>,
    kept: Vec<KeptResource>,
    emptied_buckets: Vec<String>,
}

/// `destroy`: what is deleted and what is kept, then (asked, unless `--yes`) the deletion.
pub async fn destroy<D: Deployment>(args: DestroyArgs) -> anyhow::Result<ExitCode> {
    let deployment: D = connect(&args.target.access).await?;
    let session = deployment.session();
    let mut report = DestroyReport {
        stack: session.name.clone(),
        account: session.account.clone(),
        region: session.region.clone(),
        result: "no_stack",
        deleted: Vec::new(),
        kept: Vec::new(),
        emptied_buckets: Vec::new(),
    };
    let Some(plan) = deployment.destroy_plan(args.delete_data).await? else {
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            println!("{} does not exist; nothing to delete.", session.label);
        }
        return Ok(ExitCode::SUCCESS);
    };
    report.deleted = plan.delete.iter().map(|d| d.resource.clone()).collect();
    report.kept = plan.keep.clone();
    if !args.json || !args.yes {
        let mut t = table(vec!["", "logical id", "type", "physical id", "why"]);
        for d in &plan.delete {
            t.add_row(vec![
                "delete".to_string(),
                d.resource.logical_id.clone(),
                d.resource.resource_type.clone(),
                d.resource.physical_id.clone(),
                d.note.clone().unwrap_or_default(),
            ]);
        }
        for r in &report.kept {
            t.add_row(vec![
                "keep".to_string(),
                r.logical_id.clone(),
                r.resource_type.clone(),
                r.physical_id.clone(),
                r.why.clone(),
            ]);
        }
        eprintln!("Destroying {}:\n{t}", session.label);
    }
    let agreed = confirm(
        &format!("Delete {}?", session.label),
        args.yes,
        &format!("pass --yes to delete the {}", D::UNIT),
    )?;
    if !agreed {
        report.result = "declined";
        eprintln!("nothing changed.");
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        return Ok(ExitCode::from(EXIT_DECLINED));
    }
    deployment.destroy(&plan).await?;
    report.emptied_buckets = plan.emptied.clone();
    if let Ok(path) = outputs_path(session) {
        let _ = std::fs::remove_file(path);
    }
    report.result = "deleted";
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{} deleted.", session.label);
        for k in &report.kept {
            println!("  kept {} {} ({})", k.logical_id, k.physical_id, k.why);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `credentials set | list | remove`: other clouds' credentials as secrets of the
/// deployment, never printed back.
pub async fn credentials<D: Deployment>(args: CredentialsArgs) -> anyhow::Result<ExitCode> {
    let own = match &args.command {
        CredentialsCommand::Set(set) => Some(set.cloud),
        CredentialsCommand::Remove { cloud } => Some(*cloud),
        CredentialsCommand::List { .. } => None,
    };
    if own.is_some_and(|c| c.as_str() == args.deployment.as_str()) {
        bail!(
            "the functions on {} use their own identity there, not stored credentials; --cloud names another cloud (see --on)",
            args.deployment.display_name()
        );
    }
    let deployment: D = connect(&args.access).await?;
    match args.command {
        CredentialsCommand::Set(set) => {
            let value = credential_value(&set)?;
            let stored = deployment.store_secret(set.cloud, value).await?;
            println!("stored the {} credentials as {stored}", set.cloud.as_str());
        }
        CredentialsCommand::List { json } => {
            let list = deployment.list_secrets().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list.secrets)?);
            } else if list.secrets.is_empty() {
                println!("no credentials stored under {}", list.location);
            } else {
                let mut t = table(vec!["cloud", "parameter", "last modified"]);
                for c in &list.secrets {
                    t.add_row(vec![
                        c.cloud.clone(),
                        c.parameter.clone(),
                        c.last_modified.clone().unwrap_or_default(),
                    ]);
                }
                println!("{t}");
            }
        }
        CredentialsCommand::Remove { cloud } => {
            let name = deployment.remove_secret(cloud).await?;
            println!("removed {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The JSON the functions read; secrets come from the environment or a file, never argv.
fn credential_value(set: &CredentialsSetArgs) -> anyhow::Result<String> {
    match set.cloud {
        OtherCloud::Aws => {
            let var = |name: &str| {
                std::env::var(name).with_context(|| {
                    format!("the AWS access key is read from ${name}, which is not set")
                })
            };
            Ok(serde_json::json!({
                "access_key_id": var("AWS_ACCESS_KEY_ID")?,
                "secret_access_key": var("AWS_SECRET_ACCESS_KEY")?,
            })
            .to_string())
        }
        OtherCloud::Azure => {
            let secret = std::env::var(&set.client_secret_env).with_context(|| {
                format!(
                    "the Azure client secret is read from ${}, which is not set",
                    set.client_secret_env
                )
            })?;
            Ok(serde_json::json!({
                "tenant_id": set.tenant_id.as_deref().context("--tenant-id is required for azure")?,
                "client_id": set.client_id.as_deref().context("--client-id is required for azure")?,
                "client_secret": secret,
            })
            .to_string())
        }
        OtherCloud::Gcp => {
            let path = set
                .key_file
                .as_ref()
                .context("--key-file is required for gcp")?;
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let key: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a service account JSON key", path.display()))?;
            if key.get("type").and_then(|t| t.as_str()) != Some("service_account") {
                bail!(
                    "{} is not a service account key (its `type` is not `service_account`)",
                    path.display()
                );
            }
            Ok(key.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};

    use super::*;
    use crate::cloud::Cloud;
    use crate::config::EscherConfig;
    use crate::deploy::seam::{Current, DestroyPlan, Preview, PreviewKind, SecretList, Status};
    use crate::deploy::TargetArgs;

    #[test]
    fn a_preview_word_opens_a_sentence() {
        assert_eq!(capitalized("change set"), "Change set");
        assert_eq!(capitalized("what-if"), "What-if");
        assert_eq!(capitalized(""), "");
    }

    thread_local! {
        /// What the fake was asked to do, in order (the tests run on one thread each).
        static CALLS: RefCell<Vec<&'static str>> = const { RefCell::new(Vec::new()) };
        /// Whether the fake's preview finds nothing to change.
        static UP_TO_DATE: Cell<bool> = const { Cell::new(false) };
    }

    fn called(call: &'static str) {
        CALLS.with(|c| c.borrow_mut().push(call));
    }

    fn calls() -> Vec<&'static str> {
        CALLS.with(|c| c.borrow().clone())
    }

    /// A cloud that is not AWS, through the seam only: what Azure and GCP will do.
    struct FakeCloud {
        session: Session,
    }

    impl Deployment for FakeCloud {
        const UNIT: &'static str = "deployment";
        const PREVIEW: &'static str = "preview";

        async fn connect(_: &AccessArgs, config: EscherConfig) -> anyhow::Result<Self> {
            called("connect");
            Ok(FakeCloud {
                session: Session {
                    cloud: Cloud::Gcp,
                    name: config.stack.name.to_string(),
                    account: "project-1".into(),
                    region: "europe-west1".into(),
                    identity: "tester@project-1".into(),
                    label: format!("deployment `{}` (project-1)", config.stack.name),
                },
            })
        }
        fn session(&self) -> &Session {
            &self.session
        }
        async fn current(&mut self) -> anyhow::Result<Current> {
            called("current");
            Ok(Current::default())
        }
        async fn remove_failed(&mut self) -> anyhow::Result<()> {
            called("remove_failed");
            Ok(())
        }
        async fn preview(&mut self, _: &PreviewRequest<'_>) -> anyhow::Result<Preview> {
            called("preview");
            let up_to_date = UP_TO_DATE.with(Cell::get);
            Ok(Preview {
                kind: PreviewKind::Create,
                changes: if up_to_date {
                    Vec::new()
                } else {
                    vec![ResourceChange {
                        action: ChangeKind::Add,
                        logical_id: "AlertFunction".into(),
                        resource_type: "run.v1.Service".into(),
                        replacement: Replacement::No,
                    }]
                },
                changed_parameters: Vec::new(),
                uploaded: Vec::new(),
                up_to_date,
            })
        }
        async fn discard(&mut self) {
            called("discard");
        }
        async fn apply(&mut self, preview: &Preview) -> anyhow::Result<Deployed> {
            called("apply");
            assert_eq!(preview.changes.len(), 1);
            Ok(Deployed {
                status: "ACTIVE".into(),
                status_reason: None,
                outputs: BTreeMap::from([("StateStoreUri".into(), "gs://state/state".into())]),
            })
        }
        async fn status(&self) -> anyhow::Result<Option<Status>> {
            Ok(None)
        }
        async fn destroy_plan(&self, _: bool) -> anyhow::Result<Option<DestroyPlan>> {
            Ok(None)
        }
        async fn destroy(&self, _: &DestroyPlan) -> anyhow::Result<()> {
            Ok(())
        }
        async fn store_secret(&self, _: OtherCloud, _: String) -> anyhow::Result<String> {
            Ok(String::new())
        }
        async fn list_secrets(&self) -> anyhow::Result<SecretList> {
            Ok(SecretList {
                location: String::new(),
                secrets: Vec::new(),
            })
        }
        async fn remove_secret(&self, _: OtherCloud) -> anyhow::Result<String> {
            Ok(String::new())
        }
    }

    /// `extend --json` with an empty escher.toml (written into `dir`).
    fn extend_args(dir: &Path, dry_run: bool, yes: bool) -> ExtendArgs {
        let config = dir.join("escher.toml");
        std::fs::write(&config, "").expect("escher.toml");
        ExtendArgs {
            target: TargetArgs {
                cloud: Cloud::Gcp,
                access: AccessArgs {
                    region: None,
                    project: None,
                    profile: None,
                    subscription: None,
                    location: None,
                    resource_group: None,
                    endpoint_url: None,
                    config: Some(config),
                },
            },
            yes,
            dry_run,
            json: true,
            artifacts: None,
            no_build: true,
            timezone: None,
        }
    }

    #[tokio::test]
    async fn a_dry_run_previews_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().expect("dir");
        let code = extend::<FakeCloud>(extend_args(dir.path(), true, false))
            .await
            .expect("dry run");
        assert_eq!(code, ExitCode::SUCCESS);
        assert_eq!(calls(), ["connect", "current", "preview", "discard"]);
    }

    #[tokio::test]
    async fn an_up_to_date_deployment_is_neither_asked_about_nor_applied() {
        UP_TO_DATE.with(|u| u.set(true));
        let dir = tempfile::tempdir().expect("dir");
        // Not --yes: nothing is asked, since there is nothing to apply.
        let code = extend::<FakeCloud>(extend_args(dir.path(), false, false))
            .await
            .expect("no changes");
        assert_eq!(code, ExitCode::SUCCESS);
        assert_eq!(calls(), ["connect", "current", "preview", "discard"]);
    }

    #[tokio::test]
    async fn with_yes_the_preview_is_applied_and_the_outputs_saved_under_the_cloud() {
        let dir = tempfile::tempdir().expect("dir");
        // The only unit test that saves outputs, so the only one to set the Escher folder.
        crate::output::set_escher_dir(dir.path()).expect("escher dir");
        let code = extend::<FakeCloud>(extend_args(dir.path(), false, true))
            .await
            .expect("deployed");
        assert_eq!(code, ExitCode::SUCCESS);
        assert_eq!(calls(), ["connect", "current", "preview", "apply"]);
        let saved = dir.path().join("extend/gcp-project-1-europe-west1.json");
        let saved: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&saved).expect("saved outputs")).expect("json");
        assert_eq!(saved["stack_status"], "ACTIVE");
        assert_eq!(saved["outputs"]["StateStoreUri"], "gs://state/state");
    }
}
