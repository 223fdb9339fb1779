"""The code's rooms and who may talk to whom (docs/architecture.md), held by reading the source.

- only `uploads/storage/` imports boto3 or botocore, and only it knows S3's error codes (in
  the Python client, which PUTs parts to S3 itself, only `partwise_client/retry.py` does);
- the domain app `uploads` never imports `project` (it mounts in any Django project);
- services never import the tasks, the API or HTTP (they notify through a signal);
- interfaces (API, Uppy layer, admin, tasks) and selectors write no upload or part row.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "uploads"
STORAGE = APP / "storage"
# The client's one reader of S3's answers to part PUTs (held to tests/vectors/s3_errors.json).
CLIENT_S3_CLASSIFIER = ROOT / "partwise_client" / "retry.py"
PYTHON_CODE = [ROOT / "uploads", ROOT / "project", ROOT / "partwise_client"]
# S3's error codes (https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html) that
# code could be tempted to match on.
S3_ERROR_CODES = {
    "AccessDenied",
    "BadDigest",
    "EntityTooLarge",
    "EntityTooSmall",
    "InternalError",
    "InvalidArgument",
    "InvalidDigest",
    "InvalidPart",
    "InvalidPartOrder",
    "NoSuchBucket",
    "NoSuchCORSConfiguration",
    "NoSuchKey",
    "NoSuchLifecycleConfiguration",
    "NoSuchUpload",
    "RequestTimeout",
    "ServiceUnavailable",
    "SignatureDoesNotMatch",
    "SlowDown",
    "XAmzContentSHA256Mismatch",
}


def modules(*folders: Path) -> list[Path]:
    return sorted(
        path
        for folder in folders
        for path in folder.rglob("*.py")
        if "migrations" not in path.parts and "__pycache__" not in path.parts
    )


def imported(path: Path) -> set[str]:
    """Every module `path` imports, absolute (relative imports resolved against its package)."""
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def strings(path: Path) -> set[str]:
    return {
        node.value
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }


def where(paths: list[Path]) -> list[str]:
    return [str(path.relative_to(ROOT)) for path in paths]


def test_only_the_storage_seam_imports_boto3_or_botocore():
    offenders = [
        path
        for path in modules(*PYTHON_CODE)
        if STORAGE not in path.parents
        and any(name.split(".")[0] in {"boto3", "botocore"} for name in imported(path))
    ]
    assert where(offenders) == []


def test_no_s3_error_code_appears_outside_the_storage_seam():
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            code for text in strings(path) for code in S3_ERROR_CODES if code in text
        )
        for path in modules(*PYTHON_CODE)
        if STORAGE not in path.parents and path != CLIENT_S3_CLASSIFIER
    }
    assert {path: codes for path, codes in offenders.items() if codes} == {}


def test_the_storage_seam_does_know_the_codes_it_translates():
    """The check above would pass vacuously if the codes had moved nowhere."""
    seam = set().union(*(strings(path) for path in modules(STORAGE)))
    assert {"NoSuchUpload", "SlowDown", "InternalError"} <= {
        code for text in seam for code in S3_ERROR_CODES if code in text
    }


def test_the_uploads_app_never_imports_project():
    offenders = [
        path
        for path in modules(APP)
        if any(name == "project" or name.startswith("project.") for name in imported(path))
    ]
    assert where(offenders) == []


@pytest.mark.parametrize(
    "forbidden",
    ["uploads.tasks", "uploads.api", "uploads.companion", "uploads.admin", "rest_framework"],
)
def test_services_never_import_interfaces_or_http(forbidden):
    offenders = [
        path
        for path in modules(APP / "services")
        if any(name == forbidden or name.startswith(f"{forbidden}.") for name in imported(path))
    ]
    assert where(offenders) == []


WRITES = {"update", "save", "delete", "create", "bulk_create", "get_or_create", "upsert"}
MODELS = {"Upload", "UploadPart"}


def writes_to_models(path: Path) -> list[int]:
    """Lines where `path` calls a write on Upload/UploadPart rows (`Model.objects.….update()`,
    `.save()` on a row): the shape of a state change."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in WRITES:
            continue
        chain = ast.unparse(node.func.value)
        if any(chain.startswith(f"{model}.objects") for model in MODELS):
            lines.append(node.lineno)
    return lines


@pytest.mark.parametrize(
    "interface",
    ["api", "companion.py", "admin.py", "tasks.py", "selectors.py", "pages.py"],
)
def test_interfaces_and_selectors_write_no_upload_rows(interface):
    paths = modules(APP / interface) if (APP / interface).is_dir() else [APP / interface]
    assert {
        str(p.relative_to(ROOT)): writes_to_models(p) for p in paths if writes_to_models(p)
    } == {}


def test_the_write_detector_sees_the_services_writing():
    """The interfaces' check would pass vacuously if it could not see a write at all."""
    assert writes_to_models(APP / "services" / "state.py")
