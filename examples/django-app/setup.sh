#!/usr/bin/env bash
# Creates the example Django site in ./site (a `startproject` with the
# admin, sqlite and collected static files) and a superuser admin/admin,
# using a virtualenv in ./venv. Run it once, then:
#   cargo run --release -- serve examples/django-app/fastgate.toml   (http://127.0.0.1:8083/admin/)
set -euo pipefail
cd "$(dirname "$0")"
[ -x venv/bin/python ] || python3 -m venv venv
venv/bin/pip install -q --disable-pip-version-check "Django>=5.2,<5.3"
if [ ! -f site/manage.py ]; then
  mkdir -p site
  venv/bin/python -m django startproject mysite site
  cat >> site/mysite/settings.py <<'PY'

# fastgate example: served at 127.0.0.1:8083, static files by the gateway.
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
STATIC_ROOT = BASE_DIR / "static"
PY
fi
cd site
../venv/bin/python manage.py migrate --noinput
../venv/bin/python manage.py collectstatic --noinput >/dev/null
DJANGO_SUPERUSER_PASSWORD=admin ../venv/bin/python manage.py createsuperuser \
  --noinput --username admin --email admin@example.invalid 2>/dev/null || true
echo "ready: cargo run --release -- serve examples/django-app/fastgate.toml"
