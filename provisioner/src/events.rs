//! `escher-provision events …`: normalize raw cloud payloads with the same code the
//! functions run, for inspection, demos and scripts.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use escher_core::{Normalized, Normalizer, SeverityPolicy};
use serde::Serialize;

use crate::output::{read_input, write_json};

/// Exit code when any input failed to normalize (scripts can tell it from a crash).
const EXIT_FAILED: u8 = 2;

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Normalize a raw alert payload (AWS, Azure or GCP; the kind is detected from its shape)
    /// into UnifiedEvent JSON, one object per line.
    ///
    /// Exit status: 0 when the input normalized (or is a subscription handshake), 2 when it
    /// did not; the reason is printed on stderr.
    ///
    /// With --dir (repeatable), every *.json file below each DIR (except *.expected.json) is
    /// normalized and a summary table is printed; exit status 2 if any file failed.
    Normalize(NormalizeArgs),

    /// Handle an alert as the AWS function does: normalize, enrich, check the approvals,
    /// remediate, verify, audit, notify; prints each step and the outcome.
    ///
    /// Exit status: 0 when the event was handled (remediated, not approved, notify only,
    /// duplicate, …), 1 on a failure the function would retry (storage or approvals
    /// unreachable, throttling), 2 on bad input (not a recognised alert, invalid settings).
    Handle(crate::handle::HandleArgs),
}

#[derive(Debug, Args)]
pub struct NormalizeArgs {
    /// The payload file; `-` or nothing reads standard input.
    #[arg(value_name = "FILE|-", conflicts_with = "dir")]
    file: Option<PathBuf>,

    /// Normalize every *.json file below this directory and print a summary table; may be
    /// given several times.
    #[arg(long, value_name = "DIR")]
    dir: Vec<PathBuf>,

    /// Indent the JSON output (one event per block instead of one per line).
    #[arg(long)]
    pretty: bool,

    /// With --dir: print the summary as a JSON array instead of a table.
    #[arg(long)]
    json: bool,

    /// Severity policy to use instead of the built-in policies/severity.yaml.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
}

pub fn run(cmd: EventsCommand) -> ExitCode {
    let args = match cmd {
        EventsCommand::Normalize(args) => args,
        EventsCommand::Handle(args) => return crate::handle::run(args),
    };
    match normalize_command(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

fn normalize_command(args: &NormalizeArgs) -> anyhow::Result<ExitCode> {
    let policy = match &args.policy {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read severity policy {}", path.display()))?;
            SeverityPolicy::from_yaml(&text)
                .with_context(|| format!("severity policy {}", path.display()))?
        }
        None => SeverityPolicy::built_in().clone(),
    };
    let normalizer = Normalizer::new(&policy);
    if args.dir.is_empty() {
        normalize_one(&normalizer, args.file.as_deref(), args.pretty)
    } else {
        normalize_dirs(&normalizer, &args.dir, args.json)
    }
}

fn normalize_one(
    normalizer: &Normalizer,
    file: Option<&Path>,
    pretty: bool,
) -> anyhow::Result<ExitCode> {
    let (label, bytes) = read_input(file)?;
    let mut out = std::io::stdout().lock();
    match normalizer.normalize(&bytes) {
        Ok(Normalized::Events(events)) => {
            for event in &events {
                write_json(&mut out, event, pretty)?;
            }
            if events.is_empty() {
                eprintln!("{label}: recognised, but it describes nothing to act on (no events)");
            }
            Ok(ExitCode::SUCCESS)
        }
        Ok(Normalized::Handshake(handshake)) => {
            eprintln!(
                "{label}: this is a subscription handshake ({}), not an alert; the function answers it with the validation code",
                handshake.kind
            );
            write_json(
                &mut out,
                &serde_json::json!({ "handshake": handshake }),
                pretty,
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {label}: {e}");
            Ok(ExitCode::from(EXIT_FAILED))
        }
    }
}

/// One line of the `--dir` summary.
#[derive(Debug, Serialize)]
struct Row {
    file: String,
    source: Option<String>,
    event_type: Option<String>,
    severity: Option<String>,
    error: Option<String>,
}

fn normalize_dirs(
    normalizer: &Normalizer,
    dirs: &[PathBuf],
    json: bool,
) -> anyhow::Result<ExitCode> {
    // (path shown in the table, path on disk): shown relative to the directory's parent, so
    // `--dir tests/fixtures/aws` lists `aws/…`.
    let mut files = Vec::new();
    for dir in dirs {
        let base = dir.parent().unwrap_or(dir);
        let before = files.len();
        for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
            let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
            let name = entry.file_name().to_string_lossy();
            if entry.file_type().is_file()
                && name.ends_with(".json")
                && !name.ends_with(".expected.json")
            {
                let shown = entry.path().strip_prefix(base).unwrap_or(entry.path());
                files.push((shown.display().to_string(), entry.path().to_path_buf()));
            }
        }
        if files.len() == before {
            anyhow::bail!("no *.json files found below {}", dir.display());
        }
    }
    let mut rows = Vec::new();
    let (mut failed, mut events_total) = (0usize, 0usize);
    for (file, path) in &files {
        let row = |source: Option<String>,
                   event_type: Option<String>,
                   severity: Option<String>,
                   error: Option<String>| Row {
            file: file.clone(),
            source,
            event_type,
            severity,
            error,
        };
        let result = std::fs::read(path)
            .map_err(|e| format!("cannot read: {e}"))
            .and_then(|bytes| normalizer.normalize(&bytes).map_err(|e| e.to_string()));
        match result {
            Ok(Normalized::Events(events)) if events.is_empty() => {
                rows.push(row(None, Some("(no events)".into()), None, None))
            }
            Ok(Normalized::Events(events)) => {
                events_total += events.len();
                for e in events {
                    rows.push(row(
                        Some(e.source.to_string()),
                        Some(e.event_type.to_string()),
                        Some(e.severity.to_string()),
                        None,
                    ));
                }
            }
            Ok(Normalized::Handshake(h)) => rows.push(row(
                None,
                Some(format!("(handshake: {})", h.kind)),
                None,
                None,
            )),
            Err(message) => {
                failed += 1;
                rows.push(row(None, None, None, Some(message)));
            }
        }
    }
    let mut out = std::io::stdout().lock();
    if json {
        write_json(&mut out, &rows, true)?;
    } else {
        writeln!(out, "{}", table(&rows))?;
        writeln!(
            out,
            "{} file(s), {events_total} event(s), {failed} failed",
            files.len()
        )?;
    }
    Ok(if failed > 0 {
        ExitCode::from(EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}

fn table(rows: &[Row]) -> comfy_table::Table {
    // The ERROR column only earns its width when something failed.
    let with_errors = rows.iter().any(|r| r.error.is_some());
    let mut header = vec!["FILE", "SOURCE", "EVENT TYPE", "SEVERITY"];
    if with_errors {
        header.push("ERROR");
    }
    let mut table = crate::output::table(header);
    let cell = |v: &Option<String>| v.clone().unwrap_or_default();
    for r in rows {
        let mut row = vec![
            r.file.clone(),
            cell(&r.source),
            cell(&r.event_type),
            cell(&r.severity),
        ];
        if with_errors {
            row.push(cell(&r.error));
        }
        table.add_row(row);
    }
    table
}
