"""The part digest is the server's choice: the CLI hashes what each upload's checksum_algorithm
says, sends the header it signs, remembers the choice, resends parts completion finds corrupted,
and says when nothing verifies the parts.

Over FakePartwise (tests/support/fake_partwise.py), which chooses the digest as the server
does for its store (`choose_algorithm`), refuses a signed or reported checksum that is not the
upload's digest, and asserts each PUT carries the signed header holding the digest of its
bytes. uploads/integrity.py is the server's side.
"""

import json
import os
import threading
from pathlib import Path

import pytest

from partwise_client import cli
from partwise_client.digests import ALGORITHMS, part_digest
from partwise_client.errors import PartwiseError
from partwise_client.fingerprint import MiB, fingerprint
from partwise_client.hashing import READ_BLOCK, Checksums, hash_range, part_checksum
from partwise_client.planning import part_range
from partwise_client.sessions import ALGORITHMS_FILE, remembered_algorithm, state_dir
from partwise_client.transfer import MISMATCH_ROUNDS
from tests.support.fake_partwise import SERVER, FakePartwise
from tests.unit.test_client_fake_schema import SCHEMA_FILE, check
from tests.unit.test_client_sessions import uploader, write


@pytest.fixture
def six_parts(tmp_path):
    return write(tmp_path / "f.bin", 5 * MiB + 100)


HEADERS = {
    "SHA256": "x-amz-checksum-sha256",
    "CRC32C": "x-amz-checksum-crc32c",
    "MD5": "Content-MD5",
}
LENGTHS = {"SHA256": 44, "CRC32C": 8, "MD5": 24}
UNVERIFIED = "partwise: this store verifies no part checksum; the upload of {} is unverified"


def parts_of(path, upload):
    """Part number -> its bytes, as the upload cuts the file."""
    data = path.read_bytes()
    parts = {}
    for number in range(1, upload["part_count"] + 1):
        start, end = part_range(upload["size"], upload["part_size"], number)
        parts[number] = data[start:end]
    return parts


def exchanges(server, operation):
    return [e for e in server.exchanges if e["operation"] == operation]


def non_report_calls(server):
    return [operation for _, operation in server.calls if operation != "report"]


# --- hashing with the upload's algorithm --------------------------------------------------
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_file_range_hashes_to_the_digest_of_its_bytes_with_each_algorithm(tmp_path, algorithm):
    path = write(tmp_path / "f.bin", 2 * READ_BLOCK + 12345)  # several blocks, a short last one
    data = path.read_bytes()
    for start, length in [(0, len(data)), (7, READ_BLOCK + 1), (len(data) - 3, 3), (5, 0)]:
        expected = part_digest(algorithm, data[start : start + length])
        assert hash_range(path, start, length, algorithm=algorithm) == expected
        assert part_checksum(data[start : start + length], algorithm) == expected
    assert len(hash_range(path, 0, len(data), algorithm=algorithm)) == LENGTHS[algorithm]


def test_the_shared_digest_vectors_hash_alike_from_a_file(tmp_path):
    vectors = json.loads((Path(__file__).parents[1] / "vectors" / "digests.json").read_text())
    for case in (c for c in vectors if "hex" in c):
        path = tmp_path / "v.bin"
        path.write_bytes(bytes.fromhex(case["hex"]))
        for algorithm in ALGORITHMS:
            got = hash_range(path, 0, path.stat().st_size, algorithm=algorithm)
            assert got == case[algorithm.lower()], (case["name"], algorithm)


def test_the_hasher_thread_hashes_every_part_with_its_algorithm(tmp_path):
    path = write(tmp_path / "f.bin", 3 * 1000 + 1)
    data = path.read_bytes()
    numbers, stop = [1, 2, 3, 4], threading.Event()
    checksums = Checksums(
        path, size=len(data), part_size=1000, numbers=numbers, stop=stop, algorithm="CRC32C"
    ).start()
    checksums.join()
    assert checksums.done == {
        n: part_digest("CRC32C", data[(n - 1) * 1000 : n * 1000]) for n in range(1, 5)
    }


