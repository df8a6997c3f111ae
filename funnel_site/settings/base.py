"""Settings, all from the environment, with defaults that run on a laptop (SQLite, filesystem broker).

Environment variables (every one optional):
  DATABASE_URL        default sqlite:///<VAR_DIR>/db.sqlite3; e.g. postgres://user@host:5432/db
  CELERY_BROKER_URL   default filesystem:// under <VAR_DIR>/celery; e.g. redis://127.0.0.1:6379/0
  CELERY_RESULT_BACKEND  default file://<VAR_DIR>/celery/results (or redis when the broker is redis)
  FUNNEL_VAR_DIR      where the embedded database, broker folders and model artifacts live (default ./var)
  MODEL_ARTIFACT_DIR  default <VAR_DIR>/models
  SECRET_KEY, DEBUG, ALLOWED_HOSTS (comma separated), LOG_FORMAT (json|console), LOG_LEVEL
  INGEST_MAX_BODY_BYTES (default 32 MiB), INGEST_MAX_BATCH (default 10000)
  IMPORT_MIN_SHARD_BYTES (default 4 MiB), IMPORT_MAX_JOBS (default 8): parallel file import
  FUNNEL_QUERY_TIMEOUT_SECONDS (default 60), FUNNEL_CACHE_SECONDS (funnel results, default 600),
  FUNNEL_COLUMN_LOAD_TIMEOUT_SECONDS (a process's first load of a workspace's events, default 600)
  READ_MODEL_DIR      the read model's snapshots on disk (default <VAR_DIR>/readmodel; empty: memory only)
  PREDICTION_TRAIN_TIME_LIMIT (s, default 3600), PREDICTION_AUTO_ACTIVATE (default false: activate a new
  model only when none is active, or explicitly), PREDICTION_SCORE_SHARD_SIZE (contacts, default 50000)
  Production (README "Production"): FUNNEL_TLS, HSTS_SECONDS, HSTS_INCLUDE_SUBDOMAINS, HSTS_PRELOAD,
  SECURE_SSL_REDIRECT, FUNNEL_PROXY_SSL_HEADER, USE_X_FORWARDED_HOST, FUNNEL_NUM_PROXIES, CACHE_URL,
  FUNNEL_FAILED_KEY_RATE (20/min), FUNNEL_API_KEY_RATE (3000/min), FUNNEL_REQUIRED_QUEUES,
  FUNNEL_RUNNER_STALE_SECONDS (60), PREDICTION_MAX_ATTEMPTS (3), PREDICTION_TRAINING_QUEUE, PREDICTION_SCORING_QUEUE,
  INTEGRATIONS_MAX_RUN_ATTEMPTS (5)
  PREDICTION_RESCORE_DELAY_SECONDS (real-time debounce, default 1.0), PREDICTION_REALTIME_EXPLAIN_MAX
  (explain a real-time rescoring of at most this many contacts right away, default 50)
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

from funnel_site.logging_config import build_logging
from funnel_site.queues import CELERY_TASK_QUEUES, CELERY_TASK_ROUTES


def env_bool(name: str, default: bool) -> bool:
    """Read a boolean flag: 1/true/yes/on are true."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(os.environ.get("FUNNEL_VAR_DIR", BASE_DIR / "var")).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)
# The funnel kernels' compiled code depends on the source only: one cache per checkout, in its own
# var folder, shared by every process (and by every FUNNEL_VAR_DIR); funnels/engine/_jit.py.
_numba_cache = BASE_DIR / "var" / "numba"
try:
    _numba_cache.mkdir(parents=True, exist_ok=True)
except OSError:  # a read-only checkout: the configured var folder instead
    _numba_cache = VAR_DIR / "numba"
os.environ.setdefault("NUMBA_CACHE_DIR", str(_numba_cache))

