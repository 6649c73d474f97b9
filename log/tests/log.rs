//! Behaviour of the embedded log through its public API: round trips, concurrency, reopen,
//! torn tails, waiting reads, read-only opens, limits, and the partition hash.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use tokio::sync::watch;
use turnstile_log::{partition_for, EmbeddedLog, EmbeddedLogConfig, Error, LogRecord};

const DATA_FILE: &str = "records.log";

fn open(dir: &Path, partitions: u32) -> EmbeddedLog {
    EmbeddedLog::open(EmbeddedLogConfig::new(dir, partitions)).unwrap()
}

fn payloads(records: &[LogRecord]) -> Vec<Vec<u8>> {
    records.iter().map(|r| r.payload.to_vec()).collect()
}

fn data_len(dir: &Path) -> u64 {
    std::fs::metadata(dir.join(DATA_FILE)).unwrap().len()
}

fn no_shutdown() -> (watch::Sender<bool>, watch::Receiver<bool>) {
    watch::channel(false)
}

#[tokio::test]
async fn round_trip_across_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 3);
    assert_eq!(log.partitions(), 3);
    for i in 0..10u64 {
        let p = (i % 3) as u32;
        let offset = log.append(p, format!("r{i}").into_bytes()).await.unwrap();
        assert_eq!(offset, i / 3);
    }
    assert_eq!(
        log.append_batch(1, vec![b"b0".to_vec(), b"b1".to_vec()])
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        [log.end_offset(0), log.end_offset(1), log.end_offset(2)],
        [4, 5, 3]
    );

    let (_tx, mut shutdown) = no_shutdown();
    let p1 = log.read(1, 0, 100, &mut shutdown).await.unwrap();
    assert_eq!(
        payloads(&p1),
        [&b"r1"[..], b"r4", b"r7", b"b0", b"b1"].map(<[u8]>::to_vec)
    );
    assert_eq!(
        p1.iter().map(|r| r.offset).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    let p0 = log.read_now(0, 2, 1).unwrap();
    assert_eq!(
        p0,
        vec![LogRecord {
            offset: 2,
            payload: b"r6".to_vec().into()
        }]
    );
    assert!(log.read_now(2, 3, 10).unwrap().is_empty());
    let empty_payload = log.append(2, Vec::new()).await.unwrap();
    assert_eq!(
        log.read_now(2, empty_payload, 10).unwrap()[0].payload.len(),
        0
    );

    let stats = log.stats();
    assert_eq!(stats.committed_records, 13);
    log.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_get_dense_unique_offsets() {
    const TASKS: u32 = 64;
    const APPENDS: u32 = 500;
    const PARTITIONS: u32 = 4;
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), PARTITIONS);
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut acks = Vec::new();
            for i in 0..APPENDS {
                let p = (t + i) % PARTITIONS;
                let payload = format!("t{t}-i{i}").into_bytes();
                let offset = log.append(p, payload.clone()).await.unwrap();
                acks.push((p, offset, payload));
            }
            acks
        }));
    }
    let mut acks = Vec::new();
    for task in tasks {
        acks.extend(task.await.unwrap());
    }
    assert_eq!(acks.len(), (TASKS * APPENDS) as usize);
    for p in 0..PARTITIONS {
        let mut offsets: Vec<u64> = acks.iter().filter(|a| a.0 == p).map(|a| a.1).collect();
        offsets.sort_unstable();
        let n = offsets.len() as u64;
        assert_eq!(
            offsets,
            (0..n).collect::<Vec<_>>(),
            "partition {p} not dense and unique"
        );
        assert_eq!(log.end_offset(p), n);
    }
    for (p, offset, payload) in &acks {
        assert_eq!(
            &log.read_now(*p, *offset, 1).unwrap()[0].payload[..],
            &payload[..]
        );
    }
    let stats = log.stats();
    assert_eq!(stats.committed_records, u64::from(TASKS * APPENDS));
    assert!(
        stats.committed_groups < stats.committed_records / 4,
        "group commit should share fsyncs: {stats:?}"
    );
}

