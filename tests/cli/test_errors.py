"""Bad configuration and unreachable services, as a user meets them through each command.

Every case: the documented exit status, exactly one line on stderr, nothing on stdout, no
traceback, and never the secret value planted in the configuration.
"""
from __future__ import annotations

import re
import sys
import textwrap

import pytest

from tests.cli.conftest import BIN, LLMUR_PROXY, run
from tests.conftest import ROOT, free_port

SECRET = "hunter2-SECRET-4c1d"
CONFIG_ERROR = re.compile(r"^llmur: config error in (?P<source>.+?): (?P<key>\S+): (?P<problem>.+)$")


def assert_one_line(result, status: int) -> str:
    everything = result.stdout + result.stderr
    assert result.returncode == status, everything
    assert "Traceback" not in everything
    assert SECRET not in everything
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def proxy_on_a_free_port(*args: str) -> list[str]:
    """llmur-proxy on a port nobody uses: it checks the port before the services, and 8082 may be serving."""
    return [LLMUR_PROXY, "--host", "127.0.0.1", "--port", str(free_port()), *args]


BAD_CONFIGS = {
    "yaml syntax": (f"master_keys: [{SECRET}\nport: 1\n", "", "YAML syntax error"),
    "unknown engine": (f"database_configuration:\n  engine: oracle\n  password: {SECRET}\n",
                       "database_configuration.engine", "unknown engine (expected one of sqlite, postgres or mysql)"),
    "wrong type": (f"master_keys: [{SECRET}]\nport: eighty\n", "port", "not an integer"),
    "port out of range": (f"master_keys: [{SECRET}]\nport: 70000\n", "port", "out of range (expected 1..65535)"),
    "missing required key": (f"model_list:\n  - model_name: gpt-4o\n    api_key: {SECRET}\n",
                             "model_list[0].litellm_params", "required key is missing"),
    "unset variable": ("database_configuration:\n  password: ${LLMUR_TEST_UNSET_VARIABLE}\n",
                       "database_configuration.password", "LLMUR_TEST_UNSET_VARIABLE is not set"),
    "secret in a bad url": (f"database_configuration:\n  url: postgresql://u:{SECRET}@h:0x1/db\n",
                            "database_configuration.url", "bad port"),
}


@pytest.mark.parametrize("case", BAD_CONFIGS)
def test_llmur_proxy_bad_config_exits_2_with_one_line(case, tmp_path, clean_env):
    text, key, problem = BAD_CONFIGS[case]
    path = tmp_path / "config.yaml"
    path.write_text(text)
    line = assert_one_line(run([LLMUR_PROXY, "--configuration", str(path)], clean_env), 2)
    if key:
        match = CONFIG_ERROR.match(line)
        assert match, line
        assert (match["source"], match["key"]) == (str(path), key)
        assert problem in match["problem"] and "expected" in match["problem"]
    else:
        assert line.startswith(f"llmur: config error in {path}: {problem}")


def test_missing_file_through_short_flag(tmp_path, clean_env):
    line = assert_one_line(run([LLMUR_PROXY, "-c", str(tmp_path / "absent.yaml")], clean_env), 2)
    assert line == f"llmur: config error in {tmp_path / 'absent.yaml'}: file not found (expected a readable YAML file)"


def test_llmur_configuration_variable_is_read(tmp_path, clean_env):
    path = tmp_path / "c.yaml"
    path.write_text("port: 0\n")
    line = assert_one_line(run([LLMUR_PROXY], clean_env | {"LLMUR_CONFIGURATION": str(path)}), 2)
    assert line.startswith(f"llmur: config error in {path}: port: out of range")


@pytest.mark.parametrize("args, key", [
    (["--port", "eighty"], "--port"),
    (["--port", "70000"], "--port"),
    (["--workers", "0"], "--workers"),
    (["--no-such-flag"], "--no-such-flag"),
    (["--database-url", f"oracle://u:{SECRET}@h/db"], "--database-url"),
])
def test_bad_command_line_exits_2_with_one_line(args, key, clean_env):
    line = assert_one_line(run([LLMUR_PROXY, *args], clean_env), 2)
    assert line.startswith(f"llmur: config error in command line: {key}: "), line


def test_bad_environment_value_names_the_variable(clean_env):
    line = assert_one_line(run([LLMUR_PROXY], clean_env | {"LLMUR_PORT": "99999"}), 2)
    assert line == "llmur: config error in environment: LLMUR_PORT: out of range (expected 1..65535)"


