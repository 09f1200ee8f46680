//! `extend` on AWS: whether the stack brings its own trail, executing the change set and
//! watching the stack's events until it settles.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use aws_sdk_cloudformation::types::{Capability, ChangeSetType, StackStatus};
use serde::Serialize;

use super::artifacts::*;
use super::change_set::*;
use super::destroy::*;
use super::session::*;
use crate::config::CreateTrail;
use crate::deploy::package::locate_packages;
use crate::deploy::{
    confirm, outputs_path, print_changes, print_outputs, require_aws, save_outputs, ExtendArgs,
    Function, ResourceChange, SavedOutputs, EXIT_DECLINED,
};

/// What `extend --json` prints.
#[derive(Debug, Serialize)]
pub(super) struct ExtendReport {
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

pub async fn extend(args: ExtendArgs) -> anyhow::Result<ExitCode> {
    require_aws(args.target.cloud)?;
    let session = connect(&args.target.access).await?;
    let progress = |msg: &str| eprintln!("{msg}");

    let mut existing = session.describe_stack().await?;
    let mut plan = stack_plan(&session.stack_label(), existing.as_ref())?;
    if plan == StackPlan::Recreate {
        eprintln!(
            "{} is in ROLLBACK_COMPLETE: its first creation failed{}; it holds no working resources and must be deleted and created again.",
            session.stack_label(),
            existing
                .as_ref()
                .and_then(|info| info.status_reason.as_deref())
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        );
        if args.dry_run {
            eprintln!("dry run: it would be deleted and created again; nothing was changed.");
            return Ok(ExitCode::SUCCESS);
        }
        if !confirm(
            "Delete it and create it again?",
            args.yes,
            "pass --yes to delete the failed stack and create it again",
        )? {
            eprintln!("nothing changed.");
            return Ok(ExitCode::from(EXIT_DECLINED));
        }
        delete_stack_and_wait(&session).await?;
        existing = None;
        plan = StackPlan::Create;
    }
    let change_set_type = match plan {
        StackPlan::Update => ChangeSetType::Update,
        StackPlan::Create | StackPlan::Recreate => ChangeSetType::Create,
    };
    let trail = trail_decision(&session, existing.is_some()).await?;
    progress(&trail.explain());
    let (timezone, _) = crate::config::resolve_timezone(args.timezone, &session.config.schedule);
    let template =
        crate::render::aws::for_deploy(&session.config, timezone, trail.creates_trail())?;

    // Packaging and artifacts.
    let bucket = artifacts_bucket(&session).await?;
    let mut uploaded = Vec::new();
    let mut parameter_values = BTreeMap::from([("ArtifactsBucket".to_string(), bucket.clone())]);
    let pinned = |f: Function| match f {
        Function::Alert => session.config.aws.artifacts.alert_zip_key.as_ref(),
        Function::Scan => session.config.aws.artifacts.scan_zip_key.as_ref(),
    };
    let to_package: Vec<Function> = Function::ALL
        .into_iter()
        .filter(|f| pinned(*f).is_none())
        .collect();
    let packages = locate_packages(
        args.artifacts.as_deref(),
        &to_package,
        session.config.aws.functions.architecture,
        !args.no_build,
    )?;
    for function in Function::ALL {
        let key = match pinned(function) {
            Some(key) => {
                if !object_exists(&session, &bucket, key.as_str()).await? {
                    bail!(
                        "escher.toml pins the {} function to `{key}`, which is not in s3://{bucket}; upload it or remove `[aws.artifacts] {}_zip_key`",
                        function.name(),
                        function.name()
                    );
                }
                key.to_string()
            }
            None => {
                let package = packages
                    .iter()
                    .find(|p| p.function == function)
                    .context("a located package went missing (a bug; please report it)")?;
                if upload_package(&session, &bucket, package).await? {
                    progress(&format!(
                        "uploaded {} → s3://{bucket}/{}",
                        package.path.display(),
                        package.key
                    ));
                    uploaded.push(package.key.clone());
                } else {
                    progress(&format!(
                        "{} function code unchanged (s3://{bucket}/{} exists)",
                        function.name(),
                        package.key
                    ));
                }
                package.key.clone()
            }
        };
        parameter_values.insert(function.code_key_parameter().to_string(), key);
    }

    // The change set.
    let template_source = template_source(&session, &bucket, &template).await?;
    let now = chrono::Utc::now();
    let change_set_name = format!(
        "escher-{}-{:03}",
        now.format("%Y%m%d%H%M%S"),
        now.timestamp_subsec_millis()
    );
    let mut create = session
        .cfn
        .create_change_set()
        .stack_name(&session.stack)
        .change_set_name(&change_set_name)
        .change_set_type(change_set_type.clone())
        .description("escher-provision extend")
        .set_parameters(Some(
            parameter_values
                .iter()
                .map(|(k, v)| parameter(k, v))
                .collect(),
        ))
        .capabilities(Capability::CapabilityIam)
        .capabilities(Capability::CapabilityNamedIam);
    create = match &template_source {
        TemplateSource::Body(body) => create.template_body(body),
        TemplateSource::Url(url) => create.template_url(url),
    };
    progress(&format!(
        "creating change set {change_set_name} ({}) for {}",
        if change_set_type == ChangeSetType::Create {
            "new stack"
        } else {
            "update"
        },
        session.stack_label()
    ));
    let created = session.call(
        create.send().await,
        "cloudformation:CreateChangeSet",
        &session.stack_label(),
    );
    // From here on the change set is named by its ARN: moto looks names up across stacks.
    let change_set_name = match &created {
        Ok(out) => out.id().unwrap_or(&change_set_name).to_string(),
        Err(_) => change_set_name,
    };
    let outcome = match created {
        Ok(_) => wait_for_change_set(&session, &change_set_name).await?,
        // Some CloudFormation implementations (moto) refuse an identical update up front.
        Err(e) if e.code() == Some("ValidationError") && is_no_change_reason(e.message()) => {
            ChangeSetOutcome::NoChanges
        }
        Err(e) => return Err(e.into()),
    };
    let mut report = ExtendReport {
        stack: session.stack.clone(),
        account: session.account.clone(),
        region: session.region.clone(),
        change_set_type: if change_set_type == ChangeSetType::Create {
            "create"
        } else {
            "update"
        },
        result: "no_changes",
        changes: Vec::new(),
        changed_parameters: Vec::new(),
        uploaded,
        stack_status: existing.as_ref().map(|i| i.status.as_str().to_string()),
        outputs: existing
            .as_ref()
            .map(|i| i.outputs.clone())
            .unwrap_or_default(),
        outputs_file: None,
    };
    if let Some(info) = &existing {
        report.changed_parameters = parameter_values
            .iter()
            .filter(|(k, v)| info.parameters.get(*k) != Some(*v))
            .map(|(k, _)| k.clone())
            .collect();
    }
    let outcome = match outcome {
        // CloudFormation lists the resources a parameter change touches; an implementation
        // that lists none for a changed parameter (moto) must still apply it.
        ChangeSetOutcome::Ready(changes)
            if changes.is_empty() && report.changed_parameters.is_empty() =>
        {
            ChangeSetOutcome::NoChanges
        }
        other => other,
    };
    let changes = match outcome {
        ChangeSetOutcome::NoChanges => {
            discard_change_set(&session, &change_set_name, &change_set_type).await;
            if !args.json {
                println!("no changes: {} is up to date.", session.stack_label());
            }
            if let Some(info) = &existing {
                report.outputs_file = save(&session, info)?;
            }
            finish(&report, args.json)?;
            return Ok(ExitCode::SUCCESS);
        }
        ChangeSetOutcome::Failed(reason) => {
            discard_change_set(&session, &change_set_name, &change_set_type).await;
            bail!(
                "CloudFormation could not prepare the change for {}: {reason}",
                session.stack_label()
            );
        }
        ChangeSetOutcome::Ready(changes) => changes,
    };
    report.changes = changes.clone();
    if !args.json {
        println!(
            "Change set for {} ({} resource change{}):",
            session.stack_label(),
            changes.len(),
            if changes.len() == 1 { "" } else { "s" }
        );
        print_changes(&changes);
        if !report.changed_parameters.is_empty() {
            println!(
                "changed parameters: {}",
                report.changed_parameters.join(", ")
            );
        }
    }
    if args.dry_run {
        discard_change_set(&session, &change_set_name, &change_set_type).await;
        report.result = "dry_run";
        if !args.json {
            println!("dry run: nothing was changed.");
        }
        finish(&report, args.json)?;
        return Ok(ExitCode::SUCCESS);
    }
    let agreed = confirm(
        &format!("Deploy these changes to {}?", session.stack_label()),
        args.yes,
        "pass --yes to deploy, or --dry-run to only see the change set",
    );
    match agreed {
        Ok(true) => {}
        Ok(false) => {
            discard_change_set(&session, &change_set_name, &change_set_type).await;
            eprintln!("nothing changed.");
            report.result = "declined";
            finish(&report, args.json)?;
            return Ok(ExitCode::from(EXIT_DECLINED));
        }
        Err(e) => {
            discard_change_set(&session, &change_set_name, &change_set_type).await;
            return Err(e);
        }
    }

    let started = aws_sdk_cloudformation::primitives::DateTime::from(std::time::SystemTime::now());
    let executed = session
        .cfn
        .execute_change_set()
        .stack_name(&session.stack)
        .change_set_name(&change_set_name)
        .send()
        .await;
    if let Err(e) = session.call(
        executed,
        "cloudformation:ExecuteChangeSet",
        &session.stack_label(),
    ) {
        // moto applies the change inside ExecuteChangeSet and returns a failing resource's
        // error here; real CloudFormation reports it through the stack events below.
        let events = failure_events(&session, started).await.unwrap_or_default();
        bail!("deploying {} failed: {e}{}", session.stack_label(), events);
    }
    let info = watch_stack(&session, changes.len(), started).await?;
    let failed = is_failure(&info.status);
    if failed {
        let events = failure_events(&session, started).await.unwrap_or_default();
        bail!(
            "deploying {} failed: the stack is {}{}{}",
            session.stack_label(),
            info.status.as_str(),
            info.status_reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default(),
            events
        );
    }
    report.result = "deployed";
    report.stack_status = Some(info.status.as_str().to_string());
    report.outputs = info.outputs.clone();
    report.outputs_file = save(&session, &info)?;
    if !args.json {
        println!("{} is {}.", session.stack_label(), info.status.as_str());
        print_outputs(&info.outputs);
        if let Some(path) = &report.outputs_file {
            println!("outputs saved to {}", path.display());
        }
    }
    finish(&report, args.json)?;
    Ok(ExitCode::SUCCESS)
}

/// Whether the stack brings its own CloudTrail trail, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrailDecision {
    /// `create_trail = "always"`.
    Always,
    /// `create_trail = "never"`.
    Never,
    /// `auto`, and the account records API calls with none of its trails but the stack's.
    NoTrailInAccount,
    /// `auto`, and the stack already has its trail: it stays (taking it away would stop the
    /// API-call alerts that the user got it for).
    KeepStackTrail,
    /// `auto`, and these trails (names or ARNs) already record the account's API calls.
    AccountHasTrails(Vec<String>),
}

