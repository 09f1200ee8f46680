//! `escher-provision incidents`: the incident memory the functions keep in the state store.
//! `search` reads it as people ask ("what happened to this bucket", "what did this principal
//! do"); `rebuild` makes it again from the audit trail, which stays the record.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Subcommand};
use escher_core::incidents::{Incident, IncidentMemory};
use escher_core::pipeline::audit::AuditLog;
use serde::Serialize;

use crate::output::{default_store, run_async, write_json, StateArg};

#[derive(Debug, Subcommand)]
pub enum IncidentsCommand {
    /// Search the events the functions handled and what became of them, newest first.
    ///
    /// QUERY is words matched against resource names and ids, principals, event types,
    /// outcomes and summaries (all words must match), or `field:value` for event_type,
    /// outcome and principal; e.g. `incidents search marketing-assets`,
    /// `incidents search 'event_type:bucket_public' --since 7d`; put a value with colons (an
    /// ARN) in double quotes. No QUERY lists everything.
    ///
    /// Exit status: 0 searched (also when nothing matched), 2 the store is unreadable or
    /// the query is not understood.
    Search(SearchArgs),
    /// Build the incident memory again from the audit trail (every handled event, dry runs
    /// and duplicate deliveries left out) and make it the current one. Use it after
    /// restoring a state store, or when a search says the memory is damaged.
    ///
    /// Exit status: 0 rebuilt, 2 a store could not be read or written.
    Rebuild(RebuildArgs),
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Words to look for; nothing lists every incident.
    query: Option<String>,
    /// Only incidents handled since then: a duration back from now (90m, 12h, 30d) or a
    /// date (YYYY-MM-DD, UTC) or time (RFC 3339).
    #[arg(long, value_parser = parse_since, value_name = "WHEN")]
    since: Option<DateTime<Utc>>,
    /// At most this many incidents.
    #[arg(long, default_value = "50")]
    limit: usize,
    #[command(flatten)]
    state: StateArg,
    /// Print the incidents as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct RebuildArgs {
    #[command(flatten)]
    state: StateArg,
    /// The audit store to rebuild from. Default: fs://<Escher folder>/audit.
    #[arg(long, env = "ESCHER_AUDIT_URI", value_name = "URI")]
    audit: Option<String>,
    /// Print what was rebuilt as JSON.
    #[arg(long)]
    json: bool,
}

fn parse_since(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(day) = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d") {
        return Ok(day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(text.trim()) {
        return Ok(at.with_timezone(&Utc));
    }
    let back = crate::approvals::parse_duration(text)
        .map_err(|e| format!("{e}, a date (YYYY-MM-DD) or a time (RFC 3339)"))?;
    Utc::now().checked_sub_signed(back).ok_or_else(|| {
        format!("`{text}` reaches back before any date a clock can count; write e.g. 30d")
    })
}

pub fn run(cmd: IncidentsCommand) -> ExitCode {
    run_async(async {
        match cmd {
            IncidentsCommand::Search(args) => search(args).await,
            IncidentsCommand::Rebuild(args) => rebuild(args).await,
        }
        .map(|()| ExitCode::SUCCESS)
    })
}

fn memory(state: StateArg) -> anyhow::Result<(String, IncidentMemory)> {
    let uri = state.uri()?;
    let operator = escher_core::store::open(&uri)
        .with_context(|| format!("cannot open the state store {uri}"))?;
    Ok((uri, IncidentMemory::new(operator)))
}

async fn search(args: SearchArgs) -> anyhow::Result<()> {
    let (uri, memory) = memory(args.state)?;
    let view = memory
        .view()
        .await
        .with_context(|| format!("cannot read the incident memory in {uri}"))?;
    let query = args.query.unwrap_or_default();
    let found = view.search(&query, args.since, args.limit)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        write_json(&mut out, &found, true)?;
    } else {
        tell(&mut out, &uri, &query, view.len(), &found)?;
    }
    Ok(())
}

fn tell(
    out: &mut impl Write,
    uri: &str,
    query: &str,
    total: u64,
    found: &[Incident],
) -> anyhow::Result<()> {
    let matching = if query.is_empty() {
        String::new()
    } else {
        format!(" matching \"{query}\"")
    };
    if found.is_empty() {
        writeln!(
            out,
            "no incidents{matching} in {uri} ({total} in the memory)"
        )?;
        return Ok(());
    }
    let noun = if found.len() == 1 {
        "incident"
    } else {
        "incidents"
    };
    writeln!(
        out,
        "{} {noun}{matching} in {uri}, newest first ({total} in the memory):",
        found.len()
    )?;
    for i in found {
        writeln!(
            out,
            "  {}  {} {} {} ({} {})",
            i.handled_at.format("%Y-%m-%d %H:%M:%SZ"),
            i.severity,
            i.event_type,
            i.resource_name,
            i.cloud,
            i.account_id
        )?;
        writeln!(out, "      {}: {}", i.outcome, i.summary)?;
        if let Some(p) = &i.principal {
            writeln!(out, "      by {p}")?;
        }
        writeln!(out, "      audit: {}", i.audit_path)?;
    }
    Ok(())
}

#[derive(Debug, Serialize)]
struct Rebuilt {
    state: String,
    audit: String,
    snapshot: u64,
    incidents: u64,
    pending_folded: usize,
}

async fn rebuild(args: RebuildArgs) -> anyhow::Result<()> {
    let (uri, memory) = memory(args.state)?;
    let audit_uri = args.audit.map_or_else(|| default_store("audit"), Ok)?;
    let audit = AuditLog::new(
        escher_core::store::open(&audit_uri)
            .with_context(|| format!("cannot open the audit store {audit_uri}"))?,
        audit_uri.clone(),
    );
    eprintln!("rebuilding the incident memory in {uri} from {audit_uri} …");
    let done = memory
        .rebuild(&audit)
        .await
        .with_context(|| format!("cannot rebuild the incident memory in {uri}"))?;
    let rebuilt = Rebuilt {
        state: uri,
        audit: audit_uri,
        snapshot: done.snapshot,
        incidents: done.incidents,
        pending_folded: done.folded,
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        write_json(&mut out, &rebuilt, true)?;
    } else {
        writeln!(
            out,
            "rebuilt: {} incidents from the audit trail, now snapshot {} of {}",
            rebuilt.incidents, rebuilt.snapshot, rebuilt.state
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// `--since` further back than a clock counts is an error naming the value, not a panic.
    #[test]
    fn a_since_before_any_date_is_refused() {
        let err = super::parse_since("100000000d").unwrap_err();
        assert!(err.contains("100000000d"), "{err}");
        assert!(super::parse_since("7d").is_ok());
    }
}
