//! `turnstile demo --scenario tickets|restaurant|auction --small` as a user runs them: each
//! exits 0 with its report's key lines and a passing audit.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn demo(scenario: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_turnstile"))
        .args(["demo", "--scenario", scenario, "--small", "--quiet"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "demo --scenario {scenario} failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("audit: PASSED"), "{stdout}");
    assert!(stdout.contains("demo: OK"), "{stdout}");
    assert!(!stdout.contains("[FAILED]"), "{stdout}");
    stdout
}

#[test]
fn tickets_sell_each_seat_once_and_resell_lapsed_holds() {
    let stdout = demo("tickets");
    assert!(stdout.contains("2,000 fans for 200 seats"), "{stdout}");
    assert!(stdout.contains("[ok] sold "), "{stdout}");
    assert!(stdout.contains("[ok] each sold seat sold once"), "{stdout}");
    assert!(
        stdout.contains("[ok] every abandoned or late hold lapsed"),
        "{stdout}"
    );
    assert!(stdout.contains("  lapsed        "), "{stdout}");
    assert!(
        stdout.contains("resold after a release or lapse"),
        "{stdout}"
    );
}

#[test]
fn restaurant_never_seats_more_covers_than_a_slot_has() {
    let stdout = demo("restaurant");
    assert!(stdout.contains("300 parties rush"), "{stdout}");
    assert!(
        stdout.contains("[ok] covers never over capacity"),
        "{stdout}"
    );
    assert!(stdout.contains("  promotions    "), "{stdout}");
    assert!(stdout.contains("  lapsed        "), "{stdout}");
}

#[test]
fn auction_lots_go_to_their_highest_bidders() {
    let stdout = demo("auction");
    assert!(stdout.contains("120 bidders on 2 lots"), "{stdout}");
    assert!(
        stdout.contains("[ok] lot-1: the winner is the highest bidder"),
        "{stdout}"
    );
    assert!(
        stdout.contains("[ok] lot-2: the winner is the highest bidder"),
        "{stdout}"
    );
    assert!(stdout.contains("extensions"), "{stdout}");
}
