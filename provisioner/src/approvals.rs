//! `escher-provision approvals …`: the pre-approvals a handler consults before fixing
//! anything, kept as a tantivy index on object storage (`escher_core::approvals`).
//!
//! Every change names who made it (`--by`, default `$USER`) and lands in the store's
//! append-only change log. `check` answers "would this alert be fixed automatically?" with
//! the same decision and explanation the handlers use, and an exit status scripts can test.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use escher_core::approvals::{
    Action, Approval, ApprovalStore, Change, Conditions, Decision, NothingUsedYet,
    RemediationPolicy, Scope, TagSelector, WizardDefaults,
};
use escher_core::{CloudProvider, Environment, Normalized, Normalizer, Severity, UnifiedEvent};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::output::{default_store, read_input, run_async, table, write_json};

const EXIT_NOT_APPROVED: u8 = 1;

#[derive(Debug, Args)]
pub struct ApprovalsArgs {
    /// Where the approvals index lives: fs:///path, s3://bucket/prefix, azblob://container/prefix,
    /// gcs://bucket/prefix (see README "Stores"). Default: fs://<Escher folder>/approvals (see --escher-dir).
    #[arg(long, global = true, env = "ESCHER_APPROVALS_URI", value_name = "URI")]
    store: Option<String>,

    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: ApprovalsCommand,
}

#[derive(Debug, Subcommand)]
enum ApprovalsCommand {
    /// Write the setup wizard's approvals (policies/approvals.default.yaml) into an empty
    /// store. Asks about each one on a terminal; --yes keeps the defaults, --enable and
    /// --disable change them without asking.
    Init(InitArgs),
    /// Approve one kind of fix in advance, narrowed by scope and conditions.
    ///
    /// Every scope flag may be repeated; an absent one means "any". Example:
    /// approvals add --action stop_idle_instance --account 123456789012 --tag environment=dev
    /// --min-idle-hours 4 --reason "dev boxes left on overnight"
    Add(Box<AddArgs>),
    /// List every approval with its status (active, expired, revoked).
    List,
    /// Show one approval and its history from the change log.
    Show {
        /// The approval id (see `approvals list`).
        id: String,
    },
    /// Revoke an approval. It stays in the index, marked revoked, so its history is kept.
    Revoke {
        id: String,
        /// Why (recorded with the revocation).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        by: ByArg,
    },
    /// Would this alert be fixed automatically? Prints the decision and why.
    ///
    /// The event may be a raw cloud payload or a UnifiedEvent. Without --action, every
    /// action policies/remediations.yaml maps the event type to is checked. Exit status: 0
    /// approved, 1 not approved (or nothing to fix), 2 error. Blast-radius counters live in
    /// the handlers' state store and are not consulted here.
    Check {
        /// The event file; `-` reads standard input.
        #[arg(long, value_name = "FILE|-")]
        event: PathBuf,
        /// Check only this action.
        #[arg(long, value_parser = parse_action)]
        action: Option<Action>,
    },
    /// The change log: who changed what, when.
    Log,
}

#[derive(Debug, Args)]
struct ByArg {
    /// Who makes the change (recorded in the change log). Default: $USER.
    #[arg(long, env = "USER", value_name = "NAME")]
    by: Option<String>,
}

impl ByArg {
    fn name(&self) -> anyhow::Result<String> {
        match self.by.as_deref().map(str::trim) {
            Some(by) if !by.is_empty() => Ok(by.to_string()),
            _ => bail!("who makes this change? pass --by NAME (USER is not set)"),
        }
    }
}

#[derive(Debug, Args)]
struct InitArgs {
    /// Keep the defaults without asking.
    #[arg(long, short)]
    yes: bool,
    /// Turn this action on (repeatable); implies no questions.
    #[arg(long, value_parser = parse_action, value_name = "ACTION")]
    enable: Vec<Action>,
    /// Turn this action off (repeatable); implies no questions.
    #[arg(long, value_parser = parse_action, value_name = "ACTION")]
    disable: Vec<Action>,
    #[command(flatten)]
    by: ByArg,
}

