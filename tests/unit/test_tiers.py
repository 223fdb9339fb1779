"""Folder = tier = marker: every test file sits in a tier's folder and carries only its marker.

The check itself runs at collection (tests/support/tiers.py); these tests hold it to the whole
tree even when only one file is run, and prove it refuses what it must.
"""

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.tiers import TESTS, TIERS, disagreements, tier_of

ROOT = TESTS.parent


def collected_test_files() -> list[Path]:
    """What pytest collects as test modules (its default `python_files`), bench aside."""
    found = {*TESTS.rglob("test_*.py"), *TESTS.rglob("*_test.py")}
    return sorted(path for path in found if "node_modules" not in path.parts)


def test_every_test_file_sits_in_a_tier_folder():
    outside = [
        str(path.relative_to(TESTS)) for path in collected_test_files() if tier_of(path) is None
    ]

    assert collected_test_files()
    assert outside == []


def test_this_test_carries_its_folders_marker(request):
    assert [mark.name for mark in request.node.iter_markers() if mark.name in TIERS] == ["unit"]


@dataclass
class Item:
    """What the check reads of a collected test."""

    path: Path
    marks: list[str] = field(default_factory=list)

    @property
    def nodeid(self) -> str:
        return str(self.path.relative_to(ROOT))

    def iter_markers(self):
        return [getattr(pytest.mark, name).mark for name in self.marks]


@pytest.mark.parametrize(
    ("path", "marks", "problem"),
    [
        ("unit/test_x.py", ["unit", "django_db"], None),
        ("reliability/test_x.py", ["reliability", "load"], None),
        (
            "unit/test_x.py",
            ["unit", "integration"],
            "in tests/unit/ but marked ['integration', 'unit']",
        ),
        (
            "reliability/test_x.py",
            ["integration"],
            "in tests/reliability/ but marked ['integration']",
        ),
        ("e2e/test_x.py", [], "in tests/e2e/ but marked no tier"),
        ("test_x.py", ["unit"], "outside every tier folder"),
        ("bench/test_x.py", [], "outside every tier folder"),
    ],
    ids=[
        "its own tier",
        "its own tier and load",
        "a second tier",
        "another tier",
        "no tier",
        "at the top",
        "in another folder",
    ],
)
def test_the_check_refuses_a_test_whose_folder_and_tier_disagree(path, marks, problem):
    found = disagreements([Item(TESTS / path, marks)])

    if problem is None:
        assert found == []
    else:
        [line] = found
        assert line.startswith(f"tests/{path}: {problem}")


@pytest.mark.timeout(120)
def test_the_whole_tree_collects_with_every_folder_and_marker_agreeing():
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
    )

    assert collected.returncode == 0, collected.stdout[-2000:] + collected.stderr[-2000:]
    assert " tests collected" in collected.stdout.splitlines()[-1]
