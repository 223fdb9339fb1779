"""Embedded development defaults: where `make run` keeps its data and its dev-only S3 keys.

Nothing here is used when the matching environment variables are set. The S3 keys are
generated once per checkout under var/ (never committed) so that no credential lives in the
repository, and the embedded SeaweedFS is started with the same keys.
"""

import json
import os
import secrets
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]  # the checkout: project/dev/embedded.py
# PARTWISE_VAR_DIR moves all local state elsewhere (tests run `make run`'s command in a temp dir).
VAR_DIR = Path(os.environ.get("PARTWISE_VAR_DIR") or BASE_DIR / "var")
EMBEDDED_S3_ENDPOINT = "http://127.0.0.1:8333"
CREDENTIALS_FILE = VAR_DIR / "dev-s3-credentials.json"


def dev_s3_credentials() -> dict[str, str]:
    """Return the dev-only S3 key pair for the embedded SeaweedFS, creating it on first use."""
    try:
        stored: dict[str, str] = json.loads(CREDENTIALS_FILE.read_text())
        return stored
    except FileNotFoundError:
        pass
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    credentials = {
        "AWS_ACCESS_KEY_ID": "dev" + secrets.token_hex(8),
        "AWS_SECRET_ACCESS_KEY": secrets.token_urlsafe(30),
    }
    CREDENTIALS_FILE.write_text(json.dumps(credentials))
    CREDENTIALS_FILE.chmod(0o600)
    return credentials


def dev_secret_key() -> str:
    """A per-checkout Django SECRET_KEY for development, generated once under var/."""
    path = VAR_DIR / "dev-secret-key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(50)
        path.write_text(key)
        path.chmod(0o600)
        return key
