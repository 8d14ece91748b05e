#!/usr/bin/env bash
# The durable OMS load ladder next to pgbench, on one machine, in one run.
#
#   bench/durable-ladder.sh [RATE ...]      (default: 25 50 100 150 200 300)
#
# Starts `oms up --durable` (its own PostgreSQL with the durability
# defaults: fsync and synchronous_commit on), measures pgbench's
# simple-update TPS on that cluster (the database's limit here), then runs
# `oms loadgen` with new orders only at each rate for 20 s and prints, per
# rate: achieved rate, p50/p95/p99, errors, confirmed orders, and the
# database transactions committed per order (every transaction of every
# service, relay, consumer and probes included, from pg_stat_database).
# Needs a release build: cargo build --release -p homeostat-oms
set -euo pipefail
cd "$(dirname "$0")/.."
OMS=./target/release/oms
RATES=("${@:-25 50 100 150 200 300}")
read -r -a RATES <<<"${RATES[*]}"
BASE_PORT=${BASE_PORT:-19480}
DURATION=${DURATION:-20}
LOG=$(mktemp)
"$OMS" up --durable --base-port "$BASE_PORT" --admin-token bench >"$LOG" 2>&1 &
UP=$!
trap 'kill -TERM $UP 2>/dev/null; wait $UP 2>/dev/null; rm -f "$LOG"' EXIT
for _ in $(seq 1 300); do
  grep -q "service(s) ready" "$LOG" && break
  sleep 0.1
done
DB=$(awk '$1 == "postgres" { print $2 }' "$LOG")
[ -n "$DB" ] || { cat "$LOG"; exit 1; }
# pgbench connects with the same URL (user oms, trust on loopback).
pgbench -i -s 10 -q "$DB" >/dev/null 2>&1
TPS=$(pgbench -b simple-update -c 8 -j 2 -T 20 -n "$DB" 2>/dev/null \
  | awk '/^tps/ { print $3; exit }')
pgbench -i -I d "$DB" >/dev/null 2>&1 || true
echo "pgbench simple-update, 8 clients, 20 s: ${TPS} TPS"
commits() { psql -XAtq "$DB" -c "SELECT sum(xact_commit) FROM pg_stat_database"; }
orders() { psql -XAtq "$DB" -c "SELECT count(*) FROM orders.orders"; }
printf '| rate | achieved | p50 ms | p95 ms | p99 ms | errors + dropped | confirmed | txns/order | orders/s × txns/order ÷ TPS |\n'
printf '| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n'
for rate in "${RATES[@]}"; do
  c0=$(commits); o0=$(orders)
  line=$("$OMS" loadgen --target "http://127.0.0.1:$BASE_PORT" --rate "$rate" \
    --duration "$DURATION" --new-orders 100 --lookups 0 --json | tail -1)
  # Let the relay, the consumer and shipping catch up before counting.
  sleep 3
  c1=$(commits); o1=$(orders)
  python3 - "$line" "$c0" "$c1" "$o0" "$o1" "$TPS" "$rate" <<'PY'
import json, sys
r = json.loads(sys.argv[1]); c0, c1, o0, o1 = map(int, sys.argv[2:6])
tps, rate = float(sys.argv[6]), float(sys.argv[7])
per_order = (c1 - c0) / max(o1 - o0, 1)
print(f'| {rate:.0f} | {r["achieved_rps"]:.1f} | {r["p50_ms"]:.1f} | {r["p95_ms"]:.1f} | '
      f'{r["p99_ms"]:.1f} | {r["errors"] + r["dropped"]} | {r["orders_confirmed"]} | '
      f'{per_order:.1f} | {r["achieved_rps"] * per_order / tps:.2f} |')
PY
done
