"""Running the real `vpnreg` console script against a registry of the test's own."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.console import VPNREG


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()


Run = Callable[..., Result]


def _runner(tmp_path: Path) -> Run:
    env = {key: value for key, value in os.environ.items() if not key.startswith("VPNREG_")} | {
        "VPNREG_DATABASE_URL": f"sqlite:///{tmp_path / 'registry.db'}",
        "VPNREG_ALLOW_DOCUMENTATION_PREFIXES": "1",
        "VPNREG_NEW_PASSWORD": "correct horse battery",
    }

    def run(*args: str, stdin: str | None = None, **extra_env: str) -> Result:
        proc = subprocess.run(
            [str(VPNREG), *args],
            cwd=tmp_path,
            env=env | extra_env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert "Traceback" not in proc.stderr, proc.stderr
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture
def run(tmp_path: Path) -> Run:
    """`run("lookup", "192.0.2.1")` runs vpnreg in tmp_path with a fresh SQLite registry."""
    return _runner(tmp_path)


@pytest.fixture(scope="session")
def registry_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated registry with two ISPs, a sector body, two organisations and users for each
    role, built once through the CLI; each test gets a copy of the file."""
    where = tmp_path_factory.mktemp("registry-template")
    run = _runner(where)
    steps = [
        ("db", "upgrade"),
        ("isps", "create", "--name", "Indus Fibre"),
        ("isps", "create", "--name", "Margalla Net"),
        ("sector-bodies", "create", "--name", "Software Export Board",
         "--category", "software_house", "--category", "freelancer"),
        ("orgs", "create", "--name", "Acme Software", "--category", "software_house",
         "--registration-number", "0012345"),
        ("orgs", "create", "--name", "Beta Bank", "--category", "bank"),
        ("users", "create", "--username", "alice", "--role", "applicant",
         "--organisation", "Acme Software"),
        ("users", "create", "--username", "bob", "--role", "applicant",
         "--organisation", "Beta Bank"),
        ("users", "create", "--username", "isp1", "--role", "isp", "--isp", "Indus Fibre"),
        ("users", "create", "--username", "isp2", "--role", "isp", "--isp", "Margalla Net"),
        ("users", "create", "--username", "seb", "--role", "sector_body",
         "--sector-body", "Software Export Board"),
        ("users", "create", "--username", "reg1", "--role", "regulator"),
        ("users", "create", "--username", "reg2", "--role", "regulator"),
    ]  # fmt: skip
    for step in steps:
        result = run(*step)
        assert result.code == 0, (step, result.err)
    return where / "registry.db"


@pytest.fixture
def registry(registry_template: Path, tmp_path: Path) -> Run:
    """A copy of the template registry for this test alone."""
    shutil.copyfile(registry_template, tmp_path / "registry.db")
    return _runner(tmp_path)
