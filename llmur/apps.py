from django.apps import AppConfig


class LlmurConfig(AppConfig):
    """The project package as an app: its management commands and process-wide signal receivers."""

    name = "llmur"
    verbose_name = "llmur"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        # The Celery app, so the apps' @shared_task calls are sent through its broker (or run eagerly
        # in the embedded mode) from every process, not only from workers started with -A llmur.celery.
        import llmur.celery  # noqa: F401
        from llmur.core.db import watch

        connection_created.connect(watch.connected, dispatch_uid="llmur.core.db.watch")
