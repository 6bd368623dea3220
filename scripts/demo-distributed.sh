#!/usr/bin/env bash
# make demo-distributed: the demo's story (scripts/demo.sh: A passes and rolls out, B is blocked,
# C halts in its first wave) told through Celery zone workers, a Redis broker and a PostgreSQL
# store, all on this machine: redis-server on 127.0.0.1 (a free port, no persistence), a
# PostgreSQL cluster of its own listening only on a unix socket, and two `lab worker`s, zone `lab`
# (the sandboxes' campaign cells) and zone `production` (the rollout shards). The demo lab is a
# copy of the default lab under $LAB_DISTRIBUTED_DIR (default .lab/distributed/) whose lab.yml
# names the broker, the store, the artifact share and a signing key made for the run
# ($LAB_DISTRIBUTED_STORE=sqlite keeps the embedded SQLite store instead of PostgreSQL). Everything
# started here is stopped on exit, however the demo ends. Exits as scripts/demo.sh does: 0 when
# every build was judged as the story says.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
WORK=${LAB_DISTRIBUTED_DIR:-$REPO/.lab/distributed}
STORE_KIND=${LAB_DISTRIBUTED_STORE:-postgresql}
case $STORE_KIND in postgresql | sqlite) ;; *) echo "demo-distributed: LAB_DISTRIBUTED_STORE is postgresql or sqlite, not '$STORE_KIND'" >&2; exit 2 ;; esac
LAB_FILES=(lab.yml agreement.yml inventory test_suites playbooks products)

say() { printf '\n=== %s\n' "$*"; }
die() { echo "demo-distributed: $*" >&2; exit 2; }

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

need_packages() {  # redis-server and PostgreSQL's server from Debian; installed here when run as root
    local missing=()
    command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
    [ "$STORE_KIND" = sqlite ] || [ -n "$(pg_bin)" ] || missing+=(postgresql)
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" != 0 ]; then
        die "this demo needs Debian's ${missing[*]}: run 'sudo apt-get install ${missing[*]}', then make demo-distributed"
    fi
    say "Installing ${missing[*]} (Debian packages)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
    # Debian's postgresql package starts a cluster of its own; this demo runs its own cluster instead.
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

PIDS=()   # workers and redis-server, stopped on exit
PG_DIR=""
PG_USER=""
as_pg() { if [ -n "$PG_USER" ]; then runuser -u "$PG_USER" -- "$@"; else "$@"; fi; }

stop_all() {
    local code=$?
    say "Stop the workers, redis-server${PG_DIR:+ and PostgreSQL}"
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    done
    if [ -n "$PG_DIR" ] && [ -d "$PG_DIR/data" ]; then
        as_pg "$(pg_bin)/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
        rm -rf "$PG_DIR"
    fi
    exit "$code"
}
trap stop_all EXIT

wait_for() {  # wait_for WHAT SECONDS COMMAND...: until COMMAND succeeds
    local what=$1 seconds=$2; shift 2
    local tries=$((seconds * 10))
    until "$@" >/dev/null 2>&1; do
        tries=$((tries - 1))
        [ "$tries" -gt 0 ] || die "$what did not come up within ${seconds}s"
        sleep 0.1
    done
}

need_packages
command -v lab >/dev/null 2>&1 || die "lab is not on PATH; run it as 'make demo-distributed'"

say "A copy of the default lab in $WORK/lab"
if [ -f "$WORK/lab/lab.yml" ]; then  # a previous run's hosts: stopped before its files go
    (cd "$WORK/lab" && { lab sandbox stop; lab production stop; }) >/dev/null 2>&1 || true
fi
rm -rf "$WORK" && mkdir -p "$WORK/lab" "$WORK/redis" || die "cannot make $WORK"
for name in "${LAB_FILES[@]}"; do cp -a "$REPO/$name" "$WORK/lab/" || die "cannot copy $name"; done
mkdir -p "$WORK/lab/share" "$WORK/lab/reports"
(umask 077 && head -c 48 /dev/urandom | base64 >"$WORK/lab/executor.key") || die "cannot make the signing key"

say "redis-server on 127.0.0.1 (no persistence), the broker"
PORT=$(free_port)
setsid redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK/redis" \
    >"$WORK/redis/redis.log" 2>&1 &
PIDS+=($!)
wait_for redis-server 20 redis-cli -p "$PORT" ping
BROKER="redis://127.0.0.1:$PORT/0"

start_postgres() {
    PG_DIR=$(mktemp -d /tmp/lab-demo-pg.XXXXXX) || die "cannot make a directory for PostgreSQL"
    say "PostgreSQL on a unix socket only (a cluster of this run's own in $PG_DIR), the store"
    if [ "$(id -u)" = 0 ]; then  # PostgreSQL refuses to run as root: Debian's package made the postgres user
        PG_USER=postgres
        chown "$PG_USER" "$PG_DIR" || die "no postgres user to run PostgreSQL as (apt-get install postgresql)"
    fi
    as_pg "$(pg_bin)/initdb" -D "$PG_DIR/data" -U lab -A trust -E UTF8 --locale=C --no-sync \
        >"$WORK/pg-initdb.log" 2>&1 || die "initdb failed: see $WORK/pg-initdb.log"
    as_pg mkdir "$PG_DIR/run"
    as_pg "$(pg_bin)/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w -t 60 \
        -o "-c listen_addresses='' -c unix_socket_directories=$PG_DIR/run" start >/dev/null \
        || die "PostgreSQL did not start: $(tail -n 5 "$PG_DIR/log")"
    as_pg "$(pg_bin)/createdb" -h "$PG_DIR/run" -U lab lab || die "createdb failed"
    echo "store: postgresql://lab@/lab?host=$PG_DIR/run" >>"$WORK/lab/lab.yml"
}
echo "# make demo-distributed: the store, the broker and the workers this run started" >>"$WORK/lab/lab.yml"
if [ "$STORE_KIND" = postgresql ]; then
    start_postgres
else
    say "The store: SQLite in the lab's state directory (LAB_DISTRIBUTED_STORE=sqlite)"
fi

cat >>"$WORK/lab/lab.yml" <<EOF
executor:
  kind: celery
  broker: $BROKER
  share: share
  key_file: executor.key
  visibility_timeout: 900
  time_limit: 800
EOF

say "Two zone workers: lab (campaign cells on the sandboxes) and production (rollout shards)"
for zone in lab production; do
    setsid lab --lab "$WORK/lab/lab.yml" worker --queue "$zone" >"$WORK/worker-$zone.log" 2>&1 &
    PIDS+=($!)
done
for zone in lab production; do
    wait_for "the $zone worker" 120 grep -q "ready\." "$WORK/worker-$zone.log"
done

say "The demo's story, through the workers (scripts/demo.sh)"
LAB_DEMO_ROOT="$WORK/lab" "$REPO/scripts/demo.sh"
code=$?
echo
echo "Tasks each worker ran (their logs: $WORK/worker-*.log):"
for zone in lab production; do
    echo "  $zone: $(grep -c 'succeeded in' "$WORK/worker-$zone.log") task(s)"
done
exit "$code"
