#!/usr/bin/env bash
# The one command that runs the whole test suite on a fresh Debian/Ubuntu
# machine with only the Rust toolchain and python3: it installs what the
# tests need, then runs `cargo test --workspace` (extra arguments go to it).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*"; }

# 1. System packages: the real programs the integration tests drive.
missing=()
command -v php-cgi >/dev/null 2>&1 || missing+=(php-cgi)
command -v fcgiwrap >/dev/null 2>&1 || [ -x /usr/sbin/fcgiwrap ] || missing+=(fcgiwrap)
# nginx + php-fpm: the reference the PHP launcher's $_SERVER is compared with.
[ -x /usr/sbin/nginx ] || missing+=(nginx-light)
ls /usr/sbin/php-fpm* >/dev/null 2>&1 || missing+=(php-fpm)
# Headless Chromium: the admin page's test presses its buttons.
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    say "installing ${missing[*]} (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "The tests need: ${missing[*]}. Install them with:" >&2
    echo "  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

# 2. The WebAssembly target, for plugins built as components.
if command -v rustup >/dev/null 2>&1; then
  if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    say "adding the wasm32-wasip2 target"
    rustup target add wasm32-wasip2 >/dev/null
  fi
fi

# 3. The plugins the tests load, both ways: native libraries (next to the
#    fastgate binary) and WebAssembly components (release: small and quick
#    for wasmtime to compile).
#    Built-in plugins (plugins/*) are built on their own: the gateway links
#    them with their `builtin` feature, which leaves out the exported entry.
#    sdk01-plugin is built with the pinned fastgate-sdk 0.1 (tests/compat):
#    the gateway must keep loading contract 0.1.0 plugins.
plugins=(-p path-filter -p tenant-env -p misbehave -p sdk01-plugin)
builtins=(-p fastgate-plugin-php -p fastgate-plugin-django -p fastgate-plugin-cgi)
say "building the plugins: native and wasm32-wasip2"
cargo build "${plugins[@]}" -p bad-abi
cargo build "${builtins[@]}"
cargo build --release --target wasm32-wasip2 "${plugins[@]}" "${builtins[@]}"

#    The SDK as a plugin author outside this repository gets it: packaged
#    and built on its own (`cargo package` verifies by building the .crate).
say "packaging fastgate-sdk"
cargo package -p fastgate-sdk --allow-dirty --quiet

# 4. Django (5.2 LTS: python3 here is 3.11) in a virtualenv under target/,
#    for the Python launcher's tests.
venv=target/django-venv
if ! "$venv/bin/python" -c "import django" >/dev/null 2>&1; then
  say "creating $venv with Django 5.2"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "Django>=5.2,<5.3"
fi
# The admin listener's /metrics is checked with Prometheus's own parser.
if ! "$venv/bin/python" -c "import prometheus_client" >/dev/null 2>&1; then
  say "installing prometheus_client into $venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "prometheus_client>=0.20"
fi

say "cargo test --workspace $*"
exec cargo test --workspace "$@"
