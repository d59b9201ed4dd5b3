#!/usr/bin/env bash
# The benchmark harness of issue 16: fastgate and its peers side by side, one
# command, one run, one table per workload (docs/benchmarks.md, "The harness").
#
#   tests/bench/harness.sh                              # every workload, 3 rounds of 5 s
#   ROUNDS=1 DURATION=2 tests/bench/harness.sh --only hello16,static4k --peers nginx
#   tests/bench/harness.sh --list                       # the workloads and their stacks
#
# Starts on 127.0.0.1 (ports PORT_BASE+1.., default 18401-18412; WordPress on
# PORT_BASE+20..+25), each with 4 PHP (or responder) processes:
#   fastgate          4 php-cgi, static files          nginx        nginx + php-fpm, keep-alive
#   nginx-close       nginx + php-fpm, conn/request    lighttpd     lighttpd + its php-cgi pool
#   caddy             Caddy + php-fpm                  fastgate-instant / nginx-instant: the
#   fastgate-cgi      php-cgi per request (CGI)          instant libfcgi responder behind each
#   lighttpd-cgi      php-cgi per request (mod_cgi)    fastgate-wasm / fastgate-native: fastgate
#   fastgate-log      fastgate, access log on (stdout)     with the path-filter plugin
# then, per workload, checks that every stack answers 200 with the expected
# body (else stops), warms each up, and runs `wrk -t1 -cN -dDURATION` against
# each in turn, ROUNDS times, the order rotating. The fronts' RSS and CPU time
# (utime + stime, /proc) are read around every run. Configs: tests/bench/harness/.
#
# Environment: BIN (fastgate; default target/release/fastgate, built when
# missing), WASM_PLUGIN / NATIVE_PLUGIN (path-filter; default under target/,
# built when missing), ROUNDS (3), DURATION (seconds, 5), WARMUP (seconds, 1),
# THREADS (wrk threads, 1), IDLE_CONNECTIONS (10000), NGINX_WORKERS (1),
# PORT_BASE (18400), RESULTS (keep the raw results in this file), WP_FAIRNESS
# (seconds of wordpress.sh's fairness probe per server, 3).
# Installs the peers with apt when run as root and they are missing.
# Everything it starts is stopped on exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
h=$here/harness
cd "$here/../.."

rounds=${ROUNDS:-3}
duration=${DURATION:-5}
warmup=${WARMUP:-1}
threads=${THREADS:-1}
idle_count=${IDLE_CONNECTIONS:-10000}
nginx_workers=${NGINX_WORKERS:-1}
port_base=${PORT_BASE:-18400}
bin=${BIN:-target/release/fastgate}
wasm_plugin=${WASM_PLUGIN:-target/wasm32-wasip2/release/path_filter.wasm}
native_plugin=${NATIVE_PLUGIN:-target/release/libpath_filter.so}
guard='{ deny_user_agents = ["BadBot", "sqlmap"], deny_header_values = ["<script", "../"] }'

# --- workloads: title, path, stacks, connections, ratio, expected answer --------
workloads=(hello16 hello256 resp64k resp1m post1m static4k static1m instant cgi filters accesslog idle10k wordpress)
php_stacks="fastgate nginx nginx-close lighttpd caddy"
declare -A title path stacks conns ratio expect body
def() { # name title path stacks connections ratio expect [body-bytes]
  title[$1]=$2 path[$1]=$3 stacks[$1]=$4 conns[$1]=$5 ratio[$1]=$6 expect[$1]=$7 body[$1]=${8:-0}
}
def hello16 "hello.php, 16 connections" /hello.php "$php_stacks" 16 fastgate/row "text:Hello, world"
def hello256 "hello.php, 256 connections" /hello.php "$php_stacks" 256 fastgate/row "text:Hello, world"
def resp64k "a 64 KiB response from PHP" "/bytes.php?n=65536" "$php_stacks" 16 fastgate/row size:65536
def resp1m "a 1 MiB response from PHP" "/bytes.php?n=1048576" "$php_stacks" 16 fastgate/row size:1048576
def post1m "a 1 MiB POST read whole by PHP" /post.php "$php_stacks" 16 fastgate/row "text:1048576" 1048576
def static4k "a static 4 KiB file" /static-4k.txt "fastgate nginx" 16 fastgate/row file:static-4k.txt
def static1m "a static 1 MiB file" /static-1m.bin "fastgate nginx" 16 fastgate/row file:static-1m.bin
def instant "the instant libfcgi responder (the gateway's own cost)" / "fastgate-instant nginx-instant" 16 \
  fastgate-instant/row "text:Hello, world"
