"""The Celery application: workers drain the spend queue, beat rolls up and resets budgets.

Start them as `celery -A llmur.celery worker` and `celery -A llmur.celery beat`. (`celery -A llmur`
finds this module too: Celery looks for a `celery` submodule of a package that has no app.)
"""
import os
import sys

from celery import Celery
from django.utils.functional import cached_property

from llmur.config import ConfigError

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmur.settings")

NO_BROKER = ("llmur: celery {program} needs a broker, and none is configured: without Redis (cache_configuration "
             "or REDIS_URL) llmur-proxy runs its tasks in-process (the embedded task runner) and no worker or "
             "beat is needed; configure Redis to run them separately")


class LlmurCelery(Celery):
    """Celery whose worker and beat refuse to start without a real broker (never idle on memory://)."""

    @cached_property
    def Worker(self):  # noqa: N802 - Celery's name
        self._broker_or_exit("worker")
        return super().Worker

    @cached_property
    def Beat(self):  # noqa: N802 - Celery's name
        self._broker_or_exit("beat")
        return super().Beat

    def _broker_or_exit(self, program: str) -> None:
        if str(self.conf.broker_url or "").startswith("memory://"):
            print(NO_BROKER.format(program=program), file=sys.stderr, flush=True)
            raise SystemExit(2)


app = LlmurCelery("llmur")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_configure.connect
def _settings_or_exit(sender: Celery, **kwargs: object) -> None:
    """Load the settings before Celery reads them, so a bad config is one line and exit 2.

    Celery reads Django's settings lazily deep inside its own start-up, where a ConfigError
    would surface as a traceback; `celery -A llmur.celery worker` must fail like `llmur-proxy` does.
    """
    from django.conf import settings

    try:
        settings.LLMUR
    except ConfigError as exc:
        print(str(exc), file=sys.stderr, flush=True)
        raise SystemExit(exc.exit_code) from None
