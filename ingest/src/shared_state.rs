//! The edge's side of the Redis edge state (`turnstile_edge_state`): the outcome stream
//! feeding this edge's [`OutcomeFeed`], and the shared sold-out gate.
//!
//! Start order matters (rule 17's cousin: no decision may slip past unseen):
//! 1. [`RedisEdgeState::connect`] marks where the outcome stream ends;
//! 2. the caller loads the feed's seed from the journal ([`OutcomeFeed::new`]);
//! 3. [`RedisEdgeState::run`] delivers everything published since step 1.
//!
//! What was committed between 1 and 2 arrives twice; the feed absorbs that.

use std::sync::Arc;

use tokio::sync::watch;
use turnstile_edge_state::{
    Error, OutcomeSubscriber, RedisConfig, RedisGate, SubscriberHandle, SubscriberStatus,
};
use turnstile_journal::Journal;

use crate::OutcomeFeed;

/// A connected, not yet running, Redis edge state.
#[derive(Debug)]
pub struct RedisEdgeState {
    subscriber: OutcomeSubscriber,
    handle: SubscriberHandle,
    gate: RedisGate,
}

impl RedisEdgeState {
    /// Connects the subscriber and the gate; fails at once when Redis is not reachable.
    pub async fn connect(config: &RedisConfig) -> Result<Self, Error> {
        let (handle, subscriber) = OutcomeSubscriber::start(config).await?;
        let gate = RedisGate::connect(config).await?;
        Ok(RedisEdgeState {
            subscriber,
            handle,
            gate,
        })
    }

    /// The gate, for [`crate::Edge::with_redis_gate`].
    pub fn gate(&self) -> RedisGate {
        self.gate.clone()
    }

    /// Watches the subscriber.
    pub fn subscriber(&self) -> SubscriberHandle {
        self.handle.clone()
    }

    /// Feeds `feed` from the outcome stream until `shutdown` turns true. Whenever the
    /// subscriber may have missed entries, the catalog is reloaded from `journal`: a
    /// campaign created meanwhile must not answer 404 here, and a sold-out campaign
    /// should be shed. (The callers whose answers were lost already got 202.)
    pub async fn run(
        self,
        feed: Arc<OutcomeFeed>,
        journal: Journal,
        shutdown: watch::Receiver<bool>,
    ) {
        let resync = resync_on_gaps(self.handle.watch(), feed.clone(), journal, shutdown.clone());
        tokio::join!(self.subscriber.run(feed, shutdown), resync);
    }
}

async fn resync_on_gaps(
    mut status: watch::Receiver<SubscriberStatus>,
    feed: Arc<OutcomeFeed>,
    journal: Journal,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut gaps_seen = status.borrow().gaps;
    loop {
        tokio::select! {
            changed = status.changed() => if changed.is_err() { return },
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        let gaps = status.borrow_and_update().gaps;
        if gaps == gaps_seen {
            continue;
        }
        gaps_seen = gaps;
        match journal.campaigns().await {
            Ok(campaigns) => {
                tracing::info!(campaigns = campaigns.len(), "reloaded the campaign catalog from the journal after a gap in the outcome stream");
                feed.refresh_catalog(campaigns);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot reload the campaign catalog after a gap in the outcome stream")
            }
        }
    }
}
