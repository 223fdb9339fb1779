"""One protocol, two clients: the Python client against the shared vectors in tests/vectors/.

frontend/*.test.js reads the same files (`node --test`), so the browser client and this one
agree on the retry schedule, which answers are retried, what S3's refusals mean, the
fingerprint, the part ranges and the batch sizes.
"""

import json
import os
from pathlib import Path

import pytest

from partwise_client.fingerprint import fingerprint
from partwise_client.planning import (
    REPORT_BATCH,
    REPORT_INTERVAL,
    SIGN_BATCH,
    Limits,
    part_count,
    part_range,
)
from partwise_client.retry import RETRY_DELAYS, Backoff, classify_s3_error, is_retryable

VECTORS = Path(__file__).resolve().parents[1] / "vectors"


def vectors(name):
    return json.loads((VECTORS / name).read_text())


RETRY = vectors("retry.json")
BATCHES = vectors("batches.json")


def test_the_retry_schedule_is_the_shared_one():
    assert [round(delay * 1000) for delay in RETRY_DELAYS] == RETRY["retry_delays_ms"]
    assert Backoff().attempts == len(RETRY["retry_delays_ms"]) + 1  # the first try, then retries


@pytest.mark.parametrize(
    "case", RETRY["backoff"], ids=lambda c: f"attempt{c['attempt']}-random{c['random']}"
)
def test_each_retry_waits_the_jittered_delay_of_its_attempt(case):
    backoff = Backoff(random=lambda: case["random"])
    assert round(backoff.delay(case["attempt"]) * 1000) == case["delay_ms"]


@pytest.mark.parametrize("case", RETRY["statuses"], ids=lambda c: str(c["status"]))
def test_which_answers_are_retried(case):
    assert is_retryable(case["status"]) is case["retryable"]


@pytest.mark.parametrize(
    "case",
    vectors("s3_errors.json"),
    ids=lambda c: f"{c['status']}-{c['code']}-{c['body'][60:90].strip()}",
)
def test_an_s3_refusal_means_what_both_clients_say(case):
    answer = classify_s3_error(case["status"], case["body"])
    assert (answer.code, answer.retryable, answer.resign) == (
        case["code"],
        case["retryable"],
        case["resign"],
    )


def pattern(size):
    return bytes((i * 31 + 7) % 251 for i in range(size))


@pytest.mark.parametrize("case", vectors("fingerprints.json"), ids=lambda c: c["name"])
def test_the_fingerprint_of_each_vector_file(tmp_path, case):
    path = tmp_path / case["name"]
    path.write_bytes(pattern(case["size"]))
    mtime_ns = case["last_modified_ms"] * 1_000_000
    os.utime(path, ns=(mtime_ns, mtime_ns))
    assert fingerprint(path) == case["fingerprint"]


@pytest.mark.parametrize(
    "case", vectors("part_ranges.json"), ids=lambda c: f"{c['size']}-by-{c['part_size']}"
)
def test_the_byte_ranges_of_the_parts(case):
    count = part_count(case["size"], case["part_size"])
    ranges = [list(part_range(case["size"], case["part_size"], n)) for n in range(1, count + 1)]
    assert ranges == case["ranges"]


def test_the_batch_defaults_are_the_shared_ones():
    assert (SIGN_BATCH, REPORT_BATCH, round(REPORT_INTERVAL * 1000)) == (
        BATCHES["sign_batch_size"],
        BATCHES["report_batch_size"],
        BATCHES["report_interval_ms"],
    )


@pytest.mark.parametrize("case", BATCHES["cases"], ids=lambda c: json.dumps(c["limits"]))
def test_batches_stay_within_the_servers_limits(case):
    limits = Limits.of({"limits": case["limits"]})
    assert (limits.sign_batch, limits.report_batch, round(limits.report_interval * 1000)) == (
        case["sign_batch"],
        case["report_batch"],
        case["report_interval_ms"],
    )
