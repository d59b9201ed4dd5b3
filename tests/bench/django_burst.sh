#!/usr/bin/env bash
# Issue 12's Django scenario, before/after: does a request ever wait for a
# process start while a running instance frees up sooner? Two fastgate
# binaries, BEFORE_BIN and AFTER_BIN, take turns (the order alternates from
# round to round) on the WSGI app tests/fixtures/wsgi/slow_import_wsgi.py
# under `launcher = "django"` (the WSGI bridge); the app takes 1 s to
# import, as a real framework does, and its /work view answers after ?ms=N.
# Each measure starts a fresh gateway on 127.0.0.1:$PORT:
#   burst       min_instances = 1, max_instances = 4, the one instance warm:
#               4 concurrent requests of the 20 ms view, each on its own
#               connection; each request's time, and the processes started
#   sequential  the same pool: 30 requests one after the other on one
#               keep-alive connection, of a view that answers in 5 ms and
#               then works 30 ms more after its body went out (Django's
#               request_finished); the slowest, and the processes started
#   browser     the same 30 requests alternating over two keep-alive
#               connections, as a browser loading pages: the next request
#               can come while the instance is still in its 30 ms tail
#   killed      min_instances = max_instances = 4, a replacement takes 3 s
#               to import (IMPORT_SLEEP): 4 requests of 800 ms keep every
#               instance busy, 2 more queue behind them, then one busy
#               process is killed (SIGKILL); how long after the kill the
#               queued ones are answered, and by whom (a running instance,
#               or the replacement)
# Prints every round, then a table of the medians, before against after.
#
#   tests/bench/django_burst.sh
#   ROUNDS=5 BEFORE_BIN=/path/old/fastgate AFTER_BIN=target/release/fastgate tests/bench/django_burst.sh
#
# Environment: BEFORE_BIN (default /work/fastgate-before), AFTER_BIN
# (default target/release/fastgate), ROUNDS (3), PORT (18390), PYTHON (the
# interpreter the bridge runs; default target/django-venv/bin/python when
# tests/run.sh made that virtualenv, else python3's real executable, not a
# pyenv shim, so that a start costs the import and not a shell script).
# The clients are python3 with the standard library only (http.client,
# threading). Loopback only; the temp dir is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${ROUNDS:-3}
before=$(realpath "${BEFORE_BIN:-/work/fastgate-before}")
after=$(realpath "${AFTER_BIN:-target/release/fastgate}")
port=${PORT:-18390}
fixture=$PWD/tests/fixtures/wsgi
if [ -n "${PYTHON:-}" ]; then
  python=$PYTHON
elif [ -x target/django-venv/bin/python ]; then
  python=$PWD/target/django-venv/bin/python
else
  python=$(python3 -c 'import sys; print(sys.executable)')
fi
for bin in "$before" "$after"; do [ -x "$bin" ] || { echo "no fastgate at $bin" >&2; exit 1; }; done

