//! `escher-provision inbox`: what the functions told the laptop while it was closed. MEDIUM
//! notices (and any notice a channel failed to deliver) are kept under `inbox/` in the state
//! store; this reads the ones this laptop has not shown yet, newest first and grouped by
//! resource, with what was done and the command to act. Reading marks them read for this
//! laptop only (a list kept in the Escher folder); nothing in the store is changed or deleted.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use escher_core::pipeline::notify::Notification;
use serde::{Deserialize, Serialize};

use crate::output::{escher_dir, run_async, write_json, StateArg};

#[derive(Debug, Args)]
pub struct InboxArgs {
    #[command(flatten)]
    state: StateArg,
    /// Show the notices already read on this laptop too.
    #[arg(long)]
    all: bool,
    /// Print the notices as JSON (each with its key in the store and whether it was read).
    #[arg(long)]
    json: bool,
    /// Keep following the inbox: print new notices as they arrive, until interrupted.
    #[arg(long)]
    watch: bool,
    /// With --watch: how often to look, in seconds.
    #[arg(long, value_name = "SECONDS", default_value = "30", requires = "watch")]
    interval: u64,
}

/// One notice as `--json` prints it.
#[derive(Debug, Serialize)]
struct Entry {
    key: String,
    read: bool,
    notice: Notification,
}

/// What this laptop has read of one store.
#[derive(Debug, Default, Serialize, Deserialize)]
struct ReadMarks {
    store: String,
    read: BTreeSet<String>,
}

pub fn run(args: InboxArgs) -> ExitCode {
    run_async(async { inbox(args).await.map(|()| ExitCode::SUCCESS) })
}

async fn inbox(args: InboxArgs) -> anyhow::Result<()> {
    let uri = args.state.uri()?;
    let operator = escher_core::store::open(&uri)
        .with_context(|| format!("cannot open the state store {uri}"))?;
    let marks_path = marks_path(&uri)?;
    let mut marks = read_marks(&marks_path, &uri)?;
    let mut first = true;
    loop {
        let entries = unread(&operator, &uri, &marks, args.all && first).await?;
        let mut out = std::io::stdout().lock();
        if args.json {
            if first || !entries.is_empty() {
                write_json(&mut out, &entries, !args.watch)?;
            }
        } else if first || !entries.is_empty() {
            print_grouped(&mut out, &entries, &uri, args.all && first)?;
        }
        out.flush()?;
        drop(out);
        marks.read.extend(entries.into_iter().map(|e| e.key));
        write_marks(&marks_path, &marks)?;
        if !args.watch {
            return Ok(());
        }
        first = false;
        tokio::time::sleep(Duration::from_secs(args.interval.max(1))).await;
    }
}

/// Where this laptop keeps what it read of `uri`: one file per store.
fn marks_path(uri: &str) -> anyhow::Result<PathBuf> {
    let hash = escher_core::ids::sha256_hex(uri.as_bytes());
    Ok(escher_dir()
        .context("there is nowhere to remember what was read")?
        .join("inbox-read")
        .join(format!("{}.json", &hash[..16])))
}

fn read_marks(path: &PathBuf, uri: &str) -> anyhow::Result<ReadMarks> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{} is not what this command writes; delete it to show every notice as new",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ReadMarks {
            store: uri.to_string(),
            read: BTreeSet::new(),
        }),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn write_marks(path: &PathBuf, marks: &ReadMarks) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let text = serde_json::to_vec_pretty(marks)?;
    // Written whole, then renamed: an interrupted write never loses what was read.
    let partial = path.with_extension("json.partial");
    std::fs::write(&partial, text)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    std::fs::rename(&partial, path).with_context(|| format!("cannot write {}", path.display()))
}

/// The inbox's notices this laptop has not read (all of them with `all`), newest first.
async fn unread(
    operator: &opendal::Operator,
    uri: &str,
    marks: &ReadMarks,
    all: bool,
) -> anyhow::Result<Vec<Entry>> {
    let listed = match operator.list_with("inbox/").recursive(true).await {
        Ok(listed) => listed,
        Err(e) if e.kind() == opendal::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot list inbox/ in {uri}")),
    };
    let mut entries = Vec::new();
    for entry in listed {
        let key = entry.path().to_string();
        if !key.ends_with(".json") {
            continue;
        }
        let read = marks.read.contains(&key);
        if read && !all {
            continue;
        }
        let bytes = escher_core::store::read_whole(operator, &key)
            .await
            .with_context(|| format!("cannot read {key} in {uri}"))?;
        match serde_json::from_slice::<Notification>(&bytes.to_vec()) {
            Ok(notice) => entries.push(Entry { key, read, notice }),
            Err(e) => eprintln!("warning: {key} in {uri} is not a notice ({e}); skipped"),
        }
    }
    entries.sort_by(|a, b| {
        b.notice
            .timestamp
            .cmp(&a.notice.timestamp)
            .then_with(|| a.key.cmp(&b.key))
    });
    Ok(entries)
}

/// Newest first, grouped by resource (a resource's place is its newest notice).
fn print_grouped(
    out: &mut impl Write,
    entries: &[Entry],
    uri: &str,
    all: bool,
) -> anyhow::Result<()> {
    if entries.is_empty() {
        writeln!(out, "no new notices in {uri}")?;
        return Ok(());
    }
    let mut order: Vec<&str> = Vec::new();
    let mut by_resource: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
    for entry in entries {
        let resource = entry.notice.resource_id.as_str();
        if !by_resource.contains_key(resource) {
            order.push(resource);
        }
        by_resource.entry(resource).or_default().push(entry);
    }
    let new = entries.iter().filter(|e| !e.read).count();
    writeln!(
        out,
        "{} notice{} ({new} new) on {} resource{} in {uri}",
        entries.len(),
        if entries.len() == 1 { "" } else { "s" },
        order.len(),
        if order.len() == 1 { "" } else { "s" },
    )?;
    for resource in order {
        let notices = &by_resource[resource];
        let first = &notices[0].notice;
        writeln!(out, "\n{resource}  ({} {})", first.account_id, first.region)?;
        for entry in notices {
            let n = &entry.notice;
            writeln!(
                out,
                "  {}  {:<8} {:<14} {}{}",
                n.timestamp.format("%Y-%m-%d %H:%M UTC"),
                n.severity.as_str().to_uppercase(),
                n.outcome.as_str(),
                n.title,
                if all && entry.read { "  (read)" } else { "" }
            )?;
            writeln!(out, "      {}", n.done)?;
            for step in &n.next {
                writeln!(out, "      → {step}")?;
            }
        }
    }
    Ok(())
}
