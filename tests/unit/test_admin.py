"""The uploads admin: what operators see, who may see it, and the actions on real rows (moto)."""

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from django.utils import formats, timezone

from tests.factories import UploadFactory, UploadPartFactory, UserFactory, start_in_s3
from uploads import selectors, services
from uploads.exceptions import StorageFailed
from uploads.models import Upload

Status = Upload.Status
CHANGELIST = reverse("admin:uploads_upload_changelist")
ORPHANS = reverse("admin:uploads_upload_orphans")
DATA = b"partwise " * 100


def detail_url(upload: Upload) -> str:
    return reverse("admin:uploads_upload_change", args=[upload.pk])


def start(owner, *, put: bool = True) -> Upload:
    """An upload started in moto, its one part PUT to S3 but not reported."""
    return start_in_s3(owner, filename="movie.mkv", data=DATA, put=put)


def shown(response) -> set[str]:
    return {upload.filename for upload in response.context["cl"].result_list}


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


@pytest.fixture
def staff_viewer(db) -> Client:
    """Staff that may view uploads but not operate on them."""
    user = UserFactory(username="viewer", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_upload"))
    client = Client()
    client.force_login(user)
    return client


# --- who may see it ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [CHANGELIST, ORPHANS, "detail"],
    ids=["changelist", "orphans", "detail"],
)
def test_non_staff_users_are_sent_to_the_login_page(client, user, url):
    upload = UploadFactory(owner=user)
    client.force_login(user)

    response = client.get(detail_url(upload) if url == "detail" else url)

    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


def test_staff_without_the_change_permission_can_look_but_not_operate(staff_viewer, storage):
    UploadFactory(filename="seen.bin")

    listing = staff_viewer.get(CHANGELIST)

    assert listing.status_code == 200
    assert shown(listing) == {"seen.bin"}
    assert listing.context["action_form"] is None  # no action offered
    assert "Orphans in S3" not in listing.text
    assert staff_viewer.get(ORPHANS).status_code == 403


def test_the_admin_adds_edits_and_deletes_nothing(admin_client, storage):
    upload = UploadFactory()

    assert admin_client.get(reverse("admin:uploads_upload_add")).status_code == 403
    edit = admin_client.post(detail_url(upload), {"status": "completed", "filename": "x"})
    assert edit.status_code == 403
    delete_url = reverse("admin:uploads_upload_delete", args=[upload.pk])
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    assert Upload.objects.get(pk=upload.pk).status == Status.UPLOADING


# --- the changelist ------------------------------------------------------------------------
@pytest.fixture
def one_of_each(db) -> dict[str, Upload]:
    return {status: UploadFactory(status=status, filename=f"{status}.bin") for status in Status}


def test_the_changelist_shows_incomplete_uploads_by_default(admin_client, storage, one_of_each):
    response = admin_client.get(CHANGELIST)

    assert response.status_code == 200
    assert shown(response) == {"uploading.bin", "completing.bin", "failed.bin"}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=all", {f"{status}.bin" for status in Status}),
        ("status=completed", {"completed.bin"}),
        ("status=expired", {"expired.bin"}),
    ],
    ids=["all", "completed", "expired"],
)
def test_the_status_filter_shows_all_or_one_status(
    admin_client, storage, one_of_each, query, expected
):
    assert shown(admin_client.get(f"{CHANGELIST}?{query}")) == expected


def test_the_changelist_counts_every_status(admin_client, storage, one_of_each):
    UploadFactory(status=Status.UPLOADING)

    response = admin_client.get(CHANGELIST)

    counts = {value: count for value, _label, count in response.context["status_counts"]}
    assert counts == {**{status.value: 1 for status in Status}, "uploading": 2}
    assert "Uploading: <strong>2</strong>" in response.text


def test_the_stale_filter_shows_uploads_past_their_expiry(admin_client, storage):
    UploadFactory(filename="stale.bin", expires_at=timezone.now() - timedelta(hours=1))
    UploadFactory(filename="fresh.bin")

    assert shown(admin_client.get(f"{CHANGELIST}?stale=yes")) == {"stale.bin"}
    assert shown(admin_client.get(f"{CHANGELIST}?stale=no")) == {"fresh.bin"}
    assert "stale for" in admin_client.get(f"{CHANGELIST}?stale=yes").text


