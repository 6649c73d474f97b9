//! The `turnstile` command.
//!
//! # Layout
//! - `main.rs`: the command line (clap) and logging setup.
//! - [`stack`]: the embedded stack — log, journal, processors, edge — in one process.
//! - [`demo`]: `turnstile demo`, a whole flash sale on loopback with a report.
//! - [`load`]: `turnstile load`, open-loop claims against running edges with a report.
//! - [`loadgen`]: the load generators and their shared HTTP client: the demo's closed-loop
//!   race and the open loop of `turnstile load`.
//! - [`audit`]: `turnstile audit`, the invariant checks and the replay of the log.
//! - [`dlq`]: `turnstile dlq list|replay`, dead-lettered records through an edge.
//! - [`sinks`]: `turnstile sinks status|retry`, the sinks' progress and delivery ledger.

mod audit;
mod demo;
mod dlq;
mod domain_audit;
mod load;
mod loadgen;
mod sinks;
mod stack;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use turnstile_edge_state::EdgeStateConfig;
use turnstile_ingest::auth::Authenticator;
use turnstile_ingest::limits::LimitsConfig;
use turnstile_ingest::EdgeConfig;
use turnstile_journal::JournalLocation;
use turnstile_log_kafka::KafkaLogConfig;
use turnstile_processors::runtime::ProcessorConfig;

use crate::stack::{EmbeddedStack, NotifierSettings, NotifierTransport, StackConfig};

/// turnstile: flash-traffic allocation, exactly once.
///
/// Producers post claims to an HTTP edge; the edge writes them to a durable log; one
/// processor per partition decides them in log order and commits each batch of decisions
/// with the log offset in one journal transaction. By default everything runs in one
/// process on local files (an embedded log and a SQLite journal): no servers needed.
#[derive(Debug, Parser)]
#[command(name = "turnstile", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Debug, Subcommand)]
enum Commands {
    /// Run the edge and the processors on the embedded log and SQLite journal (or a
    /// PostgreSQL journal with --journal postgres://…).
    ///
    /// Prints `turnstile listening on http://ADDR` once recovery is done and requests are
    /// accepted. Stop with Ctrl-C or SIGTERM; a restart resumes exactly where the journal
    /// left off.
    Serve(Box<ServeArgs>),
    /// Run a whole flash sale on loopback and print a report with the invariant audit.
    ///
    /// Starts the embedded stack in a temporary directory, creates a campaign, and has
    /// USERS simulated users race over real HTTP for COUPONS coupons. Exits non-zero if
    /// the audit fails or the grants do not match the capacity.
    Demo(demo::DemoArgs),
    /// Offer claims at a fixed rate to running edges and report latency and answers.
    ///
    /// Open loop: claims come due on a seeded Poisson schedule whether or not earlier ones
    /// were answered, and each claim's latency is measured from when it was due, so a server
    /// that falls behind shows it (no coordinated omission). Claims that would have to wait
    /// behind more than --backlog-requests-max others are not sent and are reported as missed.
    ///
    /// For example, against `turnstile serve` on its default address:
    /// `turnstile load --create-campaigns --rate 10000 --duration 10s`.
    Load(load::LoadArgs),
    /// Check the invariants of a data directory: no oversell, per-user limits, one outcome
    /// per request, and a replay of the log reproducing every outcome byte for byte.
    ///
    /// Safe to run while `turnstile serve` is running on the same directory.
    Audit {
        /// The data directory to audit.
        #[arg(long, env = "TURNSTILE_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
        #[command(flatten)]
        journal: JournalArgs,
        /// With a Kafka log: replay its topic instead of the data directory's log.
        #[command(flatten)]
        kafka: KafkaArgs,
        /// The Kafka topic's partition count (the embedded log knows its own).
        #[arg(long, env = "TURNSTILE_PARTITIONS", default_value_t = 4)]
        partitions: u32,
    },
    /// List dead-lettered log records, or replay one, through a running edge.
    ///
    /// A record that does not parse, has an unknown envelope version or sits on the wrong
    /// partition is dead-lettered by its processor, which moves on. For example:
    /// `turnstile dlq list`, then `turnstile dlq replay --partition 2 --offset 1041`.
    Dlq(dlq::DlqArgs),
    /// Show the sinks' progress and delivery ledger, or re-drive failed deliveries.
    ///
    /// Reads the journal directly: `turnstile sinks status` (add --json for scripts),
    /// `turnstile sinks retry --sink ses`.
    Sinks(sinks::SinksArgs),
    /// Write the JSON Schemas of the log envelope, outcomes, specs, views and API errors,
    /// and the OpenAPI 3.0 document of the HTTP API (`openapi.json`).
    Schema {
        /// Directory to write `*.schema.json` and `openapi.json` into (created if missing).
        #[arg(long, default_value = "./schemas-out")]
        out: PathBuf,
    },
}

