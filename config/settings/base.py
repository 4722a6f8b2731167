"""Settings shared by every environment.

One ``env`` object (django-environ). The embedded default needs no configuration at
all: SQLite in ``data/``, a Celery broker on the local filesystem and a local-memory
cache. Every service can be switched to a real one by environment variable.
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent
env = environ.Env()

if env.bool("DJANGO_READ_DOT_ENV_FILE", default=False):
    env.read_env(str(BASE_DIR / ".env"))

DATA_DIR = Path(env("MODELGATE_DATA_DIR", default=str(BASE_DIR / "data")))
DATA_DIR.mkdir(parents=True, exist_ok=True)

# --- core -----------------------------------------------------------------------
DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env("DJANGO_SECRET_KEY", default="insecure-embedded-default-key-change-me")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
SITE_ID = 1
# Public base URL of this deployment, used in quickstart samples and e-mails.
MODELGATE_PUBLIC_URL = env("MODELGATE_PUBLIC_URL", default="http://127.0.0.1:8000")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.sites",
    "allauth",
    "allauth.account",
    "rest_framework",
    "drf_spectacular",
    "accounts",
    "billing",
    "models_catalog",
    "inference",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

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
                "django.template.context_processors.i18n",
                "accounts.context_processors.organization",
                "models_catalog.context_processors.catalogue",
            ],
        },
    },
]

# --- database -------------------------------------------------------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'modelgate.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL + a busy timeout so the web process and the worker can share the file.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # A database host that doesn't answer must not hold a database thread for the OS's
    # TCP timeout: the relay answers 503 and retries settlements (inference/relay.py).
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=5)
    )
# Threads for the ORM work of async code (config/asyncdb.py): each keeps one connection, so a
# web process holds at most this many, however many requests and streams are in flight.
DB_THREADS = env.int("DB_THREADS", default=2)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

# --- cache (rate limits, key and catalogue lookups) -----------------------------
REDIS_URL = env("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env("CACHE_KEY_PREFIX", default="mg"),
            # A Redis that hangs must not hold a database thread: fail fast, read as a miss
            # (config/cachesafe.py).
            "OPTIONS": {
                "socket_connect_timeout": env.float("CACHE_REDIS_TIMEOUT_SECONDS", default=1.0),
                "socket_timeout": env.float("CACHE_REDIS_TIMEOUT_SECONDS", default=1.0),
            },
        }
    }
else:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "modelgate"}
    }

# --- auth -----------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "dashboard"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = env("ACCOUNT_EMAIL_VERIFICATION", default="mandatory")
ACCOUNT_CONFIRM_EMAIL_ON_GET = True
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_ADAPTER = "accounts.adapters.AccountAdapter"
ACCOUNT_FORMS = {"signup": "accounts.forms.SignupForm"}
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Modelgate] "
ACCOUNT_DEFAULT_HTTP_PROTOCOL = env("ACCOUNT_DEFAULT_HTTP_PROTOCOL", default="http")

EMAIL_BACKEND = env("DJANGO_EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="Modelgate <noreply@modelgate.local>")

# Invitations
INVITATION_TTL_HOURS = env.int("INVITATION_TTL_HOURS", default=72)

# --- i18n -----------------------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- static ---------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").exists() else []
# Serve /static/ from the ASGI app itself (embedded default); production puts nginx in front.
MODELGATE_SERVE_STATIC = env.bool("MODELGATE_SERVE_STATIC", default=True)
MEDIA_ROOT = Path(env("MEDIA_ROOT", default=str(DATA_DIR / "media")))

# --- DRF ------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "config.schema.AutoSchema",
    "EXCEPTION_HANDLER": "config.exceptions.api_exception_handler",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Modelgate management API",
    "DESCRIPTION": "Keys, members, organizations, balance and usage. The model relay lives under /v1.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- Celery ---------------------------------------------------------------------
# Embedded default: kombu's filesystem transport (no server), measured against
# sqla+sqlite in docs/benchmarks.md. Results go to a SQLite file via SQLAlchemy.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://")
_celery_dir = DATA_DIR / "celery"
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("in", "processed", "control"):
        (_celery_dir / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_celery_dir / "in"),
        "data_folder_out": str(_celery_dir / "in"),
        "processed_folder": str(_celery_dir / "processed"),
        "store_processed": False,
        "control_folder": str(_celery_dir / "control"),
        "polling_interval": 0.1,
    }
CELERY_RESULT_BACKEND = env(
    "CELERY_RESULT_BACKEND",
    default=(REDIS_URL or f"db+sqlite:///{DATA_DIR / 'celery-results.sqlite3'}"),
)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_RESULT_EXPIRES = 24 * 3600
CELERY_BEAT_SCHEDULE: dict = {}

# --- secrets at rest -------------------------------------------------------------
# Fernet key(s) for channel API keys; comma-separated, newest first (rotation).
FIELD_ENCRYPTION_KEYS = env.list(
    "FIELD_ENCRYPTION_KEY",
    default=["bW9kZWxnYXRlLWVtYmVkZGVkLWRlZmF1bHQta2V5ISE="],
)

# --- logging ----------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- billing ---
# Stripe: without STRIPE_SECRET_KEY the top-up page says so and points to redemption codes.
STRIPE_SECRET_KEY = env("STRIPE_SECRET_KEY", default="")
STRIPE_WEBHOOK_SECRET = env("STRIPE_WEBHOOK_SECRET", default="")
# Another API base (a Stripe emulator such as localstripe); empty = https://api.stripe.com.
STRIPE_API_BASE = env("STRIPE_API_BASE", default="")
STRIPE_WEBHOOK_TOLERANCE_SECONDS = env.int("STRIPE_WEBHOOK_TOLERANCE_SECONDS", default=300)
# Stripe Checkout payment method types, e.g. card,alipay,wechat_pay.
STRIPE_CHECKOUT_PAYMENT_METHODS = env.list("STRIPE_CHECKOUT_PAYMENT_METHODS", default=["card"])
# Amounts in USD as decimal strings (never float).
SIGNUP_CREDIT_USD = env("SIGNUP_CREDIT_USD", default="0.10")
TOPUP_MIN_USD = env("TOPUP_MIN_USD", default="5")
TOPUP_MAX_USD = env("TOPUP_MAX_USD", default="2000")
TOPUP_PRESETS_USD = env.list("TOPUP_PRESETS_USD", default=["10", "25", "50", "100", "500"])
# Default lifetime of a hold; the expiry task gives stale holds back.
BILLING_HOLD_TTL_SECONDS = env.int("BILLING_HOLD_TTL_SECONDS", default=900)
CELERY_BEAT_SCHEDULE.update(
    {
        "billing-expire-holds": {
            "task": "billing.tasks.holds_expire_task",
            "schedule": env.float("BILLING_HOLDS_EXPIRE_INTERVAL_SECONDS", default=60.0),
        },
        "billing-retry-stripe-events": {"task": "billing.tasks.stripe_events_retry_task", "schedule": 300.0},
        "billing-audit": {"task": "billing.tasks.billing_audit_task", "schedule": 3600.0},
    }
)

# --- catalogue ------------------------------------------------------------------
# Seconds a process may reuse its cached catalogue snapshot (models, prices, channels).
# With Redis every write is seen at once; with the local-memory cache other processes
# catch up within this many seconds.
CATALOGUE_CACHE_SECONDS = env.int("CATALOGUE_CACHE_SECONDS", default=60)
# How often a process asks the shared cache whether the catalogue changed (prices, channels,
# models): a change made elsewhere reaches every process within this many seconds.
CATALOGUE_VERSION_CHECK_SECONDS = env.float("CATALOGUE_VERSION_CHECK_SECONDS", default=1.0)
# How long a process keeps its own copy of an API key (the relay reads it on every request):
# a revocation made in another process takes effect here within this many seconds.
API_KEY_LOCAL_CACHE_SECONDS = env.float("API_KEY_LOCAL_CACHE_SECONDS", default=1.0)
# After the shared cache failed on the hot path, read from the database without asking it for
# this many seconds (config/cachesafe.py).
CACHE_RETRY_SECONDS = env.float("CACHE_RETRY_SECONDS", default=2.0)

# --- relay ---
RELAY_MAX_BODY_BYTES = env.int("RELAY_MAX_BODY_BYTES", default=32 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = RELAY_MAX_BODY_BYTES
RELAY_MAX_IMAGES_PER_REQUEST = env.int("RELAY_MAX_IMAGES_PER_REQUEST", default=20)
RELAY_MAX_IMAGE_BYTES = env.int("RELAY_MAX_IMAGE_BYTES", default=20 * 1024 * 1024)
RELAY_MAX_IMAGE_PIXELS = env.int("RELAY_MAX_IMAGE_PIXELS", default=50_000_000)
# Output tokens held for when a request gives no max_tokens and the model states no maximum.
RELAY_DEFAULT_MAX_OUTPUT_TOKENS = env.int("RELAY_DEFAULT_MAX_OUTPUT_TOKENS", default=4096)
# Without max_tokens and without balance for the model's maximum output, the gateway lowers
# max_tokens to what the balance covers — if that is at least this many tokens.
RELAY_MIN_OUTPUT_TOKENS = env.int("RELAY_MIN_OUTPUT_TOKENS", default=16)
RELAY_UPSTREAM_CONNECT_TIMEOUT = env.float("RELAY_UPSTREAM_CONNECT_TIMEOUT", default=5.0)
RELAY_UPSTREAM_READ_TIMEOUT = env.float("RELAY_UPSTREAM_READ_TIMEOUT", default=120.0)
RELAY_MAX_ATTEMPTS = env.int("RELAY_MAX_ATTEMPTS", default=3)
# Connections per upstream channel and worker process (streams each hold one for their life).
RELAY_UPSTREAM_MAX_CONNECTIONS = env.int("RELAY_UPSTREAM_MAX_CONNECTIONS", default=10_000)
RELAY_UPSTREAM_KEEPALIVE_CONNECTIONS = env.int("RELAY_UPSTREAM_KEEPALIVE_CONNECTIONS", default=200)
RELAY_FAILOVER_BUDGET_SECONDS = env.float("RELAY_FAILOVER_BUDGET_SECONDS", default=30.0)
RELAY_CHANNEL_COOLDOWN_SECONDS = env.int("RELAY_CHANNEL_COOLDOWN_SECONDS", default=30)
# After a client disconnects mid-stream, keep reading the upstream this long for its usage.
RELAY_DRAIN_SECONDS = env.float("RELAY_DRAIN_SECONDS", default=30.0)
# The database unreachable when a request is to be settled (a restart, a failover): retry the
# settlement this long before giving up (the hold then expires; a non-streaming caller gets a
# 503 and is charged nothing).
RELAY_SETTLE_RETRY_SECONDS = env.float("RELAY_SETTLE_RETRY_SECONDS", default=30.0)
RELAY_STREAM_QUEUE = env.int("RELAY_STREAM_QUEUE", default=256)
# The upstream simulator `make run` starts as a demo upstream when no provider key is set.
MODELGATE_SIMULATOR_URL = env("MODELGATE_SIMULATOR_URL", default="http://127.0.0.1:8900")

# --- dashboard ---
# Chart.js comes from the npm registry (frontend/package.json, `npm ci --prefix frontend`) and
# is served from /static/vendor/chartjs/ straight out of node_modules (collectstatic copies it).
_CHARTJS_DIST = BASE_DIR / "frontend" / "node_modules" / "chart.js" / "dist"
if _CHARTJS_DIST.exists():
    STATICFILES_DIRS = [*STATICFILES_DIRS, ("vendor/chartjs", _CHARTJS_DIST)]
# Rows per page of the usage log and the billing statement.
DASHBOARD_PAGE_SIZE = env.int("DASHBOARD_PAGE_SIZE", default=50)
# Fold today's and yesterday's usage into daily roll-ups (the overview reads them for past days).
CELERY_IMPORTS = [*globals().get("CELERY_IMPORTS", []), "inference.tasks_rollups"]
CELERY_BEAT_SCHEDULE.update(
    {
        "inference-usage-rollups": {
            "task": "inference.usage_rollups_fold",
            "schedule": env.float("USAGE_ROLLUP_INTERVAL_SECONDS", default=300.0),
        },
    }
)
# Money and count filters for every template: {% load dashboard %} → {{ units|usd }}.
TEMPLATES[0]["OPTIONS"].setdefault("libraries", {})["dashboard"] = "inference.dashboard.templatetags"

# --- relay breadth ---
# Retriable failures in a row (per process) before a channel cools down for
# RELAY_CHANNEL_COOLDOWN_SECONDS; after the cooldown it is tried again (the probe).
RELAY_CHANNEL_FAILURE_THRESHOLD = env.int("RELAY_CHANNEL_FAILURE_THRESHOLD", default=3)
# Vendors whose models get http(s) image URLs fetched by the gateway (behind the SSRF guard)
# and inlined; everyone else receives the URL. See inference/fetch.py and docs/relay.md.
RELAY_FETCH_IMAGE_URL_VENDORS = env.list("RELAY_FETCH_IMAGE_URL_VENDORS", default=["google"])
RELAY_FETCH_TIMEOUT_SECONDS = env.float("RELAY_FETCH_TIMEOUT_SECONDS", default=10.0)
RELAY_FETCH_MAX_REDIRECTS = env.int("RELAY_FETCH_MAX_REDIRECTS", default=3)
# Tests only (never from the environment): let the fetch guard connect to 127.0.0.1 / ::1.
RELAY_FETCH_ALLOW_LOOPBACK_FOR_TESTS = False
# Vendors whose OpenAI-format endpoint reads Anthropic-style `cache_control` markers on content
# parts: an Anthropic-format request translated for them keeps its markers.
RELAY_CACHE_CONTROL_VENDORS = env.list("RELAY_CACHE_CONTROL_VENDORS", default=["alibaba"])

# --- jobs ---
# Files of /v1/files and batch output go through the "jobs" storage: a local folder under
# MEDIA_ROOT by default; any Django storage backend by configuration, e.g. an S3-compatible
# bucket: JOBS_STORAGE_BACKEND=storages.backends.s3.S3Storage (pip install django-storages[s3])
# and JOBS_STORAGE_OPTIONS='{"bucket_name": "mg-jobs", "endpoint_url": "https://…"}'. See docs/jobs.md.
from django.conf import global_settings as _global_settings  # noqa: E402

STORAGES = {
    **globals().get("STORAGES", _global_settings.STORAGES),
    "jobs": {
        "BACKEND": env("JOBS_STORAGE_BACKEND", default="django.core.files.storage.FileSystemStorage"),
        "OPTIONS": env.json("JOBS_STORAGE_OPTIONS", default={"location": str(MEDIA_ROOT / "jobs")}),
    },
}
JOBS_FILE_MAX_BYTES = env.int("JOBS_FILE_MAX_BYTES", default=200 * 1024 * 1024)
BATCH_MAX_LINES = env.int("BATCH_MAX_LINES", default=50_000)
# Lines per chunk (one Celery task), lines in flight per batch, batches running per organization.
BATCH_CHUNK_SIZE = env.int("BATCH_CHUNK_SIZE", default=100)
BATCH_LINE_CONCURRENCY = env.int("BATCH_LINE_CONCURRENCY", default=8)
BATCH_ORG_MAX_RUNNING = env.int("BATCH_ORG_MAX_RUNNING", default=2)
# A running chunk's lease (renewed every third of it); a batch nobody renewed for
# BATCH_STALE_SECONDS is resumed by the periodic sweeper (a worker died).
BATCH_LEASE_SECONDS = env.float("BATCH_LEASE_SECONDS", default=60.0)
BATCH_STALE_SECONDS = env.float("BATCH_STALE_SECONDS", default=120.0)
BATCH_BUSY_RETRY_SECONDS = env.float("BATCH_BUSY_RETRY_SECONDS", default=2.0)
COMPARE_MAX_TOKENS = env.int("COMPARE_MAX_TOKENS", default=1024)
CELERY_BEAT_SCHEDULE.update(
    {
        "jobs-batches-resume": {
            "task": "inference.tasks.batches_resume_task",
            "schedule": env.float("BATCH_RESUME_INTERVAL_SECONDS", default=30.0),
        },
    }
)

# --- local models ---
# The offline OCR model (`local-ocr`, RapidOCR; the `ocr` extra): runs in the web process off
# the event loop, this many at a time; its price per image (a new price row on bootstrap).
LOCAL_OCR_MAX_CONCURRENCY = env.int("LOCAL_OCR_MAX_CONCURRENCY", default=2)
LOCAL_OCR_PRICE_PER_IMAGE_USD = env.str("LOCAL_OCR_PRICE_PER_IMAGE_USD", default="0.001")

# --- security ---
# Login throttling (django-axes): failed logins are counted per (e-mail, client IP); after
# AXES_FAILURE_LIMIT failures that pair is locked out for AXES_COOLOFF_TIME hours (HTTP 429),
# a successful login resets the count. Appended here instead of editing the lists above:
# axes' backend must come first, its middleware last.
INSTALLED_APPS += ["axes"]
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", *AUTHENTICATION_BACKENDS]
MIDDLEWARE += ["axes.middleware.AxesMiddleware"]
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_TIME_HOURS", default=1.0)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# allauth authenticates with ``email=``, the admin with ``username=`` (the e-mail too).


def _axes_username(request, credentials=None):
    credentials = credentials or {}
    data = getattr(request, "POST", None) or {}
    name = credentials.get("email") or credentials.get("username") or data.get("login") or ""
    return str(name).strip().lower()


AXES_USERNAME_CALLABLE = _axes_username
AXES_SENSITIVE_PARAMETERS = ["password", "password1", "password2", "api_key", "secret"]
# Behind a proxy, set the number of trusted proxies so the client IP is not spoofable.
AXES_IPWARE_PROXY_COUNT = env.int("AXES_IPWARE_PROXY_COUNT", default=0) or None

# --- operations ---
# Health, metrics, structured logs, graceful shutdown, retention (docs/operations.md).
READYZ_TIMEOUT_SECONDS = env.float("READYZ_TIMEOUT_SECONDS", default=2.0)
# Bearer token for /metrics; empty = only loopback clients not coming through a proxy.
METRICS_TOKEN = env("METRICS_TOKEN", default="")
# The ledger sums on /metrics are one aggregate query, reused for this many seconds.
METRICS_LEDGER_CACHE_SECONDS = env.float("METRICS_LEDGER_CACHE_SECONDS", default=60.0)
METRICS_CELERY_QUEUES = env.list("METRICS_CELERY_QUEUES", default=["celery"])
# A Celery worker's own /metrics endpoint (config/worker_metrics.py): 0 = off. With the prefork
# pool it needs PROMETHEUS_MULTIPROC_DIR (an empty directory of the worker's own).
WORKER_METRICS_PORT = env.int("WORKER_METRICS_PORT", default=0)
WORKER_METRICS_ADDR = env("WORKER_METRICS_ADDR", default="127.0.0.1")
# On SIGTERM, after uvicorn's --timeout-graceful-shutdown, wait this long for stream pumps.
SHUTDOWN_DRAIN_SECONDS = env.float("SHUTDOWN_DRAIN_SECONDS", default=30.0)
# Load balancers probe over plain HTTP: never redirect the probes to HTTPS.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
# LOG_FORMAT=json: one JSON object per line (web and workers) — config/logs.py.
LOG_FORMAT = env("LOG_FORMAT", default="plain")
LOGGING["formatters"]["json"] = {"()": "config.logs.JsonFormatter"}
if LOG_FORMAT == "json":
    LOGGING["handlers"]["console"]["formatter"] = "json"
    # Let Django's LOGGING (not Celery's own setup) format the worker's records too.
    CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Raw usage records older than this many days are pruned daily; daily roll-ups are kept.
USAGE_RETENTION_DAYS = env.int("USAGE_RETENTION_DAYS", default=400)
CELERY_IMPORTS = [*CELERY_IMPORTS, "inference.tasks_retention"]
CELERY_BEAT_SCHEDULE.update(
    {
        "inference-usage-retention": {
            "task": "inference.usage_records_prune",
            "schedule": env.float("USAGE_RETENTION_INTERVAL_SECONDS", default=86400.0),
        },
    }
)
