"""The admin's action on completed files: delete them, after a page that lists what goes.

Kept apart from uploads/admin.py, which registers it (`actions = [..., delete_files]`): the
action is one function over one service (`services.delete_files`), with Django's pattern for
destructive actions, an intermediate page listing the files and their sizes, like the
built-in delete_selected.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from . import services
from .models import Upload

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

Status = Upload.Status
TEMPLATE = "admin/uploads/upload/delete_files_confirmation.html"


def _files(count: int) -> str:
    return f"{count} file" if count == 1 else f"{count} files"


@admin.action(description="Delete the files of selected completed uploads", permissions=["operate"])
def delete_files(
    modeladmin: ModelAdmin[Upload], request: HttpRequest, queryset: QuerySet[Upload]
) -> HttpResponse | None:
    """Ask first, then delete the objects of the completed uploads among `queryset` in S3; the
    rows stay, marked `deleted` (what an owner's DELETE with If-Match does)."""
    if request.POST.get("post") != "yes":
        return confirmation(modeladmin, request, queryset)
    result = services.delete_files(queryset.filter(status=Status.COMPLETED))
    modeladmin.message_user(request, f"Deleted {_files(result.changed)}.", messages.SUCCESS)
    for error in result.errors:
        modeladmin.message_user(request, error, messages.WARNING)
    return None


def confirmation(
    modeladmin: ModelAdmin[Upload], request: HttpRequest, queryset: QuerySet[Upload]
) -> HttpResponse:
    """The page listing the files a "Yes" deletes for good, and the uploads it leaves alone."""
    uploads = list(queryset.select_related("owner"))
    deletable = [upload for upload in uploads if upload.status == Status.COMPLETED]
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": "Delete these files?",
        "opts": modeladmin.model._meta,
        "action_name": "delete_files",
        "action_checkbox_name": ACTION_CHECKBOX_NAME,
        "queryset": uploads,
        "deletable": deletable,
        "left_alone": [upload for upload in uploads if upload not in deletable],
        "bytes_lost": sum(upload.size or 0 for upload in deletable),
    }
    return TemplateResponse(request, TEMPLATE, context)
