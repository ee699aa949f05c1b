#!/usr/bin/env bash
# The deployment as local processes on loopback, for machines without a container engine (CI,
# these machines): the same services as docker-compose.yml, from Debian and PyPI packages.
#
#   deploy/stack.sh up       start db, mlflow, app1, app2, scheduler, proxy (idempotent);
#                            with VZ_STACK_RAY=1 first a Ray head and worker, used by the jobs
#   deploy/stack.sh status   each service: pid and health; exit 1 when one is down
#   deploy/stack.sh down     stop everything it started; no process is left behind
#   deploy/stack.sh run CMD… a command with the apps' settings (e.g. vz pipeline run-once)
#   deploy/stack.sh services the service names, one per line
#
# Settings: the environment, else deploy/stack.env (shared with docker-compose.yml).
# VZ_STACK_DIR (var/stack) holds pids, logs, the app's var_dir, MLflow artifacts and Caddy's
# data; VZ_STACK_SECRETS names a Streamlit secrets.toml with the [auth] login section;
# VZ_STACK_DEMO_ARGS is passed to the first `vz demo` (e.g. "--years 1"); VZ_STACK_SERVE_ARGS to
# each `vz serve` (bench/load.py: "--insecure-no-auth", every page without login, on loopback).
# VZ_STACK_RAY=1 adds ray-head and ray-worker on loopback (VZ_RAY_PORT, VZ_RAY_CPUS each; a token
# in VZ_STACK_DIR), and the apps and scheduler get VZ_RAY_ADDRESS (the weekly backtest runs on it).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

# deploy/stack.env fills in what the environment does not set
while IFS='=' read -r key value; do
    case "$key" in '' | \#*) continue ;; esac
    [ -n "${!key+x}" ] || export "$key=$value"
done < deploy/stack.env
STACK_DIR="$(mkdir -p "${VZ_STACK_DIR:-var/stack}" && cd "${VZ_STACK_DIR:-var/stack}" && pwd)"
BIN="${VZ_STACK_BIN:-$ROOT/.venv/bin}"
SERVICES=(db mlflow app1 app2 scheduler proxy ray-head ray-worker)
RAY_TMP="${VZ_STACK_RAY_TMP:-${TMPDIR:-/tmp}/vz-ray-$UID}"  # short: Ray's socket paths must fit in 107 bytes
WAIT_SECONDS="${VZ_STACK_WAIT_SECONDS:-120}"

