"""Completed files on a real S3 server (SeaweedFS): what the download URL serves, and deletion.

moto checks no signature and serves no presigned GET; SeaweedFS does both, so the claims about
the bytes, the Content-Disposition S3 answers with and the URL's signed lifetime are made here.
"""

import os
from urllib.parse import parse_qs, urlsplit, urlunsplit

import pytest
import requests
from django.utils.http import content_disposition_header

from tests.support.presigned import put_signed

NAME = "Überblick 2026 «final».txt"


def complete_small_file(client, data: bytes, filename: str = NAME) -> dict:
    """A one-part upload of `data`, PUT to its presigned URL and completed."""
    created = client.post(
        "/api/uploads/",
        {"filename": filename, "size": len(data), "content_type": "text/plain"},
        format="json",
    )
    assert created.status_code == 201, created.json()
    upload = created.json()
    signed = client.post(
        f"/api/uploads/{upload['id']}/sign/", {"parts": [{"number": 1}]}, format="json"
    ).json()["parts"][0]
    etag = put_signed(signed, data)
    client.post(
        f"/api/uploads/{upload['id']}/parts/",
        {"parts": [{"number": 1, "etag": etag}]},
        format="json",
    )
    done = client.post(f"/api/uploads/{upload['id']}/complete/")
    assert done.status_code == 200, done.json()
    return done.json()


def download_location(client, upload: dict, query: str = "") -> str:
    response = client.get(f"/api/uploads/{upload['id']}/download/{query}")
    assert response.status_code == 302, response.content
    return response["Location"]


def test_following_the_download_redirect_serves_the_bytes_as_an_attachment_with_the_name(
    api_client, real_s3
):
    data = os.urandom(3000)
    upload = complete_small_file(api_client, data)

    served = requests.get(download_location(api_client, upload), timeout=10)

    assert served.status_code == 200, served.text
    assert served.content == data
    assert served.headers["Content-Disposition"] == content_disposition_header(True, NAME)
    assert served.headers["Content-Type"] == "text/plain"


def test_inline_downloads_are_served_inline(api_client, real_s3):
    upload = complete_small_file(api_client, b"hello", filename="notes.txt")

    served = requests.get(download_location(api_client, upload, "?inline=1"), timeout=10)

    assert served.status_code == 200, served.text
    assert served.headers["Content-Disposition"] == 'inline; filename="notes.txt"'


def test_the_download_url_is_signed_for_upload_download_expiry_and_cannot_be_stretched(
    api_client, real_s3
):
    upload = complete_small_file(api_client, b"short-lived")
    url = download_location(api_client, upload)
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert query["X-Amz-Expires"] == ["300"]

    # The lifetime is part of the signature: a URL edited to live longer is refused.
    stretched = parts.query.replace("X-Amz-Expires=300", "X-Amz-Expires=604800")
    refused = requests.get(urlunsplit(parts._replace(query=stretched)), timeout=10)

    assert refused.status_code == 403, refused.text


def test_the_download_expiry_setting_reaches_the_url(api_client, real_s3, settings):
    settings.UPLOADS_DOWNLOAD_EXPIRY = 60
    upload = complete_small_file(api_client, b"one minute")

    url = download_location(api_client, upload)

    assert parse_qs(urlsplit(url).query)["X-Amz-Expires"] == ["60"]
    assert requests.get(url, timeout=10).content == b"one minute"


@pytest.mark.parametrize("good", [True, False], ids=["right-etag", "wrong-etag"])
def test_delete_with_if_match_deletes_the_object_only_for_the_right_etag(api_client, real_s3, good):
    upload = complete_small_file(api_client, b"to be deleted")
    url = download_location(api_client, upload)
    etag = f'"{upload["etag"]}"' if good else '"0123456789abcdef0123456789abcdef"'

    response = api_client.delete(f"/api/uploads/{upload['id']}/", headers={"If-Match": etag})

    if good:
        assert response.status_code == 200, response.json()
        assert response.json()["status"] == "deleted"
        assert real_s3.head_object(upload["key"]) is None
        assert requests.get(url, timeout=10).status_code == 404  # the old link fetches nothing
    else:
        assert response.status_code == 412
        assert real_s3.head_object(upload["key"]) is not None
