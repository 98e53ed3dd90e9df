"""docker/: the Dockerfile's shape, the compose file, and the entry script run outside a container.

No docker engine runs here, so the image itself is not built; the entry script is run exactly as
the image runs it (same commands, same environment variables) against the real local PostgreSQL
and Redis, and the Dockerfile and compose file are checked for the properties operators rely on.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tomllib
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, free_port, wait_for_http
from tests.deploy.scratch import query, scratch_database

DOCKER = ROOT / "docker"
ENTRYPOINT = DOCKER / "entrypoint.sh"


# --------------------------------------------------------------------------- Dockerfile

def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    text = (DOCKER / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)
    result = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        result.append((word.upper(), rest.strip()))
    return result


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction in _instructions():
        if instruction[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def test_dockerfile_is_multi_stage_on_a_slim_python_base():
    stages = _stages()
    assert len(stages) >= 2
    for stage in stages:
        image = stage[0][1].split()[0]
        assert image.startswith("python:") and "slim" in image, image
    final = stages[-1]
    assert any(word == "COPY" and args.startswith("--from=") for word, args in final), "runtime copies the build"


def test_dockerfile_final_stage_runs_as_a_non_root_user():
    users = [args for word, args in _stages()[-1] if word == "USER"]
    assert users, "the runtime stage sets USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")


def test_dockerfile_installs_dependencies_from_requirements_txt_only():
    installs = [args for word, args in _instructions() if word == "RUN" and "pip install" in args]
    assert installs
    for command in installs:
        for part in command.split("&&"):
            if "pip install" not in part:
                continue
            words = shlex.split(part)
            after = words[words.index("install") + 1:]
            assert after[0] == "-r" and after[1].endswith("requirements.txt") and len(after) == 2, part
    copies = [args for word, args in _instructions() if word == "COPY"]
    assert any(args.split()[0] == "requirements.txt" for args in copies)


def test_dockerfile_copies_every_package_the_project_ships():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = [p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]]
    copied = {args.split()[0].rstrip("/") for word, args in _stages()[-1] if word == "COPY"}
    assert set(packages) <= copied, set(packages) - copied
    assert "manage.py" in " ".join(args for word, args in _stages()[-1] if word == "COPY")


def test_dockerfile_build_stage_has_mysqlclient_headers_and_runtime_only_the_library():
    build, runtime = _stages()[0], _stages()[-1]
    build_runs = " ".join(args for word, args in build if word == "RUN")
    runtime_runs = " ".join(args for word, args in runtime if word == "RUN")
    assert "libmariadb-dev" in build_runs and "gcc" in build_runs
    assert "libmariadb3" in runtime_runs
    assert "libmariadb-dev" not in runtime_runs and "gcc" not in runtime_runs


def test_dockerfile_entrypoint_is_the_entry_script_and_var_is_writable():
    instructions = _instructions()
    entrypoint = [args for word, args in instructions if word == "ENTRYPOINT"][-1]
    target = json.loads(entrypoint)[0]
    assert any(word == "COPY" and "docker/entrypoint.sh" in args and args.endswith(target)
               for word, args in instructions)
    env = " ".join(args for word, args in instructions if word == "ENV")
    assert "LLMUR_VAR_DIR=/app/var" in env and "PYTHONDONTWRITEBYTECODE=1" in env
    assert os.access(ENTRYPOINT, os.X_OK)


# --------------------------------------------------------------------------- compose

def test_compose_runs_web_worker_beat_on_postgres_and_redis_with_healthchecks():
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    assert {"web", "worker", "beat", "postgres", "redis", "migrate"} <= set(services)
    for name in ("web", "worker", "beat", "postgres", "redis"):
        assert services[name]["healthcheck"]["test"], name
    redis_command = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis_command
    for name in ("web", "worker", "beat", "migrate"):
        service = services[name]
        assert service["command"][0] == name
        assert service["read_only"] is True and "/tmp" in service["tmpfs"]
        assert any(v.endswith(":/etc/llmur/config.yaml:ro") for v in service["volumes"])
        assert service["environment"]["LLMUR_CONFIGURATION"] == "/etc/llmur/config.yaml"
        assert service["environment"]["DATABASE_URL"].startswith("postgresql://")
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_example_config_loads_with_the_environment_compose_provides(tmp_path):
    from llmur.config import load_config

    env = {"LLMUR_VAR_DIR": str(tmp_path), "LLMUR_APPLICATION_SECRET": "x" * 32, "LLMUR_MASTER_KEY": "sk-test",
           "DATABASE_URL": "postgresql://llmur:pw@postgres:5432/llmur", "REDIS_URL": "redis://redis:6379/0"}
    settings = load_config(DOCKER / "config.example.yaml", env=env)
    assert settings.warnings == []
    assert (settings.database.engine, settings.database.host) == ("postgres", "postgres")
    assert settings.cache.engine == "redis"
    assert settings.master_keys == ["sk-test"]


# --------------------------------------------------------------------------- the entry script

def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LLMUR_", "DATABASE_", "REDIS_", "LITELLM_", "DJANGO_"))}
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
               LLMUR_APP_DIR=str(ROOT), LLMUR_VAR_DIR=str(tmp_path / "var"), PYTHONDONTWRITEBYTECODE="1")
    env.update(extra)
    return env


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(["sh", str(ENTRYPOINT), *args], env=env, cwd="/", text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _wait_for_line(process: subprocess.Popen, pattern: str, timeout: float = 60) -> list[str]:
    """Read the process's output until a line matches; fail with the output if it exits first."""
    import selectors
    import time

    seen: list[str] = []
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not selector.select(timeout=0.5):
            continue
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if re.search(pattern, line):
            return seen
    process.kill()
    raise AssertionError(f"no line matching {pattern!r}; output:\n{''.join(seen)}")


