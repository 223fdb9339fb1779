"""The sign and report calls read canonical bodies without DRF's nested serializers.

What they accept must be exactly what the serializers accept, and everything else must reach
the serializers, so that errors (and DRF's coercions) stay theirs.
"""

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from rest_framework.exceptions import ValidationError

from uploads.api.serializers import (
    PartToSignSerializer,
    ReportedPartSerializer,
    ReportPartsInputSerializer,
    SignedPartsSerializer,
    SignPartsInputSerializer,
    _canonical_parts,
    parts_to_sign,
    reported_parts,
    signed_batch_body,
)
from uploads.services import SignBatch, SignedPart

CHECKSUM = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="


def through_serializer(serializer_class, data):
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return [dict(part) for part in serializer.validated_data["parts"]]


def outcome(read, body):
    """("valid", parts) or ("invalid", DRF's error detail)."""
    try:
        return "valid", read(body)
    except ValidationError as error:
        return "invalid", error.detail


@pytest.mark.parametrize(
    "body",
    [
        {"parts": [{"number": 1}]},
        {"parts": [{"number": 1, "checksum": CHECKSUM}, {"number": 10_000, "checksum": ""}]},
        {"parts": [{"number": n, "checksum": CHECKSUM} for n in range(1, 101)]},
        {"parts": [{"number": 3, "checksum": CHECKSUM, "extra": "ignored"}], "other": 1},
    ],
)
def test_a_canonical_sign_body_is_read_directly_and_alike(body):
    assert _canonical_parts(body, PartToSignSerializer) is not None
    assert parts_to_sign(body) == through_serializer(SignPartsInputSerializer, body)


@pytest.mark.parametrize(
    "body",
    [
        {"parts": [{"number": 1, "etag": '"abc"'}]},
        {"parts": [{"number": 2, "etag": "x" * 130, "checksum": CHECKSUM}]},
        {"parts": [{"number": n, "etag": f'"{n:032x}"'} for n in range(1, 51)]},
    ],
)
def test_a_canonical_report_body_is_read_directly_and_alike(body):
    assert _canonical_parts(body, ReportedPartSerializer) is not None
    assert reported_parts(body) == through_serializer(ReportPartsInputSerializer, body)


# Bodies the fast path must leave to the serializer: some are valid after DRF's coercion
# (trimmed whitespace), the rest are errors whose answer must be the serializer's.
NOT_CANONICAL_SIGN = [
    [],
    "parts",
    {},
    {"parts": []},
    {"parts": {"number": 1}},
    {"parts": [1]},
    {"parts": [{"number": True}]},
    {"parts": [{"number": "1"}]},
    {"parts": [{"number": 1.0}]},
    {"parts": [{"number": 0}]},
    {"parts": [{"number": 10_001}]},
    {"parts": [{"number": None}]},
    {"parts": [{"checksum": CHECKSUM}]},
    {"parts": [{"number": 1, "checksum": None}]},
    {"parts": [{"number": 1, "checksum": 12}]},
    {"parts": [{"number": 1, "checksum": f" {CHECKSUM} "}]},
    {"parts": [{"number": 1, "checksum": "x" * 65}]},
    {"parts": [{"number": 1, "checksum": "abc\x00"}]},
    {"parts": [{"number": 1, "checksum": "not base64!"}]},
]


NOT_CANONICAL_REPORT = [
    {"parts": [{"number": 1}]},
    {"parts": [{"number": 1, "etag": ""}]},
    {"parts": [{"number": 1, "etag": None}]},
    {"parts": [{"number": 1, "etag": ' "abc" '}]},
    {"parts": [{"number": 1, "etag": "a b"}]},
    {"parts": [{"number": 1, "etag": "x" * 131}]},
    {"parts": [{"number": 1, "etag": 7}]},
    {"parts": [{"number": 1, "etag": "é"}]},
]
# Each call: the part serializer the fast path stands in for, the fast reader, the serializer.
SIGN = (PartToSignSerializer, parts_to_sign, SignPartsInputSerializer)
REPORT = (ReportedPartSerializer, reported_parts, ReportPartsInputSerializer)


@pytest.mark.parametrize(
    ("call", "body"),
    [pytest.param(SIGN, body, id=f"sign {json.dumps(body)[:60]}") for body in NOT_CANONICAL_SIGN]
    + [
        pytest.param(REPORT, body, id=f"report {json.dumps(body)[:60]}")
        for body in NOT_CANONICAL_REPORT
    ],
)
def test_any_other_body_gets_the_serializers_own_answer(call, body):
    part_serializer, read, serializer = call
    assert _canonical_parts(body, part_serializer) is None
    expected = outcome(lambda data: through_serializer(serializer, data), body)
    assert outcome(read, body) == expected


@pytest.mark.parametrize(
    "expires_at",
    [
        datetime(2026, 11, 21, 18, 0, tzinfo=UTC),
        datetime(2026, 11, 21, 18, 0, 5, 123456, tzinfo=UTC),
        datetime(2026, 11, 21, 20, 0, tzinfo=timezone(timedelta(hours=2))),
    ],
)
def test_signed_parts_are_written_as_the_serializer_would(expires_at):
    signed = [
        SignedPart(
            number=n,
            url=f"http://s3.test/b/k?partNumber={n}&X-Amz-Signature=abc",
            method="PUT",
            headers={"Content-Length": "5242880", "x-amz-checksum-sha256": CHECKSUM},
            size=5_242_880 if n < 3 else None,
            expires_at=expires_at + timedelta(seconds=n // 2),
        )
        for n in range(1, 4)
    ]
    batch = SignBatch(signed, leased=[4, 5], other_sessions=1)
    assert signed_batch_body(batch) == SignedPartsSerializer(batch).data
