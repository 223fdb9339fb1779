#!/usr/bin/env python
"""The host project's manage.py (run from the repository root, which holds `tests`)."""

import os
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.host_project.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
