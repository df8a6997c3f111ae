#!/usr/bin/env bash
# Fuzz the live API with schemathesis: a real gunicorn (gunicorn.conf.py) on the database of
# DATABASE_URL (default: a fresh SQLite file), a workspace with an admin key and a few events, and
# every operation of /api/schema/ with every check. Fails on any 5xx, schema violation or error.
# Usage: .ci/fuzz_api.sh [max-examples per operation, default 10] (about 3 minutes on 2 busy cores)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
EXAMPLES=${1:-10}
work=$(mktemp -d)
export FUNNEL_VAR_DIR="$work/var" DJANGO_SETTINGS_MODULE=funnel_site.settings
export DATABASE_URL=${FUZZ_DATABASE_URL:-sqlite:///$work/fuzz.sqlite3}
export SECRET_KEY=$($PY -c 'import secrets; print(secrets.token_urlsafe(50))') ALLOWED_HOSTS=127.0.0.1
export CELERY_TASK_ALWAYS_EAGER=0 FUNNEL_REQUIRED_QUEUES="" LOG_LEVEL=WARNING
# schemathesis sends thousands of requests with one key: a rate the fuzz run does not reach
export FUNNEL_API_KEY_RATE=1000000/min FUNNEL_FAILED_KEY_RATE=1000000/min
$PY manage.py migrate -v0
key=$($PY manage.py create_workspace fuzz --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')
$PY manage.py generate_events --workspace fuzz --contacts 30 --seed 1 >/dev/null
port=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
$PY -m gunicorn -c gunicorn.conf.py funnel_site.wsgi --bind "127.0.0.1:$port" --workers 2 \
  > "$work/gunicorn.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 1 60); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.5; done
set +e
timeout 300 .venv/bin/schemathesis --config-file schemathesis.toml run "http://127.0.0.1:$port/api/schema/" \
  -H "Authorization: Bearer $key" --checks all --max-examples "$EXAMPLES" --workers 1 \
  --request-timeout 30 --max-response-time 30 --phases examples,coverage,fuzzing \
  --exclude-path-regex '^/api/v1/predictions/' \
  --seed 1 --suppress-health-check all --no-color "${@:2}"
rc=$?
set -e
if grep -q "Traceback\|Internal Server Error" "$work/gunicorn.log"; then
  echo "server errors:"; grep -B2 -A20 "Traceback" "$work/gunicorn.log" | head -60; rc=1
fi
exit $rc
