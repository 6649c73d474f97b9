//! Partitioned processors: the pure domain state machines and the runtime that drives them.
//!
//! # Layout
//! - [`coupon`]: the coupon-campaign state machine and its local-midnight validity rule.
//! - [`domain`]: the decide/evolve interface of the other domains: [`seats`] (seated
//!   events), [`venue`] (restaurant slots) and [`auction`] (auction lots).
//! - [`partition`]: one partition's state — every resource it owns plus the decision of
//!   each request — and `apply`, the single entry point for decisions.
//! - [`text_table`]: the compact string-keyed table that state is kept in.
//! - [`kafka_group`]: processors for the partitions a Kafka consumer group assigns.
//! - [`runtime`]: the imperative shell: read a batch from the log, decide it, commit it to
//!   the journal in one transaction, tell listeners; fence and recover on start.
//!
//! Everything under `coupon` and `partition` is deterministic: no I/O, no clock reads, no
//! randomness. Replaying the same log yields byte-identical outcomes (invariant 6).

pub mod auction;
pub mod coupon;
pub mod domain;
pub mod kafka_group;
pub mod metrics;
pub mod partition;
pub mod runtime;
pub mod seats;
pub mod text_table;
pub mod venue;

pub use partition::{Applied, DecisionRef, PartitionState};