# The fallback key and a wildcard host are for development: with DEBUG off the web server refuses
# to start on them (funnel_site/security.py, called by wsgi.py); commands still run.
INSECURE_SECRET_KEY = "dev-only-insecure-key-change-me-in-production"
SECRET_KEY = os.environ.get("SECRET_KEY", INSECURE_SECRET_KEY)
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = [h for h in os.environ.get("ALLOWED_HOSTS", "*").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o]
# Production behind TLS (README "Production"): FUNNEL_TLS=1 makes cookies Secure, redirects http to
# https and sends HSTS (HSTS_SECONDS, default a year); FUNNEL_PROXY_SSL_HEADER=1 trusts the proxy's
# X-Forwarded-Proto (only behind a proxy that sets it); USE_X_FORWARDED_HOST likewise.
FUNNEL_TLS = env_bool("FUNNEL_TLS", False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = FUNNEL_TLS
SECURE_SSL_REDIRECT = FUNNEL_TLS and env_bool("SECURE_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = int(os.environ.get("HSTS_SECONDS", "31536000")) if FUNNEL_TLS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = FUNNEL_TLS and env_bool("HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = FUNNEL_TLS and env_bool("HSTS_PRELOAD", True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]  # probes from inside the network speak http
if env_bool("FUNNEL_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
USE_X_FORWARDED_HOST = env_bool("USE_X_FORWARDED_HOST", False)
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "funnel_site.events",
    "funnel_site.funnels",
    "funnel_site.dashboard",
    "predictions",
    "integrations",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "funnel_site.urls"
WSGI_APPLICATION = "funnel_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # the admin's branding (admin/base_site.html) must come before django.contrib.admin's own
        "DIRS": [BASE_DIR / "funnel_site" / "dashboard" / "admin_templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "funnel_site.dashboard.context_processors.ui",
            ],
        },
    }
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
        conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "60")),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file (not :memory:) so that a worker process sees what the tests write; WAL for concurrency.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/dashboard/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# Large ingestion bodies are read by our own view with its own limit (INGEST_MAX_BODY_BYTES).
INGEST_MAX_BODY_BYTES = int(os.environ.get("INGEST_MAX_BODY_BYTES", str(32 * 1024 * 1024)))
INGEST_MAX_BATCH = int(os.environ.get("INGEST_MAX_BATCH", "10000"))
INGEST_MAX_FUTURE_SECONDS = 24 * 3600
# import_events: a file of at least two parts this large is imported by up to IMPORT_MAX_JOBS
# processes at once (one per core by default), see funnel_site/events/imports.py.
IMPORT_MIN_SHARD_BYTES = int(os.environ.get("IMPORT_MIN_SHARD_BYTES", str(4 * 1024 * 1024)))
IMPORT_MAX_JOBS = int(os.environ.get("IMPORT_MAX_JOBS", "8"))
DATA_UPLOAD_MAX_MEMORY_SIZE = INGEST_MAX_BODY_BYTES

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["funnel_site.events.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": [
        "funnel_site.events.auth.HasWorkspace",
        "funnel_site.events.auth.WorkspaceRole",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PAGINATION_CLASS": "funnel_site.events.pagination.BoundedLimitOffsetPagination",
    # JSON bodies only: one parser, so the schema documents exactly what is parsed
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",  # APIClient posts JSON, the one format parsed
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "funnel_site.events.apis.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["funnel_site.events.throttling.ApiKeyRateThrottle"],
    # proxies in front of the server that append to X-Forwarded-For (0: use REMOTE_ADDR)
    "NUM_PROXIES": int(os.environ.get("FUNNEL_NUM_PROXIES", "0")),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Funnel plugin API",
    "DESCRIPTION": "Events, funnels, predictions, segments and destinations, per workspace.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    # Swagger UI served from our own static files (no CDN: the product runs offline).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # one name per choice set, so fields of the same name in several apps cannot collide
    "ENUM_NAME_OVERRIDES": {
        "TargetEnum": "predictions.models.Target",
        "ArchEnum": "predictions.models.Arch",
        "SyncModeEnum": "integrations.models.SyncMode",
        "WebhookSourceEnum": "integrations.models.WebhookSourceKind",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "funnel_site.events.schema.document_errors",  # 401/403/404/429... with the one error body
    ],
}

# Celery: one app, queues per concern (see funnel_site/queues.py).
_broker_dir = VAR_DIR / "celery"
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("broker", "processed", "results", "control"):
        (_broker_dir / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "broker"),
        "data_folder_out": str(_broker_dir / "broker"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
        "control_folder": str(_broker_dir / "control"),
    }
    _default_backend = f"file://{_broker_dir / 'results'}"
elif CELERY_BROKER_URL.startswith("redis://"):
    _default_backend = CELERY_BROKER_URL
else:
    _default_backend = "rpc://"
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND", _default_backend)
CELERY_TASK_QUEUES = CELERY_TASK_QUEUES
CELERY_TASK_ROUTES = CELERY_TASK_ROUTES
CELERY_TASK_DEFAULT_QUEUE = "ingest"
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"
from funnel_site.schedules import CELERY_BEAT_SCHEDULE  # noqa: E402, F401  (a setting: every periodic task, one module)

# Callables run by `run_demo` after the demo data exists (each part of the product adds its own).
DEMO_SETUP_HOOKS: list[str] = ["predictions.demo.queue_first_model"]

MODEL_ARTIFACT_DIR = Path(os.environ.get("MODEL_ARTIFACT_DIR", VAR_DIR / "models"))

# Funnels: a query stops with an error past this time; results are cached (key: definition + newest event).
FUNNEL_QUERY_TIMEOUT_SECONDS = float(os.environ.get("FUNNEL_QUERY_TIMEOUT_SECONDS", "60"))
FUNNEL_CACHE_SECONDS = int(os.environ.get("FUNNEL_CACHE_SECONDS", "600"))
FUNNEL_COLUMN_LOAD_TIMEOUT_SECONDS = float(os.environ.get("FUNNEL_COLUMN_LOAD_TIMEOUT_SECONDS", "600"))
# Compile (or load) the funnel kernels in a thread at process start, not at the first query.
FUNNEL_WARM_KERNELS = env_bool("FUNNEL_WARM_KERNELS", True)
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "funnel-plugin"}}
# "shared": one cache for every process (API throttling, worker heartbeats): Redis when CACHE_URL
# or a redis broker is configured, else files under VAR_DIR (the embedded default, one machine).
CACHE_URL = os.environ.get("CACHE_URL") or (CELERY_BROKER_URL if CELERY_BROKER_URL.startswith("redis://") else "")
if CACHE_URL:
    CACHES["shared"] = {
        "BACKEND": "funnel_site.cache.RedisCache", "LOCATION": CACHE_URL, "KEY_PREFIX": "funnel",
        # a probe must answer fast when Redis is down
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    }
else:
    # culling at the default 300 entries would drop worker heartbeats among many throttle keys
    CACHES["shared"] = {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                        "LOCATION": str(VAR_DIR / "cache"), "KEY_PREFIX": "funnel",
                        "OPTIONS": {"MAX_ENTRIES": 100_000}}
