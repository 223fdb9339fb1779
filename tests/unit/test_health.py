"""GET /health/: a load balancer's question "may this node serve?" (docs/deployment.md)."""

import pytest
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext

pytestmark = pytest.mark.django_db


def test_a_node_whose_database_answers_is_healthy_for_one_query(client):
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/health/")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert len(queries) == 1
    assert "no-cache" in response["Cache-Control"]


def test_a_node_whose_database_is_gone_answers_503_with_a_code(client, monkeypatch):
    def refuse(*args, **kwargs):
        raise DatabaseError("connection refused")

    monkeypatch.setattr(connection, "cursor", refuse)

    response = client.get("/health/")

    assert response.status_code == 503
    assert response.json()["code"] == "database_unavailable"


def test_health_needs_no_credentials_and_sets_no_cookie(client):
    response = client.get("/health/")

    assert response.status_code == 200
    assert not response.cookies


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_health_only_answers_reads(client, method):
    assert getattr(client, method)("/health/").status_code == 405


def test_health_is_answered_over_plain_http_where_everything_else_redirects(settings, client):
    settings.SECURE_SSL_REDIRECT = True  # as in production (DEBUG off)

    assert client.get("/health/").status_code == 200
    assert client.get("/api/uploads/").status_code == 301
