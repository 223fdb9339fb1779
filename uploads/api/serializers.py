"""Input and output shapes of the REST API. Shape validation only: rules live in services.

Names are unique and never contain "Request" (drf-spectacular names components after them).
"""

import dataclasses
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .. import selectors
from ..models import Upload, UploadPart
from ..parts import MAX_PART_SIZE, MAX_PARTS, MIN_PART_SIZE, SignedPart
from ..services import SignBatch


class StrictIntegerField(serializers.IntegerField):
    """An integer that is a JSON integer: no "12" strings, no 12.5, no true."""

    default_error_messages = {"invalid": "A JSON integer is required."}

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """A JSON true or false: no "true" strings, no 1."""

    default_error_messages = {"invalid": "A JSON boolean is required."}

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


# A client session id: random, one per upload attempt (services/sessions.py). \Z, not $: a
# RegexValidator searches, and $ would let a trailing newline through.
SESSION_PATTERN = r"\A[A-Za-z0-9_-]{8,64}\Z"
_SESSION = re.compile(SESSION_PATTERN)


class SessionField(serializers.RegexField):
    """A session id that is a JSON string: no 12345678 taken as "12345678"."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return str(super().to_internal_value(data))


def session_field(**options: Any) -> SessionField:
    """The optional `session` of create, sign and report (and of the detail's query)."""
    return SessionField(
        SESSION_PATTERN,
        required=False,
        trim_whitespace=False,
        help_text="A random id of this upload attempt (one per tab, handle or CLI run): parts "
        "it signed are not handed to another session while it is active.",
        error_messages={"invalid": "8 to 64 letters, digits, _ or -."},
        **options,
    )


class SessionInputSerializer(serializers.Serializer):
    session = session_field()


def session_of(data: Any) -> str:
    """The body's or query's validated `session`, "" when absent (400 when malformed)."""
    if not isinstance(data, Mapping) or "session" not in data:
        return ""
    value = data.get("session")
    if type(value) is str and _SESSION.match(value):
        return value
    serializer = SessionInputSerializer(data={"session": value})
    serializer.is_valid(raise_exception=True)
    return str(serializer.validated_data.get("session", ""))


# --- inputs --------------------------------------------------------------------------------
class PartToSignSerializer(serializers.Serializer):
    number = StrictIntegerField(min_value=1, max_value=MAX_PARTS)
    checksum = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")


class UploadStartSignSerializer(serializers.Serializer):
    parts = PartToSignSerializer(many=True, allow_empty=False)


class UploadCreateInputSerializer(serializers.Serializer):
    filename = serializers.CharField(max_length=1024, trim_whitespace=False)
    size = StrictIntegerField(min_value=0)
    content_type = serializers.CharField(
        max_length=255, required=False, allow_blank=True, default=""
    )
    checksum_algorithm = serializers.ChoiceField(
        choices=["SHA256", "CRC32C", "MD5", ""],
        required=False,
        default="",
        help_text="The digest the client would like its parts to carry; the answer's "
        "checksum_algorithm is the one the server chose for the store (follow it).",
    )
    fingerprint = serializers.RegexField(
        r"^[\x21-\x7e]{0,128}$",
        required=False,
        allow_blank=True,
        default="",
        error_messages={"invalid": "Up to 128 printable ASCII characters."},
    )
    part_size = StrictIntegerField(min_value=MIN_PART_SIZE, max_value=MAX_PART_SIZE, required=False)
    client_token = serializers.RegexField(
        r"^[A-Za-z0-9_.:-]{1,64}$",
        required=False,
        error_messages={"invalid": "1 to 64 letters, digits or _ . : -"},
    )
    session = session_field()
    resume = StrictBooleanField(
        required=False,
        default=False,
        help_text="Go on with the caller's newest upload of this file still uploading (same "
        "fingerprint, size and filename) instead of creating one: answers 200 with "
        '`"resumed": true`. Needs `fingerprint`.',
    )
    sign = UploadStartSignSerializer(
        required=False,
        help_text="Parts to sign in the same call; the answer's `signed` leaves out the parts "
        "S3 holds and those leased to another active session (`leased`).",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("resume") and not attrs.get("fingerprint"):
            raise serializers.ValidationError({"fingerprint": "resume needs the fingerprint."})
        return attrs


class UploadDetailQuerySerializer(serializers.Serializer):
    session = session_field()


class UploadDownloadQuerySerializer(serializers.Serializer):
    inline = serializers.BooleanField(
        required=False,
        default=False,
        help_text="1: `Content-Disposition: inline` (show in the browser) instead of attachment.",
    )


class UploadListQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Upload.Status.choices, required=False)
    fingerprint = serializers.CharField(max_length=128, required=False)


class SignPartsInputSerializer(serializers.Serializer):
    parts = PartToSignSerializer(many=True, allow_empty=False)
    session = session_field()


class ReportedPartSerializer(serializers.Serializer):
    number = StrictIntegerField(min_value=1, max_value=MAX_PARTS)
    etag = serializers.CharField(max_length=130)
    checksum = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")


class ReportPartsInputSerializer(serializers.Serializer):
    parts = ReportedPartSerializer(many=True, allow_empty=False)
    session = session_field()


# Signing and reporting are the calls a client makes per batch of parts, and DRF's nested
# serializers cost as much CPU per part as presigning its URL (docs/performance.md). A body that
# is already in canonical form (what every client sends) is read by `_canonical_parts` in a
# single pass; anything else goes through the serializer, so every error, and every coercion
# DRF would make (whitespace trimming, "12" strings refused, ...), is exactly the serializer's.
_TEXT_FIELDS: dict[type[serializers.Serializer], dict[str, tuple[re.Pattern[str], bool]]] = {
    # field: (the values taken as they are, required); both patterns exclude whitespace, so
    # DRF's trimming would change nothing, and stay within the serializer's max_length.
    PartToSignSerializer: {"checksum": (re.compile(r"[A-Za-z0-9+/=]{0,64}"), False)},
    ReportedPartSerializer: {
        "etag": (re.compile(r"[\x21-\x7e]{1,130}"), True),
        "checksum": (re.compile(r"[A-Za-z0-9+/=]{0,64}"), False),
    },
}


def _canonical_parts(data: Any, item: type[serializers.Serializer]) -> list[dict[str, Any]] | None:
    """The validated parts of a body already in canonical form, else None."""
    if type(data) is not dict:
        return None
    parts = data.get("parts")
    if type(parts) is not list or not parts:
        return None
    fields = _TEXT_FIELDS[item]
    validated: list[dict[str, Any]] = []
    for part in parts:
        if type(part) is not dict:
            return None
        number = part.get("number")
        if type(number) is not int or not 1 <= number <= MAX_PARTS:
            return None
        row: dict[str, int | str] = {"number": number}
        for name, (pattern, required) in fields.items():
            value = part.get(name)
            if value is None:
                if required or name in part:  # null is not the same as absent
                    return None
                value = ""
            elif type(value) is not str or not pattern.fullmatch(value):
                return None
            row[name] = value
        validated.append(row)
    return validated


def parts_to_sign(data: Any) -> list[dict[str, Any]]:
    """`SignPartsInputSerializer(data=data).validated_data["parts"]`, fast for canonical bodies."""
    return _validated_parts(data, SignPartsInputSerializer, PartToSignSerializer)


def reported_parts(data: Any) -> list[dict[str, Any]]:
    """`ReportPartsInputSerializer(data=data).validated_data["parts"]`, fast when canonical."""
    return _validated_parts(data, ReportPartsInputSerializer, ReportedPartSerializer)


def _validated_parts(
    data: Any, body: type[serializers.Serializer], item: type[serializers.Serializer]
) -> list[dict[str, Any]]:
    parts = _canonical_parts(data, item)
    if parts is None:
        serializer = body(data=data)
        serializer.is_valid(raise_exception=True)
        parts = [dict(part) for part in serializer.validated_data["parts"]]
    return parts


# --- outputs -------------------------------------------------------------------------------
class UploadPartSerializer(serializers.ModelSerializer):
    # Declared: the model field's range is the database's (2**31 on PostgreSQL, 2**63 on
    # SQLite), and the schema must not depend on the engine it was generated on.
    number = serializers.IntegerField(min_value=1, max_value=MAX_PARTS, read_only=True)

    class Meta:
        model = UploadPart
        fields = ["number", "size", "etag", "checksum"]


UPLOAD_FIELDS = [
    "id",
    "status",
    "filename",
    "size",
    "content_type",
    "key",
    "part_size",
    "part_count",
    "checksum_algorithm",
    "fingerprint",
    "bytes_uploaded",
    "parts_uploaded",
    "created_at",
    "updated_at",
    "expires_at",
    "completed_at",
    "etag",
    "checksum",
    "failure_reason",
]


class LimitsSerializer(serializers.Serializer):
    """What clients adapt to: batch sizes, the URL lifetime, when a silent session lapses."""

    sign_batch_max = serializers.IntegerField(help_text="Most parts one sign call accepts.")
    report_batch_max = serializers.IntegerField(help_text="Most parts one report accepts.")
    url_expires_in = serializers.IntegerField(help_text="Lifetime of a part URL, in seconds.")
    session_idle = serializers.IntegerField(
        help_text="Seconds without a sign or report after which a session is no longer active."
    )


class UploadSerializer(serializers.ModelSerializer):
    checksum_algorithm = serializers.ChoiceField(
        choices=["SHA256", "CRC32C", "MD5", ""],
        help_text="The digest each part must carry, as the server chose it for the store: "
        "SHA256, CRC32C, MD5 (Content-MD5) or none. Clients compute this one.",
    )
    integrity = serializers.ChoiceField(
        source="part_integrity",
        choices=Upload.Integrity.choices,
        help_text="What catches a corrupted part: the store (it verifies the digest), "
        "etag (completion compares each part's ETag with its MD5) or none.",
    )
    unverified = serializers.BooleanField(
        help_text="True when nothing catches a corrupted part before completion; the object "
        "is then re-hashed after it."
    )
    limits = serializers.SerializerMethodField()

    class Meta:
        model = Upload
        fields = [*UPLOAD_FIELDS, "integrity", "unverified", "limits"]
        read_only_fields = fields

    @extend_schema_field(LimitsSerializer)
    def get_limits(self, upload: Upload) -> dict[str, int]:
        # The same for every upload of a page: read the settings once per answer.
        if "limits" not in self.context:
            self.context["limits"] = dataclasses.asdict(selectors.client_limits())
        limits: dict[str, int] = self.context["limits"]
        return limits


class UploadDetailSerializer(UploadSerializer):
    parts = UploadPartSerializer(many=True, read_only=True)

    class Meta(UploadSerializer.Meta):
        fields = [*UploadSerializer.Meta.fields, "parts"]
        read_only_fields = fields


OTHER_SESSIONS_HELP = "How many sessions other than the caller's are active on the upload."


class UploadLiveDetailSerializer(UploadDetailSerializer):
    """The detail: the upload, its parts reconciled with S3, and the other active sessions."""

    other_sessions = serializers.IntegerField(help_text=OTHER_SESSIONS_HELP)

    class Meta(UploadDetailSerializer.Meta):
        fields = [*UploadDetailSerializer.Meta.fields, "other_sessions"]
        read_only_fields = fields


class UploadProgressSerializer(UploadSerializer):
    """The answer to a report: the upload's progress, and the other active sessions."""

    other_sessions = serializers.IntegerField(help_text=OTHER_SESSIONS_HELP)

    class Meta(UploadSerializer.Meta):
        fields = [*UploadSerializer.Meta.fields, "other_sessions"]
        read_only_fields = fields


class SignedPartSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    url = serializers.URLField()
    method = serializers.CharField()
    headers = serializers.DictField(child=serializers.CharField())
    size = serializers.IntegerField(allow_null=True)
    expires_at = serializers.DateTimeField()


LEASED_HELP = "Asked parts not signed: another active session signed them and is sending them."


class SignedPartsSerializer(serializers.Serializer):
    parts = SignedPartSerializer(many=True)
    leased = serializers.ListField(child=serializers.IntegerField(), help_text=LEASED_HELP)
    other_sessions = serializers.IntegerField(help_text=OTHER_SESSIONS_HELP)


class UploadStartedSerializer(UploadDetailSerializer):
    """The create answer: the upload with its parts; `resumed` with `resume`, and `signed`
    and `leased` with `sign`, and `other_sessions` with either."""

    resumed = serializers.BooleanField(
        required=False, help_text="Only with `resume`: true when an upload was found (200)."
    )
    signed = SignedPartSerializer(
        many=True, required=False, help_text="Only with `sign`: the signed parts."
    )
    leased = serializers.ListField(
        child=serializers.IntegerField(), required=False, help_text=LEASED_HELP
    )
    other_sessions = serializers.IntegerField(required=False, help_text=OTHER_SESSIONS_HELP)

    class Meta(UploadDetailSerializer.Meta):
        fields = [
            *UploadDetailSerializer.Meta.fields,
            "resumed",
            "signed",
            "leased",
            "other_sessions",
        ]
        read_only_fields = fields


def signed_batch_body(batch: SignBatch) -> dict[str, Any]:
    """`SignedPartsSerializer(batch).data`, built directly (the hot path)."""
    return {
        **signed_parts_body(batch.parts),
        "leased": batch.leased,
        "other_sessions": batch.other_sessions,
    }


def signed_parts_body(signed: Sequence[SignedPart]) -> dict[str, list[dict[str, Any]]]:
    """`{"parts": SignedPartSerializer(signed, many=True).data}`, built directly."""
    # Every part of a batch expires at the same instant: format it once, the way DRF would.
    stamps: dict[datetime, str] = {}
    to_text = serializers.DateTimeField().to_representation
    body: list[dict[str, Any]] = []
    for part in signed:
        stamp = stamps.get(part.expires_at)
        if stamp is None:
            stamp = stamps[part.expires_at] = to_text(part.expires_at)
        body.append(
            {
                "number": part.number,
                "url": part.url,
                "method": part.method,
                "headers": dict(part.headers),
                "size": part.size,
                "expires_at": stamp,
            }
        )
    return {"parts": body}


class ErrorSerializer(serializers.Serializer):
    """Every error answer: a stable machine-readable code and a human sentence."""

    code = serializers.CharField()
    detail = serializers.CharField()