# API throttling (funnel_site/events/throttling.py): failed key attempts per client address (every
# request from it is refused with 429 once over), and requests per API key (ApiKey.rate_limit
# overrides the default per key). Rates are N/s, N/min, N/hour or N/day.
FUNNEL_THROTTLE_RATES = {
    "failed_key": os.environ.get("FUNNEL_FAILED_KEY_RATE", "20/min"),
    "api_key": os.environ.get("FUNNEL_API_KEY_RATE", "3000/min"),
}
# The read model's snapshots on disk, mapped by every process (funnel_site/events/snapshots.py); "" disables.
READ_MODEL_DIR = os.environ.get("READ_MODEL_DIR", str(VAR_DIR / "readmodel"))

# Predictions: training jobs (predictions/training.py) and scoring.
PREDICTION_TRAIN_TIME_LIMIT = int(os.environ.get("PREDICTION_TRAIN_TIME_LIMIT", "3600"))
PREDICTION_AUTO_ACTIVATE = env_bool("PREDICTION_AUTO_ACTIVATE", False)
PREDICTION_HEARTBEAT_SECONDS = 5
PREDICTION_STALE_SECONDS = 600  # no heartbeat for this long: the training is failed by the reaper
# Stranded work (funnel_site/recovery.py): a running job whose row heartbeat is older than this is
# handed back to the queue, at most PREDICTION_MAX_ATTEMPTS times for a training, then failed.
FUNNEL_RUNNER_STALE_SECONDS = int(os.environ.get("FUNNEL_RUNNER_STALE_SECONDS", "60"))
PREDICTION_MAX_ATTEMPTS = int(os.environ.get("PREDICTION_MAX_ATTEMPTS", "3"))
# the queue trainings are sent to (default: the `training` route of funnel_site/queues.py)
PREDICTION_TRAINING_QUEUE = os.environ.get("PREDICTION_TRAINING_QUEUE") or None
# the queue scoring runs and their shards go to (default: the `scoring` route)
PREDICTION_SCORING_QUEUE = os.environ.get("PREDICTION_SCORING_QUEUE") or None
if PREDICTION_SCORING_QUEUE:
    _scoring_route = {"queue": PREDICTION_SCORING_QUEUE, "routing_key": PREDICTION_SCORING_QUEUE}
    CELERY_TASK_ROUTES = {"predictions.tasks.score_*": _scoring_route, "predictions.tasks.scoring_*": _scoring_route,
                          **{k: v for k, v in CELERY_TASK_ROUTES.items() if k != "predictions.tasks.score_*"}}
