#!/usr/bin/env bash
# The WordPress home page (Debian's `wordpress` package on MariaDB) through
# fastgate and through nginx + php-fpm, 4 PHP processes each, in the same
# run (issue 12: the opcache file cache, measured on WordPress).
#
# Servers, each on 127.0.0.1, all serving /usr/share/wordpress from one
# database, access logs off, PHP with the SAPIs' own Debian php.ini (the
# script checks that cgi/ and fpm/ set the same opcache.* lines):
#   nginx           nginx (1 worker) + php-fpm pm = static, pm.max_children = 4,
#                   keep-alive connections to php-fpm (fastcgi_keep_conn on,
#                   keepalive 4: the peers' 18081), WordPress's try_files rule
#   nginx-close     the same with a connection per request (the peers' 18085),
#                   its own php-fpm pool of 4
#   fg              fastgate, launcher = "php", 4 instances, front_controller,
#                   the launcher's opcache file cache (opcache.file_cache)
#   fg-nocache      the same without the file cache (opcache_file_cache = false)
#   fg-recycle      fg with instance_max_requests = 50: php-cgi restarts under
#                   load, which is where the file cache matters
#   fg-recycle-nocache  the same without the file cache
# Load: a warm-up per server, then ROUNDS rounds; each round runs
# `wrk -t1 -c16 -d$DURATION --latency` against / on every server, in an
# order that rotates from round to round. Prints requests/s, p50, p99,
# non-2xx and socket errors per round and as medians, and each server's
# requests/s as a ratio to each nginx variant's in the same round.
# Before any load, every server must answer / with 200 and the same <title>.
# After the warm-up, a fairness probe: 16 keep-alive connections (python3)
# each ask for / in a loop for FAIRNESS seconds; it prints how many of the
# 16 got answers. wrk cannot show a connection that never gets an answer
# (its latencies are those of the answered requests, and a run shorter than
# its timeout counts no timeout): with fastcgi_keep_conn, a php-fpm child
# stays with the nginx connection it accepted, so with 16 clients and 4
# children nginx's other upstream connections wait in php-fpm's backlog
# and their clients get no answer at all (12 of 16 here), while wrk's
# figures look fine. nginx-close has no such queue.
#
#   tests/bench/wordpress.sh                        # 3 rounds of 5 s
#   ROUNDS=6 DURATION=10s tests/bench/wordpress.sh
#
# Environment: FASTGATE_BIN (default target/release/fastgate), ROUNDS (3),
# DURATION (5s), WARMUP (3s, wrk per server before the rounds), FAIRNESS
# (3, seconds of the fairness probe per server), PORT_BASE (18380: the
# servers on it and the next five, in the order above),
# STEADY_MAX_REQUESTS (instance_max_requests of fg and fg-nocache; default:
# unset, the launcher's own default), WP_DB_PASSWORD.
# FASTGATE_NO_OPTION=1: for a fastgate built before the php launcher had
# `opcache_file_cache`: the cache variants get the file cache by hand, with
# the launcher's `php_ini` option naming a copy of Debian's cgi php.ini plus
# `opcache.file_cache = <run dir>/opcache-<variant>` (an `args` line would be
# dropped: the php launcher's proposal replaces the app's args); the nocache
# variants set nothing (php-cgi has no file cache by default). Without it,
# every config goes through `fastgate check` first and an unknown option
# stops the script with that hint. Either way, after the warm-up the script
# checks that exactly the cache variants' php-cgi processes have a file
# cache (on their command line, or in their php.ini) and that it filled.
#
# Setup, when run as root, idempotent (a second run reuses all of it):
# - installs what is missing: nginx-light php-fpm php-cgi php-mysql wrk curl
#   mariadb-server php, then wordpress and wordpress-theme-twentytwentythree
#   (in that order and with --no-install-recommends, so that nginx and
#   php-fpm satisfy the package's web server and PHP dependencies);
# - MariaDB: if nothing answers on /run/mysqld/mysqld.sock, starts
#   `mariadbd --user=mysql --datadir=$MARIADB_DATADIR` in the background
#   (default /var/lib/mysql, Debian's; initialised with mariadb-install-db
#   when it has no `mysql` database yet), and stops it on exit. A MariaDB
#   that was already running is used and left running. There is no systemd
#   here, so nothing else starts it;
# - database `wordpress`, user wordpress@localhost (socket), and the Debian
#   package's per-host config /etc/wordpress/config-127.0.0.1.php (cron and
#   outside HTTP requests off). Debian's wp-config.php picks that file by
#   the Host header, so every request here (curl and wrk) says
#   `Host: 127.0.0.1`, which is also the site's URL: no server redirects;
# - runs the installer once (POST wp-admin/install.php?step=2), then adds
#   posts (POSTS, default 10 in all) so that the home page lists real ones.
#   The installer goes through nginx-close: Debian's WordPress (6.1) warns
#   in install.php on PHP 8.2, and fastgate's default stderr_mode
#   (return-stderr-in-500) turns that page into a 500 (the install itself
#   succeeds). The home page has no warning; the fastgate variants keep the
#   default stderr_mode, so a warning under load would show as non-2xx.
# Ports PORT_BASE..PORT_BASE+5 on 127.0.0.1; everything started is stopped
# on exit and the run directory removed.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${ROUNDS:-3}
duration=${DURATION:-5s}
warmup=${WARMUP:-3s}
fairness=${FAIRNESS:-3}
fastgate=$(realpath "${FASTGATE_BIN:-target/release/fastgate}")
port_base=${PORT_BASE:-18380}
by_hand=${FASTGATE_NO_OPTION:-0}
posts=${POSTS:-10}
db_password=${WP_DB_PASSWORD:-fastgate-bench-wp}
datadir=${MARIADB_DATADIR:-/var/lib/mysql}
socket=/run/mysqld/mysqld.sock
wp_root=/usr/share/wordpress
host=127.0.0.1
wp_config=/etc/wordpress/config-$host.php
php_ini="" # Debian's cgi php.ini, once php-fpm's version is known
marker="// Written by fastgate's tests/bench/wordpress.sh"