#[derive(Debug, Args)]
struct AddArgs {
    /// Read the whole approval from a JSON file (schemas/approval.schema.json) instead of
    /// flags; `approved_by`/`approved_at` are still set from --by and the clock when absent.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["action", "reason"])]
    file: Option<PathBuf>,
    /// The fix being approved.
    #[arg(long, value_parser = parse_action, required_unless_present = "file")]
    action: Option<Action>,
    /// Id for the approval (default: generated).
    #[arg(long)]
    id: Option<String>,
    /// Why you approve it (shown in every decision and audit record).
    #[arg(long, required_unless_present = "file")]
    reason: Option<String>,
    /// Only this cloud: aws, azure or gcp.
    #[arg(long = "cloud", value_parser = wire::<CloudProvider>)]
    clouds: Vec<CloudProvider>,
    /// Only this AWS account / Azure subscription / GCP project.
    #[arg(long = "account")]
    accounts: Vec<String>,
    /// Only this region.
    #[arg(long = "region")]
    regions: Vec<String>,
    /// Only this resource type, e.g. s3_bucket, ec2_instance.
    #[arg(long = "resource-type")]
    resource_types: Vec<String>,
    /// Only resources whose id or name matches this glob (`*`, `?`).
    #[arg(long = "resource", value_name = "GLOB")]
    resources: Vec<String>,
    /// Only resources with this tag: key=value, or key to require its presence.
    #[arg(long = "tag", value_name = "KEY[=VALUE]")]
    tags: Vec<TagSelector>,
    /// Only resources in this environment: production, staging or dev.
    #[arg(long = "environment", value_parser = wire::<Environment>)]
    environments: Vec<Environment>,
    /// stop_idle_instance: hours of idleness required (default 2).
    #[arg(long)]
    min_idle_hours: Option<f64>,
    /// Blast radius: at most this many resources fixed per UTC day under this approval.
    #[arg(long)]
    max_resources_per_day: Option<u32>,
    /// Only events at least this severe: INFO, MEDIUM, HIGH, CRITICAL.
    #[arg(long, value_parser = wire::<Severity>)]
    min_severity: Option<Severity>,
    /// encrypt_volume: also turn on the account's default EBS encryption in the region.
    #[arg(long)]
    enable_default_encryption: bool,
    /// revoke_open_ingress: a network (CIDR) that keeps access, e.g. the company's
    /// 203.0.113.0/24 (repeatable): a rule open to the world is narrowed to these networks
    /// instead of removed.
    #[arg(long = "keep-network", value_name = "CIDR")]
    keep_networks: Vec<String>,
    /// scale_up_capacity: the largest step, in percent of the current size (default 20).
    #[arg(long, value_name = "PERCENT", value_parser = clap::value_parser!(u32).range(1..=100))]
    max_step_percent: Option<u32>,
    /// scale_up_capacity: never grow a disk or a database's storage past this many GiB
    /// (default 1024).
    #[arg(long, value_name = "GIB")]
    max_storage_gib: Option<u64>,
    /// scale_up_capacity: never give a group more instances than this (it never passes the
    /// group's own maximum either).
    #[arg(long, value_name = "N")]
    max_instances: Option<u32>,
    /// scale_up_capacity: the most one step may add to the monthly bill, in US dollars at
    /// list prices (default 100).
    #[arg(long, value_name = "USD", value_parser = non_negative_usd)]
    max_added_monthly_usd: Option<f64>,
    /// restart_service: at most this many restarts of one resource in an hour (default 2).
    #[arg(long, value_name = "N")]
    max_restarts_per_hour: Option<u32>,
    /// rollback_deployment: only roll back a deployment made at most this many hours ago
    /// (default 24).
    #[arg(long, value_name = "HOURS")]
    rollback_within_hours: Option<f64>,
    /// When the approval stops matching (RFC 3339, e.g. 2026-12-31T23:59:59Z).
    #[arg(long, conflicts_with = "expires_in")]
    expires_at: Option<DateTime<Utc>>,
    /// How long the approval holds from now: e.g. 12h, 30d.
    #[arg(long, value_parser = parse_duration)]
    expires_in: Option<chrono::Duration>,
    #[command(flatten)]
    by: ByArg,
}

