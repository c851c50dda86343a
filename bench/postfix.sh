#!/usr/bin/env bash
# Reference for bench/relay.sh: the same load (Postfix smtp-source →
# relay → smtp-sink, loopback) through a throw-away Postfix instance that
# relays everything to the sink. Postfix fsyncs its queue files before
# answering 250, like relayctl. Needs root (Postfix's master runs as root)
# and the postfix package.
#
#   bash bench/postfix.sh
#   MESSAGES=5000 SESSIONS="1 10" bash bench/postfix.sh
set -euo pipefail

MESSAGES=${MESSAGES:-2000}
SIZE=${SIZE:-2048}
SESSIONS=${SESSIONS:-"1 10 50"}
PF_PORT=${PF_PORT:-25251}
SINK_PORT=${SINK_PORT:-25261}
PATH=$PATH:/usr/sbin

[ "$(id -u)" -eq 0 ] || { echo "bench/postfix.sh: needs root" >&2; exit 1; }
command -v postfix >/dev/null || { echo "bench/postfix.sh: apt-get install postfix" >&2; exit 1; }

work=$(mktemp -d)
chmod 755 "$work"
pids=()
cleanup() {
  postfix -c "$work/etc" stop >/dev/null 2>&1 || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

smtp-sink -u nobody -m 1000 "127.0.0.1:$SINK_PORT" 1000 &
pids+=($!)

now() { date +%s.%N; }
sent() { local n; n=$(grep -c 'status=sent' "$1" 2>/dev/null || true); echo "${n:-0}"; }

printf '%-9s %9s %12s %13s %13s %10s\n' sessions messages "size(B)" "accepted/s" "delivered/s" "RSS(sum)"
for s in $SESSIONS; do
  etc="$work/etc"; rm -rf "$etc" "$work/q" "$work/data"; mkdir -p "$etc" "$work/data" "$work/q"; chown postfix "$work/data"
  cat >"$etc/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $work/q
data_directory = $work/data
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.bench
mydestination =
relayhost = [127.0.0.1]:$SINK_PORT
mynetworks = 127.0.0.0/8
inet_interfaces = loopback-only
inet_protocols = ipv4
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
default_process_limit = 200
smtp_tls_security_level = none
alias_maps =
alias_database =
local_recipient_maps =
maillog_file = $work/maillog-$s
maillog_file_prefixes = $work
CF
  cat >"$etc/master.cf" <<CF
127.0.0.1:$PF_PORT inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
CF
  postfix -c "$etc" check >/dev/null 2>&1 || true
  postfix -c "$etc" start >/dev/null 2>&1
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PF_PORT") 2>/dev/null && break
    sleep 0.1
  done
  t0=$(now)
  smtp-source -s "$s" -m "$MESSAGES" -l "$SIZE" -f app@example.com -t user@dest.example \
    -M loadgen.bench "127.0.0.1:$PF_PORT"
  t1=$(now)
  while [ "$(sent "$work/maillog-$s")" -lt "$MESSAGES" ]; do
    sleep 0.05
    if [ "$(echo "$(now) - $t1 > 120" | bc)" -eq 1 ]; then echo "bench: delivery did not finish" >&2; break; fi
  done
  t2=$(now)
  # Postfix is many processes: sum their RSS at the end of the run
  # (shared pages are counted once per process, so this overstates).
  rss=$(ps -eo rss=,comm= | awk '$2 ~ /^(master|smtpd|cleanup|qmgr|smtp|trivial-rewrite|anvil|pickup|postlogd|proxymap|scache|bounce|tlsmgr)$/ {s+=$1} END {print s+0}')
  postfix -c "$etc" stop >/dev/null 2>&1 || true
  sleep 1
  printf '%-9s %9s %12s %13.0f %13.0f %7.1f MiB\n' "$s" "$MESSAGES" "$SIZE" \
    "$(echo "$MESSAGES / ($t1 - $t0)" | bc -l)" "$(echo "$MESSAGES / ($t2 - $t0)" | bc -l)" "$(echo "$rss / 1024" | bc -l)"
done
