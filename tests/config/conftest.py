"""Fixtures of the config tests (a config file written from text, a clean environment) and
`config_error`, which holds every config error to its one-line form."""
from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from llmur.config import ConfigError, load_config


@pytest.fixture
def write(tmp_path: Path):
    def write(text: str, name: str = "config.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path
    return write


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A clean environment: nothing from the developer's shell leaks into the loader."""
    return {"LLMUR_VAR_DIR": str(tmp_path / "var")}


ERROR_LINE = re.compile(r"^llmur: config error in (?P<source>[^:]+): (?:(?P<key>[^ ]+): )?(?P<problem>.+)$")
SECRET = "hunter2-SECRET-9f8e7d"


def config_error(path, env) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_config(path, env=env)
    message = str(caught.value)
    assert "\n" not in message
    assert ERROR_LINE.match(message), message
    assert SECRET not in message
    return caught.value
