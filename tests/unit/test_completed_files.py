"""Completed files: the download redirect, and deleting a file on purpose with If-Match (moto).

What S3 itself serves at the presigned URL (the bytes, its Content-Disposition, the expiry) is
proven against SeaweedFS in tests/integration/test_completed_files.py; here: the contract.
"""

from urllib.parse import parse_qs, urlsplit

import pytest

from tests.factories import UploadFactory
from tests.support.uploads import put_all, start
from uploads import services
from uploads.exceptions import PreconditionFailed, UploadConflict
from uploads.models import Upload

pytestmark = pytest.mark.django_db

LIST = "/api/uploads/"


def completed(storage, owner, **options) -> Upload:
    """movie.mp4 (11 MiB) uploaded and completed in S3 (moto)."""
    upload = start(owner, **options)
    put_all(storage, upload)
    return services.complete_upload(upload, by=owner, storage=storage)


def query_of(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def strong(upload: Upload) -> str:
    return f'"{upload.etag}"'


# --- download ---------------------------------------------------------------------------------
def test_download_redirects_to_a_presigned_get_naming_the_file_as_an_attachment(
    api_client, storage, user
):
    done = completed(storage, user)

    response = api_client.get(f"{LIST}{done.pk}/download/")

    assert response.status_code == 302
    assert response["Cache-Control"] == "private, no-store"
    url = response["Location"]
    assert urlsplit(url).path.endswith(done.key)
    query = query_of(url)
    assert query["response-content-disposition"] == 'attachment; filename="movie.mp4"'
    assert query["response-content-type"] == "video/mp4"
    assert query["X-Amz-Expires"] == "300"


def test_download_inline_asks_s3_for_an_inline_disposition(api_client, storage, user):
    done = completed(storage, user)

    url = api_client.get(f"{LIST}{done.pk}/download/?inline=1")["Location"]

    assert query_of(url)["response-content-disposition"] == 'inline; filename="movie.mp4"'


def test_download_names_a_non_ascii_file_as_rfc_5987_says(api_client, storage, user):
    done = completed(storage, user)
    Upload.objects.filter(pk=done.pk).update(filename="Überblick 2026.mp4")

    url = api_client.get(f"{LIST}{done.pk}/download/")["Location"]

    assert (
        query_of(url)["response-content-disposition"]
        == "attachment; filename*=utf-8''%C3%9Cberblick%202026.mp4"
    )


def test_the_download_url_lives_upload_download_expiry_seconds(api_client, storage, user, settings):
    settings.UPLOADS_DOWNLOAD_EXPIRY = 42
    done = completed(storage, user)

    url = api_client.get(f"{LIST}{done.pk}/download/")["Location"]

    assert query_of(url)["X-Amz-Expires"] == "42"


def test_download_of_another_users_upload_answers_404(other_client, storage, user):
    done = completed(storage, user)

    response = other_client.get(f"{LIST}{done.pk}/download/")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize("state", ["uploading", "completing", "aborted", "failed", "deleted"])
def test_download_of_an_upload_that_is_not_completed_answers_409(api_client, storage, user, state):
    upload = UploadFactory(owner=user, status=state)

    response = api_client.get(f"{LIST}{upload.pk}/download/")

    assert response.status_code == 409
    assert response.json()["code"] == "upload_conflict"


def test_download_with_a_malformed_inline_answers_400(api_client, storage, user):
    done = completed(storage, user)

    response = api_client.get(f"{LIST}{done.pk}/download/?inline=maybe")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


# --- the etag a delete names --------------------------------------------------------------------
def test_a_completed_upload_shows_its_etag_strongly_quoted_in_the_etag_header(
    api_client, storage, user
):
    done = completed(storage, user)

    response = api_client.get(f"{LIST}{done.pk}/")

    assert response["ETag"] == strong(done) == f'"{response.json()["etag"]}"'


def test_an_upload_without_an_object_has_no_etag_header(api_client, storage, user):
    upload = start(user)

    assert "ETag" not in api_client.get(f"{LIST}{upload.pk}/")


# --- delete -------------------------------------------------------------------------------------
def test_delete_without_if_match_still_refuses_a_completed_upload(api_client, storage, user):
    done = completed(storage, user)

    response = api_client.delete(f"{LIST}{done.pk}/")

    assert response.status_code == 409
    assert storage.head_object(done.key) is not None


def test_delete_with_the_etag_deletes_the_object_and_keeps_the_record_as_deleted(
    api_client, storage, user
):
    done = completed(storage, user)

    response = api_client.delete(f"{LIST}{done.pk}/", headers={"If-Match": strong(done)})

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["etag"], body["filename"]) == ("deleted", done.etag, "movie.mp4")
    assert storage.head_object(done.key) is None
    assert Upload.objects.get(pk=done.pk).status == "deleted"


