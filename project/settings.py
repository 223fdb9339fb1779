"""Partwise settings: every value comes from the environment, with embedded development defaults.

`make run` needs no variable at all (SQLite, the embedded SeaweedFS, a Celery broker on SQLite).
Production sets DATABASE_URL, AWS_*, CELERY_BROKER_URL and the DJANGO_* knobs; see README.md.
"""

from datetime import timedelta

import environ

from .dev.embedded import (
    BASE_DIR,
    EMBEDDED_S3_ENDPOINT,
    VAR_DIR,
    dev_s3_credentials,
    dev_secret_key,
)

env = environ.Env()

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="") or dev_secret_key()
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "project.admin_site.PartwiseAdminConfig",  # django.contrib.admin, titled Partwise
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc as static files (no CDN)
    # Login lockout per username and address (README's "Login lockout"; uploads/lockout.py).
    "axes",
    "uploads",
    "uploads.tokens",
    # `manage.py rundev` (what `make run` runs) and the embedded SeaweedFS; no models.
    "project.dev",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # A chunked request body is read (bounded) or refused with 411 before anything parses it.
    "uploads.middleware.ChunkedBodyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a locked-out login into AXES_LOCKOUT_CALLABLE's 429.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # The site's own templates; the upload page's are the uploads app's (APP_DIRS).
        "DIRS": [BASE_DIR / "project" / "templates"],
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

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'partwise.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (server, worker, beat) share the file: wait for locks instead of failing,
    # and take the write lock at BEGIN so compare-and-set updates never deadlock on upgrade.
    # WAL + synchronous=NORMAL: a commit appends to the log instead of syncing the database
    # file several times, which was most of a sign call's cost (docs/performance.md); readers
    # no longer wait for the writer. A power cut may lose the last commits, never corrupt.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
# Keep a database connection between requests (one per gunicorn thread): opening one per
# request was about a third of a small sign call's CPU time (docs/performance.md). Health checks
# replace a connection the database dropped before it is used.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DJANGO_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Login lockout (django-axes) ------------------------------------------------------------
# Failed password logins (/login/, /admin/login/, POST /api/auth/token/) are counted per
# username and address; after AXES_FAILURE_LIMIT of them that pair is refused with a 429 for
# AXES_COOLOFF_TIME. Operators unlock in the admin (Axes > Access attempts: delete the row)
# or with `manage.py axes_reset_username <name>`.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# The address DRF's throttles use (REST_FRAMEWORK's NUM_PROXIES, from DJANGO_NUM_PROXIES).
AXES_CLIENT_IP_CALLABLE = "uploads.lockout.client_address"
AXES_LOCKOUT_CALLABLE = "uploads.lockout.lockout_response"
AXES_HTTP_RESPONSE_CODE = 429

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# The page's scripts and styles are the uploads app's static files (uploads/static/partwise/,
# where client.js and its modules are links to frontend/, the JS client's own folder).
STATIC_ROOT = env.path("DJANGO_STATIC_ROOT", default=str(VAR_DIR / "static"))
# Under /api/ and /s3/ a CSRF refusal is JSON (`csrf_failed`), like every other error there.
CSRF_FAILURE_VIEW = "uploads.api.errors.csrf_failure"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

# Request bodies of the JSON API are small; anything larger is refused with a JSON 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DJANGO_MAX_REQUEST_BODY", default=1024 * 1024)

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# A load balancer's health check reaches gunicorn over plain HTTP: answer it, never redirect.
SECURE_REDIRECT_EXEMPT = [r"^health/$"]
if not DEBUG:
    SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# e.g. security.W021 while HSTS preload is not wanted (docs/deployment.md says why).
SILENCED_SYSTEM_CHECKS = env.list("DJANGO_SILENCED_SYSTEM_CHECKS", default=[])

