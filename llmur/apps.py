from django.apps import AppConfig


class LlmurConfig(AppConfig):
    """The project package as an app: its management commands and process-wide signal receivers."""

    name = "llmur"
    verbose_name = "llmur"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from llmur.core.db import watch

        connection_created.connect(watch.connected, dispatch_uid="llmur.core.db.watch")
