"""Chunked request bodies through a real WSGI server: gunicorn reads them.

The refusals (413 over the limit, 411 where the server cannot decode chunks) are answered
before the body is read, so over a real socket the client may still be sending when the
server closes: whether it then reads the answer or a reset is up to the kernels, not to
Partwise. They are proven in process instead (tests/unit/test_http_edges.py).
"""

import http.client
import json

import pytest

from tests.django_server import PASSWORD, DjangoServer, GunicornServer


@pytest.fixture(scope="module")
def gunicorn(seaweedfs, tmp_path_factory):
    server = GunicornServer(tmp_path_factory.mktemp("gunicorn"), seaweedfs, workers=1, threads=2)
    server.start()
    yield server
    server.stop()


def post_chunked(server: DjangoServer, path: str, body: bytes, chunk: int = 4096):
    """POST `body` with Transfer-Encoding: chunked and no Content-Length; (status, JSON)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.putrequest("POST", path)
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        for start in range(0, len(body), chunk):
            piece = body[start : start + chunk]
            conn.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        conn.send(b"0\r\n\r\n")
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def login_body(password: str = PASSWORD) -> bytes:
    return json.dumps({"username": "alice", "password": password, "name": "chunked"}).encode()


def test_gunicorn_reads_a_chunked_json_body(gunicorn):
    status, body = post_chunked(gunicorn, "/api/auth/token/", login_body(), chunk=7)
    assert status == 201, body
    assert body["name"] == "chunked"
