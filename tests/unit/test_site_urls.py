"""The site's own URLs: the uploads app mounted at the root (uploads/urls.py, which a host
mounts under its own prefix), beside the admin and the API docs; and the favicon."""

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse

from uploads.api.errors import json_paths

SITE = {
    ("uploads:list", ()): "/api/uploads/",
    ("uploads:detail", ("u1",)): "/api/uploads/u1/",
    ("uploads:token-login", ()): "/api/auth/token/",
    ("companion:create", ()): "/s3/multipart",
    ("companion:sign", ("u1", "2")): "/s3/multipart/u1/2",
    ("login", ()): "/login/",
    ("logout", ()): "/logout/",
    ("upload-page", ()): "/",
    ("admin:index", ()): "/admin/",
    ("schema", ()): "/api/schema/",
    ("docs", ()): "/api/docs/",
    ("redoc", ()): "/api/redoc/",
    ("health", ()): "/health/",
}


@pytest.mark.parametrize(("route", "path"), SITE.items(), ids=[name for name, _ in SITE])
def test_the_site_serves_each_route_where_it_always_did(route, path):
    name, args = route
    assert reverse(name, args=args) == path


@pytest.mark.parametrize("path", ["/api/docs/", "/api/redoc/", "/api/schema/"])
def test_the_docs_are_not_swallowed_by_the_apis_catch_all(admin_client, path):
    assert admin_client.get(path).status_code == 200


def test_favicon_ico_leads_to_the_icon(client):
    response = client.get("/favicon.ico")

    assert response.status_code == 302
    assert response["Location"] == "/static/partwise/favicon.ico"
    icon = finders.find("partwise/favicon.ico")
    assert icon is not None
    with open(icon, "rb") as file:
        assert file.read(4) == b"\x00\x00\x01\x00"  # an ICO file's signature


@pytest.mark.parametrize(("visitor", "page"), [("client", "/login/"), ("admin_client", "/")])
def test_the_pages_name_the_icon(request, visitor, page):
    response = request.getfixturevalue(visitor).get(page)

    assert response.status_code == 200
    assert b'<link rel="icon" href="/static/partwise/favicon.ico">' in response.content


def test_the_paths_answered_in_json_are_where_the_app_is_mounted():
    # Read from the URLconf: the host project's test sees /files/api/ and /files/s3/.
    assert json_paths() == ("/api/", "/s3/")
