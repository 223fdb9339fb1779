"""Sessions sharing one upload, start-or-resume in one call, and the limits clients adapt to.

A session is a client's random id for one upload attempt (a tab's handle, a CLI run). It is
active on an upload while it signed or reported within UPLOADS_SESSION_IDLE seconds; a part it
signed is leased to it, and no other session is handed that part while it is active. A silent
session's parts go to whoever asks. Time moves by the `clock` fixture, never by sleeping.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from tests.support.uploads import put_part
from uploads.models import Upload
from uploads.parts import MiB

pytestmark = pytest.mark.django_db

LIST = "/api/uploads/"
A, B, C = "session-a-1234", "session-b-5678", "session-c-9012"
EIGHT_PARTS = 8 * 5 * MiB
FOUR_PARTS = 16 * MiB  # 5, 5, 5 and 1 MiB


class Clock:
    """`timezone.now` that a test moves forward; every service and selector reads it."""

    def __init__(self, real: Any) -> None:
        self.real, self.offset = real, timedelta()

    def now(self) -> datetime:
        now: datetime = self.real() + self.offset
        return now

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock(timezone.now)
    monkeypatch.setattr(timezone, "now", clock.now)
    return clock


def create(client: APIClient, size: int = EIGHT_PARTS, **fields: Any):
    body = {"filename": "film.mov", "size": size, "part_size": 5 * MiB, **fields}
    return client.post(LIST, body, format="json")


def new_upload(client: APIClient, size: int = EIGHT_PARTS, **fields: Any) -> Upload:
    response = create(client, size, **fields)
    assert response.status_code == 201, response.json()
    return Upload.objects.get(pk=response.json()["id"])


def sign(client: APIClient, upload: Upload, numbers, session: str | None = None) -> dict:
    body: dict[str, Any] = {"parts": [{"number": n} for n in numbers]}
    if session is not None:
        body["session"] = session
    response = client.post(f"{LIST}{upload.pk}/sign/", body, format="json")
    assert response.status_code == 200, response.json()
    return response.json()


def report(client: APIClient, upload: Upload, etags: dict[int, str], session: str) -> dict:
    parts = [{"number": n, "etag": etag} for n, etag in etags.items()]
    response = client.post(
        f"{LIST}{upload.pk}/parts/", {"parts": parts, "session": session}, format="json"
    )
    assert response.status_code == 200, response.json()
    return response.json()


def numbers(answer: dict, field: str = "parts") -> list[int]:
    return [part["number"] for part in answer[field]]


# --- leases ------------------------------------------------------------------------------------
def test_a_second_session_is_handed_only_the_parts_the_first_is_not_sending(
    api_client, storage, clock
):
    upload = new_upload(api_client)
    first = sign(api_client, upload, range(1, 5), session=A)

    second = sign(api_client, upload, range(1, 9), session=B)

    assert (numbers(first), first["leased"], first["other_sessions"]) == ([1, 2, 3, 4], [], 0)
    assert numbers(second) == [5, 6, 7, 8]
    assert (second["leased"], second["other_sessions"]) == ([1, 2, 3, 4], 1)


def test_a_silent_sessions_parts_go_to_whoever_asks(api_client, storage, clock):
    upload = new_upload(api_client)
    sign(api_client, upload, range(1, 5), session=A)
    clock.advance(31)  # A crashed: nothing from it for longer than UPLOADS_SESSION_IDLE (30 s)

    taken = sign(api_client, upload, range(1, 9), session=B)

    assert (numbers(taken), taken["leased"], taken["other_sessions"]) == (
        list(range(1, 9)),
        [],
        0,
    )
    # ... and now they are B's: A, back, is not handed them while B is active.
    back = sign(api_client, upload, range(1, 5), session=A)
    assert (numbers(back), back["leased"], back["other_sessions"]) == ([], [1, 2, 3, 4], 1)


def test_a_session_stays_active_while_it_reports(api_client, storage, clock):
    upload = new_upload(api_client)
    sign(api_client, upload, range(1, 5), session=A)
    clock.advance(20)
    report(api_client, upload, {1: put_part(storage, upload, 1, b"x" * 5 * MiB)}, session=A)
    clock.advance(20)  # 40 s since A signed, 20 s since it reported: still active

    answer = sign(api_client, upload, range(1, 5), session=B)

    # Part 1 is in S3: re-sending a part is allowed, so it is signed; 2-4 are still A's.
    assert (numbers(answer), answer["leased"]) == ([1], [2, 3, 4])


def test_a_session_signs_its_own_leased_parts_again(api_client, storage, clock):
    """A URL about to expire is signed again by the session that holds the part."""
    upload = new_upload(api_client)
    sign(api_client, upload, range(1, 5), session=A)
    sign(api_client, upload, range(5, 9), session=B)

    again = sign(api_client, upload, range(1, 5), session=A)

    assert (numbers(again), again["leased"], again["other_sessions"]) == ([1, 2, 3, 4], [], 1)


def test_signing_without_a_session_signs_every_part_as_before(api_client, storage, clock):
    upload = new_upload(api_client)
    sign(api_client, upload, range(1, 5), session=A)

    answer = sign(api_client, upload, range(1, 9))

    assert (numbers(answer), answer["leased"], answer["other_sessions"]) == (
        list(range(1, 9)),
        [],
        1,
    )
    # A session-less call leases nothing: B is still kept off A's parts only.
    assert sign(api_client, upload, range(1, 9), session=B)["leased"] == [1, 2, 3, 4]


def test_the_idle_time_follows_the_setting(api_client, storage, clock, settings):
    settings.UPLOADS_SESSION_IDLE = 5
    upload = new_upload(api_client)
    sign(api_client, upload, [1], session=A)
    clock.advance(4)
    assert sign(api_client, upload, [1], session=B)["leased"] == [1]
    clock.advance(6)  # A: 10 s silent; B signed nothing (its ask was refused) 6 s ago

    assert sign(api_client, upload, [1], session=C)["leased"] == []


def test_sessions_on_one_upload_do_not_touch_another(api_client, storage, clock):
    first, second = new_upload(api_client), new_upload(api_client)
    sign(api_client, first, [1, 2], session=A)

    answer = sign(api_client, second, [1, 2], session=B)

    assert (numbers(answer), answer["leased"], answer["other_sessions"]) == ([1, 2], [], 0)


def test_two_sessions_finish_one_upload_together_and_either_completes_it(
    api_client, storage, clock
):
    upload = new_upload(api_client, FOUR_PARTS)
    a = sign(api_client, upload, range(1, 5), session=A)  # A takes every part ...
    clock.advance(31)  # ... and dies; B takes over the unsent ones
    b = sign(api_client, upload, range(1, 5), session=B)
    assert numbers(a) == numbers(b) == [1, 2, 3, 4]
    send = lambda n: put_part(storage, upload, n, bytes([n]) * upload.plan.size_of(n))  # noqa: E731
    report(api_client, upload, {n: send(n) for n in (1, 2)}, session=B)
    # A comes back, says "what is left?", and takes the parts B has not reported (B active).
    assert sign(api_client, upload, [3, 4], session=A)["leased"] == [3, 4]
    report(api_client, upload, {n: send(n) for n in (3, 4)}, session=B)

    done = api_client.post(f"{LIST}{upload.pk}/complete/")
    again = api_client.post(f"{LIST}{upload.pk}/complete/")  # the other session completes too

    assert done.status_code == 200, done.json()
    assert done.json()["status"] == "completed"
    assert again.json() == done.json()


# --- other_sessions ----------------------------------------------------------------------------
def test_the_detail_counts_the_other_active_sessions(api_client, storage, clock):
    upload = new_upload(api_client)
    sign(api_client, upload, [1], session=A)
    sign(api_client, upload, [2], session=B)

    def others(query: str = "") -> int:
        response = api_client.get(f"{LIST}{upload.pk}/{query}")
        assert response.status_code == 200, response.json()
        return int(response.json()["other_sessions"])

    assert (others(f"?session={A}"), others(f"?session={C}"), others()) == (1, 2, 2)
    clock.advance(31)
    assert others(f"?session={A}") == 0


def test_the_report_answer_counts_the_other_active_sessions(api_client, storage, clock):
    upload = new_upload(api_client)
    sign(api_client, upload, [1], session=A)
    sign(api_client, upload, [2], session=B)

    answer = report(api_client, upload, {1: put_part(storage, upload, 1)}, session=A)

    assert (answer["other_sessions"], answer["parts_uploaded"]) == (1, 1)


# --- start or resume in one call ----------------------------------------------------------------
def resume(client: APIClient, size: int = EIGHT_PARTS, **fields: Any):
    return create(client, size, fingerprint="fp-film", resume=True, **fields)


def test_resume_answers_the_newest_upload_of_the_same_file_with_what_s3_holds(
    api_client, storage, clock
):
    new_upload(api_client, fingerprint="fp-film")
    clock.advance(1)
    newest = new_upload(api_client, fingerprint="fp-film")
    etag = put_part(storage, newest, 2)  # in S3, never reported

    response = resume(api_client)

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["resumed"], body["other_sessions"]) == (str(newest.pk), True, 0)
    assert body["parts"] == [{"number": 2, "size": 5 * MiB, "etag": etag, "checksum": ""}]
    assert (body["parts_uploaded"], body["bytes_uploaded"]) == (1, 5 * MiB)


def test_two_windows_resuming_one_new_file_at_once_share_one_upload(
    api_client, storage, monkeypatch
):
    # Both creates look for an upload of the file and find none; this one is overtaken while
    # S3 starts its multipart upload: the other window's create records the upload first.
    real_create = type(storage).create_multipart_upload
    overtaken: list[Upload] = []

    def create_while_another_window_does(self, key, **options):
        monkeypatch.setattr(type(storage), "create_multipart_upload", real_create)
        overtaken.append(new_upload(api_client, fingerprint="fp-film"))
        return real_create(self, key, **options)

    monkeypatch.setattr(type(storage), "create_multipart_upload", create_while_another_window_does)

    response = resume(api_client)

    assert response.status_code == 200, response.json()
    assert (response.json()["id"], response.json()["resumed"]) == (str(overtaken[0].pk), True)
    assert Upload.objects.count() == 1
    # The multipart upload this call started for nothing is aborted at once.
    assert [item.key for item in storage.list_multipart_uploads("")] == [overtaken[0].key]


@pytest.mark.parametrize(
    "other",
    [
        {"owner": "mallory"},
        {"status": Upload.Status.COMPLETED},
        {"status": Upload.Status.ABORTED},
        {"size": EIGHT_PARTS - 1},
        {"filename": "other.mov"},
        {"fingerprint": "fp-other"},
    ],
    ids=["another-users", "completed", "aborted", "another-size", "another-name", "another-fp"],
)
def test_resume_creates_an_upload_when_none_of_the_same_file_is_uploading(
    api_client, other_client, storage, other
):
    owner = other_client if other.get("owner") else api_client
    fields = {"fingerprint": other.get("fingerprint", "fp-film")}
    if "filename" in other:
        fields["filename"] = other["filename"]
    existing = new_upload(owner, other.get("size", EIGHT_PARTS), **fields)
    if "status" in other:
        Upload.objects.filter(pk=existing.pk).update(status=other["status"])

    response = resume(api_client)

    assert response.status_code == 201, response.json()
    assert response.json()["resumed"] is False
    assert response.json()["id"] != str(existing.pk)


def test_create_with_sign_answers_the_first_batch(api_client, storage):
    response = create(api_client, sign={"parts": [{"number": n} for n in (1, 2, 3)]}, session=A)

    assert response.status_code == 201
    body = response.json()
    assert (numbers(body, "signed"), body["leased"], body["other_sessions"]) == ([1, 2, 3], [], 0)
    assert body["signed"][0]["url"].startswith("https://")
    assert "resumed" not in body


def test_the_first_batch_of_a_resume_skips_parts_s3_holds_and_parts_another_session_sends(
    api_client, storage, clock
):
    upload = new_upload(api_client, fingerprint="fp-film")
    for n in (1, 3):
        put_part(storage, upload, n)
    sign(api_client, upload, [5, 6], session=A)

    response = resume(api_client, session=B, sign={"parts": [{"number": n} for n in range(1, 9)]})

    assert response.status_code == 200
    body = response.json()
    assert (body["resumed"], numbers(body, "signed")) == (True, [2, 4, 7, 8])
    assert (body["leased"], body["other_sessions"]) == ([5, 6], 1)
    # The parts S3 holds, reconciled as the detail answers them (signed ones have no ETag).
    assert [part["number"] for part in body["parts"] if part["etag"]] == [1, 3]


def test_create_without_resume_or_sign_answers_as_before_plus_limits(api_client, storage):
    body = create(api_client).json()

    assert {"resumed", "signed", "leased", "other_sessions"}.isdisjoint(body)
    assert body["limits"] == {
        "sign_batch_max": 1000,
        "report_batch_max": 1000,
        "url_expires_in": 900,
        "session_idle": 30,
    }


def test_a_client_token_still_replays_the_first_create(api_client, storage):
    first = create(api_client, client_token="tok-1", sign={"parts": [{"number": 1}]})
    again = create(api_client, client_token="tok-1", sign={"parts": [{"number": 1}]})

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]


# --- limits ------------------------------------------------------------------------------------
def test_the_limits_follow_the_settings_in_every_upload_answer(api_client, storage, settings):
    settings.UPLOADS_SIGN_BATCH_MAX = 200
    settings.UPLOADS_URL_EXPIRY = 600
    settings.UPLOADS_SESSION_IDLE = 10
    expected = {
        "sign_batch_max": 200,
        "report_batch_max": 200,
        "url_expires_in": 600,
        "session_idle": 10,
    }
    upload = new_upload(api_client)

    answers = [
        create(api_client).json(),
        api_client.get(f"{LIST}{upload.pk}/").json(),
        api_client.get(LIST).json()["results"][0],
        report(api_client, upload, {1: put_part(storage, upload, 1)}, session=A),
    ]

    assert [answer["limits"] for answer in answers] == [expected] * 4


def test_sign_and_report_batches_are_held_to_the_limits_they_announce(
    api_client, storage, settings
):
    settings.UPLOADS_SIGN_BATCH_MAX = 2
    upload = new_upload(api_client)
    limits = api_client.get(f"{LIST}{upload.pk}/").json()["limits"]

    def status(route: str, parts: int) -> int:
        body = {"parts": [{"number": n, "etag": "a" * 32} for n in range(1, parts + 1)]}
        return int(api_client.post(f"{LIST}{upload.pk}/{route}/", body, format="json").status_code)

    assert status("sign", limits["sign_batch_max"]) == 200
    assert status("sign", limits["sign_batch_max"] + 1) == 400
    assert status("parts", limits["report_batch_max"]) == 200
    assert status("parts", limits["report_batch_max"] + 1) == 400
