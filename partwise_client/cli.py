"""`partwise`: upload, resume, list and abort uploads on a Partwise server.

    partwise upload FILE|DIR... [--server URL] [--token T] [--again]
    partwise resume FILE
    partwise list [--status S]
    partwise abort ID
    partwise download ID [-o PATH]     (verifies the size, and the SHA-256 when there is one)
    partwise delete ID                 (a completed upload's file; the record stays, `deleted`)
    partwise login USERNAME            (prints a new token; password from a prompt)

The server and token also come from PARTWISE_SERVER and PARTWISE_TOKEN. Exit codes are listed
in EXIT_CODES; Ctrl+C stops at once and loses nothing but the parts in flight (`resume`
continues, from this machine or any other). A file already uploaded (same fingerprint and
bytes) is not uploaded again unless --again; a second `partwise upload` of a file being
uploaded elsewhere joins that upload (the server hands each its own parts). A directory
uploads the files directly in it (not its subdirectories, which are named and skipped).
Sizes are in MiB everywhere (bar, summary, list).
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from .api import PartwiseApi
from .downloading import download
from .errors import AuthError, FileMismatch, NotFound, NothingToResume, PartwiseError
from .planning import MiB
from .retry import Backoff
from .transfer import Uploader

OK = 0
FAILED = 1  # the server, S3 or the network said no (details on stderr)
USAGE = 2  # bad arguments, a missing file, no server or token
AUTH = 3  # the token is missing, wrong or revoked
NOT_FOUND = 4  # no such upload, or nothing to resume
MISMATCH = 5  # the file is not the one the unfinished upload holds, or a download failed its check
INTERRUPTED = 130  # Ctrl+C (128 + SIGINT), as shells report it
EXIT_CODES = {
    OK: "done",
    FAILED: "the upload failed (server, storage or network)",
    USAGE: "usage error",
    AUTH: "not authenticated or not allowed",
    NOT_FOUND: "upload not found / nothing to resume",
    MISMATCH: "the file does not match the upload (unfinished upload, or a download's check)",
    INTERRUPTED: "interrupted; run `partwise resume FILE` to continue",
}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([kKmMgG]?)$")
# list, abort and login answer a person at a prompt: two quick retries, then say so (a server
# that is down is refused at once, and CONNECT_TIMEOUT bounds one that does not answer).
QUICK = Backoff(delays=(0.5, 1.0))
BAR_FORMAT = (
    "{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} MiB [{elapsed}<{remaining}, {rate_fmt}]"
)


class UsageError(Exception):
    pass


def byte_size(text: str) -> int:
    """ "8M", "512k", "1.5G" or a plain number of bytes."""
    match = _SIZE.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 8M, 512k)")
    factor = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[match.group(2).lower()]
    return int(float(match.group(1)) * factor)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--server",
        default=os.environ.get("PARTWISE_SERVER", ""),
        help="server URL, e.g. https://files.example (default: $PARTWISE_SERVER)",
    )
    common.add_argument(
        "--token",
        default=os.environ.get("PARTWISE_TOKEN", ""),
        help="API token (default: $PARTWISE_TOKEN)",
    )
    sending = argparse.ArgumentParser(add_help=False)
    sending.add_argument("--concurrency", type=int, default=4, help="parts in flight (4)")
    sending.add_argument("--limit-rate", type=byte_size, help="at most this many bytes/s, e.g. 8M")
    sending.add_argument("--quiet", "-q", action="store_true", help="no progress bar")

    parser = argparse.ArgumentParser(
        prog="partwise",
        description="Resumable, parallel uploads to a Partwise server.",
        epilog="exit codes: " + "; ".join(f"{code} {text}" for code, text in EXIT_CODES.items()),
    )
    commands = parser.add_subparsers(dest="command", required=True)
    upload = commands.add_parser(
        "upload", parents=[common, sending], help="upload files (resuming unfinished ones)"
    )
    upload.add_argument("files", nargs="+", type=Path, metavar="FILE|DIR")
    upload.add_argument("--part-size", type=byte_size, help="preferred part size (server's)")
    upload.add_argument(
        "--no-resume", action="store_true", help="always start new uploads, never resume"
    )
    upload.add_argument(
        "--again",
        action="store_true",
        help="upload even a file that is already uploaded (default: say so and skip it)",
    )
    resume = commands.add_parser(
        "resume", parents=[common, sending], help="continue the unfinished upload of a file"
    )
    resume.add_argument("file", type=Path, metavar="FILE")
    listing = commands.add_parser("list", parents=[common], help="your uploads, newest first")
    listing.add_argument("--status", default="", help="only uploads in this status")
    abort = commands.add_parser("abort", parents=[common], help="abort an unfinished upload")
    abort.add_argument("upload_id", metavar="ID")
    fetch = commands.add_parser(
        "download", parents=[common], help="download a completed upload's file (verified)"
    )
    fetch.add_argument("upload_id", metavar="ID")
    fetch.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="PATH",
        help="file or directory to write to (default: the upload's name, here)",
    )
    fetch.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    delete = commands.add_parser(
        "delete", parents=[common], help="delete a completed upload's file (the record stays)"
    )
    delete.add_argument("upload_id", metavar="ID")
    login = commands.add_parser("login", parents=[common], help="print a new API token")
    login.add_argument("username")
    login.add_argument("--name", default="partwise-cli", help="the token's name")
    return parser


def _api(
    args: argparse.Namespace, *, token_needed: bool = True, backoff: Backoff | None = None
) -> PartwiseApi:
    if not args.server:
        raise UsageError("no server: pass --server URL or set PARTWISE_SERVER")
    if token_needed and not args.token:
        raise UsageError("no token: pass --token T or set PARTWISE_TOKEN (see `partwise login`)")
    return PartwiseApi(args.server, args.token or None, backoff=backoff)


def mib(size: int | None) -> str:
    """A size in MiB, the one unit of the bar, the summary and the list."""
    if size is None:
        return "? MiB"
    value = size / MiB
    return f"{value:,.1f} MiB" if value >= 0.1 or size == 0 else f"{value:.3f} MiB"


def files_of(paths: Sequence[Path]) -> list[Path]:
    """The files to upload: each FILE, and the files directly inside each DIR (sorted); a
    subdirectory is named on stderr and skipped, so nothing is left out silently."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            inside = sorted(path.iterdir())
            for child in inside:
                if child.is_dir():
                    note = f"partwise: skipping {child}/ (directories are not recursed into)"
                    print(note, file=sys.stderr)
            found.extend(child for child in inside if child.is_file())
        elif path.is_file():
            found.append(path)
        else:
            raise UsageError(f"{path}: no such file")
    return found


