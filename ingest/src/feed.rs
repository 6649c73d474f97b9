//! The outcome feed: how committed decisions reach the edge.
//!
//! Two consumers inside the edge: callers waiting for the answer to their request (a
//! waiter per request key), and the campaign catalog that lets the edge answer 404 for an
//! unknown campaign and shed claims on a sold-out campaign without touching the log.
//! On the embedded default the processors call [`OutcomeFeed`] directly, in process; with
//! the Redis edge state a subscriber feeds it from Redis (`crate::shared_state`), which
//! may hand it an outcome twice, so everything here is idempotent per outcome.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::oneshot;
use turnstile_edge_state::publisher::coupon_sequence;
use turnstile_journal::CampaignRow;
use turnstile_processors::runtime::{Decided, DecisionListener};
use turnstile_schemas::{CampaignSpec, Decision};

/// Waiter maps are sharded so concurrent handlers rarely contend on one lock.
const WAITER_SHARDS: usize = 64;

type RequestKey = (String, String);
type WaiterMap = HashMap<RequestKey, Vec<oneshot::Sender<Decided>>>;

/// Committed decisions, fanned in to waiting callers and the campaign catalog.
#[derive(Debug)]
pub struct OutcomeFeed {
    waiters: Vec<Mutex<WaiterMap>>,
    shard_hasher: RandomState,
    campaigns: RwLock<HashMap<String, Arc<CampaignView>>>,
    /// Hashes of every decided request key, per campaign, so the sold-out gate can tell
    /// "certainly never decided" (shed it) from "maybe decided" (look its outcome up)
    /// without a journal read. A collision only costs that lookup.
    decided: Mutex<HashMap<String, HashSet<u64>>>,
    key_hasher: RandomState,
}

/// What the edge knows of a campaign.
#[derive(Debug)]
pub struct CampaignView {
    /// Its rules.
    pub spec: CampaignSpec,
    /// Coupons issued, as of the last commit the edge heard of.
    issued: AtomicU32,
}

impl CampaignView {
    /// Coupons issued so far.
    pub fn issued(&self) -> u32 {
        self.issued.load(Ordering::Relaxed)
    }

    /// Whether every coupon is gone. Only ever turns from false to true: issued coupons
    /// are never returned to stock, so shedding later claims is always the right answer.
    pub fn sold_out(&self) -> bool {
        self.issued() >= self.spec.capacity
    }
}

impl OutcomeFeed {
    /// A feed whose catalog starts with the journal's campaigns and decided requests
    /// (`(resource_id, request_id)` pairs).
    pub fn new(campaigns: Vec<CampaignRow>, decided: Vec<(String, String)>) -> Self {
        let campaigns = campaigns
            .into_iter()
            .map(|row| {
                let view = CampaignView {
                    spec: row.spec,
                    issued: AtomicU32::new(row.issued),
                };
                (row.campaign_id, Arc::new(view))
            })
            .collect();
        let feed = OutcomeFeed {
            waiters: (0..WAITER_SHARDS).map(|_| Mutex::default()).collect(),
            shard_hasher: RandomState::new(),
            campaigns: RwLock::new(campaigns),
            decided: Mutex::default(),
            key_hasher: RandomState::new(),
        };
        {
            let mut sets = feed.decided.lock().expect("decided lock is never poisoned");
            for (resource_id, request_id) in decided {
                let hash = feed.key_hasher.hash_one(&request_id);
                sets.entry(resource_id).or_default().insert(hash);
            }
        }
        feed
    }

    /// False when the request was certainly never decided; true when it may have been.
    pub fn may_have_decided(&self, resource_id: &str, request_id: &str) -> bool {
        let hash = self.key_hasher.hash_one(request_id);
        let sets = self.decided.lock().expect("decided lock is never poisoned");
        sets.get(resource_id).is_some_and(|set| set.contains(&hash))
    }

    /// Adds a campaign found in the journal (created through another process) to the
    /// catalog; the campaign as the catalog then holds it.
    pub fn learn_campaign(&self, row: CampaignRow) -> Arc<CampaignView> {
        let mut campaigns = self
            .campaigns
            .write()
            .expect("catalog lock is never poisoned");
        campaigns
            .entry(row.campaign_id)
            .or_insert_with(|| {
                Arc::new(CampaignView {
                    spec: row.spec,
                    issued: AtomicU32::new(row.issued),
                })
            })
            .clone()
    }

    /// Merges the journal's campaigns into the catalog: campaigns it never heard of are
    /// added and issued counts only ever rise. For an edge that may have missed outcomes
    /// (its Redis subscriber found a gap).
    pub fn refresh_catalog(&self, campaigns: Vec<CampaignRow>) {
        for row in campaigns {
            let view = {
                let mut catalog = self
                    .campaigns
                    .write()
                    .expect("catalog lock is never poisoned");
                catalog
                    .entry(row.campaign_id)
                    .or_insert_with(|| {
                        Arc::new(CampaignView {
                            spec: row.spec,
                            issued: AtomicU32::new(0),
                        })
                    })
                    .clone()
            };
            view.issued.fetch_max(row.issued, Ordering::Relaxed);
        }
    }

