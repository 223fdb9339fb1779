"""Uppy/Companion-compatible endpoints: what `@uppy/aws-s3` calls on a Companion endpoint.

An existing Uppy front end points `companionEndpoint` (Uppy 6) or `endpoint` (Uppy 5) at the
site and works unchanged; the shapes are Companion's (its `/s3/multipart` routes, as @uppy/aws-s3
calls them; docs/architecture.md, "The Uppy layer"). Every route is a thin
caller of the same services as the REST API, so Partwise's guarantees hold:

* login required (session or `Authorization: Token`), and an upload id that is not the
  caller's answers 404;
* `uploadId` is Partwise's upload UUID and `key` is chosen by the server: the S3 upload id
  never leaves the server, the client's requested key is ignored, and a `key` query
  parameter, when sent, must be the upload's;
* Uppy never sends sizes, so uploads are unplanned: parts are signed without a length and
  completion checks S3's parts (contiguous 1..N, all but the last at least 5 MiB) and the
  ETags Uppy reports (quoted or not), then records the size S3 holds.

Not supported, on purpose: `GET /s3/params` (Uppy's single-POST upload). A presigned POST
cannot bind the exact size, and nothing tells the server when it has finished, so it could not
be checked or recorded like every other upload. It answers 400 `multipart_required`: configure
Uppy with `shouldUseMultipart: true` (Uppy 6 then sends every non-empty file as multipart).

CSRF: Uppy 6 has no option to add a header such as X-CSRFToken to its Companion requests,
so for a session-authenticated POST or DELETE the `Origin` header (which browsers send on
every such request, and which a page cannot forge) must name this site or one of
CSRF_TRUSTED_ORIGINS; without a matching Origin, Django's usual CSRF token is required.
JSON bodies (create, complete) also need `Content-Type: application/json`, which no HTML form
can send. Token-authenticated calls carry no ambient credentials and need neither.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from . import services
from .api.authentication import CsrfSessionAuthentication, signed_in_user
from .api.base import PartwiseApiView
from .api.serializers import StrictIntegerField
from .api.views import ERRORS, get_own_upload
from .conf import upload_settings
from .exceptions import KeyMismatch, MultipartRequired
from .models import Upload
from .parts import MAX_PARTS
from .services.validation import parse_part_number
from .tokens.authentication import NamedTokenAuthentication

# DRF's EXCEPTION_HANDLER: (the exception, the view's context) -> a response, or None for a 500.
ExceptionHandler: TypeAlias = Callable[[Exception, dict[str, Any]], Response | None]
TAGS = ["uppy-companion"]
KEY_PARAMETER = OpenApiParameter(
    "key",
    str,
    OpenApiParameter.QUERY,
    required=False,
    description="The key returned at creation; checked when sent (Uppy always sends it).",
)


# --- authentication --------------------------------------------------------------------------
def _origin_is_ours(request: HttpRequest) -> bool:
    origin = request.headers.get("Origin")
    if not origin or origin == "null":
        return False
    return origin == f"{request.scheme}://{request.get_host()}" or origin in set(
        settings.CSRF_TRUSTED_ORIGINS
    )


class OriginSessionAuthentication(CsrfSessionAuthentication):
    """Session authentication whose CSRF check accepts a same-origin `Origin` header.

    Uppy 6 cannot send a CSRF token with its Companion requests; a matching Origin proves the
    request comes from one of our own pages just as well. Anything else falls back to Django's
    CSRF check (token and Origin), answering 403 `csrf_failed`.
    """

    def enforce_csrf(self, request: Request) -> None:
        if _origin_is_ours(request):
            return
        super().enforce_csrf(request)


# --- shapes (Companion's, hence the S3-style names) ------------------------------------------
class CompanionCreateInputSerializer(serializers.Serializer):
    filename = serializers.CharField(max_length=1024, trim_whitespace=False)
    type = serializers.CharField(max_length=255, allow_blank=True, required=False, default="")
    metadata = serializers.DictField(required=False, help_text="Accepted and not stored.")


class CompanionCreatedSerializer(serializers.Serializer):
    key = serializers.CharField()
    uploadId = serializers.CharField(help_text="Partwise's upload id (a UUID).")
    bucket = serializers.CharField()


class CompanionSignedPartSerializer(serializers.Serializer):
    url = serializers.URLField()
    method = serializers.CharField()
    headers = serializers.DictField(child=serializers.CharField())
    expires = serializers.IntegerField(help_text="Seconds the URL stays valid.")


class CompanionSignedBatchSerializer(serializers.Serializer):
    presignedUrls = serializers.DictField(child=serializers.URLField())


class CompanionStoredPartSerializer(serializers.Serializer):
    PartNumber = serializers.IntegerField()
    Size = serializers.IntegerField(allow_null=True)
    ETag = serializers.CharField(help_text="Quoted, as S3 lists it.")
    LastModified = serializers.DateTimeField(allow_null=True)


class CompanionPartSerializer(serializers.Serializer):
    PartNumber = StrictIntegerField(min_value=1, max_value=MAX_PARTS)
    ETag = serializers.CharField(max_length=130, help_text="Quoted or not.")


class CompanionCompleteInputSerializer(serializers.Serializer):
    parts: serializers.ListSerializer[Any] = serializers.ListSerializer(
        child=CompanionPartSerializer(), allow_empty=False, max_length=MAX_PARTS
    )

    def validate_parts(self, parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        numbers = [part["PartNumber"] for part in parts]
        if numbers != list(range(1, len(numbers) + 1)):
            raise serializers.ValidationError("Parts must be numbered 1 to N, in order.")
        return parts


class CompanionCompletedSerializer(serializers.Serializer):
    location = serializers.URLField(help_text="The upload in the REST API.")
    key = serializers.CharField()
    bucket = serializers.CharField()


class CompanionEmptySerializer(serializers.Serializer):
    """Companion's `{}`."""