def cgi "hello.php through the CGI fallback (php-cgi per request) vs the pools" /hello.php \
  "fastgate-cgi fastgate lighttpd-cgi lighttpd" 16 fastgate-cgi/row "text:Hello, world"
def filters "hello.php with the path-filter plugin (7 browser-like headers) vs none" /hello.php \
  "fastgate fastgate-wasm fastgate-native" 16 row/fastgate "text:Hello, world"
def accesslog "hello.php with fastgate's default access log (stdout, to a file) vs off" /hello.php \
  "fastgate fastgate-log" 16 row/fastgate "text:Hello, world"
def idle10k "$idle_count idle keep-alive connections (one GET of the 4 KiB file on each, then idle)" \
  /static-4k.txt "fastgate nginx lighttpd caddy" 0 idle "file:static-4k.txt"
def wordpress "the WordPress home page (tests/bench/wordpress.sh)" / "" 16 - -

# The ports, and which front process (pid file) each stack is measured by.
names=(fastgate nginx nginx-close lighttpd caddy fastgate-instant nginx-instant fastgate-cgi lighttpd-cgi fastgate-wasm
  fastgate-native fastgate-log)
declare -A port front
for i in "${!names[@]}"; do port[${names[$i]}]=$((port_base + 1 + i)) front[${names[$i]}]=${names[$i]}; done
front[nginx-close]=nginx front[nginx-instant]=nginx
browser_headers=(-H "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36"
  -H "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8" -H "Accept-Language: en-US,en;q=0.9"
  -H "Accept-Encoding: gzip, deflate, br" -H "Cookie: session=0123456789abcdef0123456789abcdef; theme=dark"
  -H "Referer: http://127.0.0.1/index.html")

usage() { sed -n '2,/^set -euo/p' "$here/harness.sh" | sed '$d; s/^# \{0,1\}//'; }
only="" peers=""
while [ $# -gt 0 ]; do
  case $1 in
    --only) only=$2; shift 2 ;;
    --peers) peers=$2; shift 2 ;; # non-fastgate stacks to keep; fastgate's are always run
    --list) for w in "${workloads[@]}"; do printf '%-10s %s [%s]\n' "$w" "${title[$w]}" "${stacks[$w]}"; done; exit 0 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
selected=()
for w in "${workloads[@]}"; do
  if [ -z "$only" ] || [[ ",$only," == *",$w,"* ]]; then selected+=("$w"); fi
