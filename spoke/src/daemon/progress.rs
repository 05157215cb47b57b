//! The bring-up progress bar (indicatif on stderr; hidden when stderr is not a terminal).

use std::io::IsTerminal as _;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::sync::Progress;

/// Shows pulled ops against the total the hub announced. Small pulls (< `min_total` ops) show nothing.
#[derive(Debug)]
pub struct BarProgress {
    bar: Option<ProgressBar>,
    visible: bool,
    min_total: u64,
}

impl BarProgress {
    /// A bar on stderr, drawn only when stderr is a terminal.
    pub fn stderr() -> BarProgress {
        BarProgress {
            bar: None,
            visible: std::io::stderr().is_terminal(),
            min_total: 1_000,
        }
    }
}

impl Progress for BarProgress {
    fn begin(&mut self, total_ops: u64) {
        if !self.visible || total_ops < self.min_total {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(total_ops), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} pulling {bar:40} {pos}/{len} ops ({per_sec}, eta {eta})",
        ) {
            bar.set_style(style);
        }
        self.bar = Some(bar);
    }

    fn advance(&mut self, ops: u64) {
        if let Some(b) = &self.bar {
            b.inc(ops);
        }
    }

    fn end(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}