class Run:
    """The file being worked on, for the message on Ctrl+C."""

    current: Path | None = None


def _send(args: argparse.Namespace, api: PartwiseApi, path: Path, resume: str) -> None:
    Run.current = path
    total = path.stat().st_size
    with tqdm(
        total=total / MiB,
        unit="MiB",
        bar_format=BAR_FORMAT,
        desc=path.name[:30],
        disable=args.quiet,
        dynamic_ncols=True,
    ) as bar:

        def progress(done: int, _total: int) -> None:
            bar.update(done / MiB - bar.n)  # tqdm is thread-safe; callers hold the progress lock

        uploader = Uploader(
            api,
            concurrency=args.concurrency,
            part_size=getattr(args, "part_size", None),
            progress=progress,
            limit_rate=args.limit_rate,
            on_event=lambda message: tqdm.write(message, file=sys.stderr),
            again=getattr(args, "again", True),
        )
        transfer = uploader.upload(path, resume=resume)
    upload = transfer.upload
    if transfer.already_uploaded:
        print(
            f"{path}: already uploaded as {upload['id']} ({mib(upload['size'])}); nothing sent "
            "(--again uploads it once more)"
        )
    else:
        print(
            f"{path}: uploaded as {upload['id']} ({mib(upload['size'])}, "
            f"{len(transfer.parts_sent)} parts sent, {transfer.parts_skipped} already there)"
        )
    Run.current = None


