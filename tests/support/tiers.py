"""The test tiers: each tier is a folder of tests/ and a marker of the same name.

Every tier's conftest.py marks the tests collected from its folder (`mark_tier`); this plugin
then stops any run in which a test's folder and its tier marker disagree, or a test lies
outside every tier folder, so `pytest -m <tier>` selects exactly `tests/<tier>/`. Other marks
(`load`, `django_db`, `timeout`) are free. A new tier is a folder, a conftest.py calling
`mark_tier`, a marker in pyproject.toml and an entry in TIERS.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
TIERS = ("unit", "integration", "e2e", "reliability", "topology")


def tier_of(path: Path) -> str | None:
    """The tier whose folder holds `path`, or None outside every tier folder."""
    try:
        parts = Path(path).resolve().relative_to(TESTS).parts
    except ValueError:
        return None
    return parts[0] if len(parts) > 1 and parts[0] in TIERS else None


def mark_tier(items: Iterable[pytest.Item], tier: str) -> None:
    """Give every item collected from tests/<tier>/ the tier's marker (conftest hooks see all)."""
    marker = getattr(pytest.mark, tier)
    for item in items:
        if tier_of(item.path) == tier:
            item.add_marker(marker)


def disagreements(items: Iterable[pytest.Item]) -> list[str]:
    """One line per item whose folder and tier markers are not one and the same tier."""
    problems = []
    for item in items:
        folder = tier_of(item.path)
        marked = sorted({mark.name for mark in item.iter_markers() if mark.name in TIERS})
        if folder is None:
            problems.append(f"{item.nodeid}: outside every tier folder ({', '.join(TIERS)})")
        elif marked != [folder]:
            problems.append(f"{item.nodeid}: in tests/{folder}/ but marked {marked or 'no tier'}")
    return problems


@pytest.hookimpl(trylast=True)  # after every tier's conftest has marked its items
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    problems = disagreements(items)
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  … and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise pytest.UsageError(f"tests whose folder and tier disagree:\n  {shown}{more}")
