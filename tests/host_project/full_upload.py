"""A full upload through the host's URLs (Partwise mounted at /files/), against moto's S3.

Run in its own process, since it needs the host's settings, not Partwise's own:

    DJANGO_SETTINGS_MODULE=tests.host_project.settings python -m tests.host_project.full_upload

It prints one JSON object of what it saw; tests/unit/test_host_project.py asserts on it. The
requests go through Django's test client to host.example behind a TLS proxy, as a browser on the
host's site would send them; the part goes to the presigned URL the API signed.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import django
import requests
from moto import mock_aws

PART = 5 * 1024 * 1024
DATA = os.urandom(PART) + b"the last part"


def main() -> dict[str, Any]:
    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client
    from django.urls import reverse

    from tests.host_project.celery_app import app as celery_app
    from tests.host_project.library.models import Document
    from uploads.api.errors import json_paths
    from uploads.storage import get_storage

    # The worker's job (verifying the object) runs in this process.
    celery_app.conf.task_always_eager = True
    call_command("migrate", verbosity=0)
    get_storage().create_bucket()
    member = get_user_model().objects.create_user("ada", password="a long passphrase 7")
    # Behind the host's TLS proxy (SECURE_PROXY_SSL_HEADER), as production serves it.
    behind_proxy = {"HTTP_HOST": "host.example", "HTTP_X_FORWARDED_PROTO": "https"}
    browser = Client(**behind_proxy)
    browser.force_login(member)
    seen: dict[str, Any] = {
        "user_model": get_user_model()._meta.label,
        "routes": {
            "api": reverse("uploads:list"),
            "uppy": reverse("companion:create"),
            "page": reverse("upload-page"),
            "login": reverse("login"),
        },
    }

    page = browser.get("/files/")
    seen["page"] = {"status": page.status_code, "endpoint": _endpoint(page.content.decode())}
    seen["page_assets"] = _assets_found(page.content.decode())
    login_page = Client(**behind_proxy).get("/files/login/")
    seen["login_page"] = (login_page.status_code, login_page["Content-Type"])
    seen["unknown_api_route"] = _answer(browser.get("/files/api/nothing-here/"))
    seen["json_paths"] = json_paths()
    # Password guessing is locked out (django-axes: 3 failures), and the refusal is the API's
    # JSON under the host's prefix too.
    for _ in range(3):
        guess = Client(**behind_proxy).post(
            "/files/api/auth/token/",
            {"username": "ada", "password": "a guess", "name": "laptop"},
            content_type="application/json",
        )
    seen["locked_out"] = {
        "status": guess.status_code,
        "content_type": guess["Content-Type"],
        "code": guess.json().get("code") if guess["Content-Type"] == "application/json" else "",
    }

    created = browser.post(
        "/files/api/uploads/",
        {"filename": "report.pdf", "size": len(DATA), "part_size": PART},
        content_type="application/json",
    )
    upload = created.json()
    seen["create"] = created.status_code
    base = f"/files/api/uploads/{upload['id']}/"
    signed = browser.post(
        base + "sign/", {"parts": [{"number": 1}, {"number": 2}]}, content_type="application/json"
    )
    seen["sign"] = signed.status_code
    reported = []
    for part in signed.json()["parts"]:
        start = (part["number"] - 1) * PART
        put = requests.put(
            part["url"],
            data=DATA[start : start + part["size"]],
            headers=part["headers"],
            timeout=30,
        )
        reported.append({"number": part["number"], "etag": put.headers["ETag"]})
    seen["put"] = put.status_code
    progress = browser.post(base + "parts/", {"parts": reported}, content_type="application/json")
    seen["report"] = (progress.status_code, progress.json()["bytes_uploaded"])
    done = browser.post(base + "complete/")
    seen["complete"] = (done.status_code, done.json()["status"])

    storage = get_storage()
    stored = storage.client.get_object(Bucket=storage.bucket, Key=upload["key"])["Body"].read()
    seen["stored_sha256_matches"] = hashlib.sha256(stored).digest() == hashlib.sha256(DATA).digest()
    document = Document.objects.get(upload_id=upload["id"])
    seen["document"] = {"title": document.title, "owner": document.upload.owner.get_username()}
    seen["uppy_create"] = _answer(
        browser.post(
            "/files/s3/multipart",
            {"filename": "notes.txt", "type": "text/plain"},
            content_type="application/json",
            HTTP_ORIGIN="https://host.example",
        )
    )
    seen["api_policy"] = _api_policy(member, behind_proxy, upload["id"])
    # Nothing of this repository's own site was needed (uploads never imports `project`).
    seen["project_imported"] = sorted(m for m in sys.modules if m.split(".")[0] == "project")
    return seen


def _api_policy(member: Any, behind_proxy: dict[str, str], upload_id: str) -> dict[str, Any]:
    """How Partwise's API answers under a host whose REST_FRAMEWORK says other things (Basic
    authentication, AllowAny, a browsable renderer, DRF's own error bodies, no throttles)."""
    import base64

    from django.test import Client

    anonymous = Client(**behind_proxy)
    basic = base64.b64encode(b"ada:a long passphrase 7").decode()
    as_basic = Client(**behind_proxy, HTTP_AUTHORIZATION=f"Basic {basic}")
    browser = Client(**behind_proxy)
    browser.force_login(member)
    malformed = browser.post("/files/api/uploads/", "{not json", content_type="application/json")
    # Failed authentication counts against the anonymous rate (UPLOADS_API_THROTTLE_RATES
    # "anon", 60/min by default) whatever the host throttles.
    seen = {
        "anonymous": _coded(anonymous.get("/files/api/uploads/")),
        "basic_auth": _coded(as_basic.get("/files/api/uploads/")),
        "malformed_json": {**_coded(malformed), "content_type": malformed["Content-Type"]},
    }
    statuses = [anonymous.get(f"/files/api/uploads/{upload_id}/").status_code for _ in range(59)]
    return {
        **seen,
        "anonymous_61": sorted(set(statuses)),
        "monotonic": statuses == sorted(statuses),
        "throttled": _coded(anonymous.get("/files/api/uploads/")),
    }


def _coded(response: Any) -> dict[str, Any]:
    return {"status": response.status_code, "code": response.json().get("code")}


def _assets_found(html: str) -> dict[str, bool]:
    """Whether the host's static finders find each file the page needs: those its HTML names
    and every module page.js imports, transitively (client.js and its modules among them). The
    host adds no STATICFILES_DIRS: they must come with the uploads app."""
    import re

    from django.contrib.staticfiles import finders

    wanted = re.findall(r'(?:src|href)="/static/([^"]+)"', html)
    found: dict[str, bool] = {}
    while wanted:
        name = wanted.pop()
        if name in found:
            continue
        path = finders.find(name)
        found[name] = path is not None
        if path and name.endswith(".js"):
            folder = name.rsplit("/", 1)[0]
            text = Path(path).read_text(encoding="utf-8")
            for spec in re.findall(r'from\s*"\./([^"]+)"', text):
                wanted.append(f"{folder}/{spec}")
    return found


def _endpoint(html: str) -> str:
    marker = 'data-endpoint="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]


def _answer(response: Any) -> dict[str, Any]:
    body = response.json()
    return {"status": response.status_code, "keys": sorted(body)}


if __name__ == "__main__":
    with mock_aws():
        print(json.dumps(main()))
