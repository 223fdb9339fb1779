import hashlib

import pytest
import requests

MiB = 1024 * 1024
pytestmark = pytest.mark.unit


def test_full_cycle_through_the_api(api_client, storage):
    data = bytes(range(256)) * (11 * MiB // 256) + b"tail"
    response = api_client.post(
        "/api/uploads/",
        {"filename": "a.bin", "size": len(data), "part_size": 5 * MiB},
        format="json",
    )
    assert response.status_code == 201, response.json()
    upload = response.json()
    assert upload["part_count"] == 3
    signed = api_client.post(
        f"/api/uploads/{upload['id']}/sign/",
        {"parts": [{"number": n} for n in (1, 2, 3)]},
        format="json",
    ).json()["parts"]
    reported = []
    for part in signed:
        start = (part["number"] - 1) * upload["part_size"]
        body = data[start : start + part["size"]]
        put = requests.put(part["url"], data=body, headers=part["headers"], timeout=30)
        assert put.status_code == 200, put.text
        reported.append({"number": part["number"], "etag": put.headers["ETag"]})
    progress = api_client.post(
        f"/api/uploads/{upload['id']}/parts/", {"parts": reported}, format="json"
    )
    assert progress.json()["bytes_uploaded"] == len(data)
    done = api_client.post(f"/api/uploads/{upload['id']}/complete/")
    assert done.status_code == 200, done.json()
    assert done.json()["status"] == "completed"
    body = storage.client.get_object(Bucket=storage.bucket, Key=upload["key"])["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
