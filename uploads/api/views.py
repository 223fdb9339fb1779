"""The REST API: one thin class per resource; each method parses, calls one service, serialises."""

import uuid
from typing import Any

from django.http import Http404
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response

from .. import selectors, services
from ..models import Upload
from .authentication import signed_in_user
from .base import PartwiseApiView
from .serializers import (
    ErrorSerializer,
    ReportPartsInputSerializer,
    SignedPartsSerializer,
    SignPartsInputSerializer,
    UploadCreateInputSerializer,
    UploadDetailQuerySerializer,
    UploadDetailSerializer,
    UploadDownloadQuerySerializer,
    UploadListQuerySerializer,
    UploadLiveDetailSerializer,
    UploadProgressSerializer,
    UploadSerializer,
    UploadStartedSerializer,
    parts_to_sign,
    reported_parts,
    session_of,
    signed_batch_body,
)

ERRORS = {
    code: OpenApiResponse(ErrorSerializer, description=text)
    for code, text in {
        400: "invalid input",
        401: "not authenticated",
        403: "not allowed (e.g. CSRF failed)",
        404: "not yours or absent",
        409: "wrong state for this call",
        412: "If-Match does not name the upload's etag",
        413: "too large",
        415: "type not allowed",
        429: "throttled",
        502: "storage failed",
    }.items()
}


class NewestFirst(CursorPagination):
    ordering = "-created_at"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def decode_cursor(self, request: Request) -> Cursor | None:
        """DRF's cursor, refused (404, DRF's "Invalid cursor") when its position is no time.

        The position goes into `created_at < position`; a forged one ("p=notadate") would
        otherwise fail in the database, as a 500.
        """
        cursor = super().decode_cursor(request)
        if cursor is not None and cursor.position is not None:
            try:
                valid = parse_datetime(str(cursor.position)) is not None
            except ValueError:  # well-formed but impossible, e.g. 2026-13-45
                valid = False
            if not valid:
                raise NotFound(self.invalid_cursor_message)
        return cursor


def get_own_upload(request: Request, pk: str) -> Upload:
    """The caller's upload; another user's upload and a malformed id are both a plain 404."""
    try:
        upload_id = uuid.UUID(str(pk))
    except ValueError:
        raise Http404 from None
    try:
        return selectors.uploads_of(signed_in_user(request)).get(pk=upload_id)
    except Upload.DoesNotExist:
        raise Http404 from None


def with_entity_tag(response: Response, upload: Upload) -> Response:
    """The upload's etag as the answer's `ETag` header (strong, quoted): what `If-Match` names."""
    tag = services.entity_tag(upload)
    if tag:
        response["ETag"] = tag
    return response


IF_MATCH = OpenApiParameter(
    "If-Match",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description='A completed upload only: its etag, quoted (`"…"`, as the `ETag` header shows '
    "it). Deletes the file in S3 and marks the upload `deleted`; a wrong etag answers 412.",
)


class UploadListApi(PartwiseApiView):
    @extend_schema(
        parameters=[UploadListQuerySerializer],
        operation_id="api_uploads_list",
        responses={
            # The cursor page, as NewestFirst answers it (an APIView's paginator is not seen
            # by drf-spectacular on its own).
            200: inline_serializer(
                "UploadPage",
                fields={
                    "next": serializers.URLField(allow_null=True),
                    "previous": serializers.URLField(allow_null=True),
                    "results": UploadSerializer(many=True),
                },
            ),
            **ERRORS,
        },
        summary="The caller's uploads, newest first",
    )
    def get(self, request: Request) -> Response:
        query = UploadListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        uploads = selectors.uploads_of(
            signed_in_user(request),
            status=query.validated_data.get("status"),
            fingerprint=query.validated_data.get("fingerprint"),
        )
        paginator = NewestFirst()
        page = paginator.paginate_queryset(uploads, request, view=self)
        return paginator.get_paginated_response(UploadSerializer(page, many=True).data)

    @extend_schema(
        request=UploadCreateInputSerializer,
        responses={201: UploadStartedSerializer, 200: UploadStartedSerializer, **ERRORS},
        summary="Start an upload, or resume the caller's upload of the same file "
        "(idempotent with client_token)",
        description="201: a new upload. 200: the same `client_token` again, or with `resume` "
        "the caller's newest upload of this file still uploading (`resumed: true`, its parts "
        "reconciled with S3). With `sign`, the first batch of part URLs comes along.",
    )
    def post(self, request: Request) -> Response:
        data = UploadCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        resume, sign = fields.pop("resume"), fields.pop("sign", None)
        started = services.start_or_resume_upload(
            owner=signed_in_user(request),
            resume=resume,
            sign=[services.PartToSign(**part) for part in sign["parts"]] if sign else None,
            **fields,
        )
        body = UploadDetailSerializer(started.upload).data
        if resume:
            body["resumed"] = started.resumed
        if started.signed is not None:
            batch = signed_batch_body(started.signed)
            body["signed"], body["leased"] = batch["parts"], batch["leased"]
        if started.other_sessions is not None:
            body["other_sessions"] = started.other_sessions
        created = status.HTTP_201_CREATED if started.created else status.HTTP_200_OK
        return Response(body, status=created)


