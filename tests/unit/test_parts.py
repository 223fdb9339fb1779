"""Part planning: S3's limits turned into a plan, as a table and as properties."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from uploads.parts import (
    MAX_OBJECT_SIZE,
    MAX_PART_SIZE,
    MAX_PARTS,
    MIN_PART_SIZE,
    GiB,
    MiB,
    PartPlan,
    TiB,
    plan_parts,
)

# (size, preferred part size) -> (part size, part count, size of the last part)
PLANS = [
    pytest.param(0, 8 * MiB, 8 * MiB, 1, 0, id="0 B is one empty part"),
    pytest.param(1, 8 * MiB, 8 * MiB, 1, 1, id="1 B"),
    pytest.param(5 * MiB, 5 * MiB, 5 * MiB, 1, 5 * MiB, id="exactly 5 MiB is one part"),
    pytest.param(5 * MiB + 1, 5 * MiB, 5 * MiB, 2, 1, id="5 MiB + 1 adds a 1-byte part"),
    pytest.param(
        MAX_PARTS * 8 * MiB, 8 * MiB, 8 * MiB, MAX_PARTS, 8 * MiB, id="exactly 10,000 parts"
    ),
    pytest.param(
        MAX_PARTS * 8 * MiB + 1,
        8 * MiB,
        9 * MiB,
        8889,
        8 * MiB + 1,
        id="one byte past 10,000 parts raises the part size",
    ),
    pytest.param(
        MAX_PARTS * 5 * MiB, 5 * MiB, 5 * MiB, MAX_PARTS, 5 * MiB, id="10,000 minimum parts"
    ),
    pytest.param(5 * TiB, 8 * MiB, 525 * MiB, 9987, 230 * MiB, id="max size 5 TiB"),
    pytest.param(100 * MiB, 16 * MiB, 16 * MiB, 7, 4 * MiB, id="preferred part size respected"),
    pytest.param(12 * GiB, 5 * GiB, 5 * GiB, 3, 2 * GiB, id="largest part size 5 GiB"),
    pytest.param(11 * MiB, 5 * MiB, 5 * MiB, 3, 1 * MiB, id="flow-test file of 11 MiB"),
]


@pytest.mark.parametrize(("size", "preferred", "part_size", "part_count", "last"), PLANS)
def test_plan_parts_cuts_a_file_as_s3_allows(size, preferred, part_size, part_count, last):
    plan = plan_parts(size, preferred)

    assert plan == PartPlan(size=size, part_size=part_size, part_count=part_count)
    assert plan.size_of(part_count) == last
    # S3's rules hold for every plan: at most 10,000 parts, each within limits but the last.
    assert plan.part_count <= MAX_PARTS
    assert MIN_PART_SIZE <= plan.part_size <= MAX_PART_SIZE
    assert 0 <= last <= plan.part_size
    assert (part_count - 1) * part_size + last == size


def test_parts_tile_the_file_without_gap_or_overlap():
    plan = plan_parts(23 * MiB + 7, 5 * MiB)

    ranges = [(plan.offset_of(n), plan.size_of(n)) for n in range(1, plan.part_count + 1)]

    assert ranges == [
        (0, 5 * MiB),
        (5 * MiB, 5 * MiB),
        (10 * MiB, 5 * MiB),
        (15 * MiB, 5 * MiB),
        (20 * MiB, 3 * MiB + 7),
    ]


def test_an_empty_file_has_one_empty_part_at_offset_zero():
    plan = plan_parts(0, 8 * MiB)

    assert (plan.offset_of(1), plan.size_of(1)) == (0, 0)


@pytest.mark.parametrize(
    "number", [0, -1, 4, 10_001], ids=["zero", "negative", "one past the last", "10,001"]
)
@pytest.mark.parametrize("method", ["size_of", "offset_of"])
def test_a_part_number_outside_the_plan_raises_value_error(method, number):
    plan = plan_parts(11 * MiB, 5 * MiB)

    with pytest.raises(ValueError, match=r"outside 1\.\.3"):
        getattr(plan, method)(number)


@pytest.mark.parametrize(
    ("size", "preferred"),
    [
        pytest.param(-1, 8 * MiB, id="negative size"),
        pytest.param(MAX_OBJECT_SIZE + 1, 8 * MiB, id="one byte over 5 TiB"),
        pytest.param(1, MIN_PART_SIZE - 1, id="part size under 5 MiB"),
        pytest.param(1, 0, id="part size zero"),
        pytest.param(1, MAX_PART_SIZE + 1, id="part size over 5 GiB"),
    ],
)
def test_plan_parts_refuses_what_s3_cannot_store(size, preferred):
    with pytest.raises(ValueError, match="must be between"):
        plan_parts(size, preferred)


def test_the_limits_are_s3s():
    assert (MIN_PART_SIZE, MAX_PART_SIZE, MAX_PARTS, MAX_OBJECT_SIZE) == (
        5 * 1024**2,
        5 * 1024**3,
        10_000,
        5 * 1024**4,
    )


# --- the same rules for any size and preferred part size (Hypothesis) -------------------------
@settings(derandomize=True, max_examples=300, deadline=None)
@given(
    size=st.one_of(
        st.integers(min_value=0, max_value=MAX_OBJECT_SIZE),
        st.sampled_from([0, 1, MIN_PART_SIZE - 1, MIN_PART_SIZE, MAX_OBJECT_SIZE]),
    ),
    preferred=st.integers(min_value=MIN_PART_SIZE, max_value=MAX_PART_SIZE),
)
def test_any_plan_keeps_s3s_rules_and_tiles_the_file(size, preferred):
    plan = plan_parts(size, preferred)

    assert 1 <= plan.part_count <= MAX_PARTS
    assert MIN_PART_SIZE <= plan.part_size <= MAX_PART_SIZE
    assert plan.part_size >= preferred  # only ever raised, to fit 10,000 parts
    last = plan.size_of(plan.part_count)
    assert (plan.part_count - 1) * plan.part_size + last == size
    assert (0 < last <= plan.part_size) if size else last == 0
    # Parts tile the file: each starts where the one before ended.
    for number in (1, plan.part_count // 2 + 1, plan.part_count):
        assert plan.offset_of(number) == (number - 1) * plan.part_size
