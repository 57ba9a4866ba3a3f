#!/usr/bin/env bash
# The demo: set up (idempotent), then on Fashion-MNIST
#   1. train the benchmark CNN, search a per-layer sparsity allocation for a
#      90% target with PuRL, fine-tune it, strip it and export a SavedModel;
#   2. prune the same dense net with two free allocations, uniform and LAMP
#      (the strongest free one), with the same final fine-tune;
#   3. compare the three and write a report with plots.
#
#   tools/demo.sh           # full size: 3-9 minutes on 2 CPU cores
#   tools/demo.sh --smoke   # every stage at a tiny size, about a minute
#
# Extra arguments go to every purl-search and purl-prune call, e.g.
#   tools/demo.sh --config.prune.sparsity=0.95
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$REPO/tools/bootstrap.sh"
cd "$REPO"
CONFIG=configs/fmnist_cnn.py
OUT="${PURL_DEMO_OUT:-workdirs/demo}"  # PURL_DEMO_OUT: another directory
if [ "${1:-}" = "--smoke" ]; then
  shift
  CONFIG=configs/fmnist_cnn.py:smoke
  OUT="${PURL_DEMO_OUT:-workdirs/demo_smoke}"
fi
# One dense net for all three: the first run trains it, the others load it.
# TFLite files (float32 with sparse weights, and int8) beside every export.
COMMON=(--config="$CONFIG" --config.train.cache_dir="$OUT/dense_cache"
        --config.export.tflite=float32,int8 "$@")

echo "== 1/3 PuRL: dense training, search, final fine-tune, export"
purl-search "${COMMON[@]}" --workdir="$OUT/purl" --overwrite
for allocation in uniform lamp; do
  echo
  echo "== 2/3 the same dense net pruned by $allocation, same fine-tune"
  purl-prune "${COMMON[@]}" --allocation="$allocation" \
      --workdir="$OUT/$allocation" --overwrite
done
echo
echo "== 3/3 comparison (one seed: differences under about 0.5 pt are noise;"
echo "   README 'Results' has the multi-seed benchmark)"
purl-report --workdir="$OUT/purl" --workdir="$OUT/uniform" \
    --workdir="$OUT/lamp" --out="$OUT/report"
echo "SavedModel for TF Serving: $(cd "$OUT" && pwd)/purl/export/"
echo "Keras model: $(cd "$OUT" && pwd)/purl/pruned.keras; TFLite:" \
     "$(cd "$OUT" && pwd)/purl/pruned.tflite, pruned_int8.tflite"
