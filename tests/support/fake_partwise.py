"""FakePartwise: the Partwise REST API in memory, and S3's answers to part PUTs, for the Python
client's unit tests.

It speaks the API's JSON, not Python calls: it replaces `PartwiseApi.request`, so the client's
own api.py builds every body and reads every answer. Each (operation, status, request body,
answer) is kept in `exchanges`, and tests/unit/test_client_vectors.py checks them against the
OpenAPI schema, so the fake cannot drift from the server it stands for. Sessions and leases
follow the contract (README, "Sessions"): a part signed by a session that signed or reported
within `session_idle` seconds is not signed for another one.

Several clients can share one fake: `connect()` answers another client (its own stop event,
as another process would have) over the same state.

Part digests follow the server (uploads/integrity.py): each upload's `checksum_algorithm` is
the fake's choice (`choose_algorithm(asked)`, by default what the client asked); a create
whose asked algorithm is not the upload's signs nothing; signed checksums must have the shape
of the upload's digest, each PUT must carry the signed header (x-amz-checksum-sha256,
x-amz-checksum-crc32c or Content-MD5) holding the digest of its bytes, and each reported
checksum must be the one S3 took. `mismatches` makes completions answer 409 part_mismatch.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import google_crc32c

from partwise_client.api import PartwiseApi, error_from
from partwise_client.digests import ALGORITHMS, part_digest
from partwise_client.retry import Backoff

SERVER = "http://partwise.test"
MiB = 1024 * 1024
NO_WAIT = Backoff.none(retries=2)
# The header each part digest is signed into, as uploads/storage/bucket.py signs it.
CHECKSUM_HEADERS = {
    "SHA256": "x-amz-checksum-sha256",
    "CRC32C": "x-amz-checksum-crc32c",
    "MD5": "Content-MD5",
}
DIGEST_LENGTHS = {"SHA256": 44, "CRC32C": 8, "MD5": 24}  # base64 characters
S3_BODIES = {
    400: ("InvalidArgument", "Part number must be an integer between 1 and 10000"),
    403: ("AccessDenied", "Request has expired"),
    404: ("NoSuchUpload", "The specified multipart upload does not exist."),
    500: ("InternalError", "We encountered an internal error. Please try again."),
    503: ("SlowDown", "Please reduce your request rate."),
}


def s3_error(status: int) -> str:
    """S3's XML error body for `status` (plain text where S3 answers none)."""
    if status not in S3_BODIES:
        return f"HTTP {status}"
    code, message = S3_BODIES[status]
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    )


def iso(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).isoformat().replace("+00:00", "Z")


class FakeHttpResponse:
    """What `requests` answers, as far as api.error_from and the part sender read it."""

    def __init__(
        self,
        status: int = 200,
        body: Any = None,
        text: str = "",
        etag: str = "",
        data: bytes | None = None,
    ):
        self.status_code, self._body, self.text = status, body, text
        self.ok = status < 400
        self.url = SERVER
        self.headers = {"ETag": etag} if etag else {}
        self.content = data if data is not None else b"x" if body is not None or text else b""
        self.closed = False

    def iter_content(self, chunk_size: int = 1):
        for start in range(0, len(self.content), chunk_size):
            yield self.content[start : start + chunk_size]

    def close(self) -> None:
        self.closed = True

    def json(self) -> Any:
        if self._body is None:
            raise ValueError("no JSON")
        return self._body


