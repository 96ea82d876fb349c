"""code_version: the release plus a hash of the package's .py files, so results from two different
codes never share a version string (the release alone stayed "0.1.0" through every change)."""

from __future__ import annotations

import re
import shutil

import transferlab
from transferlab.version import PACKAGE_DIR, code_version, source_hash


def test_code_version_is_the_release_plus_the_source_hash():
    version = code_version()
    assert re.fullmatch(re.escape(transferlab.__version__) + r"[+.]src\.[0-9a-f]{8}", version), version
    assert version.endswith(source_hash()[:8]) and code_version() is version  # computed once per process


def test_source_hash_changes_with_any_source_edit_and_only_with_py_files(tmp_path):
    copy = tmp_path / "transferlab"
    shutil.copytree(PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = source_hash(copy)
    assert before == source_hash(PACKAGE_DIR)  # the path of the tree is not part of it
    (copy / "notes.txt").write_text("not code")
    assert source_hash(copy) == before
    runs = copy / "runs.py"
    runs.write_text(runs.read_text() + "# a comment\n")
    edited = source_hash(copy)
    assert edited != before
    (copy / "runs.py").rename(copy / "runs_moved.py")  # same bytes under another name
    assert source_hash(copy) not in (before, edited)
