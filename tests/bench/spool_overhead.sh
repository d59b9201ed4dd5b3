#!/usr/bin/env bash
# Response spooling's cost: two gateways side by side, same binary, same
# 4 php-cgi each, access logs off: "spool" with the defaults
# (response_buffering = true) and "stream" with response_buffering = false
# (the code path without a spool: the app waits for the client). Alternating
# wrk rounds (wrk -t1 -c16) on hello.php and on a 1 MiB response; prints
# requests/s per round and the median of the per-round ratios spool/stream.
# BEFORE_BIN=/path/to/an/older/fastgate runs "stream" with that binary and
# its default config instead (a before/after comparison of two builds).
#
#   tests/bench/spool_overhead.sh [rounds] [seconds]
#
# Needs: php-cgi, wrk; the peers' www folder for hello.php
# (../shared/bench/peers/www). Ports 18290-18291 on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
secs=${2:-5}
cargo build -q --release -p fastgate
# shellcheck source=tests/bench/php_gateway.sh
. tests/bench/php_gateway.sh
make_hello_site
# 1 MiB in 64 KiB pieces, each flushed (a page that streams as it goes).
cat > "$work/www/mib.php" <<'PHP'
<?php
$chunk = str_repeat("0123456789abcdef", 4096);
for ($i = 0; $i < 16; $i++) { echo $chunk; flush(); }
PHP
start_php_gateway spool 18290 target/release/fastgate ""
if [ -n "${BEFORE_BIN:-}" ]; then
  start_php_gateway stream 18291 "$BEFORE_BIN" ""
else
  start_php_gateway stream 18291 target/release/fastgate "response_buffering = false"
fi
sleep 3
declare -A ports=([spool]=18290 [stream]=18291)
printf '%-8s %-7s %6s %10s %10s\n' page variant round 'req/s' 'p99'
for page in hello.php mib.php; do
  for round in $(seq "$rounds"); do
    order="spool stream"
    [ $((round % 2)) = 0 ] && order="stream spool"
    for v in $order; do
      out=$(wrk -t1 -c16 -d"${secs}s" --latency "http://127.0.0.1:${ports[$v]}/$page")
      rps=$(awk '/Requests\/sec/ {print $2}' <<< "$out")
      p99=$(awk '$1 == "99%" {print $2}' <<< "$out")
      printf '%-8s %-7s %6s %10s %10s\n' "$page" "$v" "$round" "$rps" "$p99"
      echo "$page $round $v $rps" >> "$work/results"
    done
  done
done
echo
for page in hello.php mib.php; do
  awk -v p=$page '$1 == p && $3 == "stream" {base[$2] = $4} $1 == p && $3 == "spool" {r[$2] = $4}
    END {for (k in r) print r[k] / base[k]}' "$work/results" | sort -n |
    awk -v p=$page '{a[NR]=$1} END {printf "%s: spool/stream per-round ratios, median %.3f (min %.3f, max %.3f)\n", p, (NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2), a[1], a[NR]}'
done