class Refused(Exception):
    def __init__(self, http_status: int, code: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.body = http_status, {"code": code, "detail": detail, **extra}


@dataclass
class State:
    """Everything the fake server holds, shared by every connected client."""

    part_size: int = MiB
    url_lifetime: float = 900.0  # seconds, like UPLOADS_URL_EXPIRY
    session_idle: float = 30.0
    sign_batch_max: int = 1000
    report_batch_max: int = 1000
    offers_limits: bool = True  # False: a server from before limits, sessions, start-or-resume
    # The server's choice of a new upload's part digest from the one asked ("" for none), as
    # uploads/integrity.py chooses for its store; None: what was asked.
    choose_algorithm: Callable[[str], str] | None = None
    # What catches a corrupted part of a new upload ("store", "etag", "none"); "": the store
    # verifies the upload's digest ("none" when it has none).
    integrity: str = ""
    # Each completion takes the first list, and answers 409 part_mismatch for those parts
    # (S3 holds other bytes than their MD5 says), which must then be sent again.
    mismatches: list[list[int]] = field(default_factory=list)
    uploads: dict[str, dict[str, Any]] = field(default_factory=dict)
    sessions: dict[str, float] = field(default_factory=dict)  # session -> last sign/report
    leases: dict[tuple[str, int], str] = field(default_factory=dict)  # (upload, part) -> session
    tokens: dict[str, str] = field(default_factory=dict)  # token -> password of "alice"
    now: Callable[[], float] = time.monotonic
    lock: threading.RLock = field(default_factory=threading.RLock)
    # what happened, for the tests
    puts: list[int] = field(default_factory=list)
    put_sessions: list[tuple[str, int]] = field(default_factory=list)
    signed: list[int] = field(default_factory=list)
    sign_calls: list[list[int]] = field(default_factory=list)
    report_calls: list[tuple[list[int], bool]] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    asked: list[str] = field(default_factory=list)  # each create's checksum_algorithm
    put_headers: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    events: list[tuple[str, Any]] = field(default_factory=list)
    calls: list[tuple[str, str]] = field(default_factory=list)  # (method, operation)
    exchanges: list[dict[str, Any]] = field(default_factory=list)
    put_answers: list[int | tuple[int, str]] = field(default_factory=list)
    put_delay: float = 0.0
    put_gate: threading.Event | None = None  # PUTs wait for it when set
    expired_puts: int = 0
    hooks: dict[str, list[Callable[..., None]]] = field(default_factory=dict)
    # completed files: the bytes S3 serves at an upload's download URL
    objects: dict[str, bytes] = field(default_factory=dict)
    downloads: list[str] = field(default_factory=list)  # upload ids whose URL was fetched


class FakeS3Session:
    """The `requests.Session` the client sends parts with: answers PUTs to the fake's URLs."""

    def __init__(self, state: State) -> None:
        self.state = state

    def request(self, method, url, data=None, headers=None, timeout=None, stream=False):
        state = self.state
        if method == "GET":
            return self._get(url)
        # Read in blocks, as urllib3 does, so the fake holds no whole part either.
        sha256, md5, crc32c = hashlib.sha256(), hashlib.md5(), google_crc32c.Checksum()  # noqa: S324
        for block in iter(lambda: data.read(64 * 1024), b"") if data else ():
            sha256.update(block)
            md5.update(block)
            crc32c.update(bytes(block))
        digests = {"SHA256": sha256.digest(), "CRC32C": crc32c.digest(), "MD5": md5.digest()}
        if state.put_gate is not None:
            state.put_gate.wait(timeout=30)
        time.sleep(state.put_delay)
        query = parse_qs(urlsplit(url).query)
        upload_id, number = urlsplit(url).path.strip("/").split("/")
        with state.lock:
            answer = state.put_answers.pop(0) if state.put_answers else 200
            status, body = answer if isinstance(answer, tuple) else (answer, s3_error(answer))
            if status == 200 and time.time() > float(query["expires"][0]):
                state.expired_puts += 1
                status, body = 403, s3_error(403)
            if status == 200 and state.uploads[upload_id]["status"] != "uploading":
                status, body = 404, s3_error(404)
        if status != 200:
            return FakeHttpResponse(status, text=body)
        # The signed header of the upload's digest, holding the digest of these bytes, and no
        # header of another digest: what a store verifying it would take.
        algorithm = state.uploads[upload_id]["checksum_algorithm"]
        sent = {name for name in CHECKSUM_HEADERS.values() if name in (headers or {})}
        checksum = ""
        if algorithm:
            name = CHECKSUM_HEADERS[algorithm]
            assert sent == {name}, f"part {number}: {sorted(sent)} sent, {name} signed"
            checksum = headers[name]
            assert checksum == base64.b64encode(digests[algorithm]).decode(), (
                f"part {number}: {name} is not the {algorithm} of its bytes"
            )
        else:
            assert not sent, f"part {number}: {sorted(sent)} sent, no digest signed"
        with state.lock:
            state.puts.append(int(number))
            state.put_sessions.append((query.get("session", [""])[0], int(number)))
            state.put_headers.append((int(number), dict(headers or {})))
            state.uploads[upload_id]["stored"][int(number)] = {
                "etag": f'"{md5.hexdigest()}"',
                "checksum": checksum,
            }
        return FakeHttpResponse(etag=f'"{md5.hexdigest()}"')

    def _get(self, url):
        """A presigned GET of a completed file (what `download_location` handed out)."""
        upload_id = urlsplit(url).path.strip("/").split("/")[1]
        with self.state.lock:
            self.state.downloads.append(upload_id)
            data = self.state.objects.get(upload_id)
        if data is None:
            return FakeHttpResponse(404, text=s3_error(404))
        return FakeHttpResponse(data=data)


class FakePartwise(PartwiseApi):
    """One client's connection to the fake server."""

    def __init__(self, part_size: int = MiB, *, state: State | None = None, **options: Any):
        self.state = state or State(part_size=part_size, **options)
        super().__init__(SERVER, "t", session=FakeS3Session(self.state), backoff=NO_WAIT)
        self.sleep = lambda seconds: None

    def connect(self) -> FakePartwise:
        """Another client (another process, another machine) of the same server."""
        return FakePartwise(state=self.state)

    def __getattr__(self, name: str) -> Any:  # the state's records read as the fake's own
        if name == "state":
            raise AttributeError(name)
        return getattr(self.state, name)

    def __setattr__(self, name: str, value: Any) -> None:  # and are set as the fake's own
        if name != "state" and name in State.__dataclass_fields__:
            setattr(self.state, name, value)
        else:
            super().__setattr__(name, value)

    # --- seeding ---------------------------------------------------------------------------
    def add(
        self,
        upload_id,
        size,
        parts=None,
        fingerprint="",
        filename="f.bin",
        part_size=None,
        checksum_algorithm="SHA256",
    ):
        """An upload that exists already; `parts` ({number, etag, checksum, size}) S3 holds."""
        state = self.state
        part_size = part_size or state.part_size
        count = max(1, -(-size // part_size))
        created = time.time()
        integrity = state.integrity or ("store" if checksum_algorithm else "none")
        state.uploads[upload_id] = {
            "id": upload_id, "status": "uploading", "filename": filename, "size": size,
            "content_type": "", "key": f"uploads/{upload_id}/{filename}",
            "part_size": part_size, "part_count": count,
            "checksum_algorithm": checksum_algorithm,
            "fingerprint": fingerprint, "created_at": iso(created), "updated_at": iso(created),
            "expires_at": iso(created + 86400), "completed_at": None, "etag": "",
            "checksum": "", "failure_reason": "",
            "integrity": integrity, "unverified": integrity == "none",
            "stored": {p["number"]: {"etag": p["etag"], "checksum": p.get("checksum", "")}
                       for p in parts or []},
            "recorded": set(), "client_token": None, "order": len(state.uploads),
        }  # fmt: skip
        return state.uploads[upload_id]

    def add_completed(self, upload_id: str, data: bytes, *, filename="f.bin", checksum=True):
        """A completed upload of `data` whose object S3 serves (with S3's composite SHA-256)."""
        upload = self.add(upload_id, len(data), filename=filename)
        self.store(upload_id, data, range(1, upload["part_count"] + 1))
        digests = b"".join(
            base64.b64decode(part["checksum"]) for _, part in sorted(upload["stored"].items())
        )
        composite = base64.b64encode(hashlib.sha256(digests).digest()).decode()
        upload["status"], upload["completed_at"] = "completed", iso(time.time())
        upload["etag"] = f"{hashlib.md5(data).hexdigest()}-{upload['part_count']}"  # noqa: S324
        upload["checksum"] = f"{composite}-{upload['part_count']}" if checksum else ""
        if not checksum:
            upload["checksum_algorithm"] = ""
            upload["integrity"], upload["unverified"] = "none", True
            for part in upload["stored"].values():
                part["checksum"] = ""
        self.state.objects[upload_id] = data
        return upload

    def lease(self, upload_id: str, numbers, *, session: str, idle_for: float = 0.0) -> None:
        """Another session signed `numbers`, and was last heard of `idle_for` seconds ago."""
        with self.state.lock:
            self.state.sessions[session] = self.state.now() - idle_for
            for number in numbers:
                self.state.leases[(upload_id, number)] = session

    def store(self, upload_id: str, data: bytes, numbers, *, session: str = "") -> None:
        """Parts of `data` S3 took from another client (and that client reported)."""
        state = self.state
        with state.lock:
            upload = state.uploads[upload_id]
            for number in numbers:
                chunk = data[(number - 1) * upload["part_size"] : number * upload["part_size"]]
                algorithm = upload["checksum_algorithm"]
                upload["stored"][number] = {
                    "etag": f'"{hashlib.md5(chunk).hexdigest()}"',  # noqa: S324
                    "checksum": part_digest(algorithm, chunk) if algorithm else "",
                }
                upload["recorded"].add(number)
            if session:
                state.sessions[session] = state.now()

    def on(self, operation: str, hook: Callable[..., None]) -> None:
        """Call `hook(fake, body)` after each answer to `operation` (e.g. "detail")."""
        self.state.hooks.setdefault(operation, []).append(hook)

    # --- the HTTP layer --------------------------------------------------------------------
    def request(self, method: str, path: str, *, best_effort: bool = False, **kwargs: Any) -> Any:
        if self.stop.is_set() and not best_effort:
            raise KeyboardInterrupt
        path, _, query = path.partition("?")
        params = dict(kwargs.get("params") or {})
        params.update({k: v[0] for k, v in parse_qs(query).items()})
        body = kwargs.get("json")
        operation, upload_id = self._route(method, path.strip("/").split("/"))
        if_match = (kwargs.get("headers") or {}).get("If-Match")
        if operation == "abort" and if_match is not None:
            operation, params["if_match"] = "delete", if_match
        state = self.state
        with state.lock:
            state.calls.append((method, operation))
            if operation == "report":
                state.report_calls.append(([p["number"] for p in body["parts"]], best_effort))
            try:
                status, answer = getattr(self, f"_{operation}")(upload_id, body, params)
            except Refused as refused:
                status, answer = refused.status, refused.body
            state.exchanges.append(
                {"method": method, "operation": operation, "status": status,
                 "request": body, "answer": None if status == 302 else answer,
                 "best_effort": best_effort}
            )  # fmt: skip
        for hook in state.hooks.get(operation, []):
            hook(self, answer)
        if status >= 400:
            raise error_from(FakeHttpResponse(status, answer))  # type: ignore[arg-type]
        return answer  # a 302's answer is its Location, as PartwiseApi.request answers it

    @staticmethod
    def _route(method: str, segments: list[str]) -> tuple[str, str]:
        if segments == ["auth", "token"]:
            return "login", ""
        if segments == ["uploads"]:
            return ("create" if method == "POST" else "list"), ""
        upload_id = segments[1]
        if len(segments) == 2:
            return ("abort" if method == "DELETE" else "detail"), upload_id
        operations = {"sign": "sign", "parts": "report", "complete": "complete"}
        return {**operations, "download": "download"}[segments[2]], upload_id

    # --- the server's rules ----------------------------------------------------------------
    def _upload(self, upload_id: str) -> dict[str, Any]:
        if upload_id not in self.state.uploads:
            raise Refused(404, "not_found", "No such upload.")
        return self.state.uploads[upload_id]

    def _active(self, session: str) -> bool:
        seen = self.state.sessions.get(session)
        return seen is not None and self.state.now() - seen < self.state.session_idle

    def _touch(self, session: str | None) -> None:
        if session:
            self.state.sessions[session] = self.state.now()

    def _others(self, upload: dict[str, Any], session: str | None) -> int:
        holders = {s for (u, _), s in self.state.leases.items() if u == upload["id"]}
        return sum(1 for s in holders if s != session and self._active(s))

    def _json(self, upload: dict[str, Any], *, parts: bool = True) -> dict[str, Any]:
        stored = upload["stored"]
        shown = {k: v for k, v in upload.items()
                 if k not in {"stored", "recorded", "client_token", "order"}}  # fmt: skip
        sizes = {n: self._size(upload, n) for n in stored}
        shown["bytes_uploaded"] = sum(sizes.values())
        shown["parts_uploaded"] = len(stored)
        if self.state.offers_limits:
            shown["limits"] = {
                "sign_batch_max": self.state.sign_batch_max,
                "report_batch_max": self.state.report_batch_max,
                "url_expires_in": int(self.state.url_lifetime),
                "session_idle": int(self.state.session_idle),
            }
        if parts:
            shown["parts"] = [
                {"number": n, "size": sizes[n], "etag": p["etag"], "checksum": p["checksum"]}
                for n, p in sorted(stored.items())
            ]
        return shown

    @staticmethod
    def _size(upload: dict[str, Any], number: int) -> int:
        start = (number - 1) * upload["part_size"]
        return max(0, min(upload["part_size"], upload["size"] - start))

    def _create(self, _: str, body: dict[str, Any], params: dict[str, Any]):
        state = self.state
        session = body.get("session") if state.offers_limits else None
        first_batch = (body.get("sign") or {}).get("parts", [])
        if state.offers_limits and len(first_batch) > state.sign_batch_max:
            raise Refused(400, "invalid", "Too many parts.", errors={"parts": ["Too many parts."]})
        asked = (body.get("checksum_algorithm") or "").upper()
        if asked and asked not in ALGORITHMS:
            raise Refused(400, "invalid", "Unknown algorithm.", errors={"checksum_algorithm": []})
        state.asked.append(asked)
        self._touch(session)
        for upload in state.uploads.values():
            if body.get("client_token") and upload["client_token"] == body["client_token"]:
                return 200, self._json(upload)
        found = None
        if state.offers_limits and body.get("resume"):
            same = [u for u in state.uploads.values() if u["status"] == "uploading"
                    and (u["fingerprint"], u["size"], u["filename"])
                    == (body["fingerprint"], body["size"], body["filename"])]  # fmt: skip
            found = max(same, key=lambda u: u["order"], default=None)
        upload = found
        if upload is None:
            upload_id = f"new-{len(state.uploads)}"
            upload = self.add(
                upload_id,
                body["size"],
                fingerprint=body.get("fingerprint", "x"),
                filename=body["filename"],
                part_size=body.get("part_size"),
                checksum_algorithm=state.choose_algorithm(asked) if state.choose_algorithm
                else asked,
            )  # fmt: skip
            upload["client_token"] = body.get("client_token")
            state.created.append(upload_id)
        answer = self._json(upload)
        if state.offers_limits and "resume" in body:
            answer["resumed"] = found is not None
        # Parts hashed with another digest than the upload's are not signed: the client hashes
        # them again and signs them with sign calls.
        if state.offers_limits and body.get("sign") and upload["checksum_algorithm"] == asked:
            wanted = [p for p in body["sign"]["parts"] if p["number"] not in upload["stored"]]
            answer["signed"], answer["leased"] = self._sign_parts(upload, wanted, session)
        if state.offers_limits and ("resume" in body or body.get("sign")):
            answer["other_sessions"] = self._others(upload, session)
        return (200 if found is not None else 201), answer

    def _list(self, _: str, body: Any, params: dict[str, Any]):
        found = [self._json(u, parts=False) for u in sorted(
            self.state.uploads.values(), key=lambda u: -u["order"])
            if (not params.get("fingerprint") or u["fingerprint"] == params["fingerprint"])
            and (not params.get("status") or u["status"] == params["status"])]  # fmt: skip
        return 200, {"next": None, "previous": None, "results": found}

    def _detail(self, upload_id: str, body: Any, params: dict[str, Any]):
        upload = self._upload(upload_id)
        answer = self._json(upload)
        if self.state.offers_limits:
            answer["other_sessions"] = self._others(upload, params.get("session"))
        return 200, answer

    @staticmethod
    def _check_checksums(upload, parts) -> None:
        """Each checksum has the shape of the upload's digest (base64, its length)."""
        algorithm = upload["checksum_algorithm"]
        for part in parts:
            checksum = part.get("checksum") or ""
            if not algorithm:
                continue
            try:
                raw = base64.b64decode(checksum, validate=True)
            except ValueError:
                raw = b""
            if len(checksum) != DIGEST_LENGTHS[algorithm] or not raw:
                raise Refused(
                    400,
                    "invalid",
                    f"A checksum must be a base64-encoded {algorithm} digest.",
                    errors={"checksum": [f"not a {algorithm} digest"]},
                )

    def _sign_parts(self, upload, parts, session):
        state = self.state
        self._check_checksums(upload, parts)
        algorithm = upload["checksum_algorithm"]
        signed, leased = [], []
        expires = time.time() + state.url_lifetime
        for part in parts:
            number = part["number"]
            holder = state.leases.get((upload["id"], number))
            if session and holder and holder != session and self._active(holder):
                leased.append(number)
                continue
            if session:
                state.leases[(upload["id"], number)] = session
            state.signed.append(number)
            signed.append({
                "number": number, "method": "PUT",
                "url": f"https://s3.test/{upload['id']}/{number}?expires={expires}"
                       f"&session={session or ''}",
                "headers": {CHECKSUM_HEADERS[algorithm]: part["checksum"]} if algorithm else {},
                "size": self._size(upload, number), "expires_at": iso(expires),
            })  # fmt: skip
        return signed, leased

    def _sign(self, upload_id: str, body: dict[str, Any], params: dict[str, Any]):
        upload = self._upload(upload_id)
        if upload["status"] != "uploading":
            raise Refused(409, "upload_conflict", "Not uploading.", status=upload["status"])
        if len(body["parts"]) > self.state.sign_batch_max:
            raise Refused(400, "invalid", "Too many parts.", errors={"parts": ["Too many parts."]})
        session = body.get("session") if self.state.offers_limits else None
        self._touch(session)
        signed, leased = self._sign_parts(upload, body["parts"], session)
        self.state.sign_calls.append([p["number"] for p in body["parts"]])
        answer: dict[str, Any] = {"parts": signed}
        if self.state.offers_limits:
            answer["leased"], answer["other_sessions"] = leased, self._others(upload, session)
        return 200, answer

    def _report(self, upload_id: str, body: dict[str, Any], params: dict[str, Any]):
        state = self.state
        upload = self._upload(upload_id)
        if len(body["parts"]) > state.report_batch_max:
            raise Refused(400, "invalid", "Too many parts.", errors={"parts": ["Too many parts."]})
        session = body.get("session") if state.offers_limits else None
        self._touch(session)
        self._check_checksums(upload, body["parts"])
        for part in body["parts"]:
            stored = upload["stored"].get(part["number"])
            if stored is not None and (part.get("checksum") or "") != stored["checksum"]:
                raise Refused(409, "part_conflict", "The part does not agree with what was stored.")
        numbers = [p["number"] for p in body["parts"]]
        upload["recorded"].update(numbers)
        state.events.append(("report", numbers))
        answer = self._json(upload, parts=False)
        if state.offers_limits:
            answer["other_sessions"] = self._others(upload, session)
        return 200, answer

    def _complete(self, upload_id: str, body: Any, params: dict[str, Any]):
        upload = self._upload(upload_id)
        if upload["status"] == "completed":
            return 200, self._json(upload)
        missing = [n for n in range(1, upload["part_count"] + 1) if n not in upload["stored"]]
        if missing:
            raise Refused(409, "part_missing", "Parts are missing.", missing_parts=missing)
        if self.state.mismatches:
            corrupted = self.state.mismatches.pop(0)
            for number in corrupted:  # as the server forgets their ETags: to be sent again
                upload["stored"].pop(number, None)
                upload["recorded"].discard(number)
            raise Refused(
                409,
                "part_mismatch",
                "S3 holds other bytes for these parts than their MD5 says: send them again.",
                parts=corrupted,
            )
        upload["status"], upload["completed_at"] = "completed", iso(time.time())
        self.state.completed.append(upload_id)
        self.state.events.append(("complete", upload_id))
        return 200, self._json(upload)

    def _abort(self, upload_id: str, body: Any, params: dict[str, Any]):
        upload = self._upload(upload_id)
        upload["status"] = "aborted"
        return 200, self._json(upload, parts=False)

    def _download(self, upload_id: str, body: Any, params: dict[str, Any]):
        upload = self._upload(upload_id)
        if upload["status"] != "completed":
            raise Refused(409, "upload_conflict", "Not completed.", status=upload["status"])
        return 302, f"https://s3.test/objects/{upload_id}?X-Amz-Expires=300"

    def _delete(self, upload_id: str, body: Any, params: dict[str, Any]):
        upload = self._upload(upload_id)
        etag = f'"{upload["etag"]}"' if upload["etag"] else ""
        if not etag or params["if_match"] != etag:
            raise Refused(412, "precondition_failed", "Wrong etag.", etag=etag)
        if upload["status"] not in ("completed", "deleted"):
            raise Refused(409, "upload_conflict", "Not completed.", status=upload["status"])
        upload["status"] = "deleted"
        self.state.objects.pop(upload_id, None)
        return 200, self._json(upload, parts=False)

    def _login(self, _: str, body: dict[str, Any], params: dict[str, Any]):
        if body.get("password") != "right":
            raise Refused(401, "invalid_credentials", "Wrong username or password.")
        now = iso(time.time())
        return 201, {
            "id": "3f2504e0-4f89-11d3-9a0c-0305e82c3301", "name": body.get("name", ""),
            "prefix": "pw_new", "created_at": now, "last_used_at": None, "current": False,
            "token": "pw_new_secret",
        }  # fmt: skip
