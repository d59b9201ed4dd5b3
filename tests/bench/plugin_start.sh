#!/usr/bin/env bash
# What a wasm plugin adds to a start: `fastgate check` (which loads every
# plugin as `serve` does) with no plugin, with the path-filter example as
# wasm loaded from the compile cache (`plugin_cache_dir`), and with the
# cache off, alternating, ROUNDS rounds (default 10); prints the median,
# min and max of each. Needs a release build and the wasm plugin:
#   cargo build --release -p fastgate
#   cargo build --release --target wasm32-wasip2 -p path-filter
#   tests/bench/plugin_start.sh
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
bin=${FASTGATE_BIN:-$repo/target/release/fastgate}
wasm=${PLUGIN_WASM:-$repo/target/wasm32-wasip2/release/path_filter.wasm}
rounds=${ROUNDS:-10}
run=$(mktemp -d)
chmod 755 "$run" # a root gateway runs its apps as an unprivileged user: they must reach it
trap 'rm -rf "$run"' EXIT
mkdir -p "$run/www"
server() { printf '[server]\nlisten = "127.0.0.1:0"\nroot = "www"\nplugin_cache_dir = "%s"\n' "$1"; }
plugin() { printf 'plugins = ["guard"]\n\n[[plugin]]\nname = "guard"\npath = "%s"\nconfig = { deny_paths = ["/admin"] }\n' "$wasm"; }
server "$run/cache" > "$run/none.toml"
{ server "$run/cache"; plugin; } > "$run/cached.toml"
{ server ""; plugin; } > "$run/uncached.toml"
"$bin" check "$run/cached.toml" > /dev/null  # fills the cache
python3 - "$bin" "$run" "$rounds" <<'PY'
import statistics, subprocess, sys, time
bin, run, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
times = {"none": [], "cached": [], "uncached": []}
for _ in range(rounds):
    for name in times:
        start = time.perf_counter()
        subprocess.run([bin, "check", f"{run}/{name}.toml"], capture_output=True, check=True)
        times[name].append((time.perf_counter() - start) * 1000)
base = statistics.median(times["none"])
for name, t in times.items():
    m = statistics.median(t)
    print(f"{name:9} median {m:7.1f} ms  min {min(t):7.1f}  max {max(t):7.1f}  (+{m - base:.1f} ms over none)")
PY
