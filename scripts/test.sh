#!/usr/bin/env bash
# The whole test suite: formatting, clippy, every test. Works on a fresh Debian machine as
# root (it installs what is missing) and on a developer's machine.
#
# The embedded default needs no server. Later stages add services here (PostgreSQL,
# Redis, a Kafka-protocol broker, moto) with the same pattern: install if missing, start
# if down, fail with a clear message if that is impossible.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo is missing; install the Rust toolchain (https://rustup.rs) first" >&2
    exit 1
fi
if ! command -v cargo-nextest >/dev/null 2>&1; then
    step "installing cargo-nextest"
    cargo install cargo-nextest --locked
fi

step "rustfmt"
cargo fmt --all -- --check

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
# TURNSTILE_CRASH_ROUNDS raises the number of kill -9 rounds of the crash test (default 20).
cargo nextest run --workspace --locked --no-fail-fast
