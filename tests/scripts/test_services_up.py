"""scripts/services-up decides, for each test service, to do nothing, start it, apt-get install it,
or say what to install. Each decision is driven here for real: service URLs on ports where a test
socket listens (up) or nothing does (down), a PATH holding only basic tools (no PostgreSQL, MariaDB
or Redis binaries), and the script run as root or as nobody. --dry-run shows the root path's
install without installing anything."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile

import pytest
import yaml

from tests.conftest import ROOT, free_port

SCRIPT = ROOT / "scripts" / "services-up"
BASIC_TOOLS = ("bash", "dirname", "id", "seq", "sleep", "ls", "sort", "tail", "grep")
SERVICES = ("pg", "mysql", "redis")
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="the install path is root's")


@pytest.fixture
def listening():
    """Sockets that accept connections, standing for services that are up."""
    sockets: list[socket.socket] = []

    def open_port() -> int:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        sockets.append(sock)
        return sock.getsockname()[1]

    yield open_port
    for sock in sockets:
        sock.close()


@pytest.fixture
def bare_path():
    """Make a PATH directory with only the basic tools the script needs (plus extra ones), readable by nobody."""
    made: list[str] = []

    def make(*extra: str) -> str:
        directory = tempfile.mkdtemp(prefix="llmur-bare-path-")
        made.append(directory)
        os.chmod(directory, 0o755)
        for tool in BASIC_TOOLS + extra:
            found = shutil.which(tool)
            if found is None:
                pytest.skip(f"{tool} is not installed")
            os.symlink(found, os.path.join(directory, tool))
        return directory

    yield make
    for directory in made:
        shutil.rmtree(directory)


def services_up(*args: str, ports: dict[str, int], path: str, as_nobody: bool = False) -> subprocess.CompletedProcess:
    env = {"PATH": path, "HOME": "/tmp",
           "LLMUR_TEST_PG_URL": f"postgresql://postgres@127.0.0.1:{ports['pg']}/llmur",
           "LLMUR_TEST_MYSQL_URL": f"mysql://root@127.0.0.1:{ports['mysql']}/llmur",
           "LLMUR_TEST_REDIS_URL": f"redis://127.0.0.1:{ports['redis']}/9"}
    command = [str(SCRIPT), *args]
    if as_nobody and os.geteuid() == 0:
        command = [shutil.which("setpriv"), "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_nothing_is_done_or_said_when_every_service_answers(bare_path, listening):
    result = services_up(ports={s: listening() for s in SERVICES}, path=bare_path())
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_without_root_each_missing_service_gets_one_line_naming_its_package_and_the_docker_alternative(
        bare_path, listening):
    mysql, redis = free_port(), free_port()
    result = services_up(ports={"pg": listening(), "mysql": mysql, "redis": redis}, path=bare_path(),
                         as_nobody=True)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [
        (f"llmur: MariaDB is not reachable on 127.0.0.1:{mysql}: install mariadb-server and start it (as root on "
         "Debian/Ubuntu, scripts/services-up does both), or run it in Docker: "
         "docker compose -f docker/compose.test.yaml up -d mariadb"),
        (f"llmur: Redis is not reachable on 127.0.0.1:{redis}: install redis-server and start it (as root on "
         "Debian/Ubuntu, scripts/services-up does both), or run it in Docker: "
         "docker compose -f docker/compose.test.yaml up -d redis"),
    ]


def test_without_root_an_installed_postgresql_is_not_started_but_named(bare_path):
    if shutil.which("pg_ctlcluster") is None:
        pytest.skip("PostgreSQL (Debian's packaging) is not installed here")
    ports = {s: free_port() for s in SERVICES}
    result = services_up("--dry-run", ports=ports, path=f"{bare_path()}:/usr/bin", as_nobody=True)
    assert "pg_ctlcluster" not in result.stdout
    assert f"llmur: PostgreSQL is not reachable on 127.0.0.1:{ports['pg']}: install postgresql" in result.stderr


@as_root
def test_as_root_on_debian_what_is_missing_is_installed_in_one_apt_get_and_set_up_for_tests_only(bare_path):
    ports = {s: free_port() for s in SERVICES}
    result = services_up("--dry-run", ports=ports, path=bare_path("apt-get"))
    lines = result.stdout.splitlines()
    assert result.returncode == 0 and result.stderr == ""
    assert lines[:2] == [("llmur: installing postgresql mariadb-server redis-server for the tests (apt-get), "
                          "with test-only settings"),
                         "llmur: would run: apt-get install -y postgresql mariadb-server redis-server"]
    pg_hba = next(line for line in lines if "pg_hba.conf" in line)
    assert "\\nhost all all 127.0.0.1/32 trust\\n" in pg_hba                # postgres without a password
    assert any("IDENTIFIED BY ''" in line and "root@'127.0.0.1'" in line for line in lines)   # MariaDB root
    assert (f"llmur: would run: redis-server --daemonize yes --bind 127.0.0.1 --port {ports['redis']} "
            "--save \"\" --appendonly no") in lines                           # Redis keeps nothing on disk
    for name, service in (("PostgreSQL", "pg"), ("MariaDB", "mysql"), ("Redis", "redis")):
        assert f"llmur: would wait for {name} on 127.0.0.1:{ports[service]}" in lines


@as_root
def test_as_root_without_apt_get_each_missing_service_gets_its_line(bare_path):
    ports = {s: free_port() for s in SERVICES}
    result = services_up(ports=ports, path=bare_path())
    assert result.returncode == 1 and result.stdout == ""
    assert [line.split(":")[1].strip() for line in result.stderr.splitlines()] == [
        "PostgreSQL is not reachable on 127.0.0.1", "MariaDB is not reachable on 127.0.0.1",
        "Redis is not reachable on 127.0.0.1"]


def test_an_unknown_argument_is_refused_in_one_line(bare_path):
    result = services_up("--install", ports={s: free_port() for s in SERVICES}, path=bare_path())
    assert (result.returncode, result.stderr) == (2, "llmur: services-up takes no argument but --dry-run (got --install)\n")


def test_the_docker_alternative_offers_the_three_services_with_the_settings_the_tests_expect():
    compose = yaml.safe_load((ROOT / "docker" / "compose.test.yaml").read_text())["services"]
    assert set(compose) == {"postgres", "mariadb", "redis"}
    assert compose["postgres"]["environment"]["POSTGRES_HOST_AUTH_METHOD"] == "trust"
    assert compose["mariadb"]["environment"]["MARIADB_ALLOW_EMPTY_ROOT_PASSWORD"] == "1"
    assert compose["redis"]["command"] == ["redis-server", "--save", "", "--appendonly", "no"]
    assert [compose[s]["ports"] for s in ("postgres", "mariadb", "redis")] == [
        ["127.0.0.1:5432:5432"], ["127.0.0.1:3306:3306"], ["127.0.0.1:6379:6379"]]


def test_an_installed_redis_that_is_not_running_is_started_without_persistence(listening):
    import redis

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    ports = {"pg": listening(), "mysql": listening(), "redis": free_port()}
    result = services_up(ports=ports, path=os.environ["PATH"])
    client = redis.Redis(port=ports["redis"])
    try:
        assert (result.returncode, result.stderr) == (0, "")
        assert client.ping()
        assert client.config_get("save") == {"save": ""} and client.config_get("appendonly") == {"appendonly": "no"}
    finally:
        try:
            client.shutdown(nosave=True)
        except redis.ConnectionError:
            pass                                   # SHUTDOWN closes the connection, or nothing was started
