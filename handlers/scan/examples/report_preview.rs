//! `make report-preview`: the sample morning report (the `escher-sample-report` crate,
//! `tests/sample-report`: a finding in every section, a fix applied, changes, a region not
//! scanned; no cloud or emulator needed) rendered to HTML, Markdown and JSON in a folder
//! (default `.report-preview/`, git-ignored), and a screenshot of the HTML taken by headless
//! `chromium` at 1280×2000. Prints the paths.

use escher_test_support::chromium;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn preview(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let report = escher_sample_report::sample_report();
    let html = escher_scan::render_html(&report).map_err(|e| e.to_string())?;
    let markdown = escher_scan::render_markdown(&report).map_err(|e| e.to_string())?;
    let json = serde_json::to_vec_pretty(&report).map_err(|e| format!("report JSON: {e}"))?;
    let (html_path, md_path, json_path, png_path) = (
        dir.join("report.html"),
        dir.join("report.md"),
        dir.join("report.json"),
        dir.join("report.png"),
    );
    write(&html_path, html.as_bytes())?;
    write(&md_path, markdown.as_bytes())?;
    write(&json_path, &json)?;
    for path in [&html_path, &md_path, &json_path] {
        println!("{}", path.display());
    }

    let Some(chromium) = chromium::Chromium::find() else {
        return Err("no screenshot: chromium is not installed (apt-get install -y --no-install-recommends chromium)".into());
    };
    let _ = std::fs::remove_file(&png_path);
    let profile = dir.join("chromium-profile");
    let _ = std::fs::remove_dir_all(&profile);
    let mut command = chromium.command(&profile);
    command
        .arg("--hide-scrollbars")
        .arg("--window-size=1280,2000")
        .arg(format!("--screenshot={}", png_path.display()))
        .arg(format!("file://{}", html_path.display()));
    let output = chromium.run(command, Duration::from_secs(90))?;
    let _ = std::fs::remove_dir_all(&profile);
    if !output.status.success() || !png_path.is_file() {
        return Err(format!(
            "chromium took no screenshot ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    println!("{}", png_path.display());
    Ok(())
}

fn main() -> ExitCode {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".report-preview"));
    match preview(&dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("report-preview: {e}");
            ExitCode::FAILURE
        }
    }
}
