//! `turnstile sinks status|retry`: the sinks' progress and delivery ledger, read from the
//! journal directly (like `turnstile audit`), so they work with the server down too.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde::Serialize;
use turnstile_journal::{Journal, SinkPartitionStatus};

use crate::JournalArgs;

/// `turnstile sinks …`.
#[derive(Debug, Args)]
pub struct SinksArgs {
    /// The data directory whose journal to read (unless --journal names another).
    #[arg(long, env = "TURNSTILE_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    #[command(flatten)]
    journal: JournalArgs,
    #[command(subcommand)]
    command: SinksCommand,
}

#[derive(Debug, Subcommand)]
enum SinksCommand {
    /// Each sink's progress per partition: where it is in the outbox, how far behind, and
    /// its deliveries by state (sent, failed, sending, queued for a retry).
    ///
    /// `sending` rows are messages in flight; with the server stopped they are messages
    /// a crash left ambiguous, which the sink resends (same Message-ID) when it starts.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Re-drive failed deliveries: the running sink sends them again.
    ///
    /// A delivery fails for good when the provider rejects it (an unverified sender, an
    /// invalid address) or transient errors outlast the retries; fix the cause, then run
    /// e.g. `turnstile sinks retry --sink ses` or `--outcome 2-1041`.
    Retry {
        /// Only this sink's failures (`mailbox`, `ses`).
        #[arg(long)]
        sink: Option<String>,
        /// Only this outcome's (`<partition>-<offset>`, as `sinks status` and the
        /// messages' X-Turnstile-Outcome-Id show it).
        #[arg(long, value_name = "PARTITION-OFFSET")]
        outcome: Option<String>,
    },
}

/// One sink's standing, as `--json` prints it.
#[derive(Debug, Serialize)]
struct SinkStatus {
    sink: String,
    partitions: Vec<SinkPartitionStatus>,
}

pub async fn run(args: SinksArgs) -> anyhow::Result<ExitCode> {
    let location = args.journal.location(&args.data_dir);
    match args.command {
        SinksCommand::Status { json } => {
            let journal = Journal::open_read_only(&location)
                .await
                .with_context(|| format!("cannot open the journal ({location})"))?;
            let mut sinks = Vec::new();
            for sink in journal.sink_names().await? {
                let partitions = journal.sink_status(&sink).await?;
                sinks.push(SinkStatus { sink, partitions });
            }
            journal.close().await;
            if json {
                println!("{}", serde_json::to_string_pretty(&sinks)?);
            } else {
                print!("{}", table(&sinks));
            }
            Ok(ExitCode::SUCCESS)
        }
        SinksCommand::Retry { sink, outcome } => {
            let outcome = outcome.as_deref().map(parse_outcome_id).transpose()?;
            let journal = Journal::open(&location)
                .await
                .with_context(|| format!("cannot open the journal ({location})"))?;
            let redriven = journal
                .redrive_failed_deliveries(sink.as_deref(), outcome, chrono::Utc::now())
                .await?;
            journal.close().await;
            println!("{redriven} failed deliveries queued for another attempt");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `<partition>-<offset>` → its parts.
fn parse_outcome_id(id: &str) -> anyhow::Result<(u32, u64)> {
    let parsed = id
        .split_once('-')
        .and_then(|(p, o)| Some((p.parse().ok()?, o.parse().ok()?)));
    match parsed {
        Some(parts) => Ok(parts),
        None => {
            bail!("--outcome {id:?} is not an outcome id: expected PARTITION-OFFSET, e.g. 2-1041")
        }
    }
}

fn table(sinks: &[SinkStatus]) -> String {
    let mut out = String::new();
    if sinks.is_empty() {
        out.push_str("no sink has delivered anything yet\n");
        return out;
    }
    let _ = writeln!(
        out,
        "{:<10} {:>9} {:>10} {:>10} {:>8} {:>8} {:>7} {:>8} {:>7}",
        "SINK",
        "PARTITION",
        "PROGRESS",
        "OUTBOX_END",
        "BACKLOG",
        "SENT",
        "FAILED",
        "SENDING",
        "QUEUED"
    );
    for sink in sinks {
        for p in &sink.partitions {
            let _ = writeln!(
                out,
                "{:<10} {:>9} {:>10} {:>10} {:>8} {:>8} {:>7} {:>8} {:>7}",
                sink.sink,
                p.partition,
                p.next_offset,
                p.outbox_end_offset,
                p.backlog_outcomes,
                p.sent,
                p.failed,
                p.sending,
                p.queued
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_ids_parse_or_say_what_is_expected() {
        assert_eq!(parse_outcome_id("2-1041").ok(), Some((2, 1041)));
        let error = parse_outcome_id("2:1041").expect_err("not an id");
        assert!(error.to_string().contains("PARTITION-OFFSET"), "{error}");
    }
}
