from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing and spend"

    def ready(self) -> None:
        from billing import lifecycle
        from billing.metrics import SpendQueueCollector
        from llmur.core.collectors import register_collector

        # Start-up and shutdown hooks (price preload, flushing buffered spend) and the embedded
        # upkeep, registered before the ASGI lifespan starts.
        lifecycle.register()
        register_collector(SpendQueueCollector())
