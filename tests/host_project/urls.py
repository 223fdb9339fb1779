"""The host's URLs: its own page at the root, Partwise under /files/, the admin."""

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import include, path


def home(request: HttpRequest) -> HttpResponse:
    return HttpResponse("The host's own home page.")


urlpatterns = [
    path("", home, name="home"),
    path("admin/", admin.site.urls),
    path("files/", include("uploads.urls")),
]
