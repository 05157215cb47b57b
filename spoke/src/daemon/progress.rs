//! The bring-up progress bar (indicatif on stderr; hidden when stderr is not a terminal), and
//! [`DaemonWatcher`], which draws it for a sync the daemon runs (polling `sync.progress`).

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

/// While `heph sync` waits for the daemon's `sync.now`, a helper thread polls `sync.progress` every
/// 50 ms and draws the daemon's pull (its own or the background loop's bring-up) as a [`BarProgress`].
/// Nothing runs when stderr is not a terminal. Dropping it stops the thread and clears the bar.
#[derive(Debug)]
pub struct DaemonWatcher {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DaemonWatcher {
    /// Starts watching `daemon` (no thread when stderr is not a terminal).
    pub fn start(daemon: super::client::DaemonBackend) -> DaemonWatcher {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        if !std::io::stderr().is_terminal() {
            return DaemonWatcher { stop, thread: None };
        }
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("heph-sync-progress".into())
            .spawn(move || {
                let mut bar = BarProgress::stderr();
                let mut shown: Option<(u64, u64)> = None;
                while !flag.load(Ordering::Relaxed) {
                    let p = daemon
                        .call_timeout(
                            "sync.progress",
                            serde_json::json!({}),
                            std::time::Duration::from_secs(2),
                        )
                        .ok()
                        .and_then(|v| {
                            serde_json::from_value::<super::server::SyncProgress>(v).ok()
                        });
                    match (p, shown) {
                        (Some(p), Some((total, done))) if p.active && p.total_ops == total => {
                            bar.advance(p.done_ops.saturating_sub(done));
                            shown = Some((total, p.done_ops.max(done)));
                        }
                        (Some(p), _) if p.active => {
                            bar.end();
                            bar.begin(p.total_ops);
                            bar.advance(p.done_ops);
                            shown = Some((p.total_ops, p.done_ops));
                        }
                        (_, Some(_)) => {
                            bar.end();
                            shown = None;
                        }
                        _ => {}
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                bar.end();
            })
            .ok();
        DaemonWatcher { stop, thread }
    }
}

impl Drop for DaemonWatcher {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