def _bad_config(tmp_path) -> str:
    path = tmp_path / "bad.yaml"
    path.write_text(f"master_keys: [{SECRET}]\nport: 70000\n")
    return str(path)


def test_manage_py_bad_config_exits_2_with_one_line(tmp_path, clean_env):
    env = clean_env | {"LLMUR_CONFIGURATION": _bad_config(tmp_path)}
    line = assert_one_line(run([sys.executable, str(ROOT / "manage.py"), "migrate"], env), 2)
    assert CONFIG_ERROR.match(line)["key"] == "port"


@pytest.mark.parametrize("subcommand", [["worker"], ["beat"]])
def test_celery_bad_config_exits_2_with_one_line(subcommand, tmp_path, clean_env):
    env = clean_env | {"LLMUR_CONFIGURATION": _bad_config(tmp_path)}
    line = assert_one_line(run([str(BIN / "celery"), "-A", "llmur.celery", *subcommand], env, timeout=60), 2)
    assert CONFIG_ERROR.match(line)["key"] == "port"


def test_celery_dash_a_llmur_still_finds_the_app(tmp_path, clean_env):
    """Deployments written for `celery -A llmur` keep working: Celery finds the llmur.celery submodule."""
    env = clean_env | {"LLMUR_CONFIGURATION": _bad_config(tmp_path)}
    line = assert_one_line(run([str(BIN / "celery"), "-A", "llmur", "worker"], env, timeout=60), 2)
    assert CONFIG_ERROR.match(line)["key"] == "port"


@pytest.mark.parametrize("subcommand", ["worker", "beat"])
def test_celery_without_a_broker_exits_2_pointing_at_the_embedded_runner(subcommand, clean_env):
    """No Redis configured: never a worker idling on mem://, one line naming why and what runs the tasks."""
    line = assert_one_line(run([str(BIN / "celery"), "-A", "llmur.celery", subcommand], clean_env, timeout=60), 2)
    assert line.startswith(f"llmur: celery {subcommand} needs a broker, and none is configured")
    assert "embedded task runner" in line and "REDIS_URL" in line


# --------------------------------------------------------------------------- unreachable services

@pytest.mark.parametrize("url", [
    "postgresql://postgres:{secret}@127.0.0.1:{port}/llmur",
    "mysql://root:{secret}@127.0.0.1:{port}/llmur",
])
def test_unreachable_database_exits_3_naming_host_and_port(url, clean_env):
    port = free_port()  # nothing listens there
    env = clean_env | {"DATABASE_URL": url.format(secret=SECRET, port=port)}
    line = assert_one_line(run(proxy_on_a_free_port(), env), 3)
    assert f"127.0.0.1:{port} is unreachable: " in line
    assert re.search(r"refused|can't connect|115|111", line, re.I), line


def test_unreachable_cache_exits_3_naming_host_and_port(clean_env):
    port = free_port()
    env = clean_env | {"REDIS_URL": f"redis://:{SECRET}@127.0.0.1:{port}/4"}
    line = assert_one_line(run(proxy_on_a_free_port(), env), 3)
    assert line.startswith(f"llmur: cache redis at 127.0.0.1:{port} is unreachable: ")
    assert "refused" in line.lower()


def test_required_tls_reaches_psycopg(clean_env):
    """The test PostgreSQL has no TLS, so sslmode=require must make the start fail, not fall back."""
    env = clean_env | {"DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/postgres?sslmode=require"}
    line = assert_one_line(run(proxy_on_a_free_port("--no-migrate"), env), 3)
    assert "127.0.0.1:5432 is unreachable" in line and "SSL" in line


@pytest.mark.parametrize("query", ["ssl_mode=require", "ssl_mode=verify-ca"])
def test_required_tls_reaches_mysqlclient(query, clean_env):
    env = clean_env | {"DATABASE_URL": f"mysql://root@127.0.0.1:3306/mysql?{query}"}
    line = assert_one_line(run(proxy_on_a_free_port("--no-migrate"), env), 3)
    assert "127.0.0.1:3306 is unreachable" in line and re.search("TLS|SSL", line)


def test_unmigrated_database_without_auto_migrate_is_one_line(tmp_path, clean_env):
    env = clean_env | {"DATABASE_URL": f"sqlite:///{tmp_path}/empty.sqlite3", "DATABASE_AUTO_MIGRATE": "false"}
    line = assert_one_line(run(proxy_on_a_free_port(), env), 3)
    assert "is not ready" in line and "manage.py migrate" in line


# --------------------------------------------------------------------------- check_config

