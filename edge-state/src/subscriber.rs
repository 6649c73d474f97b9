//! The edges' side of the fan-in: a task reading the outcome stream into a local listener.
//!
//! Why a stream (`XREAD` on `ns:outcomes`) and not pub/sub: pub/sub forgets what it
//! published while a subscriber is disconnected, so every Redis hiccup or `CLIENT KILL`
//! would silently lose answers and catalog updates. A stream keeps the last
//! `stream_entries_max` entries: a subscriber that reconnects reads on from the last entry
//! it saw and misses nothing, unless it was away for longer than the stream holds or Redis
//! itself restarted empty. Those two cases are detected (`XINFO STREAM`'s `entries-added`
//! against what was read, the server's `run_id`) and counted in
//! [`SubscriberStatus::gaps`], so the edge can reload its catalog from the journal; the
//! callers whose answers were lost already got 202 and read the journal.
//!
//! Every edge reads every entry (no consumer group): each needs all decisions, for its own
//! waiting callers and its own catalog. The stream may hold an entry twice (a publisher
//! retry); the listener (the edge's `OutcomeFeed`) absorbs that.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::streams::StreamReadReply;
use redis::{AsyncConnectionConfig, Value};
use tokio::sync::watch;
use turnstile_processors::runtime::{Decided, DecisionListener};
use turnstile_schemas::{LogPosition, Outcome};

use crate::keys::Keys;
use crate::{Backoff, Error, RedisConfig};

/// What a subscriber has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriberStatus {
    /// Whether it holds a working connection.
    pub connected: bool,
    /// Stream entries handed to the listener.
    pub delivered: u64,
    /// Connections made after the first.
    pub reconnects: u64,
    /// Times it found it may have missed entries (trimmed while it was away, or Redis
    /// restarted): the edge should reload what it keeps from the journal.
    pub gaps: u64,
    /// Entries it could not read and skipped.
    pub malformed: u64,
}

/// Watches a subscriber. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SubscriberHandle {
    status: watch::Receiver<SubscriberStatus>,
}

impl SubscriberHandle {
    /// The status now.
    pub fn status(&self) -> SubscriberStatus {
        self.status.borrow().clone()
    }

    /// A receiver that wakes on every change.
    pub fn watch(&self) -> watch::Receiver<SubscriberStatus> {
        self.status.clone()
    }
}

/// Reads the outcome stream into `L`; see the module docs.
pub struct OutcomeSubscriber {
    config: RedisConfig,
    keys: Keys,
    client: redis::Client,
    connection: Option<MultiplexedConnection>,
    /// The id of the last entry delivered (or the stream's end when started): `XREAD`
    /// continues after it.
    last_id: String,
    /// How many entries the stream had ever been given up to `last_id`. More trimmed
    /// entries than that (`entries-added - length`) means some were never read.
    entries_through_last_id: u64,
    /// The server's `run_id` when last connected: a new one means Redis restarted.
    run_id: String,
    status: watch::Sender<SubscriberStatus>,
}

impl std::fmt::Debug for OutcomeSubscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutcomeSubscriber")
            .field("stream", &self.keys.outcomes())
            .field("last_id", &self.last_id)
            .finish_non_exhaustive()
    }
}

impl OutcomeSubscriber {
    /// Connects and notes where the stream ends now: every entry published after this
    /// returns is delivered by [`run`](Self::run). Start it *before* loading what the
    /// listener starts with from the journal, so that nothing committed in between is
    /// missed (what is seen twice is absorbed).
    pub async fn start(config: &RedisConfig) -> Result<(SubscriberHandle, Self), Error> {
        config.validate()?;
        let (status, status_rx) = watch::channel(SubscriberStatus::default());
        let mut subscriber = OutcomeSubscriber {
            config: config.clone(),
            keys: Keys::new(&config.namespace),
            client: config.client()?,
            connection: None,
            last_id: "0-0".into(),
            entries_through_last_id: 0,
            run_id: String::new(),
            status,
        };
        let mut connection = subscriber.connect().await?;
        subscriber.run_id = run_id(&mut connection).await?;
        // One command, so the id and the count describe the same moment.
        if let Some(info) = subscriber.stream_info(&mut connection).await? {
            subscriber.last_id = info.last_generated_id;
            subscriber.entries_through_last_id = info.entries_added;
        }
        subscriber.connection = Some(connection);
        subscriber.status.send_modify(|s| s.connected = true);
        Ok((SubscriberHandle { status: status_rx }, subscriber))
    }

