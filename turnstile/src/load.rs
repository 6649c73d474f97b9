//! `turnstile load`: open-loop claims against running edges, with a report.
//!
//! The command sets the stage — resolves the targets, creates or finds the campaigns, notes
//! their stock — runs [`OpenLoad`], and prints its report with the stock afterwards, so that
//! the grants the client counted can be compared with the grants the server recorded.

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail};
use clap::Args;
use serde::Deserialize;
use turnstile_schemas::coupon::CAPACITY_MAX;

use crate::loadgen::{
    get_json, post_json, rate_text, thousands, CampaignStock, LoadReport, OpenLoad, Target,
};

/// Highest rate accepted: beyond what one client process can send, so that a slip of the
/// finger (an extra zero or three) is an error rather than a run made of misses.
const RATE_PER_SEC_MAX: f64 = 10_000_000.0;

/// Longest run accepted.
const DURATION_MAX: Duration = Duration::from_secs(24 * 3600);

/// Most campaigns one run claims from.
const RESOURCES_MAX: u32 = 10_000;

/// Options of `turnstile load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// An edge to send claims to, as http://HOST:PORT. Repeat for several edges: claims take
    /// turns between them and the connections are split evenly.
    #[arg(
        long = "target",
        value_name = "URL",
        default_value = "http://127.0.0.1:8080"
    )]
    targets: Vec<String>,
    /// Claims per second, on average. Arrivals are a Poisson process: random gaps, like real
    /// callers, not an even beat.
    #[arg(long, default_value_t = 1_000.0, value_parser = parse_rate)]
    rate: f64,
    /// How long claims are offered, e.g. 30s, 1500ms, 2m.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Simulated users; each claim is by one of them (`user-0`, `user-1`, …) at random.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    users: u64,
    /// Campaigns claimed from, named `load-SEED-0`, `load-SEED-1`, …; each claim picks one at
    /// random.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=i64::from(RESOURCES_MAX)))]
    resources: u32,
    /// Coupons in each campaign created by --create-campaigns.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..=i64::from(CAPACITY_MAX)))]
    coupons_per_resource: u32,
    /// Create the campaigns first (one coupon per user, UTC). Without it they must exist
    /// already, e.g. from an earlier run with the same --seed.
    #[arg(long)]
    create_campaigns: bool,
    /// Seeds the arrival times, users and campaigns: the same seed offers the same load.
    /// Also names the campaigns.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Keep-alive HTTP connections, split evenly over the targets.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    connections: u64,
    /// Claims that may wait for a free connection. A claim that comes due when this many
    /// already wait is not sent and is reported as missed.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    backlog_requests_max: u64,
    /// After the last claim is due, how long answers are still awaited. Claims still
    /// unanswered then are reported, not waited for.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    drain_timeout: Duration,
    /// Send `Prefer: wait=SECONDS` with each claim: the edge answers 202 when the decision
    /// takes longer (0: right after the claim is on the log). Default: the edge's wait budget.
    #[arg(long, value_name = "SECONDS")]
    prefer_wait_s: Option<u64>,
    /// Print the report as JSON on stdout instead of text.
    #[arg(long)]
    json: bool,
    /// Hide the progress bar.
    #[arg(long)]
    quiet: bool,
}