def test_an_unknown_algorithm_is_refused(tmp_path):
    path = write(tmp_path / "f.bin", 10)
    with pytest.raises(ValueError, match="unknown checksum algorithm"):
        hash_range(path, 0, 10, algorithm="SHA1")


# --- the server chooses the digest ----------------------------------------------------------
@pytest.mark.parametrize("chosen", ["MD5", "CRC32C"])
def test_a_server_choosing_another_digest_than_sha256_gets_every_part_hashed_its_way(
    six_parts, chosen
):
    server = FakePartwise(choose_algorithm=lambda asked: chosen)
    transfer = uploader(server, concurrency=6).upload(six_parts)

    create = exchanges(server, "create")[0]
    assert create["request"]["checksum_algorithm"] == "SHA256"  # nothing known of this server
    assert create["request"]["sign"]["parts"]  # hashed with SHA-256 while waiting...
    assert create["answer"]["checksum_algorithm"] == chosen
    assert "signed" not in create["answer"]  # ...and not signed: the server chose otherwise
    # Every part signed by sign calls, with the chosen digest of its bytes.
    parts = parts_of(six_parts, transfer.upload)
    signed = {
        p["number"]: p["checksum"] for e in exchanges(server, "sign") for p in e["request"]["parts"]
    }
    assert signed == {n: part_digest(chosen, chunk) for n, chunk in parts.items()}
    # Every PUT carried the chosen digest's header (the fake checks it against the bytes).
    assert sorted(server.puts) == [1, 2, 3, 4, 5, 6]
    for _, headers in server.put_headers:
        assert [h for h in HEADERS.values() if h in headers] == [HEADERS[chosen]]
    reported = {
        p["number"]: p["checksum"]
        for e in exchanges(server, "report")
        for p in e["request"]["parts"]
    }
    assert reported == signed
    assert (transfer.upload["status"], transfer.upload["checksum_algorithm"]) == (
        "completed",
        chosen,
    )


def test_a_server_choosing_what_was_asked_signs_the_first_batch_in_the_create_call(six_parts):
    server = FakePartwise()
    uploader(server, concurrency=6).upload(six_parts)
    create = exchanges(server, "create")[0]
    assert create["answer"]["checksum_algorithm"] == "SHA256"
    assert [p["number"] for p in create["answer"]["signed"]] == [1, 2, 3, 4, 5, 6]
    assert non_report_calls(server) == ["create", "complete"]
    assert all(list(h) == ["x-amz-checksum-sha256"] for _, h in server.put_headers)


def test_the_next_upload_to_the_same_server_asks_for_the_digest_it_chose_last(tmp_path):
    server = FakePartwise(choose_algorithm=lambda asked: "MD5")
    uploader(server).upload(write(tmp_path / "a.bin", 3 * MiB))
    assert remembered_algorithm(SERVER) == "MD5"  # kept in the state directory
    assert json.loads((state_dir() / ALGORITHMS_FILE).read_text()) == {SERVER: "MD5"}

    # Another run (another process: a new client and uploader) of the same server.
    again = server.connect()
    before = len(server.exchanges)
    uploader(again, concurrency=6).upload(write(tmp_path / "b.bin", 5 * MiB + 100))
    create = next(e for e in server.exchanges[before:] if e["operation"] == "create")
    assert create["request"]["checksum_algorithm"] == "MD5"
    assert all(len(p["checksum"]) == 24 for p in create["request"]["sign"]["parts"])
    assert [p["number"] for p in create["answer"]["signed"]] == [1, 2, 3, 4, 5, 6]
    assert [op for _, op in server.calls[before:] if op != "report"] == ["create", "complete"]
    assert server.asked == ["SHA256", "MD5"]