def test_the_owner_filter_shows_one_owners_uploads(admin_client, storage, user, other_user):
    UploadFactory(owner=user, filename="alice.bin")
    UploadFactory(owner=other_user, filename="mallory.bin")

    response = admin_client.get(f"{CHANGELIST}?owner__id__exact={other_user.pk}")

    assert shown(response) == {"mallory.bin"}


@pytest.mark.parametrize(
    "term",
    ["holiday", "mallory", "id", "key"],
    ids=["filename", "owner", "id", "key"],
)
def test_search_finds_uploads_by_filename_owner_id_and_key(admin_client, storage, other_user, term):
    wanted = UploadFactory(owner=other_user, filename="holiday.mov")
    UploadFactory(filename="other.bin")
    query = {"holiday": "holiday", "mallory": "mallory", "id": str(wanted.pk)}.get(
        term, wanted.key.rsplit("/", 1)[0]
    )

    response = admin_client.get(CHANGELIST, {"q": query})

    assert shown(response) == {"holiday.mov"}


def test_each_row_shows_owner_size_progress_age_activity_and_expiry(admin_client, storage, user):
    """Six columns that fit a 1280 px screen (tests/e2e/test_admin.py shows they do)."""
    upload = UploadFactory(owner=user, filename="big.iso")
    UploadPartFactory(upload=upload, number=1)
    UploadPartFactory(upload=upload, number=2)
    Upload.objects.filter(pk=upload.pk).update(parts_uploaded=2, bytes_uploaded=10 * 1024**2)

    text = admin_client.get(CHANGELIST).text

    assert '<progress max="100" value="90"' in text
    assert "10.0\xa0MB of 11.0\xa0MB" in text
    assert '<span class="quiet">2/3 parts</span>' in text
    assert "alice" in text
    assert "0\xa0minutes ago" in text  # last activity
    assert '<span class="quiet">0\xa0minutes old</span>' in text  # age
    assert '<td class="field-expires">in 6\xa0days</td>' in text  # no lifecycle rule: no date


def test_the_changelist_shows_when_the_lifecycle_rule_lets_s3_abort_an_upload(
    admin_client, storage
):
    storage.put_bucket_lifecycle_configuration(prefix="uploads/", days=8)
    upload = UploadFactory()
    when = selectors.lifecycle_abort_date(upload.created_at, 8)
    expected = formats.localize(timezone.localtime(when))  # e.g. "Nov. 30, 2026, midnight"
    short = formats.date_format(timezone.localtime(when), "M j")  # e.g. "Nov 30"

    listing = admin_client.get(CHANGELIST)
    detail = admin_client.get(detail_url(upload))

    assert f'<span class="quiet">S3 aborts {short}</span></td>' in listing.text  # under expiry
    assert expected in detail.text


# --- the detail page -----------------------------------------------------------------------
def test_the_detail_page_lists_recorded_parts_and_on_demand_the_parts_in_s3(
    admin_client, storage, user
):
    upload = start(user)
    # Recorded but never in S3: the live view says it does not match.
    UploadPartFactory(upload=upload, number=1, etag="0" * 32, size=len(DATA))

    page = admin_client.get(detail_url(upload))

    assert page.status_code == 200
    assert [part.number for part in page.context["recorded_parts"]] == [1]
    assert "0" * 32 in page.text
    assert "live_parts" not in page.context
    assert 'id="load-live-parts"' in page.text

    live = admin_client.get(detail_url(upload), {"live": "1"})

    [live_part] = live.context["live_parts"]
    assert (live_part.part.number, live_part.part.size) == (1, len(DATA))
    assert not live_part.matches_record
    assert Upload.objects.get(pk=upload.pk).parts_uploaded == 0  # looking changes nothing


def test_the_detail_page_reports_an_s3_failure_instead_of_crashing(
    admin_client, storage, user, monkeypatch
):
    upload = start(user)

    def fail(key, upload_id):
        raise StorageFailed("S3 could not be reached for ListParts.")

    monkeypatch.setattr(storage, "list_parts", fail)
    response = admin_client.get(detail_url(upload), {"live": "1"})

    assert response.status_code == 200
    assert "S3: S3 could not be reached for ListParts." in messages_of(response)


