"""Django settings, wired from the validated configuration in one place.

Production differs from the laptop only by configuration: see llmur/config/ for the file
format and docs/configuration.md for the reference.
"""
from __future__ import annotations

import os
import warnings

from llmur import redis_clients
from llmur.config import BASE_DIR, ResolvedDatabase, load_config

LLMUR = load_config()
CONFIG = LLMUR.config

# Before anything imports prometheus_client: counters shared by all worker processes of a server.
from llmur.core.observability import prometheus_prepare  # noqa: E402

prometheus_prepare(LLMUR.var_dir)

SECRET_KEY = LLMUR.application_secret
DEBUG = CONFIG.debug
ALLOWED_HOSTS = CONFIG.allowed_hosts

# Served over TLS (https.enabled): cookies only over https, HSTS, plain http redirected, except the
# probes and the metrics scrape, which load balancers and Prometheus send over plain http inside
# the cluster. The /v1 API bypasses the middleware (llmur/asgi.py), so it is never redirected.
if CONFIG.https.enabled:
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = CONFIG.https.hsts_seconds
    SECURE_HSTS_INCLUDE_SUBDOMAINS = CONFIG.https.hsts_include_subdomains
    SECURE_HSTS_PRELOAD = CONFIG.https.hsts_preload
    SECURE_SSL_REDIRECT = CONFIG.https.redirect
    SECURE_REDIRECT_EXEMPT = [r"^health/", r"^metrics/?$"]
    if CONFIG.https.trust_forwarded_proto:
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

INSTALLED_APPS = [
    # The admin as operator console (dashboard, rate-limited login): llmur/admin_site.py.
    "llmur.apps.LlmurAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "llmur",  # for its management command check_config
    "accounts",
    "billing",
    "memory",   # cross-session memory (docs/memory.md): between billing and the gateway
    "gateway",
]

# The /v1 hot path does not pass through this list: llmur.asgi routes it to a handler without
# middleware, because each sync middleware costs a thread hop per request under ASGI.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Serves the admin's CSS/JS and llmur/static (chart.js) from the app directories: no CDN, no collectstatic.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "llmur.urls"
ASGI_APPLICATION = "llmur.asgi.application"
WSGI_APPLICATION = "llmur.wsgi.application"
AUTH_USER_MODEL = "accounts.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "llmur" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def _database(db: ResolvedDatabase) -> dict:
    """Django's DATABASES entry for the resolved database configuration."""
    common = {"NAME": db.name, "USER": db.user, "PASSWORD": db.password, "HOST": db.host,
              "PORT": str(db.port or ""), "TEST": {}}
    if db.engine == "sqlite":
        if db.name != ":memory:":
            # A file, not Django's default in-memory test database, so tests see WAL and the busy
            # timeout that concurrent writers rely on.
            common["TEST"] = {"NAME": f"{db.name}.test"}
        return common | {
            "ENGINE": "django.db.backends.sqlite3",
            "OPTIONS": {
                # WAL lets readers run beside the one writer; IMMEDIATE avoids lock-upgrade deadlocks.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
            "CONN_MAX_AGE": db.conn_max_lifetime,
        }
    if db.engine == "postgres":
        # manage.py turns the pool off (LLMUR_DATABASE_POOL=off): its commands are short-lived.
        pooled = os.environ.get("LLMUR_DATABASE_POOL", "on") != "off"
        pool = {"pool": {"min_size": db.min_connections, "max_size": db.max_connections,
                         "timeout": db.pool_timeout}} if pooled else {}
        return common | {
            "ENGINE": "django.db.backends.postgresql",
            "OPTIONS": db.options | pool,
            # The psycopg pool owns connection reuse; Django requires CONN_MAX_AGE 0 with it.
            "CONN_MAX_AGE": 0,
        }
    return common | {
        "ENGINE": "django.db.backends.mysql",
        "OPTIONS": db.options | {"charset": "utf8mb4", "init_command": "SET sql_mode='STRICT_TRANS_TABLES'"},
        "CONN_MAX_AGE": db.conn_max_lifetime,
        "CONN_HEALTH_CHECKS": True,
        "TEST": {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"},
    }


DATABASES = {"default": _database(LLMUR.database)}
# Read replicas (database_configuration.replicas): admin pages and spend reports read from them (llmur/db_router.py).
for _index, _replica in enumerate(LLMUR.database.replicas, 1):
    # MIRROR: the test runner points replica aliases at the test database instead of creating one.
    DATABASES[f"replica_{_index}"] = _database(_replica) | {"TEST": {"MIRROR": "default"}}
if LLMUR.database.replicas:
    DATABASE_ROUTERS = ["llmur.db_router.ReplicaRouter"]
    MIDDLEWARE.insert(MIDDLEWARE.index("django.contrib.sessions.middleware.SessionMiddleware"),
                      "llmur.db_router.ReplicaReadsMiddleware")

if LLMUR.cache.engine == "redis":
    # A URL or Redis Sentinel (cache_configuration.sentinels): llmur/redis_clients.py.
    CACHES = {"default": redis_clients.django_cache(LLMUR.cache, {"SOCKET_CONNECT_TIMEOUT": 2, "SOCKET_TIMEOUT": 2})}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "llmur"}}