    /// Delivers entries to `listener` as they come until `shutdown` turns true,
    /// reconnecting with backoff whenever Redis goes away.
    pub async fn run<L: DecisionListener>(
        mut self,
        listener: Arc<L>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut backoff = Backoff::new(&self.config);
        loop {
            if *shutdown.borrow() {
                return;
            }
            if self.connection.is_none() {
                if let Err(e) = self.reconnect().await {
                    let pause = backoff.next();
                    tracing::warn!(error = %e, pause_ms = pause.as_millis() as u64, "cannot reach Redis for the outcome stream; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => continue,
                        _ = shutdown.wait_for(|stop| *stop) => return,
                    }
                }
                backoff.reset();
            }
            tokio::select! {
                read = self.read() => match read {
                    Ok(entries) => self.deliver(entries, listener.as_ref()),
                    Err(e) => {
                        tracing::warn!(error = %e, "lost the outcome stream; reconnecting");
                        self.connection = None;
                        self.status.send_modify(|s| s.connected = false);
                    }
                },
                // A dropped sender also means stop.
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
    }

    /// A fresh connection, named so operators (and tests) can find it in `CLIENT LIST`.
    async fn connect(&self) -> Result<MultiplexedConnection, Error> {
        // XREAD blocks for `read_block_ms`: the reply may take that long plus a command's time.
        let timeout =
            Duration::from_millis(self.config.read_block_ms + self.config.command_timeout_ms);
        let connection_config = AsyncConnectionConfig::new()
            .set_response_timeout(Some(timeout))
            .set_connection_timeout(Some(Duration::from_millis(self.config.command_timeout_ms)));
        let mut connection = self
            .client
            .get_multiplexed_async_connection_with_config(&connection_config)
            .await
            .map_err(|source| Error::Connect {
                url: self.config.url.clone(),
                source,
            })?;
        redis::cmd("CLIENT")
            .arg("SETNAME")
            .arg(self.keys.subscriber_client_name())
            .query_async::<()>(&mut connection)
            .await?;
        Ok(connection)
    }

    /// Connects again and finds out whether entries may have been missed meanwhile.
    async fn reconnect(&mut self) -> Result<(), Error> {
        let mut connection = self.connect().await?;
        let run_id = run_id(&mut connection).await?;
        let missed = if run_id != self.run_id {
            // Redis restarted: what it held is gone, and the new stream's ids may even be
            // below ours (another clock). Read the new stream from its start.
            tracing::warn!("Redis restarted; outcomes published before the restart may be lost");
            self.last_id = "0-0".into();
            self.entries_through_last_id = 0;
            true
        } else {
            self.trimmed_past_us(&mut connection).await?
        };
        self.run_id = run_id;
        self.connection = Some(connection);
        self.status.send_modify(|s| {
            s.connected = true;
            s.reconnects += 1;
            s.gaps += u64::from(missed);
        });
        Ok(())
    }

    /// Whether the stream dropped an entry newer than the last one delivered. Trimming
    /// removes the oldest entries first, so that happened exactly when more entries were
    /// trimmed than had been added up to the last one delivered.
    async fn trimmed_past_us(
        &mut self,
        connection: &mut MultiplexedConnection,
    ) -> Result<bool, Error> {
        match self.stream_info(connection).await? {
            Some(info) => {
                let trimmed = info.entries_added.saturating_sub(info.length);
                Ok(trimmed > self.entries_through_last_id)
            }
            None => {
                // No stream at all: it was deleted under us. Read whatever comes next
                // from its start.
                let gone = self.entries_through_last_id > 0;
                self.last_id = "0-0".into();
                self.entries_through_last_id = 0;
                Ok(gone)
            }
        }
    }

    /// `XINFO STREAM`, or `None` when there is no stream yet.
    async fn stream_info(
        &self,
        connection: &mut MultiplexedConnection,
    ) -> Result<Option<StreamInfo>, Error> {
        let info: Value = match redis::cmd("XINFO")
            .arg("STREAM")
            .arg(self.keys.outcomes())
            .query_async(connection)
            .await
        {
            Ok(info) => info,
            Err(e)
                if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e.into()),
        };
        let field = |name: &str| {
            map_field(&info, name).ok_or_else(|| {
                Error::Malformed(format!(
                    "XINFO STREAM has no {name} (Redis 7 or later is needed)"
                ))
            })
        };
        let number = |name: &str| -> Result<u64, Error> {
            field(name)?
                .parse()
                .map_err(|e| Error::Malformed(format!("XINFO STREAM {name}: {e}")))
        };
        Ok(Some(StreamInfo {
            last_generated_id: field("last-generated-id")?,
            entries_added: number("entries-added")?,
            length: number("length")?,
        }))
    }

    async fn read(&mut self) -> Result<Vec<redis::streams::StreamId>, Error> {
        let connection = self
            .connection
            .as_mut()
            .expect("read is only called while connected");
        let reply: Option<StreamReadReply> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(self.config.read_entries_max)
            .arg("BLOCK")
            .arg(self.config.read_block_ms)
            .arg("STREAMS")
            .arg(self.keys.outcomes())
            .arg(&self.last_id)
            .query_async(connection)
            .await?;
        Ok(reply
            .into_iter()
            .flat_map(|reply| reply.keys)
            .flat_map(|key| key.ids)
            .collect())
    }

    fn deliver<L: DecisionListener>(
        &mut self,
        entries: Vec<redis::streams::StreamId>,
        listener: &L,
    ) {
        let Some(last) = entries.last() else {
            return;
        };
        self.last_id = last.id.clone();
        self.entries_through_last_id += entries.len() as u64;
        let mut decided = Vec::with_capacity(entries.len());
        let mut malformed = 0;
        for entry in &entries {
            match parse_entry(entry) {
                Ok(delivery) => decided.push(delivery),
                Err(e) => {
                    malformed += 1;
                    tracing::warn!(id = entry.id, error = %e, "skipped an outcome stream entry");
                }
            }
        }
        listener.committed(&decided);
        self.status.send_modify(|s| {
            s.delivered += decided.len() as u64;
            s.malformed += malformed;
        });
    }
}

/// What `XINFO STREAM` says that the subscriber needs.
#[derive(Debug)]
struct StreamInfo {
    last_generated_id: String,
    entries_added: u64,
    length: u64,
}

/// A stream entry as the publisher wrote it: `d` the delivery's position, `o` the outcome.
fn parse_entry(entry: &redis::streams::StreamId) -> Result<Decided, Error> {
    let field = |name: &str| -> Result<String, Error> {
        let value = entry
            .map
            .get(name)
            .ok_or_else(|| Error::Malformed(format!("stream entry without field {name:?}")))?;
        redis::from_redis_value_ref::<String>(value)
            .map_err(|e| Error::Malformed(format!("stream entry field {name:?}: {e}")))
    };
    let delivery = field("d")?;
    let delivery = parse_position(&delivery).ok_or_else(|| {
        Error::Malformed(format!("delivery {delivery:?} is not <partition>-<offset>"))
    })?;
    let outcome: Outcome = serde_json::from_str(&field("o")?)
        .map_err(|e| Error::Malformed(format!("outcome JSON: {e}")))?;
    Ok(Decided {
        outcome: Arc::new(outcome),
        delivery,
    })
}

/// `<partition>-<offset>`, as [`LogPosition::outcome_id`] writes it.
fn parse_position(text: &str) -> Option<LogPosition> {
    let (partition, offset) = text.split_once('-')?;
    Some(LogPosition {
        partition: partition.parse().ok()?,
        offset: offset.parse().ok()?,
    })
}

/// A field of a reply that is a map (RESP3) or a flat list of name/value pairs (RESP2).
fn map_field(reply: &Value, name: &str) -> Option<String> {
    let text = |v: &Value| redis::from_redis_value_ref::<String>(v).ok();
    match reply {
        Value::Map(pairs) => pairs
            .iter()
            .find(|(k, _)| text(k).as_deref() == Some(name))
            .and_then(|(_, v)| text(v)),
        Value::Array(items) => items
            .chunks(2)
            .find(|pair| text(&pair[0]).as_deref() == Some(name))
            .and_then(|pair| pair.get(1).and_then(text)),
        _ => None,
    }
}

/// The server's `run_id`, which changes when it restarts.
async fn run_id(connection: &mut MultiplexedConnection) -> Result<String, Error> {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(connection)
        .await?;
    info.lines()
        .find_map(|line| line.strip_prefix("run_id:"))
        .map(|id| id.trim().to_string())
        .ok_or_else(|| Error::Malformed("INFO server has no run_id".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_parse() {
        assert_eq!(
            parse_position("3-1200"),
            Some(LogPosition {
                partition: 3,
                offset: 1200
            })
        );
        assert_eq!(parse_position("3"), None);
    }

    #[test]
    fn map_fields_are_found_in_both_reply_shapes() {
        let name = Value::BulkString(b"max-deleted-entry-id".to_vec());
        let id = Value::BulkString(b"5-1".to_vec());
        let flat = Value::Array(vec![name.clone(), id.clone()]);
        let map = Value::Map(vec![(name, id)]);
        assert_eq!(
            map_field(&flat, "max-deleted-entry-id").as_deref(),
            Some("5-1")
        );
        assert_eq!(
            map_field(&map, "max-deleted-entry-id").as_deref(),
            Some("5-1")
        );
        assert_eq!(map_field(&map, "length"), None);
    }
}
