"""llmur installed as a package: a wheel built from the repository, in a fresh virtualenv, run from anywhere.

The wheel is built and installed with uv (from its cache, as scripts/bootstrap installs), or with
pip where uv is missing. The server is started from an empty directory with a HOME of its own and
no LLMUR_VAR_DIR: its data must land in the per-user data directory, never in site-packages.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port, wait_for_http

UV = Path(sys.executable).parent / "uv"


def _run(args: list[str], **kwargs) -> None:
    result = subprocess.run(args, capture_output=True, text=True, timeout=600, **kwargs)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh virtualenv with only the wheel built from this checkout (and its dependencies)."""
    where = tmp_path_factory.mktemp("wheel")
    dist, venv, source = where / "dist", where / "venv", where / "source"
    # Built from a copy: setuptools keeps a build/ directory whose stale files would ship in the wheel.
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "var", "build", "dist", "*.egg-info", "__pycache__", "tests", "bench", "test-artifacts"))
    if UV.exists():
        _run([str(UV), "build", "--wheel", "-q", "--out-dir", str(dist), str(source)], cwd=where)
        _run([str(UV), "venv", "-q", "--python", sys.executable, str(venv)])
        wheel = next(dist.glob("llmur-*.whl"))
        _run([str(UV), "pip", "install", "-q", "--native-tls", "--python", str(venv / "bin" / "python"), str(wheel)])
    else:
        _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(source)], cwd=where)
        _run([sys.executable, "-m", "venv", str(venv)])
        _run([str(venv / "bin" / "pip"), "install", "-q", str(next(dist.glob("llmur-*.whl")))])
    return venv


def test_an_installed_wheel_serves_from_an_empty_directory_with_its_data_outside_site_packages(installed, tmp_path):
    empty, home = tmp_path / "empty", tmp_path / "home"
    empty.mkdir()
    home.mkdir()
    port = free_port()
    env = {"PATH": f"{installed / 'bin'}:/usr/bin:/bin", "HOME": str(home)}
    process = subprocess.Popen([str(installed / "bin" / "llmur-proxy"), "--host", "127.0.0.1", "--port", str(port)],
                               cwd=empty, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health/readiness", timeout=120, process=process)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/readiness", timeout=10) as response:
            assert json.loads(response.read())["status"] == "healthy"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    data = home / ".local" / "share" / "llmur"
    assert f"  data:     {data}" in output.splitlines(), output
    assert (data / "llmur.sqlite3").is_file() and (data / "application_secret").is_file()
    site_packages = next((installed / "lib").glob("python3*/site-packages"))
    assert (site_packages / "llmur" / "__init__.py").is_file()   # the wheel's code, not this checkout's
    assert not (site_packages / "var").exists()
    assert list(empty.iterdir()) == []
