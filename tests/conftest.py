"""Shared fixtures. Built-in datasets come from the machine (installed by scripts/setup.sh); a test that
needs one is skipped when it is absent, unless TRANSFERLAB_REQUIRE_DATA=1 (CI), where absence fails."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from transferlab.data.datasets import get_builtin, load_dataset


def _require(name: str):
    ds = get_builtin(name)
    if not ds.present():
        message = f"{name} is not installed ({ds.install_command})"
        if os.environ.get("TRANSFERLAB_REQUIRE_DATA") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return load_dataset(name)


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Every test (and every CLI subprocess) caches features and source models in one fresh folder:
    the suite never reads or writes the user's cache, and each run starts cold."""
    with pytest.MonkeyPatch.context() as patch:
        folder = tmp_path_factory.mktemp("cache")
        patch.setenv("TRANSFERLAB_CACHE", str(folder))
        yield folder


@pytest.fixture(scope="session")
def fashion():
    return _require("fashion-mnist")


@pytest.fixture(scope="session")
def mnist():
    return _require("mnist")


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits")


@pytest.fixture
def cli():
    """Run the installed CLI in a subprocess: returns (exit code, stdout, stderr)."""

    def run(*args: str, env: dict | None = None):
        proc = subprocess.run(
            [sys.executable, "-m", "transferlab.cli", *args],
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
            timeout=300,
        )
        return proc.returncode, proc.stdout, proc.stderr

    return run