say() { echo "stack: $*" >&2; }
pidfile() { echo "$STACK_DIR/$1.pid"; }
# Alive means not a zombie: where PID 1 does not reap (containers), dead children linger as Z.
alive() { ps -o stat= -p "$1" 2>/dev/null | grep -qv '^Z'; }
group_alive() { ps -eo pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ { found = 1 } END { exit !found }'; }
running() { local pid; pid="$(cat "$(pidfile "$1")" 2>/dev/null)" && alive "$pid"; }

# start NAME CMD...: a new session (its own process group), output to NAME.log, pid to NAME.pid
start() {
    local name="$1"; shift
    if running "$name"; then say "$name already running"; return 0; fi
    setsid "$@" >"$STACK_DIR/$name.log" 2>&1 < /dev/null &
    echo $! > "$(pidfile "$name")"
}

# wait_for NAME URL: until URL answers 2xx, the process dies, or WAIT_SECONDS pass
wait_for() {
    local name="$1" url="$2" deadline=$((SECONDS + WAIT_SECONDS))
    until curl -ksf -o /dev/null --max-time 2 "$url"; do
        if ! running "$name"; then say "$name exited; its log:"; tail -n 20 "$STACK_DIR/$name.log" >&2; return 1; fi
        if [ "$SECONDS" -ge "$deadline" ]; then say "$name not healthy after ${WAIT_SECONDS}s ($url)"; return 1; fi
        sleep 0.5
    done
}

stop() {
    local name="$1" pid deadline
    pid="$(cat "$(pidfile "$name")" 2>/dev/null)" || return 0
    if group_alive "$pid"; then
        kill -TERM -- "-$pid" 2>/dev/null || true
        deadline=$((SECONDS + 20))
        while group_alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
        if group_alive "$pid"; then
            kill -KILL -- "-$pid" 2>/dev/null || true
            deadline=$((SECONDS + 5))  # a kill is delivered asynchronously: until it has landed
            while group_alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
            say "$name killed"
        fi
        say "$name stopped"
    fi
    rm -f "$(pidfile "$name")"
}

database_urls() {
    if [ -n "${VZ_STACK_DATABASE_URL:-}" ]; then
        DB_URL="$VZ_STACK_DATABASE_URL"
        MLFLOW_DB_URL="${VZ_STACK_MLFLOW_DATABASE_URL:?set it beside VZ_STACK_DATABASE_URL}"
    else
        DB_URL="$(VZ_PG_DB="$VZ_DB_NAME" bash .ci/postgres.sh)"
        MLFLOW_DB_URL="$(VZ_PG_DB="$VZ_MLFLOW_DB_NAME" bash .ci/postgres.sh)"
    fi
}

ray_enabled() { [ "${VZ_STACK_RAY:-0}" = 1 ]; }

ray_env() {
    export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH="$STACK_DIR/ray_auth_token" RAY_USAGE_STATS_ENABLED=0
    [ -s "$RAY_AUTH_TOKEN_PATH" ] || (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$RAY_AUTH_TOKEN_PATH")
}

app_env() {
    export VZ_DATABASE_URL="$DB_URL"
    export VZ_MLFLOW_TRACKING_URI="http://127.0.0.1:$VZ_MLFLOW_PORT"
    export VZ_VAR_DIR="$STACK_DIR/var"
    export OMP_WAIT_POLICY=PASSIVE
    if ray_enabled; then ray_env; export VZ_RAY_ADDRESS="127.0.0.1:$VZ_RAY_PORT"; fi
}

# ray_up: a Ray head and one worker node on loopback (--block: each stays in its process group)
ray_up() {
    ray_enabled || return 0
    [ -x "$BIN/ray" ] || { say "VZ_STACK_RAY=1 needs the Ray extra: $BIN/pip install -r requirements-ray.txt"; exit 1; }
    ray_env
    start ray-head "$BIN/ray" start --head --block --node-ip-address=127.0.0.1 --port "$VZ_RAY_PORT" \
        --num-cpus "$VZ_RAY_CPUS" --include-dashboard=false --temp-dir "$RAY_TMP" --disable-usage-stats
    local deadline=$((SECONDS + WAIT_SECONDS))
    until "$BIN/ray" status --address "127.0.0.1:$VZ_RAY_PORT" >/dev/null 2>&1; do
        if ! running ray-head; then say "ray-head exited; its log:"; tail -n 20 "$STACK_DIR/ray-head.log" >&2; exit 1; fi
        if [ "$SECONDS" -ge "$deadline" ]; then say "ray-head not up after ${WAIT_SECONDS}s"; exit 1; fi
        sleep 1
    done
    start ray-worker "$BIN/ray" start --block --address "127.0.0.1:$VZ_RAY_PORT" \
        --node-ip-address=127.0.0.1 --num-cpus "$VZ_RAY_CPUS" --disable-usage-stats
    say "ray: head on 127.0.0.1:$VZ_RAY_PORT and a worker, $VZ_RAY_CPUS CPUs each"
}

up() {
    command -v caddy >/dev/null || { say "caddy is missing: apt-get install caddy"; exit 1; }
    database_urls
    say "db: PostgreSQL on loopback (${DB_URL%%@*}@…)"
    start mlflow "$BIN/mlflow" server --backend-store-uri "$MLFLOW_DB_URL" \
        --artifacts-destination "$STACK_DIR/mlartifacts" \
        --host 127.0.0.1 --port "$VZ_MLFLOW_PORT" --workers 1
    wait_for mlflow "http://127.0.0.1:$VZ_MLFLOW_PORT/health"
    ray_up
    app_env
    say "warehouse: building the demo city unless it has data (vz demo --if-missing)"
    # shellcheck disable=SC2086  # VZ_STACK_DEMO_ARGS: e.g. "--years 1" for a quick stack
    "$BIN/vz" demo --if-missing ${VZ_STACK_DEMO_ARGS:-} >"$STACK_DIR/demo.log" 2>&1 || { say "vz demo failed:"; tail -n 20 "$STACK_DIR/demo.log" >&2; exit 1; }
    local secrets=()
    if [ -n "${VZ_STACK_SECRETS:-}" ]; then secrets=(--secrets "$VZ_STACK_SECRETS"); fi
    # shellcheck disable=SC2206  # VZ_STACK_SERVE_ARGS: words, e.g. "--insecure-no-auth"
    secrets+=(${VZ_STACK_SERVE_ARGS:-})
    VZ_APP_METRICS_PORT="$VZ_APP1_METRICS_PORT" start app1 "$BIN/vz" serve --port "$VZ_APP1_PORT" "${secrets[@]}"
    VZ_APP_METRICS_PORT="$VZ_APP2_METRICS_PORT" start app2 "$BIN/vz" serve --port "$VZ_APP2_PORT" "${secrets[@]}"
    wait_for app1 "http://127.0.0.1:$VZ_APP1_PORT/_stcore/health"
    wait_for app2 "http://127.0.0.1:$VZ_APP2_PORT/_stcore/health"
    if "$BIN/vz" pipeline --help >/dev/null 2>&1; then
        start scheduler "$BIN/vz" pipeline serve
    else
        say "scheduler: this version has no \`vz pipeline\`; not started"
    fi
    VZ_APP_UPSTREAMS="127.0.0.1:$VZ_APP1_PORT 127.0.0.1:$VZ_APP2_PORT" \
        VZ_CADDY_DATA="$STACK_DIR/caddy" XDG_DATA_HOME="$STACK_DIR/caddy" \
        start proxy caddy run --config deploy/Caddyfile --adapter caddyfile
    wait_for proxy "https://$VZ_PROXY_HOST:$VZ_PROXY_PORT/_stcore/health"
    say "up: https://$VZ_PROXY_HOST:$VZ_PROXY_PORT (MLflow http://127.0.0.1:$VZ_MLFLOW_PORT)"
}

status() {
    local bad=0 name url
    for name in "${SERVICES[@]}"; do
        case "$name" in
            db) if pg_isready -q -h 127.0.0.1 2>/dev/null; then echo "db        up   (PostgreSQL, system service)"; else echo "db        down"; bad=1; fi; continue ;;
            mlflow) url="http://127.0.0.1:$VZ_MLFLOW_PORT/health" ;;
            app1) url="http://127.0.0.1:$VZ_APP1_PORT/_stcore/health" ;;
            app2) url="http://127.0.0.1:$VZ_APP2_PORT/_stcore/health" ;;
            scheduler) url="" ;;
            proxy) url="https://$VZ_PROXY_HOST:$VZ_PROXY_PORT/_stcore/health" ;;
            ray-head | ray-worker) ray_enabled || { printf '%-9s off  (VZ_STACK_RAY=1 to start)\n' "$name"; continue; }; url="" ;;
        esac
        if ! running "$name"; then printf '%-9s down\n' "$name"; bad=1
        elif [ -n "$url" ] && ! curl -ksf -o /dev/null --max-time 2 "$url"; then printf '%-9s sick (pid %s, %s)\n' "$name" "$(cat "$(pidfile "$name")")" "$url"; bad=1
        else printf '%-9s up   (pid %s)\n' "$name" "$(cat "$(pidfile "$name")")"; fi
    done
    return "$bad"
}

down() {
    local i
    for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
        [ "${SERVICES[i]}" = db ] || stop "${SERVICES[i]}"
    done
    say "down (PostgreSQL is a system service and keeps running)"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    run) shift; database_urls; app_env; PATH="$BIN:$PATH" exec "$@" ;;
    services) printf '%s\n' "${SERVICES[@]}" ;;
    *) echo "usage: deploy/stack.sh up|down|status|run CMD…|services" >&2; exit 2 ;;
esac