#[tokio::test]
async fn reopen_preserves_everything() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 2);
    for i in 0..50u32 {
        log.append(i % 2, vec![i as u8; i as usize]).await.unwrap();
    }
    log.close().await.unwrap();

    let log = open(dir.path(), 2);
    for p in 0..2u32 {
        assert_eq!(log.end_offset(p), 25);
        let records = log.read_now(p, 0, 100).unwrap();
        for (k, r) in records.iter().enumerate() {
            let i = k as u32 * 2 + p;
            assert_eq!(r.offset, k as u64);
            assert_eq!(r.payload.to_vec(), vec![i as u8; i as usize]);
        }
    }
    assert_eq!(log.append(1, b"next".to_vec()).await.unwrap(), 25);
    drop(log);
    // Dropping the last handle also commits and stops cleanly.
    let log = open(dir.path(), 2);
    assert_eq!(log.end_offset(1), 26);
}

/// Writes p0: 0..5 and p1: 0..5 alternately; the last record in the file is p1 offset 4.
async fn write_ten(dir: &Path) {
    let log = open(dir, 2);
    for i in 0..10u32 {
        log.append(i % 2, format!("record-{i}").into_bytes())
            .await
            .unwrap();
    }
    log.close().await.unwrap();
}

fn damage(dir: &Path, f: impl FnOnce(&mut std::fs::File, u64)) {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join(DATA_FILE))
        .unwrap();
    let len = file.metadata().unwrap().len();
    f(&mut file, len);
    file.sync_all().unwrap();
}

async fn assert_last_record_lost_and_appends_continue(dir: &Path) {
    let log = open(dir, 2);
    assert_eq!(log.end_offset(0), 5);
    assert_eq!(log.end_offset(1), 4, "the damaged last record is gone");
    let p1 = log.read_now(1, 0, 10).unwrap();
    assert_eq!(payloads(&p1).last().unwrap(), b"record-7");
    assert_eq!(
        payloads(&log.read_now(0, 0, 10).unwrap()).last().unwrap(),
        b"record-8"
    );
    assert_eq!(log.append(1, b"after".to_vec()).await.unwrap(), 4);
    log.close().await.unwrap();
    let log = open(dir, 2);
    assert_eq!(
        payloads(&log.read_now(1, 4, 10).unwrap()),
        vec![b"after".to_vec()]
    );
}

#[tokio::test]
async fn torn_tail_partial_last_record_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    write_ten(dir.path()).await;
    damage(dir.path(), |file, len| file.set_len(len - 3).unwrap());
    assert_last_record_lost_and_appends_continue(dir.path()).await;
}

#[tokio::test]
async fn torn_tail_crc_mismatch_in_last_record_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    write_ten(dir.path()).await;
    damage(dir.path(), |file, len| {
        use std::os::unix::fs::FileExt;
        let mut byte = [0u8; 1];
        file.read_exact_at(&mut byte, len - 1).unwrap();
        file.write_all_at(&[byte[0] ^ 0x40], len - 1).unwrap();
    });
    assert_last_record_lost_and_appends_continue(dir.path()).await;
}

#[tokio::test]
async fn torn_tail_garbage_or_zeros_after_last_record_is_truncated() {
    for garbage in [
        vec![0u8; 4096],
        (0..100u8).map(|b| b.wrapping_mul(37)).collect(),
    ] {
        let dir = tempfile::tempdir().unwrap();
        write_ten(dir.path()).await;
        let clean_len = data_len(dir.path());
        damage(dir.path(), |file, _| {
            use std::io::{Seek, SeekFrom};
            file.seek(SeekFrom::End(0)).unwrap();
            file.write_all(&garbage).unwrap();
        });
        let log = open(dir.path(), 2);
        assert_eq!(data_len(dir.path()), clean_len, "garbage truncated");
        assert_eq!([log.end_offset(0), log.end_offset(1)], [5, 5]);
        assert_eq!(log.append(0, b"x".to_vec()).await.unwrap(), 5);
        assert_eq!(
            payloads(&log.read_now(0, 4, 10).unwrap()),
            [b"record-8".to_vec(), b"x".to_vec()]
        );
    }
}

#[tokio::test]
async fn damage_far_from_the_tail_is_an_error_not_a_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 1);
    let batch: Vec<Vec<u8>> = (0..8)
        .map(|i| vec![i as u8; turnstile_log::RECORD_PAYLOAD_BYTES_MAX])
        .collect();
    let mut written = 0;
    while written <= turnstile_log::GROUP_COMMIT_BYTES_CAP {
        log.append_batch(0, batch.clone()).await.unwrap();
        written += 8 << 20;
    }
    log.close().await.unwrap();
    let len = data_len(dir.path());
    damage(dir.path(), |file, _| {
        use std::os::unix::fs::FileExt;
        file.write_all_at(&[0xff], 100).unwrap();
    });
    let err = EmbeddedLog::open(EmbeddedLogConfig::new(dir.path(), 1)).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert!(!err.is_retriable());
    assert_eq!(data_len(dir.path()), len, "nothing truncated");
}