done
for w in ${only//,/ }; do [ -n "${title[$w]:-}" ] || { echo "unknown workload: $w (see --list)" >&2; exit 2; }; done
for s in ${peers//,/ }; do [ -n "${port[$s]:-}" ] || { echo "unknown stack: $s (see --list)" >&2; exit 2; }; done
# The stacks of workload $1, after --peers (and without Caddy where it is
# not installed).
stacks_of() {
  local s
  for s in ${stacks[$1]}; do
    if [ "$s" = caddy ] && ! command -v caddy >/dev/null; then continue; fi
    if [[ $s == fastgate* ]] || [ -z "$peers" ] || [[ ",$peers," == *",$s,"* ]]; then echo "$s"; fi
  done
}

run=$(mktemp -d /tmp/fastgate-harness.XXXXXX)
chmod 755 "$run" # php-fpm's workers (www-data) and nginx's (nobody) reach into it
fail() { echo "FAILED: $*" >&2; exit 1; }
cleanup() {
  local status=$? f p all=()
  set +e
  # Every started process and its descendants (pools, workers), collected
  # first, then stopped by pid: the fronts first, what is left after them.
  descendants() { local k; for k in $(pgrep -P "$1"); do echo "$k"; descendants "$k"; done; }
  for f in "$run"/*.pid; do
    [ -e "$f" ] || continue
    p=$(cat "$f")
    mapfile -t -O "${#all[@]}" all < <(descendants "$p")
    kill "$p" 2>/dev/null
  done
  # shellcheck disable=SC2046 # one pid per line, split on purpose
  [ -e "$run/instant.pids" ] && kill $(cat "$run/instant.pids") 2>/dev/null
  for f in "$run"/*.pid; do [ -e "$f" ] && wait "$(cat "$f")" 2>/dev/null; done
  sleep 0.5
  [ ${#all[@]} = 0 ] || kill "${all[@]}" 2>/dev/null
  if [ "$status" != 0 ]; then
    echo "harness.sh: stopped with status $status (a FAILED line above says why; if none, rerun with bash -x)" >&2
    for f in "$run"/*.log; do
      [ -s "$f" ] && { echo "--- last lines of $(basename "$f")"; tail -n 8 "$f"; }
    done >&2
  fi
  rm -rf "$run"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Polls `$@` every 0.1 s for up to $1 seconds.
wait_for() {
  local seconds=$1
  shift
  for _ in $(seq $((seconds * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}

# --- setup --------------------------------------------------------------------
find_fpm() { command -v php-fpm8.2 || find /usr/sbin -name 'php-fpm*' 2>/dev/null | sort -V | tail -n 1; }
install_missing() {
  local missing=() pair
  for pair in nginx:nginx-light php-cgi:php-cgi lighttpd:lighttpd caddy:caddy spawn-fcgi:spawn-fcgi \
    wrk:wrk cc:gcc curl:curl python3:python3; do
    command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
  done
  [ -n "$(find_fpm)" ] || missing+=(php-fpm)
  [ -f /usr/include/fcgi_stdio.h ] || missing+=(libfcgi-dev)
  [ ${#missing[@]} = 0 ] && return 0
  [ "$(id -u)" = 0 ] || fail "missing: ${missing[*]} (install them, or run as root)"
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Caddy apart: some releases (Ubuntu before 23.04) have no package; the
  # run then goes on without the caddy stack.
  local others=()
  for pair in "${missing[@]}"; do [ "$pair" = caddy ] || others+=("$pair"); done
  [ ${#others[@]} = 0 ] || apt-get install -y -qq --no-install-recommends "${others[@]}" >/dev/null
  command -v caddy >/dev/null || apt-get install -y -qq --no-install-recommends caddy >/dev/null ||
    echo "caddy: no package here; the caddy stack is left out" >&2
}
install_missing
fpm=$(find_fpm)
want() { local w; for w in "${selected[@]}"; do [ "$w" = "$1" ] && return 0; done; return 1; }
if [ ! -x "$bin" ]; then
  [ "$bin" = target/release/fastgate ] || fail "BIN=$bin is not an executable"
  echo "building $bin" >&2
  cargo build -q --release -p fastgate
fi
bin=$(realpath "$bin")
if want filters; then
  # Built when missing, but only at their default paths: a path given that
  # does not exist is a mistake, not something to build.
  if [ ! -f "$native_plugin" ]; then
    [ -z "${NATIVE_PLUGIN:-}" ] || fail "NATIVE_PLUGIN=$native_plugin does not exist"
    cargo build -q --release -p path-filter
  fi
  if [ ! -f "$wasm_plugin" ]; then
    [ -z "${WASM_PLUGIN:-}" ] || fail "WASM_PLUGIN=$wasm_plugin does not exist"
    cargo build -q --release --target wasm32-wasip2 -p path-filter
  fi
  native_plugin=$(realpath "$native_plugin") wasm_plugin=$(realpath "$wasm_plugin")
fi
# 10 000 connections need as many descriptors in the client and in each front.
# Root may raise the hard limit too; anyone may raise the soft one to it.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if want idle10k && [ "$(ulimit -n)" -lt $((idle_count + 200)) ]; then
  fail "idle10k: the open-file limit is $(ulimit -n), $idle_count connections need more (raise the hard limit, or IDLE_CONNECTIONS)"
fi

# The document root every stack serves: the PHP pages and two static files.
www=$run/www
mkdir "$www"
cp "$h"/www/*.php "$www/"
head -c 4096 /dev/zero | tr '\0' 'a' >"$www/static-4k.txt"
head -c 1048576 /dev/urandom >"$www/static-1m.bin"
head -c 1048576 /dev/zero | tr '\0' 'x' >"$run/body-1m"
chmod -R a+rX "$www"

# Prints template $1 (from tests/bench/harness/) with @RUN@, @WWW@, @PORT_...@,
# @NGINX_WORKERS@, @NOFILE@ (the open-file limit), @NOFILE_HALF@,
# @NGINX_CONNECTIONS@ and the NAME=VALUE pairs that follow filled in.
fill() {
  local text name pair nofile
  text=$(<"$h/$1")
  shift
  nofile=$(ulimit -n)
  text=${text//@NOFILE_HALF@/$((nofile / 2))}
  text=${text//@NOFILE@/$nofile}
  text=${text//@NGINX_CONNECTIONS@/$((nofile > 2000 ? nofile - 1000 : nofile / 2))}
  text=${text//@RUN@/$run}
  text=${text//@WWW@/$www}
  text=${text//@NGINX_WORKERS@/$nginx_workers}
  for name in "${names[@]}"; do
    pair=${name^^}
    text=${text//@PORT_${pair//-/_}@/${port[$name]}}
  done
  for pair in "$@"; do text=${text//@${pair%%=*}@/${pair#*=}}; done
  printf '%s\n' "$text"
}

declare -A started
start_fpm() {
  [ -n "${started[fpm]:-}" ] && return
  fill php-fpm.conf >"$run/php-fpm.conf"
  "$fpm" -R -y "$run/php-fpm.conf" >"$run/php-fpm-out.log" 2>&1 &
  echo $! >"$run/php-fpm.pid"
  wait_for 20 test -S "$run/php-fpm-caddy.sock" || fail "php-fpm did not start"
  started[fpm]=1
}
start_instant() {
  [ -n "${started[instant]:-}" ] && return
  cc -O2 -o "$run/instant" "$h/instant.c" -lfcgi || fail "could not build the instant responder (libfcgi-dev)"
  started[instant]=1
}
start_nginx() {
  start_fpm
  start_instant
  spawn-fcgi -s "$run/instant.sock" -M 0666 -F 4 -P "$run/instant.pids" -- "$run/instant" >"$run/spawn-fcgi.log" 2>&1 ||
    fail "spawn-fcgi could not start the instant responders"
  fill nginx.conf >"$run/nginx.conf"
  nginx -c "$run/nginx.conf" >"$run/nginx-out.log" 2>&1 &
  echo $! >"$run/nginx.pid"
}
start_fastgate() { # stack template [plugin]
  local server_plugins="" table="" access_log=off
  [ "$1" != fastgate-log ] || access_log=stdout
  if [ -n "${3:-}" ]; then
    server_plugins='plugins = ["guard"]'
    table=$(printf '\n[[plugin]]\nname = "guard"\npath = "%s"\nconfig = %s' "$3" "$guard")
  fi
  fill "$2" >"$run/$1.toml" "PORT=${port[$1]}" "SERVER_PLUGINS=$server_plugins" "PLUGIN_TABLE=$table" \
    "ACCESS_LOG=$access_log"
  "$bin" check "$run/$1.toml" >"$run/$1-check.out" 2>&1 || { cat "$run/$1-check.out" >&2; fail "fastgate check refused $1.toml"; }
  NO_COLOR=1 "$bin" serve "$run/$1.toml" >"$run/$1.log" 2>&1 &
  echo $! >"$run/$1.pid"
}
# Starts what stack $1 needs (once) and waits until it listens.
start() {
  local s=$1
  [ -n "${started[$s]:-}" ] && return
  case $s in
    fastgate) start_fastgate fastgate fastgate-php.toml ;;
    fastgate-instant) start_instant; start_fastgate "$s" fastgate-instant.toml ;;
    fastgate-cgi) start_fastgate "$s" fastgate-cgi.toml ;;
    fastgate-wasm) start_fastgate "$s" fastgate-php.toml "$wasm_plugin" ;;
    fastgate-native) start_fastgate "$s" fastgate-php.toml "$native_plugin" ;;
    fastgate-log) start_fastgate "$s" fastgate-php.toml ;;
    nginx | nginx-close | nginx-instant)
      [ -n "${started[nginx-any]:-}" ] || start_nginx
      started[nginx-any]=1 ;;
    lighttpd)
      fill lighttpd.conf >"$run/lighttpd.conf"
      lighttpd -D -f "$run/lighttpd.conf" >"$run/lighttpd.log" 2>&1 &
      echo $! >"$run/lighttpd.pid" ;;
    lighttpd-cgi)
      fill lighttpd-cgi.conf >"$run/lighttpd-cgi.conf"
      lighttpd -D -f "$run/lighttpd-cgi.conf" >"$run/lighttpd-cgi.log" 2>&1 &
      echo $! >"$run/lighttpd-cgi.pid" ;;
    caddy)
      start_fpm
      fill Caddyfile >"$run/Caddyfile"
      XDG_CONFIG_HOME=$run/caddy-config XDG_DATA_HOME=$run/caddy-data \
        caddy run --config "$run/Caddyfile" --adapter caddyfile >"$run/caddy.log" 2>&1 &
      echo $! >"$run/caddy.pid" ;;
    *) fail "unknown stack $s" ;;
  esac
  wait_for 30 curl -s -o /dev/null -m 1 "http://127.0.0.1:${port[$s]}/" || fail "$s is not listening on ${port[$s]}"
  started[$s]=1
  # The front's memory before its first workload: later figures carry the
  # history of the workloads it served before (allocators keep memory).
  echo "START stack=$s rss_kib=$(rss_kib "$s")" >>"$run/results"
}

# --- measurement ----------------------------------------------------------------
# The front's processes: its pid and the descendants of the same name
# (nginx's workers; not php-cgi or php-fpm).
front_pids() {
  local root=$1 name k
  name=$(cat "/proc/$root/comm")
  echo "$root"
  for k in $(pgrep -P "$root"); do
    if [ "$(cat "/proc/$k/comm" 2>/dev/null)" = "$name" ]; then front_pids "$k"; fi
  done
}
front_pid() { cat "$run/${front[$1]}.pid"; }
ticks() { front_pids "$(front_pid "$1")" | while read -r p; do awk '{print $14 + $15}' "/proc/$p/stat"; done | awk '{s += $1} END {print s + 0}'; }
rss_kib() { front_pids "$(front_pid "$1")" | while read -r p; do awk '/^VmRSS/ {print $2}' "/proc/$p/status"; done | awk '{s += $1} END {print s + 0}'; }

# Stack $2 answers workload $1 with a 200 and the expected body.
check() {
  local w=$1 s=$2 url="http://127.0.0.1:${port[$2]}${path[$1]}" status args=() want=${expect[$1]}
  [ "${body[$w]}" = 0 ] || args=(--data-binary "@$run/body-1m" -H "Content-Type: application/octet-stream")
  [ "$w" = filters ] && args=("${browser_headers[@]}")
  status=$(curl -s -m 60 -o "$run/answer" -w '%{http_code}' "${args[@]}" "$url" || true)
  [ "$status" = 200 ] || fail "$w: $s answered ${status:-nothing} for $url: $(head -c 300 "$run/answer" 2>/dev/null)"
  case $want in
    text:*) [ "$(cat "$run/answer")" = "${want#text:}" ] ||
      fail "$w: $s's answer for $url is not \"${want#text:}\": $(head -c 300 "$run/answer")" ;;
    size:*) [ "$(wc -c <"$run/answer")" = "${want#size:}" ] && ! tr -d x <"$run/answer" | grep -q . ||
      fail "$w: $s's answer for $url is not ${want#size:} bytes of x: $(head -c 300 "$run/answer")" ;;
    file:*) cmp -s "$run/answer" "$www/${want#file:}" || fail "$w: $s's answer for $url is not $www/${want#file:}" ;;
  esac
  if [ "$s" = fastgate-log ] && ! grep -qF "${path[$w]}" "$run/$s.log"; then
    fail "$w: $s wrote no access log line for ${path[$w]} to its stdout ($run/$s.log)"
  fi
  if [[ $s == fastgate-wasm || $s == fastgate-native ]]; then # the plugin is there and filters
    status=$(curl -s -m 10 -o /dev/null -w '%{http_code}' -A "sqlmap/1.7" "$url" || true)
    [ "$status" = 403 ] || fail "$w: $s answered $status, not 403, to a User-Agent its filter denies"
  fi
}

# One wrk run of workload $1 against stack $2 ($3: the round, or warmup).
measure() {
  local w=$1 s=$2 round=$3 secs=$duration before after out line args=()
  [ "$round" = warmup ] && secs=$warmup
  [ "$w" = filters ] && args=("${browser_headers[@]}")
  before=$(ticks "$s")
  out=$(WRK_BODY_BYTES=${body[$w]} wrk -t"$threads" -c"${conns[$w]}" -d"${secs}s" --timeout 10s \
    -s "$h/wrk.lua" "${args[@]}" "http://127.0.0.1:${port[$s]}${path[$w]}" 2>&1) || fail "wrk failed on $s: $out"
  after=$(ticks "$s")
  line=$(grep '^HARNESS ' <<<"$out") || fail "wrk printed no result line for $s: $out"
  [ "$round" = warmup ] && return
  echo "RUN workload=$w stack=$s round=$round ${line#HARNESS } rss_kib=$(rss_kib "$s") cpu_ticks=$((after - before)) hz=$(getconf CLK_TCK)" >>"$run/results"
  awk -v w="$w" -v s="$s" -v r="$round" '{for (i = 2; i <= NF; i++) {split($i, kv, "="); f[kv[1]] = kv[2]}
    printf "  %-9s round %-2s %-17s %9.0f req/s  p99 %8.2f ms  errors %d\n", w, r, s,
      f["requests"] / (f["duration_us"] / 1e6), f["p99_us"] / 1000, f["status"] + f["connect"] + f["read"] + f["write"] + f["timeout"]}' <<<"$line" >&2
}

run_workload() {
  local w=$1 s round shift_by list=() order out
  mapfile -t list < <(stacks_of "$w")
  echo "== $w: ${title[$w]} [${list[*]}]" >&2
  for s in "${list[@]}"; do start "$s"; check "$w" "$s"; done
  echo "WORKLOAD name=$w stacks=$(IFS=,; echo "${list[*]}") ratio=${ratio[$w]} title=${title[$w]}" >>"$run/results"
  if [ "$w" = idle10k ]; then
    for s in "${list[@]}"; do
      out=$(python3 "$h/idle_conns.py" "${port[$s]}" "$idle_count" "${path[$w]}" "$(front_pid "$s")") ||
        fail "idle10k: the client failed on $s: $out"
      echo "RESULT $out" | sed "s/^RESULT IDLE /IDLE workload=$w stack=$s /" >>"$run/results"
      echo "  $s: $out" >&2
      sleep 1
    done
    return
  fi
  for s in "${list[@]}"; do measure "$w" "$s" warmup; done
  for round in $(seq "$rounds"); do
    # The order rotates: no stack always runs right after the same one.
    shift_by=$(((round - 1) % ${#list[@]}))
    order=("${list[@]:$shift_by}" "${list[@]:0:$shift_by}")
    for s in "${order[@]}"; do measure "$w" "$s" "$round"; done
  done
}

# --- the run --------------------------------------------------------------------
header() {
  echo "# fastgate harness (tests/bench/harness.sh), $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "- machine: $(nproc) CPUs, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)," \
    "$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), Linux $(uname -r), load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- fastgate: $bin ($(git rev-parse --short HEAD 2>/dev/null || echo '?') checked out; the binary's own build may differ)"
  echo "- peers: $(nginx -v 2>&1 | sed 's/.*: //'), php $(php-cgi -v | awk 'NR == 1 {print $2}'), $(lighttpd -v | awk '{print $1}'), caddy $(caddy version 2>/dev/null | awk '{print $1}' || echo '(none)'), $(wrk -v 2>&1 | awk 'NR == 1 {print $1, $2}' || true)"
  echo "- load: wrk -t$threads -c<connections> -d${duration}s --timeout 10s, $rounds rounds per workload with the stacks' order rotating, ${warmup} s of warm-up per stack; 4 PHP processes in every stack, access logs off (but fastgate-log's); nginx worker_processes $nginx_workers"
}
: >"$run/results"
header >"$run/header"
cat "$run/header" >&2
wp_status=0
for w in "${selected[@]}"; do
  if [ "$w" = wordpress ]; then
    echo "== wordpress: tests/bench/wordpress.sh (its own output follows the tables)" >&2
    FASTGATE_BIN=$bin PORT_BASE=$((port_base + 20)) ROUNDS=$rounds DURATION=${duration}s WARMUP=${warmup}s \
      FAIRNESS=${WP_FAIRNESS:-3} bash tests/bench/wordpress.sh >"$run/wordpress.out" 2>&1 || wp_status=$?
    continue
  fi
  run_workload "$w"
done

cat "$run/header"
python3 "$h/table.py" "$run/results"
if want wordpress; then
  echo
  echo "### wordpress: ${title[wordpress]}"
  echo
  if [ "$wp_status" = 0 ]; then
    echo '```'
    grep -E '^[a-z-]+: 200, <title>' "$run/wordpress.out" || true # its check of every server's page
    sed -n '/^== medians/,$p' "$run/wordpress.out"
    echo '```'
  else
    echo "FAILED (exit $wp_status); its last lines:"
    tail -n 20 "$run/wordpress.out"
  fi
fi
[ -z "${RESULTS:-}" ] || cp "$run/results" "$RESULTS"
exit "$wp_status"