# --- REST API ------------------------------------------------------------------------------
# Partwise's API views carry their own authentication, parsers, renderers, throttles and error
# handler (uploads/api/base.py), so nothing here is needed for them; these are DRF's defaults
# for other views (the schema and docs).
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Behind N reverse proxies, throttles key anonymous clients on the address the proxies saw;
    # without it a client could pick its own key through a forged X-Forwarded-For.
    "NUM_PROXIES": env.int("DJANGO_NUM_PROXIES", default=0),
}
UPLOADS_API_THROTTLE_RATES = {
    "anon": env.str("API_THROTTLE_ANON", default="60/min"),
    "user": env.str("API_THROTTLE_USER", default="6000/min"),
    # Password guesses against POST /api/auth/token/, per client address.
    "token_login": env.str("API_THROTTLE_TOKEN_LOGIN", default="10/min"),
}
CACHES = {
    # The throttles count requests in the cache; use a shared one (Redis) with several processes.
    "default": env.cache("CACHE_URL", default="locmemcache://partwise"),
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Partwise API",
    "DESCRIPTION": "Resumable direct-to-S3 multipart uploads.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # The docs pages load their scripts and styles from our static files, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "uploads.api.schema.document_error_codes",
    ],
}

# --- S3 ------------------------------------------------------------------------------------
# An unset AWS_S3_ENDPOINT_URL means the embedded SeaweedFS; set it to "" to talk to AWS itself.
AWS_S3_ENDPOINT_URL = env.str("AWS_S3_ENDPOINT_URL", default=EMBEDDED_S3_ENDPOINT) or None
AWS_S3_PUBLIC_ENDPOINT_URL = (
    env.str("AWS_S3_PUBLIC_ENDPOINT_URL", default="") or AWS_S3_ENDPOINT_URL
)
AWS_S3_REGION_NAME = env.str("AWS_S3_REGION_NAME", default="us-east-1")
_embedded_s3 = AWS_S3_ENDPOINT_URL == EMBEDDED_S3_ENDPOINT
_dev_credentials = dev_s3_credentials() if _embedded_s3 else {}
AWS_ACCESS_KEY_ID = env.str("AWS_ACCESS_KEY_ID", default="") or _dev_credentials.get(
    "AWS_ACCESS_KEY_ID"
)
AWS_SECRET_ACCESS_KEY = env.str("AWS_SECRET_ACCESS_KEY", default="") or _dev_credentials.get(
    "AWS_SECRET_ACCESS_KEY"
)

