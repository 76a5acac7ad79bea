#!/usr/bin/env bash
# The end-to-end story of mlprov, offline: each stage prints what it did.
set -euo pipefail
cd "$(dirname "$0")"
OUT=out
rm -rf "$OUT" && mkdir -p "$OUT"
export MLPROV_CACHE_DIR="$PWD/$OUT/cache"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. Generate a tiny dataset and model"
python - "$OUT" <<'PY'
import sys, pathlib, numpy as np
out = pathlib.Path(sys.argv[1])
rng = np.random.default_rng(0)
(out / "dataset").mkdir()
np.save(out / "dataset" / "features.npy", rng.normal(size=(200, 4)))
np.save(out / "dataset" / "labels.npy", (rng.random(200) > 0.5).astype(np.int64))
(out / "model").mkdir()
np.save(out / "model" / "weights.npy", rng.normal(size=4))
(out / "model" / "config.json").write_text('{"kind": "logistic-regression", "features": 4}\n')
PY

step "2. Digest them (tree digests are OpenSSF Model Signing compatible)"
mlprov digest "$OUT/dataset" "$OUT/model" --files
mlprov digest "$OUT/dataset" --manifest-out "$OUT/dataset.manifest.json"
mlprov digest --check "$OUT/dataset.manifest.json"