/// Options of `turnstile serve`. Every option can also be set by its environment variable.
#[derive(Debug, Args)]
struct ServeArgs {
    /// Directory holding the log and the journal; created on first start.
    #[arg(long, env = "TURNSTILE_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Address the HTTP edge listens on.
    #[arg(long, env = "TURNSTILE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[command(flatten)]
    journal: JournalArgs,
    /// Where the edges keep the state they share (sold-out gate, outcome fan-in):
    /// `in-process`, or a Redis URL (redis://127.0.0.1:6379) to go through Redis exactly as
    /// separate edge and processor processes would. Redis must be running.
    #[arg(
        long,
        env = "TURNSTILE_EDGE_STATE",
        default_value = "in-process",
        value_name = "in-process|REDIS_URL"
    )]
    edge_state: EdgeStateConfig,
    /// Prefix of every Redis key and the outcome stream's name, so that several
    /// deployments can share one Redis.
    #[arg(long, env = "TURNSTILE_REDIS_NAMESPACE", default_value = "turnstile")]
    redis_namespace: String,
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    notifier: NotifierArgs,
    #[command(flatten)]
    auth: AuthArgs,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    tuning: Tuning,
}

/// Limits on users' writes (claims, redeems, holds, bookings, bids; not creates or admin
/// routes), each off at 0, the default. A write over a limit gets 429 with Retry-After.
/// Each edge limits on its own.
#[derive(Debug, Clone, Args)]
struct LimitArgs {
    /// Each user's sustained rate of writes, per second (fractions allowed: 0.5 is one
    /// every two seconds); 0: no per-user rate limit.
    #[arg(
        long,
        env = "TURNSTILE_USER_RATE",
        value_name = "PER_SEC",
        default_value_t = 0.0
    )]
    user_rate: f64,
    /// Writes a user may make at once after being idle, with --user-rate.
    #[arg(long, env = "TURNSTILE_USER_BURST", value_name = "N", default_value_t = LimitsConfig::default().user_burst)]
    user_burst: u32,
    /// Each client IP address's sustained rate of users' writes, per second; 0: no per-IP
    /// rate limit. Behind a proxy or load balancer every request comes from its address.
    #[arg(
        long,
        env = "TURNSTILE_IP_RATE",
        value_name = "PER_SEC",
        default_value_t = 0.0
    )]
    ip_rate: f64,
    /// Writes an IP address may make at once after being idle, with --ip-rate.
    #[arg(long, env = "TURNSTILE_IP_BURST", value_name = "N", default_value_t = LimitsConfig::default().ip_burst)]
    ip_burst: u32,
    /// Most writes of one user in flight at once (waiting for their decision); one more
    /// gets 429 too_many_in_flight at once. 0: no cap.
    #[arg(
        long,
        env = "TURNSTILE_USER_IN_FLIGHT_MAX",
        value_name = "N",
        default_value_t = 0
    )]
    user_in_flight_max: u32,
}

