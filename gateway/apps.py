from django.apps import AppConfig


class GatewayConfig(AppConfig):
    name = "gateway"
    verbose_name = "Gateway and models"

    def ready(self) -> None:
        # Importing admission registers its start-up and shutdown hooks (Lua scripts, the spend
        # stream's consumer group, closing its Redis connections) and its readiness check before
        # the ASGI lifespan starts; the request path itself imports it only with the URLconf.
        import gateway.admission  # noqa: F401
        from gateway import signals
        from gateway.memory import close as memory_close
        from gateway.metrics import CooldownCollector
        from llmur.core.collectors import register_collector

        signals.connect()
        memory_close.register()   # embedded: idle sessions summarized by the spend writer's loop
        register_collector(CooldownCollector())
