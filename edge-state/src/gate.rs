//! The sold-out gate's question to Redis, shared by every edge.
//!
//! Once a campaign is sold out, a claim is answered at the edge without a log write
//! (`docs/exactly-once.md` rule 20) — but a retry of a request decided earlier must get its
//! recorded outcome (a winner retrying sees the win). The edge asks [`RedisGate::check`],
//! one round trip running `lua/gate_check.lua`, which answers from Redis alone only when
//! Redis provably knows every request the campaign's partition decided:
//! - Redis's own `sold_out` flag is set (it is set in the same script run as the keys of
//!   the batch that sold out, so every grant's key is in the set by then);
//! - the partition's progress has no `gap` (every batch since offset 0 was applied);
//! - the set still has as many members as were ever added (`decided`; it was not expired
//!   or evicted on its own), and the hash has the `capacity` only a creation sets (it was
//!   not lost and recreated by a later batch).
//!
//! Otherwise the answer is [`GateAnswer::Unknown`] and the edge reads the journal, as it
//! would without Redis. A Redis error is also `Unknown`: the gate only ever saves reads.

use redis::aio::ConnectionManager;
use redis::{Script, Value};
use turnstile_schemas::Outcome;

use crate::keys::{request_hash, Keys};
use crate::{connection_manager, Error, RedisConfig};

const GATE_CHECK_LUA: &str = include_str!("lua/gate_check.lua");

/// What the gate learned about a request of a sold-out campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateAnswer {
    /// Certainly never decided: answer `sold_out` without touching the log or journal.
    NeverDecided,
    /// Decided, with this recorded outcome (from the replay cache).
    Recorded(Box<Outcome>),
    /// Redis cannot say: look the request up in the journal.
    Unknown,
}

/// Asks Redis the gate's question. Cheap to clone (one multiplexed connection).
#[derive(Clone)]
pub struct RedisGate {
    connection: ConnectionManager,
    keys: Keys,
    script: Script,
}

impl std::fmt::Debug for RedisGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisGate")
            .field("namespace", &self.keys.namespace())
            .finish_non_exhaustive()
    }
}

impl RedisGate {
    /// Connects, failing at once (with how to start Redis) when it is not reachable.
    pub async fn connect(config: &RedisConfig) -> Result<Self, Error> {
        config.validate()?;
        Ok(RedisGate {
            connection: connection_manager(config).await?,
            keys: Keys::new(&config.namespace),
            script: Script::new(GATE_CHECK_LUA),
        })
    }

    /// What Redis knows of request `request_id` of campaign `campaign_id`; see the module
    /// docs for when it may say [`GateAnswer::NeverDecided`].
    pub async fn check(&self, campaign_id: &str, request_id: &str) -> Result<GateAnswer, Error> {
        let mut connection = self.connection.clone();
        let reply: Vec<Value> = self
            .script
            .key(self.keys.campaign(campaign_id))
            .key(self.keys.decided(campaign_id))
            .key(self.keys.replay(campaign_id, request_id))
            .arg(&request_hash(request_id)[..])
            .arg(self.keys.partition_prefix())
            .invoke_async(&mut connection)
            .await?;
        let int = |i: usize| {
            reply
                .get(i)
                .and_then(|v| redis::from_redis_value_ref::<i64>(v).ok())
        };
        match (int(0), int(1), reply.get(2)) {
            (Some(0), _, _) => Ok(GateAnswer::Unknown),
            (Some(1), Some(0), _) => Ok(GateAnswer::NeverDecided),
            (Some(1), Some(1), None) => Ok(GateAnswer::Unknown),
            (Some(1), Some(1), Some(text)) => {
                let text: String = redis::from_redis_value_ref(text)
                    .map_err(|e| Error::Malformed(format!("replay entry: {e}")))?;
                let outcome: Outcome = serde_json::from_str(&text)
                    .map_err(|e| Error::Malformed(format!("replay entry: {e}")))?;
                // Paired check: the entry must be this request's, whatever its key said.
                if outcome.resource_id != campaign_id || outcome.request_id != request_id {
                    return Err(Error::Malformed(format!(
                        "the replay entry of {campaign_id}/{request_id} holds {}/{}",
                        outcome.resource_id, outcome.request_id
                    )));
                }
                Ok(GateAnswer::Recorded(Box::new(outcome)))
            }
            _ => Err(Error::Malformed(format!(
                "the gate script answered {reply:?}"
            ))),
        }
    }

    /// The key names this gate reads (for operators' tools and tests).
    pub fn keys(&self) -> &Keys {
        &self.keys
    }
}
