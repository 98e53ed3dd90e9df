"""The Celery application: workers drain the spend queue, beat rolls up and resets budgets."""
import os
import sys

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmur.settings")

app = Celery("llmur")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_configure.connect
def _settings_or_exit(sender: Celery, **kwargs: object) -> None:
    """Load the settings before Celery reads them, so a bad config is one line and exit 2.

    Celery reads Django's settings lazily deep inside its own start-up, where a ConfigError
    would surface as a traceback; `celery -A llmur worker` must fail like `llmur-proxy` does.
    """
    from django.conf import settings

    from llmur.config import ConfigError

    try:
        settings.LLMUR
    except ConfigError as exc:
        print(str(exc), file=sys.stderr, flush=True)
        raise SystemExit(exc.exit_code) from None
