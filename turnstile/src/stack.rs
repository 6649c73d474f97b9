//! The stack in one process: log, journal, processors, sinks and edge. On the embedded
//! default it needs no servers; with a Kafka log (`--kafka-brokers`) its processors join a
//! consumer group, so several such processes share the topic's partitions.
//!
//! With `--edge-state redis://…` the same process also goes through Redis, exactly as
//! separate edge and processor processes would: the processors publish to Redis instead
//! of telling the edge's feed directly, and the edge hears every decision back from the
//! outcome stream and asks Redis's sold-out gate. That proves the path end to end in one
//! process; splitting it means running the publisher half and the edge half apart.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use turnstile_edge_state::{CampaignSeed, EdgeStateConfig, PartitionSeed, Publisher, RedisConfig};
use turnstile_ingest::shared_state::RedisEdgeState;
use turnstile_ingest::{CommandLog, Edge, EdgeConfig, OutcomeFeed};
use turnstile_journal::{Journal, JournalLocation};
use turnstile_log::{EmbeddedLog, EmbeddedLogConfig};
use turnstile_log_kafka::{ensure_topic, KafkaAppender, KafkaLogConfig};
use turnstile_processors::kafka_group::run_group_member;
use turnstile_processors::runtime::{DecisionListener, ProcessorConfig, ProcessorGroup};
use turnstile_sinks::archive::{ArchiveConfig, ArchiveSink};
use turnstile_sinks::clock::SystemClock;
use turnstile_sinks::expiry::{AppendError, CommandAppender, ExpiryConfig, ExpiryScheduler};
use turnstile_sinks::notify::mailbox::MailboxTransport;
use turnstile_sinks::notify::ses::SesTransport;
use turnstile_sinks::notify::{Notifier, NotifierConfig};

/// Where the embedded stack keeps its files and how it runs.
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// Directory for the log (`log/`), the mailbox (`mailbox/`) and, by default, the
    /// journal (`journal.sqlite`).
    pub data_dir: PathBuf,
    /// The journal: [`default_journal`] of the data directory, or a PostgreSQL database.
    pub journal: JournalLocation,
    /// The log: the embedded one in the data directory (`None`), or a Kafka topic.
    pub kafka: Option<KafkaLogConfig>,
    /// Log partitions; fixed when the data directory is created.
    pub partitions: u32,
    /// HTTP address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// The edge's settings.
    pub edge: EdgeConfig,
    /// The processors' settings.
    pub processor: ProcessorConfig,
    /// Where the edge state lives: in process (the default) or in Redis.
    pub edge_state: EdgeStateConfig,
    /// How notifications go out: the mailbox directory (the default) or SES.
    pub notifier: NotifierSettings,
}

/// Which transport the notifier uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum NotifierTransport {
    /// `.eml` files in the data directory's `mailbox/`: the embedded default.
    #[default]
    Mailbox,
    /// Amazon SES (v2 API), configured as the AWS SDK finds it (`AWS_REGION`,
    /// credentials, `AWS_ENDPOINT_URL`).
    Ses,
    /// No notifier in this process. Several processes on one journal must run exactly one
    /// notifier between them: two would both send what neither has recorded yet.
    Off,
}

/// The notifier's transport and settings.
#[derive(Debug, Clone)]
pub struct NotifierSettings {
    /// The transport.
    pub transport: NotifierTransport,
    /// The loop's settings. Its `sink` name is set from the transport.
    pub config: NotifierConfig,
}

impl Default for NotifierSettings {
    fn default() -> Self {
        NotifierSettings {
            transport: NotifierTransport::Mailbox,
            config: NotifierConfig::new("mailbox", MAILBOX_FROM),
        }
    }
}

/// The sender of mailbox messages, which go nowhere but the data directory.
pub const MAILBOX_FROM: &str = "turnstile <no-reply@turnstile.invalid>";

/// Paths inside a data directory.
pub fn log_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("log")
}

/// The mailbox the embedded notifier writes `.eml` files to.
pub fn mailbox_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("mailbox")
}

/// The journal file of a data directory.
pub fn journal_path(data_dir: &Path) -> PathBuf {
    data_dir.join("journal.sqlite")
}

/// The embedded default's journal: a SQLite file in the data directory.
pub fn default_journal(data_dir: &Path) -> JournalLocation {
    JournalLocation::Sqlite(journal_path(data_dir))
}

