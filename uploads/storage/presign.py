"""The fast presigner: UploadPart URLs byte-identical to boto3's, for a fraction of the cost.

It relies on these botocore internals (pinned by the `boto3>=1.38,<2` range and checked at run
time, see below):
- `botocore.auth.S3SigV4QueryAuth` and its steps `_modify_request_before_signing`,
  `canonical_request`, `string_to_sign`, `signature`, `_inject_signature_to_request`, `_sign`;
- `request.context["timestamp"]`, which SigV4 reads instead of the clock when present;
- `client._request_signer._credentials`, the client's (refreshable) credentials.

The self-check: `FastPartSigner.build` signs part 1 again with these steps and compares the URL
with boto3's own `generate_presigned_url` for the same moment, byte for byte. Any difference
(a botocore change, an unusual endpoint, no credentials) gives None, and the storage then
signs every part through boto3. Only `uploads/storage/` uses this module.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import unquote

import botocore.auth
from botocore.auth import SIGV4_TIMESTAMP, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest

from .bucket import CHECKSUM_HEADER
from .types import PartToSign

if TYPE_CHECKING:
    from botocore.credentials import Credentials, ReadOnlyCredentials
    from mypy_boto3_s3 import S3Client

    class _SigV4QueryInternals(S3SigV4QueryAuth):
        """The private steps of botocore's signer used here, which botocore-stubs leaves out."""

        def _sign(self, key: bytes, msg: str, hex: bool = False) -> bytes | str: ...
        def _modify_request_before_signing(self, request: AWSRequest) -> None: ...
        def _inject_signature_to_request(self, request: AWSRequest, signature: str) -> None: ...

    def _botocore_now() -> datetime:
        """botocore.auth.get_current_datetime: the clock SigV4 reads (absent from the stubs)."""
        ...

else:
    _SigV4QueryInternals = S3SigV4QueryAuth

    def _botocore_now() -> datetime:
        return botocore.auth.get_current_datetime()


logger = logging.getLogger(__name__)

# Uploads whose signing template is kept (a few hundred bytes each): a batch-of-1 signer (the
# CLI, Uppy) pays boto3's full path once per upload instead of once per part.
SIGNER_CACHE_SIZE = 1024


class _BatchQueryAuth(_SigV4QueryInternals):
    """botocore's S3 query-string SigV4 signer, for a batch of URLs signed at one moment.

    Only the bookkeeping differs from `add_auth`: the timestamp is the batch's, and the signing
    key, which depends on the date alone, is derived once per batch (botocore's own derivation,
    memoised: `_sign` is a pure HMAC).
    """

    def __init__(
        self,
        credentials: ReadOnlyCredentials,
        service_name: str,
        region_name: str,
        *,
        expires: int,
        timestamp: str,
    ) -> None:
        super().__init__(credentials, service_name, region_name, expires=expires)
        self.timestamp = timestamp
        self._derived: dict[tuple[bytes, str], bytes | str] = {}

    def _sign(self, key: bytes, msg: str, hex: bool = False) -> bytes | str:
        if hex:
            return super()._sign(key, msg, hex=True)
        derived = self._derived.get((key, msg))
        if derived is None:
            derived = self._derived[(key, msg)] = super()._sign(key, msg)
        return derived

    def _request(self, url: str, headers: dict[str, str]) -> AWSRequest:
        request = AWSRequest(method="PUT", url=url, headers=headers)
        request.context["timestamp"] = self.timestamp
        return request

    def prepare(self, url: str, headers: dict[str, str]) -> str:
        """add_auth's first step: the URL with the auth parameters, not signed yet."""
        request = self._request(url, headers)
        self._modify_request_before_signing(request)
        return _url_of(request)

    def sign_prepared(self, url: str, headers: dict[str, str]) -> str:
        """add_auth's other steps: canonical request, string to sign, signature."""
        request = self._request(url, headers)
        canonical_request = self.canonical_request(request)
        signature = self.signature(self.string_to_sign(request, canonical_request), request)
        self._inject_signature_to_request(request, signature)
        return _url_of(request)


def _url_of(request: AWSRequest) -> str:
    if request.url is None:  # never: every request here is built from a URL
        raise ValueError("botocore left the request without a URL")
    return request.url


