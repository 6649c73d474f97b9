//! A progress bar on stderr, refreshed on a timer from the generator's shared counters (the
//! workers never touch the bar: drawing is far too slow to do per request).

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often the bar is refreshed from the counters.
const REFRESH_INTERVAL: Duration = Duration::from_millis(100);

/// A bar and the task that refreshes it. It draws nothing when stderr is not a terminal.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
    refresher: tokio::task::JoinHandle<()>,
}

impl Progress {
    /// Starts drawing a bar of `len` steps in `style`; every [`REFRESH_INTERVAL`] `refresh`
    /// reads the counters and updates the bar.
    pub fn start(
        len: u64,
        style: ProgressStyle,
        mut refresh: impl FnMut(&ProgressBar) + Send + 'static,
    ) -> Self {
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr())
            .with_style(style);
        let refresher = {
            let bar = bar.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(REFRESH_INTERVAL);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    tick.tick().await;
                    refresh(&bar);
                }
            })
        };
        Self { bar, refresher }
    }

    /// The bar, for a last update before [`Progress::finish`].
    pub fn bar(&self) -> &ProgressBar {
        &self.bar
    }

    /// Stops refreshing and clears the bar, so that the report that follows stands alone.
    pub fn finish(self) {
        self.bar.finish_and_clear();
        // Drop stops the refresher.
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.refresher.abort();
    }
}