# --- views -----------------------------------------------------------------------------------
class CompanionApi(PartwiseApiView):
    authentication_classes = [NamedTokenAuthentication, OriginSessionAuthentication]

    def get_exception_handler(self) -> ExceptionHandler:
        handler: ExceptionHandler = super().get_exception_handler()

        def with_message(exc: Exception, context: dict[str, Any]) -> Response | None:
            response = handler(exc, context)
            # Uppy 5 shows a JSON body's `message` to the user; Uppy 6 only the status text.
            if response is not None and isinstance(response.data, dict):
                response.data.setdefault("message", response.data.get("detail", ""))
            return response

        return with_message

    def own_upload(self, request: Request, upload_id: str) -> Upload:
        upload = get_own_upload(request, upload_id)
        key = request.query_params.get("key")
        if key is not None and key != upload.key:
            raise KeyMismatch
        return upload


class CompanionCreateApi(CompanionApi):
    @extend_schema(
        tags=TAGS,
        request=CompanionCreateInputSerializer,
        responses={200: CompanionCreatedSerializer, **ERRORS},
        summary="Uppy: start a multipart upload (the key is chosen by the server)",
    )
    def post(self, request: Request) -> Response:
        data = CompanionCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        upload, _ = services.start_upload(
            owner=signed_in_user(request),
            filename=data.validated_data["filename"],
            size=None,
            content_type=data.validated_data["type"],
        )
        return Response(
            {"key": upload.key, "uploadId": str(upload.id), "bucket": upload_settings().bucket}
        )


