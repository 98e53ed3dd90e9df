"""`manage.py check_config [FILE]`: validate the configuration and print it with secrets masked."""
from __future__ import annotations

from typing import Any

import yaml
from django.conf import settings
from django.core.management.base import BaseCommand

from llmur.config import Settings, load_config, masked


def effective_config(loaded: Settings) -> dict[str, Any]:
    """The configuration as llmur will use it, every secret replaced by '***'."""
    db = loaded.database
    return {
        "source": loaded.source,
        "config": masked(loaded.config),
        "resolved": {
            "database": {
                "engine": db.engine, "name": db.name, "host": db.host, "port": db.port, "user": db.user,
                "password": "***" if db.password else "", "options": masked(db.options),
                "min_connections": db.min_connections, "max_connections": db.max_connections,
                "pool_timeout": db.pool_timeout, "conn_max_lifetime": db.conn_max_lifetime,
            },
            "cache": {"engine": loaded.cache.engine, "address": loaded.cache.address},
            "var_dir": str(loaded.var_dir),
            "application_secret": "***",
            "master_keys": ["***" for _ in loaded.master_keys],
        },
    }


class Command(BaseCommand):
    help = ("Validate the configuration (LLMUR_CONFIGURATION, or FILE) and print the effective "
            "configuration with every secret masked. A bad configuration exits 2 with one line.")
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("file", nargs="?", help="configuration file to check instead of the loaded one")

    def handle(self, *args: Any, file: str | None = None, **options: Any) -> None:
        # A ConfigError propagates to manage.py, which prints its one line and exits 2.
        loaded = load_config(file) if file else settings.LLMUR
        for warning in loaded.warnings:
            self.stderr.write(f"llmur: config warning in {loaded.source}: {warning}")
        self.stdout.write(yaml.safe_dump(effective_config(loaded), sort_keys=False, allow_unicode=True), ending="")
        self.stdout.write(f"# configuration OK: {loaded.source}")