/// A running embedded stack.
#[derive(Debug)]
pub struct EmbeddedStack {
    /// The address the edge listens on.
    pub addr: SocketAddr,
    /// Stops the edge; the processors stop later, so in-flight requests get decided.
    edge_shutdown: watch::Sender<bool>,
    /// Stops the processors and the notifier.
    shutdown: watch::Sender<bool>,
    /// Stops the Redis publisher and subscriber, after the processors: the publisher
    /// drains what the processors' last batches queued.
    redis_shutdown: watch::Sender<bool>,
    edge: OwnedTask<std::io::Result<()>>,
    /// The Redis publisher and subscriber, when the edge state is in Redis.
    redis_tasks: Vec<OwnedTask<()>>,
    /// `None` with `--notifier off`.
    notifier: Option<OwnedTask<()>>,
    /// The expiry scheduler, firing due timers into the log.
    expiry: OwnedTask<()>,
    /// The archive sink, keeping the back office's coupon table.
    archive: OwnedTask<()>,
    processors: OwnedTask<Result<(), turnstile_processors::runtime::Error>>,
    /// The processors run on their own runtime: a commit is several hops to the journal's
    /// thread, and on a runtime shared with thousands of HTTP tasks each hop waits behind
    /// them (measured: 8 ms per commit of ~90 claims, 95 µs a claim, capping the demo at
    /// 6k claims/s). On their own thread the single writers are never queued behind the edge.
    processor_runtime: DedicatedRuntime,
    /// The sinks run on a thread of their own too: the mailbox creates a file per message
    /// and SES sends over HTTP, which must stall neither HTTP handlers nor the processors.
    sink_runtime: DedicatedRuntime,
    log: CommandLog,
    journal: Journal,
    /// Held for the stack's life: one writer per data directory.
    _lock: File,
}

impl EmbeddedStack {
    /// Opens the data directory, recovers every partition (deciding whatever is already on
    /// the log), then starts serving. Requests are only accepted once recovery is done.
    pub async fn start(config: &StackConfig) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!("cannot create data directory {}", config.data_dir.display())
        })?;
        let lock_path = config.data_dir.join("turnstile.lock");
        let lock = File::create(&lock_path)
            .with_context(|| format!("cannot create {}", lock_path.display()))?;
        if lock.try_lock().is_err() {
            bail!(
                "another turnstile process is using {}; stop it or choose another --data-dir",
                config.data_dir.display()
            );
        }
        let log = match &config.kafka {
            None => CommandLog::Embedded(
                EmbeddedLog::open(EmbeddedLogConfig::new(
                    log_dir(&config.data_dir),
                    config.partitions,
                ))
                .context("cannot open the embedded log")?,
            ),
            Some(kafka) => {
                ensure_topic(kafka).await.with_context(|| {
                    format!("cannot set up topic {} on {}", kafka.topic, kafka.brokers)
                })?;
                CommandLog::Kafka(KafkaAppender::new(kafka).context("cannot start the producer")?)
            }
        };
        let journal = Journal::open(&config.journal)
            .await
            .with_context(|| format!("cannot open the journal ({})", config.journal))?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (redis_shutdown, redis_shutdown_rx) = watch::channel(false);
        let processor_runtime = DedicatedRuntime::start("turnstile-processors")?;
        let mut redis_tasks = Vec::new();
        let (feed, processors, redis_gate) = match &config.edge_state {
            EdgeStateConfig::InProcess => {
                let feed = Arc::new(OutcomeFeed::new(
                    journal.campaigns().await?,
                    journal.decided_requests().await?,
                ));
                let processors = start_processors(
                    &processor_runtime,
                    config,
                    &log,
                    &journal,
                    feed.clone(),
                    shutdown_rx.clone(),
                )
                .await?;
                (feed, processors, None)
            }
            EdgeStateConfig::Redis(redis) => {
                // The edge half first: it marks where the outcome stream ends before the
                // feed is loaded from the journal, so no decision falls in between.
                let edge_state = RedisEdgeState::connect(redis)
                    .await
                    .with_context(|| redis_context(redis))?;
                let gate = edge_state.gate();
                // The gate is in Redis: the feed needs no decided keys of its own.
                let feed = Arc::new(OutcomeFeed::new(journal.campaigns().await?, Vec::new()));
                redis_tasks.push(OwnedTask(tokio::spawn(edge_state.run(
                    feed.clone(),
                    journal.clone(),
                    redis_shutdown_rx.clone(),
                ))));
                // The processor half, running before recovery so that what recovery
                // decides is published too.
                let (publisher, mut service) = Publisher::build(redis)
                    .await
                    .with_context(|| redis_context(redis))?;
                // Only a process that is every partition's single writer may reseed; with
                // Kafka, partitions move between processes.
                if config.kafka.is_none() {
                    reseed_stale_partitions(&mut service, &journal, log.partitions())
                        .await
                        .with_context(|| redis_context(redis))?;
                }
                redis_tasks.push(OwnedTask(tokio::spawn(service.run(redis_shutdown_rx))));
                let processors = start_processors(
                    &processor_runtime,
                    config,
                    &log,
                    &journal,
                    Arc::new(publisher),
                    shutdown_rx.clone(),
                )
                .await?;
                (feed, processors, Some(gate))
            }
        };
        let sink_runtime = DedicatedRuntime::start("turnstile-sinks")?;
        let notifier = start_notifier(&sink_runtime, config, &journal, shutdown_rx.clone()).await?;
        let expiry = ExpiryScheduler::new(
            ExpiryConfig::default(),
            journal.clone(),
            TimerLog(log.clone()),
            SystemClock,
        );
        let expiry = OwnedTask(sink_runtime.spawn(expiry.run(shutdown_rx.clone())));
        let archive =
            ArchiveSink::new(ArchiveConfig::default(), journal.clone(), config.partitions);
        let archive = OwnedTask(sink_runtime.spawn(archive.run(shutdown_rx.clone())));
        let listener = turnstile_ingest::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let mut edge = Edge::new(config.edge.clone(), log.clone(), journal.clone(), feed);
        if let Some(gate) = redis_gate {
            edge = edge.with_redis_gate(gate);
        }
        let (edge_shutdown, edge_shutdown_rx) = watch::channel(false);
        let edge = OwnedTask(tokio::spawn(edge.serve(listener, edge_shutdown_rx)));
        Ok(EmbeddedStack {
            addr,
            edge_shutdown,
            shutdown,
            redis_shutdown,
            edge,
            redis_tasks,
            notifier,
            expiry,
            archive,
            processors,
            processor_runtime,
            sink_runtime,
            log,
            journal,
            _lock: lock,
        })
    }

    /// Stops accepting requests and lets in-flight ones finish (the processors still
    /// decide them), then stops the processors and the sink and flushes the log.
    pub async fn stop(self) -> anyhow::Result<()> {
        // Send only fails when every receiver is gone, i.e. that part already stopped.
        let _ = self.edge_shutdown.send(true);
        self.edge.join().await.context("the edge task panicked")??;
        let _ = self.shutdown.send(true);
        self.processors
            .join()
            .await
            .context("a processor panicked")??;
        if let Some(notifier) = self.notifier {
            notifier.join().await.context("the notifier panicked")?;
        }
        self.expiry
            .join()
            .await
            .context("the expiry scheduler panicked")?;
        self.archive
            .join()
            .await
            .context("the archive sink panicked")?;
        let _ = self.redis_shutdown.send(true);
        for task in self.redis_tasks {
            task.join()
                .await
                .context("the Redis publisher or subscriber panicked")?;
        }
        drop(self.processor_runtime);
        drop(self.sink_runtime);
        match self.log {
            CommandLog::Embedded(log) => log.close().await?,
            CommandLog::Kafka(appender) => appender.close().await?,
        }
        self.journal.close().await;
        Ok(())
    }
}