/// Parses our wire spelling of an enum (`aws`, `production`, `HIGH`) through serde, so the
/// CLI accepts exactly what files contain.
fn wire<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(text.to_string())).map_err(|e| e.to_string())
}

fn non_negative_usd(text: &str) -> Result<f64, String> {
    match text.trim().trim_start_matches('$').parse::<f64>() {
        Ok(usd) if usd.is_finite() && usd >= 0.0 => Ok(usd),
        _ => Err(format!(
            "`{text}` is not an amount in US dollars; write e.g. 50 or 250.5"
        )),
    }
}

fn parse_action(text: &str) -> Result<Action, String> {
    text.parse()
}

pub(crate) fn parse_duration(text: &str) -> Result<chrono::Duration, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let n: i64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration; write e.g. 90m, 12h or 30d"))?;
    let duration = match unit {
        "m" => chrono::Duration::try_minutes(n),
        "h" => chrono::Duration::try_hours(n),
        "d" => chrono::Duration::try_days(n),
        _ => return Err(format!("`{text}`: the unit must be m, h or d")),
    };
    duration.ok_or_else(|| format!("`{text}` is longer than a clock can count; write e.g. 30d"))
}

pub fn run(args: ApprovalsArgs) -> ExitCode {
    run_async(execute(args))
}

async fn execute(args: ApprovalsArgs) -> anyhow::Result<ExitCode> {
    let uri = match args.store {
        Some(uri) => uri,
        None => default_store("approvals")?,
    };
    let store = ApprovalStore::open(&uri)?;
    let json = args.json;
    match args.command {
        ApprovalsCommand::Init(init) => {
            let by = init.by.name()?;
            let approvals = wizard_choices(&init, &by)?;
            publish(&store, Change::Init { approvals }, &by, json).await
        }
        ApprovalsCommand::Add(add) => {
            let by = add.by.name()?;
            let approval = approval_from(&add, &by)?;
            publish(
                &store,
                Change::Add {
                    approval: Box::new(approval),
                },
                &by,
                json,
            )
            .await
        }
        ApprovalsCommand::Revoke { id, reason, by } => {
            let by = by.name()?;
            let change = Change::Revoke {
                id,
                reason,
                at: Utc::now(),
            };
            publish(&store, change, &by, json).await
        }
        ApprovalsCommand::List => list(&store, json).await,
        ApprovalsCommand::Show { id } => show(&store, &id, json).await,
        ApprovalsCommand::Check { event, action } => check(&store, &event, action, json).await,
        ApprovalsCommand::Log => log(&store, json).await,
    }
}

/// The wizard: defaults, flipped by --enable/--disable, or asked one by one on a terminal.
fn wizard_choices(init: &InitArgs, by: &str) -> anyhow::Result<Vec<Approval>> {
    let defaults = WizardDefaults::built_in();
    let ask = !init.yes && init.enable.is_empty() && init.disable.is_empty();
    if ask && !std::io::stdin().is_terminal() {
        bail!("init asks which fixes to approve, but standard input is not a terminal; pass --yes to keep the defaults, or --enable/--disable ACTION");
    }
    if let Some(both) = init.enable.iter().find(|a| init.disable.contains(a)) {
        bail!("{both} is both enabled and disabled; pick one");
    }
    let now = Utc::now();
    let mut chosen = Vec::new();
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    for choice in &defaults.choices {
        if ask {
            eprintln!("  today: {}", on_each_cloud(choice.action).join("; "));
        }
        let enabled = if init.enable.contains(&choice.action) {
            true
        } else if init.disable.contains(&choice.action) {
            false
        } else if ask {
            let hint = if choice.enabled { "[Y/n]" } else { "[y/N]" };
            eprint!("{} {hint} ", choice.question);
            std::io::stderr().flush().ok();
            let answer = lines
                .next()
                .transpose()
                .context("cannot read the answer")?
                .unwrap_or_default();
            match answer.trim().to_ascii_lowercase().as_str() {
                "" => choice.enabled,
                "y" | "yes" => true,
                "n" | "no" => false,
                other => bail!("answer y or n (got `{other}`); nothing was written"),
            }
        } else {
            choice.enabled
        };
        if enabled {
            chosen.push(choice.to_approval(by, now));
        }
    }
    if !ask {
        for approval in &chosen {
            eprintln!(
                "{}: {}",
                approval.action,
                on_each_cloud(approval.action).join("; ")
            );
        }
    }
    Ok(chosen)
}

