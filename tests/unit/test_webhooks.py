"""The webhook follows the Standard Webhooks specification: a receiver verifies it with the
`standardwebhooks` library (README's few lines), and refuses a forged or replayed delivery."""

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from tests.webhook_receiver import library_verifies
from uploads import webhooks

SECRET = webhooks.signing_secret()
BODY = json.dumps({"id": "evt-1", "type": "upload.completed"}).encode()


def signed(body: bytes = BODY, *, sent: datetime | None = None, secret: str = SECRET) -> dict:
    return webhooks.signed_headers(
        secret, event_id="evt-1", body=body, sent=sent or datetime.now(UTC)
    )


def test_a_generated_secret_is_a_standard_webhooks_secret():
    assert SECRET.startswith("whsec_")
    assert len(base64.b64decode(SECRET.removeprefix("whsec_"))) == 32
    assert webhooks.signing_secret() != SECRET


def test_the_headers_are_the_specifications():
    headers = signed(sent=datetime(2026, 1, 2, tzinfo=UTC))

    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert headers["webhook-id"] == "evt-1"
    assert headers["webhook-timestamp"] == str(int(datetime(2026, 1, 2, tzinfo=UTC).timestamp()))
    assert headers["webhook-signature"].startswith("v1,")


def test_the_library_verifies_a_genuine_delivery_and_returns_the_event():
    assert Webhook(SECRET).verify(BODY, signed()) == json.loads(BODY)


@pytest.mark.parametrize(
    ("body", "headers", "secret"),
    [
        (b'{"id":"evt-1","type":"tampered"}', signed(), SECRET),
        # A day off either way: the parameters are made at collection, maybe minutes before the
        # test runs, and the library's tolerance is 5 minutes.
        (BODY, signed(sent=datetime.now(UTC) - timedelta(days=1)), SECRET),
        (BODY, signed(sent=datetime.now(UTC) + timedelta(days=1)), SECRET),
        (BODY, signed(), webhooks.signing_secret()),
        (BODY, {**signed(), "webhook-id": "evt-2"}, SECRET),
        (BODY, {k: v for k, v in signed().items() if k != "webhook-signature"}, SECRET),
    ],
    ids=[
        "tampered-body",
        "old-timestamp",
        "future-timestamp",
        "wrong-secret",
        "other-id",
        "unsigned",
    ],
)
def test_the_library_refuses_a_forged_or_replayed_delivery(body, headers, secret):
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, headers)
    assert not webhooks.verify(secret, body, headers)
    assert not library_verifies(secret, body, headers)


def test_a_secret_without_the_prefix_is_the_raw_key_a_receiver_passes_as_bytes():
    legacy = "an-older-secret-of-32-characters"
    headers = signed(secret=legacy)

    assert Webhook(legacy.encode()).verify(BODY, headers) == json.loads(BODY)
    assert webhooks.verify(legacy, BODY, headers)