def test_without_a_writable_state_directory_the_choice_is_remembered_in_process(
    tmp_path, monkeypatch
):
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    monkeypatch.setenv("PARTWISE_STATE_DIR", str(blocked))
    server = FakePartwise(choose_algorithm=lambda asked: "CRC32C")
    client = uploader(server)
    client.upload(write(tmp_path / "a.bin", 2 * MiB))
    client.upload(write(tmp_path / "b.bin", 2 * MiB))
    assert server.asked == ["SHA256", "CRC32C"]


def test_an_operator_forcing_sha256_is_followed_even_after_another_choice(tmp_path):
    server = FakePartwise(choose_algorithm=lambda asked: "MD5")
    uploader(server).upload(write(tmp_path / "a.bin", 2 * MiB))
    server.choose_algorithm = lambda asked: "SHA256"
    transfer = uploader(server.connect()).upload(write(tmp_path / "b.bin", 2 * MiB))
    assert server.asked == ["SHA256", "MD5"]
    assert "signed" not in exchanges(server, "create")[1]["answer"]
    assert transfer.upload["checksum_algorithm"] == "SHA256"
    assert remembered_algorithm(SERVER) == "SHA256"


# --- resuming an upload of another digest ------------------------------------------------------
def test_resuming_an_md5_upload_from_a_fresh_process_proves_the_file_with_md5(six_parts):
    server = FakePartwise()  # answers SHA256 to new uploads, as asked
    data = six_parts.read_bytes()
    server.add("u1", len(data), fingerprint=fingerprint(six_parts), checksum_algorithm="MD5")
    server.store("u1", data, [1, 2, 4])
    events = []
    transfer = uploader(server, proof_parts=3, on_event=events.append).upload(six_parts)

    assert (transfer.upload["id"], transfer.resumed, transfer.parts_skipped) == ("u1", True, 3)
    assert server.created == []  # proven with MD5: the upload is this file's
    assert sorted(server.puts) == [3, 5, 6]  # only what S3 lacks
    assert all(list(h) == ["Content-MD5"] for _, h in server.put_headers)
    assert "signed" not in exchanges(server, "create")[0]["answer"]  # asked SHA256: signed later
    assert "Resuming upload u1 of f.bin: 3 of 6 parts already uploaded, sending 3." in events
    assert remembered_algorithm(SERVER) is None  # an old upload's digest says nothing new


def test_resume_required_finds_an_md5_upload_and_proves_it_with_md5(six_parts):
    server = FakePartwise()
    data = six_parts.read_bytes()
    server.add("u1", len(data), fingerprint=fingerprint(six_parts), checksum_algorithm="MD5")
    server.store("u1", data, [1, 2, 4])
    transfer = uploader(server, proof_parts=3).upload(six_parts, resume="required")
    assert (transfer.upload["id"], transfer.resumed) == ("u1", True)
    assert sorted(server.puts) == [3, 5, 6]


def test_a_crc32c_upload_of_other_bytes_is_not_resumed(six_parts):
    server = FakePartwise()
    data = six_parts.read_bytes()
    server.add("u1", len(data), fingerprint=fingerprint(six_parts), checksum_algorithm="CRC32C")
    server.store("u1", os.urandom(len(data)), [1, 2])
    events = []
    transfer = uploader(server, on_event=events.append).upload(six_parts)
    assert transfer.upload["id"] != "u1"
    assert server.uploads["u1"]["status"] == "uploading"  # left alone
    assert any("an uploaded part's checksum differs" in event for event in events)


# --- a part corrupted on the way, caught at completion ---------------------------------------
def test_a_part_completion_finds_corrupted_is_sent_again_and_the_upload_completes(six_parts):
    server = FakePartwise(choose_algorithm=lambda asked: "MD5", integrity="etag", mismatches=[[2]])
    events = []
    transfer = uploader(server, on_event=events.append).upload(six_parts)

    assert [e["status"] for e in exchanges(server, "complete")] == [409, 200]
    assert exchanges(server, "complete")[0]["answer"]["code"] == "part_mismatch"
    assert sorted(server.puts) == [1, 2, 2, 3, 4, 5, 6]  # part 2 twice, the others once
    assert server.puts[-1] == 2
    assert sorted(transfer.parts_sent) == [1, 2, 2, 3, 4, 5, 6]
    assert transfer.upload["status"] == "completed"
    assert "S3 holds other bytes than were sent for part 2 of f.bin: sending it again." in events


