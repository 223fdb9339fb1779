"""`partwise`: upload, resume, list and abort uploads on a Partwise server.

    partwise upload FILE... [--server URL] [--token T]
    partwise resume FILE
    partwise list [--status S]
    partwise abort ID
    partwise login USERNAME            (prints a new token; password from a prompt)

The server and token also come from PARTWISE_SERVER and PARTWISE_TOKEN. Exit codes are listed
in EXIT_CODES; Ctrl+C stops at once and loses nothing but the parts in flight (`resume`
continues, from this machine or any other).
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

from .api import AuthError, NotFound, PartwiseApi, PartwiseError
from .transfer import FileMismatch, NothingToResume, Uploader

OK = 0
FAILED = 1  # the server, S3 or the network said no (details on stderr)
USAGE = 2  # bad arguments, a missing file, no server or token
AUTH = 3  # the token is missing, wrong or revoked
NOT_FOUND = 4  # no such upload, or nothing to resume
MISMATCH = 5  # the file is not the one the unfinished upload holds
INTERRUPTED = 130  # Ctrl+C (128 + SIGINT), as shells report it
EXIT_CODES = {
    OK: "done",
    FAILED: "the upload failed (server, storage or network)",
    USAGE: "usage error",
    AUTH: "not authenticated or not allowed",
    NOT_FOUND: "upload not found / nothing to resume",
    MISMATCH: "the file does not match the unfinished upload",
    INTERRUPTED: "interrupted; run `partwise resume FILE` to continue",
}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([kKmMgG]?)$")


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
    upload.add_argument("files", nargs="+", type=Path, metavar="FILE")
    upload.add_argument("--part-size", type=byte_size, help="preferred part size (server's)")
    upload.add_argument(
        "--no-resume", action="store_true", help="always start new uploads, never resume"
    )
    resume = commands.add_parser(
        "resume", parents=[common, sending], help="continue the unfinished upload of a file"
    )
    resume.add_argument("file", type=Path, metavar="FILE")
    listing = commands.add_parser("list", parents=[common], help="your uploads, newest first")
    listing.add_argument("--status", default="", help="only uploads in this status")
    abort = commands.add_parser("abort", parents=[common], help="abort an unfinished upload")
    abort.add_argument("upload_id", metavar="ID")
    login = commands.add_parser("login", parents=[common], help="print a new API token")
    login.add_argument("username")
    login.add_argument("--name", default="partwise-cli", help="the token's name")
    return parser


def _api(args: argparse.Namespace, *, token_needed: bool = True) -> PartwiseApi:
    if not args.server:
        raise UsageError("no server: pass --server URL or set PARTWISE_SERVER")
    if token_needed and not args.token:
        raise UsageError("no token: pass --token T or set PARTWISE_TOKEN (see `partwise login`)")
    return PartwiseApi(args.server, args.token or None)


def _human(size: int | None) -> str:
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(size)  # unreachable


def _send(args: argparse.Namespace, path: Path, resume: str) -> None:
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    api = _api(args)
    total = path.stat().st_size
    with tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=path.name[:30],
        disable=args.quiet,
        dynamic_ncols=True,
    ) as bar:

        def progress(done: int, _total: int) -> None:
            bar.update(done - bar.n)  # tqdm is thread-safe; callers hold the progress lock

        uploader = Uploader(
            api,
            concurrency=args.concurrency,
            part_size=getattr(args, "part_size", None),
            progress=progress,
            limit_rate=args.limit_rate,
            on_event=lambda message: tqdm.write(message, file=sys.stderr),
        )
        transfer = uploader.upload(path, resume=resume)
    upload = transfer.upload
    print(
        f"{path}: uploaded as {upload['id']} ({_human(upload['size'])}, "
        f"{len(transfer.parts_sent)} parts sent, {transfer.parts_skipped} already there)"
    )


def run(args: argparse.Namespace) -> int:
    if args.command == "upload":
        for path in args.files:
            _send(args, path, "never" if args.no_resume else "auto")
    elif args.command == "resume":
        _send(args, args.file, "required")
    elif args.command == "list":
        uploads = _api(args).list_uploads(status=args.status)
        for upload in uploads:
            percent = 100 * upload["bytes_uploaded"] // upload["size"] if upload["size"] else 100
            print(
                f"{upload['id']}  {upload['status']:<10} {percent:>3}%  "
                f"{_human(upload['size']):>10}  {upload['filename']}"
            )
    elif args.command == "abort":
        upload = _api(args).abort_upload(args.upload_id)
        print(f"{upload['id']}: {upload['status']}")
    elif args.command == "login":
        password = os.environ.get("PARTWISE_PASSWORD") or getpass.getpass()
        print(_api(args, token_needed=False).login(args.username, password, name=args.name))
    return OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except KeyboardInterrupt:
        print(
            "\ninterrupted: the server keeps what was sent; `partwise resume FILE` continues",
            file=sys.stderr,
        )
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
