"""Routes of the Uppy/Companion-compatible layer, mounted at /s3/ (Uppy's `${endpoint}/s3/…`).

No trailing slashes: these are the exact paths @uppy/aws-s3 requests.
"""

from django.urls import path, re_path

from . import companion
from .api.views import ApiNotFound

app_name = "companion"

urlpatterns = [
    path("multipart", companion.CompanionCreateApi.as_view(), name="create"),
    path("multipart/<str:upload_id>", companion.CompanionUploadApi.as_view(), name="upload"),
    # Before the part route: "batch" would otherwise be read as a part number.
    path(
        "multipart/<str:upload_id>/batch",
        companion.CompanionSignBatchApi.as_view(),
        name="sign-batch",
    ),
    path(
        "multipart/<str:upload_id>/complete",
        companion.CompanionCompleteApi.as_view(),
        name="complete",
    ),
    path(
        "multipart/<str:upload_id>/<str:part_number>",
        companion.CompanionSignApi.as_view(),
        name="sign",
    ),
    path("params", companion.CompanionParamsApi.as_view(), name="params"),
    re_path(r"^.*$", ApiNotFound.as_view(), name="not-found"),
]
