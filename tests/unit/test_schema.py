"""The OpenAPI contract: generated without warnings, every route in it, every error code named."""

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
import requests
import yaml
from django.core.management import call_command
from rest_framework.test import APIClient

from uploads.api.schema import error_codes

# The schema as the clients' tests read it (their fakes of the server are checked against it).
VECTOR = Path(__file__).resolve().parents[1] / "vectors" / "openapi.json"
REGENERATE = (
    ".venv/bin/python manage.py spectacular --format openapi-json --file tests/vectors/openapi.json"
)


@pytest.fixture
def schema(tmp_path):
    path = tmp_path / "schema.yaml"
    # --fail-on-warn turns every drf-spectacular warning into an error, --validate checks the
    # result against the OpenAPI 3 meta-schema.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(path))
    return yaml.safe_load(path.read_text())


def test_the_schema_is_generated_without_a_warning_and_lists_every_route(schema):
    assert set(schema["paths"]) == {
        "/api/auth/token/",
        "/api/auth/tokens/",
        "/api/auth/tokens/{id}/",
        "/api/uploads/",
        "/api/uploads/{id}/",
        "/api/uploads/{id}/complete/",
        "/api/uploads/{id}/download/",
        "/api/uploads/{id}/parts/",
        "/api/uploads/{id}/sign/",
        "/s3/multipart",
        "/s3/multipart/{upload_id}",
        "/s3/multipart/{upload_id}/{part_number}",
        "/s3/multipart/{upload_id}/batch",
        "/s3/multipart/{upload_id}/complete",
        "/s3/params",
    }


def test_every_operation_documents_its_error_answers(schema):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            statuses = set(operation["responses"])
            assert {"400", "401", "404", "429"} <= statuses, (method, path)
            error = operation["responses"]["404"]["content"]["application/json"]["schema"]
            assert error == {"$ref": "#/components/schemas/Error"}


def test_the_error_code_enum_names_every_code_with_its_status(schema):
    code = schema["components"]["schemas"]["Error"]["properties"]["code"]
    codes = error_codes()
    assert code["enum"] == list(codes)
    for expected, status in [
        ("part_missing", 409),
        ("multipart_required", 400),
        ("key_mismatch", 400),
        ("invalid_credentials", 401),
        ("too_many_tokens", 409),
        ("csrf_failed", 403),
        ("throttled", 429),
        ("storage_failed", 502),
    ]:
        assert codes[expected] == status
        assert f"`{expected}` ({status})" in code["description"]


def test_the_token_login_needs_no_authentication_in_the_schema(schema):
    # No `security` on the operation and none at the top level: anyone may call it.
    assert "security" not in schema["paths"]["/api/auth/token/"]["post"]
    assert "security" not in schema
    assert {"tokenAuth": []} in schema["paths"]["/api/uploads/"]["get"]["security"]


def test_the_docs_page_and_the_schema_are_served(db):
    client = APIClient()
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"swagger-ui" in docs.content
    served = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert served.status_code == 200
    assert "/s3/multipart" in served.json()["paths"]


class AssetLinks(HTMLParser):
    """The scripts, styles and icons a page names (what a browser fetches to render it)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "script" and named.get("src"):
            self.urls.append(named["src"] or "")
        if tag == "link" and named.get("href"):
            self.urls.append(named["href"] or "")


@pytest.mark.parametrize("page", ["/api/docs/", "/api/redoc/"])
def test_the_docs_pages_load_everything_from_this_site_so_they_work_offline(live_server, page):
    """Swagger UI and ReDoc come from drf-spectacular-sidecar's static files, not a CDN."""
    answer = requests.get(live_server.url + page, timeout=10)
    assert answer.status_code == 200
    links = AssetLinks()
    links.feed(answer.text)
    assert links.urls, "the page names its scripts"
    # Scripts the page writes inline name their bundles too (Swagger UI's init script).
    inline = re.findall(r"""["'](/static/[^"']+\.(?:js|css|png))["']""", answer.text)
    for url in {*links.urls, *inline}:
        absolute = urljoin(answer.url, url)
        assert urlsplit(absolute).netloc == urlsplit(live_server.url).netloc, url
        asset = requests.get(absolute, timeout=10)
        assert asset.status_code == 200, url
        assert asset.content, url


def test_every_code_drf_itself_answers_with_is_in_the_one_table():
    """DRF's own errors pass through the handler with their codes: the table names them all."""
    from rest_framework import exceptions as drf

    def every(cls: type) -> list[type]:
        return [cls, *(sub for child in cls.__subclasses__() for sub in every(child))]

    drf_codes = {
        str(cls.default_code): cls.status_code
        for cls in every(drf.APIException)
        if cls.__module__.startswith("rest_framework")
    }
    assert drf_codes.items() <= error_codes().items()


def test_readmes_table_of_error_codes_names_every_code_with_its_status():
    """README's table is written by hand: it is held to the one table in uploads/exceptions."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    rows = re.findall(r"^\| (\d{3}) \| ((?:`\w+`(?:, )?)+) \|", readme, flags=re.MULTILINE)
    documented = {
        code: int(status) for status, codes in rows for code in re.findall(r"`(\w+)`", codes)
    }
    assert documented == error_codes()


def test_the_schema_the_clients_tests_read_is_the_generated_one(tmp_path):
    path = tmp_path / "openapi.json"
    call_command("spectacular", "--format", "openapi-json", "--file", str(path))

    assert json.loads(VECTOR.read_text()) == json.loads(path.read_text()), (
        f"tests/vectors/openapi.json is stale: regenerate it with `{REGENERATE}`"
    )


def test_the_schema_documents_sessions_limits_and_start_or_resume(schema):
    components = schema["components"]["schemas"]
    assert set(components["Limits"]["properties"]) == {
        "sign_batch_max",
        "report_batch_max",
        "url_expires_in",
        "session_idle",
    }
    for name in ("Upload", "UploadDetail", "UploadLiveDetail", "UploadProgress", "UploadStarted"):
        assert "limits" in components[name]["required"], name
    assert {"other_sessions"} <= set(components["UploadLiveDetail"]["required"])
    assert {"other_sessions"} <= set(components["UploadProgress"]["required"])
    assert {"parts", "leased", "other_sessions"} == set(components["SignedParts"]["required"])
    created = components["UploadCreateInputRequest"]["properties"]
    assert {"session", "resume", "sign"} <= set(created)
    for body in ("SignPartsInputRequest", "ReportPartsInputRequest"):
        assert components[body]["properties"]["session"]["pattern"] == "^[A-Za-z0-9_-]{8,64}$"
    # resumed, signed, leased and other_sessions come only with resume / sign: not required.
    started = components["UploadStarted"]
    assert {"resumed", "signed", "leased", "other_sessions"} <= set(started["properties"])
    assert not {"resumed", "signed", "leased", "other_sessions"} & set(started["required"])


def test_the_download_redirect_declares_its_location_header(schema):
    found = schema["paths"]["/api/uploads/{id}/download/"]["get"]["responses"]["302"]
    assert found["headers"]["Location"]["schema"] == {"type": "string", "format": "uri"}