work=$(mktemp -d /tmp/django-burst.XXXXXX)
chmod 755 "$work" # a root gateway runs its apps as an unprivileged user: they must reach it
gateway_pid=""
# Stops the gateway, then by pid whatever app process it left (one stopped
# while a process was still starting has left it running).
stop_gateway() {
  if [ -n "$gateway_pid" ]; then
    local kids=()
    mapfile -t kids < <(pgrep -P "$gateway_pid")
    kill "$gateway_pid" 2>/dev/null || true
    wait "$gateway_pid" 2>/dev/null || true
    [ ${#kids[@]} = 0 ] || kill "${kids[@]}" 2>/dev/null || true
    gateway_pid=""
  fi
}
cleanup() {
  local status=$?
  if [ "$status" != 0 ] && [ -s "$work/gateway.log" ]; then
    echo "--- last lines of the gateway's log" >&2
    tail -n 20 "$work/gateway.log" >&2
  fi
  stop_gateway
  rm -rf "$work"
}
trap cleanup EXIT

# The clients: one subcommand per measure, each prints one line.
cat >"$work/client.py" <<'PY'
import http.client, os, signal, sys, threading, time

port = int(sys.argv[2])

def get(conn, path):
    """One request on `conn`; returns the pid that answered."""
    conn.request("GET", path)
    r = conn.getresponse()
    body = r.read().decode()
    if r.status != 200:
        sys.exit(f"{path}: {r.status} {body[:300]}")
    return int(body.split("=")[1])

def timed(path, out, i):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    start = time.monotonic()
    pid = get(conn, path)
    end = time.monotonic()
    out[i] = (end - start, pid, end)
    conn.close()

def parallel(path, n):
    out = [None] * n
    threads = [threading.Thread(target=timed, args=(path, out, i)) for i in range(n)]
    for t in threads:
        t.start()
    return threads, out

def burst():
    """4 requests at once: prints the slowest, then each time (ms)."""
    threads, out = parallel("/work?ms=20", 4)
    for t in threads:
        t.join()
    times = sorted(round(took * 1000) for took, _, _ in out)
    print(times[-1], "/".join(map(str, times)))

def sequential(connections):
    """30 requests in turn over `connections` keep-alive connections:
    prints the slowest (ms) and how many pids answered."""
    conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=60) for _ in range(connections)]
    slowest, pids = 0.0, set()
    for n in range(30):
        start = time.monotonic()
        pids.add(get(conns[n % connections], "/work?ms=5&tail=30"))
        slowest = max(slowest, time.monotonic() - start)
    print(round(slowest * 1000), len(pids))

def killed(marker):
    """Every instance busy, 2 requests queued, one busy process killed:
    prints the slowest queued answer after the kill (ms), how many of the
    2 a running instance served, and the busy requests' statuses."""
    busy_out = [None] * 4
    def busy(i):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("GET", "/work?ms=800")
        busy_out[i] = conn.getresponse().status
    busy_threads = [threading.Thread(target=busy, args=(i,)) for i in range(4)]
    for t in busy_threads:
        t.start()
    deadline = time.monotonic() + 60
    while True:
        pids = [int(l) for l in open(marker).read().split()]
        if len(pids) >= 4:
            break
        if time.monotonic() > deadline:
            sys.exit(f"the 4 instances never were busy at once: {pids}")
        time.sleep(0.005)
    queued, out = parallel("/work?ms=20", 2)
    time.sleep(0.2)  # the queue cannot be seen from outside: give them time to reach it
    os.kill(pids[0], signal.SIGKILL)
    killed_at = time.monotonic()
    for t in queued + busy_threads:
        t.join()
    # The others free up at most 800 ms after they began; a replacement
    # takes 3 s to import.
    after_kill = max(end - killed_at for _, _, end in out)
    by_others = sum(1 for _, pid, _ in out if pid in pids[1:4])
    print(round(after_kill * 1000), by_others, "busy:" + ",".join(map(str, busy_out)))

{"burst": burst, "sequential": lambda: sequential(1), "browser": lambda: sequential(2),
 "killed": lambda: killed(sys.argv[3])}[sys.argv[1]]()
PY

# Starts `$1 serve` on a config whose app lines are $2 (env lines $3),
# waits until it listens.
start_gateway() {
  local bin=$1
  cat >"$work/fastgate.toml" <<TOML
[server]
listen = "127.0.0.1:$port"
root = "$work/www"
access_log = "off"
[[app]]
name = "py"
launcher = "django"
# The virtualenv's interpreter may live where only root can go (pyenv
# under /root here): a root gateway would refuse to run it as www-data.
user = "root"
command = "$python"
$2
[app.env]
$3
[app.options]
wsgi_handler = "slow_import_wsgi.application"
python_path = "$fixture"
TOML
  mkdir -p "$work/www"
  : >"$work/gateway.log"
  FASTGATE_LOG=info,fastgate=debug NO_COLOR=1 "$bin" serve "$work/fastgate.toml" >"$work/gateway.log" 2>&1 &
  gateway_pid=$!
  for _ in $(seq 300); do
    grep -q "listening addr=" "$work/gateway.log" && return 0
    kill -0 "$gateway_pid" 2>/dev/null || break
    sleep 0.1
  done
  cat "$work/gateway.log" >&2
  echo "FAILED: $bin did not start listening" >&2
  exit 1
}

