"""Django settings for Openline, mapped from ``openline.config``.

Every value comes from the environment (see README, "Configuration"); with no
variables at all Openline runs embedded: SQLite under var/, the in-memory
channel layer, the local-memory cache and a secret key generated into var/.
"""

from __future__ import annotations

import os
import sys

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from openline.config import BASE_DIR, ConfigError, load_config

try:
    CONFIG = load_config(os.environ)
except ConfigError as exc:
    # ImproperlyConfigured gives one clear line instead of a stack of frames in manage.py.
    raise ImproperlyConfigured(str(exc)) from None

DEBUG = CONFIG.debug
SECRET_KEY = CONFIG.secret_key
ALLOWED_HOSTS = CONFIG.allowed_hosts
CSRF_TRUSTED_ORIGINS = CONFIG.csrf_trusted_origins
OPENLINE_ENV = CONFIG.env
OPENLINE_PUBLIC_URL = CONFIG.public_url
OPENLINE_TRUSTED_PROXIES = CONFIG.trusted_proxies
OPENLINE_CONTROLLER_NAME = CONFIG.controller_name
VAR_DIR = CONFIG.var_dir
VAR_DIR.mkdir(parents=True, exist_ok=True)

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    # Before django_tasks_db: its ``db_worker`` command is Openline's, which outlives a
    # database outage (core/management/commands/db_worker.py).
    "openline.core",
    "django_tasks",
    "django_tasks_db",
    "openline.accounts",
    "openline.openchannels",
    "openline.consent",
    "openline.conversations",
    "openline.livechat",
    "openline.connectors",
    "openline.crm",
    "openline.console",
    "openline.webhooks",
    "openline.api",
    # Only for its templates and static files: the API docs render from Openline's own files.
    "ninja",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # A down, read-only or full database answers 503 with Retry-After, fast (core/unavailable.py).
    "openline.core.unavailable.UnavailableMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "openline.accounts.middleware.IdleSessionTimeoutMiddleware",
    "openline.accounts.middleware.PasswordChangeRequiredMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "openline.core.middleware.SecurityHeadersMiddleware",
]

ROOT_URLCONF = "openline.urls"
ASGI_APPLICATION = "openline.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "openline" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "openline.console.context_processors.console",
                "openline.consent.context_processors.registry_alert",
            ],
        },
    },
]

DATABASES = {"default": dj_database_url.parse(CONFIG.database_url, conn_max_age=0)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # WAL lets the web process and the task worker read while one writes;
        # IMMEDIATE avoids "database is locked" upgrades inside transactions.
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # One file per test process, so parallel test runs never share a database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}
else:
    DATABASES["default"]["TEST"] = {"NAME": f"test_openline_{os.getpid()}"}
    # Under ASGI every request may run in its own thread, so Django's persistent
    # connections do not help; psycopg's pool saves the connect on every request.
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": CONFIG.db_pool_min,
        "max_size": CONFIG.db_pool_max,
        # Seconds a request waits for a connection: a database that is down answers 503 after
        # this long (then at once, see core/unavailable.py), not after psycopg's default 30 s.
        "timeout": float(os.environ.get("OPENLINE_DB_POOL_TIMEOUT", "") or 2),
    }

if CONFIG.redis_url:
    # Pub/Sub pushes each event to the subscribed processes as it is published; the list-based
    # RedisChannelLayer pulls them with one BZPOPMIN round trip per message per process, which
    # queued chat delivery up by seconds at 200 messages/s. Pub/Sub is at-most-once: a client
    # that misses an event (reconnect, Redis restart) resynchronises from its last message id.
    # The Pub/Sub layer is channels_redis' with one Redis subscription per process for its
    # sockets' own channels (openline/core/channel_layer.py): a reconnecting widget costs Redis
    # one group subscription, batched with the others, not two commands of its own.
    # OPENLINE_CHANNEL_LAYER=core selects the list-based layer (used by the latency bench),
    # pubsub-plain channels_redis' own Pub/Sub layer (the reconnect bench compares them).
    layer_kind = os.environ.get("OPENLINE_CHANNEL_LAYER", "pubsub")
    if layer_kind == "core":
        CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {
                    "hosts": [
                        {"address": CONFIG.redis_url, "socket_timeout": 30}
                    ],  # redis-py 8 times out reads at 5 s, the same as channels_redis' BZPOPMIN wait
                    "capacity": 1500,
                    "expiry": 30,
                    # Lets several deployments (or test runs) share one Redis safely.
                    "prefix": os.environ.get("OPENLINE_CHANNEL_PREFIX", "openline"),
                },
            }
        }
    else:
        CHANNEL_LAYERS = {
            "default": {
                "BACKEND": (
                    "channels_redis.pubsub.RedisPubSubChannelLayer"
                    if layer_kind == "pubsub-plain"
                    else "openline.core.channel_layer.ProcessPubSubChannelLayer"
                ),
                "CONFIG": {
                    "hosts": [{"address": CONFIG.redis_url}],
                    # Lets several deployments (or test runs) share one Redis safely.
                    "prefix": os.environ.get("OPENLINE_CHANNEL_PREFIX", "openline"),
                },
            }
        }
    CACHES = {
        "default": {
            # A Redis that is down or hangs never fails a request: reads miss, writes are
            # skipped, counters raise for their callers' fallbacks (core/cache.py).
            "BACKEND": "openline.core.cache.ResilientRedisCache",
            "LOCATION": CONFIG.redis_url,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
            # Sign-in throttle counters live here; a prefix of their own keeps deployments
            # (or test runs) sharing one Redis from throttling each other.
            "KEY_PREFIX": os.environ.get("OPENLINE_CHANNEL_PREFIX", "openline"),
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

TASKS = {
    "default": {
        "BACKEND": os.environ.get("OPENLINE_TASKS_BACKEND", "django_tasks_db.DatabaseBackend"),
        "QUEUES": ["default"],
    }
}

AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "core:home"
LOGOUT_REDIRECT_URL = "accounts:login"
# Sign-in throttling (accounts/throttle.py): (failed attempts, window seconds), shared via the cache.
OPENLINE_LOGIN_RATE_ACCOUNT = CONFIG.login_rate_account
OPENLINE_LOGIN_RATE_IP = CONFIG.login_rate_ip
# API requests per token / signed-in user (api/ratelimit.py): (requests, window seconds), shared.
OPENLINE_API_RATE = CONFIG.api_rate
# Password checks (Argon2) run at once per process; more wait, then get "busy" (503).
OPENLINE_LOGIN_CONCURRENCY = CONFIG.login_concurrency
# Seconds a signed-in session may stay unused before it is signed out; 0 turns it off.
OPENLINE_SESSION_IDLE_TIMEOUT = CONFIG.session_idle_timeout
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
LANGUAGES = [
    ("en", "English"),
    ("de", "Deutsch"),
    ("fr", "Français"),
    ("es", "Español"),
    ("ru", "Русский"),
]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns when it is missing
STATICFILES_DIRS = [BASE_DIR / "openline" / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve from the app folders directly so `make run` needs no collectstatic step.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = CONFIG.secure_cookies
CSRF_COOKIE_SECURE = CONFIG.secure_cookies
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "strict-origin-when-cross-origin"
X_FRAME_OPTIONS = "DENY"
# No SECURE_PROXY_SSL_HEADER: it would believe X-Forwarded-Proto from any peer. The scheme comes
# from openline.core.proxy.TrustedProxyMiddleware, which believes only OPENLINE_TRUSTED_PROXIES.
SECURE_SSL_REDIRECT = CONFIG.production
# Load balancers probe health over plain http.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_HSTS_SECONDS = CONFIG.hsts_seconds
SECURE_HSTS_INCLUDE_SUBDOMAINS = CONFIG.hsts_include_subdomains

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "openline.core.logging.RedactSecretsFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "stream": sys.stderr,
            "formatter": "plain",
            "filters": ["redact"],
        }
    },
    "root": {"handlers": ["console"], "level": CONFIG.log_level},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}

