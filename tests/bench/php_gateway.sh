# Sourced by the A/B benchmark scripts (ab_hello, spool_overhead,
# callgrind_hello): a temporary site with hello.php, and fastgates with 4
# php-cgi (access log off, no recycling) serving it.

# Makes $work: a temporary folder with www/hello.php (from the peers'
# folder, ../shared/bench/peers/www), removed on exit, and every gateway
# whose pid file is in it stopped.
make_hello_site() {
  local peers
  peers=$(cd ../shared/bench/peers/www && pwd)
  work=$(mktemp -d)
  # A root gateway runs its apps as an unprivileged user: they must reach it.
  chmod 755 "$work"
  trap 'kill $(cat "$work"/*.pid 2>/dev/null) 2>/dev/null; rm -rf "$work"' EXIT
  mkdir "$work/www"
  cp "$peers/hello.php" "$work/www/"
}

# Writes $work/NAME.toml: listen on 127.0.0.1:PORT, 4 php-cgi.
#   php_gateway_config NAME PORT [EXTRA-APP-LINES]
php_gateway_config() {
  cat > "$work/$1.toml" <<TOML
[server]
listen = "127.0.0.1:$2"
root = "$work/www"
access_log = "off"
[[app]]
name = "php"
command = "php-cgi"
handles = ["*.php"]
max_instances = 4
min_instances = 4
instance_max_requests = 1000000
${3:-}
[app.env]
PHP_FCGI_CHILDREN = "0"
PHP_FCGI_MAX_REQUESTS = "1000000"
TOML
}

# Starts BINARY on that config, its log and pid in $work.
#   start_php_gateway NAME PORT BINARY [EXTRA-APP-LINES]
start_php_gateway() {
  php_gateway_config "$1" "$2" "${4:-}"
  "$3" serve "$work/$1.toml" > "$work/$1.log" 2>&1 &
  echo $! > "$work/$1.pid"
}
