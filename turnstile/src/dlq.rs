//! `turnstile dlq`: list and replay dead-lettered log records through an edge's admin
//! routes (`/v1/admin/dead-letters`, see `ingest/src/admin.rs`).

use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::Value;

use crate::loadgen::{get_json, post_json, Target};

/// `turnstile dlq …`.
#[derive(Debug, Args)]
pub struct DlqArgs {
    /// The edge to ask, as http://HOST:PORT.
    #[arg(
        long,
        env = "TURNSTILE_TARGET",
        default_value = "http://127.0.0.1:8080"
    )]
    target: String,
    #[command(subcommand)]
    command: DlqCommand,
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// Every dead-lettered record: partition, offset, why, and its first bytes.
    List {
        /// Print the edge's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Append a dead-lettered record to the log again, e.g. after deploying a fix.
    ///
    /// Safe to repeat: a request already decided keeps its first outcome, and a record
    /// that is still invalid is dead-lettered again at its new offset.
    Replay {
        /// The record's partition, as listed.
        #[arg(long)]
        partition: u32,
        /// The record's offset, as listed.
        #[arg(long)]
        offset: u64,
    },
}

/// Longest payload excerpt shown by `list`.
const EXCERPT_CHARS_MAX: usize = 60;

pub async fn run(args: DlqArgs) -> anyhow::Result<ExitCode> {
    let target = Target::resolve(&args.target).await?;
    match args.command {
        DlqCommand::List { json } => {
            let (status, text) = get_json(&target, "/v1/admin/dead-letters").await?;
            let body = answer(status, &text)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&body)?);
            } else {
                print!("{}", table(&body));
            }
        }
        DlqCommand::Replay { partition, offset } => {
            let path = format!("/v1/admin/dead-letters/{partition}/{offset}/replay");
            let key = format!("dlq-replay-{partition}-{offset}");
            let (status, text) = post_json(&target, &path, &key, "").await?;
            let body = answer(status, &text)?;
            println!(
                "replayed partition {partition} offset {offset}: appended at partition {} offset {}",
                body["appended_at"]["partition"], body["appended_at"]["offset"]
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The edge's JSON answer, or its error as an error.
fn answer(status: u16, text: &str) -> anyhow::Result<Value> {
    let body: Value = serde_json::from_str(text)
        .with_context(|| format!("the edge answered {status} with non-JSON: {text}"))?;
    if status != 200 {
        bail!(
            "the edge answered {status}: {}{}",
            body["error"]["message"].as_str().unwrap_or(text),
            body["error"]["fix"]
                .as_str()
                .map_or(String::new(), |fix| format!(" ({fix})"))
        );
    }
    Ok(body)
}

fn table(body: &Value) -> String {
    let letters = body["dead_letters"].as_array().cloned().unwrap_or_default();
    if letters.is_empty() {
        return "no dead letters\n".to_string();
    }
    let mut out = format!(
        "{:>9} {:>12}  {:<50} payload\n",
        "partition", "offset", "reason"
    );
    for letter in &letters {
        let payload = match &letter["payload"] {
            Value::Object(p) if p.contains_key("text") => p["text"].as_str().unwrap_or("").into(),
            Value::Object(p) => format!("hex {}", p["hex"].as_str().unwrap_or("")),
            _ => String::new(),
        };
        let excerpt: String = payload.chars().take(EXCERPT_CHARS_MAX).collect();
        let ellipsis = if payload.chars().count() > EXCERPT_CHARS_MAX {
            "…"
        } else {
            ""
        };
        out += &format!(
            "{:>9} {:>12}  {:<50} {excerpt:?}{ellipsis}\n",
            letter["partition"],
            letter["offset"],
            letter["reason"].as_str().unwrap_or("")
        );
    }
    out += &format!("{} dead letters\n", letters.len());
    out
}
