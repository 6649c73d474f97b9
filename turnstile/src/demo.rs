//! `turnstile demo`: a whole scenario on the embedded default, with a report.
//!
//! `--scenario coupons` (the default) is a coupon drop raced by a closed loop
//! ([`crate::loadgen::ClaimRace`]); the others drive a crowd of simulated people over the
//! same HTTP client, each person a task of its own ([`crowd`]):
//! - [`tickets`]: fans hold, confirm, release or abandon best-available seats;
//! - [`restaurant`]: a dinner rush of bookings, cancellations, waitlists and offers;
//! - [`auction`]: a bidding war on a few lots with proxy bids and snipers.
//!
//! Every scenario starts the embedded stack in a fresh directory, stops it, runs the audit
//! and checks its own invariants from the answers, the views and the journal; a broken one
//! fails the demo (exit code 1).

mod auction;
mod crowd;
mod restaurant;
mod tickets;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use turnstile_journal::Journal;
use turnstile_schemas::Decision;

use crate::loadgen::ClaimRace;
use crate::stack::{default_journal, journal_path, EmbeddedStack};
use crate::Tuning;

/// The campaign the demo creates.
const DEMO_CAMPAIGN_ID: &str = "demo-drop";

/// What `turnstile demo` plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// A coupon drop: users race for coupons, one each.
    Coupons,
    /// A seated event on sale: fans hold best-available seats, most buy, some release,
    /// some abandon and their holds lapse; lapsed seats are sold again.
    Tickets,
    /// A restaurant's dinner rush: bookings, cancellations, waitlists, timed offers.
    Restaurant,
    /// An auction: a bidding war on a few lots with proxy bids and last-second snipers.
    Auction,
}

/// Options of `turnstile demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// What to play.
    #[arg(long, value_enum, default_value_t = Scenario::Coupons)]
    scenario: Scenario,
    /// Simulated people: users racing for coupons (default 100,000), fans (50,000), diners
    /// (3,000), bidders (600); with --small 20,000, 2,000, 300 and 120.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    users: Option<u64>,
    /// A small run of the scenario (a few seconds; what the tests run). Explicit sizes
    /// still win.
    #[arg(long)]
    small: bool,
    /// Tickets: seats in the event (default 5,000; 200 with --small).
    #[arg(long, value_parser = clap::value_parser!(u32).range(3..=100_000))]
    seats: Option<u32>,
    /// Auction: lots on sale (default 5; 2 with --small).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
    lots: Option<u32>,
    /// Seed of the crowd's choices (party sizes, valuations, who abandons, ...).
    #[arg(long, default_value_t = 1)]
    seed: u64,
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
    match args.scenario {
        Scenario::Coupons => run_coupons(args).await,
        Scenario::Tickets => tickets::run(&args).await,
        Scenario::Restaurant => restaurant::run(&args).await,
        Scenario::Auction => auction::run(&args).await,
    }
}

impl DemoArgs {
    /// `--users`, or the scenario's default for the run's size.
    fn users_or(&self, default: u64, small: u64) -> u64 {
        self.users
            .unwrap_or(if self.small { small } else { default })
    }
}

/// A running stack in a fresh data directory.
pub(crate) struct DemoStack {
    pub stack: EmbeddedStack,
    pub data_dir: PathBuf,
    _temp: tempfile::TempDir,
}

impl DemoStack {
    /// Starts the embedded stack in `--data-dir` or a temporary directory.
    pub(crate) async fn start(args: &DemoArgs) -> anyhow::Result<Self> {
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
        let stack = EmbeddedStack::start(&args.tuning.stack_config(
            data_dir.clone(),
            default_journal(&data_dir),
            None,
            listen,
        ))
        .await?;
        Ok(DemoStack {
            stack,
            data_dir,
            _temp: temp,
        })
    }

    /// Stops the stack, reads the outcomes of `resources` from the journal (each resource's
    /// in log order) and runs the audit.
    pub(crate) async fn stop(
        self,
        resources: &[String],
    ) -> anyhow::Result<(Vec<turnstile_schemas::Outcome>, crate::audit::AuditReport)> {
        self.stack.stop().await?;
        let location = default_journal(&self.data_dir);
        let journal = Journal::open_read_only(&location).await?;
        let mut outcomes = Vec::new();
        for lease in journal.partitions().await? {
            for outcome in journal.load_outcomes(lease.partition).await? {
                if resources.contains(&outcome.resource_id) {
                    outcomes.push(outcome);
                }
            }
        }
        journal.close().await;
        outcomes.sort_by_key(|o| o.position);
        let audit = crate::audit::audit_data_dir(&self.data_dir, &location).await?;
        Ok((outcomes, audit))
    }
}

/// Prints the checks and the verdict; exit code 1 when any check failed.
pub(crate) fn verdict(checks: &[(String, bool)], mut failures: Vec<String>) -> ExitCode {
    for (check, passed) in checks {
        println!("  [{}] {check}", if *passed { "ok" } else { "FAILED" });
        if !passed {
            failures.push(check.clone());
        }
    }
    if failures.is_empty() {
        println!("demo: OK");
        ExitCode::SUCCESS
    } else {
        println!("demo: FAILED — {}", failures.join("; "));
        ExitCode::FAILURE
    }
}

async fn run_coupons(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let users = args.users_or(100_000, 20_000);
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
        users,
        args.coupons,
        stack.addr,
        args.tuning.partitions,
        data_dir.display()
    );
    create_campaign(stack.addr, args.coupons).await?;
    let race = ClaimRace {
        target: stack.addr.into(),
        campaign_id: DEMO_CAMPAIGN_ID.to_string(),
        users,
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

    let expected = u64::from(args.coupons).min(users);
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
