"""llmur's one YAML configuration file: loaded, interpolated, validated and resolved.

Everything that reads configuration goes through load_config; settings.py turns the result into
Django settings in one place. Every problem is a ConfigError whose text is one line naming the
file and the key, never echoing a secret's value.

One job per module:

    schema.py       the keys, types, defaults and bounds (pydantic models)
    sso.py          the sso: block (agent sign-in), the same way
    environment.py  ${VAR} / os.environ/VAR references and the variables that override keys
    compat.py       other proxies' shapes (LiteLLM general_settings, the SQLAlchemy `database:` block)
    urls.py         database URLs in every spelling (Django, SQLAlchemy, the Go driver's MySQL DSN)
    resolve.py      from the validated sections to the services to connect to
    resolved.py     what loading returns (Settings, ResolvedDatabase, ResolvedCache)
    wording.py      pydantic's errors as one line naming the key
    masking.py      the configuration fit to print
    loader.py       load_config, the data directory and the generated secret
    errors.py       ConfigError
"""
from llmur.config.environment import CLI_DATABASE_URL, ENV_CONFIG_PATH
from llmur.config.errors import ConfigError
from llmur.config.loader import BASE_DIR, load_config
from llmur.config.masking import masked
from llmur.config.resolved import ResolvedCache, ResolvedDatabase, Settings
from llmur.config.schema import (
    LOG_LEVELS,
    AlertingConfiguration,
    CacheConfiguration,
    DatabaseConfiguration,
    HttpsConfiguration,
    LegacyDatabaseBlock,
    LitellmParams,
    LlmurConfig,
    MetricsConfiguration,
    ModelEntry,
    OidcConfiguration,
    OidcTeamMapping,
    OtelConfiguration,
    RequestLoggingConfiguration,
    RouterSettings,
    SentinelAddress,
)
from llmur.config.sso import DeviceFlowConfiguration, SsoConfiguration
from llmur.config.urls import parse_database_url

__all__ = (
    "BASE_DIR", "CLI_DATABASE_URL", "ENV_CONFIG_PATH", "LOG_LEVELS", "AlertingConfiguration", "CacheConfiguration",
    "ConfigError", "DatabaseConfiguration", "DeviceFlowConfiguration", "HttpsConfiguration", "LegacyDatabaseBlock",
    "LitellmParams", "LlmurConfig", "MetricsConfiguration", "ModelEntry", "OidcConfiguration", "OidcTeamMapping",
    "OtelConfiguration", "RequestLoggingConfiguration", "ResolvedCache", "ResolvedDatabase", "RouterSettings",
    "SentinelAddress", "Settings", "SsoConfiguration", "load_config", "masked", "parse_database_url",
)