# Celery: Redis is the broker when configured; otherwise tasks run in-process (embedded mode).
# Under Redis Sentinel: sentinel://… URLs with the master's name in the transport options.
CELERY_BROKER_URL, CELERY_BROKER_TRANSPORT_OPTIONS = redis_clients.celery_broker(LLMUR.cache)
CELERY_TASK_ALWAYS_EAGER = LLMUR.cache.engine != "redis"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Beat (billing): drain the spend stream often (tasks stop when it is empty), reset budgets at
# the granularity of the shortest budget_duration (30s), and roll SpendLog up into DailySpend.
CELERY_BEAT_SCHEDULE = {
    "spend-drain": {"task": "billing.spend_drain", "schedule": 2.0, "options": {"expires": 30}},
    "budget-reset": {"task": "billing.budget_reset", "schedule": 10.0, "options": {"expires": 30}},
    "daily-spend-rollup": {"task": "billing.daily_spend_rollup", "schedule": 60.0, "options": {"expires": 120}},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(LLMUR.var_dir / "celerybeat-schedule")
# Budget alerts whose delivery was never queued or lost, and the request log's retention.
CELERY_BEAT_SCHEDULE["alert-sweep"] = {"task": "billing.alert_sweep", "schedule": 60.0, "options": {"expires": 120}}
CELERY_BEAT_SCHEDULE["request-log-purge"] = {"task": "gateway.request_log_purge", "schedule": 3600.0,
                                             "options": {"expires": 1800}}
# Agent sign-ins (sso.device_flow) that expired uncollected.
# Cross-session memory: summarize sessions gone idle, delete what is past its retention.
CELERY_BEAT_SCHEDULE["memory-sweep"] = {"task": "gateway.memory_sweep", "schedule": 60.0, "options": {"expires": 120}}
CELERY_BEAT_SCHEDULE["device-authorization-purge"] = {"task": "accounts.device_authorization_purge",
                                                      "schedule": 3600.0, "options": {"expires": 1800}}

# E-mail of budget alerts (the config's alerting: block).
EMAIL_BACKEND = CONFIG.alerting.email_backend
EMAIL_HOST = CONFIG.alerting.email_host
EMAIL_PORT = CONFIG.alerting.email_port
EMAIL_HOST_USER = CONFIG.alerting.email_host_user
EMAIL_HOST_PASSWORD = (CONFIG.alerting.email_host_password.get_secret_value()
                       if CONFIG.alerting.email_host_password else "")
EMAIL_USE_TLS = CONFIG.alerting.email_use_tls
EMAIL_TIMEOUT = 10
if CONFIG.alerting.email_file_path:
    EMAIL_FILE_PATH = CONFIG.alerting.email_file_path
DEFAULT_FROM_EMAIL = CONFIG.alerting.email_from

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = CONFIG.time_zone   # shown on every admin page (llmur/admin_site.py)
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = LLMUR.var_dir / "static"
STATICFILES_DIRS = [BASE_DIR / "llmur" / "static"]
WHITENOISE_USE_FINDERS = True
# Files come from the finders above; STATIC_ROOT only exists after an optional collectstatic.
warnings.filterwarnings("ignore", message="No directory at: ")

DATA_UPLOAD_MAX_MEMORY_SIZE = CONFIG.max_request_body_bytes

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "llmur.core.logformat.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": CONFIG.log_format}},
    "root": {"handlers": ["console"], "level": CONFIG.python_log_level},
    "loggers": {
        "django.db.backends": {"level": "DEBUG" if LLMUR.database.echo else "WARNING"},
        # Access lines are written whatever log_level says, unless access_log is off (llmur/core/accesslog.py).
        "llmur.access": {"level": "INFO" if CONFIG.access_log else "CRITICAL"},
    },
}

# Optional single sign-on for the admin (the config's `oidc:` block; accounts/oidc.py maps groups).
LLMUR_OIDC_ENABLED = CONFIG.oidc is not None
if CONFIG.oidc is not None:
    INSTALLED_APPS.append("mozilla_django_oidc")
    AUTHENTICATION_BACKENDS = ["accounts.oidc.LlmurOIDCBackend", "django.contrib.auth.backends.ModelBackend"]
    OIDC_RP_CLIENT_ID = CONFIG.oidc.client_id
    OIDC_RP_CLIENT_SECRET = CONFIG.oidc.client_secret.get_secret_value()
    OIDC_OP_AUTHORIZATION_ENDPOINT = CONFIG.oidc.authorization_endpoint
    OIDC_OP_TOKEN_ENDPOINT = CONFIG.oidc.token_endpoint
    OIDC_OP_USER_ENDPOINT = CONFIG.oidc.userinfo_endpoint
    OIDC_OP_JWKS_ENDPOINT = CONFIG.oidc.jwks_endpoint
    OIDC_RP_SIGN_ALGO = CONFIG.oidc.sign_algo
    OIDC_RP_SCOPES = CONFIG.oidc.scopes
    LOGIN_REDIRECT_URL = "/admin/"
    LOGIN_REDIRECT_URL_FAILURE = "/admin/login/?sso=failed"
