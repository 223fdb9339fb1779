"""Part integrity: which digest each part carries, and what catches a corrupted part.

S3 stores differ in what they verify (README's store table). AWS and MinIO refuse a part whose
signed `x-amz-checksum-sha256` or `-crc32c` differs from its bytes; Ceph RGW before v20, GCS's
XML API and Garage ignore those headers but refuse a wrong `Content-MD5`; R2 refuses SHA-256
headers outright (501) and verifies CRC32C and MD5. So the server chooses per upload, from
UPLOADS_PART_INTEGRITY and the store's probed profile (`StoreProfile`, written by
`probe_storage`), and the clients compute what the upload's `checksum_algorithm` says.

How a corrupted part is caught, per upload (`Upload.integrity`):
- `store`: the store itself refuses the part (its digest is a signed header it verifies);
- `etag`: the store verifies nothing, but its part ETag is the part's MD5, so completion
  compares each ETag ListParts answers with the MD5 the client signed (409 `part_mismatch`);
- `none`: neither holds (or the upload carries no digest): the upload is `unverified`, and
  the verification task re-hashes the object after completion.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

# The one implementation of a part's digest as S3 takes it, shared with the CLI (the same
# distribution ships both) and checked against tests/vectors/digests.json, as the browser's is.
from partwise_client.digests import Digest, part_digest  # noqa: F401  (re-exported)

SHA256 = "SHA256"
CRC32C = "CRC32C"
MD5 = "MD5"
# The strongest first: a store that verifies several gets the first it verifies.
ALGORITHMS = (SHA256, CRC32C, MD5)
# Raw digest sizes: a checksum is their base64 (44, 8 and 24 characters).
DIGEST_SIZES = {SHA256: 32, CRC32C: 4, MD5: 16}

# UPLOADS_PART_INTEGRITY: "auto" follows the probe; the others force one mechanism.
SETTING_CHOICES = ("auto", "sha256", "crc32c", "md5", "none")

STORE = "store"
ETAG = "etag"
NONE = "none"


@dataclass(frozen=True)
class StoreProfile:
    """What a probe of the store found, through the presigned path clients use."""

    verifies: frozenset[str] = field(default_factory=frozenset)  # algorithms it refuses wrong
    binds_length: bool = True  # a body longer or shorter than the signed length is refused
    equal_part_sizes: bool = False  # every part but the last must have one size (R2)
    etag_is_md5: bool = False  # a part's ETag is the hex MD5 of its bytes

    @property
    def verifies_nothing(self) -> bool:
        """True when no digest is verified and the ETag cannot stand in for one."""
        return not self.verifies and not self.etag_is_md5


def forced_algorithm(setting: str) -> str | None:
    """The algorithm UPLOADS_PART_INTEGRITY forces ("" for none), or None for `auto`."""
    if setting == "auto":
        return None
    return "" if setting == "none" else setting.upper()


def choose_algorithm(asked: str, *, profile: StoreProfile | None, setting: str = "auto") -> str:
    """The digest an upload's parts carry: "" (none), SHA256, CRC32C or MD5.

    A forced setting wins. Under `auto`, a client that asks for none gets none (Uppy, or a
    client with checksums off); one that asks for a digest the store does not verify gets the
    strongest one it verifies, or MD5 when only the ETag can catch a wrong part, never silently
    nothing. A store never probed (profile None) gets what the client asked.
    """
    forced = forced_algorithm(setting)
    if forced is not None:
        return forced
    if not asked or profile is None or asked in profile.verifies:
        return asked
    for algorithm in ALGORITHMS:
        if algorithm in profile.verifies:
            return algorithm
    return MD5 if profile.etag_is_md5 else asked


def integrity_of(algorithm: str, *, profile: StoreProfile | None) -> str:
    """How a corrupted part of an upload with `algorithm` is caught: store, etag or none.

    Without a profile (never probed), what the client asked is taken as verified, as before
    probing existed; `manage.py check` warns until the store has been probed.
    """
    if not algorithm:
        return NONE
    if profile is None or algorithm in profile.verifies:
        return STORE
    if algorithm == MD5 and profile.etag_is_md5:
        return ETAG
    return NONE


def digest_of(algorithm: str, checksum: str) -> bytes:
    """The raw digest of a base64 `checksum` of `algorithm`; ValueError when it is not one."""
    try:
        raw = base64.b64decode(checksum, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != DIGEST_SIZES.get(algorithm, -1):
        raise ValueError(f"not a base64 {algorithm} digest")
    return raw


def md5_hex(checksum: str) -> str:
    """The hex form of a base64 MD5 checksum: what an ETag that is the MD5 reads."""
    return digest_of(MD5, checksum).hex()
