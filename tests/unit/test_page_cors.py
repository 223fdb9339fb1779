"""The upload page says so when the bucket's CORS rule does not admit the page's own origin.

A browser that CORS refuses reports nothing but a network error, so without this warning every
upload fails after its retries with "the connection kept failing… check your network".
"""

import pytest

from uploads.storage.bucket import origin_allowed


def cors_warning(client, host: str = "127.0.0.1:8001") -> str | None:
    page = client.get("/", HTTP_HOST=host).content.decode()
    start = page.find('<p id="cors-blocked"')
    if start < 0:
        return None
    return " ".join(page[start : page.index("</p>", start)].split())


def test_the_page_names_its_origin_and_the_setting_when_cors_does_not_allow_it(
    client, user, settings
):
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    settings.UPLOADS_CORS_ORIGINS = ["http://127.0.0.1:8000", "http://localhost:8000"]
    client.force_login(user)

    warning = cors_warning(client)

    assert warning is not None
    assert 'role="alert"' in warning
    assert (
        "the bucket's CORS rule does not allow this page's origin, <code>http://127.0.0.1:8001"
        in warning
    )
    assert (
        "<code>UPLOADS_CORS_ORIGINS</code> setting (now: http://127.0.0.1:8000, http://localhost:8000)"
        in warning
    )
    assert "<code>manage.py setup_storage</code>" in warning


def test_the_page_has_no_warning_when_cors_allows_its_origin(client, user, settings):
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    settings.UPLOADS_CORS_ORIGINS = ["http://localhost:8001", "http://127.0.0.1:8001"]
    client.force_login(user)

    assert cors_warning(client) is None


def test_behind_a_tls_proxy_the_page_checks_its_https_origin(client, user, settings):
    settings.ALLOWED_HOSTS = ["app.example.com"]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.UPLOADS_CORS_ORIGINS = ["https://app.example.com"]
    client.force_login(user)

    page = client.get("/", HTTP_HOST="app.example.com", HTTP_X_FORWARDED_PROTO="https")
    assert 'id="cors-blocked"' not in page.content.decode()
    plain = client.get("/", HTTP_HOST="app.example.com", secure=False)
    assert "this page's origin, <code>http://app.example.com</code>" in plain.content.decode()


def test_an_empty_cors_setting_is_named_as_empty(client, user, settings):
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    settings.UPLOADS_CORS_ORIGINS = []
    client.force_login(user)

    assert "(now: empty)" in cors_warning(client)


@pytest.mark.parametrize(
    ("origin", "allowed", "expected"),
    [
        ("http://127.0.0.1:8001", ["http://127.0.0.1:8001"], True),
        ("http://127.0.0.1:8001", ["http://127.0.0.1:8000", "http://localhost:8001"], False),
        ("http://LOCALHOST:8001", ["http://localhost:8001"], True),
        ("https://anything.example", ["*"], True),
        ("https://app.example.com", ["https://*.example.com"], True),
        ("https://example.com", ["https://*.example.com"], False),
        ("https://app.example.com.evil", ["https://app.example.com"], False),
        ("https://app.example.com", [], False),
    ],
)
def test_an_origin_is_allowed_as_s3_matches_allowed_origins(origin, allowed, expected):
    assert origin_allowed(origin, allowed) is expected
