"""A runtime-only install of Pochta, built the way the Dockerfile builds the image.

The Dockerfile itself is the source of truth: the files copied into the build tree
and into the working directory are those its `COPY` lines name, and the requirements
are what scripts/runtime-requirements prints, as in the image's builder stage.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PIP_TIMEOUT = 600


@dataclass(frozen=True)
class RuntimeVenv:
    """A virtual environment holding Pochta and its runtime dependencies, nothing else."""

    root: Path

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    def environment(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The caller's environment without anything that points at the checkout or its venv."""
        inherited = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("POCHTA_", "PYTHON", "VIRTUAL_ENV"))
        }
        path = [str(self.bin)] + [
            entry
            for entry in os.environ.get("PATH", "").split(os.pathsep)
            if entry and not Path(entry).resolve().is_relative_to(REPO)
        ]
        return {
            **inherited,
            "PATH": os.pathsep.join(path),
            "PYTHONUNBUFFERED": "1",
            **(extra or {}),
        }


def dockerfile_copies() -> dict[str, list[str]]:
    """Per build stage, the paths its `COPY` lines take from the build context.

    The test lays out its build tree and working directory from these, so a file the
    image starts to need, or stops getting, shows up here as it would in the image.
    Wildcards are expanded against the checkout; `COPY --from=...` lines are skipped.
    """
    copies: dict[str, list[str]] = {}
    stage = ""
    for line in (REPO / "Dockerfile").read_text().splitlines():
        words = line.split()
        if words[:1] == ["FROM"]:
            stage = words[-1]
            copies[stage] = []
        elif words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
            for pattern in words[1:-1]:
                copies[stage] += sorted(
                    str(path.relative_to(REPO)).removesuffix("/") for path in REPO.glob(pattern)
                )
    return copies


def _ignore_bytecode(_directory: str, names: list[str]) -> set[str]:
    return {name for name in names if name == "__pycache__" or name.endswith(".pyc")}


def copy_from_checkout(names: list[str], into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True)
    for name in dict.fromkeys(names):
        source, target = REPO / name, into / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=_ignore_bytecode)
        else:
            shutil.copy2(source, target)


def run_checked(command: list[str], *, cwd: Path, env: dict[str, str], timeout: float) -> str:
    """Run command; on a non-zero exit fail the test with everything it printed."""
    result = subprocess.run(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(command)} exited {result.returncode}:\n{output}"
    return result.stdout


def build_runtime_venv(base: Path) -> RuntimeVenv:
    """The builder stage's three pip steps, on the files its COPY lines name, under base.

    pip keeps its configuration and cache (so the packages come from where `make
    install` got them); only the no-cache setting of the image is left out, for speed.
    """
    source = base / "src"
    copy_from_checkout(dockerfile_copies()["builder"], source)
    venv = RuntimeVenv(base / "venv")
    run_checked(
        [sys.executable, "-m", "venv", str(venv.root)],
        cwd=base,
        env=venv.environment(),
        timeout=120,
    )
    pip_env = venv.environment({"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"})
    pip = [str(venv.bin / "python"), "-m", "pip"]

    requirements = run_checked(
        [sys.executable, "scripts/runtime-requirements", "pyproject.toml"],
        cwd=source,
        env=pip_env,
        timeout=30,
    )
    (base / "requirements.txt").write_text(requirements)
    run_checked(
        [*pip, "install", "-r", str(base / "requirements.txt")],
        cwd=source,
        env=pip_env,
        timeout=PIP_TIMEOUT,
    )
    run_checked([*pip, "install", "--no-deps", "."], cwd=source, env=pip_env, timeout=PIP_TIMEOUT)
    run_checked([*pip, "check"], cwd=source, env=pip_env, timeout=60)
    # The build tree is not part of the image; nothing may import from it.
    shutil.rmtree(source)
    return venv
