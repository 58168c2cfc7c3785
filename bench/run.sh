#!/usr/bin/env bash
# Runs the wsgate echo benchmark (bench/echo-bench.ts; with --scaling, bench/scaling-bench.ts; with
# --pipelined, bench/pipelined-bench.ts; with --handshake-ab, bench/handshake-ab.ts) with the project's Node 24:
# raises the open-file limit for the idle-connection test, installs nginx-light
# when nginx is missing and this runs as root with apt-get (otherwise nginx is
# skipped with a note), and stops everything the benchmark started on exit,
# including on Ctrl-C. Options are passed through (try --help).
set -euo pipefail
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT_DIR="$(dirname "$BENCH_DIR")"
NODE="$ROOT_DIR/node_modules/.bin/node"

if [ ! -x "$NODE" ]; then
  echo "missing $NODE: run 'npm install' in $ROOT_DIR first" >&2
  exit 2
fi

# 2 descriptors per proxied connection in the proxy, 1 in the client and 1 in the backend
# (as root the hard limit can be raised first, so that 10,000 idle connections fit)
ulimit -Hn 65536 2>/dev/null || true
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

note=""
if ! command -v nginx >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "nginx not found: installing nginx-light" >&2
    export DEBIAN_FRONTEND=noninteractive
    if ! timeout 300 apt-get install -y -q nginx-light >&2; then
      timeout 300 apt-get update -q >&2 || true
      timeout 300 apt-get install -y -q nginx-light >&2 || true
    fi
    # the package starts a system nginx on port 80; the benchmark runs its own
    if command -v systemctl >/dev/null 2>&1; then systemctl stop nginx >/dev/null 2>&1 || true; fi
    command -v nginx >/dev/null 2>&1 || note="nginx-light could not be installed; nginx skipped"
  else
    note="nginx not installed and not root with apt-get; nginx skipped"
  fi
fi
export WSGATE_BENCH_NOTE="$note"

WORKDIR="$(mktemp -d "${TMPDIR:-/tmp}/wsgate-bench-XXXXXX")"
PIDFILE="$WORKDIR/pids"
export WSGATE_BENCH_WORKDIR="$WORKDIR" WSGATE_BENCH_PIDFILE="$PIDFILE"
bench_pid=""
cleanup() {
  trap - EXIT INT TERM HUP
  if [ -n "$bench_pid" ] && kill -0 "$bench_pid" 2>/dev/null; then
    kill -TERM "$bench_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$bench_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$bench_pid" 2>/dev/null || true
  fi
  # backstop: process groups the benchmark recorded and did not reap
  if [ -s "$PIDFILE" ]; then
    while read -r pid; do
      [ -n "$pid" ] && kill -KILL -- "-$pid" 2>/dev/null || true
    done < "$PIDFILE"
  fi
  rm -rf "$WORKDIR"
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM HUP

# --scaling runs the scaling benchmark (scaling-bench.ts), --pipelined the pipelined-senders one
# (pipelined-bench.ts), --handshake-ab the paired handshake A/B (handshake-ab.ts), instead of the
# echo benchmark.
program="$BENCH_DIR/echo-bench.ts"
for arg in "$@"; do
  [ "$arg" = "--scaling" ] && program="$BENCH_DIR/scaling-bench.ts"
  [ "$arg" = "--pipelined" ] && program="$BENCH_DIR/pipelined-bench.ts"
  [ "$arg" = "--handshake-ab" ] && program="$BENCH_DIR/handshake-ab.ts"
done
"$NODE" "$program" "$@" &
bench_pid=$!
set +e
wait "$bench_pid"
status=$?
set -e
bench_pid=""
exit "$status"
