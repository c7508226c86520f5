"""Project settings, read from the environment (twelve-factor).

With no variables set the platform runs on the embedded default: a SQLite file,
Celery tasks executed in-process, and messages kept in the outbox. ``DATABASE_URL``
switches the database, ``REDIS_URL`` switches Celery to a real broker and workers.
Every variable is listed with a comment in ``.env.example``.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# No production secret has a default. A machine with no DJANGO_SECRET_KEY is a
# developer's (the embedded default) and runs with DEBUG on; setting the secret,
# as every deployment must, turns DEBUG off unless asked for explicitly.
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
DEBUG = env.bool("DJANGO_DEBUG", default=not SECRET_KEY)
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. Set it to 50+ random characters "
            "(python -c 'import secrets; print(secrets.token_urlsafe(50))')."
        )
    SECRET_KEY = "dev-only-insecure-secret-key-not-for-production-use-0123456789"  # noqa: S105

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "retention.apps.RetentionAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "retention",
    "commerce",
    "segments",
    "journeys",
    "messaging",
    "feedback",
    "scoring",
    "experiments",
    "insights",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "retention.ratelimit.RateLimitMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "retention.middleware.TenantSessionMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "retention.urls"
WSGI_APPLICATION = "retention.wsgi.application"
AUTH_USER_MODEL = "retention.User"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "retention.middleware.tenant_context",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
# Persistent connections: a new connection per request costs ~7x throughput here.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].setdefault("connect_timeout", env.int("DB_CONNECT_TIMEOUT", 5))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# The embedded SQLite default ignores INCLUDE columns of covering indexes (they
# matter on PostgreSQL only); say nothing about it on every command.
SILENCED_SYSTEM_CHECKS = (
    ["models.W040"] if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3" else []
)

# --- Cache (rate-limit counters) ---------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
# Shared by every web process when Redis is there; CACHE_URL picks another
# (e.g. a separate Redis database), and without either each process counts alone.
if env.str("CACHE_URL", default=""):
    CACHES = {"default": env.cache("CACHE_URL")}
elif REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "retention",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Rate limits: "requests/seconds" per window (retention/ratelimit.py) -------------
RATELIMIT_ENABLED = env.bool("RATELIMIT_ENABLED", default=True)
RATELIMITS = {
    # Admin sign-in attempts per client IP and username.
    "login": env.str("RATELIMIT_LOGIN", default="10/900"),
    # REST API requests per API key (per IP without a key).
    "api": env.str("RATELIMIT_API", default="6000/60"),
    # Shopper pages (/o/, /s/, /u/) per client IP.
    "pages": env.str("RATELIMIT_PAGES", default="120/60"),
}
# Behind a load balancer that appends the client to X-Forwarded-For, count by it.
RATELIMIT_TRUST_X_FORWARDED_FOR = env.bool("RATELIMIT_TRUST_X_FORWARDED_FOR", default=False)
RATELIMIT_KEY_PREFIX = "rl"

# --- Celery -------------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
# Without a broker, tasks run in-process (the embedded default).
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Workers log through LOGGING's handlers (and their secret redaction), not
# handlers of Celery's own.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Redis redelivers an unacknowledged task after this long; no task may wait in the
# broker longer than this (future work is a row with a due time instead).
CELERY_BROKER_VISIBILITY_TIMEOUT = env.int("CELERY_BROKER_VISIBILITY_TIMEOUT", default=3600)
CELERY_MAX_COUNTDOWN = 300
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_BROKER_VISIBILITY_TIMEOUT}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = "default"
# Tasks whose callers do not pick a queue themselves.
CELERY_TASK_ROUTES = {
    "segments.*": {"queue": "segments"},
    "scoring.*": {"queue": "scoring"},
    "messaging.*": {"queue": "dispatch"},
    # Webhook posts wait on the receiver (up to 10 s): keep them off the dispatch queue.
    "journeys.deliver_webhook": {"queue": "default"},
    "journeys.sweep_webhooks": {"queue": "default"},
    "journeys.*": {"queue": "dispatch"},
}
# Outbound journey webhooks may post to loopback/private addresses (local dev, tests only).
OUTBOUND_WEBHOOKS_ALLOW_PRIVATE = env.bool("OUTBOUND_WEBHOOKS_ALLOW_PRIVATE", default=False)
CELERY_TASK_QUEUES_NAMES = ("ingest", "dispatch", "segments", "scoring", "default")
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Celery's Django fixup closes the DB connection around every task unless told to
# reuse it (197 tasks/s vs 960/s measured here).
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1000)

# --- Auth, i18n, static ---------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/admin/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns on every request otherwise
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# --- REST API ----------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["retention.api_auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["retention.api_auth.HasApiKeyScope"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "retention.api_errors.api_exception_handler",
    "DEFAULT_PAGINATION_CLASS": "retention.pagination.Cursor",
    "PAGE_SIZE": 100,
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Retention platform API",
    "DESCRIPTION": (
        "REST API for storefronts. Authenticate with `Authorization: Bearer <api key>`. "
        'Every error has the shape `{"error": {"code", "message", "fields"}}`.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- Providers (platform accounts; see ARCHITECTURE.md) -------------------------
SENDGRID_API_KEY = env.str("SENDGRID_API_KEY", default="")
SENDGRID_API_HOST = env.str("SENDGRID_API_HOST", default="https://api.sendgrid.com")
SENDGRID_WEBHOOK_PUBLIC_KEY = env.str("SENDGRID_WEBHOOK_PUBLIC_KEY", default="")
TWILIO_ACCOUNT_SID = env.str("TWILIO_ACCOUNT_SID", default="")
TWILIO_AUTH_TOKEN = env.str("TWILIO_AUTH_TOKEN", default="")
TWILIO_API_BASE_URL = env.str("TWILIO_API_BASE_URL", default="https://api.twilio.com")
# Sender for stores that have not set their own (Messaging settings in the admin).
MESSAGING_FROM_EMAIL = env.str("MESSAGING_FROM_EMAIL", default="")
# Seconds before a provider call gives up. A timeout after the request was sent
# leaves the message `unknown` (reconciled from callbacks), never re-sent blindly.
PROVIDER_CONNECT_TIMEOUT = env.float("PROVIDER_CONNECT_TIMEOUT", default=5.0)
PROVIDER_TIMEOUT = env.float("PROVIDER_TIMEOUT", default=10.0)
# An `unknown` message no callback settled within this many seconds is looked
# up at the provider and, if the provider never got it, sent again
# (messaging.services.reconcile). Longer than the provider takes to list a
# message it accepted (SendGrid's activity feed: minutes).
MESSAGING_RECONCILE_AFTER_SECONDS = env.int("MESSAGING_RECONCILE_AFTER_SECONDS", default=900)

# Webhook intake: after a process has seen a drain queued for a store, for this
# many seconds it stores further webhooks of that store without asking Redis
# (each drain checks once more this long after it ends; commerce.tasks).
INBOX_KICK_MEMO_SECONDS = env.float("INBOX_KICK_MEMO_SECONDS", default=0.05)

# --- Email to staff (rising-interest alerts to owners) ----------------------------
# Shoppers' messages go through the messaging outbox, not here. Default: printed
# to the console; set EMAIL_BACKEND=django.core.mail.backends.smtp.EmailBackend
# and the EMAIL_HOST_* variables to send for real.
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Retention platform <alerts@localhost>")
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=587)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=True)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)

# --- Security ------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)
    CSRF_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)
    SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # Health probes come from the load balancer over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]

# --- Logging: structured one-line events -------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"event": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # No credential or signed token in any line (retention.logs).
    "filters": {"redact": {"()": "retention.logs.RedactSecrets"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "event", "filters": ["redact"]}
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- Beat schedule (periodic sweepers) -------------------------------------------
# BEAT_MESSAGING_SWEEP_SECONDS (default 30) and BEAT_JOURNEYS_TICK_SECONDS
# (default 60) set the two sweepers' intervals (the fault suite runs beat with
# a few seconds). With django-celery-beat's DatabaseScheduler a beat writes
# these into the schedule table when it starts.
CELERY_BEAT_SCHEDULE = {
    "commerce-sweep-inbox": {"task": "commerce.sweep_inbox", "schedule": 60.0},
    "commerce-mark-abandoned-carts": {"task": "commerce.mark_abandoned_carts", "schedule": 300.0},
    # Deletes processed webhooks past each store's inbox keep days.
    "commerce-prune-inbox": {"task": "commerce.prune_inbox", "schedule": 3600.0},
    # Queues each tenant's nightly segment recompute once its local night hour comes.
    "segments-schedule-nightly": {"task": "segments.schedule_nightly", "schedule": 900.0},
    # Sends what is due (deferred, retried, lost on the way), recovers batches of
    # dead workers, applies provider callbacks not yet applied.
    "messaging-sweep": {
        "task": "messaging.sweep",
        "schedule": env.float("BEAT_MESSAGING_SWEEP_SECONDS", default=30.0),
    },
    # Reads new triggers and takes due journey steps, per tenant.
    "journeys-tick": {
        "task": "journeys.tick",
        "schedule": env.float("BEAT_JOURNEYS_TICK_SECONDS", default=60.0),
    },
    # Delivers outbound journey webhooks that are due (retries, lost tasks).
    "journeys-sweep-webhooks": {"task": "journeys.sweep_webhooks", "schedule": 60.0},
    # Queues each tenant's nightly churn scoring (weekly training) in its night.
    "scoring-schedule-nightly": {"task": "scoring.schedule_nightly", "schedule": 900.0},
    # Re-queues chunks of scoring runs lost on the way (a dead worker, a lost message).
    "scoring-sweep": {"task": "scoring.sweep", "schedule": 300.0},
    # The dashboard's rollups: each tenant's recent days in its night, today's hourly.
    "insights-schedule-nightly": {"task": "insights.schedule_nightly", "schedule": 900.0},
    "insights-refresh-today": {"task": "insights.refresh_today", "schedule": 3600.0},
    # Weekly summaries that are due (Monday morning in each store's timezone).
    "insights-send-summaries": {"task": "insights.send_summaries", "schedule": 900.0},
}
