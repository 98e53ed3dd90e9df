"""log_format and log_level reach Python's logging."""
from __future__ import annotations

import json
import sys

from tests.cli.conftest import run
from tests.conftest import ROOT

CODE = ("import django, logging; django.setup(); log = logging.getLogger('llmur.test'); "
        "log.debug('hidden at info'); log.warning('disk %s', 'full')")


def test_json_log_format_writes_one_object_per_line(tmp_path, clean_env):
    config = tmp_path / "c.yaml"
    config.write_text("log_format: json\nlog_level: info\n")
    env = clean_env | {"LLMUR_CONFIGURATION": str(config), "DJANGO_SETTINGS_MODULE": "llmur.settings"}
    result = run([sys.executable, "-c", CODE], env, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    entry = json.loads(lines[0])
    assert (entry["level"], entry["logger"], entry["message"]) == ("WARNING", "llmur.test", "disk full")
    assert entry["time"].endswith("+00:00")


def test_trace_level_shows_debug_records_as_text(tmp_path, clean_env):
    env = clean_env | {"LLMUR_LOG_LEVEL": "trace", "DJANGO_SETTINGS_MODULE": "llmur.settings"}
    result = run([sys.executable, "-c", CODE], env, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    messages = [line.split(" llmur.test ", 1)[1] for line in result.stderr.splitlines() if " llmur.test " in line]
    assert messages == ["hidden at info", "disk full"]
