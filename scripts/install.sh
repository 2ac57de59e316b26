#!/usr/bin/env bash
# Create .venv (if missing) and install HEAL with the tested versions. Safe to run again: it only adds what is missing.
#   bash scripts/install.sh            # then .venv/bin/heal quickstart
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# torch first, pinned: otherwise a dependency's loose range can pull a multi-GB CUDA build onto a CPU machine.
.venv/bin/python -m pip install --quiet "torch==$(grep -E '^torch==' constraints.txt | cut -d= -f3)"
.venv/bin/python -m pip install --quiet -c constraints.txt -e ".[dev]"
# In CI (CI set, as .ci/run does) also Debian's chromium, which the annotation page's browser test drives through
# Playwright (no browser download). Elsewhere nothing is installed system-wide; without chromium that test is skipped.
if [ -n "${CI:-}" ] && ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo -n"
    { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null; } \
        || echo "install.sh: could not install chromium (apt-get); the browser test will fail in CI" >&2
fi
