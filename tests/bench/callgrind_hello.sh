#!/usr/bin/env bash
# Instructions per request, gateway side, for one or more fastgate builds on
# hello.php: repeatable where wall-clock benchmarks are not (a loaded or
# shared machine). Each build serves hello.php with 4 php-cgi (access log
# off) under valgrind's callgrind; after a warm-up the counters are zeroed,
# N requests are sent on one keep-alive connection, and the instructions
# the gateway executed (all its threads, not php-cgi: children are not
# traced) are divided by N.
#
#   tests/bench/callgrind_hello.sh BIN [BIN...]
#   N=3000 tests/bench/callgrind_hello.sh /tmp/fg-before target/release/fastgate
#
# Needs: valgrind, php-cgi, python3; the peers' www folder for hello.php
# (../shared/bench/peers/www). Port 18295 on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${N:-2000}
port=18295
# shellcheck source=tests/bench/php_gateway.sh
. tests/bench/php_gateway.sh
make_hello_site

# Sends $1 requests on one keep-alive connection; fails on any non-200.
requests() {
  python3 - "$port" "$1" <<'PY'
import http.client, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
for _ in range(n):
    c.request("GET", "/hello.php")
    r = c.getresponse()
    r.read()
    assert r.status == 200, r.status
PY
}

printf '%-40s %12s\n' build 'Ir/request'
for bin in "$@"; do
  name=$(basename "$(dirname "$bin")")/$(basename "$bin")
  php_gateway_config gw "$port"
  out="$work/callgrind.out"
  rm -f "$out"*
  valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" serve "$work/gw.toml" \
    > "$work/gw.log" 2>&1 &
  pid=$!
  echo "$pid" > "$work/gw.pid"
  for _ in $(seq 300); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && break
    sleep 0.2
  done
  requests 200
  callgrind_control -z "$pid" > /dev/null 2>&1
  requests "$n"
  callgrind_control -d "$pid" > /dev/null 2>&1
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  # The dump made after the zeroing: its totals are the N requests'.
  dump=$(ls -t "$out".* 2>/dev/null | head -1)
  total=$(awk '/^(summary|totals):/ {print $2}' "$dump" | tail -1)
  printf '%-40s %12d\n' "$name" $(( total / n ))
done