def _download(args: argparse.Namespace) -> None:
    api = _api(args, backoff=QUICK)
    with tqdm(
        total=0, unit="MiB", bar_format=BAR_FORMAT, desc=args.upload_id[:30], disable=args.quiet
    ) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total / MiB
            bar.update(done / MiB - bar.n)

        done = download(api, args.upload_id, args.output, progress=progress)
    checked = "size and SHA-256 checked" if done.checksum_checked else "size checked"
    print(f"{done.path}: downloaded {args.upload_id} ({mib(done.size)}, {checked})")


def _delete(args: argparse.Namespace) -> None:
    api = _api(args, backoff=QUICK)
    upload = api.get_upload(args.upload_id)
    if upload["status"] not in ("completed", "deleted") or not upload.get("etag"):
        raise PartwiseError(
            f"{upload['id']} is {upload['status']}, not completed: nothing to delete "
            f"(`partwise abort {upload['id']}` cancels an unfinished upload)",
            code="upload_conflict",
        )
    deleted = api.delete_file(upload["id"], upload["etag"])
    print(f"{deleted['id']}: {deleted['status']} {deleted['filename']} ({mib(deleted['size'])})")


def run(args: argparse.Namespace) -> int:
    if args.command == "upload":
        paths = files_of(args.files)
        api = _api(args)
        for path in paths:
            _send(args, api, path, "never" if args.no_resume else "auto")
    elif args.command == "resume":
        if not args.file.is_file():
            raise UsageError(f"{args.file}: no such file")
        _send(args, _api(args), args.file, "required")
    elif args.command == "list":
        uploads = _api(args, backoff=QUICK).list_uploads(status=args.status)
        for upload in uploads:
            percent = 100 * upload["bytes_uploaded"] // upload["size"] if upload["size"] else 100
            print(
                f"{upload['id']}  {upload['status']:<10} {percent:>3}%  "
                f"{mib(upload['size']):>12}  {upload['filename']}"
            )
    elif args.command == "abort":
        upload = _api(args, backoff=QUICK).abort_upload(args.upload_id)
        print(f"{upload['id']}: {upload['status']}")
    elif args.command == "download":
        _download(args)
    elif args.command == "delete":
        _delete(args)
    elif args.command == "login":
        password = os.environ.get("PARTWISE_PASSWORD") or getpass.getpass()
        api = _api(args, token_needed=False, backoff=QUICK)
        token = api.login(args.username, password, name=args.name)
        if not token:
            raise PartwiseError("the server answered no token", code="bad_response")
        print(token)  # stdout holds the token only: `$(partwise login …)` takes nothing else
    return OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    Run.current = None
    try:
        return run(args)
    except KeyboardInterrupt:
        where = Run.current
        if where is not None:
            print(
                f"\ninterrupted: {where} is not finished; the server keeps what was sent, and "
                f"`partwise resume {where}` continues",
                file=sys.stderr,
            )
        else:
            print("\ninterrupted", file=sys.stderr)
        return INTERRUPTED
    except UsageError as error:
        print(f"partwise: {error}", file=sys.stderr)
        return USAGE
    except FileMismatch as error:
        print(f"partwise: {error.detail}", file=sys.stderr)
        return MISMATCH
    except (NotFound, NothingToResume) as error:
        print(f"partwise: {error.detail}", file=sys.stderr)
        return NOT_FOUND
    except AuthError as error:
        print(f"partwise: {error.detail} ({error.code})", file=sys.stderr)
        return AUTH
    except PartwiseError as error:
        print(f"partwise: {error.detail} ({error.code})", file=sys.stderr)
        return FAILED
    except OSError as error:
        print(f"partwise: {error}", file=sys.stderr)
        return USAGE


# `python -m partwise_client.cli`
def _entry(argv: Sequence[str] | None = None) -> None:  # pragma: no cover
    sys.exit(main(argv))


if __name__ == "__main__":  # pragma: no cover
    _entry()
