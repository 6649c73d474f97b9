//! `turnstile demo` as a user runs it: exits 0 with grants equal to capacity and a passing
//! audit in its report.
#![allow(clippy::unwrap_used)]

use std::process::Command;

#[test]
fn demo_grants_exactly_the_capacity_and_passes_the_audit() {
    let output = Command::new(env!("CARGO_BIN_EXE_turnstile"))
        .args(["demo", "--users", "20000", "--coupons", "500", "--quiet"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("granted: 500 of 500 coupons"), "{stdout}");
    assert!(stdout.contains("audit: PASSED"), "{stdout}");
    assert!(stdout.contains("demo: OK"), "{stdout}");
}
