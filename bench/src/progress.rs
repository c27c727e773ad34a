//! A progress bar for runs of a few seconds or more, drawn on stderr only
//! when stdout and stderr are terminals and the run does not print JSON.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Runs expected to be shorter than this get no bar.
const SHOWN_FROM: Duration = Duration::from_secs(3);
const REDRAW: Duration = Duration::from_millis(200);

/// The bar of one run (nothing when not shown); it moves with wall time
/// toward the expected duration, and the run names its phase.
pub struct Progress {
    shown: Option<(ProgressBar, Arc<AtomicBool>, std::thread::JoinHandle<()>)>,
}

impl Progress {
    pub fn start(label: &str, expected: Duration, json: bool) -> Progress {
        let terminal = std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
        if json || !terminal || expected < SHOWN_FROM {
            return Progress { shown: None };
        }
        let bar = ProgressBar::new(expected.as_millis() as u64);
        let style = ProgressStyle::with_template(
            "{prefix} [{bar:32}] {elapsed_precise} of ~{duration_precise} {msg}",
        )
        .expect("a valid template")
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(label.to_string());
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let (bar, stop) = (bar.clone(), stop.clone());
            let started = Instant::now();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    bar.set_position(started.elapsed().as_millis() as u64);
                    std::thread::sleep(REDRAW);
                }
            })
        };
        Progress {
            shown: Some((bar, stop, ticker)),
        }
    }

    /// Names the phase the run is in.
    pub fn phase(&self, phase: String) {
        if let Some((bar, ..)) = &self.shown {
            bar.set_message(phase);
        }
    }

    /// Removes the bar before the report is printed.
    pub fn finish(self) {}
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some((bar, stop, ticker)) = self.shown.take() {
            stop.store(true, Ordering::Relaxed);
            let _ = ticker.join();
            bar.finish_and_clear();
        }
    }
}