/// The expiry scheduler's way into the log: the same log the edge appends to.
#[derive(Debug, Clone)]
struct TimerLog(CommandLog);

impl CommandAppender for TimerLog {
    async fn append(&self, partition: u32, payload: Vec<u8>) -> Result<u64, AppendError> {
        self.0.append(partition, payload, None).await
    }
}

/// Starts the notifier on the sinks' runtime with the configured transport.
async fn start_notifier(
    runtime: &DedicatedRuntime,
    config: &StackConfig,
    journal: &Journal,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Option<OwnedTask<()>>> {
    let mut notifier = config.notifier.config.clone();
    let task = match config.notifier.transport {
        NotifierTransport::Mailbox => {
            notifier.sink = "mailbox".into();
            let transport = MailboxTransport::new(mailbox_dir(&config.data_dir))
                .context("cannot create the mailbox directory")?;
            let notifier = Notifier::new(notifier, journal.clone(), config.partitions, transport);
            runtime.spawn(notifier.run(shutdown))
        }
        NotifierTransport::Ses => {
            notifier.sink = "ses".into();
            let transport = SesTransport::from_env().await;
            let notifier = Notifier::new(notifier, journal.clone(), config.partitions, transport);
            runtime.spawn(notifier.run(shutdown))
        }
        NotifierTransport::Off => return Ok(None),
    };
    Ok(Some(OwnedTask(task)))
}

/// Recovers every partition on the processors' runtime, deciding what is already on the
/// log, and starts the processors, telling `listener` of every commit.
async fn start_processors<L: DecisionListener>(
    runtime: &DedicatedRuntime,
    config: &StackConfig,
    log: &CommandLog,
    journal: &Journal,
    listener: Arc<L>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<OwnedTask<Result<(), turnstile_processors::runtime::Error>>> {
    let (CommandLog::Embedded(log), None) = (log, &config.kafka) else {
        let kafka = config
            .kafka
            .clone()
            .expect("a Kafka command log has a Kafka config");
        // Partitions are processed as the consumer group assigns them, so requests are
        // accepted before every partition has caught up (rule 16 is a SHOULD).
        return Ok(OwnedTask(runtime.spawn(run_group_member(
            kafka,
            journal.clone(),
            listener,
            config.processor.clone(),
            shutdown,
        ))));
    };
    let processors = ProcessorGroup::start(
        log.clone(),
        journal.clone(),
        listener,
        config.processor.clone(),
        shutdown,
    );
    let processors = runtime
        .spawn(processors)
        .await
        .context("recovering the partitions panicked")?
        .context("cannot recover the partitions")?;
    Ok(OwnedTask(runtime.spawn(processors.join())))
}

/// Rebuilds, from the journal, Redis's gate state of every partition whose published
/// progress does not match the journal's (Redis restarted empty, a publish was lost, or the
/// edge state just moved to Redis). Safe here and only here: this process holds the data
/// directory's lock, so it is every partition's only writer, and its processors have not
/// started. Without it those partitions' gate would read the journal for good.
async fn reseed_stale_partitions(
    publisher: &mut Publisher,
    journal: &Journal,
    partitions: u32,
) -> anyhow::Result<()> {
    let leases = journal.partitions().await?;
    let offsets: Vec<(u32, u64)> = (0..partitions)
        .map(|partition| {
            let next_offset = leases
                .iter()
                .find(|lease| lease.partition == partition)
                .map_or(0, |lease| lease.next_offset);
            (partition, next_offset)
        })
        .collect();
    let stale = publisher.stale_partitions(&offsets).await?;
    if stale.is_empty() {
        return Ok(());
    }
    let mut requests: std::collections::HashMap<String, Vec<String>> = Default::default();
    for (resource_id, request_id) in journal.decided_requests().await? {
        requests.entry(resource_id).or_default().push(request_id);
    }
    let campaigns = journal.campaigns().await?;
    let seeds: Vec<PartitionSeed> = offsets
        .iter()
        .filter(|(partition, _)| stale.contains(partition))
        .map(|&(partition, next_offset)| PartitionSeed {
            partition,
            next_offset,
            campaigns: campaigns
                .iter()
                .filter(|row| row.partition == partition)
                .map(|row| CampaignSeed {
                    campaign_id: row.campaign_id.clone(),
                    capacity: row.spec.capacity,
                    issued: row.issued,
                    request_ids: requests.remove(&row.campaign_id).unwrap_or_default(),
                })
                .collect(),
        })
        .collect();
    publisher.reseed(&seeds).await?;
    Ok(())
}

fn redis_context(redis: &RedisConfig) -> String {
    format!("cannot use the Redis edge state at {}", redis.url)
}

/// A task that ends with its owner: dropped (on an early error, or a stack dropped
/// without `stop`), it is aborted instead of running on unowned.
#[derive(Debug)]
struct OwnedTask<T>(JoinHandle<T>);

impl<T> OwnedTask<T> {
    async fn join(mut self) -> Result<T, tokio::task::JoinError> {
        (&mut self.0).await
    }
}

impl<T> Drop for OwnedTask<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A runtime owned by async code. Dropping a tokio runtime inside another runtime's task
/// panics, so this one shuts down in the background when dropped — on `stop`, and on every
/// early error return of `start` or of the demo.
#[derive(Debug)]
struct DedicatedRuntime(Option<tokio::runtime::Runtime>);

impl DedicatedRuntime {
    /// A runtime with one worker thread named `name`.
    fn start(name: &str) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(name)
            .enable_all()
            .build()
            .with_context(|| format!("cannot start the {name} runtime"))?;
        Ok(DedicatedRuntime(Some(runtime)))
    }
}

impl std::ops::Deref for DedicatedRuntime {
    type Target = tokio::runtime::Runtime;

    fn deref(&self) -> &Self::Target {
        self.0
            .as_ref()
            .expect("the runtime is present until dropped")
    }
}

impl Drop for DedicatedRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stack_dropped_in_async_code_without_stop_does_not_panic() {
        // The early-error paths of `start` and of the demo drop the stack like this.
        let dir = tempfile::tempdir().unwrap();
        let config = StackConfig {
            data_dir: dir.path().join("data"),
            journal: default_journal(&dir.path().join("data")),
            partitions: 2,
            listen: "127.0.0.1:0".parse().unwrap(),
            edge: EdgeConfig::default(),
            processor: ProcessorConfig::default(),
            edge_state: EdgeStateConfig::InProcess,
            kafka: None,
            notifier: NotifierSettings::default(),
        };
        let stack = EmbeddedStack::start(&config).await.unwrap();
        drop(stack);
        // And the directory can be taken again at once: the lock went with the stack.
        EmbeddedStack::start(&config)
            .await
            .unwrap()
            .stop()
            .await
            .unwrap();
    }
}