impl TrailDecision {
    /// The decision for `auto`, from whether the stack has its trail already and the
    /// trails CloudTrail lists in the region (other regions' multi-region trails included).
    pub fn auto(stack_has_trail: bool, account_trails: Vec<String>) -> TrailDecision {
        if stack_has_trail {
            TrailDecision::KeepStackTrail
        } else if account_trails.is_empty() {
            TrailDecision::NoTrailInAccount
        } else {
            TrailDecision::AccountHasTrails(account_trails)
        }
    }

    pub fn creates_trail(&self) -> bool {
        match self {
            TrailDecision::Always
            | TrailDecision::NoTrailInAccount
            | TrailDecision::KeepStackTrail => true,
            TrailDecision::Never | TrailDecision::AccountHasTrails(_) => false,
        }
    }

    pub fn explain(&self) -> String {
        match self {
            TrailDecision::Always => "CloudTrail: the stack creates its own trail (create_trail = \"always\")".into(),
            TrailDecision::Never => "CloudTrail: no trail in the stack (create_trail = \"never\"); API-call alerts arrive only if another trail records them".into(),
            TrailDecision::NoTrailInAccount => "CloudTrail: the account has no trail, so the stack creates one (API-call alerts need it); create_trail = \"never\" leaves it out".into(),
            TrailDecision::KeepStackTrail => "CloudTrail: the stack's own trail is kept".into(),
            TrailDecision::AccountHasTrails(names) => format!(
                "CloudTrail: the account already has a trail ({}), so the stack creates none; create_trail = \"always\" adds one anyway",
                names.join(", ")
            ),
        }
    }
}

