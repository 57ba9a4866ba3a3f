#!/usr/bin/env bash
# The test suite: set up (idempotent), then pytest over tests/.
# Extra arguments go to pytest (e.g. tools/test.sh -k pruning; --runslow
# adds the ImageNet-size smoke runs).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$REPO/tools/bootstrap.sh"
cd "$REPO"
# Two workers (pytest-xdist), one test file each at a time: most tests keep
# one core busy, and a file's module fixtures are built once.
# PURL_TEST_WORKERS=0 runs in this process alone (e.g. for pdb).
exec python -m pytest tests -n "${PURL_TEST_WORKERS:-2}" --dist loadfile "$@"