/// What an approval of `action` does on each cloud today, from the clouds' own fix
/// registries (so it cannot promise a fix that is not there).
fn on_each_cloud(action: Action) -> Vec<String> {
    let said = |cloud: &str, pairs: &[(Action, &'static str)]| {
        let types: Vec<&str> = pairs
            .iter()
            .filter(|(a, _)| *a == action)
            .map(|(_, t)| *t)
            .collect();
        if types.is_empty() {
            format!("{cloud} notifies only (no automatic fix there yet)")
        } else {
            format!("{cloud} fixes {}", types.join(", "))
        }
    };
    vec![
        said("AWS", &escher_aws::fix_pairs()),
        said("Azure", &escher_azure::fix_pairs()),
        said("GCP", &[]),
    ]
}

fn approval_from(add: &AddArgs, by: &str) -> anyhow::Result<Approval> {
    let now = Utc::now();
    if let Some(path) = &add.file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        // approved_by / approved_at may be left out of a hand-written file.
        let mut value: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        if let Some(object) = value.as_object_mut() {
            object.entry("approved_by").or_insert_with(|| by.into());
            object
                .entry("approved_at")
                .or_insert_with(|| now.to_rfc3339().into());
            if !object.contains_key("id") {
                object.insert("id".into(), new_id(now).into());
            }
        }
        return serde_json::from_value(value).with_context(|| {
            format!(
                "{} is not a valid approval (see schemas/approval.schema.json)",
                path.display()
            )
        });
    }
    let (Some(action), Some(reason)) = (add.action, add.reason.clone()) else {
        bail!("--action and --reason are required without --file");
    };
    if add.enable_default_encryption && action != Action::EncryptVolume {
        bail!("--enable-default-encryption only applies to encrypt_volume");
    }
    if !add.keep_networks.is_empty() && action != Action::RevokeOpenIngress {
        bail!("--keep-network only applies to revoke_open_ingress");
    }
    let keep_networks = add
        .keep_networks
        .iter()
        .map(|n| escher_core::approvals::checked_network(n))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    if add.min_idle_hours.is_some() && action != Action::StopIdleInstance {
        bail!("--min-idle-hours only applies to stop_idle_instance");
    }
    if add
        .min_idle_hours
        .is_some_and(|h| !(h.is_finite() && h > 0.0))
    {
        bail!("--min-idle-hours must be a positive number of hours");
    }
    let expires_at = match (add.expires_at, add.expires_in) {
        (Some(at), _) => Some(at),
        (None, Some(d)) => Some(
            now.checked_add_signed(d)
                .context("--expires-in is longer than a clock can count; write e.g. 30d")?,
        ),
        (None, None) => None,
    };
    if expires_at.is_some_and(|at| at <= now) {
        bail!("the approval would already be expired");
    }
    let approval = Approval {
        id: add.id.clone().unwrap_or_else(|| new_id(now)),
        action,
        scope: Scope {
            clouds: add.clouds.clone(),
            account_ids: add.accounts.clone(),
            regions: add.regions.clone(),
            resource_types: add.resource_types.clone(),
            resources: add.resources.clone(),
            tags: add.tags.clone(),
            environments: add.environments.clone(),
        },
        conditions: Conditions {
            min_idle_hours: add.min_idle_hours,
            max_resources_per_day: add.max_resources_per_day,
            min_severity: add.min_severity,
            enable_default_encryption: add.enable_default_encryption.then_some(true),
            keep_networks,
            max_step_percent: add.max_step_percent,
            max_storage_gib: add.max_storage_gib,
            max_instances: add.max_instances,
            max_added_monthly_usd: add.max_added_monthly_usd,
            max_restarts_per_hour: add.max_restarts_per_hour,
            rollback_within_hours: add.rollback_within_hours,
        },
        approved_by: by.to_string(),
        approved_at: now,
        expires_at,
        reason,
        revoked_at: None,
        revoked_by: None,
        revoke_reason: None,
    };
    // Read back as the store will read it, so a value the file format refuses (hours past
    // a year) is refused here rather than published into an index nobody can then open.
    serde_json::to_value(&approval)
        .and_then(serde_json::from_value::<Approval>)
        .map_err(|e| anyhow::anyhow!("the approval cannot be stored: {e}"))
}