/// `[aws.cloudtrail] create_trail` resolved against the account.
pub(super) async fn trail_decision(
    session: &AwsSession,
    stack_exists: bool,
) -> anyhow::Result<TrailDecision> {
    match session.config.aws.cloudtrail.create_trail {
        CreateTrail::Always => return Ok(TrailDecision::Always),
        CreateTrail::Never => return Ok(TrailDecision::Never),
        CreateTrail::Auto => {}
    }
    let stack_has_trail = stack_exists
        && stack_resources(session)
            .await?
            .iter()
            .any(|r| r.resource_type == "AWS::CloudTrail::Trail");
    if stack_has_trail {
        return Ok(TrailDecision::KeepStackTrail);
    }
    let out = session.call(
        session
            .cloudtrail
            .describe_trails()
            .include_shadow_trails(true)
            .send()
            .await,
        "cloudtrail:DescribeTrails",
        &format!(
            "the trails of account {} in {}",
            session.account, session.region
        ),
    )?;
    let trails = out
        .trail_list()
        .iter()
        .filter_map(|t| t.name().or(t.trail_arn()).map(str::to_string))
        .collect();
    Ok(TrailDecision::auto(false, trails))
}

pub(super) fn finish(report: &ExtendReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    }
    Ok(())
}

pub(super) fn save(session: &AwsSession, info: &StackInfo) -> anyhow::Result<Option<PathBuf>> {
    let path = outputs_path(&session.account, &session.region)?;
    save_outputs(
        &path,
        &SavedOutputs {
            stack: &session.stack,
            account: &session.account,
            region: &session.region,
            stack_status: info.status.as_str(),
            outputs: &info.outputs,
        },
    )?;
    Ok(Some(path))
}

