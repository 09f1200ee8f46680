//! Debian's `chromium`, headless, as the report render test and `make report-preview` run it.
//!
//! The flags keep it from calling home on a closed network (background networking,
//! component updates, sync, QUIC), which would otherwise make it hang or fail; each run
//! gets a fresh profile folder. `ESCHER_CHROMIUM` names another binary.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The flags of every run (see above).
pub const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// A chromium binary found on this machine.
pub struct Chromium {
    program: PathBuf,
}

impl Chromium {
    /// `ESCHER_CHROMIUM`, else `chromium` on `PATH`.
    pub fn find() -> Option<Chromium> {
        if let Some(program) = std::env::var_os("ESCHER_CHROMIUM") {
            return Some(Chromium {
                program: PathBuf::from(program),
            });
        }
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|dir| dir.join("chromium"))
            .find(|candidate| candidate.is_file())
            .map(|program| Chromium { program })
    }

    /// Headless chromium with the flags above and `profile` as its (fresh) profile folder.
    pub fn command(&self, profile: &Path) -> Command {
        let mut command = Command::new(&self.program);
        command
            .args(FLAGS)
            .arg(format!("--user-data-dir={}", profile.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// Runs `command`, killing chromium when it has not finished within `limit` (a page
    /// that never stops loading would otherwise hang the caller).
    pub fn run(&self, mut command: Command, limit: Duration) -> Result<Output, String> {
        let program = self.program.display().to_string();
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start {program}: {e}"))?;
        let stdout = drain(child.stdout.take());
        let stderr = drain(child.stderr.take());
        let deadline = Instant::now() + limit;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "{program} did not finish within {} s",
                        limit.as_secs()
                    ));
                }
                Err(e) => return Err(format!("waiting for {program}: {e}")),
            }
        };
        Ok(Output {
            status,
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        })
    }
}

/// Reads a pipe to its end on a thread of its own, so a chatty chromium never blocks on a
/// full pipe while we wait for it.
fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}