pub async fn run(args: LoadArgs) -> anyhow::Result<ExitCode> {
    let mut targets = Vec::with_capacity(args.targets.len());
    for url in &args.targets {
        targets.push(Target::resolve(url).await?);
    }
    if (args.connections as usize) < targets.len() {
        bail!(
            "--connections {} is fewer than the {} targets: each target needs at least one",
            args.connections,
            targets.len()
        );
    }
    for target in &targets {
        target
            .probe()
            .await
            .map_err(|e| anyhow!("{e} (is an edge such as `turnstile serve` running there?)"))?;
    }
    let campaign_ids: Vec<String> = (0..args.resources)
        .map(|i| format!("load-{}-{i}", args.seed))
        .collect();
    if args.create_campaigns {
        for target in &targets {
            for campaign_id in &campaign_ids {
                create_campaign(target, campaign_id, args.coupons_per_resource).await?;
            }
        }
    }
    let before = stock(&targets, &campaign_ids, args.seed).await?;

    if !args.json {
        println!(
            "turnstile load: {} claims/s for {} on {} ({} users, {} connections) against {}",
            rate_text(args.rate),
            humantime::format_duration(args.duration),
            campaign_range(&campaign_ids),
            thousands(args.users),
            thousands(args.connections),
            targets
                .iter()
                .map(|t| t.url.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
    let load = OpenLoad {
        targets: targets.clone(),
        campaign_ids: campaign_ids.clone(),
        rate_per_sec: args.rate,
        duration: args.duration,
        users: args.users,
        seed: args.seed,
        connections: args.connections as usize,
        backlog_requests_max: args.backlog_requests_max as usize,
        drain_timeout: args.drain_timeout,
        prefer_wait_s: args.prefer_wait_s,
        key_prefix: format!("load-{}-{}", args.seed, run_id()),
        show_progress: !args.quiet,
    };
    let mut report = load.run().await?;
    attach_stock(&mut report, &targets, &campaign_ids, before, args.seed).await;

    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.summary())?);
    } else {
        print!("{}", report.render());
    }
    if report.scheduled > 0 && report.counts.answered() == 0 {
        eprintln!("error: no claim was answered");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `--rate`: a positive number of claims per second, at most [`RATE_PER_SEC_MAX`].
fn parse_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of claims per second, e.g. 20000"))?;
    if !(rate.is_finite() && rate > 0.0) {
        return Err("the rate must be more than 0 claims per second".into());
    }
    if rate > RATE_PER_SEC_MAX {
        return Err(format!(
            "{rate} claims/s is more than one client can offer (at most {RATE_PER_SEC_MAX}); \
             run several clients instead"
        ));
    }
    Ok(rate)
}

/// `--duration` and `--drain-timeout`: a human duration such as `30s` or `1500ms`, longer than
/// zero and at most [`DURATION_MAX`].
fn parse_duration(text: &str) -> Result<Duration, String> {
    if text.trim().parse::<f64>().is_ok() {
        return Err(format!("{text} needs a unit, e.g. {text}s or {text}ms"));
    }
    let duration = humantime::parse_duration(text)
        .map_err(|e| format!("{e}; write a duration such as 30s, 1500ms or 2m"))?;
    if duration.is_zero() {
        return Err("must be longer than zero".into());
    }
    if duration > DURATION_MAX {
        return Err(format!(
            "must be at most {}",
            humantime::format_duration(DURATION_MAX)
        ));
    }
    Ok(duration)
}

/// Tells this run's idempotency keys from every other run's, so that a run with the same seed
/// sends new claims instead of replays of old ones: milliseconds since the epoch, base 36.
fn run_id() -> String {
    let mut millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let mut digits = Vec::new();
    loop {
        let digit = u32::try_from(millis % 36).expect("a digit below 36");
        digits.push(char::from_digit(digit, 36).expect("a digit below 36"));
        millis /= 36;
        if millis == 0 {
            break;
        }
    }
    digits.iter().rev().collect()
}

/// `load-1-0 .. load-1-3`, or the one id.
fn campaign_range(ids: &[String]) -> String {
    match ids {
        [one] => format!("campaign {one}"),
        [first, .., last] => format!("{} campaigns {first} .. {last}", ids.len()),
        [] => "no campaign".into(),
    }
}

/// Creates one campaign; fine if it exists already.
async fn create_campaign(target: &Target, campaign_id: &str, coupons: u32) -> anyhow::Result<()> {
    let body = serde_json::json!({
        "campaign_id": campaign_id,
        "title": "turnstile load",
        "capacity": coupons,
        "per_user_limit": 1,
        "time_zone": "UTC",
        "valid_days": 0,
    });
    let (status, text) = post_json(
        target,
        "/v1/campaigns",
        &format!("create-{campaign_id}"),
        &body.to_string(),
    )
    .await?;
    match status {
        // 200 is a replay: an earlier run with this seed created it.
        200 | 201 => Ok(()),
        409 if text.contains("\"campaign_exists\"") => Ok(()),
        _ => bail!(
            "creating campaign {campaign_id} on {} answered {status}: {text}",
            target.url
        ),
    }
}

/// The fields of `GET /v1/campaigns/{id}` the report needs.
#[derive(Deserialize)]
struct CampaignView {
    spec: CampaignSpecView,
    issued: u64,
}

#[derive(Deserialize)]
struct CampaignSpecView {
    capacity: u64,
}

/// `(capacity, issued)` of every campaign on every target, target by target; an error naming
/// the fix when a campaign does not exist.
async fn stock(
    targets: &[Target],
    campaign_ids: &[String],
    seed: u64,
) -> anyhow::Result<Vec<(u64, u64)>> {
    let mut rows = Vec::with_capacity(targets.len() * campaign_ids.len());
    for target in targets {
        for campaign_id in campaign_ids {
            let (status, text) = get_json(target, &format!("/v1/campaigns/{campaign_id}")).await?;
            match status {
                200 => {
                    let view: CampaignView = serde_json::from_str(&text).map_err(|e| {
                        anyhow!("{} answered campaign {campaign_id} with {e}: {text}", target.url)
                    })?;
                    rows.push((view.spec.capacity, view.issued));
                }
                404 => bail!(
                    "campaign {campaign_id} does not exist on {}: pass --create-campaigns to \
                     create {} (or use the --seed of the run that created them)",
                    target.url,
                    campaign_range(campaign_ids),
                ),
                _ => bail!(
                    "looking up campaign {campaign_id} on {} answered {status}: {text} (seed {seed})",
                    target.url
                ),
            }
        }
    }
    Ok(rows)
}

/// Looks at the stock again and puts before and after in the report. A target that no longer
/// answers leaves the stock out, with a warning: the run itself is reported either way.
async fn attach_stock(
    report: &mut LoadReport,
    targets: &[Target],
    campaign_ids: &[String],
    before: Vec<(u64, u64)>,
    seed: u64,
) {
    let after = match stock(targets, campaign_ids, seed).await {
        Ok(after) => after,
        Err(e) => {
            eprintln!("warning: cannot read the campaigns' stock after the run: {e:#}");
            return;
        }
    };
    let names = targets
        .iter()
        .flat_map(|t| campaign_ids.iter().map(move |c| (t, c)));
    report.stock = names
        .zip(before.into_iter().zip(after))
        .map(
            |((target, campaign_id), ((capacity, issued_before), (_, issued_after)))| {
                CampaignStock {
                    target: target.url.clone(),
                    campaign_id: campaign_id.clone(),
                    capacity,
                    issued_before,
                    issued_after,
                }
            },
        )
        .collect();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_must_be_positive_and_sane() {
        assert_eq!(parse_rate("20000"), Ok(20_000.0));
        assert_eq!(parse_rate("0.5"), Ok(0.5));
        assert!(parse_rate("0").is_err_and(|e| e.contains("more than 0")));
        assert!(parse_rate("-3").is_err_and(|e| e.contains("more than 0")));
        assert!(parse_rate("NaN").is_err());
        assert!(parse_rate("fast").is_err_and(|e| e.contains("not a number")));
        assert!(parse_rate("1e9").is_err_and(|e| e.contains("more than one client")));
    }

    #[test]
    fn durations_are_human_and_bounded() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("30").is_err_and(|e| e.contains("e.g. 30s or 30ms")));
        assert!(parse_duration("3o s").is_err_and(|e| e.contains("such as 30s")));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("0s").is_err_and(|e| e.contains("longer than zero")));
        assert!(parse_duration("2days").is_err_and(|e| e.contains("at most")));
    }

    #[test]
    fn run_ids_are_short_base36() {
        let id = run_id();
        assert!(!id.is_empty() && id.len() <= 12, "{id}");
        assert!(id
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()));
    }

    #[test]
    fn campaign_ranges() {
        let ids: Vec<String> = (0..4).map(|i| format!("load-1-{i}")).collect();
        assert_eq!(campaign_range(&ids), "4 campaigns load-1-0 .. load-1-3");
        assert_eq!(campaign_range(&ids[..1]), "campaign load-1-0");
    }
}
