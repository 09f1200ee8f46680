//! What a function's process holds in memory while a bench drives it, read from
//! `/proc/<pid>/status`, and which build of the function a bench spawns.
//!
//! Peak resident memory (`VmHWM`) is what Lambda reports as Max Memory Used and what the other
//! clouds bill and limit by; the split of what is resident now into anonymous pages (heap,
//! stacks) and pages of mapped files (the binary's code and data, shared libraries) tells a
//! growing heap from code paged in as new paths run.

use std::path::PathBuf;

/// Peak resident memory a deployed function may reach.
pub const FUNCTION_MEMORY_TARGET_MB: f64 = 30.0;

/// A running process's memory, in MB.
#[derive(Debug, Clone, Copy)]
pub struct ProcessMemory {
    /// The peak resident memory so far (`VmHWM`).
    pub peak: f64,
    /// Resident now: anonymous pages (`RssAnon`).
    pub anon: f64,
    /// Resident now: pages of mapped files (`RssFile`).
    pub file: f64,
}

impl ProcessMemory {
    /// The memory of process `pid`; `None` without `/proc` or once the process is gone.
    pub fn of(pid: Option<u32>) -> Option<ProcessMemory> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
        Some(ProcessMemory {
            peak: status_mb(&status, "VmHWM")?,
            anon: status_mb(&status, "RssAnon")?,
            file: status_mb(&status, "RssFile")?,
        })
    }
}

/// The peak resident memory of process `pid` so far (`VmHWM`), in MB.
pub fn peak_mb(pid: Option<u32>) -> Option<f64> {
    ProcessMemory::of(pid).map(|m| m.peak)
}

/// A `kB` line of `/proc/<pid>/status`, in MB.
fn status_mb(status: &str, field: &str) -> Option<f64> {
    let line = status
        .lines()
        .find(|l| l.split(':').next() == Some(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// The function binary `name` a bench spawns: `$ESCHER_BENCH_BIN_DIR/<name>` when that is set
/// (`make bench` points it at the release builds, which are what gets deployed), else
/// `this_build`, the bench's own build of it (`env!("CARGO_BIN_EXE_<name>")`).
pub fn bench_binary(name: &str, this_build: &str) -> PathBuf {
    match std::env::var_os("ESCHER_BENCH_BIN_DIR") {
        Some(dir) => PathBuf::from(dir).join(name),
        None => PathBuf::from(this_build),
    }
}

/// `<what>: p50 …, max … (target ≤ 30 MB): PASS|FAIL` over peak figures in MB (one figure is
/// printed alone).
pub fn memory_line(what: &str, peaks: &mut [f64]) -> String {
    peaks.sort_by(f64::total_cmp);
    let figures = match peaks {
        [] => return format!("{what}: not measured (no /proc/<pid>/status here)"),
        [one] => format!("{one:.1} MB"),
        _ => format!(
            "p50 {:.1} MB, max {:.1} MB",
            peaks[peaks.len() / 2],
            peaks[peaks.len() - 1]
        ),
    };
    let max = peaks[peaks.len() - 1];
    let verdict = if max <= FUNCTION_MEMORY_TARGET_MB {
        "PASS"
    } else {
        "FAIL"
    };
    format!("{what}: {figures} (target ≤ {FUNCTION_MEMORY_TARGET_MB:.0} MB): {verdict}")
}

/// A warm function's figures after each pass over its events: the verdict on the last peak,
/// then one line per pass, so a leak or a cache growing per event shows as a rising line.
pub fn warm_lines(events: usize, passes: &[ProcessMemory]) -> Vec<String> {
    let mut lines = vec![memory_line(
        &format!("peak resident memory of one warm function after {events} events"),
        &mut passes
            .last()
            .map(|p| p.peak)
            .into_iter()
            .collect::<Vec<_>>(),
    )];
    lines.extend(passes.iter().enumerate().map(|(i, p)| {
        format!(
            "  after pass {}: peak {:.1} MB; resident now {:.1} MB anonymous (heap, stacks), {:.1} MB of mapped files (code, libraries)",
            i + 1,
            p.peak,
            p.anon,
            p.file
        )
    }));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_peak_at_least_what_is_resident() {
        let memory = ProcessMemory::of(Some(std::process::id())).expect("/proc on Linux");
        assert!(memory.peak > 0.0);
        assert!(
            memory.peak + 0.01 >= memory.anon + memory.file,
            "{memory:?}"
        );
    }

    #[test]
    fn a_peak_above_the_target_fails() {
        assert!(memory_line("x", &mut [12.0, 31.5]).ends_with("FAIL"));
        assert!(memory_line("x", &mut [29.9, 12.0]).ends_with("PASS"));
        assert!(memory_line("x", &mut []).contains("not measured"));
        assert_eq!(
            memory_line("warm", &mut [26.94]),
            "warm: 26.9 MB (target ≤ 30 MB): PASS"
        );
    }
}