# Processes the gateway has started so far: distinct pids of the log's
# spawn lines (before issue 12 "instance started" is logged at spawn; after
# it, "process started" at spawn and "instance started" once ready).
started() {
  grep -E "(instance|process) started" "$work/gateway.log" | grep -o 'pid=[0-9]*' | sort -u | wc -l
}

client() { python3 "$work/client.py" "$1" "$port" "${@:2}"; }

# One measure with one binary; appends "round binary measure value..." to
# the results and prints it.
measure() {
  local round=$1 side=$2 what=$3 bin
  if [ "$side" = before ]; then bin=$before; else bin=$after; fi
  local line
  case $what in
    burst | sequential | browser)
      start_gateway "$bin" $'min_instances = 1\nmax_instances = 4' ""
      # The one instance, warm: this request waits for its import if need be.
      python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/work?ms=1', timeout=60).read()"
      local was children
      children=$( (pgrep -P "$gateway_pid" || true) | wc -l)
      [ "$children" = 1 ] || { echo "FAILED: $side: $children processes after the warm-up, wanted one" >&2; exit 1; }
      was=$(started)
      local out slowest detail
      out=$(client "$what")
      read -r slowest detail <<<"$out"
      sleep 0.3 # a start decided at the last request shows in the log
      line="$slowest $(($(started) - was)) $detail"
      ;;
    killed)
      : >"$work/busy"
      start_gateway "$bin" $'min_instances = 4\nmax_instances = 4' \
        "IMPORT_SLEEP = \"3\""$'\n'"BUSY_MARKER = \"$work/busy\""
      line=$(client killed "$work/busy")
      ;;
  esac
  stop_gateway
  echo "$round $side $what $line" >>"$work/results"
  printf '%5s %-7s %-11s %s\n' "$round" "$side" "$what" "$line"
}

echo "before: $before"
echo "after:  $after"
echo "python: $python"
echo
echo "round side    measure     values"
echo "  burst:      slowest ms, processes started, each request's ms"
echo "  sequential, browser: slowest ms, processes started, pids that answered"
echo "  killed:     slowest queued answer after the kill (ms), queued served by a running instance (of 2), statuses of the 4 busy"
for round in $(seq "$rounds"); do
  sides="before after"
  [ $((round % 2)) = 0 ] && sides="after before"
  for what in burst sequential browser killed; do
    for side in $sides; do measure "$round" "$side" "$what"; done
  done
done

echo
echo "medians over $rounds rounds"
printf '%-42s %10s %10s\n' measure before after
median() { sort -n | awk '{a[NR] = $1} END {if (NR == 0) print "-"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
row() { # label measure column
  local b a
  b=$(awk -v m="$2" -v c="$3" '$2 == "before" && $3 == m {print $c}' "$work/results" | median)
  a=$(awk -v m="$2" -v c="$3" '$2 == "after" && $3 == m {print $c}' "$work/results" | median)
  printf '%-42s %10s %10s\n' "$1" "$b" "$a"
}
row "burst of 4: slowest request (ms)" burst 4
row "burst of 4: processes started" burst 5
row "30 sequential, 1 connection: slowest (ms)" sequential 4
row "30 sequential, 1 connection: started" sequential 5
row "30 sequential, 2 connections: slowest (ms)" browser 4
row "30 sequential, 2 connections: started" browser 5
row "killed: queued answered after kill (ms)" killed 4
row "killed: queued served by running (of 2)" killed 5
