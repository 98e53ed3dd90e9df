"""The config loader: every accepted shape, interpolation, overrides and every rejected input.

These call llmur.config.load_config in-process with an explicit environment, so they touch no
database; tests/cli covers the same errors as a user meets them through the commands.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from llmur.config import load_config
from tests.config.conftest import SECRET, config_error

# --------------------------------------------------------------------------- LLMUR format

def test_llmur_format_loads_every_documented_key(write, env):
    path = write(f"""
        application_secret: 7d8fe9e9-04fc-42a8-9577-40ecc40d27d7
        log_level: warn
        host: 127.0.0.1
        port: 9000
        master_keys: [my-master-key-1, my-master-key-2]
        auto_migrate: false
        otel:
          exporter_otlp_endpoint: http://localhost:4317
        database_configuration:
          engine: postgres
          host: db.example.com
          port: 6543
          database: llmur_prod
          username: llmur_user
          password: {SECRET}
          min_connections: 5
          max_connections: 20
        cache_configuration:
          engine: redis
          host: cache.example.com
          port: 6380
          username: default
          password: redispw
          db: 3
    """)
    loaded = load_config(path, env=env)
    assert loaded.source == str(path) and not loaded.embedded
    assert loaded.application_secret == "7d8fe9e9-04fc-42a8-9577-40ecc40d27d7"
    assert loaded.config.python_log_level == "WARNING"
    assert (loaded.config.host, loaded.config.port) == ("127.0.0.1", 9000)
    assert loaded.master_keys == ["my-master-key-1", "my-master-key-2"]
    assert loaded.config.auto_migrate is False
    assert loaded.config.otel.exporter_otlp_endpoint == "http://localhost:4317"
    db = loaded.database
    assert (db.engine, db.host, db.port, db.name, db.user, db.password) == (
        "postgres", "db.example.com", 6543, "llmur_prod", "llmur_user", SECRET)
    assert (db.min_connections, db.max_connections) == (5, 20)
    assert loaded.cache.url == "redis://default:redispw@cache.example.com:6380/3"
    assert loaded.cache.address == "cache.example.com:6380"
    assert loaded.warnings == []


def test_defaults_follow_llmur(env):
    loaded = load_config(None, env=env)
    assert loaded.embedded and loaded.source == "embedded defaults"
    assert (loaded.config.host, loaded.config.port, loaded.config.log_level) == ("0.0.0.0", 8082, "info")
    assert loaded.config.auto_migrate is True
    assert loaded.database.engine == "sqlite"
    assert loaded.database.name == str(Path(env["LLMUR_VAR_DIR"]).resolve() / "llmur.sqlite3")
    assert loaded.cache.engine == "local"


def test_configuration_file_comes_from_llmur_configuration(write, env):
    path = write("port: 9100\n")
    loaded = load_config(None, env=env | {"LLMUR_CONFIGURATION": str(path)})
    assert loaded.config.port == 9100 and loaded.source == str(path)


@pytest.mark.parametrize("given, python_level", [
    ("trace", "DEBUG"), ("debug", "DEBUG"), ("info", "INFO"), ("warn", "WARNING"), ("error", "ERROR"),
    ("WARNING", "WARNING"), ("CRITICAL", "CRITICAL"),
])
def test_log_levels_of_llmur_and_python(write, env, given, python_level):
    loaded = load_config(write(f"log_level: {given}\n"), env=env)
    assert loaded.config.python_log_level == python_level


# --------------------------------------------------------------------------- LiteLLM's shape

LITELLM_CONFIG = """
    model_list:
      - model_name: qwen-dell
        litellm_params:
          model: ollama/qwen2.5:14b-instruct-q4_K_M
          api_base: http://127.0.0.1:11434
      - model_name: anthropic-fallback
        litellm_params:
          model: anthropic/claude-3-5-sonnet-20241022
          api_key: os.environ/ANTHROPIC_API_KEY
        model_info:
          id: claude-1
    router_settings:
      routing_strategy: "usage-based-routing"
      allowed_fails: 3
      cooldown_time: 60
      num_retries: 2
      redis_host: 127.0.0.1
    litellm_settings:
      drop_params: true
      cache: true
      success_callback: ["langfuse"]
    general_settings:
      master_key: ${LITELLM_MASTER_KEY}
      database_url: os.environ/DATABASE_URL_FROM_FILE
      track_cost: true
      alerting: ["slack"]
