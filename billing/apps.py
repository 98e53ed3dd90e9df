from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing and spend"

    def ready(self) -> None:
        # The request path imports gateway.limits lazily (with the URLconf, at the first request),
        # after the ASGI lifespan has started; importing it here registers its start-up and
        # shutdown hooks (price preload, flushing buffered spend at shutdown) and its readiness
        # check in time.
        import gateway.limits  # noqa: F401
        from billing.metrics import SpendQueueCollector
        from llmur.core.collectors import register_collector

        register_collector(SpendQueueCollector())