    /// Every campaign the edge knows, with the coupons it has left.
    pub fn stock(&self) -> Vec<(String, u32)> {
        self.campaigns
            .read()
            .expect("catalog lock is never poisoned")
            .iter()
            .map(|(id, view)| (id.clone(), view.spec.capacity.saturating_sub(view.issued())))
            .collect()
    }

    /// The campaign, if it exists.
    pub fn campaign(&self, campaign_id: &str) -> Option<Arc<CampaignView>> {
        self.campaigns
            .read()
            .expect("catalog lock is never poisoned")
            .get(campaign_id)
            .cloned()
    }

    /// Registers interest in the next committed delivery of a request. Register before
    /// appending to the log, so the decision cannot slip past unseen.
    pub fn wait_for(&self, resource_id: &str, request_id: &str) -> oneshot::Receiver<Decided> {
        let (sender, receiver) = oneshot::channel();
        self.with_waiters(resource_id, request_id, |waiters, key| {
            waiters.entry(key).or_default().push(sender)
        });
        receiver
    }

    /// Whether a request was appended by this edge and is not decided yet.
    pub fn is_pending(&self, resource_id: &str, request_id: &str) -> bool {
        self.with_waiters(resource_id, request_id, |waiters, key| {
            waiters.contains_key(&key)
        })
    }

    /// Forgets the waiters of a request whose append failed.
    pub fn abandon(&self, resource_id: &str, request_id: &str) {
        self.take_waiters(resource_id, request_id);
    }

    fn take_waiters(&self, resource_id: &str, request_id: &str) -> Vec<oneshot::Sender<Decided>> {
        self.with_waiters(resource_id, request_id, |waiters, key| waiters.remove(&key))
            .unwrap_or_default()
    }

    /// Runs `f` on the waiter map of the request's shard, with the request's key.
    fn with_waiters<T>(
        &self,
        resource_id: &str,
        request_id: &str,
        f: impl FnOnce(&mut WaiterMap, RequestKey) -> T,
    ) -> T {
        let key = (resource_id.to_string(), request_id.to_string());
        let shard = self.shard_hasher.hash_one(&key) as usize % WAITER_SHARDS;
        let mut waiters = self.waiters[shard]
            .lock()
            .expect("waiter lock is never poisoned");
        f(&mut waiters, key)
    }

    fn update_catalog(&self, decided: &Decided) {
        if !decided.is_first() {
            return;
        }
        let outcome = &decided.outcome;
        match &outcome.decision {
            Decision::CampaignCreated { spec } => {
                let mut campaigns = self
                    .campaigns
                    .write()
                    .expect("catalog lock is never poisoned");
                campaigns
                    .entry(outcome.resource_id.clone())
                    .or_insert_with(|| {
                        Arc::new(CampaignView {
                            spec: spec.clone(),
                            issued: AtomicU32::new(0),
                        })
                    });
            }
            Decision::CouponGranted { coupon } => {
                if let Some(view) = self.campaign(&outcome.resource_id) {
                    // Coupons are numbered from 1 without gaps: the highest number seen is
                    // the count, and an outcome heard twice counts once.
                    match coupon_sequence(&outcome.resource_id, &coupon.coupon_id) {
                        Some(sequence) => view.issued.fetch_max(sequence, Ordering::Relaxed),
                        None => view.issued.fetch_add(1, Ordering::Relaxed),
                    };
                }
            }
            // The catalog knows campaigns only.
            _ => {}
        }
    }
}

impl DecisionListener for OutcomeFeed {
    fn committed(&self, decided: &[Decided]) {
        // Keys first: once a grant below makes a campaign sold out, the gate must already
        // know every request decided up to it.
        {
            let mut sets = self.decided.lock().expect("decided lock is never poisoned");
            for delivery in decided.iter().filter(|d| d.is_first()) {
                let hash = self.key_hasher.hash_one(&delivery.outcome.request_id);
                match sets.get_mut(delivery.outcome.resource_id.as_str()) {
                    Some(set) => set.insert(hash),
                    None => sets
                        .entry(delivery.outcome.resource_id.clone())
                        .or_default()
                        .insert(hash),
                };
            }
        }
        for delivery in decided {
            self.update_catalog(delivery);
            let outcome = &delivery.outcome;
            let waiting = self.take_waiters(&outcome.resource_id, &outcome.request_id);
            for sender in waiting {
                // The caller may have given up (answered 202); that is fine.
                let _ = sender.send(delivery.clone());
            }
        }
    }
}
