from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and keys"

    def ready(self) -> None:
        from accounts.metrics import BudgetCollector
        from llmur.core.collectors import register_collector

        register_collector(BudgetCollector())
