//! Sinks: the effects of decisions, delivered from the journal's outbox.
//!
//! # Layout
//! - [`archive`]: the archive — the back office's table of issued coupons and their state,
//!   applied from the outbox in one transaction with its progress.
//! - [`expiry`]: the expiry scheduler — appends the commands of due timers (coupon
//!   expiries and reminders) to the log, so the partitions' single writers apply them.
//! - [`clock`]: where the scheduler's "now" comes from (the system, or a hand-set clock).
//! - [`notify`]: the notifier — one loop over the outbox and the delivery ledger, the
//!   templates per notification kind and locale, and its transports: a local mailbox
//!   directory (the embedded default, one `.eml` per message) and Amazon SES (production).
//!
//! Every sink follows the same contract (`docs/exactly-once.md`, "Effects";
//! `docs/sinks.md`): it reads the outbox, never the log; it keeps its own progress per
//! partition in the journal and saves it only after delivering; and it makes a repeated
//! delivery of an outcome id harmless, so a crash between delivering and saving progress
//! cannot produce a second effect that is not recognisable as one.

use std::time::Duration;

use tokio::sync::watch;

pub mod archive;
pub mod clock;
pub mod expiry;
pub mod notify;

/// Errors of the sinks.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The journal failed.
    #[error(transparent)]
    Journal(#[from] turnstile_journal::Error),
    /// Appending a timer's command to the log failed.
    #[error("cannot append a timer command to the log: {0}")]
    Append(String),
    /// Writing a message to the mailbox directory failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// SES refused or did not answer; `retriable` is [`notify::ses::is_retriable_error`]'s
    /// verdict on the SDK's error.
    #[error("SES: {message}")]
    Ses {
        /// What SES (or the SDK) said.
        message: String,
        /// Whether the same request may succeed later.
        retriable: bool,
    },
    /// A user id gives no valid e-mail address (see `notify::RecipientRule`).
    #[error("{0:?} is not a valid e-mail address (check the user id or --recipient-domain)")]
    InvalidAddress(String),
    /// A send task panicked or was cancelled.
    #[error("a send task failed: {0}")]
    Task(String),
}

impl Error {
    /// Whether trying again later can help.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Journal(e) => e.is_retriable(),
            Error::Io { source, .. } => notify::mailbox::is_retriable_io_error(source),
            Error::Append(_) => true,
            Error::Ses { retriable, .. } => *retriable,
            Error::InvalidAddress(_) | Error::Task(_) => false,
        }
    }
}

/// A sink's rest between passes: waits `pause`, or less if `shutdown` changes. False when
/// the sink must stop: the owner dropped the sender, so nobody could stop it later.
pub(crate) async fn rest(pause: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(pause) => true,
        changed = shutdown.changed() => changed.is_ok(),
    }
}
