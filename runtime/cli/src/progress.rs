//! Progress bars on stderr for long steps (drawn only when stderr is a terminal).

use indicatif::{ProgressBar, ProgressStyle};
use zone_store::Progress;

/// Draws one bar per step.
#[derive(Debug, Default)]
pub struct Bars {
    bar: Option<ProgressBar>,
}

impl Progress for Bars {
    fn begin(&mut self, step: &str, total: u64) {
        let bar = ProgressBar::new(total);
        let template = match step {
            "copy" => "{prefix:>8} [{bar:32}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            _ => "{prefix:>8} [{bar:32}] {human_pos}/{human_len} {per_sec} eta {eta}",
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(step.to_owned());
        self.bar = Some(bar);
    }

    fn advance(&mut self, units: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(units);
        }
    }

    fn end(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
