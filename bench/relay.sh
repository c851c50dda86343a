#!/usr/bin/env bash
# Benchmark: load generator (Postfix smtp-source) → relayctl serve → sink
# (Postfix smtp-sink), all on loopback. Prints, for 1, 10 and 50
# concurrent sessions: messages per second accepted (250 after fsync) and
# delivered (to the sink), and the relay's peak RSS.
#
#   bash bench/relay.sh               # 2000 messages of 2 KiB per run
#   MESSAGES=5000 SIZE=10240 bash bench/relay.sh
#   SESSIONS="1 10" bash bench/relay.sh
#
# Needs smtp-source and smtp-sink (Debian: apt-get install postfix; the
# daemon does not have to run). Durability is the production default:
# every message is fsync'd (file and directory) before 250.
set -euo pipefail
cd "$(dirname "$0")/.."

MESSAGES=${MESSAGES:-2000}
SIZE=${SIZE:-2048}
SESSIONS=${SESSIONS:-"1 10 50"}
RELAY_PORT=${RELAY_PORT:-25250}
SINK_PORT=${SINK_PORT:-25260}

for tool in smtp-source smtp-sink; do
  command -v "$tool" >/dev/null || PATH=$PATH:/usr/sbin
  command -v "$tool" >/dev/null || { echo "bench: $tool not found (apt-get install postfix)" >&2; exit 1; }
done

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/relayctl" .
# The load generator connects from one IP: lift the per-IP limit.
cat >"$work/config.yaml" <<YAML
serve:
  limits:
    max_connections: 500
    max_connections_per_ip: 500
YAML

sink_user=()
[ "$(id -u)" -eq 0 ] && sink_user=(-u nobody)
smtp-sink "${sink_user[@]}" -m 1000 "127.0.0.1:$SINK_PORT" 1000 &
pids+=($!)

now() { date +%s.%N; }
delivered() { local n; n=$(grep -c '"result":"delivered"' "$1" 2>/dev/null || true); echo "${n:-0}"; }
rss_peak() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }

printf '%-9s %9s %12s %13s %13s %10s\n' sessions messages "size(B)" "accepted/s" "delivered/s" "peak RSS"
for s in $SESSIONS; do
  spool="$work/spool-$s"; log="$work/delivery-$s.jsonl"
  "$work/relayctl" --config "$work/config.yaml" serve --listen "127.0.0.1:$RELAY_PORT" --spool "$spool" --hostname relay.bench \
    --route "*=127.0.0.1:$SINK_PORT" --delivery-log "$log" --resolver 127.0.0.1:1 \
    --log-level warn 2>"$work/serve-$s.log" &
  relay=$!; pids+=("$relay")
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$RELAY_PORT") 2>/dev/null && break
    sleep 0.1
  done

  t0=$(now)
  smtp-source -s "$s" -m "$MESSAGES" -l "$SIZE" -f app@example.com -t user@dest.example \
    -M loadgen.bench "127.0.0.1:$RELAY_PORT"
  t1=$(now)
  # Delivered: wait until the delivery log has every message.
  while [ "$(delivered "$log")" -lt "$MESSAGES" ]; do
    sleep 0.05
    if [ "$(echo "$(now) - $t1 > 120" | bc)" -eq 1 ]; then echo "bench: delivery did not finish" >&2; break; fi
  done
  t2=$(now)
  peak=$(rss_peak "$relay")
  kill -TERM "$relay"; wait "$relay" || true
  printf '%-9s %9s %12s %13.0f %13.0f %7.1f MiB\n' "$s" "$MESSAGES" "$SIZE" \
    "$(echo "$MESSAGES / ($t1 - $t0)" | bc -l)" "$(echo "$MESSAGES / ($t2 - $t0)" | bc -l)" "$(echo "$peak / 1024" | bc -l)"
done