# --- actions -------------------------------------------------------------------------------
def act(client: Client, action: str, uploads, query: str = "", *, confirm: bool = False):
    """Run an action on the changelist; `confirm` answers its confirmation page with yes."""
    response = client.post(
        f"{CHANGELIST}{query}",
        {
            "action": action,
            "_selected_action": [str(upload.pk) for upload in uploads],
            **({"post": "yes"} if confirm else {}),
        },
        follow=True,
    )
    assert response.status_code == 200
    return messages_of(response)


def test_the_abort_action_asks_first_and_says_what_will_be_lost(admin_client, storage, user):
    upload = start(user)
    Upload.objects.filter(pk=upload.pk).update(parts_uploaded=2, bytes_uploaded=12 * 1024**2)
    done = UploadFactory(completed=True, filename="done.zip")

    page = admin_client.post(
        f"{CHANGELIST}?status=all",
        {"action": "abort", "_selected_action": [str(upload.pk), str(done.pk)]},
    )

    assert page.status_code == 200
    assert page.templates[0].name == "admin/uploads/upload/abort_confirmation.html"
    text = " ".join(page.text.split())  # which turns no-break spaces into spaces too
    assert "Aborting cancels 1 upload and deletes 2 parts (12.0 MB) from S3 for good" in text
    assert "movie.mkv" in text
    assert "done.zip (completed): a completed upload is never aborted" in text
    assert 'name="post" value="yes"' in page.text
    assert 'value="Yes, abort 1 upload"' in page.text
    assert Upload.objects.get(pk=upload.pk).status == Status.UPLOADING  # nothing done yet
    assert len(storage.list_multipart_uploads("uploads/")) == 1


def test_the_abort_action_aborts_in_s3_and_reports_the_count(admin_client, storage, user):
    first, second = start(user), start(user)

    assert act(admin_client, "abort", [first, second], confirm=True) == ["Aborted 2 uploads."]

    assert set(Upload.objects.values_list("status", flat=True)) == {Status.ABORTED}
    assert storage.list_multipart_uploads("uploads/") == []


def test_the_abort_action_refuses_a_completed_upload_and_says_so(admin_client, storage, user):
    upload = start(user)
    services.complete_upload(upload, by=user)

    messages = act(admin_client, "abort", [upload], query="?status=all", confirm=True)

    assert messages[0] == "Aborted 0 uploads."
    assert "cannot be aborted" in messages[1]
    assert Upload.objects.get(pk=upload.pk).status == Status.COMPLETED


def test_the_reconcile_action_records_what_s3_holds(admin_client, storage, user):
    upload = start(user)
    untouched = start(user, put=False)

    messages = act(admin_client, "reconcile", [upload, untouched])

    assert messages == ["Reconciled 2 uploads with S3: 1 changed."]
    assert Upload.objects.get(pk=upload.pk).bytes_uploaded == len(DATA)


def test_the_extend_expiry_action_moves_the_expiry_by_the_stale_period(
    admin_client, storage, settings
):
    settings.UPLOADS_STALE_AFTER = 7 * 24 * 3600
    stale = UploadFactory(expires_at=timezone.now() - timedelta(hours=1))

    assert act(admin_client, "extend_expiry", [stale]) == [
        "Extended the expiry of 1 upload by 1\xa0week."
    ]
    assert Upload.objects.get(pk=stale.pk).expires_at > timezone.now() + timedelta(days=6)


def test_the_extend_expiry_action_stops_at_the_lifecycle_date_and_says_so(
    admin_client, storage, settings
):
    settings.UPLOADS_STALE_AFTER = 7 * 24 * 3600
    storage.put_bucket_lifecycle_configuration(prefix="uploads/", days=3)
    upload = UploadFactory(expires_at=timezone.now() + timedelta(days=1))

    messages = act(admin_client, "extend_expiry", [upload])

    assert messages[0] == "Extended the expiry of 1 upload by 1\xa0week."
    assert messages[1].startswith(
        "1 of them only up to the date the bucket's lifecycle rule aborts its parts in S3"
    )
    limit = selectors.lifecycle_abort_date(upload.created_at, 3)
    assert Upload.objects.get(pk=upload.pk).expires_at == limit

    again = act(admin_client, "extend_expiry", [upload])

    assert again[1] == (
        "1 upload was not extended: the bucket's lifecycle rule aborts its parts "
        "in S3 by its current expiry already."
    )


