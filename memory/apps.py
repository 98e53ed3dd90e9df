from django.apps import AppConfig


class MemoryConfig(AppConfig):
    name = "memory"
    verbose_name = "Cross-session memory"

    def ready(self) -> None:
        from billing.events import recorders
        from memory.services import turns_record

        # Session turns ride on spend events (one batch, one transaction): no write of their own.
        if turns_record not in recorders:
            recorders.append(turns_record)