def _stop(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()


@pytest.fixture(scope="module")
def postgres_url():
    with scratch_database("postgres", "deploy") as url:
        yield url


def test_entrypoint_migrate_applies_every_migration_and_exits_0(tmp_path, postgres_url):
    result = subprocess.run(["sh", str(ENTRYPOINT), "migrate"], env=_env(tmp_path, DATABASE_URL=postgres_url),
                            cwd="/", capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    applied = {app for (app,) in query(postgres_url, "SELECT DISTINCT app FROM django_migrations")}
    assert {"accounts", "billing", "gateway", "auth", "contenttypes", "sessions"} <= applied
    # Nothing is left to apply.
    again = subprocess.run(["sh", str(ENTRYPOINT), "migrate"], env=_env(tmp_path, DATABASE_URL=postgres_url),
                           cwd="/", capture_output=True, text=True, timeout=180)
    assert again.returncode == 0 and "No migrations to apply" in again.stdout


@pytest.mark.parametrize("workers", ["", "2"], ids=["uvicorn", "gunicorn-2-workers"])
def test_entrypoint_web_serves_health_probes_and_stops_on_sigterm(tmp_path, postgres_url, redis_url, workers):
    port = free_port()
    env = _env(tmp_path, DATABASE_URL=postgres_url, REDIS_URL=redis_url, LLMUR_HOST="127.0.0.1",
               LLMUR_PORT=str(port), LLMUR_WORKERS=workers)
    process = _start(["web"], env)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health/liveliness", timeout=90, process=process)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/liveliness", timeout=5) as response:
            assert response.status == 200 and json.load(response) == {"status": "alive"}
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/readiness", timeout=5) as response:
            body = json.load(response)
            assert response.status == 200 and body["status"] == "healthy", body
    finally:
        code = _stop(process)
    output = process.stdout.read()
    # uvicorn re-raises the signal once it has shut down gracefully, so -SIGTERM is a clean stop.
    assert code in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output
    assert ("(2 workers)" in output) == (workers == "2")


def test_entrypoint_worker_connects_to_redis_and_reports_ready(tmp_path, postgres_url, redis_url):
    # A queue of its own, so this worker never takes another test's tasks from the shared Redis.
    env = _env(tmp_path, DATABASE_URL=postgres_url, REDIS_URL=redis_url)
    process = _start(["worker", "--concurrency", "1", "--queues", f"llmur-deploy-test-{os.getpid()}"], env)
    try:
        _wait_for_line(process, r"celery@\S+ ready\.")
    finally:
        code = _stop(process)
    assert code == 0


def test_entrypoint_beat_starts_and_keeps_its_schedule_in_the_var_dir(tmp_path, postgres_url, redis_url):
    # At debug level beat logs each pass of its loop: the first one means the scheduler is set up.
    env = _env(tmp_path, DATABASE_URL=postgres_url, REDIS_URL=redis_url, LLMUR_LOG_LEVEL="debug")
    process = _start(["beat"], env)
    try:
        _wait_for_line(process, r"beat: Waking up")
    finally:
        code = _stop(process)
    assert code == 0
    assert list((tmp_path / "var").glob("celerybeat-schedule*"))


@pytest.mark.parametrize("role", ["worker", "beat"])
def test_entrypoint_celery_roles_refuse_to_run_without_redis(tmp_path, role):
    result = subprocess.run(["sh", str(ENTRYPOINT), role], env=_env(tmp_path), cwd="/",
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"llmur: `{role}` needs Redis as the Celery broker: set REDIS_URL or "
                                     "cache_configuration (engine: redis) in the config file")


def test_entrypoint_web_reports_a_bad_config_file_in_one_line(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("port: eighty\n")
    result = subprocess.run(["sh", str(ENTRYPOINT), "web"], env=_env(tmp_path, LLMUR_CONFIGURATION=str(config)),
                            cwd="/", capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"llmur: config error in {config}: port: "), lines
    assert "Traceback" not in result.stdout + result.stderr


def test_entrypoint_migrate_reports_an_unreachable_database_in_one_line(tmp_path):
    port = free_port()
    result = subprocess.run(["sh", str(ENTRYPOINT), "migrate"],
                            env=_env(tmp_path, DATABASE_URL=f"postgresql://postgres:s3cret@127.0.0.1:{port}/llmur"),
                            cwd="/", capture_output=True, text=True, timeout=60)
    assert result.returncode == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"llmur: database postgres at 127.0.0.1:{port} is unreachable")
    assert "s3cret" not in result.stderr


def test_entrypoint_runs_any_other_command_as_given(tmp_path):
    result = subprocess.run(["sh", str(ENTRYPOINT), "python", "-c", "import os; print(os.getcwd())"],
                            env=_env(tmp_path), cwd="/", capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == str(ROOT)
