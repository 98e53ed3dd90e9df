#!/bin/sh
# The llmur image's one entry point: `web`, `worker`, `beat`, `migrate` or `manage ...`.
#
#   web      the gateway (llmur-proxy): uvicorn, or gunicorn + uvicorn workers when LLMUR_WORKERS > 1.
#            It migrates at start unless auto_migrate is off (the helm chart turns it off and runs
#            `migrate` as a hook Job instead).
#   worker   a Celery worker: drains the spend queue, runs rollups.
#   beat     the Celery scheduler; run exactly one.
#   migrate  apply database migrations once and exit (safe beside web processes starting with
#            auto_migrate on: both take the same database lock).
#   manage   any Django management command, e.g. `manage createsuperuser`, `manage transfer_database --to URL`.
# Anything else is run as given (e.g. `sh` for a debugging shell).
#
# Extra arguments after the command go to the program, e.g. `worker --concurrency 4`.
# The image's root filesystem may be read-only: everything written goes to LLMUR_VAR_DIR or /tmp.
set -eu

cd "${LLMUR_APP_DIR:-/app}"
export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-llmur.settings}"
log_level=$(printf '%s' "${LLMUR_LOG_LEVEL:-info}" | tr '[:upper:]' '[:lower:]')
case "$log_level" in
  trace) log_level=debug ;;
  warn) log_level=warning ;;
  fatal) log_level=critical ;;
esac

# Celery with no Redis configured would fall back to an in-memory broker and quietly do nothing;
# refuse instead, in one line. The same call reports a bad config file in one line (exit 2).
require_redis() {
  python - "$1" <<'PY'
import sys

from llmur.cli import run_guarded


def check(role):
    import django
    from django.conf import settings

    django.setup()
    if settings.LLMUR.cache.engine != "redis":
        print(f"llmur: `{role}` needs Redis as the Celery broker: set REDIS_URL or "
              "cache_configuration (engine: redis) in the config file", file=sys.stderr)
        raise SystemExit(2)


run_guarded(check, sys.argv[1])
PY
}

command=${1:-web}
[ $# -gt 0 ] && shift

case "$command" in
  web)
    if [ -n "${LLMUR_WORKERS:-}" ]; then
      set -- --workers "$LLMUR_WORKERS" "$@"
    fi
    exec python -m llmur.cli "$@"
    ;;
  worker)
    require_redis worker
    exec celery -A llmur.celery worker --loglevel "$log_level" --without-gossip --without-mingle "$@"
    ;;
  beat)
    require_redis beat
    # The schedule file is beat's only state; it lives beside the other writable data.
    schedule_dir=${LLMUR_VAR_DIR:-/tmp}
    mkdir -p "$schedule_dir"
    exec celery -A llmur.celery beat --loglevel "$log_level" --schedule "$schedule_dir/celerybeat-schedule" "$@"
    ;;
  migrate)
    # Under llmur's migration lock (startup.migration_lock), so web processes that start at the
    # same moment with auto_migrate on wait for it instead of racing it.
    exec python - "$@" <<'PY'
import sys

from llmur.cli import run_guarded


def migrate(*args):
    import django
    from django.core.management import call_command

    django.setup()
    from llmur import startup

    startup.check_database()
    with startup.migration_lock():
        call_command("migrate", *args, interactive=False)


run_guarded(migrate, *sys.argv[1:])
PY
    ;;
  manage)
    exec python manage.py "$@"
    ;;
  *)
    exec "$command" "$@"
    ;;
esac
