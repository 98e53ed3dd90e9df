from django.apps import AppConfig


class GatewayConfig(AppConfig):
    name = "gateway"
    verbose_name = "Gateway and models"

    def ready(self) -> None:
        from gateway import signals
        from gateway.metrics import CooldownCollector
        from llmur.core.collectors import register_collector

        signals.connect()
        register_collector(CooldownCollector())
