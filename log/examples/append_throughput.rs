//! Measures durable append throughput: many concurrent tasks each appending small payloads
//! one at a time (each `append` waits for its fsync), as the HTTP edge does.
//!
//! ```text
//! cargo run --release -p turnstile-log --example append_throughput -- [tasks] [appends_total] [partitions] [payload_bytes] [dir]
//! ```
//!
//! Defaults: 512 tasks, 1,000,000 appends, 8 partitions, 200-byte payloads, a temporary
//! directory (use a directory on the disk you care about: tmpfs makes fsync free).

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use turnstile_log::{EmbeddedLog, EmbeddedLogConfig};

fn arg<T: std::str::FromStr>(n: usize, default: T) -> T {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let tasks: usize = arg(1, 512);
    let total: usize = arg(2, 1_000_000);
    let partitions: u32 = arg(3, 8);
    let payload_bytes: usize = arg(4, 200);
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::env::args()
        .nth(5)
        .map_or_else(|| tmp.path().to_path_buf(), Into::into);

    let log = EmbeddedLog::open(EmbeddedLogConfig::new(&dir, partitions)).unwrap();
    let per_task = total / tasks;
    let started = Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let log = log.clone();
        handles.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_task);
            for i in 0..per_task {
                let p = ((t + i) % partitions as usize) as u32;
                let payload = vec![b'x'; payload_bytes];
                let sent = Instant::now();
                log.append(p, payload).await.unwrap();
                latencies.push(sent.elapsed());
            }
            latencies
        }));
    }
    let mut latencies: Vec<Duration> = Vec::with_capacity(total);
    for h in handles {
        latencies.extend(h.await.unwrap());
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let pct = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    let stats = log.stats();
    println!(
        "{} appends of {payload_bytes} B from {tasks} tasks over {partitions} partitions in {:.2?}: \
         {:.0} appends/s, {} fsync groups ({:.0} records/group), latency p50 {:.2?} p99 {:.2?} max {:.2?}",
        latencies.len(),
        elapsed,
        latencies.len() as f64 / elapsed.as_secs_f64(),
        stats.committed_groups,
        stats.committed_records as f64 / stats.committed_groups as f64,
        pct(0.5),
        pct(0.99),
        pct(1.0),
    );

    // Read everything back the way a processor does: batches of 1,000 in offset order.
    let started = Instant::now();
    let mut read = 0usize;
    for p in 0..partitions {
        let mut from = 0;
        loop {
            let records = log.read_now(p, from, 1_000).unwrap();
            let Some(last) = records.last() else { break };
            from = last.offset + 1;
            read += records.len();
        }
    }
    let elapsed = started.elapsed();
    println!(
        "read back {read} records in batches of 1000 in {elapsed:.2?}: {:.0} records/s",
        read as f64 / elapsed.as_secs_f64()
    );
    log.close().await.unwrap();
}