/// `apr-20261122-1a2b3c4d`: sortable by day, unique per call.
fn new_id(now: DateTime<Utc>) -> String {
    format!(
        "apr-{}-{}",
        now.format("%Y%m%d"),
        escher_core::ids::unique_token(4)
    )
}

async fn publish(
    store: &ApprovalStore,
    change: Change,
    by: &str,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let published = store.apply(&change, by).await?;
    let mut out = std::io::stdout().lock();
    if json {
        write_json(
            &mut out,
            &serde_json::json!({
                "store": store.location(),
                "generation": published.manifest.sequence,
                "approvals": published.manifest.approvals,
                "attempts": published.attempts,
                "change": change,
            }),
            true,
        )?;
    } else {
        let what = match &change {
            Change::Init { approvals } if approvals.is_empty() => {
                "Initialised with no approvals (nothing will be fixed automatically)".to_string()
            }
            Change::Init { approvals } => format!(
                "Initialised with {} approval(s): {}",
                approvals.len(),
                change.approval_ids().join(", ")
            ),
            Change::Add { approval } => {
                format!("Added approval {} ({})", approval.id, approval.action)
            }
            Change::Revoke { id, .. } => format!("Revoked approval {id} (kept in the history)"),
        };
        writeln!(
            out,
            "{what}.\nStore {}: generation {}, {} approval(s) in all; recorded in the change log as by {by}.",
            store.location(),
            published.manifest.sequence,
            published.manifest.approvals
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct Listed<'a> {
    status: String,
    #[serde(flatten)]
    approval: &'a Approval,
}

fn status(approval: &Approval, now: DateTime<Utc>) -> String {
    if let Some(at) = approval.revoked_at {
        return format!(
            "revoked {} by {}",
            at.format("%Y-%m-%d"),
            approval.revoked_by.as_deref().unwrap_or("?")
        );
    }
    match approval.expires_at {
        Some(at) if at <= now => format!("expired {}", at.format("%Y-%m-%d")),
        Some(at) => format!("active until {}", at.format("%Y-%m-%d %H:%M")),
        None => "active".into(),
    }
}

fn scope_summary(scope: &Scope) -> String {
    let mut parts = Vec::new();
    let mut add = |label: &str, values: Vec<String>| {
        if !values.is_empty() {
            parts.push(format!("{label}={}", values.join(",")));
        }
    };
    add(
        "cloud",
        scope.clouds.iter().map(ToString::to_string).collect(),
    );
    add("account", scope.account_ids.clone());
    add("region", scope.regions.clone());
    add("type", scope.resource_types.clone());
    add("resource", scope.resources.clone());
    add("tag", scope.tags.iter().map(ToString::to_string).collect());
    add(
        "env",
        scope.environments.iter().map(ToString::to_string).collect(),
    );
    if parts.is_empty() {
        "any".into()
    } else {
        parts.join(" ")
    }
}

fn conditions_summary(c: &Conditions, action: Action) -> String {
    let mut parts = Vec::new();
    if action == Action::StopIdleInstance {
        parts.push(format!("idle ≥ {}h", c.min_idle_hours()));
    }
    if action == Action::ScaleUpCapacity {
        let limits = c.growth_limits();
        parts.push(format!(
            "step ≤ {} %, ≤ {} GiB{}, ≤ ${}/month more",
            limits.max_step_percent,
            limits.max_storage_gib,
            limits
                .max_instances
                .map(|n| format!(", ≤ {n} instances"))
                .unwrap_or_default(),
            limits.max_added_monthly_usd
        ));
    }
    if action == Action::RollbackDeployment {
        parts.push(format!(
            "deployed ≤ {} ago",
            escher_core::words::hours(c.rollback_within_hours())
        ));
    }
    if action == Action::RestartService {
        parts.push(format!("≤ {} restarts/hour", c.max_restarts_per_hour()));
    }
    if let Some(max) = c.max_resources_per_day {
        parts.push(format!("≤ {max}/day"));
    }
    if let Some(min) = c.min_severity {
        parts.push(format!("severity ≥ {min}"));
    }
    parts.join(", ")
}

async fn load(
    store: &ApprovalStore,
) -> anyhow::Result<Option<escher_core::approvals::ApprovalIndex>> {
    Ok(store.load().await?.map(|(_, index)| index))
}

async fn list(store: &ApprovalStore, json: bool) -> anyhow::Result<ExitCode> {
    let index = load(store).await?;
    let approvals = index.as_ref().map(|i| i.approvals()).unwrap_or_default();
    let now = Utc::now();
    let mut out = std::io::stdout().lock();
    if json {
        let listed: Vec<Listed> = approvals
            .iter()
            .map(|a| Listed {
                status: status(a, now),
                approval: a,
            })
            .collect();
        write_json(&mut out, &listed, true)?;
        return Ok(ExitCode::SUCCESS);
    }
    if index.is_none() {
        writeln!(
            out,
            "No approvals in {} yet: run `escher-provision approvals init`.",
            store.location()
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = table(vec![
        "ID",
        "ACTION",
        "SCOPE",
        "CONDITIONS",
        "STATUS",
        "APPROVED BY",
        "APPROVED AT",
    ]);
    for a in approvals {
        t.add_row(vec![
            a.id.clone(),
            a.action.to_string(),
            scope_summary(&a.scope),
            conditions_summary(&a.conditions, a.action),
            status(a, now),
            a.approved_by.clone(),
            a.approved_at.format("%Y-%m-%d %H:%M").to_string(),
        ]);
    }
    writeln!(out, "{t}")?;
    let active = approvals
        .iter()
        .filter(|a| status(a, now).starts_with("active"))
        .count();
    writeln!(
        out,
        "{} approval(s), {active} active, in {}",
        approvals.len(),
        store.location()
    )?;
    Ok(ExitCode::SUCCESS)
}

async fn show(store: &ApprovalStore, id: &str, json: bool) -> anyhow::Result<ExitCode> {
    let index = load(store).await?;
    let Some(approval) = index.as_ref().and_then(|i| i.get(id)) else {
        bail!(
            "no approval with id {id} in {}; see `approvals list`",
            store.location()
        );
    };
    let history: Vec<_> = store
        .changes()
        .await?
        .into_iter()
        .filter(|r| r.change.approval_ids().contains(&id))
        .collect();
    let mut out = std::io::stdout().lock();
    if json {
        write_json(
            &mut out,
            &serde_json::json!({
                "status": status(approval, Utc::now()),
                "approval": approval,
                "history": history,
            }),
            true,
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(out, "{} — {}", approval.id, status(approval, Utc::now()))?;
    writeln!(out, "  action:      {}", approval.action)?;
    writeln!(out, "  scope:       {}", scope_summary(&approval.scope))?;
    let conditions = conditions_summary(&approval.conditions, approval.action);
    if !conditions.is_empty() {
        writeln!(out, "  conditions:  {conditions}")?;
    }
    writeln!(
        out,
        "  approved:    {} by {}",
        approval.approved_at, approval.approved_by
    )?;
    writeln!(out, "  reason:      {}", approval.reason)?;
    if let Some(at) = approval.expires_at {
        writeln!(out, "  expires:     {at}")?;
    }
    if let Some(reason) = &approval.revoke_reason {
        writeln!(out, "  revoked:     {reason}")?;
    }
    writeln!(out, "  history:")?;
    for r in history {
        let op = match r.change {
            Change::Init { .. } => "created by init",
            Change::Add { .. } => "added",
            Change::Revoke { .. } => "revoked",
        };
        writeln!(
            out,
            "    #{} {} {op} by {}",
            r.sequence,
            r.at.format("%Y-%m-%d %H:%M:%S"),
            r.by
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn log(store: &ApprovalStore, json: bool) -> anyhow::Result<ExitCode> {
    let records = store.changes().await?;
    let mut out = std::io::stdout().lock();
    if json {
        write_json(&mut out, &records, true)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = table(vec!["#", "AT", "BY", "CHANGE", "APPROVALS"]);
    for r in &records {
        let op = match &r.change {
            Change::Init { .. } => "init".to_string(),
            Change::Add { .. } => "add".to_string(),
            Change::Revoke { reason, .. } => format!("revoke: {reason}"),
        };
        t.add_row(vec![
            r.sequence.to_string(),
            r.at.format("%Y-%m-%d %H:%M:%S").to_string(),
            r.by.clone(),
            op,
            r.change.approval_ids().join(", "),
        ]);
    }
    writeln!(out, "{t}")?;
    Ok(ExitCode::SUCCESS)
}

/// A UnifiedEvent as written by `events normalize`, or a raw cloud payload to normalize.
fn events_from(bytes: &[u8], label: &str) -> anyhow::Result<Vec<UnifiedEvent>> {
    if let Ok(event) = serde_json::from_slice::<UnifiedEvent>(bytes) {
        return Ok(vec![event]);
    }
    match Normalizer::default().normalize(bytes) {
        Ok(Normalized::Events(events)) if !events.is_empty() => Ok(events),
        Ok(Normalized::Events(_)) => bail!("{label} describes nothing to act on"),
        Ok(Normalized::Handshake(h)) => bail!(
            "{label} is a subscription handshake ({}), not an alert",
            h.kind
        ),
        Err(e) => bail!("{label}: {e}"),
    }
}

async fn check(
    store: &ApprovalStore,
    event: &std::path::Path,
    action: Option<Action>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let (label, bytes) = read_input(Some(event))?;
    let events = events_from(&bytes, &label)?;
    let index = match load(store).await? {
        Some(index) => index,
        None => escher_core::approvals::ApprovalIndex::build(Vec::new())?,
    };
    let now = Utc::now();
    let mut all_approved = true;
    let mut results = Vec::new();
    for event in &events {
        let actions: Vec<Action> = match action {
            Some(a) => vec![a],
            None => RemediationPolicy::built_in()
                .actions_for(event.event_type)
                .to_vec(),
        };
        if actions.is_empty() {
            all_approved = false;
        }
        let mut decisions = Vec::new();
        for action in actions {
            let decision = index.decide(event, action, now, &NothingUsedYet)?;
            all_approved &= decision.is_approved();
            decisions.push(decision);
        }
        results.push((event, decisions));
    }
    let mut out = std::io::stdout().lock();
    if json {
        let value: Vec<serde_json::Value> = results
            .iter()
            .map(|(e, d)| serde_json::json!({"event_id": e.event_id, "event_type": e.event_type, "resource": e.resource.id, "decisions": d}))
            .collect();
        write_json(&mut out, &value, true)?;
    } else {
        for (event, decisions) in &results {
            writeln!(
                out,
                "{} {} on {} ({}):",
                event.event_type, event.severity, event.resource.name, event.resource.id
            )?;
            if decisions.is_empty() {
                writeln!(
                    out,
                    "  no fix is mapped to {} (policies/remediations.yaml): notify only",
                    event.event_type
                )?;
            }
            for d in decisions {
                let ex = d.explanation();
                match d {
                    Decision::Approved { approval_id, .. } => {
                        writeln!(out, "  {}: APPROVED by {approval_id}", ex.action)?
                    }
                    Decision::NotApproved { .. } => writeln!(out, "  {}: NOT APPROVED", ex.action)?,
                }
                for line in ex.to_string().lines() {
                    writeln!(out, "    {line}")?;
                }
            }
        }
    }
    Ok(if all_approved {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_NOT_APPROVED)
    })
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    /// `--expires-in` (and `incidents --since`) with more days than a clock counts is an
    /// error naming the value, not a panic.
    #[test]
    fn durations_past_what_a_clock_counts_are_refused() {
        assert_eq!(parse_duration("30d"), Ok(chrono::Duration::days(30)));
        assert_eq!(parse_duration("90m"), Ok(chrono::Duration::minutes(90)));
        for text in [
            "99999999999999d",
            "9223372036854775807h",
            "-9223372036854775807m",
        ] {
            let err = parse_duration(text).unwrap_err();
            assert!(err.contains(text), "{err}");
        }
    }
}