pub(super) fn is_failure(status: &StackStatus) -> bool {
    let s = status.as_str();
    s.ends_with("_FAILED") || s.contains("ROLLBACK")
}

/// Polls the stack until it leaves `*_IN_PROGRESS`, showing its events as they come.
pub(super) async fn watch_stack(
    session: &AwsSession,
    total: usize,
    since: aws_sdk_cloudformation::primitives::DateTime,
) -> anyhow::Result<StackInfo> {
    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(total as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed}] {bar:30} {pos}/{len} {msg}",
        ) {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(200));
        Some(bar)
    } else {
        None
    };
    let mut seen = HashSet::new();
    let mut done = BTreeSet::new();
    let started = Instant::now();
    let mut polls = 0u32;
    let info = loop {
        for event in new_events(session, since, &mut seen).await? {
            let line = format!(
                "  {:<20} {:<28} {}{}",
                event.status,
                event.logical_id,
                event.resource_type,
                event
                    .reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            );
            match &bar {
                Some(bar) => {
                    bar.println(line);
                    if event.status.ends_with("_COMPLETE")
                        && event.logical_id != session.stack
                        && done.insert(event.logical_id.clone())
                    {
                        bar.inc(1);
                    }
                    bar.set_message(event.logical_id.clone());
                }
                None => eprintln!("{line}"),
            }
        }
        let info = session
            .describe_stack()
            .await?
            .context("the stack disappeared while it was being deployed")?;
        if info.status == StackStatus::ReviewInProgress
            && started.elapsed() > Duration::from_secs(120)
        {
            bail!(
                "{} is still REVIEW_IN_PROGRESS two minutes after the change set was executed; look at it in the CloudFormation console",
                session.stack_label()
            );
        }
        if !info.status.as_str().ends_with("_IN_PROGRESS") {
            break info;
        }
        if started.elapsed() > STACK_WAIT {
            bail!(
                "{} is still {} after an hour; it continues in AWS (`escher-provision status --cloud aws`)",
                session.stack_label(),
                info.status.as_str()
            );
        }
        polls += 1;
        let pause = if polls < 10 { 1 } else { 3 };
        tokio::time::sleep(Duration::from_secs(pause)).await;
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(info)
}