class UploadDetailApi(PartwiseApiView):
    @extend_schema(
        parameters=[UploadDetailQuerySerializer],
        responses={200: UploadLiveDetailSerializer, **ERRORS},
        summary="One upload with its parts, reconciled with S3",
    )
    def get(self, request: Request, pk: str) -> Response:
        session = session_of(request.query_params)
        upload = services.sync_upload_parts(get_own_upload(request, pk), by=signed_in_user(request))
        body = UploadDetailSerializer(upload).data
        body["other_sessions"] = selectors.other_sessions(upload, session=session)
        return with_entity_tag(Response(body), upload)

    @extend_schema(
        parameters=[IF_MATCH],
        responses={200: UploadSerializer, **ERRORS},
        summary="Abort the upload, or with If-Match delete the completed file",
        description="Without If-Match: abort (idempotent); a completed upload answers 409. "
        "With `If-Match: <its etag>`: the completed file is deleted in S3 and the upload "
        "becomes `deleted`, its record kept (idempotent); a wrong etag answers 412 "
        "`precondition_failed`.",
    )
    def delete(self, request: Request, pk: str) -> Response:
        upload, by = get_own_upload(request, pk), signed_in_user(request)
        if_match = request.headers.get("If-Match")
        if if_match is None:
            upload = services.abort_upload(upload, by=by)
        else:
            upload = services.delete_file(upload, if_match=if_match, by=by)
        return with_entity_tag(Response(UploadSerializer(upload).data), upload)


class UploadDownloadApi(PartwiseApiView):
    @extend_schema(
        parameters=[
            UploadDownloadQuerySerializer,
            OpenApiParameter(
                "Location",
                OpenApiTypes.URI,
                OpenApiParameter.HEADER,
                response=[302],
                description="The presigned GET URL of the file.",
            ),
        ],
        responses={
            302: OpenApiResponse(
                description="Location: a presigned GET of the file, valid "
                "UPLOADS_DOWNLOAD_EXPIRY seconds, served with Content-Disposition "
                "(attachment, or inline with ?inline=1) and the original name."
            ),
            **ERRORS,
        },
        summary="Download a completed upload's file (302 to a short-lived presigned URL)",
    )
    def get(self, request: Request, pk: str) -> Response:
        query = UploadDownloadQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        url = services.download_url(
            get_own_upload(request, pk),
            by=signed_in_user(request),
            inline=query.validated_data["inline"],
        )
        # The URL is a bearer credential for a few minutes: no cache may keep the answer.
        return Response(
            status=status.HTTP_302_FOUND,
            headers={"Location": url, "Cache-Control": "private, no-store"},
        )


class UploadSignApi(PartwiseApiView):
    @extend_schema(
        request=SignPartsInputSerializer,
        responses={200: SignedPartsSerializer, **ERRORS},
        summary="Presigned UploadPart URLs for a batch of parts",
    )
    def post(self, request: Request, pk: str) -> Response:
        upload = get_own_upload(request, pk)
        parts = [services.PartToSign(**part) for part in parts_to_sign(request.data)]
        batch = services.sign_batch(
            upload, parts=parts, by=signed_in_user(request), session=session_of(request.data)
        )
        return Response(signed_batch_body(batch))


class UploadPartsApi(PartwiseApiView):
    @extend_schema(
        request=ReportPartsInputSerializer,
        responses={200: UploadProgressSerializer, **ERRORS},
        summary="Record uploaded parts; answers the progress",
    )
    def post(self, request: Request, pk: str) -> Response:
        upload = get_own_upload(request, pk)
        parts = [services.ReportedPart(**part) for part in reported_parts(request.data)]
        session = session_of(request.data)
        upload = services.record_parts(
            upload, parts=parts, by=signed_in_user(request), session=session
        )
        body = UploadSerializer(upload).data
        body["other_sessions"] = selectors.other_sessions(upload, session=session)
        return Response(body)


class UploadCompleteApi(PartwiseApiView):
    @extend_schema(
        request=None,
        responses={200: UploadDetailSerializer, **ERRORS},
        summary="Check every part against S3 and complete the object",
    )
    def post(self, request: Request, pk: str) -> Response:
        upload = services.complete_upload(get_own_upload(request, pk), by=signed_in_user(request))
        return Response(UploadDetailSerializer(upload).data)


@extend_schema(exclude=True)
class ApiNotFound(PartwiseApiView):
    """Any other path under /api/: a JSON 404 rather than Django's HTML page."""

    permission_classes = []
    authentication_classes = []

    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        raise Http404

    post = put = patch = delete = get