variants=(nginx nginx-close fg fg-nocache fg-recycle fg-recycle-nocache)
fastgates=(fg fg-nocache fg-recycle fg-recycle-nocache)
declare -A port
for i in "${!variants[@]}"; do port[${variants[$i]}]=$((port_base + i)); done

run=$(mktemp -d /tmp/wordpress-bench.XXXXXX)
chmod 755 "$run" # nginx's workers (nobody) reach php-fpm's socket through it
db_pid=""
cleanup() {
  local status=$?
  set +e # cleanup goes on whatever fails
  # Gateways, nginx and php-fpm stop their own children on SIGTERM; what a
  # gateway leaves (one stopped while its processes were still starting
  # has left them running) is stopped by pid once it has exited.
  local f kids=()
  for f in "$run"/*.pid; do
    [ -e "$f" ] || continue
    mapfile -t -O "${#kids[@]}" kids < <(pgrep -P "$(cat "$f")")
    kill "$(cat "$f")" 2>/dev/null
  done
  for f in "$run"/*.pid; do [ -e "$f" ] && wait "$(cat "$f")" 2>/dev/null; done
  [ ${#kids[@]} = 0 ] || kill "${kids[@]}" 2>/dev/null
  if [ -n "$db_pid" ]; then
    kill "$db_pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$db_pid" 2>/dev/null || break; sleep 0.1; done
  fi
  if [ "$status" != 0 ]; then
    for log in "$run"/*.log "$run"/*/*.log; do
      [[ $log == *-check.log ]] && continue # shown when check refuses
      [ -s "$log" ] && { echo "--- last lines of $(basename "$log")"; tail -n 8 "$log"; }
    done >&2
  fi
  rm -rf "$run"
}
trap cleanup EXIT
fail() { echo "FAILED: $*" >&2; exit 1; }

