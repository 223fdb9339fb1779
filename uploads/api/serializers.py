"""Input and output shapes of the REST API. Shape validation only: rules live in services.

Names are unique and never contain "Request" (drf-spectacular names components after them).
"""

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rest_framework import serializers

from ..models import Upload, UploadPart
from ..parts import MAX_PART_SIZE, MAX_PARTS, MIN_PART_SIZE, SignedPart


class StrictIntegerField(serializers.IntegerField):
    """An integer that is a JSON integer: no "12" strings, no 12.5, no true."""

    default_error_messages = {"invalid": "A JSON integer is required."}

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


# --- inputs --------------------------------------------------------------------------------
class UploadCreateInputSerializer(serializers.Serializer):
    filename = serializers.CharField(max_length=1024, trim_whitespace=False)
    size = StrictIntegerField(min_value=0)
    content_type = serializers.CharField(
        max_length=255, required=False, allow_blank=True, default=""
    )
    checksum_algorithm = serializers.ChoiceField(choices=["SHA256", ""], required=False, default="")
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


class UploadListQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Upload.Status.choices, required=False)
    fingerprint = serializers.CharField(max_length=128, required=False)


class PartToSignSerializer(serializers.Serializer):
    number = StrictIntegerField(min_value=1, max_value=MAX_PARTS)
    checksum = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")


class SignPartsInputSerializer(serializers.Serializer):
    parts = PartToSignSerializer(many=True, allow_empty=False)


class ReportedPartSerializer(serializers.Serializer):
    number = StrictIntegerField(min_value=1, max_value=MAX_PARTS)
    etag = serializers.CharField(max_length=130)
    checksum = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")


class ReportPartsInputSerializer(serializers.Serializer):
    parts = ReportedPartSerializer(many=True, allow_empty=False)


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


class UploadSerializer(serializers.ModelSerializer):
    class Meta:
        model = Upload
        fields = UPLOAD_FIELDS
        read_only_fields = UPLOAD_FIELDS


class UploadDetailSerializer(UploadSerializer):
    parts = UploadPartSerializer(many=True, read_only=True)

    class Meta(UploadSerializer.Meta):
        fields = [*UPLOAD_FIELDS, "parts"]
        read_only_fields = fields


class SignedPartSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    url = serializers.URLField()
    method = serializers.CharField()
    headers = serializers.DictField(child=serializers.CharField())
    size = serializers.IntegerField(allow_null=True)
    expires_at = serializers.DateTimeField()


class SignedPartsSerializer(serializers.Serializer):
    parts = SignedPartSerializer(many=True)


def signed_parts_body(signed: Sequence[SignedPart]) -> dict[str, list[dict[str, Any]]]:
    """`SignedPartsSerializer({"parts": signed}).data`, built directly (the hot path)."""
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
