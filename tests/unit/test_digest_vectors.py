"""part_digest against the shared vectors in tests/vectors/digests.json.

frontend/digests.test.js reads the same file (`node --test`), so the browser client and this
one give S3 the same MD5, CRC32C and SHA-256 of a part.
"""

import base64
import hashlib
import json
from pathlib import Path

import pytest

from partwise_client.digests import ALGORITHMS, part_digest

VECTORS = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "digests.json").read_text())
FIELDS = {"SHA256": "sha256", "CRC32C": "crc32c", "MD5": "md5"}


def case_input(case: dict) -> bytes | memoryview:
    """A case's bytes; for a "view" case, a view of them inside a larger buffer."""
    if "hex" in case:
        data = bytes.fromhex(case["hex"])
    elif "repeat" in case:
        data = bytes([case["repeat"]["byte"]]) * case["repeat"]["count"]
    else:
        assert case["pattern"]["formula"] == "(i * 31 + 7) % 251"
        data = bytes((i * 31 + 7) % 251 for i in range(case["pattern"]["length"]))
    if "view" not in case:
        return data
    view = case["view"]
    offset, fill, after = view["offset"], view["fill"], view["after"]
    buffer = bytes([fill]) * offset + data + bytes([fill]) * after
    return memoryview(buffer)[offset : offset + len(data)]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("case", VECTORS, ids=[case["name"] for case in VECTORS])
def test_part_digest_gives_the_vector(case, algorithm):
    assert part_digest(algorithm, case_input(case)) == case[FIELDS[algorithm]]


def test_the_vectors_hold_the_published_values():
    by_name = {case["name"]: case for case in VECTORS}
    crc = base64.b64decode(by_name["123456789"]["crc32c"])
    assert int.from_bytes(crc, "big") == 0xE3069283
    md5 = base64.b64decode(by_name["abc"]["md5"]).hex()
    assert md5 == "900150983cd24fb0d6963f7d28e17f72"
    sizes = {len(case_input(case)) for case in VECTORS}
    assert {0, 1, 3, 9, 55, 56, 63, 64, 65, 1024 * 1024 + 3} <= sizes


def test_bytes_and_buffers_digest_alike():
    data = bytes(range(256)) * 5
    for algorithm in ALGORITHMS:
        expected = part_digest(algorithm, data)
        assert part_digest(algorithm, bytearray(data)) == expected
        assert part_digest(algorithm, memoryview(data)[0:]) == expected


def test_the_forms_s3_wants():
    assert len(part_digest("SHA256", b"x")) == 44
    assert len(part_digest("CRC32C", b"x")) == 8
    assert (
        part_digest("MD5", b"x")
        == base64.b64encode(hashlib.md5(b"x", usedforsecurity=False).digest()).decode()
    )


@pytest.mark.parametrize("algorithm", ["SHA1", "sha256", "md5", "CRC64NVME", ""])
def test_an_unknown_algorithm_is_a_value_error(algorithm):
    with pytest.raises(ValueError, match="unknown checksum algorithm"):
        part_digest(algorithm, b"abc")
