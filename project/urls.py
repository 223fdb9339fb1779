from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerView,
)

from uploads import pages

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path(
        "api/redoc/",
        SpectacularRedocView.as_view(url_name="schema", template_name="api/redoc.html"),
        name="redoc",
    ),
    path("api/", include("uploads.api.urls")),
    # Uppy/Companion-compatible endpoints for @uppy/aws-s3 (companionEndpoint = this site).
    path("s3/", include("uploads.companion_urls")),
    path("login/", pages.login_page, name="login"),
    path("logout/", pages.logout_page, name="logout"),
    path("", pages.upload_page, name="upload-page"),
]

# A failure under /api/ or /s3/ answers JSON without a traceback (with DEBUG=False): a bad
# Host or another SuspiciousOperation (400), a PermissionDenied (403), no route (404), a bug.
handler400 = "uploads.api.errors.bad_request"
handler403 = "uploads.api.errors.permission_denied"
handler404 = "uploads.api.errors.page_not_found"
handler500 = "uploads.api.errors.server_error"
