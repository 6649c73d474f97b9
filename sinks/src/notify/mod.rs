//! The notifier: tells users about their outcomes by e-mail, each message once.
//!
//! One loop ([`Notifier`], `sink.rs`) serves every transport: it reads the journal's outbox
//! per partition, turns each outcome worth telling into its [`Notification`]s
//! (`template.rs`), renders each in its resource's locale and time zone (the campaign's or
//! venue's; UTC for events and lots) into a [`Message`] (`message.rs`), and
//! hands it to a [`Transport`]: the local mailbox directory on the embedded default
//! (`mailbox.rs`), Amazon SES in production (`ses.rs`). An outcome may call for several
//! messages (a cancellation tells its guest and each waiting party offered the freed
//! covers), so every delivery is recorded in the journal's delivery ledger per message,
//! keyed by (sink, partition, log_offset, message_index), before and after the provider is
//! called; message 0 is the outcome's first, 1.. the further recipients in the decision's
//! order. The rules are `docs/exactly-once.md` ("Effects") and `docs/sinks.md`.
//!
//! # Layout
//! - `config.rs`: [`NotifierConfig`], the loop's settings and limits.
//! - `template.rs`: [`NotificationKind`], [`Notification`] and the per-locale templates.
//! - `message.rs`: [`Message`], its raw MIME, and [`RecipientRule`] (user id → address).
//! - `sink.rs`: [`Notifier`], the outbox → ledger → transport loop, and its counters.
//! - `mailbox.rs`, `ses.rs`: the transports, each with its one `is_retriable_*` rule.
//!
//! # What plugs in where
//! - A new kind adds its [`NotificationKind`] and a template in `template.rs` (coupons,
//!   seat holds, venue tables and auction lots each have a facts struct), and maps its
//!   outcome to it in `Notifier::notifications` (`sink.rs`), in a fixed order of
//!   recipients: that order is the ledger's message index. A resource's title, zone and
//!   locale come from the outcome that created it (`Journal::creation_outcome`), cached per
//!   resource. The ledger, retries and transports need nothing new.
//! - "Coupon expiring tomorrow" comes from the expiry scheduler (`crate::expiry`): the
//!   coupon's reminder timer writes a command into the log, the processor decides it
//!   (`Decision::CouponExpiring`), and the outcome reaches the outbox like any other.
//! - Another provider (SMTP) is one more [`Transport`] beside `ses.rs`.

mod config;
pub mod mailbox;
mod message;
pub mod ses;
mod sink;
mod template;

use std::future::Future;

pub use config::NotifierConfig;

/// The outbox kinds the notifier always sends at least one message for
/// (`Notifier::notifications` maps each to its templates): `turnstile audit` checks every
/// one a notifier has carried has a ledger row for its message 0. Kinds that call for
/// messages only sometimes are not listed, as the audit cannot tell from the kind alone:
/// `bid_accepted` (only when it outbid someone), `offer_declined` (only when the covers
/// went on to waiting parties) and `lot_closed_unsold` (only below the reserve).
pub const NOTIFIED_OUTBOX_KINDS: &[&str] = &[
    "coupon_granted",
    "coupon_expiry_reminder",
    "hold_confirmed",
    "hold_lapsed",
    "table_booked",
    "offer_accepted",
    "booking_cancelled",
    "waitlisted",
    "offer_lapsed",
    "lot_sold",
];
pub use message::{Message, RecipientRule};
pub use sink::{Notifier, NotifierStats, PassReport};
pub use template::{
    format_amount, CouponFacts, Locale, LotFacts, Notification, NotificationKind, Place, Rendered,
    SeatsFacts, TableFacts,
};

use crate::Error;

/// What a provider says when it accepted a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryReceipt {
    /// The provider's id for the message (SES's `MessageId`, the mailbox's file name),
    /// kept in the ledger.
    pub provider_message_id: String,
}

/// A way to send a message. Each transport decides, in one function, which of its
/// errors are worth retrying ([`Error::is_retriable`]).
pub trait Transport: Clone + Send + Sync + 'static {
    /// Hands `message` to the provider. `Ok` means the provider accepted it; a send may be
    /// repeated after a crash, with the same `Message-ID`.
    fn deliver(
        &self,
        message: &Message,
    ) -> impl Future<Output = Result<DeliveryReceipt, Error>> + Send;

    /// Whether delivering a message again leaves one effect, as the mailbox's rewrite of
    /// the same file does. Then a crash's ambiguity costs nothing, and the notifier records
    /// sends in the ledger a whole batch at a time instead of `sends_in_flight_max` at a
    /// time (which bounds the duplicates a crash can cause with a real provider).
    fn resend_is_harmless(&self) -> bool {
        false
    }
}
