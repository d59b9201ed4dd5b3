#!/usr/bin/env bash
# The soak (issue 15): DURATION seconds (default 600) of mixed load on one
# gateway, checking that nothing accumulates and nothing unexpected fails.
#
# The site: php-cgi (4 instances, recycled every 50 requests), the project's
# FastCGI test program (2 instances) and static files. The load, from
# CLIENTS python threads (default 6), half on keep-alive connections and
# half opening one per request, is a weighted mix whose every answer is
# known in advance:
#   55 %  /pid.php            200 (php)
#   15 %  /page.html          200 (static file)
#   10 %  /py/hello           200 (FastCGI test program)
#    5 %  /big.php            200 (a larger body)
#    5 %  /pid.php?sleep=3000 504 (request_timeout = 2s: the instance is stopped)
#    5 %  /kill.php           502 (php-cgi killed mid-request)
#    5 %  /py/crash           502 (the test program exits mid-request)
# and every 60 s the configuration is reloaded (SIGHUP), alternating the php
# app's max_instances between 4 and 3 (a new pool each time).
# Every 10 s it samples the gateway's resident memory (VmRSS), its open file
# descriptors and its children. At the end it prints the samples, the
# answers by kind, and the verdict: unexpected answers (a status other than
# the one expected, a connection error) must be 0, and after the first
# minute RSS and fds must stay flat (last sample within 10 % / 16 fds of
# the sample at 60 s).
#
#   tests/bench/soak.sh                       # 10 minutes, target/release/fastgate
#   DURATION=120 BIN=target/debug/fastgate tests/bench/soak.sh
#
# Needs: php-cgi, python3. Port 18296 on 127.0.0.1; the temp dir is removed
# on exit. Not part of CI (it takes ten minutes by design).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$(realpath "${BIN:-target/release/fastgate}")
duration=${DURATION:-600}
clients=${CLIENTS:-6}
port=18296
fixtures=$(realpath tests/fixtures)
work=$(mktemp -d)
trap 'kill $(cat "$work"/gw.pid 2>/dev/null) 2>/dev/null; rm -rf "$work"' EXIT
cp -r "$fixtures/www" "$work/www"
# Apps run as an unprivileged user when the gateway is root: they must
# reach the site (mktemp makes a 0700 folder).
chmod 755 "$work"
chmod -R a+rX "$work/www"

config() {
  cat > "$work/fastgate.toml" <<TOML
[server]
listen = "127.0.0.1:$port"
root = "www"
access_log = "off"
error_details = "never"

[[app]]
name = "php"
command = "php-cgi"
handles = ["*.php"]
max_instances = $1
min_instances = 2
instance_max_requests = 50
request_timeout = "2s"
[app.env]
PHP_FCGI_CHILDREN = "0"
PHP_FCGI_MAX_REQUESTS = "1000"

[[app]]
name = "py"
command = "/usr/bin/python3"
args = ["$fixtures/fcgi_app.py"]
handles = ["/py/*"]
mount = "/py"
resource_type = "unspecified"
max_instances = 2
inherit_env = ["PATH"]
TOML
}

config 4
FASTGATE_LOG=warn "$bin" serve "$work/fastgate.toml" > /dev/null 2> "$work/gw.log" &
echo $! > "$work/gw.pid"
gw=$(cat "$work/gw.pid")

python3 - "$port" "$duration" "$clients" "$gw" "$work" <<'PY'
import http.client, os, random, signal, subprocess, sys, threading, time

port, duration, clients, gw, work = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
MIX = [
    (55, "/pid.php", 200), (15, "/page.html", 200), (10, "/py/hello", 200),
    (5, "/big.php", 200), (5, "/pid.php?sleep=3000", 504), (5, "/kill.php", 502),
    (5, "/py/crash", 502),
]
weights = [w for w, _, _ in MIX]

def ready():
    for _ in range(300):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/page.html"); c.getresponse().read()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit("the gateway did not start")

ready()
stop = time.time() + duration
lock = threading.Lock()
counts, unexpected = {}, []

def client(keep_alive):
    rng = random.Random()
    conn = None
    while time.time() < stop:
        _, path, want = rng.choices(MIX, weights)[0]
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", path, headers={} if keep_alive else {"Connection": "close"})
            r = conn.getresponse(); r.read()
            got = r.status
            if not keep_alive or r.getheader("Connection", "").lower() == "close":
                conn.close(); conn = None
        except (OSError, http.client.HTTPException) as e:
            got = f"error {type(e).__name__}: {e}"
            if conn is not None:
                conn.close()
            conn = None
        with lock:
            counts[(path, got)] = counts.get((path, got), 0) + 1
            if got != want:
                unexpected.append((time.time(), path, got))

def sample():
    rss = next(int(l.split()[1]) for l in open(f"/proc/{gw}/status") if l.startswith("VmRSS:"))
    fds = len(os.listdir(f"/proc/{gw}/fd"))
    children = subprocess.run(["pgrep", "-P", str(gw)], capture_output=True, text=True).stdout.split()
    return rss, fds, len(children)

threads = [threading.Thread(target=client, args=(i % 2 == 0,)) for i in range(clients)]
for t in threads: t.start()
began = time.time()
samples, reloads, next_reload = [], 0, began + 60
print(f"{'t (s)':>6} {'RSS KiB':>8} {'fds':>4} {'children':>8}")
while time.time() < stop:
    time.sleep(10)
    s = sample(); t = int(time.time() - began)
    samples.append((t, *s))
    print(f"{t:>6} {s[0]:>8} {s[1]:>4} {s[2]:>8}", flush=True)
    if time.time() >= next_reload:
        reloads += 1
        subprocess.run(["bash", "-c", f"sed -i 's/^max_instances = [34]$/max_instances = {3 if reloads % 2 else 4}/' {work}/fastgate.toml"], check=True)
        os.kill(gw, signal.SIGHUP)
        next_reload += 60
for t in threads: t.join()

total = sum(counts.values())
print(f"\n{total} requests in {duration} s, {reloads} reloads")
for (path, got), n in sorted(counts.items(), key=lambda kv: -kv[1]):
    print(f"  {n:>7}  {path:<22} {got}")
print(f"unexpected answers: {len(unexpected)}")
for u in unexpected[:10]:
    print("  ", u)
base = next((s for s in samples if s[0] >= 60), samples[0])
last = samples[-1]
flat_rss = last[1] <= base[1] * 1.10
flat_fds = last[2] <= base[2] + 16
print(f"RSS at {base[0]} s {base[1]} KiB, at the end {last[1]} KiB ({'flat' if flat_rss else 'GROWING'})")
print(f"fds at {base[0]} s {base[2]}, at the end {last[2]} ({'flat' if flat_fds else 'GROWING'})")
sys.exit(0 if not unexpected and flat_rss and flat_fds else 1)
PY
status=$?
echo "--- gateway warnings and errors (first 20 kinds)"
grep -E "WARN|ERROR" "$work/gw.log" | sed -E 's/^[^ ]+ +//; s/pid[= ][0-9]+/pid N/g; s/[0-9]+(\.[0-9]+)?(ms|s)\b/T/g' | cut -c1-150 | sort | uniq -c | sort -rn | head -20
exit $status
