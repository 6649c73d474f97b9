//! Sinks: the effects of decisions, delivered from the journal's outbox.
//!
//! # Layout
//! - [`expiry`]: the expiry scheduler — appends the commands of due timers (coupon
//!   expiries and reminders) to the log, so the partitions' single writers apply them.
//! - [`clock`]: where the scheduler's "now" comes from (the system, or a hand-set clock).
//! - [`mailbox`]: the embedded default's notifier — one `.eml` file per granted coupon in a
//!   local mailbox directory (SES and SMTP come later, beside it, with the same shape).
//!
//! Every sink follows the same contract (`docs/exactly-once.md`, "Effects"): it reads the
//! outbox, never the log; it keeps its own progress per partition in the journal and saves
//! it only after delivering; and it makes a repeated delivery of an outcome id harmless, so
//! a crash between delivering and saving progress cannot produce a second effect.

pub mod clock;
pub mod expiry;
pub mod mailbox;

/// Errors of the sinks.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The journal failed.
    #[error(transparent)]
    Journal(#[from] turnstile_journal::Error),
    /// Appending a timer's command to the log failed.
    #[error("cannot append a timer command to the log: {0}")]
    Append(String),
    /// Writing a delivery failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl Error {
    /// Whether trying again later can help.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Journal(e) => e.is_retriable(),
            Error::Io { .. } | Error::Append(_) => true,
        }
    }
}