# Polls `$@` every 0.1 s for up to $1 seconds.
wait_for() {
  local seconds=$1
  shift
  for _ in $(seq $((seconds * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}

find_fpm() { command -v php-fpm8.2 || find /usr/sbin -name 'php-fpm*' | sort -V | tail -n 1; }
fpm=$(find_fpm)

install_missing() {
  local servers=() site=() pair
  for pair in nginx:nginx-light php-cgi:php-cgi wrk:wrk curl:curl mariadbd:mariadb-server; do
    command -v "${pair%%:*}" >/dev/null || servers+=("${pair#*:}")
  done
  [ -n "$fpm" ] || servers+=(php-fpm)
  php-cgi -m 2>/dev/null | grep -qx mysqli || servers+=(php-mysql)
  [ -f $wp_root/wp-config.php ] || site+=(wordpress)
  [ -d $wp_root/wp-content/themes/twentytwentythree ] || site+=(wordpress-theme-twentytwentythree)
  if [ $((${#servers[@]} + ${#site[@]})) = 0 ]; then return 0; fi
  [ "$(id -u)" = 0 ] || fail "missing: ${servers[*]} ${site[*]} (install them, or run as root)"
  echo "installing: ${servers[*]} ${site[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # php (the metapackage) first: wordpress then finds its PHP in php-fpm
  # and php-cgi rather than pulling in Apache's module.
  [ ${#servers[@]} = 0 ] || apt-get install -y -qq --no-install-recommends "${servers[@]}" php >/dev/null
  [ ${#site[@]} = 0 ] || apt-get install -y -qq --no-install-recommends "${site[@]}" >/dev/null
  fpm=$(find_fpm)
}

db() { mariadb --socket=$socket -N -B "$@"; }

start_mariadb() {
  if mariadb-admin --socket=$socket ping >/dev/null 2>&1; then
    echo "MariaDB: already running on $socket (used, left running)"
    return
  fi
  [ "$(id -u)" = 0 ] || fail "MariaDB is not running on $socket (start it, or run as root)"
  mkdir -p /run/mysqld
  chown mysql:mysql /run/mysqld
  if [ ! -d "$datadir/mysql" ]; then
    echo "MariaDB: initialising $datadir"
    mariadb-install-db --user=mysql --datadir="$datadir" >"$run/mariadb-install.log" 2>&1
  fi
  mkdir "$run/mariadb" # its log, written as mysql
  chown mysql:mysql "$run/mariadb"
  mariadbd --user=mysql --datadir="$datadir" --socket=$socket --bind-address=127.0.0.1 \
    --pid-file="$run/mariadb/mariadbd.pid" --log-error="$run/mariadb/mariadb.log" \
    >"$run/mariadb/mariadbd-out.log" 2>&1 &
  db_pid=$!
  for _ in $(seq 600); do
    if mariadb-admin --socket=$socket ping >/dev/null 2>&1; then break; fi
    kill -0 $db_pid 2>/dev/null || fail "mariadbd exited at start (see its log)"
    sleep 0.1
  done
  mariadb-admin --socket=$socket ping >/dev/null 2>&1 || fail "MariaDB did not answer within 60 s"
  echo "MariaDB: started (pid $db_pid, datadir $datadir); stopped on exit"
}

# The database, its user and the Debian package's per-host config.
setup_site() {
  db -e "CREATE DATABASE IF NOT EXISTS wordpress;
    CREATE USER IF NOT EXISTS 'wordpress'@'localhost' IDENTIFIED BY '$db_password';
    ALTER USER 'wordpress'@'localhost' IDENTIFIED BY '$db_password';
    GRANT ALL ON wordpress.* TO 'wordpress'@'localhost';"
  if [ -e "$wp_config" ] && ! grep -qF "$marker" "$wp_config"; then
    fail "$wp_config exists and was not written by this script: move it away first"
  fi
  local salts="" key
  for key in AUTH_KEY SECURE_AUTH_KEY LOGGED_IN_KEY NONCE_KEY AUTH_SALT SECURE_AUTH_SALT LOGGED_IN_SALT NONCE_SALT; do
    salts="${salts}define('$key', '$(head -c 48 /dev/urandom | base64 -w0)');"$'\n'
  done
  (
    umask 027
    cat >"$wp_config" <<PHP
<?php
$marker (the benchmark's site on $host).
define('DB_NAME', 'wordpress');
define('DB_USER', 'wordpress');
define('DB_PASSWORD', '$db_password');
define('DB_HOST', 'localhost');
define('WP_CONTENT_DIR', '/var/lib/wordpress/wp-content');
// No request of the benchmark leaves the machine or spawns wp-cron.
define('DISABLE_WP_CRON', true);
define('WP_HTTP_BLOCK_EXTERNAL', true);
$salts
PHP
  )
  chgrp www-data "$wp_config" # php-fpm's workers run as www-data
}

# The SAPIs' own php.ini and conf.d: the same opcache.* lines on both sides.
check_opcache_settings() {
  local ver
  ver=$(basename "$fpm" | sed 's/php-fpm//')
  local cgi fpm_lines
  cgi=$(cat "/etc/php/$ver/cgi/php.ini" "/etc/php/$ver/cgi/conf.d/"*.ini | grep -E '^\s*opcache\.' || true)
  fpm_lines=$(cat "/etc/php/$ver/fpm/php.ini" "/etc/php/$ver/fpm/conf.d/"*.ini | grep -E '^\s*opcache\.' || true)
  [ "$cgi" = "$fpm_lines" ] || fail "php-cgi and php-fpm set different opcache.* lines:
cgi: $cgi
fpm: $fpm_lines"
  echo "opcache.* lines set in both php.ini + conf.d: ${cgi//$'\n'/ }"
}

# A server block for variant $1 passing PHP on with $2.
nginx_server() {
  cat <<CONF
server {
    listen 127.0.0.1:${port[$1]};
    server_name $host; # SERVER_NAME as fastgate sends it (WordPress's page depends on it)
    root $wp_root;
    index index.php;
    location / { try_files \$uri \$uri/ /index.php?\$args; }
    location ~ \.php\$ {
      try_files \$uri =404;
      include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_FILENAME \$document_root\$fastcgi_script_name;
      $2
    }
  }
CONF
}

start_nginx() {
  cat >"$run/php-fpm.conf" <<CONF
[global]
pid = $run/php-fpm.pidfile
error_log = $run/php-fpm.log
daemonize = no
; one pool per front, so that neither can pin the other's children
[nginx]
listen = $run/php-fpm.sock
listen.mode = 0666
user = www-data
group = www-data
pm = static
pm.max_children = 4
[nginx-close]
listen = $run/php-fpm-close.sock
listen.mode = 0666
user = www-data
group = www-data
pm = static
pm.max_children = 4
CONF
  cat >"$run/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $run/nginx.pidfile;
error_log $run/nginx.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $run/nginx-body;
  fastcgi_temp_path $run/nginx-fcgi;
  proxy_temp_path $run/nginx-proxy;
  uwsgi_temp_path $run/nginx-uwsgi;
  scgi_temp_path $run/nginx-scgi;
  upstream php { server unix:$run/php-fpm.sock; keepalive 4; }
  $(nginx_server nginx "fastcgi_keep_conn on; fastcgi_pass php;")
  $(nginx_server nginx-close "fastcgi_pass unix:$run/php-fpm-close.sock;")
}
CONF
  "$fpm" -R -y "$run/php-fpm.conf" >"$run/php-fpm-out.log" 2>&1 &
  echo $! >"$run/php-fpm.pid"
  wait_for 20 test -S "$run/php-fpm-close.sock" || fail "php-fpm did not start"
  nginx -c "$run/nginx.conf" >"$run/nginx-out.log" 2>&1 &
  echo $! >"$run/nginx.pid"
}

# fastgate variant $1: with the file cache or not, recycling or not.
fastgate_config() {
  local name=$1 app_lines="" options="front_controller = true"
  case $name in
    fg-recycle*) app_lines="instance_max_requests = 50" ;;
    *) [ -z "${STEADY_MAX_REQUESTS:-}" ] || app_lines="instance_max_requests = $STEADY_MAX_REQUESTS" ;;
  esac
  case $name in
    *-nocache) [ "$by_hand" = 1 ] || options="$options"$'\n'"opcache_file_cache = false" ;;
    *) if [ "$by_hand" = 1 ]; then
         mkdir -p "$run/opcache-$name"
         { cat "$php_ini"; echo; echo "opcache.file_cache = $run/opcache-$name"; } >"$run/php-$name.ini"
         options="$options"$'\n'"php_ini = \"$run/php-$name.ini\""
       fi ;;
  esac
  cat <<TOML
[server]
listen = "127.0.0.1:${port[$name]}"
root = "$wp_root"
access_log = "off"
[[app]]
name = "wordpress"
launcher = "php"
max_instances = 4
min_instances = 4
$app_lines
[app.options]
$options
TOML
}

# Writes the variant's config and has `fastgate check` read it.
check_fastgate() {
  local name=$1
  fastgate_config "$name" >"$run/$name.toml"
  if ! "$fastgate" check "$run/$name.toml" >"$run/$name-check.log" 2>&1; then
    cat "$run/$name-check.log" >&2
    [ "$by_hand" = 1 ] || echo "(a fastgate without the php launcher's opcache_file_cache option: FASTGATE_NO_OPTION=1)" >&2
    fail "fastgate check refused $name.toml"
  fi
  echo "$name: $(grep -E '^\s*(command|instances|max_instances|min_instances|instance_max_requests) ' "$run/$name-check.log" | sed 's/^ *//; s/  */ /g' | paste -sd ';' | sed 's/;/; /g')"
}

start_fastgate() {
  NO_COLOR=1 "$fastgate" serve "$run/$1.toml" >"$run/$1.log" 2>&1 &
  echo $! >"$run/$1.pid"
}

get() { curl -s -m 30 -H "Host: $host" "$@"; }

# The installer, once per database, then the posts the home page lists.
install_wordpress() {
  local url=$1
  if [ "$(db -e "SHOW TABLES FROM wordpress LIKE 'wp_options'")" = "" ]; then
    echo "WordPress: running the installer through $url"
    get -o "$run/install.html" -w '%{http_code}' "$url/wp-admin/install.php?step=2" \
      --data-urlencode "weblog_title=fastgate bench" --data-urlencode "user_name=admin" \
      --data-urlencode "admin_password=Bench-Admin-Pass-2024" \
      --data-urlencode "admin_password2=Bench-Admin-Pass-2024" \
      --data-urlencode "admin_email=admin@example.invalid" --data-urlencode "blog_public=0" \
      >"$run/install.status"
    grep -q "Success" "$run/install.html" ||
      fail "the WordPress installer answered $(cat "$run/install.status"): $(sed 's/<[^>]*>//g' "$run/install.html" | tr -s ' \n' ' ' | head -c 600)"
  fi
  local have
  have=$(db -e "SELECT COUNT(*) FROM wordpress.wp_posts WHERE post_type = 'post' AND post_status = 'publish'")
  [ "$have" -lt "$posts" ] || return 0
  echo "WordPress: adding $((posts - have)) posts"
  local sql="" n text
  text="<!-- wp:paragraph --><p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat.</p><!-- /wp:paragraph -->"
  for n in $(seq $((have + 1)) "$posts"); do
    sql="$sql INSERT INTO wp_posts (post_author, post_date, post_date_gmt, post_content, post_title,
        post_excerpt, post_status, comment_status, ping_status, post_name, to_ping, pinged,
        post_modified, post_modified_gmt, post_content_filtered, guid, post_type)
      VALUES (1, NOW() - INTERVAL $n HOUR, UTC_TIMESTAMP() - INTERVAL $n HOUR,
        '$text$text$text', 'Benchmark post $n', '', 'publish', 'open', 'open', 'benchmark-post-$n',
        '', '', NOW(), UTC_TIMESTAMP(), '', 'http://$host/?p=benchmark-$n', 'post');
      INSERT INTO wp_term_relationships (object_id, term_taxonomy_id) VALUES (LAST_INSERT_ID(), 1);"
  done
  db wordpress -e "$sql UPDATE wp_term_taxonomy SET count = (SELECT COUNT(*) FROM wp_term_relationships
    WHERE term_taxonomy_id = 1) WHERE term_taxonomy_id = 1;"
}

# Every server answers / with 200 and the same title.
check_pages() {
  local name status title first=""
  for name in "${variants[@]}"; do
    status=$(get -o "$run/$name.html" -w '%{http_code}' "http://127.0.0.1:${port[$name]}/" || true)
    title=$(tr '\n' ' ' <"$run/$name.html" | grep -o '<title>[^<]*</title>' | head -n 1 || true)
    [ "$status" = 200 ] || fail "$name answered / with ${status:-no answer}: $(head -c 600 "$run/$name.html")"
    [ -n "$title" ] || fail "$name's home page has no <title>: $(head -c 600 "$run/$name.html")"
    first=${first:-$title}
    [ "$title" = "$first" ] || fail "$name's title is $title, ${variants[0]}'s $first"
    echo "$name: 200, $title, $(wc -c <"$run/$name.html") bytes, $(grep -o 'Benchmark post [0-9]*' "$run/$name.html" | sort -u | wc -l) benchmark posts listed"
    cmp -s "$run/$name.html" "$run/${variants[0]}.html" || echo "  (not the same bytes as ${variants[0]}'s page: diff them to see why)"
  done
}

# The file cache of a php-cgi process, from its command line
# (`-d opcache.file_cache=DIR`, the launcher's way) or from the php.ini it
# was given with `-c` (the by-hand way); empty when it has none.
file_cache_of() {
  local -a argv
  mapfile -d '' argv <"/proc/$1/cmdline" 2>/dev/null || return 0
  local i
  for i in "${!argv[@]}"; do
    case ${argv[$i]} in
      opcache.file_cache=*) echo "${argv[$i]#*=}"; return ;;
      -c) sed -n 's/^\s*opcache\.file_cache\s*=\s*"\{0,1\}\([^"]*\)"\{0,1\}\s*$/\1/p' "${argv[$((i + 1))]}" | tail -n 1; return ;;
    esac
  done
}

# The php-cgi processes of a fastgate variant have a file cache exactly when
# the variant says so, and it is filled once they have served.
check_file_cache() {
  local name=$1 pid dir want=yes have="" count=0
  if [[ $name == *-nocache ]]; then want=no; fi
  for pid in $(pgrep -P "$(cat "$run/$name.pid")" || true); do
    dir=$(file_cache_of "$pid")
    count=$((count + 1))
    if [ -n "$dir" ]; then have=$dir; fi
  done
  [ "$count" -gt 0 ] || fail "$name: no php-cgi process found under the gateway"
  case $want in
    yes) [ -n "$have" ] || fail "$name: its php-cgi processes have no opcache.file_cache"
      [ -n "$(find "$have" -type f -name '*.bin' 2>/dev/null | head -n 1)" ] ||
        fail "$name: the file cache $have stayed empty"
      echo "$name: file cache $have, $(find "$have" -type f -name '*.bin' | wc -l) compiled scripts" ;;
    no) [ -z "$have" ] || fail "$name: its php-cgi processes have a file cache ($have), wanted none" ;;
  esac
}

# 16 keep-alive connections ask for / in a loop for $fairness seconds:
# prints how many of them got an answer, and the fewest and most answers
# one connection got.
cat >"$run/fairness.py" <<'PY'
import http.client, sys, threading, time
port, seconds, host = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
answers = [0] * 16
def client(i):
    end = time.monotonic() + seconds
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=seconds + 5)
        while time.monotonic() < end:
            conn.request("GET", "/", headers={"Host": host})
            response = conn.getresponse()
            response.read()
            answers[i] += response.status == 200
    except OSError:
        pass  # a timeout: the connection keeps the count it had
threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(sum(1 for a in answers if a), min(answers), max(answers))
PY

# wrk's latency ("812.00us", "12.34ms", "1.20s") in ms.
to_ms() {
  awk -v v="$1" 'BEGIN { n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    f = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : (u == "m") ? 60000 : -1
    if (f < 0) print "?"; else printf "%.1f", n * f }'
}

# One wrk run against $1: "req/s p50 p99 non2xx errors".
load() {
  local out
  # A 10 s timeout (wrk's default is 2 s): a slow answer stays in p99
  # instead of leaving it as a timeout error.
  out=$(wrk -t1 -c16 -d"$2" --timeout 10s --latency -H "Host: $host" "http://127.0.0.1:${port[$1]}/")
  local rps p50 p99 non2xx errors
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
  p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  errors=$(awk '/Socket errors/ {gsub(/,/, ""); print $4 + $6 + $8 + $10}' <<<"$out")
  echo "${rps:-0} $p50 $p99 ${non2xx:-0} ${errors:-0}"
}

echo "== setup"
install_missing
php_ini=/etc/php/$(basename "$fpm" | sed 's/php-fpm//')/cgi/php.ini
check_opcache_settings
if [ "$by_hand" = 1 ]; then how="by hand: php_ini = a copy of $php_ini + opcache.file_cache"; else how="the launcher's opcache_file_cache option"; fi
echo "fastgate: $fastgate (file cache: $how)"
for name in "${fastgates[@]}"; do check_fastgate "$name"; done
start_mariadb
setup_site
for name in "${fastgates[@]}"; do start_fastgate "$name"; done
start_nginx
for name in "${variants[@]}"; do
  wait_for 30 curl -s -o /dev/null -m 1 "http://127.0.0.1:${port[$name]}/readme.html" ||
    fail "$name is not listening on ${port[$name]} (see $name.log)"
