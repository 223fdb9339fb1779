"""Partwise client: resumable, parallel uploads to a Partwise server, from Python or a shell.

Standalone: no Django, boto3 or Celery, only requests, tqdm and google-crc32c (`pip install
./clients/python` installs it alone). The library API mirrors boto3's `upload_file` and oss2's
`resumable_upload`::

    from partwise_client import upload_file
    upload = upload_file("video.mp4", server="https://files.example", token="pw_…",
                         progress=lambda done, total: print(done, total))

The command line is `partwise` (partwise_client/cli.py).
"""

from .api import PartwiseApi
from .errors import AuthError, FileMismatch, NotFound, NothingToResume, PartRefused, PartwiseError
from .fingerprint import fingerprint
from .retry import Backoff, is_retryable
from .transfer import Transfer, Uploader, upload_file

__all__ = [
    "AuthError",
    "Backoff",
    "FileMismatch",
    "NotFound",
    "NothingToResume",
    "PartRefused",
    "PartwiseApi",
    "PartwiseError",
    "Transfer",
    "Uploader",
    "fingerprint",
    "is_retryable",
    "upload_file",
]
