//! `escher-provision audit verify`: re-hashes every audit record and compares it with the
//! day's listing, so a record altered, deleted or slipped in after the fact is found.

use std::io::Write;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use escher_core::pipeline::audit::{AuditLog, VerifyReport};
use serde::Serialize;

use crate::output::{default_store, run_async, write_json};

const EXIT_CLEAN: u8 = 0;
const EXIT_PROBLEMS: u8 = 1;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Re-hash every audit record (of one day, or of every day) and check it against the
    /// day's listing.
    ///
    /// Exit status: 0 when every record is intact, 1 when a record was altered, is missing,
    /// is not listed or is not a record, 2 when the store could not be read.
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The audit store URI. Default: fs://<Escher folder>/audit (see --escher-dir).
    #[arg(long, env = "ESCHER_AUDIT_URI", value_name = "URI")]
    store: Option<String>,

    /// Only this day (UTC), as YYYY-MM-DD.
    #[arg(long, value_name = "YYYY-MM-DD")]
    day: Option<chrono::NaiveDate>,

    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct DayReport {
    day: chrono::NaiveDate,
    #[serde(flatten)]
    report: VerifyReport,
}

pub fn run(cmd: AuditCommand) -> ExitCode {
    let AuditCommand::Verify(args) = cmd;
    run_async(async { verify(args).await.map(ExitCode::from) })
}

async fn verify(args: VerifyArgs) -> anyhow::Result<u8> {
    let uri = args.store.map_or_else(|| default_store("audit"), Ok)?;
    let log = AuditLog::new(escher_core::store::open(&uri)?, uri.clone());
    let days = match args.day {
        Some(day) => vec![day],
        None => log.days().await?,
    };
    let mut reports = Vec::new();
    for day in days {
        reports.push(DayReport {
            day,
            report: log.verify_day(day).await?,
        });
    }
    let clean = reports.iter().all(|r| r.report.is_clean());
    let mut out = std::io::stdout().lock();
    if args.json {
        write_json(&mut out, &reports, false)?;
    } else {
        tell(&mut out, &uri, &reports)?;
    }
    Ok(if clean { EXIT_CLEAN } else { EXIT_PROBLEMS })
}

fn tell(out: &mut impl Write, uri: &str, reports: &[DayReport]) -> anyhow::Result<()> {
    if reports.is_empty() {
        writeln!(out, "{uri}: no audit records")?;
    }
    for DayReport { day, report } in reports {
        let verdict = if report.is_clean() {
            "intact"
        } else {
            "PROBLEMS"
        };
        writeln!(out, "{day}: {} records checked, {verdict}", report.checked)?;
        for (what, paths) in [
            ("altered (content does not match its hash)", &report.altered),
            ("missing (listed, but gone)", &report.missing),
            ("unlisted (not in the day's listing)", &report.unlisted),
            ("unreadable (not an audit record)", &report.unreadable),
        ] {
            for path in paths {
                writeln!(out, "  {what}: {path}")?;
            }
        }
    }
    Ok(())
}
