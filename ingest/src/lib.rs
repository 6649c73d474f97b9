//! The HTTP edge: where producers' requests enter the pipeline.
//!
//! # Layout
//! - [`api`]: the routes and their handlers (campaigns, claims, redeems, status, lookups).
//! - [`admin`]: operator routes: list and replay dead letters.
//! - [`command_log`]: where writes go — the embedded log or a Kafka topic.
//! - [`feed`]: committed decisions fanned in to waiting callers and the campaign catalog.
//! - [`shared_state`]: the Redis edge state's edge side: the outcome stream into the feed,
//!   the shared sold-out gate (`turnstile_edge_state` holds the Redis code itself).
//! - [`auth`]: JWT bearer tokens: who makes a user write, who may use the admin routes.
//! - [`limits`]: per-user and per-IP rate limits and the per-user cap on writes in flight.
//! - [`error`]: every error answer, in the stable JSON shape.
//! - [`openapi`]: the OpenAPI 3.0 document of the API (`GET /openapi.json`).
//! - [`metrics`]: Prometheus metrics (`GET /metrics`) and the request-counting middleware.
//!
//! A write is validated, stamped with the time it arrived (the decision's "now"), appended
//! to the log — durably, before anything is answered — and then answered with its committed
//! outcome if that arrives within the caller's wait budget, else with 202 and a status URL.

pub mod admin;
pub mod api;
pub mod auth;
pub mod command_log;
mod domains;
pub mod error;
pub mod feed;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod shared_state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use command_log::CommandLog;
pub use feed::OutcomeFeed;

use crate::error::Failure;
use crate::feed::CampaignView;
use tokio::net::TcpListener;
use tokio::sync::watch;
use turnstile_edge_state::{GateAnswer, RedisGate};
use turnstile_journal::Journal;

/// How the edge answers.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// How long a write waits for its decision before answering 202 with a status URL,
    /// unless the caller asks for less with `Prefer: wait=<seconds>`.
    pub wait_budget_ms: u64,
    /// Largest request body accepted; larger ones get 413.
    pub body_bytes_max: usize,
    /// Bearer-token authentication of writes and admin routes; `None` (the default): off,
    /// the body names the user and the admin routes are open.
    pub auth: Option<Arc<auth::Authenticator>>,
    /// Rate limits and the in-flight cap on users' writes; all off by default.
    pub limits: limits::LimitsConfig,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        EdgeConfig {
            wait_budget_ms: 2_000,
            body_bytes_max: 16 * 1024,
            auth: None,
            limits: limits::LimitsConfig::default(),
        }
    }
}

/// The edge's shared state; cheap to clone (handlers get a clone each).
#[derive(Debug, Clone)]
pub struct Edge {
    config: Arc<EdgeConfig>,
    log: CommandLog,
    journal: Journal,
    feed: Arc<OutcomeFeed>,
    /// The sold-out gate shared with other edges, when the edge state is in Redis; without
    /// it the gate asks this edge's own feed.
    redis_gate: Option<RedisGate>,
    limits: Arc<limits::Limits>,
}

impl Edge {
    /// An edge writing to `log`, reading lookups from `journal`, hearing decisions on `feed`.
    pub fn new(
        config: EdgeConfig,
        log: CommandLog,
        journal: Journal,
        feed: Arc<OutcomeFeed>,
    ) -> Self {
        Edge {
            limits: Arc::new(limits::Limits::new(&config.limits)),
            config: Arc::new(config),
            log,
            journal,
            feed,
            redis_gate: None,
        }
    }

    /// Asks `gate`, shared by every edge, instead of this edge's own feed whether a claim
    /// on a sold-out campaign was ever decided.
    pub fn with_redis_gate(mut self, gate: RedisGate) -> Self {
        self.redis_gate = Some(gate);
        self
    }

    /// Serves HTTP on `listener` until `shutdown` turns true; in-flight requests finish.
    pub async fn serve(
        self,
        listener: TcpListener,
        mut shutdown: watch::Receiver<bool>,
    ) -> std::io::Result<()> {
        let app = api::router(self);
        // With the peer's address: the per-IP rate limit reads it.
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                // A dropped sender also means shut down.
                let _ = shutdown.wait_for(|stop| *stop).await;
            })
            .await
    }

    /// The campaign, from the catalog, or from the journal when another process decided
    /// its creation (the catalog hears only this process's processors).
    async fn campaign(&self, campaign_id: &str) -> Result<Arc<CampaignView>, Failure> {
        if let Some(view) = self.feed.campaign(campaign_id) {
            return Ok(view);
        }
        match self
            .journal
            .campaign(campaign_id)
            .await
            .map_err(Failure::unavailable)?
        {
            Some(row) => Ok(self.feed.learn_campaign(row)),
            None => Err(Failure::unknown_campaign(campaign_id)),
        }
    }

    /// The sold-out gate's question: was this request of a sold-out campaign ever decided?
    /// [`GateAnswer::Unknown`] means: read the journal.
    async fn gate(&self, campaign_id: &str, request_id: &str) -> GateAnswer {
        let Some(gate) = &self.redis_gate else {
            return match self.feed.may_have_decided(campaign_id, request_id) {
                false => GateAnswer::NeverDecided,
                true => GateAnswer::Unknown,
            };
        };
        match gate.check(campaign_id, request_id).await {
            Ok(answer) => answer,
            Err(e) => {
                // The journal is the truth; Redis only ever saves reads of it.
                tracing::warn!(error = %e, "the Redis sold-out gate failed; reading the journal");
                GateAnswer::Unknown
            }
        }
    }

    fn wait_budget(&self) -> Duration {
        Duration::from_millis(self.config.wait_budget_ms)
    }
}

/// Binds a TCP listener, with a message that says what to do when the port is taken.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e} (is another turnstile running? choose another --listen address)"))
    })
}
