"""The one error a bad configuration raises: already phrased as the line the user reads."""
from __future__ import annotations

from typing import Any


class ConfigError(Exception):
    """A configuration problem, already phrased as the one line the user will read."""

    exit_code = 2

    def __init__(self, source: str, key: str, problem: str):
        self.source, self.key, self.problem = source, key, problem
        where = f"{key}: " if key else ""
        super().__init__(f"llmur: config error in {source}: {where}{problem}")


def join_key(path: str, key: Any) -> str:
    """The dotted key a user reads: join_key("database_configuration", "url") -> database_configuration.url."""
    return f"{path}.{key}" if path else str(key)