#[tokio::test]
async fn read_waits_for_a_later_append() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 2);
    log.append(0, b"first".to_vec()).await.unwrap();
    let reader = {
        let log = log.clone();
        tokio::spawn(async move {
            let (_tx, mut shutdown) = no_shutdown();
            log.read(0, 1, 10, &mut shutdown).await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!reader.is_finished(), "no record at offset 1 yet");
    // A record on another partition does not wake the reader with nothing.
    log.append(1, b"other".to_vec()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!reader.is_finished());
    log.append(0, b"second".to_vec()).await.unwrap();
    let records = tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        records,
        vec![LogRecord {
            offset: 1,
            payload: b"second".to_vec().into()
        }]
    );
}

#[tokio::test]
async fn read_returns_empty_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 1);
    let (tx, mut shutdown) = watch::channel(false);
    let reader = {
        let log = log.clone();
        tokio::spawn(async move { log.read(0, 0, 10, &mut shutdown).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!reader.is_finished());
    tx.send(true).unwrap();
    let records = tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(records.is_empty());

    // A dropped shutdown sender means "never": the read keeps waiting for data.
    let (tx, mut shutdown) = watch::channel(false);
    drop(tx);
    let reader = {
        let log = log.clone();
        tokio::spawn(async move { log.read(0, 0, 10, &mut shutdown).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!reader.is_finished());
    log.append(0, b"a".to_vec()).await.unwrap();
    let records = tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(records.len(), 1);
}

#[tokio::test]
async fn read_only_open_alongside_a_writer_sees_records_and_never_truncates() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 2);
    for i in 0..6u32 {
        log.append(i % 2, format!("r{i}").into_bytes())
            .await
            .unwrap();
    }
    let reader = EmbeddedLog::open_read_only(dir.path()).unwrap();
    assert!(reader.is_read_only());
    assert_eq!(reader.partitions(), 2);
    assert_eq!([reader.end_offset(0), reader.end_offset(1)], [3, 3]);
    assert!(matches!(
        reader.append(0, b"no".to_vec()).await,
        Err(Error::ReadOnly)
    ));
    assert!(matches!(
        reader.append_batch(0, vec![b"no".to_vec()]).await,
        Err(Error::ReadOnly)
    ));

    // Records appended later appear after a refresh, or through read().
    log.append(0, b"late".to_vec()).await.unwrap();
    assert_eq!(reader.end_offset(0), 3, "a snapshot until refreshed");
    let (_tx, mut shutdown) = no_shutdown();
    let late = reader.read(0, 3, 10, &mut shutdown).await.unwrap();
    assert_eq!(payloads(&late), vec![b"late".to_vec()]);
    assert!(
        reader
            .read(0, 4, 10, &mut shutdown)
            .await
            .unwrap()
            .is_empty(),
        "no waiting"
    );
    log.close().await.unwrap();

    // A torn tail is the end for a read-only handle, and stays on disk.
    damage(dir.path(), |file, _| {
        use std::io::{Seek, SeekFrom};
        file.seek(SeekFrom::End(0)).unwrap();
        file.write_all(b"half a record").unwrap();
    });
    let len = data_len(dir.path());
    let reader = EmbeddedLog::open_read_only(dir.path()).unwrap();
    assert_eq!([reader.end_offset(0), reader.end_offset(1)], [4, 3]);
    reader.refresh().unwrap();
    assert_eq!(reader.read_now(1, 0, 10).unwrap().len(), 3);
    assert_eq!(data_len(dir.path()), len);
}

#[tokio::test]
async fn read_only_open_of_a_missing_log_fails() {
    let dir = tempfile::tempdir().unwrap();
    assert!(EmbeddedLog::open_read_only(dir.path()).is_err());
}

#[tokio::test]
async fn partition_count_is_fixed_at_creation() {
    let dir = tempfile::tempdir().unwrap();
    open(dir.path(), 4).close().await.unwrap();
    let err = EmbeddedLog::open(EmbeddedLogConfig::new(dir.path(), 8)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::PartitionCountMismatch {
                stored: 4,
                configured: 8,
                ..
            }
        ),
        "{err}"
    );
    assert!(!err.is_retriable());
    assert_eq!(open(dir.path(), 4).partitions(), 4);
}