impl LimitArgs {
    fn config(&self) -> anyhow::Result<LimitsConfig> {
        for (flag, rate) in [("--user-rate", self.user_rate), ("--ip-rate", self.ip_rate)] {
            if !(rate.is_finite() && rate >= 0.0) {
                anyhow::bail!("{flag} must be a number of requests per second, 0 or more");
            }
        }
        for (flag, burst) in [
            ("--user-burst", self.user_burst),
            ("--ip-burst", self.ip_burst),
        ] {
            if burst == 0 {
                anyhow::bail!("{flag} must be at least 1");
            }
        }
        Ok(LimitsConfig {
            user_requests_per_second: self.user_rate,
            user_burst: self.user_burst,
            ip_requests_per_second: self.ip_rate,
            ip_burst: self.ip_burst,
            user_in_flight_max: self.user_in_flight_max,
            ..LimitsConfig::default()
        })
    }
}

/// Bearer-token authentication; off unless --jwks is given.
#[derive(Debug, Clone, Args)]
struct AuthArgs {
    /// A JWKS file (RFC 7517: {"keys": [...]}, each key with a kid): `oct` keys verify
    /// HS256 tokens, `RSA` keys RS256, `EC` P-256 keys ES256. Given, every user's write
    /// needs `Authorization: Bearer <JWT>` and is made as the token's `sub`; creates and
    /// /v1/admin need the `admin` scope. Read once at start.
    #[arg(
        long,
        env = "TURNSTILE_JWKS",
        value_name = "FILE",
        requires_all = ["jwt_issuer", "jwt_audience"]
    )]
    jwks: Option<PathBuf>,
    /// The `iss` every token must carry (with --jwks).
    #[arg(
        long,
        env = "TURNSTILE_JWT_ISSUER",
        value_name = "ISS",
        requires = "jwks"
    )]
    jwt_issuer: Option<String>,
    /// The `aud` every token must carry (with --jwks).
    #[arg(
        long,
        env = "TURNSTILE_JWT_AUDIENCE",
        value_name = "AUD",
        requires = "jwks"
    )]
    jwt_audience: Option<String>,
    /// Clock skew allowed on a token's `exp`, in seconds.
    #[arg(
        long,
        env = "TURNSTILE_JWT_LEEWAY_SECS",
        default_value_t = turnstile_ingest::auth::LEEWAY_SECS_DEFAULT
    )]
    jwt_leeway_secs: u64,
}

impl AuthArgs {
    fn authenticator(&self) -> anyhow::Result<Option<Arc<Authenticator>>> {
        let (Some(jwks), Some(issuer), Some(audience)) =
            (&self.jwks, &self.jwt_issuer, &self.jwt_audience)
        else {
            return Ok(None);
        };
        let auth = Authenticator::from_jwks_file(jwks, issuer.clone(), audience.clone())
            .map_err(anyhow::Error::msg)?
            .with_leeway_secs(self.jwt_leeway_secs);
        Ok(Some(Arc::new(auth)))
    }
}

/// How notifications go out.
#[derive(Debug, Clone, Args)]
struct NotifierArgs {
    /// Where notifications go: `mailbox` writes one .eml file per message to the data
    /// directory's mailbox/; `ses` sends through Amazon SES, configured as the AWS SDK
    /// finds it (AWS_REGION, credentials, and AWS_ENDPOINT_URL for a local moto); `off`
    /// runs no notifier here. Of several processes sharing one journal, exactly one may
    /// notify: give the others `off`.
    #[arg(long, env = "TURNSTILE_NOTIFIER", value_enum, default_value_t = NotifierTransport::Mailbox)]
    notifier: NotifierTransport,
    /// Sender address with --notifier ses. It must be a verified SES identity.
    #[arg(
        long,
        env = "TURNSTILE_SES_FROM",
        value_name = "ADDRESS",
        required_if_eq("notifier", "ses")
    )]
    ses_from: Option<String>,
    /// Domain of recipients' addresses: a user id that contains '@' is its own address,
    /// any other becomes <user_id>@<this domain>.
    #[arg(
        long,
        env = "TURNSTILE_RECIPIENT_DOMAIN",
        default_value = "example.invalid"
    )]
    recipient_domain: String,
    /// Most messages in flight to the provider at once; also the most a crash can leave
    /// ambiguous (resent with the same Message-ID on restart).
    #[arg(long, env = "TURNSTILE_SENDS_IN_FLIGHT_MAX", default_value_t = 8)]
    sends_in_flight_max: usize,
}

