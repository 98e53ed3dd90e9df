from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class LlmurConfig(AppConfig):
    """The project package as an app: its management commands and process-wide signal receivers."""

    name = "llmur"
    verbose_name = "llmur"
    default = True   # this module also holds the admin's AppConfig

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        # The Celery app, so the apps' @shared_task calls are sent through its broker (or run eagerly
        # in the embedded mode) from every process, not only from workers started with -A llmur.celery.
        import llmur.celery  # noqa: F401
        from llmur.core.db import watch

        connection_created.connect(watch.connected, dispatch_uid="llmur.core.db.watch")


class LlmurAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin with llmur's site as the default one (llmur/admin_site.py)."""

    default = False
    default_site = "llmur.admin_site.LlmurAdminSite"

    def ready(self) -> None:
        super().ready()   # autodiscovers every app's admin module onto the site
        from django.contrib import admin
        from django.contrib.auth.models import Group

        from gateway.admin_catalog import catalog_for_admin
        from llmur.core.catalog import catalog_provide

        # Django's groups and permissions play no part: who may do what is accounts.policy.
        if admin.site.is_registered(Group):
            admin.site.unregister(Group)
        catalog_provide(**catalog_for_admin())
