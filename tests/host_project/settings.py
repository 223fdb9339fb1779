"""A host project's production settings, with Partwise added as README says.

Only what a host must add for Partwise is marked "Partwise"; everything else is an ordinary
Django project with a custom user model. Secrets and the database come from the environment.
"""

import os

SECRET_KEY = os.environ["HOST_SECRET_KEY"]
DEBUG = False
ALLOWED_HOSTS = ["host.example"]
CSRF_TRUSTED_ORIGINS = ["https://host.example"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    # Partwise: the uploads app, its API tokens, and django-axes, which locks out password
    # guessing on its logins.
    "axes",
    "uploads",
    "uploads.tokens",
    "tests.host_project.library",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # Partwise (django-axes): last, as axes asks
]

# Partwise (django-axes): failed logins count per username and address; a locked-out login
# answers 429 (JSON `login_locked` on the API).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_CLIENT_IP_CALLABLE = "uploads.lockout.client_address"
AXES_LOCKOUT_CALLABLE = "uploads.lockout.lockout_response"

ROOT_URLCONF = "tests.host_project.urls"
AUTH_USER_MODEL = "library.Member"
LOGIN_URL = "login"  # Partwise's sign-in page (files/login/); a host may keep its own

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # No DIRS: the upload page's templates and scripts come with the uploads app.
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
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("HOST_DATABASE", ":memory:"),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True

STATIC_URL = "static/"

# The host's own API settings: Partwise's views keep their own authentication, JSON bodies,
# error codes and throttles whatever these say (none of them is needed for Partwise).
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.BasicAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
}

# Partwise: the S3 connection (AWS itself here) and the bucket; every UPLOADS_* has a default.
AWS_S3_ENDPOINT_URL = None
AWS_S3_PUBLIC_ENDPOINT_URL = None
AWS_S3_REGION_NAME = "us-east-1"
AWS_ACCESS_KEY_ID = os.environ.get("AWS_ACCESS_KEY_ID", "")
AWS_SECRET_ACCESS_KEY = os.environ.get("AWS_SECRET_ACCESS_KEY", "")
UPLOADS_BUCKET = "host-files"
UPLOADS_CORS_ORIGINS = ["https://host.example"]
# Optional: the completion webhook (Standard Webhooks; README's "Completion webhook").
UPLOADS_WEBHOOK_URL = os.environ.get("HOST_WEBHOOK_URL", "")
UPLOADS_WEBHOOK_SECRET = os.environ.get("HOST_WEBHOOK_SECRET", "")

# Celery (tests/host_project/celery_app.py): the host's own broker.
CELERY_BROKER_URL = os.environ.get("HOST_CELERY_BROKER_URL", "memory://")

SECURE_SSL_REDIRECT = True
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = 60 * 60 * 24 * 365
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
X_FRAME_OPTIONS = "DENY"