def test_deleting_again_with_the_etag_answers_the_same(api_client, storage, user):
    done = completed(storage, user)
    first = api_client.delete(f"{LIST}{done.pk}/", headers={"If-Match": strong(done)})

    again = api_client.delete(f"{LIST}{done.pk}/", headers={"If-Match": strong(done)})

    assert again.status_code == 200
    assert again.json()["status"] == first.json()["status"] == "deleted"


@pytest.mark.parametrize(
    "if_match",
    ['"0123456789abcdef0123456789abcdef-3"', "*", "W/{tag}", "{bare}", ""],
    ids=["another-etag", "star", "weak", "unquoted", "empty"],
)
def test_delete_with_an_if_match_that_is_not_the_strong_etag_answers_412(
    api_client, storage, user, if_match
):
    done = completed(storage, user)
    header = if_match.format(tag=strong(done), bare=done.etag)

    response = api_client.delete(f"{LIST}{done.pk}/", headers={"If-Match": header})

    assert response.status_code == 412
    assert response.json() == {
        "code": "precondition_failed",
        "detail": "If-Match does not name this upload's etag.",
        "etag": strong(done),
    }
    assert Upload.objects.get(pk=done.pk).status == "completed"
    assert storage.head_object(done.key) is not None


def test_if_match_may_list_the_etag_among_others(api_client, storage, user):
    done = completed(storage, user)

    header = f'"0123456789abcdef0123456789abcdef-3", {strong(done)}'
    response = api_client.delete(f"{LIST}{done.pk}/", headers={"If-Match": header})

    assert response.json()["status"] == "deleted"


def test_delete_of_another_users_completed_upload_answers_404(other_client, storage, user):
    done = completed(storage, user)

    response = other_client.delete(f"{LIST}{done.pk}/", headers={"If-Match": strong(done)})

    assert response.status_code == 404
    assert storage.head_object(done.key) is not None


def test_delete_of_an_uploading_upload_still_aborts_it(api_client, storage, user):
    upload = start(user)

    response = api_client.delete(f"{LIST}{upload.pk}/")

    assert response.json()["status"] == "aborted"


def test_if_match_on_an_upload_without_an_object_answers_412_and_aborts_nothing(
    api_client, storage, user
):
    upload = start(user)

    response = api_client.delete(f"{LIST}{upload.pk}/", headers={"If-Match": '"abc"'})

    assert response.status_code == 412
    assert Upload.objects.get(pk=upload.pk).status == "uploading"


def test_a_failed_upload_with_the_right_etag_is_not_deleted(storage, user):
    failed = UploadFactory(owner=user, failed=True, etag="0123456789abcdef0123456789abcdef")

    with pytest.raises(UploadConflict):
        services.delete_file(failed, if_match=strong(failed), by=user, storage=storage)

    assert Upload.objects.get(pk=failed.pk).status == "failed"


def test_a_deleted_upload_stays_deleted_whatever_else_runs(storage, user):
    done = completed(storage, user)
    services.delete_file(done, if_match=strong(done), by=user, storage=storage)

    services.verify_upload(done, storage=storage)
    with pytest.raises(UploadConflict):
        services.complete_upload(done, by=user, storage=storage)
    with pytest.raises(UploadConflict):
        services.abort_upload(done, by=user, storage=storage)
    services.expire_stale_uploads(storage=storage)

    assert Upload.objects.get(pk=done.pk).status == "deleted"
    assert services.find_orphans(storage=storage) == []


def test_the_owner_check_guards_delete_too(storage, user, other_user):
    done = completed(storage, user)

    with pytest.raises(UploadConflict):
        services.delete_file(done, if_match=strong(done), by=other_user, storage=storage)


def test_delete_files_deletes_completed_ones_and_reports_the_rest(storage, user):
    done = completed(storage, user)
    uploading = start(user, client_token="second")

    result = services.delete_files([done, uploading], storage=storage)

    assert (result.changed, result.unchanged) == (1, 0)
    [error] = result.errors
    assert "uploading" in error
    assert Upload.objects.get(pk=done.pk).status == "deleted"
    assert storage.head_object(done.key) is None
    assert Upload.objects.get(pk=uploading.pk).status == "uploading"


def test_precondition_failed_is_a_412_with_a_stable_code():
    assert (PreconditionFailed.status_code, PreconditionFailed.code) == (
        412,
        "precondition_failed",
    )