# /readyz: the queues that need a live worker (comma separated; empty checks none)
FUNNEL_REQUIRED_QUEUES = [q for q in os.environ.get("FUNNEL_REQUIRED_QUEUES", "ingest,training,scoring,sync").split(",") if q]
PREDICTION_SCORE_SHARD_SIZE = int(os.environ.get("PREDICTION_SCORE_SHARD_SIZE", "50000"))
PREDICTION_TRAIN_DEFAULTS: dict = {}  # TrainConfig fields overriding its defaults (tests: tiny sizes)
# Real-time scores (predictions/realtime.py): a drain waits this long to gather a burst of events,
# takes at most this many contacts per task, and explains them when they are at most this many.
PREDICTION_RESCORE_DELAY_SECONDS = float(os.environ.get("PREDICTION_RESCORE_DELAY_SECONDS", "1.0"))
PREDICTION_RESCORE_BATCH = 5000
PREDICTION_REALTIME_EXPLAIN_MAX = int(os.environ.get("PREDICTION_REALTIME_EXPLAIN_MAX", "50"))

LOGGING = build_logging(
    fmt=os.environ.get("LOG_FORMAT", "console"), level=os.environ.get("LOG_LEVEL", "INFO")
)

# Integrations (integrations/): credentials key (comma-separated Fernet keys, newest first; empty:
# derived from SECRET_KEY), file exports root, retry and rate-limit bounds, inbound webhook tolerance.
INTEGRATIONS_FERNET_KEY = os.environ.get("INTEGRATIONS_FERNET_KEY", "")
INTEGRATIONS_FILE_ROOT = Path(os.environ.get("INTEGRATIONS_FILE_ROOT", VAR_DIR / "exports"))
# File exports to object storage: the STORAGES alias the file destination writes to ("": the local
# INTEGRATIONS_FILE_ROOT). INTEGRATIONS_EXPORT_S3_BUCKET defines an "exports" alias on django-storages'
# S3Storage (credentials from boto3's usual chain: AWS_ACCESS_KEY_ID..., or the instance role).
_export_bucket = os.environ.get("INTEGRATIONS_EXPORT_S3_BUCKET", "")
if _export_bucket:
    STORAGES["exports"] = {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {
        "bucket_name": _export_bucket, "location": os.environ.get("INTEGRATIONS_EXPORT_S3_PREFIX", ""),
        "endpoint_url": os.environ.get("INTEGRATIONS_EXPORT_S3_ENDPOINT_URL") or None,
        "region_name": os.environ.get("INTEGRATIONS_EXPORT_S3_REGION") or None,
        "file_overwrite": True,  # one export per path, replaced whole by each run
    }}
INTEGRATIONS_FILE_STORAGE = os.environ.get("INTEGRATIONS_FILE_STORAGE", "exports" if _export_bucket else "")
INTEGRATIONS_RATE_LIMIT_REDIS_URL = os.environ.get("INTEGRATIONS_RATE_LIMIT_REDIS_URL", "")
INTEGRATIONS_RUN_STALE_SECONDS = int(os.environ.get("INTEGRATIONS_RUN_STALE_SECONDS", "300"))
INTEGRATIONS_MAX_TRIES = int(os.environ.get("INTEGRATIONS_MAX_TRIES", "5"))
# a sync run stranded by dead workers this many times is failed (integrations/recovery.py)
INTEGRATIONS_MAX_RUN_ATTEMPTS = int(os.environ.get("INTEGRATIONS_MAX_RUN_ATTEMPTS", "5"))
INTEGRATIONS_RETRY_BASE_SECONDS = float(os.environ.get("INTEGRATIONS_RETRY_BASE_SECONDS", "0.5"))
INTEGRATIONS_RETRY_CAP_SECONDS = float(os.environ.get("INTEGRATIONS_RETRY_CAP_SECONDS", "30"))
INTEGRATIONS_MAX_RETRY_AFTER_SECONDS = float(os.environ.get("INTEGRATIONS_MAX_RETRY_AFTER_SECONDS", "120"))
INTEGRATIONS_MAX_RATE_LIMIT_WAIT_SECONDS = float(os.environ.get("INTEGRATIONS_MAX_RATE_LIMIT_WAIT_SECONDS", "600"))
INTEGRATIONS_WEBHOOK_TOLERANCE_SECONDS = int(os.environ.get("INTEGRATIONS_WEBHOOK_TOLERANCE_SECONDS", "300"))
INTEGRATIONS_WEBHOOK_BASE_URL = os.environ.get("INTEGRATIONS_WEBHOOK_BASE_URL", "")  # public URL behind a proxy
INTEGRATIONS_WEBHOOK_COALESCE_SECONDS = float(os.environ.get("INTEGRATIONS_WEBHOOK_COALESCE_SECONDS", "0.25"))
