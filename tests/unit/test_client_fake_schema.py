"""The Python client's fake server is held to the OpenAPI schema: every body the client sends
and every answer the fake gives, in the scenarios the client tests use, fits the schema of its
operation, with no field the schema does not name.

The schema is tests/vectors/openapi.json (written from the server's code, shared with the JS
client's tests) or, where that file is missing, generated here with drf-spectacular.
"""

import json
import os
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from partwise_client.downloading import download
from partwise_client.errors import PartwiseError
from partwise_client.fingerprint import MiB, fingerprint
from partwise_client.transfer import Uploader
from tests.support.fake_partwise import FakePartwise

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "vectors" / "openapi.json"
OPERATIONS = {
    "create": ("/api/uploads/", "post"),
    "list": ("/api/uploads/", "get"),
    "detail": ("/api/uploads/{id}/", "get"),
    "abort": ("/api/uploads/{id}/", "delete"),
    "delete": ("/api/uploads/{id}/", "delete"),  # with If-Match: a completed file
    "download": ("/api/uploads/{id}/download/", "get"),
    "sign": ("/api/uploads/{id}/sign/", "post"),
    "report": ("/api/uploads/{id}/parts/", "post"),
    "complete": ("/api/uploads/{id}/complete/", "post"),
    "login": ("/api/auth/token/", "post"),
}


def strict(node):
    """OpenAPI 3.0 to JSON Schema: `nullable` as a null alternative, and objects closed to
    fields their schema does not name (a fake answering more than the server would be wrong)."""
    if isinstance(node, list):
        return [strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: strict(value) for key, value in node.items()}
    if "properties" in node and "additionalProperties" not in node:
        node["additionalProperties"] = False
    if node.pop("nullable", False):
        return {"anyOf": [node, {"type": "null"}]}
    return node


@pytest.fixture(scope="module")
def schema():
    if SCHEMA_FILE.exists():
        return json.loads(SCHEMA_FILE.read_text())
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


def check(schema, exchanges):
    components = strict(schema["components"])
    # Error is open on purpose: its description lists the fields some codes add.
    components["schemas"]["Error"].pop("additionalProperties")
    problems = []
    for exchange in exchanges:
        path, method = OPERATIONS[exchange["operation"]]
        operation = schema["paths"][path][method]
        status = str(exchange["status"])
        checks = [("answer", operation["responses"].get(status))]
        if exchange["request"] is not None and "requestBody" in operation:
            checks.append(("request", operation["requestBody"]))
        for side, documented in checks:
            if documented is None:
                problems.append(f"{exchange['operation']}: status {status} is not in the schema")
                continue
            if exchange[side] is None and "content" not in documented:
                continue  # a redirect: no body, none documented
            shape = documented["content"]["application/json"]["schema"]
            validator = Draft202012Validator({**strict(shape), "components": components})
            for error in validator.iter_errors(exchange[side]):
                where = "/".join(map(str, error.absolute_path))
                problems.append(f"{exchange['operation']} {side} {where}: {error.message[:200]}")
    return problems


def write(path, size):
    path.write_bytes(os.urandom(size))
    return path


def scenarios(tmp_path):
    """The exchanges of the client's typical runs over the fake (as today's server: the fake's
    `offers_limits=False` stands for an older server, which this schema does not describe)."""
    exchanges = []
    part = 5 * MiB  # S3's smallest, which the schema holds create's part_size to
    path = write(tmp_path / "f.bin", 2 * part + 100)
    data = path.read_bytes()

    fresh = FakePartwise(part, sign_batch_max=2, report_batch_max=1)  # refused batch, limits
    Uploader(fresh, part_size=part, report_interval=3600).upload(path)
    fresh.list_uploads(fingerprint=fingerprint(path))
    fresh.abort_upload(fresh.created[0])
    exchanges += fresh.exchanges

    shared = FakePartwise(part)  # resumed, with parts leased to another live session
    shared.add("u1", len(data), fingerprint=fingerprint(path))
    shared.store("u1", data, [1])
    shared.lease("u1", [2], session="other-session-1")
    shared.on("detail", lambda fake, answer: fake.store("u1", data, [2], session="other-1"))
    Uploader(shared, part_size=part, lease_poll=0.01, again=False).upload(path)
    exchanges += shared.exchanges

    files = FakePartwise()  # a completed file downloaded, a wrong etag refused, deleted
    files.add_completed("done", data)
    download(files, "done", tmp_path / "copy.bin")
    with pytest.raises(PartwiseError):
        files.delete_file("done", "0123456789abcdef0123456789abcdef-1")
    files.delete_file("done", files.uploads["done"]["etag"])
    exchanges += files.exchanges

    login = FakePartwise()
    login.login("alice", "right")
    with pytest.raises(PartwiseError):
        login.login("alice", "wrong")
    exchanges += login.exchanges
    return exchanges


def test_the_fakes_exchanges_fit_the_openapi_schema(schema, tmp_path):
    exchanges = scenarios(tmp_path)
    seen = {(e["operation"], e["status"]) for e in exchanges}
    # The scenarios reach every operation the client makes, and a refusal or two.
    assert {operation for operation, _ in seen} == set(OPERATIONS)
    assert ("create", 200) in seen
    assert ("create", 201) in seen
    assert ("login", 401) in seen
    assert check(schema, exchanges) == []


def test_the_schema_check_catches_a_field_the_server_does_not_answer(schema, tmp_path):
    server = FakePartwise(5 * MiB)
    Uploader(server, part_size=5 * MiB).upload(write(tmp_path / "g.bin", MiB))
    sign_or_create = server.exchanges[0]
    sign_or_create["answer"]["surprise"] = 1
    assert any("surprise" in problem for problem in check(schema, [sign_or_create]))
