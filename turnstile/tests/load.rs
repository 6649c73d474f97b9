//! `turnstile load` as a user runs it, against a real `turnstile serve`: the rate it offers,
//! every claim accounted for, the grants it reports equal to the coupons in the journal, and
//! clear, quick failures on bad input.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{temp_dir, Server};
use serde_json::Value;

fn turnstile_load(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_turnstile"))
        .arg("load")
        .args(args)
        .args(["--quiet"])
        .output()
        .unwrap()
}

fn json_report(output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "load failed:\n{stdout}\n{stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"))
}

fn count(report: &Value, pointer: &str) -> u64 {
    report
        .pointer(pointer)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no {pointer} in {report:#}"))
}

/// Coupons the journal holds for the campaigns of a seed.
async fn coupons_in_journal(data: &std::path::Path, seed: u64) -> u64 {
    let url = format!("sqlite://{}?mode=ro", data.join("journal.sqlite").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let (coupons,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM coupons WHERE campaign_id LIKE ?")
            .bind(format!("load-{seed}-%"))
            .fetch_one(&pool)
            .await
            .unwrap();
    pool.close().await;
    u64::try_from(coupons).unwrap()
}

#[tokio::test]
async fn an_open_loop_run_offers_its_rate_and_its_grants_are_in_the_journal() {
    let (_dir, data) = temp_dir();
    let server = Server::start(&data, &["--partitions", "2"]);
    let target = server.url("");
    let (rate, duration_s) = (400.0, 2.0);
    let args = [
        "--target",
        &target,
        "--rate",
        "400",
        "--users",
        "500",
        "--resources",
        "2",
        "--coupons-per-resource",
        "100",
        "--connections",
        "16",
        "--seed",
        "42",
        "--json",
    ];

    // The campaigns do not exist yet: a clear error that names the fix.
    let output = turnstile_load(&[&args[..], &["--duration", "2s"]].concat());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("campaign load-42-0 does not exist")
            && stderr.contains("--create-campaigns"),
        "{stderr}"
    );

    let report = json_report(&turnstile_load(
        &[&args[..], &["--duration", "2s", "--create-campaigns"]].concat(),
    ));
    let scheduled = count(&report, "/offered/scheduled");
    let answered = count(&report, "/achieved/answered");
    // Poisson: 800 claims due on average, standard deviation about 28.
    let due_per_sec = scheduled as f64 / duration_s;
    assert!(
        (due_per_sec / rate - 1.0).abs() < 0.15,
        "{scheduled} due in 2 s"
    );
    let achieved = report["achieved"]["rate_per_sec"].as_f64().unwrap();
    assert!(
        (achieved / due_per_sec - 1.0).abs() < 0.10,
        "achieved {achieved}/s of {due_per_sec}/s due"
    );

    // Every claim that came due was sent and answered, and every answer is counted once.
    assert_eq!(count(&report, "/missed"), 0, "{report:#}");
    assert_eq!(count(&report, "/transport_errors"), 0, "{report:#}");
    assert_eq!(count(&report, "/achieved/sent"), scheduled);
    assert_eq!(answered, scheduled);
    let by_status: u64 = report["answers"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(by_status, answered, "{report:#}");
    assert_eq!(count(&report, "/answers/pending_202"), 0, "{report:#}");
    let latency_ms = |q: &str| report["latency_ms"][q].as_f64().unwrap();
    assert!(0.0 < latency_ms("p50") && latency_ms("p50") <= latency_ms("p99"));
    assert!(latency_ms("p99") <= latency_ms("max"));

    // The grants reported are the coupons in the journal, and the stock the server showed.
    let granted = count(&report, "/answers/granted_201");
    assert_eq!(
        granted, 200,
        "800 claims by 500 users sell out 2 × 100: {report:#}"
    );
    assert_eq!(granted, coupons_in_journal(&data, 42).await);
    let issued_during_run: u64 = report["stock"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["issued_after"].as_u64().unwrap() - s["issued_before"].as_u64().unwrap())
        .sum();
    assert_eq!(issued_during_run, granted);

    // The same seed again finds the campaigns, sends new claims (new keys, not replays), and
    // they are all refused: nothing is left.
    let again = json_report(&turnstile_load(
        &[&args[..], &["--duration", "500ms"]].concat(),
    ));
    assert_eq!(count(&again, "/answers/granted_201"), 0);
    assert_eq!(count(&again, "/answers/replayed_200"), 0);
    assert_eq!(
        count(&again, "/answers/sold_out_409"),
        count(&again, "/achieved/answered")
    );
    assert_eq!(coupons_in_journal(&data, 42).await, 200);

    let (passed, audit) = common::audit(&data, &[]);
    assert!(passed, "{audit}");
}

#[test]
fn the_text_report_names_offered_and_achieved_rates_and_latency() {
    let (_dir, data) = temp_dir();
    let server = Server::start(&data, &[]);
    let output = turnstile_load(&[
        "--target",
        &server.url("/"),
        "--rate",
        "200",
        "--duration",
        "500ms",
        "--create-campaigns",
        "--seed",
        "3",
        "--connections",
        "8",
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    for line in [
        "offered       200 claims/s",
        "achieved ",
        "latency (ms)  p50 ",
        "(from the intended send time)",
        "answers       201 granted ",
        "errors        4xx 0   5xx 0   transport 0   missed 0",
        "coupons issued",
    ] {
        assert!(stdout.contains(line), "no {line:?} in:\n{stdout}");
    }
}

#[test]
fn bad_input_fails_quickly_with_a_clear_message() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let unreachable = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let cases: [(&[&str], &str); 5] = [
        (&["--rate", "0"], "the rate must be more than 0"),
        (&["--duration", "soon"], "write a duration such as 30s"),
        (&["--duration", "30"], "needs a unit"),
        (&["--target", "localhost:8080"], "must start with http://"),
        (&["--target", &unreachable], "cannot connect to"),
    ];
    for (args, expected) in cases {
        let started = Instant::now();
        let output = turnstile_load(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{args:?} took {:?}",
            started.elapsed()
        );
    }
}
