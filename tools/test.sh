#!/usr/bin/env bash
# The test suite: set up (idempotent), then pytest over tests/.
# Extra arguments go to pytest (e.g. tools/test.sh -k pruning).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$REPO/tools/bootstrap.sh"
cd "$REPO"
exec python -m pytest tests "$@"
