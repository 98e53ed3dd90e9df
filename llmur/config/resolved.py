"""What loading produces: the validated configuration plus the services it resolved to."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from llmur.config.schema import LlmurConfig

@dataclass
class ResolvedDatabase:
    """What settings.py needs to build DATABASES; secrets stay inside, never printed."""

    engine: str
    name: str
    host: str = ""
    port: int | None = None
    user: str = ""
    password: str = field(default="", repr=False)
    options: dict[str, Any] = field(default_factory=dict)
    min_connections: int = 2
    max_connections: int = 10
    pool_timeout: float = 30
    conn_max_lifetime: int = 0
    echo: bool = False
    replicas: list["ResolvedDatabase"] = field(default_factory=list)

    @property
    def address(self) -> str:
        return self.name if self.engine == "sqlite" else f"{self.host}:{self.port}"


@dataclass
class ResolvedCache:
    """url: the Redis URL; under Sentinel, redis://[user:password@]SERVICE_NAME/DB, the master's name and
    credentials (llmur/redis_clients.py asks the sentinels where it is)."""

    engine: str
    url: str = field(default="", repr=False)
    sentinels: list[tuple[str, int]] = field(default_factory=list)
    service_name: str = ""
    sentinel_username: str = ""
    sentinel_password: str = field(default="", repr=False)

    @property
    def address(self) -> str:
        if self.engine != "redis":
            return "local memory"
        if self.sentinels:
            return f"master {self.service_name} via sentinels " + ",".join(f"{h}:{p}" for h, p in self.sentinels)
        parts = urlsplit(self.url)
        return f"{parts.hostname}:{parts.port or 6379}"


@dataclass
class Settings:
    """The loaded configuration plus everything derived from it."""

    source: str
    config: LlmurConfig
    database: ResolvedDatabase
    cache: ResolvedCache
    application_secret: str = field(repr=False)
    master_keys: list[str] = field(repr=False)
    var_dir: Path
    warnings: list[str]
    embedded: bool