impl NotifierArgs {
    fn settings(&self) -> anyhow::Result<NotifierSettings> {
        let mut settings = NotifierSettings {
            transport: self.notifier,
            ..NotifierSettings::default()
        };
        if let Some(from) = &self.ses_from {
            settings.config.from = from.clone();
        }
        settings.config.recipients.domain = self.recipient_domain.clone();
        if self.sends_in_flight_max == 0 {
            anyhow::bail!("--sends-in-flight-max must be at least 1");
        }
        settings.config.sends_in_flight_max = self.sends_in_flight_max;
        Ok(settings)
    }
}

/// Where the log is, when it is Kafka rather than the embedded log.
#[derive(Debug, Clone, Args)]
struct KafkaArgs {
    /// Kafka bootstrap servers (host:port,host:port). Given, commands go to a Kafka topic
    /// instead of the embedded log, and this process's processors join a consumer group:
    /// run several `turnstile serve` with the same topic and group to share the work.
    #[arg(long, env = "TURNSTILE_KAFKA_BROKERS", value_name = "HOST:PORT,…")]
    kafka_brokers: Option<String>,
    /// The commands topic; created with --partitions partitions if missing, refused if it
    /// exists with another partition count.
    #[arg(
        long,
        env = "TURNSTILE_KAFKA_TOPIC",
        default_value = "turnstile-commands"
    )]
    kafka_topic: String,
    /// The processors' consumer group.
    #[arg(
        long,
        env = "TURNSTILE_KAFKA_GROUP",
        default_value = "turnstile-processors"
    )]
    kafka_group: String,
    /// How long the group waits for a silent processor before giving its partitions to
    /// the others: the longest stall after a crash.
    #[arg(
        long,
        env = "TURNSTILE_KAFKA_SESSION_TIMEOUT_MS",
        default_value_t = turnstile_log_kafka::SESSION_TIMEOUT_MS_DEFAULT
    )]
    kafka_session_timeout_ms: u64,
}

impl KafkaArgs {
    fn config(&self, partitions: u32) -> Option<KafkaLogConfig> {
        let brokers = self.kafka_brokers.as_ref()?;
        let mut config = KafkaLogConfig::new(brokers.clone(), self.kafka_topic.clone(), partitions);
        config.group_id = self.kafka_group.clone();
        config.session_timeout_ms = self.kafka_session_timeout_ms;
        // librdkafka requires heartbeats well inside the session.
        config.heartbeat_interval_ms = config
            .heartbeat_interval_ms
            .min(self.kafka_session_timeout_ms / 3);
        Some(config)
    }
}

/// Where the journal is.
#[derive(Debug, Clone, Args)]
struct JournalArgs {
    /// The journal: a PostgreSQL URL (postgres://user@host:5432/database; Aurora
    /// PostgreSQL works too) or the path of a SQLite file. Default: journal.sqlite in the
    /// data directory.
    #[arg(
        long = "journal",
        env = "TURNSTILE_JOURNAL",
        value_name = "URL_OR_PATH"
    )]
    location: Option<String>,
    /// Schema of a PostgreSQL journal, created with its tables on first start. Several
    /// independent deployments can share one database with a schema each.
    #[arg(long, env = "TURNSTILE_JOURNAL_SCHEMA", default_value = "public")]
    journal_schema: String,
}

impl JournalArgs {
    fn location(&self, data_dir: &Path) -> JournalLocation {
        match &self.location {
            Some(location) => JournalLocation::parse(location, &self.journal_schema),
            None => stack::default_journal(data_dir),
        }
    }
}

/// Settings shared by `serve` and `demo`.
#[derive(Debug, Clone, Args)]
pub struct Tuning {
    /// Log partitions (one processor each). Fixed when the data directory is created.
    #[arg(long, env = "TURNSTILE_PARTITIONS", default_value_t = 4)]
    pub partitions: u32,
    /// How long a write waits for its decision before answering 202 with a status URL.
    #[arg(long, env = "TURNSTILE_WAIT_BUDGET_MS", default_value_t = 2_000)]
    pub wait_budget_ms: u64,
    /// Most commands a processor decides and commits in one journal transaction.
    #[arg(long, env = "TURNSTILE_BATCH_COMMANDS_MAX", default_value_t = 4_096)]
    pub batch_commands_max: usize,
}

