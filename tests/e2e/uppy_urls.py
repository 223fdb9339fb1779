"""The project's routes plus /uppy-test/, which serves tests/e2e/uppy/ (the page and its
esbuild bundle) from the same origin as the Companion-compatible endpoints, as a site that
embeds Uppy would."""

from pathlib import Path

from django.urls import path
from django.views.static import serve

from project.urls import urlpatterns as project_urlpatterns

PAGE_DIR = Path(__file__).resolve().parent / "uppy"

urlpatterns = [
    path("uppy-test/", serve, {"path": "index.html", "document_root": PAGE_DIR}),
    path("uppy-test/<path:path>", serve, {"document_root": PAGE_DIR / "dist"}),
    *project_urlpatterns,
]