# --- orphans -------------------------------------------------------------------------------
def test_the_orphans_page_lists_s3_uploads_no_live_row_owns(admin_client, storage, user):
    live = start(user)
    lost = storage.create_multipart_upload("uploads/lost/file.bin", content_type="")
    storage.create_multipart_upload("elsewhere/file.bin", content_type="")

    response = admin_client.get(ORPHANS)

    assert response.status_code == 200
    rows = response.context["orphans"]
    assert [(row["orphan"].key, row["orphan"].s3_upload_id) for row in rows] == [
        ("uploads/lost/file.bin", lost)
    ]
    assert live.key not in response.text
    assert "elsewhere/" not in response.text
    assert "years" in rows[0]["age"]  # moto dates every multipart upload in 2010


def test_the_orphans_page_links_an_expired_row_whose_abort_did_not_finish(
    admin_client, storage, user
):
    upload = start(user)
    Upload.objects.filter(pk=upload.pk).update(status=Status.EXPIRED)

    response = admin_client.get(ORPHANS)

    [row] = response.context["orphans"]
    assert row["row_url"] == detail_url(upload)


def test_the_orphans_page_aborts_the_selected_orphans(admin_client, storage, user):
    live = start(user)
    lost = storage.create_multipart_upload("uploads/lost/file.bin", content_type="")
    kept = storage.create_multipart_upload("uploads/lost/other.bin", content_type="")

    response = admin_client.post(
        ORPHANS,
        {
            "orphan": [
                json.dumps(["uploads/lost/file.bin", lost]),
                json.dumps([live.key, live.s3_upload_id]),  # not an orphan: left alone
                "not json",
            ]
        },
        follow=True,
    )

    assert messages_of(response) == ["Aborted 1 orphaned multipart upload in S3."]
    remaining = {item.s3_upload_id for item in storage.list_multipart_uploads("uploads/")}
    assert remaining == {kept, live.s3_upload_id}


def test_the_orphans_page_shows_none_when_there_are_none(admin_client, storage):
    assert 'id="no-orphans"' in admin_client.get(ORPHANS).text


def test_the_detail_page_shows_the_owners_open_uploads_against_the_quota(
    admin_client, storage, user, settings
):
    settings.UPLOADS_USER_MAX_OPEN_UPLOADS = 7
    upload = start(user)
    start(user)

    page = admin_client.get(detail_url(upload))

    assert page.context["owner_usage"].uploads == 2
    assert "alice has 2 open uploads (of 7 allowed)" in " ".join(page.text.split())


def test_the_detail_page_shows_sizes_humanised_with_the_exact_bytes(admin_client, storage, user):
    upload = UploadFactory(owner=user, size=12582912, part_size=8 * 1024**2)
    UploadPartFactory(upload=upload, number=1, size=8 * 1024**2)

    text = admin_client.get(detail_url(upload)).text

    assert '<span title="12,582,912 bytes">12.0\xa0MB</span>' in text  # size
    assert '<span title="8,388,608 bytes">8.0\xa0MB</span>' in text  # part size
    assert '<span title="8388608 bytes">8.0\xa0MB</span>' in text  # the recorded part
    assert ">12582912<" not in text
    assert "alice has 1 open upload (of" in " ".join(text.split())


# --- the site ------------------------------------------------------------------------------
def test_the_admin_is_titled_partwise(admin_client, storage):
    page = admin_client.get(reverse("admin:index"))

    assert '<div id="site-name"><a href="/admin/">Partwise administration</a></div>' in page.text
    assert "<title>Uploads, tokens and users | Partwise admin</title>" in page.text


def test_the_admin_has_one_token_section(admin_client, storage):
    """One token system (uploads.tokens): no DRF authtoken or other token model beside it."""
    page = admin_client.get(reverse("admin:index"))

    token_models = [
        model["object_name"]
        for app in page.context["app_list"]
        for model in app["models"]
        if "token" in model["object_name"].lower()
    ]
    assert token_models == ["ApiToken"]
