//! What every command shares for talking to the terminal: reading an input file or stdin,
//! JSON on stdout, and tables sized to the terminal.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use serde::Serialize;

/// Reads FILE, or standard input for `-` / no file; returns a label for messages too.
pub fn read_input(file: Option<&Path>) -> anyhow::Result<(String, Vec<u8>)> {
    match file {
        Some(p) if p.as_os_str() != "-" => Ok((
            p.display().to_string(),
            std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?,
        )),
        _ => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("cannot read standard input")?;
            Ok(("<stdin>".to_string(), bytes))
        }
    }
}

pub fn write_json(
    out: &mut impl Write,
    value: &impl Serialize,
    pretty: bool,
) -> anyhow::Result<()> {
    if pretty {
        serde_json::to_writer_pretty(&mut *out, value)?;
    } else {
        serde_json::to_writer(&mut *out, value)?;
    }
    writeln!(out).context("cannot write to standard output")
}

/// `$COLUMNS` when the shell exports it, else a width that suits a laptop terminal.
fn terminal_width() -> u16 {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .filter(|w| *w >= 60)
        .unwrap_or(160)
}

/// An empty table with our look and `header`.
pub fn table(header: Vec<&str>) -> comfy_table::Table {
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(comfy_table::ContentArrangement::Dynamic)
        .set_width(terminal_width())
        .set_header(header);
    table
}

/// Exit status of a command that could not run (bad input, unreachable service, …).
pub const EXIT_ERROR: u8 = 2;

/// At most this many blocking threads (tokio's default is 512).
const BLOCKING_THREADS: usize = 8;

/// Runs an async command to its exit status; an error is printed on stderr and exits 2.
pub fn run_async(body: impl std::future::Future<Output = anyhow::Result<ExitCode>>) -> ExitCode {
    // File reads and writes run on blocking threads; a command's concurrent reads (the
    // incident memory's files, the approvals index) would otherwise start a thread each,
    // every one with its own stack and allocator pages, for no gain on a laptop's disk.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS)
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    run_command(runtime.block_on(body))
}

/// A command's result as its exit status; an error is printed on stderr and exits 2.
pub fn run_command(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// The Escher folder chosen on the command line (`--escher-dir`, or `ESCHER_HOME` through
/// clap), set once by `main` before any command runs.
static ESCHER_DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Makes `dir` the Escher folder for this process (a relative path is taken from the
/// current folder, since store URIs need absolute paths).
pub fn set_escher_dir(dir: &Path) -> anyhow::Result<()> {
    let dir = std::path::absolute(dir)
        .with_context(|| format!("cannot resolve the Escher folder {}", dir.display()))?;
    // Set once, from main; a second call keeps the first value.
    let _ = ESCHER_DIR.set(dir);
    Ok(())
}

/// Escher's own folder on this machine: the laptop's default stores and the saved
/// deployment outputs. `--escher-dir` / `ESCHER_HOME` when given, else `$HOME/.escher`.
pub fn escher_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = ESCHER_DIR.get() {
        return Ok(dir.clone());
    }
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).context(
        "HOME is not set, so Escher's folder ~/.escher cannot be found; pass --escher-dir DIR or set ESCHER_HOME",
    )?;
    Ok(PathBuf::from(home).join(".escher"))
}

/// `fs://<Escher folder>/<name>`, the laptop's default stores.
pub fn default_store(name: &str) -> anyhow::Result<String> {
    let dir =
        escher_dir().with_context(|| format!("there is no default {name} store; pass its URI"))?;
    Ok(format!("fs://{}", dir.join(name).display()))
}

/// `--state`: the state store the functions write to, for the commands that read it.
#[derive(Debug, clap::Args)]
pub struct StateArg {
    /// The state store the functions write to (for a deployment on AWS
    /// `s3://<state bucket>/state`). Default: fs://<Escher folder>/state (see --escher-dir).
    #[arg(long, env = "ESCHER_STATE_URI", value_name = "URI")]
    state: Option<String>,
}

impl StateArg {
    pub fn uri(self) -> anyhow::Result<String> {
        self.state.map_or_else(|| default_store("state"), Ok)
    }
}