impl Tuning {
    fn stack_config(
        &self,
        data_dir: PathBuf,
        journal: JournalLocation,
        kafka: Option<KafkaLogConfig>,
        listen: SocketAddr,
    ) -> StackConfig {
        StackConfig {
            data_dir,
            journal,
            kafka,
            partitions: self.partitions,
            listen,
            edge: EdgeConfig {
                wait_budget_ms: self.wait_budget_ms,
                ..EdgeConfig::default()
            },
            processor: ProcessorConfig {
                batch_commands_max: self.batch_commands_max,
                ..ProcessorConfig::default()
            },
            edge_state: EdgeStateConfig::InProcess,
            notifier: NotifierSettings::default(),
        }
    }
}

/// Waits for Ctrl-C or SIGTERM (what service managers and Kubernetes send): both stop
/// gracefully, so a processor leaves its consumer group at once instead of holding its
/// partitions until its session times out.
async fn stop_requested() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    tokio::select! {
        interrupted = tokio::signal::ctrl_c() => interrupted.context("cannot wait for Ctrl-C")?,
        _ = terminate.recv() => {}
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.command {
        Commands::Serve(_) => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Commands) -> anyhow::Result<ExitCode> {
    match command {
        Commands::Serve(args) => {
            let journal = args.journal.location(&args.data_dir);
            let kafka = args.kafka.config(args.tuning.partitions);
            let mut config = args
                .tuning
                .stack_config(args.data_dir, journal, kafka, args.listen);
            config.edge_state = match args.edge_state {
                EdgeStateConfig::Redis(redis) => {
                    let redis = redis.with_namespace(args.redis_namespace);
                    redis.validate()?;
                    EdgeStateConfig::Redis(redis)
                }
                in_process => in_process,
            };
            config.notifier = args.notifier.settings()?;
            config.edge.auth = args.auth.authenticator()?;
            config.edge.limits = args.limits.config()?;
            if let Some(limits) = config.edge.limits.describe() {
                tracing::info!("limits on users' writes: {limits}");
            }
            if let Some(auth) = &config.edge.auth {
                tracing::info!(?auth, "bearer-token authentication is on");
            }
            let stack = EmbeddedStack::start(&config).await?;
            println!("turnstile listening on http://{}", stack.addr);
            stop_requested().await?;
            eprintln!("shutting down: finishing in-flight requests");
            stack.stop().await?;
            Ok(ExitCode::SUCCESS)
        }
        Commands::Demo(args) => demo::run(args).await,
        Commands::Load(args) => load::run(args).await,
        Commands::Dlq(args) => dlq::run(args).await,
        Commands::Sinks(args) => sinks::run(args).await,
        Commands::Audit {
            data_dir,
            journal,
            kafka,
            partitions,
        } => {
            let journal = journal.location(&data_dir);
            let report = match kafka.config(partitions) {
                Some(kafka) => audit::audit_kafka(kafka, &journal).await?,
                None => audit::audit_data_dir(&data_dir, &journal).await?,
            };
            print!("{report}");
            Ok(if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Commands::Schema { out } => {
            std::fs::create_dir_all(&out)
                .with_context(|| format!("cannot create {}", out.display()))?;
            for (name, schema) in turnstile_schemas::export::all_schemas() {
                let path = out.join(name);
                std::fs::write(&path, serde_json::to_string_pretty(&schema)? + "\n")
                    .with_context(|| format!("cannot write {}", path.display()))?;
                println!("wrote {}", path.display());
            }
            let path = out.join("openapi.json");
            let document = turnstile_ingest::openapi::document();
            std::fs::write(&path, serde_json::to_string_pretty(&document)? + "\n")
                .with_context(|| format!("cannot write {}", path.display()))?;
            println!("wrote {}", path.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}
