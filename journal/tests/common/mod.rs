//! Journals for tests: a SQLite file in a temporary directory, or a Postgres schema of
//! its own on a real server.
#![allow(dead_code)] // Each test binary uses part of it.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

use turnstile_journal::{Error, PostgresJournal, SqliteJournal};

/// A SQLite journal in its own temporary directory.
pub struct SqliteFixture {
    pub journal: SqliteJournal,
    _dir: tempfile::TempDir,
}

impl SqliteFixture {
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let journal = SqliteJournal::open(&dir.path().join("journal.sqlite"))
            .await
            .unwrap();
        SqliteFixture { journal, _dir: dir }
    }
}

/// The server the Postgres tests use, unless `TURNSTILE_TEST_POSTGRES_URL` names another.
pub const POSTGRES_URL_DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/test";

pub fn postgres_url() -> String {
    std::env::var("TURNSTILE_TEST_POSTGRES_URL").unwrap_or_else(|_| POSTGRES_URL_DEFAULT.into())
}

/// A Postgres journal in a schema of its own, so tests run in parallel on one database.
pub struct PostgresFixture {
    pub journal: PostgresJournal,
    pub schema: TestSchema,
}

impl PostgresFixture {
    pub async fn new() -> Self {
        let schema = TestSchema::new();
        let journal = PostgresJournal::connect_in_schema(&schema.url, &schema.name)
            .await
            .unwrap_or_else(|e| panic!("{}", postgres_unreachable(&schema.url, &e)));
        PostgresFixture { journal, schema }
    }
}

/// A randomly named schema on the test server, dropped with everything in it when this
/// is dropped, also when the test panicked.
pub struct TestSchema {
    pub url: String,
    pub name: String,
}

impl TestSchema {
    /// A name no other test picks (the schema itself is created by whoever connects first).
    pub fn new() -> Self {
        let random = RandomState::new().build_hasher().finish();
        TestSchema {
            url: postgres_url(),
            name: format!("turnstile_test_{random:016x}"),
        }
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        // Drop runs outside async code (and maybe while unwinding): the schema is dropped
        // on a thread with a runtime of its own.
        let (url, name) = (self.url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(drop_schema(&url, &name))
        })
        .join();
        if !std::thread::panicking() {
            dropped.unwrap().unwrap();
        }
    }
}

pub async fn drop_schema(url: &str, schema: &str) -> Result<(), sqlx::Error> {
    use sqlx::Connection;
    let mut connection = sqlx::PgConnection::connect(url).await?;
    sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(&mut connection)
        .await?;
    connection.close().await
}

pub fn postgres_unreachable(url: &str, error: &Error) -> String {
    format!(
        "cannot open a Postgres journal at {url}: {error}\n\
         These tests need a running PostgreSQL. Start the local one with\n    \
         pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\n\
         (install it with `apt-get install -y postgresql`), or point \
         TURNSTILE_TEST_POSTGRES_URL at another server (trust auth, a database to test in)."
    )
}
