"""load_config: read the file (or the embedded default), apply the environment, validate, resolve."""
from __future__ import annotations

import os
import secrets
import time
from pathlib import Path
from typing import Any

import platformdirs
import yaml
from pydantic import ValidationError

from llmur.config.compat import fold_foreign_shapes, warn_unknown_keys
from llmur.config.environment import ENV_CONFIG_PATH, apply_env_overrides, interpolate
from llmur.config.errors import ConfigError
from llmur.config.resolve import resolve_cache, resolve_database
from llmur.config.resolved import Settings
from llmur.config.schema import LlmurConfig
from llmur.config.wording import describe

BASE_DIR = Path(__file__).resolve().parent.parent.parent
"""The directory holding the llmur package: a clone's root, or site-packages when installed."""


def var_dir_default(env: dict[str, str]) -> Path:
    """Where llmur keeps its data (SQLite file, generated secret, master key digest, beat schedule).

    LLMUR_VAR_DIR when set. Else, in a clone (pyproject.toml beside the package: scripts/run, an
    editable install, the container image) the repository's var/, as always, so no existing
    installation starts on an empty database. An installed package (a wheel, pipx) never writes
    into site-packages: it uses the per-user data directory (platformdirs; on Linux
    $XDG_DATA_HOME/llmur, by default ~/.local/share/llmur).
    """
    if env.get("LLMUR_VAR_DIR"):
        return Path(env["LLMUR_VAR_DIR"]).expanduser().resolve()
    if (BASE_DIR / "pyproject.toml").is_file():
        return (BASE_DIR / "var").resolve()
    return Path(platformdirs.user_data_dir("llmur", appauthor=False)).resolve()


def read_yaml(path: Path) -> dict[str, Any]:
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, "", "file not found (expected a readable YAML file)") from None
    except IsADirectoryError:
        raise ConfigError(source, "", "is a directory (expected a YAML file)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, "", f"cannot read file: {exc.__class__.__name__} (expected a readable UTF-8 YAML file)") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        hint = "" if "expected" in problem else " (expected valid YAML)"
        raise ConfigError(source, "", f"YAML syntax error at {where}{problem}{hint}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(source, "", "top level must be a mapping of keys (expected key: value lines)")
    return data


def ensure_var_dir(var_dir: Path) -> None:
    try:
        var_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(str(var_dir), "", f"cannot create the data directory: {exc.strerror} (expected a writable LLMUR_VAR_DIR)") from None


def generated_secret(var_dir: Path) -> str:
    """The embedded default's application secret: generated once, kept in var/ with mode 0600."""
    ensure_var_dir(var_dir)
    path = var_dir / "application_secret"
    if not path.exists():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process that started at the same moment wrote it first
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
    for _ in range(50):
        secret = path.read_text().strip()
        if secret:
            return secret
        time.sleep(0.02)  # the writer that won the O_EXCL race has not flushed yet
    raise ConfigError(str(path), "", "application secret file is empty (expected a secret: delete the file to generate one)")


MYSQL_DRIVER_MISSING = (
    "a MySQL/MariaDB database needs the mysqlclient driver, which is not installed (expected it installed: "
    "the MariaDB client headers first, e.g. apt-get install libmariadb-dev pkg-config, then scripts/bootstrap "
    "or pip install mysqlclient; or use sqlite or postgres)")


def _mysql_driver_installed() -> bool:
    """mysqlclient is optional (scripts/bootstrap installs without it when the client headers are missing)."""
    try:
        import MySQLdb  # noqa: F401
    except ImportError:
        return False
    return True


def load_config(path: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None) -> Settings:
    """Read the file (or the embedded default), apply the environment, validate, resolve."""
    env = dict(os.environ if env is None else env)
    path = path or env.get(ENV_CONFIG_PATH) or None
    source = str(path) if path else "embedded defaults"
    raw = read_yaml(Path(path)) if path else {}
    raw = interpolate(raw, env, source)
    for section in ("database_configuration", "cache_configuration", "database", "otel", "router_settings",
                    "litellm_settings", "general_settings"):
        # Folding and overrides below merge into these sections, so their shape is checked first.
        if raw.get(section) is not None and not isinstance(raw[section], dict):
            raise ConfigError(source, section, "not a mapping (expected a YAML mapping of keys)")
    warnings = warn_unknown_keys(raw)
    raw = fold_foreign_shapes(raw)
    raw, origins = apply_env_overrides(raw, env)

    def located(key: str, problem: str) -> ConfigError:
        if key in origins:
            where = "command line" if origins[key].startswith("--") else "environment"
            return ConfigError(where, origins[key], problem)
        return ConfigError(source, key, problem)

    try:
        config = LlmurConfig.model_validate(raw)
    except ValidationError as exc:
        raise located(*describe(exc.errors()[0])) from None
    var_dir = var_dir_default(env)
    try:
        database = resolve_database(config.database_configuration, source, var_dir)
        cache = resolve_cache(config.cache_configuration, source)
    except ConfigError as exc:
        raise located(exc.key, exc.problem) from None
    if database.engine == "mysql" and not _mysql_driver_installed():
        chosen_by = "url" if config.database_configuration.url is not None else "engine"
        raise located(f"database_configuration.{chosen_by}", MYSQL_DRIVER_MISSING)
    if database.engine == "sqlite" and database.name != ":memory:":
        ensure_var_dir(Path(database.name).parent)
    secret = config.application_secret.get_secret_value() if config.application_secret else generated_secret(var_dir)
    if len(secret) < 16:
        raise ConfigError(source, "application_secret", "too short (expected at least 16 characters)")
    return Settings(
        source=source, config=config, database=database, cache=cache, application_secret=secret,
        master_keys=[k.get_secret_value() for k in config.master_keys if k.get_secret_value()],
        var_dir=var_dir, warnings=warnings, embedded=not path,
    )