class CompanionUploadApi(CompanionApi):
    @extend_schema(
        tags=TAGS,
        parameters=[KEY_PARAMETER],
        responses={200: CompanionStoredPartSerializer(many=True), **ERRORS},
        summary="Uppy: the parts S3 holds (reconciled), as S3 Part objects",
    )
    def get(self, request: Request, upload_id: str) -> Response:
        upload = services.sync_upload_parts(
            self.own_upload(request, upload_id), by=signed_in_user(request)
        )
        parts = [
            {
                "PartNumber": part.number,
                "Size": part.size,
                "ETag": f'"{part.etag}"',
                "LastModified": part.uploaded_at,
            }
            for part in upload.parts.all()
            if part.etag
        ]
        return Response(CompanionStoredPartSerializer(parts, many=True).data)

    @extend_schema(
        tags=TAGS,
        parameters=[KEY_PARAMETER],
        responses={200: CompanionEmptySerializer, **ERRORS},
        summary="Uppy: abort the upload (idempotent; a completed upload answers 409)",
    )
    def delete(self, request: Request, upload_id: str) -> Response:
        services.abort_upload(self.own_upload(request, upload_id), by=signed_in_user(request))
        return Response({})


class CompanionSignApi(CompanionApi):
    @extend_schema(
        tags=TAGS,
        parameters=[
            OpenApiParameter("part_number", int, OpenApiParameter.PATH),
            KEY_PARAMETER,
        ],
        responses={200: CompanionSignedPartSerializer, **ERRORS},
        summary="Uppy: a presigned URL for one part",
    )
    def get(self, request: Request, upload_id: str, part_number: str) -> Response:
        upload = self.own_upload(request, upload_id)
        number = parse_part_number(part_number)
        (signed,) = services.sign_parts(
            upload, parts=[services.PartToSign(number=number)], by=signed_in_user(request)
        )
        return Response(
            {
                "url": signed.url,
                "method": signed.method,
                "headers": signed.headers,
                "expires": upload_settings().url_expiry,
            }
        )


class CompanionSignBatchApi(CompanionApi):
    @extend_schema(
        tags=TAGS,
        parameters=[
            OpenApiParameter(
                "partNumbers",
                str,
                OpenApiParameter.QUERY,
                required=True,
                description="Comma-separated part numbers, e.g. 1,2,3.",
            ),
            KEY_PARAMETER,
        ],
        responses={200: CompanionSignedBatchSerializer, **ERRORS},
        summary="Uppy: presigned URLs for several parts",
    )
    def get(self, request: Request, upload_id: str) -> Response:
        upload = self.own_upload(request, upload_id)
        raw = request.query_params.get("partNumbers", "")
        numbers = [parse_part_number(value.strip()) for value in raw.split(",")] if raw else []
        parts = [services.PartToSign(number=number) for number in numbers]
        signed = services.sign_parts(upload, parts=parts, by=signed_in_user(request))
        return Response({"presignedUrls": {str(part.number): part.url for part in signed}})


class CompanionCompleteApi(CompanionApi):
    @extend_schema(
        tags=TAGS,
        parameters=[KEY_PARAMETER],
        request=CompanionCompleteInputSerializer,
        responses={200: CompanionCompletedSerializer, **ERRORS},
        summary="Uppy: check every part against S3 and complete the object",
    )
    def post(self, request: Request, upload_id: str) -> Response:
        upload = self.own_upload(request, upload_id)
        data = CompanionCompleteInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        reported = [
            services.ReportedPart(number=part["PartNumber"], etag=part["ETag"])
            for part in data.validated_data["parts"]
        ]
        upload = services.record_parts_and_complete(
            upload, parts=reported, by=signed_in_user(request)
        )
        location = request.build_absolute_uri(reverse("uploads:detail", args=[upload.pk]))
        return Response(
            {"location": location, "key": upload.key, "bucket": upload_settings().bucket}
        )


class CompanionParamsApi(CompanionApi):
    @extend_schema(
        tags=TAGS,
        responses=ERRORS,
        summary="Uppy single-POST uploads: not supported (use shouldUseMultipart: true)",
    )
    def get(self, request: Request) -> Response:
        raise MultipartRequired
