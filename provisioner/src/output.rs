//! What every command shares for talking to the terminal: reading an input file or stdin,
//! JSON on stdout, and tables sized to the terminal.

use std::io::{Read, Write};
use std::path::Path;

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