pub(super) struct Event {
    logical_id: String,
    resource_type: String,
    status: String,
    reason: Option<String>,
}

/// Events newer than `since` not yet shown, oldest first.
pub(super) async fn new_events(
    session: &AwsSession,
    since: aws_sdk_cloudformation::primitives::DateTime,
    seen: &mut HashSet<String>,
) -> anyhow::Result<Vec<Event>> {
    let out = session.call(
        session
            .cfn
            .describe_stack_events()
            .stack_name(&session.stack)
            .send()
            .await,
        "cloudformation:DescribeStackEvents",
        &session.stack_label(),
    )?;
    let mut events = Vec::new();
    // The first page is newest first; a deploy shows its events as they happen.
    for e in out.stack_events() {
        let fresh = e.timestamp().is_some_and(|t| t.secs() >= since.secs() - 1);
        let id = e.event_id().unwrap_or_default().to_string();
        if !fresh || !seen.insert(id) {
            continue;
        }
        events.push(Event {
            logical_id: e.logical_resource_id().unwrap_or("?").to_string(),
            resource_type: e.resource_type().unwrap_or("?").to_string(),
            status: e
                .resource_status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            reason: e.resource_status_reason().map(str::to_string),
        });
    }
    events.reverse();
    Ok(events)
}

/// The failed resources and their reasons, as lines to append to an error.
pub(super) async fn failure_events(
    session: &AwsSession,
    since: aws_sdk_cloudformation::primitives::DateTime,
) -> anyhow::Result<String> {
    let mut seen = HashSet::new();
    let failed: Vec<String> = new_events(session, since, &mut seen)
        .await?
        .into_iter()
        .filter(|e| e.status.ends_with("_FAILED") && e.logical_id != session.stack)
        .filter(|e| {
            // Resources cancelled because another failed are noise.
            !e.reason
                .as_deref()
                .is_some_and(|r| r.contains("cancelled") || r.contains("canceled"))
        })
        .map(|e| {
            format!(
                "\n  {} ({}) {}: {}",
                e.logical_id,
                e.resource_type,
                e.status,
                e.reason.unwrap_or_else(|| "no reason given".into())
            )
        })
        .collect();
    if failed.is_empty() {
        Ok(String::new())
    } else {
        Ok(format!("\nfailed resources:{}", failed.join("")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_trail_auto_keeps_the_stacks_trail_and_adds_none_beside_another() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let keep = TrailDecision::auto(true, names(&["org-trail"]));
        assert_eq!(keep, TrailDecision::KeepStackTrail);
        assert!(keep.creates_trail(), "the stack's trail is not taken away");
        let none = TrailDecision::auto(false, vec![]);
        assert!(none.creates_trail());
        let other = TrailDecision::auto(false, names(&["org-trail"]));
        assert!(!other.creates_trail());
        assert!(other.explain().contains("org-trail"), "{}", other.explain());
        assert!(TrailDecision::Always.creates_trail() && !TrailDecision::Never.creates_trail());
    }
}
