#!/usr/bin/env bash
# hello.php through fastgate with no plugin, the path-filter plugin as a
# wasm component, and the same plugin as a native library: three gateways
# side by side, alternating wrk rounds. Prints requests/s and the gateway's
# own CPU time per request (from /proc/<pid>/stat), which is far less noisy
# than throughput on a shared 2-core machine.
#
#   tests/bench/plugin_overhead.sh [rounds] [seconds]
#
# Experiments: WASM_PLUGIN=/path/x.wasm and NATIVE_PLUGIN=/path/libx.so
# replace the two plugins (empty: no plugin, for an A/A run), WASM_CONFIG
# and NATIVE_CONFIG their config tables (TOML inline tables); INSTANCES=8
# changes the php-cgi pool size (default 4). Calibration, a native plugin
# that only burns 2 µs per request:
#   NATIVE_PLUGIN=$PWD/target/release/libmisbehave.so \
#   NATIVE_CONFIG='{ busy_ns = 2000 }' tests/bench/plugin_overhead.sh 40 1
#
# Needs: php-cgi, wrk, the wasm32-wasip2 target; the peers' www folder for
# hello.php (../shared/bench/peers/www). Ports 18190-18192 on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-6}
secs=${2:-5}
instances=${INSTANCES:-4}
www=$(cd ../shared/bench/peers/www && pwd)
cargo build -q --release -p fastgate -p path-filter -p misbehave
cargo build -q --release --target wasm32-wasip2 -p path-filter -p misbehave
work=$(mktemp -d)
chmod 755 "$work" # a root gateway runs its apps as an unprivileged user: they must reach it
trap 'kill $(cat "$work"/*.pid 2>/dev/null) 2>/dev/null; rm -rf "$work"' EXIT
config() { # name port plugin-path-or-empty plugin-config
  local plugin_lines=""
  if [ -n "$3" ]; then
    plugin_lines=$(printf '[[plugin]]\nname = "guard"\npath = "%s"\nconfig = %s\n' "$3" "$4")
  fi
  cat > "$work/$1.toml" <<TOML
[server]
listen = "127.0.0.1:$2"
root = "$www"
access_log = "off"
plugins = [$( [ -n "$3" ] && echo '"guard"')]
[[app]]
name = "php"
command = "php-cgi"
handles = ["*.php"]
max_instances = $instances
min_instances = $instances
instance_max_requests = 1000000
[app.env]
PHP_FCGI_CHILDREN = "0"
PHP_FCGI_MAX_REQUESTS = "100000"
$plugin_lines
TOML
  target/release/fastgate serve "$work/$1.toml" > "$work/$1.log" 2>&1 &
  echo $! > "$work/$1.pid"
}
guard='{ deny_user_agents = ["BadBot", "sqlmap"], deny_header_values = ["<script", "../"] }'
config none 18190 "" ""
config wasm 18191 "${WASM_PLUGIN-$PWD/target/wasm32-wasip2/release/path_filter.wasm}" "${WASM_CONFIG:-$guard}"
config native 18192 "${NATIVE_PLUGIN-$PWD/target/release/libpath_filter.so}" "${NATIVE_CONFIG:-$guard}"
sleep 3
headers=(-H "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36"
  -H "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8" -H "Accept-Language: en-US,en;q=0.9"
  -H "Accept-Encoding: gzip, deflate, br" -H "Cookie: session=0123456789abcdef0123456789abcdef; theme=dark"
  -H "Referer: http://127.0.0.1/index.html")
ticks() { awk '{print $14+$15}' "/proc/$(cat "$work/$1.pid")/stat"; }
hz=$(getconf CLK_TCK)
declare -A ports=([none]=18190 [wasm]=18191 [native]=18192)
printf '%-7s %6s %10s %14s\n' variant round 'req/s' 'gw CPU µs/req'
orders=("none wasm native" "wasm native none" "native none wasm")
for round in $(seq "$rounds"); do
  # The order rotates: no variant always runs right after the same one.
  for v in ${orders[$((round % 3))]}; do
    port=${ports[$v]}
    before=$(ticks $v)
    out=$(wrk -t2 -c16 -d"${secs}s" "${headers[@]}" "http://127.0.0.1:$port/hello.php")
    after=$(ticks $v)
    rps=$(awk '/Requests\/sec/ {print $2}' <<< "$out")
    total=$(awk '/requests in/ {print $1}' <<< "$out")
    cpu=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$total" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
    printf '%-7s %6s %10s %14s\n' "$v" "$round" "$rps" "$cpu"
    echo "$round $v $rps $cpu" >> "$work/results"
  done
done
median='{a[NR]=$1} END {print (NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2)}'
quartiles='{a[NR]=$1} END {printf "%.3f (middle half %.3f-%.3f)", (NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2), a[int(NR/4)+1], a[int(3*NR/4)+1]}'
echo
echo "medians over $rounds rounds:"
for v in none wasm native; do
  rps=$(awk -v v=$v '$2 == v {print $3}' "$work/results" | sort -n | awk "$median")
  cpu=$(awk -v v=$v '$2 == v {print $4}' "$work/results" | sort -n | awk "$median")
  echo "$v $rps $cpu"
done | awk 'NR == 1 {base = $2; cbase = $3} {printf "%-7s %10.0f req/s (%.3f of none)  %6.1f µs/req gateway CPU (%+.1f)\n", $1, $2, $2 / base, $3, $3 - cbase}'
# The machine's load drifts from one round to the next and moves all three
# variants together: the ratio within each round, whose variants ran seconds
# apart, cancels most of that drift.
echo
echo "median of the per-round ratios:"
for v in wasm native; do
  echo "$v $(awk -v v=$v '$2 == "none" {base[$1] = $3} $2 == v {r[$1] = $3} END {for (k in r) print r[k] / base[k]}' "$work/results" | sort -n | awk "$quartiles") of none"
done