# The registry's Ed25519 signing key lives in a file, never in the database (consent/signing.py).
OPENLINE_SIGNING_KEY_FILE = os.environ.get("OPENLINE_SIGNING_KEY_FILE", "").strip() or str(
    VAR_DIR / "signing" / "registry-ed25519.pem"
)
if CONFIG.production and not os.environ.get("OPENLINE_SIGNING_KEY_FILE", "").strip():
    raise ImproperlyConfigured(
        "Openline refuses to start in production mode: OPENLINE_SIGNING_KEY_FILE is not set "
        "(the registry's signing key must live outside the database)."
    )
if CONFIG.production:
    from openline.consent.keyfile import key_file_problem

    if problem := key_file_problem(OPENLINE_SIGNING_KEY_FILE):
        raise ImproperlyConfigured(
            "Openline refuses to start in production mode: OPENLINE_SIGNING_KEY_FILE "
            f"{problem} (create one: openssl genpkey -algorithm ed25519 -out FILE)."
        )
# Where each signed registry checkpoint is copied outside the database: a file path (one JSON
# line per checkpoint) or an http(s) URL (POST of the JSON); empty keeps them in the DB only.
OPENLINE_CHECKPOINT_PUSH = os.environ.get("OPENLINE_CHECKPOINT_PUSH", "").strip()
# How much earlier than an already sealed record a later record may be dated (concurrent
# writers take ids and clocks in slightly different orders); older ones are refused as backdated.
try:
    OPENLINE_SEAL_CLOCK_SKEW = float(os.environ.get("OPENLINE_SEAL_CLOCK_SKEW", "") or 60)
except ValueError:
    raise ImproperlyConfigured("OPENLINE_SEAL_CLOCK_SKEW must be a number of seconds") from None

# Messenger platforms' API base URLs: settings so tests (and air-gapped proxies) can point
# them elsewhere. Graph serves both WhatsApp Cloud API and the Messenger Send API.
OPENLINE_TELEGRAM_API_URL = (
    os.environ.get("OPENLINE_TELEGRAM_API_URL", "").strip().rstrip("/")
    or "https://api.telegram.org"
)
OPENLINE_GRAPH_API_URL = (
    os.environ.get("OPENLINE_GRAPH_API_URL", "").strip().rstrip("/")
    or "https://graph.facebook.com/v21.0"
)
OPENLINE_VIBER_API_URL = (
    os.environ.get("OPENLINE_VIBER_API_URL", "").strip().rstrip("/") or "https://chatapi.viber.com"
)
try:
    OPENLINE_MESSENGER_TIMEOUT = float(os.environ.get("OPENLINE_MESSENGER_TIMEOUT", "") or 10)
except ValueError:
    raise ImproperlyConfigured("OPENLINE_MESSENGER_TIMEOUT must be a number of seconds") from None
# Keys that encrypt messenger credentials at rest (Fernet, comma-separated, newest first so
# older ones still decrypt during a rotation). Empty: one key generated once into var/.
OPENLINE_SECRETS_KEYS = os.environ.get("OPENLINE_SECRETS_KEYS", "").strip()
OPENLINE_SECRETS_KEY_FILE = os.environ.get("OPENLINE_SECRETS_KEY_FILE", "").strip() or str(
    VAR_DIR / "secrets" / "fernet.keys"
)
