# Sourced by the A/B benchmark scripts: starts a fastgate with 4 php-cgi
# (access log off, no recycling) on 127.0.0.1:PORT serving $work/www, its
# config, log and pid in $work.
#   start_php_gateway NAME PORT BINARY [EXTRA-APP-LINES]
start_php_gateway() {
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
${4:-}
[app.env]
PHP_FCGI_CHILDREN = "0"
PHP_FCGI_MAX_REQUESTS = "1000000"
TOML
  "$3" serve "$work/$1.toml" > "$work/$1.log" 2>&1 &
  echo $! > "$work/$1.pid"
}