@dataclass(frozen=True)
class FastPartSigner:
    """Presigns the UploadPart URLs of one upload with botocore's signer and nothing else.

    boto3's `generate_presigned_url` spends most of its ~200 us per URL on work whose result is
    the same for every part of an upload: emitting events, validating and serialising the
    parameters, resolving the endpoint through the rules engine, re-encoding the query string.
    Here that work is done once: boto3 presigns part 1 of the upload (the template: its URL
    holds the endpoint, path, operation query and signing scope exactly as boto3 builds them),
    botocore's `_modify_request_before_signing` builds the query once per batch and header set,
    and each part then only goes through botocore's canonical request, string to sign and
    signature. No SigV4 step is written here. `build` signs the template again this way and
    gives up (None: boto3 signs every part) unless the result is the template byte for byte.
    """

    client: S3Client
    base_url: str  # scheme://host/path, as boto3 resolved and encoded it
    operation_query: str  # the encoded operation parameters, with partNumber=1
    host: str
    region: str
    service: str

    @classmethod
    def build(cls, client: S3Client, *, template_url: str) -> FastPartSigner | None:
        base_url, _, query = template_url.partition("?")
        pairs = query.split("&")
        params = dict(pair.partition("=")[::2] for pair in pairs)
        scope = unquote(params.get("X-Amz-Credential", "")).split("/")
        operation = [pair for pair in pairs if not pair.startswith("X-Amz-")]
        credentials = _frozen_credentials(client)
        if (
            params.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256"
            or len(scope) != 5
            or "partNumber=1" not in operation
            or credentials is None
        ):
            return None
        host_of = S3SigV4QueryAuth(credentials, scope[3], scope[2]).headers_to_sign
        signer = cls(
            client=client,
            base_url=base_url,
            operation_query="&".join(operation),
            host=host_of(AWSRequest(method="PUT", url=template_url))["host"],
            region=scope[2],
            service=scope[3],
        )
        again = signer.sign(
            [PartToSign(1)],
            expires_in=int(params.get("X-Amz-Expires", "0")),
            timestamp=params.get("X-Amz-Date", ""),
        )
        if again != [template_url]:
            logger.warning("fast presigning differs from boto3 here; boto3 signs every part")
            return None
        return signer

    def sign(
        self,
        parts: Sequence[PartToSign],
        *,
        expires_in: int,
        timestamp: str | None = None,
        checksum_header: str = CHECKSUM_HEADER,
    ) -> list[str] | None:
        """The parts' URLs signed at `timestamp` (now), each part's checksum signed as the
        header `checksum_header`; None when there are no credentials."""
        credentials = _frozen_credentials(self.client)  # per batch: refreshable ones refresh
        if credentials is None:
            return None
        if timestamp is None:
            timestamp = _botocore_now().strftime(SIGV4_TIMESTAMP)
        auth = _BatchQueryAuth(
            credentials, self.service, self.region, expires=expires_in, timestamp=timestamp
        )
        unsigned = f"{self.base_url}?{self.operation_query}"
        around: dict[tuple[bool, bool], tuple[str, str]] = {}
        urls = []
        for part in parts:
            headers = {"host": self.host}
            if part.size is not None:
                headers["Content-Length"] = str(part.size)
            if part.checksum:
                headers[checksum_header] = part.checksum
            shape = (part.size is not None, bool(part.checksum))
            if shape not in around:
                # The prepared query differs between parts only by the part number.
                around[shape] = _around_part_number(auth.prepare(unsigned, headers))
            head, tail = around[shape]
            urls.append(auth.sign_prepared(f"{head}{part.number}{tail}", headers))
        return urls


def _around_part_number(url: str) -> tuple[str, str]:
    """The URL before and after the 1 of "partNumber=1"."""
    base, _, query = url.partition("?")
    pairs = query.split("&")
    at = pairs.index("partNumber=1")
    head = "&".join([*pairs[:at], "partNumber="])
    tail = "".join(f"&{pair}" for pair in pairs[at + 1 :])
    return f"{base}?{head}", tail


def _frozen_credentials(client: S3Client) -> ReadOnlyCredentials | None:
    """The client's credentials as they are now (None when it signs nothing)."""
    credentials: Credentials | None = getattr(
        getattr(client, "_request_signer", None), "_credentials", None
    )
    return credentials.get_frozen_credentials() if credentials is not None else None