#[tokio::test]
async fn invalid_config_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let bad = [
        EmbeddedLogConfig::new(dir.path(), 0),
        EmbeddedLogConfig {
            append_queue_max: 0,
            ..EmbeddedLogConfig::new(dir.path(), 1)
        },
        EmbeddedLogConfig {
            group_commit_bytes_max: 0,
            ..EmbeddedLogConfig::new(dir.path(), 1)
        },
        EmbeddedLogConfig {
            group_commit_bytes_max: turnstile_log::GROUP_COMMIT_BYTES_CAP + 1,
            ..EmbeddedLogConfig::new(dir.path(), 1)
        },
    ];
    for config in bad {
        assert!(matches!(
            EmbeddedLog::open(config),
            Err(Error::InvalidConfig { .. })
        ));
    }
}

#[tokio::test]
async fn caller_mistakes_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 2);
    let too_big = vec![0u8; turnstile_log::RECORD_PAYLOAD_BYTES_MAX + 1];
    assert!(matches!(
        log.append(0, too_big.clone()).await,
        Err(Error::RecordTooLarge { .. })
    ));
    assert!(matches!(
        log.append_batch(0, vec![b"ok".to_vec(), too_big]).await,
        Err(Error::RecordTooLarge { .. })
    ));
    let max = vec![0u8; turnstile_log::RECORD_PAYLOAD_BYTES_MAX];
    assert!(matches!(
        log.append_batch(0, vec![max; 70]).await,
        Err(Error::BatchTooLarge { .. })
    ));
    assert!(matches!(
        log.append_batch(0, Vec::new()).await,
        Err(Error::EmptyBatch)
    ));
    assert!(matches!(
        log.append(2, b"x".to_vec()).await,
        Err(Error::UnknownPartition {
            partition: 2,
            partitions: 2
        })
    ));
    assert!(matches!(
        log.read_now(5, 0, 1),
        Err(Error::UnknownPartition { .. })
    ));
    log.append(0, b"x".to_vec()).await.unwrap();
    assert!(matches!(
        log.read_now(0, 2, 1),
        Err(Error::OffsetOutOfRange {
            partition: 0,
            offset: 2,
            end_offset: 1
        })
    ));
    let (_tx, mut shutdown) = no_shutdown();
    assert!(matches!(
        log.read(0, 3, 1, &mut shutdown).await,
        Err(Error::OffsetOutOfRange { .. })
    ));
    assert_eq!(
        log.stats().committed_records,
        1,
        "rejected appends wrote nothing"
    );
}

#[tokio::test]
async fn close_stops_appends_of_other_clones_but_not_reads() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 1);
    let other = log.clone();
    log.append(0, b"a".to_vec()).await.unwrap();
    log.close().await.unwrap();
    let err = other.append(0, b"b".to_vec()).await.unwrap_err();
    assert!(matches!(err, Error::Stopped), "{err}");
    assert_eq!(other.read_now(0, 0, 10).unwrap().len(), 1);
}

#[tokio::test]
async fn large_reads_are_split_and_coalesced_correctly() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 3);
    // Interleave partitions with varied sizes so reads skip other partitions' records.
    for round in 0..40u32 {
        for p in 0..3u32 {
            let size = ((round * 7919 + p * 104_729) % 40_000) as usize;
            let batch = (0..3)
                .map(|k| vec![(round + p + k) as u8; size + k as usize])
                .collect();
            log.append_batch(p, batch).await.unwrap();
        }
    }
    for p in 0..3u32 {
        let all = log.read_now(p, 0, 1000).unwrap();
        assert_eq!(all.len(), 120);
        for (k, r) in all.iter().enumerate() {
            let (round, j) = (k as u32 / 3, k as u32 % 3);
            let size = ((round * 7919 + p * 104_729) % 40_000) as usize + j as usize;
            assert_eq!(r.offset, k as u64);
            assert_eq!(r.payload.len(), size);
            assert!(r.payload.iter().all(|&b| b == (round + p + j) as u8));
        }
    }
}