done
install_wordpress "http://127.0.0.1:${port[nginx-close]}"
check_pages

echo "== warm-up, $warmup per server"
for name in "${variants[@]}"; do
  read -r rps _ _ non2xx errors <<<"$(load "$name" "$warmup")"
  if [[ $name == fg* ]]; then check_file_cache "$name"; fi
  echo "$name: $rps req/s, non-2xx $non2xx, errors $errors"
done

echo "== fairness: 16 keep-alive connections, ${fairness} s per server"
for name in "${variants[@]}"; do
  read -r answered fewest most <<<"$(python3 "$run/fairness.py" "${port[$name]}" "$fairness" "$host")"
  echo "$name: $answered of 16 connections answered (per connection: $fewest to $most answers)"
  echo "$name $answered" >>"$run/fairness"
  sleep 1 # what the probe left behind finishes first (see the rounds)
done

echo "== $rounds rounds of wrk -t1 -c16 -d$duration --latency on /"
results=$run/results # round variant rps p50 p99 non2xx errors
printf '%-19s %5s %9s %9s %9s %7s %6s %9s %11s\n' variant round 'req/s' 'p50 ms' 'p99 ms' non-2xx errors 'vs nginx' 'vs n-close'
for round in $(seq "$rounds"); do
  # The order rotates: no variant always runs right after the same one.
  shift_by=$(((round - 1) % ${#variants[@]}))
  order=("${variants[@]:$shift_by}" "${variants[@]:0:$shift_by}")
  for name in "${order[@]}"; do
    echo "$round $name $(load "$name" "$duration")" >>"$results"
    # Requests the last run left behind (nginx's starved upstream
    # connections, still run by php-fpm once accepted) finish before the next.
    sleep 1
  done
  awk -v r="$round" -v order="${variants[*]}" '$1 == r {line[$2] = $0; rps[$2] = $3}
    END { n = split(order, v, " ")
      for (i = 1; i <= n; i++) { split(line[v[i]], f, " ")
        printf "%-19s %5s %9s %9s %9s %7s %6s %9.3f %11.3f\n", f[2], f[1], f[3], f[4], f[5], f[6], f[7],
          (rps["nginx"] > 0 ? f[3] / rps["nginx"] : 0), (rps["nginx-close"] > 0 ? f[3] / rps["nginx-close"] : 0) } }' "$results"
done

echo
echo "== medians over $rounds rounds (non-2xx, errors: totals; vs: median of the per-round ratios (min-max); fair: connections answered in the probe)"
printf '%-19s %9s %9s %9s %7s %6s %5s %-21s %s\n' variant 'req/s' 'p50 ms' 'p99 ms' non-2xx errors fair 'vs nginx' 'vs nginx-close'
median() { sort -n | awk '{a[NR] = $1} END {if (NR % 2) print a[(NR + 1) / 2]; else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
col() { awk -v v="$1" -v c="$2" '$2 == v {print $c}' "$results" | median; }
total() { awk -v v="$1" -v c="$2" '$2 == v {s += $c} END {print s + 0}' "$results"; }
ratio() { # variant reference
  awk -v v="$1" -v ref="$2" '$2 == ref {base[$1] = $3} $2 == v {r[$1] = $3}
    END {for (k in r) if (base[k] > 0) print r[k] / base[k]}' "$results" | sort -n |
    awk '{a[NR] = $1} END {printf "%.3f (%.3f-%.3f)", (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2), a[1], a[NR]}'
}
for name in "${variants[@]}"; do
  printf '%-19s %9s %9s %9s %7s %6s %5s %-21s %s\n' "$name" "$(col "$name" 3)" "$(col "$name" 4)" "$(col "$name" 5)" \
    "$(total "$name" 6)" "$(total "$name" 7)" "$(awk -v v="$name" '$1 == v {print $2 "/16"}' "$run/fairness")" \
    "$(ratio "$name" nginx)" "$(ratio "$name" nginx-close)"
done
