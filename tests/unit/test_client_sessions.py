"""The Python client with what the server offers since issue 12: limits, sessions and leases,
start-or-resume in the create call with a first batch of signed URLs.

Over FakePartwise (tests/support/fake_partwise.py), which follows the contract and is held to
the OpenAPI schema by tests/unit/test_client_fake_schema.py. Two clients of one fake stand for
two processes or machines uploading the same file.
"""

import os
import threading

import pytest

from partwise_client.fingerprint import MiB, fingerprint
from partwise_client.transfer import Uploader
from tests.support.fake_partwise import FakePartwise

SMALL = 64 * 1024


def write(path, size):
    path.write_bytes(os.urandom(size))
    return path


def uploader(server, **options):
    options.setdefault("part_size", server.part_size)
    options.setdefault("lease_poll", 0.01)
    return Uploader(server, **options)


@pytest.fixture
def six_parts(tmp_path):
    return write(tmp_path / "f.bin", 5 * MiB + 100)


def non_report_calls(server):
    return [operation for _, operation in server.calls if operation != "report"]


def test_a_new_upload_takes_create_with_a_first_signed_batch_and_complete(six_parts):
    server = FakePartwise()
    # Six senders: the create call waits for the first six parts' checksums (a sender each);
    # with fewer, the batch holds what the hasher did in its short wait.
    transfer = uploader(server, concurrency=6).upload(six_parts)
    create = server.exchanges[0]
    assert create["operation"] == "create"
    assert create["request"]["resume"] is True
    assert create["request"]["session"]
    assert [p["number"] for p in create["answer"]["signed"]] == [1, 2, 3, 4, 5, 6]
    # Every part was signed in the create call: nothing but create and complete besides reports.
    assert non_report_calls(server) == ["create", "complete"]
    assert (transfer.upload["status"], transfer.resumed) == ("completed", False)
    assert sorted(server.puts) == [1, 2, 3, 4, 5, 6]


def test_one_session_id_is_sent_with_every_create_sign_and_report_of_a_run(tmp_path):
    server = FakePartwise(part_size=SMALL)
    path = write(tmp_path / "f.bin", 40 * SMALL)
    uploader(server, sign_batch=8, report_batch=8).upload(path)
    sessions = {
        e["request"]["session"]
        for e in server.exchanges
        if e["operation"] in ("create", "sign", "report")
    }
    assert len(sessions) == 1
    assert server.calls.count(("POST", "sign")) >= 1


def test_batches_follow_the_servers_limits(tmp_path):
    server = FakePartwise(part_size=SMALL, sign_batch_max=5, report_batch_max=3)
    path = write(tmp_path / "f.bin", 40 * SMALL)
    uploader(server, report_interval=3600).upload(path)
    signs = [len(e["request"]["parts"]) for e in server.exchanges if e["operation"] == "sign"]
    reports = [len(e["request"]["parts"]) for e in server.exchanges if e["operation"] == "report"]
    # The limits are not known before the first answer: a first batch over them is refused,
    # and the same create goes again without it.
    creates = [e for e in server.exchanges if e["operation"] == "create"]
    assert [e["status"] for e in creates] == [400, 201]
    assert "sign" not in creates[1]["request"]
    assert signs
    assert max(signs) <= 5
    assert reports
    assert max(reports) <= 3
    assert sorted(server.puts) == list(range(1, 41))


def test_resuming_is_the_create_call_itself_and_sends_only_what_s3_lacks(six_parts):
    server = FakePartwise()
    data = six_parts.read_bytes()
    server.add("u1", len(data), fingerprint=fingerprint(six_parts))
    server.store("u1", data, [1, 2, 4])
    events = []
    client = uploader(server, on_event=events.append, proof_parts=3, concurrency=6)
    transfer = client.upload(six_parts)
    assert (transfer.upload["id"], transfer.resumed, transfer.parts_skipped) == ("u1", True, 3)
    assert sorted(server.puts) == [3, 5, 6]
    assert server.created == []  # no look-up, no new upload: create answered u1
    assert non_report_calls(server) == ["create", "complete"]
    assert "Resuming upload u1 of f.bin: 3 of 6 parts already uploaded, sending 3." in events


def test_parts_another_live_session_holds_are_left_to_it_and_waited_for(six_parts):
    server = FakePartwise()
    data = six_parts.read_bytes()
    server.add("u1", len(data), fingerprint=fingerprint(six_parts))
    server.lease("u1", [1, 2, 3], session="other-session-1")

    def the_other_session_sends_its_parts(fake, answer):
        fake.store("u1", data, [1, 2, 3], session="other-session-1")

    server.on("detail", the_other_session_sends_its_parts)
    events = []
    transfer = uploader(server, on_event=events.append).upload(six_parts)
    assert sorted(server.puts) == [4, 5, 6]  # never a part the other session held
    assert transfer.upload["status"] == "completed"
    assert server.completed == ["u1"]
    assert transfer.other_sessions == 1
    assert any("another session" in event for event in events)


