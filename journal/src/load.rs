//! Recovery's read: a partition's outcome bodies parsed on worker threads while the rows
//! are still arriving.
//!
//! A restarted processor reloads every outcome of its partition (a million grants is the
//! design's case, DESIGN §6: back at full speed in ≤ 2 s). Parsing the JSON costs more
//! than reading it, so rows are handed out in chunks to a few parser threads, and the
//! chunks are put back together in the order they were read.

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use turnstile_schemas::Outcome;

use crate::Error;

/// Bodies per chunk handed to a parser: large enough that hand-offs are noise, small
/// enough that parsing starts while rows still arrive.
const CHUNK_ROWS: usize = 4096;

/// Parser threads at most (fewer on a machine with fewer cores).
const PARSERS_MAX: usize = 4;

/// Chunks waiting per parser: bounds memory when rows arrive faster than they parse.
const CHUNKS_QUEUED_MAX: usize = 2;

/// Parsed chunks of one parser, in the order it received them.
type Parsed = Result<Vec<Vec<Outcome>>, Error>;

/// Takes rows holding outcome bodies, in any order, and gives back the outcomes in log
/// order. A row is whatever the database hands out (a `String`, a driver's row): reading
/// the body out of it is left to the parser threads too.
#[derive(Debug)]
pub(crate) struct OutcomeLoader<R> {
    /// One channel per parser; chunk `n` goes to parser `n % parsers`.
    senders: Vec<mpsc::Sender<Vec<R>>>,
    parsers: Vec<JoinHandle<Parsed>>,
    chunk: Vec<R>,
    chunks_sent: usize,
}

impl<R: Send + 'static> OutcomeLoader<R> {
    /// Starts the parser threads, each turning a row into an outcome with `parse`. Must be
    /// called inside a Tokio runtime.
    pub fn new(parse: fn(&R) -> Result<Outcome, Error>) -> Self {
        let parsers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(PARSERS_MAX);
        let (senders, parsers) = (0..parsers)
            .map(|_| {
                let (sender, mut receiver) = mpsc::channel::<Vec<R>>(CHUNKS_QUEUED_MAX);
                let parser = tokio::task::spawn_blocking(move || {
                    let mut parsed = Vec::new();
                    while let Some(rows) = receiver.blocking_recv() {
                        let chunk: Result<Vec<Outcome>, Error> = rows.iter().map(parse).collect();
                        parsed.push(chunk?);
                    }
                    Ok(parsed)
                });
                (sender, parser)
            })
            .unzip();
        OutcomeLoader {
            senders,
            parsers,
            chunk: Vec::with_capacity(CHUNK_ROWS),
            chunks_sent: 0,
        }
    }

    /// Adds one row. Returns false once a parser has stopped on a bad row: stop reading
    /// and call [`finish`](Self::finish) for its error.
    pub async fn push(&mut self, row: R) -> bool {
        self.chunk.push(row);
        if self.chunk.len() < CHUNK_ROWS {
            return true;
        }
        self.send_chunk().await
    }

    /// Waits for the parsers and returns every outcome in log order, or the first error.
    pub async fn finish(mut self) -> Result<Vec<Outcome>, Error> {
        if !self.chunk.is_empty() {
            self.send_chunk().await;
        }
        self.senders.clear(); // Closing the channels lets each parser finish.
        let mut parsed = Vec::with_capacity(self.parsers.len());
        for parser in self.parsers {
            parsed.push(
                parser
                    .await
                    .expect("an outcome parser panicked")?
                    .into_iter(),
            );
        }
        let mut outcomes = Vec::new();
        let parsers = parsed.len();
        for n in 0..self.chunks_sent {
            let chunk = parsed[n % parsers].next();
            outcomes.extend(chunk.expect("every chunk sent was parsed"));
        }
        // Rows come in storage order, which is log order as they were appended; sort in
        // case the database chose otherwise (a stable sort of sorted input is one pass).
        outcomes.sort_by_key(|outcome| outcome.position.offset);
        Ok(outcomes)
    }

    async fn send_chunk(&mut self) -> bool {
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK_ROWS));
        let parser = &self.senders[self.chunks_sent % self.senders.len()];
        if parser.send(chunk).await.is_err() {
            return false;
        }
        self.chunks_sent += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use turnstile_schemas::{CommandKind, Decision, LogPosition, Rejection};

    use super::*;
    use crate::outcome_json;
    use crate::rows::parse_json;

    fn loader() -> OutcomeLoader<String> {
        OutcomeLoader::new(|body| parse_json(body))
    }

    fn rejected(offset: u64) -> Outcome {
        Outcome {
            request_id: format!("r{offset}"),
            resource_id: "drop".into(),
            user_id: "u".into(),
            command: CommandKind::Claim,
            position: LogPosition {
                partition: 0,
                offset,
            },
            decided_at: Utc.timestamp_opt(1_750_000_000, 0).single().expect("valid"),
            decision: Decision::Rejected {
                reason: Rejection::SoldOut,
            },
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn chunks_come_back_in_log_order_whatever_the_arrival_order() {
        let rows = CHUNK_ROWS as u64 * 5 + 7;
        // Arrival order: each run of 1000 reversed, so every chunk is out of order.
        let arrival: Vec<u64> = (0..rows)
            .collect::<Vec<_>>()
            .chunks(1000)
            .flat_map(|run| run.iter().rev().copied().collect::<Vec<_>>())
            .collect();
        let mut loader = loader();
        for offset in arrival {
            assert!(loader.push(outcome_json(&rejected(offset))).await);
        }
        let outcomes = loader.finish().await.expect("all bodies parse");
        assert_eq!(outcomes.len() as u64, rows);
        assert!(outcomes
            .iter()
            .enumerate()
            .all(|(n, outcome)| *outcome == rejected(n as u64)));
    }

    #[tokio::test]
    async fn a_bad_body_stops_the_load_with_corrupt() {
        let mut loader = loader();
        let mut accepted = 0;
        for offset in 0..CHUNK_ROWS as u64 * 20 {
            let body = if offset == 5 {
                "{\"not\": \"an outcome\"}".to_string()
            } else {
                outcome_json(&rejected(offset))
            };
            if !loader.push(body).await {
                break;
            }
            accepted += 1;
        }
        assert!(accepted < CHUNK_ROWS * 20, "the reader is told to stop");
        let err = loader
            .finish()
            .await
            .expect_err("a bad body fails the load");
        assert!(matches!(err, Error::Corrupt(_)), "{err}");
    }

    #[tokio::test]
    async fn no_rows_load_nothing() {
        assert_eq!(loader().finish().await.expect("empty"), []);
    }
}