def test_completion_finding_parts_corrupted_again_and_again_gives_up(six_parts):
    server = FakePartwise(mismatches=[[2, 5]] * (MISMATCH_ROUNDS + 5))
    with pytest.raises(PartwiseError) as refused:
        uploader(server).upload(six_parts)
    assert refused.value.code == "part_mismatch"
    assert len(exchanges(server, "complete")) == MISMATCH_ROUNDS + 1
    assert server.puts.count(2) == MISMATCH_ROUNDS + 1


# --- unverified uploads -----------------------------------------------------------------------
@pytest.fixture
def cli_server(monkeypatch):
    fake = FakePartwise(choose_algorithm=lambda asked: "MD5", integrity="none")
    monkeypatch.setattr(cli, "PartwiseApi", lambda *args, **kwargs: fake.connect())
    return fake


ARGS = ["--server", SERVER, "--token", "t", "--part-size", "1M"]


def test_the_cli_says_when_nothing_verifies_the_parts(cli_server, tmp_path, capsys):
    path = write(tmp_path / "clip.bin", 2 * MiB + 5)
    assert cli.main(["upload", str(path), "-q", *ARGS]) == cli.OK
    err = capsys.readouterr().err.splitlines()
    assert err.count(UNVERIFIED.format("clip.bin")) == 1
    assert cli_server.uploads[cli_server.created[0]]["unverified"] is True


def test_a_verified_upload_says_nothing_of_it(monkeypatch, tmp_path, capsys):
    fake = FakePartwise(choose_algorithm=lambda asked: "MD5", integrity="etag")
    monkeypatch.setattr(cli, "PartwiseApi", lambda *args, **kwargs: fake.connect())
    assert cli.main(["upload", str(write(tmp_path / "clip.bin", MiB)), "-q", *ARGS]) == cli.OK
    assert "unverified" not in capsys.readouterr().err


def test_a_server_choosing_no_digest_gets_parts_without_one_and_says_so(six_parts):
    server = FakePartwise(choose_algorithm=lambda asked: "")
    events = []
    transfer = uploader(server, on_event=events.append).upload(six_parts)
    assert transfer.upload["status"] == "completed"
    assert all(not h for _, h in server.put_headers)
    assert UNVERIFIED.format("f.bin") in events
    assert remembered_algorithm(SERVER) is None  # "none" is never asked for on its own


# --- the fake stays the server it stands for --------------------------------------------------
def test_these_exchanges_fit_the_openapi_schema(tmp_path):
    part = 5 * MiB  # S3's smallest, which the schema holds create's part_size to
    path = write(tmp_path / "f.bin", 2 * part + 100)
    data = path.read_bytes()
    schema = json.loads(SCHEMA_FILE.read_text())
    seen = []
    for options in (
        {"choose_algorithm": lambda asked: "MD5", "integrity": "etag", "mismatches": [[2]]},
        {"choose_algorithm": lambda asked: "CRC32C"},
        {"choose_algorithm": lambda asked: "", "integrity": "none"},
    ):
        server = FakePartwise(part, **options)
        uploader(server).upload(path)
        seen += server.exchanges
    resumed = FakePartwise(part)
    resumed.add("u1", len(data), fingerprint=fingerprint(path), checksum_algorithm="MD5")
    resumed.store("u1", data, [1])
    uploader(resumed).upload(path)
    seen += resumed.exchanges
    assert ("complete", 409) in {(e["operation"], e["status"]) for e in seen}
    assert check(schema, seen) == []
