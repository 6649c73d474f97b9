//! The mailbox transport of the embedded default: one `.eml` file per message in a local
//! directory, named by outcome id (and index, for an outcome's further messages).
//!
//! Each file is written through a temporary file and a rename, so a message is either whole
//! or absent, and sending an outcome twice (a resend after a crash) rewrites the same file
//! with the same bytes.
//!
//! Known limit: files are not fsync'd before the ledger says `sent`, so a power loss (not a
//! process crash) may lose the last messages; SES has no such gap.

use std::path::{Path, PathBuf};

use super::{DeliveryReceipt, Message, Transport};
use crate::Error;

/// Writes messages to `<dir>/<outcome_id>.eml`, an outcome's further messages to
/// `<dir>/<outcome_id>.<index>.eml`.
#[derive(Debug, Clone)]
pub struct MailboxTransport {
    dir: PathBuf,
}

impl MailboxTransport {
    /// A mailbox in `dir`, created if missing.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, Error> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(MailboxTransport { dir })
    }

    /// The file a message is written to, by its key ([`Message::key`]: the outcome id for
    /// an outcome's first message).
    pub fn path_of(&self, message_key: &str) -> PathBuf {
        self.dir.join(format!("{message_key}.eml"))
    }
}

impl Transport for MailboxTransport {
    async fn deliver(&self, message: &Message) -> Result<DeliveryReceipt, Error> {
        let key = message.key();
        let path = self.path_of(&key);
        write_atomically(&path, &message.to_mime()).await?;
        Ok(DeliveryReceipt {
            provider_message_id: format!("{key}.eml"),
        })
    }

    /// A message is a file named by its outcome id and index, written through a rename: writing it
    /// again replaces it with the same bytes.
    fn resend_is_harmless(&self) -> bool {
        true
    }
}

/// Whether an I/O error of the mailbox may pass: a full disk or an interrupted call may;
/// a directory that is not writable, or gone, needs an operator (the message is recorded
/// `failed` and re-driven once it is fixed).
pub fn is_retriable_io_error(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    !matches!(
        error.kind(),
        ErrorKind::PermissionDenied | ErrorKind::NotFound | ErrorKind::ReadOnlyFilesystem
    )
}

/// Writes `bytes` to `path` via a temporary file and a rename: whole or absent.
async fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let temporary = path.with_extension("eml.tmp");
    let io_error = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    tokio::fs::write(&temporary, bytes)
        .await
        .map_err(io_error)?;
    tokio::fs::rename(&temporary, path).await.map_err(io_error)
}