#[test]
fn partition_for_is_pinned() {
    // These values are persisted in effect (where every resource's commands live). If this
    // test fails, the hash changed: that breaks every existing log. Do not update the values.
    let pinned = [
        ("", 16, PIN_EMPTY),
        ("campaign-1", 16, PIN_CAMPAIGN_1),
        ("event:2024-10-01:seat-A17", 64, PIN_SEAT),
        ("lot-998877", 7, PIN_LOT),
        ("한국-쿠폰", 12, PIN_UNICODE),
    ];
    for (id, partitions, expected) in pinned {
        assert_eq!(
            partition_for(id, partitions),
            expected,
            "partition_for({id:?}, {partitions})"
        );
    }
    assert_eq!(partition_for("anything", 1), 0);
}

const PIN_EMPTY: u32 = 6;
const PIN_CAMPAIGN_1: u32 = 5;
const PIN_SEAT: u32 = 54;
const PIN_LOT: u32 = 1;
const PIN_UNICODE: u32 = 9;

#[test]
fn partition_for_spreads_similar_ids_evenly() {
    for partitions in [2u32, 8, 12, 64] {
        let mut counts = vec![0u32; partitions as usize];
        let n = 64_000u32;
        for i in 0..n {
            counts[partition_for(&format!("campaign-{i}"), partitions) as usize] += 1;
        }
        let expected = f64::from(n) / f64::from(partitions);
        for (p, &c) in counts.iter().enumerate() {
            let deviation = (f64::from(c) - expected).abs() / expected;
            assert!(
                deviation < 0.1,
                "partition {p} of {partitions} got {c}, expected ~{expected}"
            );
        }
    }
}

/// Environment variable that turns `sigkill_loses_no_acknowledged_append` into the child
/// process it kills.
const CRASH_CHILD_DIR: &str = "TURNSTILE_LOG_CRASH_CHILD_DIR";

#[test]
fn sigkill_loses_no_acknowledged_append() {
    if let Ok(dir) = std::env::var(CRASH_CHILD_DIR) {
        crash_child(Path::new(&dir));
        return;
    }
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().unwrap();
    let mut acked: Vec<(u32, u64, String)> = Vec::new();
    for (round, kill_after) in [(0, 2_000usize), (1, 5_000), (2, 300)] {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "sigkill_loses_no_acknowledged_append",
                "--exact",
                "--nocapture",
            ])
            .env(CRASH_CHILD_DIR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut this_round = 0;
        while this_round < kill_after {
            let line = lines.next().expect("child ended early").unwrap();
            if let Some(ack) = parse_ack(&line) {
                acked.push(ack);
                this_round += 1;
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Acks printed before the kill are in the pipe still.
        for line in lines {
            if let Some(ack) = parse_ack(&line.unwrap()) {
                acked.push(ack);
            }
        }
        let log = open(dir.path(), 4);
        for (p, offset, payload) in &acked {
            let record = log.read_now(*p, *offset, 1).unwrap();
            assert_eq!(
                record.first().map(|r| &r.payload[..]),
                Some(payload.as_bytes()),
                "round {round}: acknowledged record {p}/{offset} lost or changed"
            );
        }
        for p in 0..4 {
            let all = log.read_now(p, 0, usize::MAX).unwrap();
            assert_eq!(all.len() as u64, log.end_offset(p), "dense offsets");
        }
    }
    let unique: HashSet<_> = acked.iter().map(|a| (a.0, a.1)).collect();
    assert_eq!(unique.len(), acked.len(), "no offset acknowledged twice");
}

fn parse_ack(line: &str) -> Option<(u32, u64, String)> {
    let mut parts = line.strip_prefix("ack ")?.splitn(3, ' ');
    Some((
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
        parts.next()?.to_string(),
    ))
}

/// Appends from many tasks forever, printing each acknowledged append, until killed.
fn crash_child(dir: &Path) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let log = open(dir, 4);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        for t in 0..32u32 {
            let log = log.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                for i in 0u64.. {
                    let p = (t + i as u32) % 4;
                    let payload = format!(
                        "pid{}-t{t}-i{i}-{}",
                        std::process::id(),
                        "x".repeat((i % 300) as usize)
                    );
                    let offset = log.append(p, payload.clone().into_bytes()).await.unwrap();
                    tx.send(format!("ack {p} {offset} {payload}\n")).unwrap();
                }
            });
        }
        let mut stdout = std::io::stdout().lock();
        while let Some(line) = rx.recv().await {
            stdout.write_all(line.as_bytes()).unwrap();
            stdout.flush().unwrap();
        }
    });
}
