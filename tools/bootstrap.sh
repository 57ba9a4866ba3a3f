#!/usr/bin/env bash
# Idempotent set-up for a fresh machine with Python 3.10-3.12, git and apt:
# Debian's Fashion-MNIST package, a virtualenv in .venv, and the pinned
# install of purl_tf (editable, with its test extras). Sourced by demo.sh and
# test.sh; safe to run again (it reinstalls only when setup.py or
# constraints.txt changed).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PURL_VENV:-$REPO/.venv}"
PYTHON="${PYTHON:-python3}"
FMNIST=/usr/share/datasets/fashion-mnist

if ! "$PYTHON" -c 'import sys; sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 12))'; then
  echo "purl_tf needs Python 3.10-3.12 (TensorFlow 2.21); $PYTHON is $("$PYTHON" --version 2>&1)." >&2
  echo "Set PYTHON=/path/to/python3.11 and run again." >&2
  exit 1
fi

if [ ! -f "$FMNIST/train-images-idx3-ubyte.gz" ]; then
  echo "== installing Debian's dataset-fashion-mnist"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "== creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
STAMP="$VENV/.purl_tf-installed"
WANT="$(cat "$REPO/setup.py" "$REPO/constraints.txt" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$WANT" ]; then
  echo "== installing purl_tf and its pinned dependencies (a few minutes the first time)"
  # pip's and the build backend's notices (e.g. setuptools' editable-install
  # banner) go to a log, shown in full when the install fails.
  LOG="$VENV/pip-install.log"
  if ! { "$VENV/bin/python" -m pip install -q --upgrade pip &&
         "$VENV/bin/python" -m pip install -q -c "$REPO/constraints.txt" \
             -e "$REPO[test]"; } > "$LOG" 2>&1; then
    cat "$LOG" >&2
    echo "bootstrap: pip install failed; its output is above and in $LOG" >&2
    exit 1
  fi
  echo "$WANT" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
