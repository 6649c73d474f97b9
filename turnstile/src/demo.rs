//! `turnstile demo`: a whole coupon drop on the embedded default, with a report.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;
use turnstile_journal::Journal;
use turnstile_schemas::Decision;

use crate::loadgen::ClaimRace;
use crate::stack::{default_journal, journal_path, EmbeddedStack};
use crate::Tuning;

/// The campaign the demo creates.
const DEMO_CAMPAIGN_ID: &str = "demo-drop";

/// Options of `turnstile demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Simulated users racing for the coupons (each claims once).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    users: u64,
    /// Coupons in the drop.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..=100_000_000))]
    coupons: u32,
    /// Concurrent HTTP connections the users share.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    connections: u64,
    /// Every N-th user retries its claim with the same Idempotency-Key (0: nobody does),
    /// to show that a retry gets the same answer.
    #[arg(long, default_value_t = 50)]
    retry_every: u64,
    /// Keep the data here instead of a temporary directory (then `turnstile audit
    /// --data-dir DIR` can inspect it afterwards). Must not hold an earlier demo's data.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Hide the progress bar.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    tuning: Tuning,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let temp = tempfile::tempdir().context("cannot create a temporary directory")?;
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    if journal_path(&data_dir).exists() {
        bail!(
            "{} already holds turnstile data; the demo needs a fresh directory",
            data_dir.display()
        );
    }
    let listen: SocketAddr = "127.0.0.1:0".parse().expect("a valid literal address");
    let journal = default_journal(&data_dir);
    let stack = EmbeddedStack::start(&args.tuning.stack_config(
        data_dir.clone(),
        journal,
        None,
        listen,
    ))
    .await?;
    println!(
        "turnstile demo: {} users race for {} coupons over HTTP on {} ({} partitions, data in {})",
        args.users,
        args.coupons,
        stack.addr,
        args.tuning.partitions,
        data_dir.display()
    );
    create_campaign(stack.addr, args.coupons).await?;
    let race = ClaimRace {
        target: stack.addr.into(),
        campaign_id: DEMO_CAMPAIGN_ID.to_string(),
        users: args.users,
        connections: args.connections as usize,
        retry_every: args.retry_every,
        show_progress: !args.quiet,
    };
    let report = run_as_separate_client(race).await?;
    stack.stop().await?;

    let journal = Journal::open_read_only(&default_journal(&data_dir)).await?;
    let issued = journal
        .campaigns()
        .await?
        .into_iter()
        .find(|c| c.campaign_id == DEMO_CAMPAIGN_ID)
        .map_or(0, |c| c.issued);
    let unconfirmed = confirm_grants(&journal, &report.counts.granted_keys).await?;
    journal.close().await;
    let audit = crate::audit::audit_data_dir(&data_dir, &default_journal(&data_dir)).await?;

    let expected = u64::from(args.coupons).min(args.users);
    println!();
    print!("{}", report.render());
    println!(
        "granted: {issued} of {} coupons (expected {expected})",
        args.coupons
    );
    println!(
        "grants acknowledged with 201 and confirmed in the journal: {}",
        report.counts.granted_keys.len() - unconfirmed
    );
    print!("{audit}");

    let mut failures = Vec::new();
    if u64::from(issued) != expected {
        failures.push(format!("{issued} coupons issued, expected {expected}"));
    }
    if unconfirmed > 0 {
        failures.push(format!(
            "{unconfirmed} acknowledged grants are missing from the journal"
        ));
    }
    if report.counts.replay_mismatches > 0 {
        failures.push(format!(
            "{} retries got a different answer",
            report.counts.replay_mismatches
        ));
    }
    if report.counts.errors > 0 {
        failures.push(format!("{} requests failed", report.counts.errors));
    }
    if !audit.passed() {
        failures.push("the audit failed".to_string());
    }
    if failures.is_empty() {
        println!("demo: OK");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("demo: FAILED — {}", failures.join("; "));
        Ok(ExitCode::FAILURE)
    }
}

/// Runs the race on a runtime of its own, as a separate client would: sharing the edge's
/// runtime would let the crowd's tasks queue in front of the server's and blur the figures.
async fn run_as_separate_client(race: ClaimRace) -> anyhow::Result<crate::loadgen::RaceReport> {
    let (report_tx, report_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("turnstile-demo-crowd".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build();
            let report = match runtime {
                Ok(runtime) => runtime.block_on(race.run()).map_err(anyhow::Error::from),
                Err(e) => Err(anyhow::Error::from(e).context("cannot start the crowd's runtime")),
            };
            // The receiver only goes away if the demo itself is gone.
            let _ = report_tx.send(report);
        })?;
    report_rx
        .await
        .context("the crowd's thread died")?
        .context("the claim race failed")
}

async fn create_campaign(addr: SocketAddr, coupons: u32) -> anyhow::Result<()> {
    let body = serde_json::json!({
        "campaign_id": DEMO_CAMPAIGN_ID,
        "title": "90% off, today only",
        "capacity": coupons,
        "per_user_limit": 1,
        "time_zone": "Asia/Seoul",
        "valid_days": 0,
    });
    let (status, text) = crate::loadgen::post_json(
        &addr.into(),
        "/v1/campaigns",
        "create-demo-drop",
        &body.to_string(),
    )
    .await
    .context("cannot create the demo campaign")?;
    if status != 201 && status != 200 {
        bail!("creating the demo campaign answered {status}: {text}");
    }
    Ok(())
}

/// Counts 201 answers whose coupon the journal does not hold for that request.
async fn confirm_grants(journal: &Journal, granted: &[(String, String)]) -> anyhow::Result<usize> {
    let mut unconfirmed = 0;
    for (request_id, coupon_id) in granted {
        let confirmed = matches!(
            journal.outcome(DEMO_CAMPAIGN_ID, request_id).await?,
            Some(outcome) if matches!(&outcome.decision, Decision::CouponGranted { coupon } if &coupon.coupon_id == coupon_id)
        );
        if !confirmed {
            unconfirmed += 1;
        }
    }
    Ok(unconfirmed)
}
