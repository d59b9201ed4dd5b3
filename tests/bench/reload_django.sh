#!/usr/bin/env bash
# Issue 14: a configuration reload under load, on a real Django site (a
# `startproject` with the admin, sqlite, collected static files) behind the
# django launcher. wrk loads /admin/login/ for DURATION seconds; meanwhile
# the app's max_instances is changed and the gateway reloaded ROUNDS times,
# alternately by SIGHUP and by POST /reload on the admin listener (each
# change makes a new pool: its processes start, import Django and are
# ready before it takes a request; the old pool drains). Prints wrk's
# summary (a failed request shows as "Non-2xx" or "Socket errors"), each
# reload's time from the log, and the gateway's own count of responses by
# class from /status.
#
#   tests/bench/reload_django.sh
#   BIN=target/release/fastgate ROUNDS=4 DURATION=20 tests/bench/reload_django.sh
#
# Environment: BIN (default target/release/fastgate, else target/debug),
# PYTHON's venv with Django (default target/django-venv, made by
# tests/run.sh), PORT (18393), ADMIN_PORT (19193), ROUNDS (2), DURATION
# (14), CONNECTIONS (8). Loopback only; the temp dir is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${BIN:-target/release/fastgate}
[ -x "$bin" ] || bin=target/debug/fastgate
bin=$(realpath "$bin")
venv=$(realpath "${VENV:-target/django-venv}")
port=${PORT:-18393}
admin_port=${ADMIN_PORT:-19193}
rounds=${ROUNDS:-2}
duration=${DURATION:-14}
connections=${CONNECTIONS:-8}
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 1; }
[ -x "$venv/bin/python" ] || { echo "no Django venv at $venv (tests/run.sh makes it)" >&2; exit 1; }

dir=$(mktemp -d)
chmod 755 "$dir" # a root gateway runs its apps as an unprivileged user: they must reach it
gw_pid=
cleanup() {
  [ -n "$gw_pid" ] && kill "$gw_pid" 2>/dev/null && wait "$gw_pid" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT

mkdir "$dir/site"
"$venv/bin/python" -m django startproject mysite "$dir/site"
printf '\nALLOWED_HOSTS = ["127.0.0.1"]\nSTATIC_ROOT = BASE_DIR / "static"\n' >> "$dir/site/mysite/settings.py"
(cd "$dir/site" && "$venv/bin/python" manage.py migrate --noinput >/dev/null \
  && "$venv/bin/python" manage.py collectstatic --noinput >/dev/null)

config() {
  cat > "$dir/fastgate.toml" <<EOF
[server]
listen = "127.0.0.1:$port"
root = "site"
access_log = "off"

[admin]
listen = "127.0.0.1:$admin_port"

[[app]]
name = "site"
launcher = "django"
# The virtualenv's interpreter may live where only root can go (pyenv
# under /root here): a root gateway would refuse to run it as www-data.
user = "root"
max_instances = $1

[app.options]
wsgi_handler = "mysite.wsgi.application"
django_settings_module = "mysite.settings"
python_path = "site"
virtualenv = "$venv"
static_url = "/static/"
static_root = "site/static"
EOF
}

config 4
FASTGATE_LOG=info "$bin" serve "$dir/fastgate.toml" 2> "$dir/gw.log" &
gw_pid=$!
for _ in $(seq 100); do
  curl -fs -o /dev/null "http://127.0.0.1:$port/admin/login/" && break
  sleep 0.1
done

wrk -t1 -c"$connections" -d"${duration}s" "http://127.0.0.1:$port/admin/login/" > "$dir/wrk.txt" &
wrk_pid=$!
gap=$(( duration / (rounds + 1) ))
for round in $(seq "$rounds"); do
  sleep "$gap"
  config $(( round % 2 == 1 ? 3 : 4 ))
  if (( round % 2 == 1 )); then
    kill -HUP "$gw_pid"
  else
    curl -fs -X POST "http://127.0.0.1:$admin_port/reload" > /dev/null
  fi
done
wait "$wrk_pid"

cat "$dir/wrk.txt"
echo "--- reloads"
grep -E "reloading the configuration|configuration reloaded|reload refused" "$dir/gw.log" | cut -c1-160
echo "--- the gateway's count"
curl -fs "http://127.0.0.1:$admin_port/status?format=text" | grep -E "responses|instances"