def test_check_config_prints_effective_config_with_every_secret_masked(tmp_path, clean_env):
    secrets = {name: f"{name}-{SECRET}" for name in ("app", "master", "dbpw", "redispw", "provider", "general",
                                                     "header", "urlpw")}
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(f"""
        application_secret: ${{APP_SECRET}}
        master_keys: [os.environ/MASTER]
        database_configuration:
          engine: postgres
          host: 127.0.0.1
          database: llmur
          username: postgres
          password: {secrets['dbpw']}
        cache_configuration:
          url: redis://default:{secrets['redispw']}@127.0.0.1:6379/4
        model_list:
          - model_name: gpt-4o
            litellm_params:
              model: openai/gpt-4o
              api_key: {secrets['provider']}
              extra_headers: {{Authorization: "Bearer {secrets['header']}"}}
        general_settings:
          master_key: {secrets['general']}
          database_url: postgresql://postgres:{secrets['urlpw']}@127.0.0.1/other
          alerting: [slack]
    """))
    env = clean_env | {"APP_SECRET": secrets["app"], "MASTER": secrets["master"]}
    result = run([sys.executable, str(ROOT / "manage.py"), "check_config", str(path)], env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for value in secrets.values():
        assert value not in output
    assert SECRET not in output
    assert "engine: postgres" in result.stdout and "model_name: gpt-4o" in result.stdout
    assert "url: redis://default:***@127.0.0.1:6379/4" in result.stdout
    assert "database_url: postgresql://postgres:***@127.0.0.1/other" in result.stdout
    assert result.stdout.rstrip().endswith(f"# configuration OK: {path}")
    assert result.stderr.splitlines() == [
        f"llmur: config warning in {path}: general_settings.alerting: not supported by llmur yet, ignored"]


def test_check_config_on_bad_file_exits_2(tmp_path, clean_env):
    line = assert_one_line(run([sys.executable, str(ROOT / "manage.py"), "check_config", _bad_config(tmp_path)],
                               clean_env), 2)
    assert CONFIG_ERROR.match(line)["key"] == "port"


@pytest.mark.parametrize("url", [
    "postgresql://postgres:{secret}@127.0.0.1:{port}/llmur",
    "mysql://root:{secret}@127.0.0.1:{port}/llmur",
])
def test_manage_py_unreachable_database_exits_3_with_one_line(url, clean_env):
    """The migrate step of a deployment fails like llmur-proxy does: one line, no traceback."""
    port = free_port()
    env = clean_env | {"DATABASE_URL": url.format(secret=SECRET, port=port)}
    line = assert_one_line(run([sys.executable, str(ROOT / "manage.py"), "migrate"], env), 3)
    assert line.startswith("llmur: database ") and f"127.0.0.1:{port}: " in line


def test_port_in_use_exits_3_with_one_line(clean_env):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = assert_one_line(run([LLMUR_PROXY, "--host", "127.0.0.1", "--port", str(port)], clean_env), 3)
    assert line == f"llmur: cannot listen on 127.0.0.1:{port}: Address already in use"


# --------------------------------------------------------------------------- an install without mysqlclient

# scripts/bootstrap installs without mysqlclient when the MariaDB client headers are missing; the
# interpreter below behaves like that install: importing MySQLdb fails as it would there.
WITHOUT_MYSQLCLIENT = "import runpy, sys; sys.modules['MySQLdb'] = None; sys.argv = sys.argv[1:]; "


@pytest.mark.parametrize("command", [
    ["llmur-proxy", "--host", "127.0.0.1", "--port", "0"],
    ["manage.py", "migrate"],
])
def test_mysql_configured_without_mysqlclient_exits_2_naming_the_driver(command, clean_env):
    env = clean_env | {"DB_DRIVER": "mysql", "DATABASE_URL": f"root:{SECRET}@tcp(127.0.0.1:3306)/llmur"}
    if command[0] == "llmur-proxy":
        command[-1] = str(free_port())
        script = WITHOUT_MYSQLCLIENT + "from llmur.cli import main; main()"
    else:
        script = WITHOUT_MYSQLCLIENT + f"runpy.run_path({str(ROOT / 'manage.py')!r}, run_name='__main__')"
    line = assert_one_line(run([sys.executable, "-c", script, *command], env), 2)
    match = CONFIG_ERROR.match(line)
    assert match and match["source"] == "environment" and match["key"] == "DATABASE_URL", line
    assert "needs the mysqlclient driver, which is not installed" in line and "libmariadb-dev" in line
