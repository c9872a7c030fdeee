#!/usr/bin/env bash
# Inbound-SMS webhooks, Switchboard and the Node/Express peer side by side, with the shared
# wrk harness (../shared/bench): distinct, correctly signed webhooks, 64 connections.
#
#   bench/webhooks.sh [DURATION=10s] [CONNECTIONS=64]
#
# Environment: DBS="sqlite sqlite-normal postgres" (which Switchboard runs), PEER=1 (also run
# the peer; needs node), PG_URL (default postgres://postgres@127.0.0.1:5432/postgres),
# RAMP_MS (passed to the harness), SHARED (default ../shared next to the repository).
# Needs wrk (apt-get install wrk) and a release build (cargo build --release -p switchboard).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${SHARED:-$ROOT/../shared}
DURATION=${1:-10s}
CONNECTIONS=${2:-64}
DBS=${DBS:-"sqlite sqlite-normal postgres"}
PEER=${PEER:-1}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
BIN=$ROOT/target/release/switchboard
SID=AC57a2fc32a2aff4259bfd8f91dcdad155 # gen_signed.py's account for SEED=bench
TOKEN=0123456789abcdef0123456789abcdef
NUMBERS=+14155550100,+14155550101,+16465550102
HARNESS=$SHARED/bench/run_webhook_bench.sh
command -v wrk >/dev/null || { echo "wrk not found (apt-get install wrk)" >&2; exit 1; }
[[ -x $BIN ]] || { echo "build first: cargo build --release -p switchboard" >&2; exit 1; }
WORK=$(mktemp -d /tmp/switchboard-webhooks.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Waits until URL answers 2xx.
wait_up() { for _ in $(seq 1 400); do curl -sf -o /dev/null "$1" && return 0; sleep 0.05; done; echo "no answer from $1" >&2; exit 1; }

echo "machine: $(nproc) cores; fsync of 4 KiB on this disk:"
python3 - "$WORK" <<'PY'
import os, sys, time
fd = os.open(os.path.join(sys.argv[1], "fsync.test"), os.O_WRONLY | os.O_CREAT)
n = 300; t = time.time()
for _ in range(n):
    os.write(fd, b"x" * 4096); os.fsync(fd)
ms = (time.time() - t) / n * 1000
print(f"  {ms:.3f} ms per fsync: with 64 requests in flight and one fsync per batch, at most {64 / ms * 1000:,.0f} commits of 64/s")
PY

# The twin, so that `serve` can point the numbers' webhooks at itself at start.
TWIN_PORT=$(free_port)
ARGS=(sim --port "$TWIN_PORT" --account-sid "$SID" --auth-token "$TOKEN")
for n in ${NUMBERS//,/ }; do ARGS+=(--number "$n"); done
RUST_LOG=warn "$BIN" "${ARGS[@]}" >/dev/null &
PIDS+=($!)
wait_up "http://127.0.0.1:$TWIN_PORT/sim/control/messages"

run_switchboard() { # $1 = sqlite | sqlite-normal | postgres
  local kind=$1 port url db sync=full
  port=$(free_port); url=http://127.0.0.1:$port
  case $kind in
    sqlite) db="sqlite:$WORK/$kind.db" ;;
    sqlite-normal) db="sqlite:$WORK/$kind.db"; sync=normal ;;
    postgres)
      local name="sbwebhooks_$$"
      psql "$PG_URL" -qc "DROP DATABASE IF EXISTS $name" -c "CREATE DATABASE $name" >/dev/null
      db="${PG_URL%/*}/$name" ;;
  esac
  DATABASE_URL=$db SWITCHBOARD_SQLITE_SYNC=$sync SWITCHBOARD_PUBLIC_URL=$url \
    SWITCHBOARD_MASTER_KEY=$(printf '%064d' 7) SWITCHBOARD_TWILIO_BASE="http://127.0.0.1:$TWIN_PORT/sim/{product}" \
    SWITCHBOARD_STORAGE_URL="file://$WORK/media-$kind" TWILIO_ACCOUNT_SID=$SID TWILIO_AUTH_TOKEN=$TOKEN \
    TWILIO_PHONE_NUMBER=$NUMBERS SWITCHBOARD_API_KEY=sk_bench_webhooks RUST_LOG=warn \
    "$BIN" serve --role api --port "$port" --host 127.0.0.1 >"$WORK/$kind.log" 2>&1 &
  local pid=$!
  PIDS+=($pid)
  wait_up "$url/healthz"
  echo; echo "=== Switchboard, $kind (synchronous=$sync for SQLite) ==="
  SERVER_PID=$pid OUT_DIR="$WORK/out-$kind" bash "$HARNESS" "$url/twilio/messaging" "$TOKEN" "$DURATION" "$CONNECTIONS"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  [[ $kind == postgres ]] && psql "$PG_URL" -qc "DROP DATABASE IF EXISTS sbwebhooks_$$" >/dev/null
  return 0
}

for kind in $DBS; do run_switchboard "$kind"; done

if [[ $PEER == 1 ]]; then
  PEER_DIR=$WORK/peer-node
  cp -r "$SHARED/bench/peer-node" "$PEER_DIR"
  if [[ -d ${PEER_CACHE:-/tmp/peer-node}/node_modules ]]; then
    cp -r "${PEER_CACHE:-/tmp/peer-node}/node_modules" "$PEER_DIR/"
  else
    (cd "$PEER_DIR" && npm install --silent)
  fi
  port=$(free_port)
  (cd "$PEER_DIR" && PORT=$port TWILIO_AUTH_TOKEN=$TOKEN PUBLIC_URL=http://127.0.0.1:$port WORKERS=1 \
    DB_PATH="$WORK/peer.db" exec node server.js >"$WORK/peer.log" 2>&1) &
  pid=$!
  PIDS+=($pid)
  wait_up "http://127.0.0.1:$port/healthz"
  echo; echo "=== Node/Express peer (better-sqlite3, synchronous=NORMAL) ==="
  SERVER_PID=$pid OUT_DIR="$WORK/out-peer" bash "$HARNESS" "http://127.0.0.1:$port/twilio/messaging" "$TOKEN" "$DURATION" "$CONNECTIONS"
fi
echo; echo "files in $WORK"
