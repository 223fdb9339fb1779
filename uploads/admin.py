"""The operators' window on uploads: what is stuck, what S3 still holds, and a few actions.

Read-only for everything S3-bound: no adding, editing or deleting rows (a deleted row would
leave its S3 upload an orphan, an edited status would lie about S3). Each action calls one
service and reports a count. A second page lists orphans: multipart uploads under
UPLOADS_KEY_PREFIX that no live row owns. Reads come from the selectors, changes from the
services: no rule of its own lives here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import PermissionDenied
from django.db.models import IntegerField, QuerySet, Value
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import formats, timezone
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince, timeuntil
from django.utils.translation import ngettext

from . import selectors, services
from .admin_files import delete_files
from .conf import upload_settings
from .exceptions import StorageFailed
from .models import StoreProfile, Upload

if TYPE_CHECKING:
    from django.contrib.admin.filters import _ListFilterChoices
    from django.contrib.admin.views.main import ChangeList

    # ModelAdmin is generic in django-stubs only (Django's class is not subscriptable).
    UploadModelAdmin = admin.ModelAdmin[Upload]
else:
    UploadModelAdmin = admin.ModelAdmin

Status = Upload.Status
PARTS_SHOWN = 1000  # recorded parts listed on the detail page; the rest are counted


def _uploads(count: int) -> str:
    return ngettext("%(count)d upload", "%(count)d uploads", count) % {"count": count}


def _bytes(size: int | None) -> str:
    """A size as people read it, the exact bytes on hover (both matter to an operator)."""
    if size is None:
        return "not known yet"
    return format_html('<span title="{} bytes">{}</span>', f"{size:,}", filesizeformat(size))


class StatusFilter(admin.SimpleListFilter):
    """Incomplete uploads unless another status (or all) is asked for."""

    title = "status"
    parameter_name = "status"
    INCOMPLETE = "incomplete"
    ALL = "all"

    def lookups(self, request: HttpRequest, model_admin: UploadModelAdmin) -> list[tuple[str, str]]:
        return [
            (self.INCOMPLETE, "Incomplete (uploading, completing, failed)"),
            *Status.choices,
            (self.ALL, "All"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Upload]) -> QuerySet[Upload]:
        value = self.value() or self.INCOMPLETE
        if value == self.ALL:
            return queryset
        if value == self.INCOMPLETE:
            return queryset.filter(status__in=Upload.INCOMPLETE)
        return queryset.filter(status=value)

    def choices(self, changelist: ChangeList) -> Iterator[_ListFilterChoices]:
        # No "All" on top that means "no parameter": no parameter means incomplete here.
        current = self.value() or self.INCOMPLETE
        for lookup, title in self.lookup_choices:
            yield {
                "selected": current == str(lookup),
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }


class StaleFilter(admin.SimpleListFilter):
    title = "stale"
    parameter_name = "stale"

    def lookups(self, request: HttpRequest, model_admin: UploadModelAdmin) -> list[tuple[str, str]]:
        return [("yes", "Past its expiry"), ("no", "Not past its expiry")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Upload]) -> QuerySet[Upload] | None:
        if self.value() == "yes":
            return queryset.filter(selectors.stale())
        if self.value() == "no":
            return queryset.exclude(selectors.stale())
        return None


class IntegrityFilter(admin.SimpleListFilter):
    """Uploads whose parts nothing checked (the verify task re-hashes their objects)."""

    title = "part integrity"
    parameter_name = "integrity"

    def lookups(self, request: HttpRequest, model_admin: UploadModelAdmin) -> list[tuple[str, str]]:
        return [("unverified", "Unverified"), ("verified", "Verified")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Upload]) -> QuerySet[Upload] | None:
        if self.value() == "unverified":
            return queryset.filter(selectors.unverified())
        if self.value() == "verified":
            return queryset.exclude(selectors.unverified())
        return None


@admin.register(Upload)
class UploadAdmin(UploadModelAdmin):
    # Fits a 1280 px screen beside the filters (tests/e2e/test_admin.py): the size is in the
    # progress column, the age under the last activity, S3's abort date under the expiry.
    list_display = ["upload", "owner", "status", "progress", "activity", "expires"]
    list_filter = [
        StatusFilter,
        StaleFilter,
        IntegrityFilter,
        ("owner", admin.RelatedOnlyFieldListFilter),
    ]
    # The key holds the upload's id (prefix/<id>/name), so searching it finds ids too.
    search_fields = ["filename", "key", "owner__username", "owner__email"]
    list_select_related = ["owner"]
    show_facets = admin.ShowFacets.NEVER  # counts per status come from one query instead
    actions = ["abort", "reconcile", "extend_expiry", delete_files]
    fieldsets = [
        (None, {"fields": ["id", "owner", "filename", "status", "failure_reason"]}),
        (
            "Size and progress",
            {
                "fields": [
                    "size_human",
                    "content_type",
                    "part_size_human",
                    "part_count",
                    "progress",
                    "checksum_algorithm",
                    "integrity_caught_by",
                    "fingerprint",
                ]
            },
        ),
        ("S3", {"fields": ["key", "s3_upload_id", "etag", "checksum"]}),
        ("Verification", {"fields": ["verification", "verified_at"]}),
        (
            "Times",
            {"fields": ["created_at", "updated_at", "expires_at", "s3_abort_date", "completed_at"]},
        ),
    ]
    readonly_fields = [
        "size_human",
        "part_size_human",
        "progress",
        "integrity_caught_by",
        "s3_abort_date",
    ]

    # --- read-only: state changes only through the actions (services) -------------------------
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Upload | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Upload | None = None) -> bool:
        return False

    def has_operate_permission(self, request: HttpRequest) -> bool:
        """May run the actions and abort orphans: who could change uploads in a plain admin."""
        return request.user.has_perm("uploads.change_upload")

    def lifecycle_days(self, request: HttpRequest) -> int | None:
        """Days after which the bucket's lifecycle rule aborts uploads: read once per request."""
        if not hasattr(request, "_partwise_lifecycle_days"):
            # A per-request memo on the request itself, which declares no such attribute.
            request._partwise_lifecycle_days = selectors.lifecycle_abort_days()  # type: ignore[attr-defined]
        days: int | None = request._partwise_lifecycle_days  # type: ignore[attr-defined]
        return days

    def get_queryset(self, request: HttpRequest) -> QuerySet[Upload]:
        # S3's abort date needs the bucket's lifecycle rule (one read per request).
        days = self.lifecycle_days(request)
        return (
            super()
            .get_queryset(request)
            .annotate(lifecycle_days=Value(days, output_field=IntegerField(null=True)))
        )

    # --- columns ---------------------------------------------------------------------------
    @admin.display(description="upload", ordering="filename")
    def upload(self, obj: Upload) -> str:
        return obj.filename

    @admin.display(description="a corrupted part is caught by")
    def integrity_caught_by(self, obj: Upload) -> str:
        label = Upload.Integrity(obj.part_integrity).label
        return f"UNVERIFIED: {label}" if obj.unverified else label

    @admin.display(description="size", ordering="size")
    def size_human(self, obj: Upload) -> str:
        return _bytes(obj.size)

    @admin.display(description="part size")
    def part_size_human(self, obj: Upload) -> str:
        return _bytes(obj.part_size)

    @admin.display(description="progress", ordering="bytes_uploaded")
    def progress(self, obj: Upload) -> str:
        if obj.status == Status.COMPLETED:
            percent = 100
        elif obj.size:
            percent = min(100, obj.bytes_uploaded * 100 // obj.size)
        else:
            percent = 0
        parts = f"{obj.parts_uploaded}/{obj.part_count}" if obj.part_count else obj.parts_uploaded
        total = filesizeformat(obj.size) if obj.size is not None else "?"
        return format_html(
            '<progress max="100" value="{}" title="{}%"></progress><br>{} of {}'
            '<br><span class="quiet">{} parts</span>',
            percent,
            percent,
            filesizeformat(obj.bytes_uploaded),
            total,
            parts,
        )

    @admin.display(description="activity", ordering="updated_at")
    def activity(self, obj: Upload) -> str:
        return format_html(
            '{} ago<br><span class="quiet">{} old</span>',
            timesince(obj.updated_at, depth=1),
            timesince(obj.created_at, depth=1),
        )

    @admin.display(description="expires", ordering="expires_at")
    def expires(self, obj: Upload) -> str:
        if obj.status not in Upload.EXPIRABLE or obj.completed_at:
            return "—"
        if obj.expires_at <= timezone.now():
            when = f"stale for {timesince(obj.expires_at, depth=1)}"
        else:
            when = f"in {timeuntil(obj.expires_at, depth=1)}"
        aborts = self.s3_abort_date(obj, short=True)
        if aborts is None:
            return when
        return format_html('{}<br><span class="quiet">S3 aborts {}</span>', when, aborts)

    @admin.display(description="S3 aborts it")
    def s3_abort_date(self, obj: Upload, *, short: bool = False) -> str | None:
        days = getattr(obj, "lifecycle_days", None)
        if days is None or obj.status not in Upload.INCOMPLETE or obj.completed_at:
            return None
        # S3 counts from its own initiation time, which is created_at to within a request.
        when = timezone.localtime(selectors.lifecycle_abort_date(obj.created_at, days))
        # Short, for the changelist: weeks away at most, so the month and day say it.
        return formats.date_format(when, "M j") if short else formats.localize(when)

    # --- the changelist's counts, the detail page's parts -----------------------------------
    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        counts = selectors.status_counts()
        extra_context = {
            **(extra_context or {}),
            "status_counts": [(value, label, counts[value]) for value, label in Status.choices],
            "can_operate": self.has_operate_permission(request),
        }
        return super().changelist_view(request, extra_context)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra_context = dict(extra_context or {})
        upload = self.get_object(request, object_id)
        if upload is not None:
            recorded, total = selectors.recorded_parts(upload, limit=PARTS_SHOWN)
            extra_context["recorded_parts"], extra_context["parts_total"] = recorded, total
            conf = upload_settings()
            extra_context["owner_usage"] = selectors.open_usage(upload.owner)
            extra_context["quota"] = (conf.user_max_open_uploads, conf.user_max_open_bytes)
            if request.GET.get("live"):
                try:
                    extra_context["live_parts"] = selectors.live_parts(upload, recorded)
                except StorageFailed as error:
                    self.message_user(request, f"S3: {error.detail}", messages.ERROR)
        return super().change_view(request, object_id, form_url, extra_context)

    # --- actions ----------------------------------------------------------------------------
    def _report(self, request: HttpRequest, text: str, errors: list[str]) -> None:
        self.message_user(request, text, messages.SUCCESS)
        for error in errors:
            self.message_user(request, error, messages.WARNING)

    @admin.action(
        description="Abort selected uploads (and their parts in S3)", permissions=["operate"]
    )
    def abort(self, request: HttpRequest, queryset: QuerySet[Upload]) -> HttpResponse | None:
        """Ask first (Django's pattern for destructive actions), then abort on "Yes"."""
        if request.POST.get("post") != "yes":
            return self.abort_confirmation(request, queryset)
        result = services.abort_uploads(queryset)
        self._report(request, f"Aborted {_uploads(result.changed)}.", result.errors)
        return None

    def abort_confirmation(self, request: HttpRequest, queryset: QuerySet[Upload]) -> HttpResponse:
        """The page that lists what an abort destroys: the parts S3 holds, gone for good."""
        uploads = list(queryset.select_related("owner"))
        # What abort_upload cancels; the rest it refuses (completing, completed) or has no
        # parts left to drop (aborted, expired), and the page says so.
        abortable = [u for u in uploads if u.status in (Status.UPLOADING, Status.FAILED)]
        context = {
            **self.admin_site.each_context(request),
            "title": "Abort these uploads?",
            "opts": self.model._meta,
            "action_name": "abort",
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
            "queryset": queryset,
            "abortable": abortable,
            "left_alone": [upload for upload in uploads if upload not in abortable],
            "bytes_lost": sum(upload.bytes_uploaded for upload in abortable),
            "parts_lost": sum(upload.parts_uploaded for upload in abortable),
        }
        return TemplateResponse(request, "admin/uploads/upload/abort_confirmation.html", context)

    @admin.action(description="Reconcile selected uploads with S3", permissions=["operate"])
    def reconcile(self, request: HttpRequest, queryset: QuerySet[Upload]) -> None:
        result = services.reconcile_uploads(queryset)
        total = result.changed + result.unchanged
        self._report(
            request,
            f"Reconciled {_uploads(total)} with S3: {result.changed} changed.",
            result.errors,
        )

    @admin.action(description="Extend the expiry of selected uploads", permissions=["operate"])
    def extend_expiry(self, request: HttpRequest, queryset: QuerySet[Upload]) -> None:
        by = timedelta(seconds=upload_settings().stale_after)
        result = services.extend_expiry(queryset, by=by, abort_days=self.lifecycle_days(request))
        period = timesince(timezone.now() - by)
        self.message_user(
            request, f"Extended the expiry of {_uploads(result.extended)} by {period}."
        )
        if result.capped:
            text = ngettext(
                "%(count)d of them only up to the date the bucket's lifecycle rule aborts its "
                "parts in S3 (“S3 aborts it”): Partwise cannot keep an upload longer than S3 does.",
                "%(count)d of them only up to the date the bucket's lifecycle rule aborts their "
                "parts in S3 (“S3 aborts it”): Partwise cannot keep an upload longer than S3 does.",
                result.capped,
            )
            self.message_user(request, text % {"count": result.capped}, messages.WARNING)
        if result.at_lifecycle_limit:
            text = ngettext(
                "%(count)d upload was not extended: the bucket's lifecycle rule aborts its parts "
                "in S3 by its current expiry already.",
                "%(count)d uploads were not extended: the bucket's lifecycle rule aborts their "
                "parts in S3 by their current expiry already.",
                result.at_lifecycle_limit,
            )
            self.message_user(
                request, text % {"count": result.at_lifecycle_limit}, messages.WARNING
            )

    # --- the orphans page -------------------------------------------------------------------
    def get_urls(self) -> list[URLPattern]:
        orphans = path(
            "orphans/",
            self.admin_site.admin_view(self.orphans_view),
            name="uploads_upload_orphans",
        )
        return [orphans, *super().get_urls()]

    def orphans_view(self, request: HttpRequest) -> HttpResponse:
        """Multipart uploads in S3 under the key prefix that no live row owns; abort them."""
        if not self.has_operate_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            targets = []
            for value in request.POST.getlist("orphan"):
                try:
                    key, s3_upload_id = json.loads(value)
                except (ValueError, TypeError):
                    continue
                targets.append((str(key), str(s3_upload_id)))
            try:
                aborted = services.abort_orphans(targets)
            except StorageFailed as error:
                self.message_user(request, f"S3: {error.detail}", messages.ERROR)
            else:
                text = ngettext(
                    "Aborted %(count)d orphaned multipart upload in S3.",
                    "Aborted %(count)d orphaned multipart uploads in S3.",
                    len(aborted),
                )
                self.message_user(request, text % {"count": len(aborted)})
            return HttpResponseRedirect(request.path)
        conf = upload_settings()
        try:
            orphans = services.find_orphans()
        except StorageFailed as error:
            orphans = []
            self.message_user(request, f"S3: {error.detail}", messages.ERROR)
        grace = timedelta(seconds=conf.orphan_grace)
        context = {
            **self.admin_site.each_context(request),
            "title": "Orphaned multipart uploads in S3",
            "opts": self.model._meta,
            "prefix": conf.key_prefix,
            "grace": timesince(timezone.now() - grace),
            "orphans": [
                {
                    "orphan": orphan,
                    "value": json.dumps([orphan.key, orphan.s3_upload_id]),
                    "age": timesince(orphan.initiated),
                    "past_grace": orphan.age >= grace,
                    "row_url": reverse("admin:uploads_upload_change", args=[orphan.upload_pk])
                    if orphan.upload_pk
                    else "",
                }
                for orphan in orphans
            ],
        }
        return TemplateResponse(request, "admin/uploads/upload/orphans.html", context)


@admin.register(StoreProfile)
class StoreProfileAdmin(admin.ModelAdmin):
    """What `probe_storage` found each store to verify (read-only: the probe writes it)."""

    list_display = [
        "bucket",
        "endpoint",
        "verified",
        "etag_is_md5",
        "equal_part_sizes",
        "probed_at",
    ]
    readonly_fields = (
        "endpoint",
        "bucket",
        "verified",
        "etag_is_md5",
        "binds_length",
        "equal_part_sizes",
        "probed_at",
        "steps",
    )
    fields = readonly_fields

    @admin.display(description="verifies")
    def verified(self, obj: StoreProfile) -> str:
        return ", ".join(obj.verifies) or "no part digest (uploads are unverified)"

    @admin.display(description="probe steps")
    def steps(self, obj: StoreProfile) -> str:
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                "<li>{}: {} {} (a checking store: {})</li>",
                (
                    (
                        ("ok" if step["passed"] else "NOT AS A CHECKING STORE")
                        + " - "
                        + step["name"],
                        step["status"] or "no answer",
                        step["code"],
                        step["expected"],
                    )
                    for step in obj.findings
                ),
            ),
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: StoreProfile | None = None) -> bool:
        return False