def test_a_silent_sessions_parts_go_to_whoever_asks(six_parts):
    server = FakePartwise()
    data = six_parts.read_bytes()
    server.add("u1", len(data), fingerprint=fingerprint(six_parts))
    # Signed by a session that crashed: it has not been heard of for longer than session_idle.
    server.lease("u1", [1, 2, 3], session="crashed-session", idle_for=31)
    transfer = uploader(server).upload(six_parts)
    assert sorted(server.puts) == [1, 2, 3, 4, 5, 6]
    assert ("GET", "detail") not in server.calls  # nothing to wait for
    assert transfer.upload["status"] == "completed"


def test_two_concurrent_runs_of_the_same_file_share_one_upload_and_never_send_a_part_twice(
    tmp_path,
):
    first = FakePartwise(part_size=SMALL)
    second = first.connect()  # another process, same server
    path = write(tmp_path / "f.bin", 12 * SMALL)
    # The first run's PUTs wait until the second run has joined: both are live at once.
    first.put_gate = threading.Event()

    def open_the_gate(fake, answer):
        if fake is second:
            first.put_gate.set()

    first.on("create", open_the_gate)
    results = {}

    def run(name, server):
        results[name] = uploader(server, concurrency=2, sign_batch=4).upload(path)

    a = threading.Thread(target=run, args=("a", first))
    a.start()
    first.state.hooks.setdefault("sign", [])
    # The second run starts once the first one has created the upload.
    while not first.created:
        threading.Event().wait(0.001)
    run("b", second)
    a.join(timeout=30)
    assert not a.is_alive()
    assert len(first.created) == 1  # one upload
    assert sorted(first.puts) == list(range(1, 13))  # every part exactly once
    assert results["a"].upload["status"] == results["b"].upload["status"] == "completed"
    assert results["a"].upload["id"] == results["b"].upload["id"]
    assert results["b"].resumed is True
    sent = sorted(results["a"].parts_sent + results["b"].parts_sent)
    assert sent == list(range(1, 13))


def test_an_upload_another_session_completed_meanwhile_is_success_not_failure(six_parts):
    server = FakePartwise()
    data = six_parts.read_bytes()
    server.add("u1", len(data), fingerprint=fingerprint(six_parts))
    server.lease("u1", [4, 5, 6], session="other-session-1")

    def the_other_session_finishes(fake, answer):
        # While we send parts 1-3 the other session sends 4-6 and completes the upload.
        if fake.state.uploads["u1"]["status"] == "uploading" and len(fake.puts) == 3:
            fake.store("u1", data, [4, 5, 6], session="other-session-1")
            fake.state.uploads["u1"]["status"] = "completed"

    server.on("report", the_other_session_finishes)
    transfer = uploader(server, concurrency=1, report_batch=1).upload(six_parts)
    assert transfer.upload["status"] == "completed"
    assert sorted(server.puts) == [1, 2, 3]


def test_an_older_server_without_start_or_resume_still_resumes(six_parts):
    server = FakePartwise(offers_limits=False)
    data = six_parts.read_bytes()
    server.add("u1", len(data), fingerprint=fingerprint(six_parts))
    server.store("u1", data, [1, 2])
    transfer = uploader(server).upload(six_parts)
    assert (transfer.upload["id"], transfer.resumed) == ("u1", True)
    assert sorted(server.puts) == [3, 4, 5, 6]
    # It could not know before creating: the upload it made is aborted, the old one finished.
    assert server.uploads[server.created[0]]["status"] == "aborted"


def test_a_wrong_guess_of_the_part_size_costs_a_sign_call_not_a_wrong_part(six_parts):
    server = FakePartwise(part_size=MiB)
    transfer = Uploader(server).upload(six_parts)  # guesses 8 MiB: one part
    assert transfer.upload["part_size"] == MiB
    # Every part went with its own checksum (the fake checks each PUT's SHA-256), signed anew.
    assert sorted(server.puts) == [1, 2, 3, 4, 5, 6]
    assert server.calls.count(("POST", "sign")) >= 1


def test_a_look_alike_file_never_resumes_or_leases_the_other_files_upload(six_parts):
    server = FakePartwise()
    data = bytearray(six_parts.read_bytes())
    data[MiB + 5] ^= 0xFF  # the other file differs in part 2 only: same fingerprint
    server.add("u1", len(data), fingerprint=fingerprint(six_parts))
    server.store("u1", bytes(data), [2])
    events = []
    transfer = uploader(server, again=False, on_event=events.append).upload(six_parts)
    assert transfer.upload["id"] != "u1"
    assert not any(upload == "u1" for upload, _ in server.leases)  # nothing signed on u1
    creates = [e["request"] for e in server.exchanges if e["operation"] == "create"]
    assert [create.get("resume") for create in creates] == [None]
    assert any("is not the file of the unfinished upload u1" in event for event in events)
