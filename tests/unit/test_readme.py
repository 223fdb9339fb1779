"""README says what the code does: its error-code table and its login address."""

import re
from pathlib import Path

from django.urls import reverse

from uploads.exceptions import error_codes

README = Path(__file__).resolve().parents[2] / "README.md"
TABLE_HEADER = "| status | `code` | when (extra fields) |"


def readme_error_codes() -> dict[str, int]:
    """README's error-code table as {code: status}; a row may name several codes."""
    lines = README.read_text().splitlines()
    start = lines.index(TABLE_HEADER) + 2  # past the header and its | --- | line
    codes: dict[str, int] = {}
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        status, named, _ = (cell.strip() for cell in line.strip("|").split("|", 2))
        found = re.findall(r"`([a-z_]+)`", named)
        assert found, f"a row of README's error table names no code: {line}"
        for code in found:
            assert code not in codes, f"README's error table names {code} twice"
            codes[code] = int(status)
    return codes


def test_readmes_error_table_names_every_code_an_answer_can_carry_with_its_status():
    # error_codes(): every UploadError subclass in uploads/exceptions.py and the DRF/Django codes
    # the schema's Error enum documents (test_schema checks that enum against it too).
    assert readme_error_codes() == error_codes()


def test_readmes_error_table_says_when_a_stale_if_match_is_refused():
    assert readme_error_codes()["precondition_failed"] == 412


def test_readme_sends_people_to_the_login_page_the_upload_page_uses():
    text = README.read_text()
    assert reverse("login") == "/login/"
    assert "(log in at `/login/`" in text
    # The admin's own login page admits staff only: not where the page's users sign in.
    assert "log in at `/admin/login/`" not in text
