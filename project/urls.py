from django.contrib import admin
from django.http import HttpRequest, HttpResponseRedirect
from django.templatetags.static import static
from django.urls import include, path
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerView,
)

from project.health import health


def favicon(request: HttpRequest) -> HttpResponseRedirect:
    """/favicon.ico, which browsers ask for on every page (the admin's and the docs' too)."""
    # Resolved per request, so it names the static file as the configured storage serves it.
    return HttpResponseRedirect(static("partwise/favicon.ico"))


# The site is the uploads app mounted at the root (as a host project mounts it under a prefix of
# its own: README's "Add Partwise to your Django project"), plus the admin and the API docs.
urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path(
        "api/redoc/",
        SpectacularRedocView.as_view(url_name="schema", template_name="api/redoc.html"),
        name="redoc",
    ),
    path("favicon.ico", favicon),
    path("health/", health, name="health"),
    # Last: the docs' routes above sit under api/, where the app's catch-all would answer them.
    path("", include("uploads.urls")),
]

# A failure under /api/ or /s3/ answers JSON without a traceback (with DEBUG=False): a bad
# Host or another SuspiciousOperation (400), a PermissionDenied (403), no route (404), a bug.
handler400 = "uploads.api.errors.bad_request"
handler403 = "uploads.api.errors.permission_denied"
handler404 = "uploads.api.errors.page_not_found"
handler500 = "uploads.api.errors.server_error"
