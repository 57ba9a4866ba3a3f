#!/usr/bin/env bash
# The demo: set up (idempotent), then a PuRL search on Fashion-MNIST that
# trains the benchmark CNN, learns a per-layer sparsity policy for a 90%
# target, fine-tunes it, strips it and exports a SavedModel for TF Serving.
#
#   tools/demo.sh          # the :smoke size, about two minutes on 2 cores
#   tools/demo.sh --full   # the full config (tens of minutes on 2 cores)
#
# Extra arguments go to purl-search (e.g. --config.search.episodes=10).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$REPO/tools/bootstrap.sh"
cd "$REPO"
CONFIG=configs/fmnist_cnn.py:smoke
WORKDIR=workdirs/demo
if [ "${1:-}" = "--full" ]; then
  shift
  CONFIG=configs/fmnist_cnn.py
  WORKDIR=workdirs/demo_full
fi
purl-search --config="$CONFIG" --workdir="$WORKDIR" --overwrite "$@"
echo "outputs in $REPO/$WORKDIR (policy.json, summary.json, export/, tensorboard/)"
