//! What every domain other than the coupon campaign provides to the partition: a pure
//! state machine split into *decide* and *evolve* (docs/domains.md).
//!
//! - [`Domain::decide`] looks at the state and a command and returns the decision, or the
//!   rejection that changes nothing. It never mutates.
//! - [`Domain::evolve`] applies a decision to the state. It is the only mutation, and it
//!   is also how a recovering partition rebuilds the state from the journal's outcomes:
//!   `apply = decide + evolve`, `restore = evolve`. A decision therefore carries every fact
//!   the state needs (seat numbers, hold expiry, bid amounts), never a reference to the
//!   command that produced it.
//! - The timer commands a decision schedules are a function of the decision alone,
//!   `Decision::timers` in schemas: the journal stores them in the commit of the decision
//!   and the expiry scheduler writes them back into the log when due, stamped with their
//!   due time.
//!
//! The coupon campaign predates this split and keeps its compact verdicts for speed
//! (millions of grants per partition); the other domains decide thousands of times per
//! resource, so they keep their decisions in full.

use chrono::{DateTime, Utc};
use turnstile_schemas::{Decision, Rejection};

/// A pure state machine for one kind of resource.
pub trait Domain: Sized + Clone + std::fmt::Debug {
    /// What an operator sets when creating the resource.
    type Spec: Clone + PartialEq + std::fmt::Debug;
    /// The commands on an existing resource (creation excluded).
    type Command: Clone + std::fmt::Debug;

    /// A new resource from its spec, or a message naming what is wrong with the spec.
    fn create(resource_id: &str, spec: &Self::Spec) -> Result<Self, String>;

    /// The spec of `command` if it is the domain's create command (`CreateEvent`, ...).
    /// The partition decides creates itself, with [`Domain::create`]; `decide` is never
    /// called with one.
    fn create_command_spec(command: &Self::Command) -> Option<&Self::Spec>;

    /// The decision that records a creation (`Decision::EventCreated { spec }`, ...).
    fn created(spec: &Self::Spec) -> Decision;

    /// The spec of `decision` if it is this domain's creation decision: how recovery
    /// recreates the resource.
    fn created_spec(decision: &Decision) -> Option<&Self::Spec>;

    /// The spec it was created with (a repeated create with an equal spec is answered as
    /// created, with another one it is refused).
    fn spec(&self) -> &Self::Spec;

    /// The decision `command` by `user_id` gets at `now`. Pure and non-mutating: the
    /// caller applies the decision with [`Domain::evolve`].
    fn decide(
        &self,
        user_id: &str,
        command: &Self::Command,
        now: DateTime<Utc>,
    ) -> Result<Decision, Rejection>;

    /// Applies a decision this domain made (now or, during recovery, in an earlier life).
    /// Panics on a decision that contradicts the state: that is a bug or a corrupt
    /// journal, and deciding on would break an invariant.
    fn evolve(&mut self, user_id: &str, decision: &Decision);

    /// Bytes of heap the state holds, for the memory figures.
    fn heap_bytes(&self) -> usize;
}
