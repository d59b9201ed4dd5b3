#!/usr/bin/env bash
# Two fastgate builds side by side on hello.php: same config (4 php-cgi,
# access log off), alternating wrk rounds (wrk -t1 -c16 --latency); prints
# requests/s and p99 per round and the median of the per-round ratios B/A.
# Used for a change's cost on the hot path (issue 14: metrics on or off).
#
#   tests/bench/ab_hello.sh A_BIN B_BIN [rounds] [seconds]
#
# Needs: php-cgi, wrk; the peers' www folder for hello.php
# (../shared/bench/peers/www). Ports 18292-18293 on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/../.."
a_bin=$1
b_bin=$2
rounds=${3:-5}
secs=${4:-5}
# shellcheck source=tests/bench/php_gateway.sh
. tests/bench/php_gateway.sh
make_hello_site
start_php_gateway A 18292 "$a_bin"
start_php_gateway B 18293 "$b_bin"
sleep 3
declare -A ports=([A]=18292 [B]=18293)
for v in A B; do wrk -t1 -c16 -d2s "http://127.0.0.1:${ports[$v]}/hello.php" > /dev/null; done
printf '%-3s %6s %10s %10s\n' bin round 'req/s' 'p99'
for round in $(seq "$rounds"); do
  order="A B"
  [ $((round % 2)) = 0 ] && order="B A"
  for v in $order; do
    out=$(wrk -t1 -c16 -d"${secs}s" --latency "http://127.0.0.1:${ports[$v]}/hello.php")
    rps=$(awk '/Requests\/sec/ {print $2}' <<< "$out")
    p99=$(awk '$1 == "99%" {print $2}' <<< "$out")
    printf '%-3s %6s %10s %10s\n' "$v" "$round" "$rps" "$p99"
    echo "$round $v $rps" >> "$work/results"
  done
done
awk '$2 == "A" {a[$1] = $3} $2 == "B" {b[$1] = $3} END {for (k in b) print b[k] / a[k]}' "$work/results" | sort -n |
  awk '{r[NR]=$1} END {printf "B/A per-round ratios: median %.3f (min %.3f, max %.3f)\n", (NR % 2 ? r[(NR+1)/2] : (r[NR/2] + r[NR/2+1]) / 2), r[1], r[NR]}'
