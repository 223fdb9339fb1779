"""Everything Partwise serves, for a project to mount under the prefix it chooses.

    path("files/", include("uploads.urls"))

gives `files/api/…` (the REST API), `files/s3/…` (the Uppy/Companion-compatible routes that
@uppy/aws-s3 calls: its `companionEndpoint` is `https://host/files`), `files/login/`,
`files/logout/` and the upload page at `files/`. The names are the same under any prefix
(`uploads:list`, `companion:create`, `login`, `logout`, `upload-page`), and the page takes its
endpoints from them, so nothing hard-codes a path. The API docs and the admin are the site's
(project/urls.py): a host project keeps its own.
"""

from django.urls import include, path

from . import pages

urlpatterns = [
    path("api/", include("uploads.api.urls")),
    # Uppy/Companion-compatible endpoints for @uppy/aws-s3 (companionEndpoint = the prefix).
    path("s3/", include("uploads.companion_urls")),
    path("login/", pages.login_page, name="login"),
    path("logout/", pages.logout_page, name="logout"),
    path("", pages.upload_page, name="upload-page"),
]