# --- Uploads (read through uploads.conf at call time) ---------------------------------------
UPLOADS_BUCKET = env.str("UPLOADS_BUCKET", default="partwise")
UPLOADS_KEY_PREFIX = env.str("UPLOADS_KEY_PREFIX", default="uploads/")
UPLOADS_MAX_SIZE = env.int("UPLOADS_MAX_SIZE", default=5 * 1024**4)  # 5 TiB, S3's object limit
UPLOADS_PART_SIZE = env.int("UPLOADS_PART_SIZE", default=8 * 1024**2)
UPLOADS_ALLOWED_TYPES = env.list("UPLOADS_ALLOWED_TYPES", default=[])  # empty: any type
UPLOADS_URL_EXPIRY = env.int("UPLOADS_URL_EXPIRY", default=900)
UPLOADS_DOWNLOAD_EXPIRY = env.int("UPLOADS_DOWNLOAD_EXPIRY", default=300)  # a download URL
UPLOADS_STALE_AFTER = env.int("UPLOADS_STALE_AFTER", default=7 * 24 * 3600)
UPLOADS_SIGN_BATCH_MAX = env.int("UPLOADS_SIGN_BATCH_MAX", default=1000)
# A session (one upload attempt of one client) is active on an upload while it signed or
# reported within this many seconds; the parts an active session signed are not handed to another.
UPLOADS_SESSION_IDLE = env.int("UPLOADS_SESSION_IDLE", default=30)
UPLOADS_CORS_ORIGINS = env.list(
    "UPLOADS_CORS_ORIGINS", default=["http://127.0.0.1:8000", "http://localhost:8000"]
)
# A multipart upload under the prefix with no live row is an orphan; the sweep aborts it only
# once it is older than this, so an upload whose row is being written is never taken for one.
UPLOADS_ORPHAN_GRACE = env.int("UPLOADS_ORPHAN_GRACE", default=24 * 3600)
# A settled upload's part rows are pruned this long after it settled (docs/scaling.md).
UPLOADS_PARTS_KEPT_FOR = env.int("UPLOADS_PARTS_KEPT_FOR", default=7 * 24 * 3600)
# A completed upload unverified this long after completing is announced again (its
# verification and webhook were lost with a dying process or broker).
UPLOADS_VERIFY_OVERDUE_AFTER = env.int("UPLOADS_VERIFY_OVERDUE_AFTER", default=3600)
# Optional: POST a JSON event here when an upload completes, signed as Standard Webhooks says
# with the secret, a `whsec_…` one (README's "Completion webhook").
UPLOADS_WEBHOOK_URL = env.str("UPLOADS_WEBHOOK_URL", default="")
UPLOADS_WEBHOOK_SECRET = env.str("UPLOADS_WEBHOOK_SECRET", default="")
# Per-user quotas on open (uploading, completing, failed) uploads: how many, and how many bytes
# they declare. Each open upload holds an S3 multipart upload for days; completing or aborting
# one frees its room.
UPLOADS_USER_MAX_OPEN_UPLOADS = env.int("UPLOADS_USER_MAX_OPEN_UPLOADS", default=100)
UPLOADS_USER_MAX_OPEN_BYTES = env.int("UPLOADS_USER_MAX_OPEN_BYTES", default=1024**4)  # 1 TiB
# Which digest each part carries: auto (what the store's probe found it verifies), or one of
# sha256, crc32c, md5, none (uploads/integrity.py; README's store table).
UPLOADS_PART_INTEGRITY = env.str("UPLOADS_PART_INTEGRITY", default="auto")

# --- Celery --------------------------------------------------------------------------------
# The default broker is kombu's SQLAlchemy transport on a SQLite file under var/: no server to
# install for `make run`, and unlike kombu's filesystem broker (which let the worker read a
# message file the web process was still writing, and die on it under load) every message is
# a committed row. Production sets CELERY_BROKER_URL to Redis (docs/deployment.md).
CELERY_BROKER_URL = env.str(
    "CELERY_BROKER_URL", default=f"sqla+sqlite:///{VAR_DIR / 'celery-broker.sqlite3'}"
)
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = (
    # Passed to SQLAlchemy's create_engine: the web server's threads and the worker write the
    # same file, so a writer waits for the lock (up to 30 s) instead of failing the publish.
    {"connect_args": {"timeout": 30}} if CELERY_BROKER_URL.startswith("sqla+sqlite") else {}
)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    # Hourly is plenty: uploads expire after days, and each run is one indexed query.
    "expire-stale-uploads": {
        "task": "uploads.tasks.expire_stale_uploads",
        "schedule": timedelta(hours=1),
    },
    # Orphans only appear when a row was lost or an abort failed: hourly, after the grace period.
    "reconcile-orphans": {
        "task": "uploads.tasks.reconcile_orphans",
        "schedule": timedelta(hours=1),
    },
    # A completion whose announcement (verification, webhook) was lost is announced again.
    "resend-lost-completions": {
        "task": "uploads.tasks.resend_lost_completions",
        "schedule": timedelta(hours=1),
    },
    # Part rows are the largest table; those of uploads settled past UPLOADS_PARTS_KEPT_FOR go.
    "prune-settled-parts": {
        "task": "uploads.tasks.prune_settled_parts",
        "schedule": timedelta(hours=6),
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "uploads": {"handlers": ["console"], "level": env.str("UPLOADS_LOG_LEVEL", "INFO")}
    },
}
