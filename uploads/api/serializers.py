"""Input and output shapes of the REST API. Shape validation only: rules live in services.

Names are unique and never contain "Request" (drf-spectacular names components after them).
"""

from typing import Any

from rest_framework import serializers

from ..models import Upload, UploadPart
from ..parts import MAX_PART_SIZE, MAX_PARTS, MIN_PART_SIZE


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


class ErrorSerializer(serializers.Serializer):
    """Every error answer: a stable machine-readable code and a human sentence."""

    code = serializers.CharField()
    detail = serializers.CharField()
