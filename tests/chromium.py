"""Where Debian's Chromium is and how it is started here: shared by the e2e tier and benchmarks.

Headless, no sandbox (CI runs as root), and without the background networking that this
machine's closed network would refuse many times a second.
"""

import os
from pathlib import Path

CHROMIUM = Path(os.environ.get("PARTWISE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
