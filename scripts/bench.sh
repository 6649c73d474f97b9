#!/usr/bin/env bash
# Benchmarks, side by side with the peer DESIGN.md §6 names, in one run:
#   1. in-memory decisions (criterion) vs a Redis Lua claim script (redis-benchmark),
#   2. processor memory per grant,
#   3. the journal commit alone (SQLite, then PostgreSQL with recovery's read of 1M grants),
#   4. the demo end to end over HTTP.
# Prints figures; asserts nothing. Record results in BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server redis-tools; }
redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 ||
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
# The Postgres journal's figures need the local server (scripts/test.sh installs it).
pg_isready -q -h 127.0.0.1 -p 5432 ||
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start

# The peer: the common Redis coupon claim, one Lua call per claim, not durable.
# KEYS[1] = stock counter, KEYS[2] = winners set; ARGV[1] = user. __rand_int__ varies the user.
claim_lua='if redis.call("SISMEMBER", KEYS[2], ARGV[1]) == 1 then return -1 end
local left = tonumber(redis.call("GET", KEYS[1]) or "0")
if left <= 0 then return 0 end
redis.call("DECR", KEYS[1]); redis.call("SADD", KEYS[2], ARGV[1]); return 1'
peer() {
    redis-cli -h 127.0.0.1 del bench:stock bench:winners >/dev/null
    redis-cli -h 127.0.0.1 set bench:stock 100000000 >/dev/null
    redis-benchmark -h 127.0.0.1 -n 400000 -c 50 -r 100000000 -P "$1" -q \
        EVAL "$claim_lua" 2 bench:stock bench:winners user:__rand_int__ | tr '\r' '\n' | tail -n 1 |
        grep -oE '[0-9.]+ requests per second'
    redis-cli -h 127.0.0.1 del bench:stock bench:winners >/dev/null
}
echo "== peer: Redis Lua claim script (redis-benchmark, 50 clients)"
echo "unpipelined: $(peer 1)"
echo "pipelined x16: $(peer 16)"

echo "== turnstile: in-memory decisions, one partition"
cargo bench -p turnstile-processors --bench decide -- --noplot 2>&1 | grep -E "^decide/|thrpt"

echo "== turnstile: in-memory decisions of the other domains (holds, bookings, bids)"
for domain in seats venue auction; do
    cargo bench -p turnstile-processors --bench "$domain" -- --noplot 2>&1 | grep -E "^$domain/|thrpt"
done

echo "== turnstile: processor memory per grant (target <= 150 bytes)"
cargo run --release -q -p turnstile-processors --example state_memory -- 1000000

echo "== turnstile: journal commit alone (SQLite, fsync per commit)"
cargo run --release -q -p turnstile-journal --example commit_speed -- 100 300
cargo run --release -q -p turnstile-journal --example commit_speed -- 1000 50

echo "== turnstile: journal commit alone (PostgreSQL, synchronous_commit on), then recovery's read of 1M grants"
cargo run --release -q -p turnstile-journal --example commit_speed -- postgres 100 300
cargo run --release -q -p turnstile-journal --example commit_speed -- postgres 1000 1000

echo "== turnstile: end to end over HTTP (demo)"
cargo run --release -q -p turnstile -- demo --quiet | grep -E "requests|latency|granted:|audit:"
cargo run --release -q -p turnstile -- demo --quiet --users 100000 --coupons 100000 | grep -E "requests|latency|granted:|audit:"
