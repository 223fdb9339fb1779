"""Helpers and fixtures shared by every tier, one copy each.

Plugins (registered with `pytest_plugins` in tests/conftest.py): `tiers` (folder = tier =
marker, checked at collection), `passwords` (fast hashing for every test), `world` (the uploads
and tokens hostile requests aim at). Helpers, imported where used: `checksums` (sha256_b64,
ETags, SHA-256 of files and objects), `uploads` (the sample upload, PUT its parts into S3),
`presigned` (PUT to a presigned URL as a browser does), `http` (raw bodies, `send`, a server in
a thread), `snapshots` (what a refused request must leave as it was), `files`, `s3_faults`.
"""
