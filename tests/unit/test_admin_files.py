"""The admin's "delete files" action: it asks first, listing the files, then deletes them (moto)."""

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from tests.factories import UploadFactory, UserFactory, start_in_s3
from uploads import services
from uploads.models import Upload

pytestmark = pytest.mark.django_db

Status = Upload.Status
CHANGELIST = reverse("admin:uploads_upload_changelist") + "?status=all"
DATA = b"partwise " * 100


def completed(owner, filename: str = "report.pdf") -> Upload:
    upload = start_in_s3(owner, filename=filename, data=DATA, put=True)
    return services.complete_upload(upload, by=owner)


def choose(client: Client, uploads, **extra):
    return client.post(
        CHANGELIST,
        {
            "action": "delete_files",
            "_selected_action": [str(upload.pk) for upload in uploads],
            **extra,
        },
        follow=True,
    )


def test_delete_files_asks_first_listing_the_files_and_their_size(admin_client, storage, user):
    done = completed(user)
    open_one = UploadFactory(filename="open.bin")

    page = choose(admin_client, [done, open_one])

    assert page.templates[0].name == "admin/uploads/upload/delete_files_confirmation.html"
    text = " ".join(page.text.split())
    assert "Deleting removes 1 file (900 bytes) from S3 for good" in text
    assert "report.pdf" in text
    assert "open.bin (uploading): not completed: there is no file" in text
    assert 'value="Yes, delete 1 file"' in page.text
    assert Upload.objects.get(pk=done.pk).status == Status.COMPLETED  # nothing done yet
    assert storage.head_object(done.key) is not None


def test_yes_deletes_the_files_in_s3_and_keeps_the_rows_as_deleted(admin_client, storage, user):
    first, second = completed(user, "a.pdf"), completed(user, "b.pdf")

    response = choose(admin_client, [first, second], post="yes")

    assert [str(m) for m in get_messages(response.wsgi_request)] == ["Deleted 2 files."]
    assert set(Upload.objects.values_list("status", flat=True)) == {Status.DELETED}
    assert storage.head_object(first.key) is None
    assert storage.head_object(second.key) is None


def test_uploads_without_a_file_are_left_alone(admin_client, storage, user):
    open_one = start_in_s3(user, filename="open.bin", data=DATA, put=True)

    response = choose(admin_client, [open_one], post="yes")

    assert [str(m) for m in get_messages(response.wsgi_request)] == ["Deleted 0 files."]
    assert Upload.objects.get(pk=open_one.pk).status == Status.UPLOADING


def test_staff_who_may_only_view_do_not_get_the_action(storage, user):
    viewer = UserFactory(username="viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_upload"))
    client = Client()
    client.force_login(viewer)
    done = completed(user)

    response = choose(client, [done], post="yes")

    assert Upload.objects.get(pk=done.pk).status == Status.COMPLETED
    assert "delete_files" not in response.text
