//! A deployment's progress on stderr, the same for every cloud: a bar counting the
//! resources done on a terminal, plain lines otherwise (a pipe, CI), so stdout stays free
//! for `--json`.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::time::Duration;

/// Shows the events of one deployment as they come.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    /// Resources counted as done (each once, however many events it has).
    done: BTreeSet<String>,
}

impl Progress {
    /// `total`: how many resources the preview changes.
    pub fn start(total: usize) -> Progress {
        let bar = if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(total as u64);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed}] {bar:30} {pos}/{len} {msg}",
            ) {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(200));
            Some(bar)
        } else {
            None
        };
        Progress {
            bar,
            done: BTreeSet::new(),
        }
    }

    /// One event, printed as `line`; `completed`: `resource` is done.
    pub fn event(&mut self, line: String, resource: &str, completed: bool) {
        match &self.bar {
            Some(bar) => {
                bar.println(line);
                if completed && self.done.insert(resource.to_string()) {
                    bar.inc(1);
                }
                bar.set_message(resource.to_string());
            }
            None => eprintln!("{line}"),
        }
    }

    /// Clears the bar once the deployment has settled.
    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