"""


def test_litellm_config_loads(write, env):
    env |= {"ANTHROPIC_API_KEY": "sk-ant-x", "LITELLM_MASTER_KEY": "sk-1234",
            "DATABASE_URL_FROM_FILE": "postgresql://litellm:pw@db.internal:5432/litellm"}
    loaded = load_config(write(LITELLM_CONFIG), env=env)
    models = loaded.config.model_list
    assert [m.model_name for m in models] == ["qwen-dell", "anthropic-fallback"]
    assert models[1].litellm_params.api_key.get_secret_value() == "sk-ant-x"
    assert models[1].model_info == {"id": "claude-1"}
    assert loaded.config.router_settings.routing_strategy == "usage-based-routing"
    assert loaded.config.router_settings.cooldown_time == 60
    assert "sk-1234" in loaded.master_keys
    assert (loaded.database.engine, loaded.database.host, loaded.database.name) == ("postgres", "db.internal", "litellm")


def test_unsupported_litellm_keys_give_one_warning_each(write, env):
    env |= {"ANTHROPIC_API_KEY": "k", "LITELLM_MASTER_KEY": "m", "DATABASE_URL_FROM_FILE": "sqlite:///x.db"}
    loaded = load_config(write(LITELLM_CONFIG), env=env)
    assert sorted(loaded.warnings) == sorted([
        "router_settings.redis_host: not supported by llmur yet, ignored",
        "litellm_settings.success_callback: not supported by llmur yet, ignored",
        "general_settings.track_cost: not supported by llmur yet, ignored",
        "general_settings.alerting: not supported by llmur yet, ignored",
    ])


def test_unknown_top_level_and_nested_keys_warn_and_do_not_fail(write, env):
    loaded = load_config(write("""
        telemetry: false
        database:
          echo_pool: true
        database_configuration:
          engine: sqlite
          fancy: 1
    """), env=env)
    assert sorted(loaded.warnings) == [
        "database.echo_pool: not supported by llmur yet, ignored",
        "database_configuration.fancy: not supported by llmur yet, ignored",
        "telemetry: not supported by llmur yet, ignored",
    ]


def test_explicit_database_configuration_wins_over_litellm_database_url(write, env):
    loaded = load_config(write("""
        general_settings:
          database_url: postgresql://a@elsewhere/other
        database_configuration:
          engine: mysql
          host: db
          database: llmur
    """), env=env)
    assert (loaded.database.engine, loaded.database.host, loaded.database.name) == ("mysql", "db", "llmur")


# --------------------------------------------------------------------------- interpolation

def test_interpolation_forms(write, env):
    env |= {"SECRET_FROM_ENV": "abcdefghijklmnopqrstuvwxyz", "PORT_FROM_ENV": "9200", "EMPTY": ""}
    loaded = load_config(write("""
        application_secret: ${SECRET_FROM_ENV}
        port: ${PORT_FROM_ENV}
        host: ${UNSET_HOST:-127.0.0.2}
        log_level: ${EMPTY:-debug}
        master_keys: [os.environ/SECRET_FROM_ENV, "prefix-${PORT_FROM_ENV}-suffix"]
    """), env=env)
    assert loaded.application_secret == "abcdefghijklmnopqrstuvwxyz"
    assert loaded.config.port == 9200
    assert loaded.config.host == "127.0.0.2"
    assert loaded.config.log_level == "debug"
    assert loaded.master_keys == ["abcdefghijklmnopqrstuvwxyz", "prefix-9200-suffix"]


@pytest.mark.parametrize("reference", ["${NOT_SET_ANYWHERE}", "os.environ/NOT_SET_ANYWHERE"])
def test_unset_environment_variable_names_key_and_variable(write, env, reference):
    error = config_error(write(f"""
        database_configuration:
          password: "{reference}"
    """), env)
    assert error.key == "database_configuration.password"
    assert "NOT_SET_ANYWHERE is not set" in error.problem


# --------------------------------------------------------------------------- environment overrides

def test_environment_overrides_the_file(write, env):
    path = write("""
        log_level: info
        host: 0.0.0.0
        port: 8082
        master_keys: [from-file]
        auto_migrate: true
        database_configuration:
          engine: mysql
          host: filehost
          database: filedb
    """)
    loaded = load_config(path, env=env | {
        "DATABASE_URL": "postgresql://u:p@envhost:5433/envdb", "REDIS_URL": "redis://127.0.0.1:6390/5",
        "LLMUR_LOG_LEVEL": "error", "LLMUR_HOST": "127.0.0.1", "LLMUR_PORT": "9300",
        "LLMUR_MASTER_KEY": "from-env", "DATABASE_POOL_SIZE": "7", "DATABASE_MAX_OVERFLOW": "3",
        "DATABASE_POOL_TIMEOUT": "12", "DATABASE_ECHO": "true", "DATABASE_AUTO_MIGRATE": "false",
        "CONN_MAX_LIFETIME": "30m", "LLMUR_APPLICATION_SECRET": "from-env-secret-0123456789",
    })
    assert loaded.application_secret == "from-env-secret-0123456789"
    config, db = loaded.config, loaded.database
    assert (config.log_level, config.host, config.port, config.auto_migrate) == ("error", "127.0.0.1", 9300, False)
    assert loaded.master_keys == ["from-file", "from-env"]
    assert (db.engine, db.host, db.port, db.name) == ("postgres", "envhost", 5433, "envdb")
    assert (db.max_connections, db.pool_timeout, db.echo, db.conn_max_lifetime) == (10, 12, True, 1800)
    assert loaded.cache.engine == "redis" and loaded.cache.address == "127.0.0.1:6390"


def test_llm_proxy_environment(env, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    loaded = load_config(None, env=env | {"DB_DRIVER": "sqlite", "DATABASE_PATH": "./data/llm-proxy.db",
                                          "POOL_SIZE": "1", "DATABASE_CONN_MAX_LIFETIME": "1h"})
    assert loaded.database.engine == "sqlite"
    assert loaded.database.name == str(tmp_path / "data" / "llm-proxy.db")
    # A pool of one must not trip over the default minimum of two.
    assert (loaded.database.min_connections, loaded.database.max_connections) == (1, 1)
    assert loaded.database.conn_max_lifetime == 3600


def test_db_driver_with_go_mysql_dsn(env):
    loaded = load_config(None, env=env | {
        "DB_DRIVER": "mysql", "DATABASE_URL": f"llmproxy:{SECRET}@tcp(db.internal:3307)/llmproxy?parseTime=true&tls=true"})
    db = loaded.database
    assert (db.engine, db.user, db.password, db.host, db.port, db.name) == (
        "mysql", "llmproxy", SECRET, "db.internal", 3307, "llmproxy")
    assert db.options == {"ssl_mode": "VERIFY_IDENTITY"}


@pytest.mark.parametrize("name, value, problem", [
    ("LLMUR_PORT", "70000", "out of range (expected 1..65535)"),
    ("LLMUR_PORT", "eighty", "not an integer"),
    ("LLMUR_LOG_LEVEL", "loud", "unknown level"),
    ("DATABASE_ECHO", "maybe", "not a boolean (expected true or false)"),
    ("DATABASE_AUTO_MIGRATE", "2", "not a boolean"),
    ("DATABASE_POOL_SIZE", "0", "out of range"),
    ("DB_DRIVER", "oracle", "unknown driver (expected sqlite, postgres or mysql)"),
    ("CONN_MAX_LIFETIME", "soon", "not a duration"),
    ("DATABASE_URL", "oracle://db/x", "unknown database URL scheme 'oracle'"),
    ("REDIS_URL", "memcached://x", "unknown scheme 'memcached'"),
])
def test_bad_environment_value_names_the_variable(env, name, value, problem):
    error = config_error(None, env | {name: value})
    assert (error.source, error.key) == ("environment", name)
    assert problem in error.problem


# --------------------------------------------------------------------------- embedded secret

def test_embedded_secret_is_generated_once_with_mode_0600(env):
    first = load_config(None, env=env).application_secret
    second = load_config(None, env=env).application_secret
    assert first == second and len(first) >= 32
    secret_file = Path(env["LLMUR_VAR_DIR"]) / "application_secret"
    assert secret_file.stat().st_mode & 0o777 == 0o600


# --------------------------------------------------------------------------- errors

@pytest.mark.parametrize("text, key, problem", [
    ("port: [\n", "", "YAML syntax error at line 2"),
    ("- just\n- a list\n", "", "top level must be a mapping"),
    ("database_configuration:\n  engine: oracle\n", "database_configuration.engine",
     "unknown engine (expected one of sqlite, postgres or mysql)"),
    ("port: eighty\n", "port", "not an integer (expected a whole number, 1..65535)"),
    ("port: 99999\n", "port", "out of range (expected 1..65535)"),
    ("port: 0\n", "port", "out of range (expected 1..65535)"),
    ("master_keys: sk-1\n", "master_keys", "not a list"),
    ("auto_migrate: perhaps\n", "auto_migrate", "not a boolean (expected true or false)"),
    ("database_configuration: postgres\n", "database_configuration", "not a mapping"),
    ("model_list:\n  - model_name: gpt\n", "model_list[0].litellm_params", "required key is missing"),
    ("model_list:\n  - litellm_params: {model: openai/gpt-4o}\n", "model_list[0].model_name", "required key is missing"),
    ("database_configuration:\n  engine: postgres\n", "database_configuration.database", "required for engine postgres"),
    ("database_configuration:\n  min_connections: 9\n  max_connections: 3\n", "database_configuration.min_connections",
     "greater than max_connections"),
    ("router_settings:\n  routing_strategy: random\n", "router_settings.routing_strategy", "unknown value"),
    (f"application_secret: short\ndatabase_configuration:\n  password: {SECRET}\n", "application_secret", "too short"),
    (f"database_configuration:\n  url: postgresql://u:{SECRET}@h:99999/db\n", "database_configuration.url", "bad port"),
    (f"database_configuration:\n  url: oracle://u:{SECRET}@h/db\n", "database_configuration.url", "unknown database URL scheme"),
    (f"database_configuration:\n  url: postgresql://u:{SECRET}@h\n", "database_configuration.url", "names no database"),
    (f"cache_configuration:\n  password: {SECRET}\n  port: -1\n", "cache_configuration.port", "out of range"),
    # OpenID Connect Core: the id_token's iss must match the configured issuer (issue 16.14).
    (f"oidc:\n  client_id: llmur\n  client_secret: {SECRET}\n  authorization_endpoint: https://idp/a\n"
     "  token_endpoint: https://idp/t\n  userinfo_endpoint: https://idp/u\n", "oidc.issuer", "required key is missing"),
    ("general_settings:\n  allowed_env_references: AZURE_API_KEY\n", "",
     "general_settings.allowed_env_references: not a list of environment variable names"),
    ("general_settings:\n  allowed_env_references: [AZURE_API_KEY, not a name]\n", "",
     "general_settings.allowed_env_references: not a list of environment variable names"),
])
def test_bad_config_is_one_line_naming_file_and_key(write, env, text, key, problem):
    path = write(text)
    error = config_error(path, env)
    assert error.source == str(path)
    assert error.key == key
    assert problem in error.problem
    assert "expected" in error.problem


def test_allowed_env_references_are_read_and_empty_by_default(write, env):
    """Variables a deployment added at run time may name as os.environ/NAME (issue 16.7)."""
    assert load_config(write("port: 9000\n"), env=env).config.allowed_env_references == ()
    loaded = load_config(write("general_settings:\n  allowed_env_references: [AZURE_API_KEY]\n"), env=env)
    assert loaded.config.allowed_env_references == ("AZURE_API_KEY",)
    assert not any("allowed_env_references" in w for w in loaded.warnings)


def test_missing_file(env, tmp_path):
    error = config_error(tmp_path / "nope.yaml", env)
    assert error.problem.startswith("file not found")


def test_directory_instead_of_file(env, tmp_path):
    assert config_error(tmp_path, env).problem.startswith("is a directory")


def test_unreadable_file(env, tmp_path):
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\xff\xfe\x00port: 1")
    assert config_error(path, env).problem.startswith("cannot read file")
