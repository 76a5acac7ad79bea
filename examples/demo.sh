#!/usr/bin/env bash
# The end-to-end story of mlprov, offline: a tiny numpy pipeline (dataset → training →
# conversion → evaluation) recorded, signed, checked against a release policy, and kept
# in a store that answers lineage questions. Each stage prints what it did.
set -euo pipefail
cd "$(dirname "$0")"
OUT=out
ATT=$OUT/attestations   # signed attestations only: what the release gate reads
rm -rf "$OUT" && mkdir -p "$OUT" "$ATT"
export MLPROV_CACHE_DIR="$PWD/$OUT/cache"
export MLPROV_STORE="$PWD/$OUT/store.sqlite3"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. Keys: data preparation, the trainer, the release gate, and the policy's owner"
mlprov keygen --out "$OUT/data" --no-password
mlprov keygen --out "$OUT/trainer" --no-password
mlprov keygen --out "$OUT/gate" --no-password
mlprov keygen --out "$OUT/owner" --no-password

step "2. Dataset preparation, run and recorded by mlprov run (signed on write)"
mlprov run --step dataset --products "$OUT/data/train" "$OUT/data/test" \
  --out "$ATT/dataset.intoto.json" --key "$OUT/data.key" \
  -- python pipeline/make_dataset.py --out "$OUT/data" --seed 0
mlprov digest "$OUT/data" --files

step "3. Training, recorded from inside the script with mlprov.TrainingRun, then signed"
python pipeline/train.py --data "$OUT/data/train" --config pipeline/train.yaml \
  --model "$OUT/lr-model" --metrics "$OUT/train-metrics.json" --record "$OUT/train.statement.json"
mlprov sign "$OUT/train.statement.json" --key "$OUT/trainer.key" --out "$ATT/train.intoto.json"
mlprov verify "$ATT/train.intoto.json" --key "$OUT/trainer.pub" --subject-path "$OUT/lr-model"

step "4. Conversion to float16, recorded with mlprov attest convert"
python pipeline/convert.py --model "$OUT/lr-model" --out "$OUT/lr-model-fp16" --dtype float16
mlprov attest convert --model "$OUT/lr-model-fp16" --base-model "$OUT/lr-model" \
  --param dtype=float16 --entry-point pipeline/convert.py --no-packages \
  --out "$ATT/convert.intoto.json" --key "$OUT/trainer.key"

step "5. Evaluation: an in-toto test-result with metrics and a threshold"
python pipeline/evaluate.py --model "$OUT/lr-model" --data "$OUT/data/test" --out "$OUT/eval-metrics.json"
mlprov attest eval --model "$OUT/lr-model" --dataset test="$OUT/data/test" \
  --metrics "$OUT/eval-metrics.json" --threshold 'accuracy>=0.8' \
  --out "$ATT/eval.intoto.json" --key "$OUT/trainer.key"
mlprov verify "$ATT/eval.intoto.json" --key "$OUT/trainer.pub"

step "6. The training Statement (SLSA Provenance v1; installed packages elided)"
python - "$OUT/train.statement.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
deps = doc["predicate"]["buildDefinition"]["resolvedDependencies"]
packages = [d for d in deps if d.get("annotations", {}).get("role") == "package"]
doc["predicate"]["buildDefinition"]["resolvedDependencies"] = [d for d in deps if d not in packages] + [
    f"... {len(packages)} pkg:pypi packages"
]
print(json.dumps(doc, indent=2))
PY

step "6b. The evaluation Statement (in-toto test-result with metrics), from its signed envelope"
python - "$ATT/eval.intoto.json" <<'PY'
import base64, json, sys
envelope = json.load(open(sys.argv[1]))
print(json.dumps(json.loads(base64.b64decode(envelope["payload"])), indent=2))
PY

step "7. Model signature: an OpenSSF Model Signing bundle (model_signing verifies it too)"
mlprov model sign "$OUT/lr-model" --key "$OUT/trainer.key" --out "$OUT/lr-model.sig"
mlprov model verify "$OUT/lr-model" --signature "$OUT/lr-model.sig" --key "$OUT/trainer.pub"
if command -v model_signing >/dev/null; then
  echo "-- and OpenSSF's own model_signing CLI accepts the same signature:"
  model_signing verify key "$OUT/lr-model" --signature "$OUT/lr-model.sig" --public_key "$OUT/trainer.pub"
fi

step "8. Release gate: the attestations against a layout, leaving a signed VSA"
mlprov policy init --out "$OUT/layout.yaml" --key dataset="$OUT/data.pub" \
  --key train="$OUT/trainer.pub" --key eval="$OUT/trainer.pub"
mlprov policy lint "$OUT/layout.yaml"
echo "-- the policy's owner signs the layout (its functionaries' keys are embedded in it);"
echo "   the gate refuses to run a layout whose signature it has not checked"
mlprov policy sign "$OUT/layout.yaml" --key "$OUT/owner.key" --out "$OUT/layout.signed.json"
mlprov policy check "$OUT/layout.signed.json" --layout-key "$OUT/owner.pub" --require-signed-layout \
  --attestations "$ATT" --subject "$OUT/lr-model" \
  --vsa-out "$OUT/lr-model.vsa.intoto.json" --vsa-key "$OUT/gate.key" \
  --verifier-id https://mlprov.dev/demo/release-gate
mlprov verify "$OUT/lr-model.vsa.intoto.json" --key "$OUT/gate.pub"

step "9. Tampering is caught: one changed byte in the model fails its signature"
cp -r "$OUT/lr-model" "$OUT/lr-model-tampered"
python - "$OUT/lr-model-tampered" <<'PY'
import pathlib, sys
weights = sorted(p for p in pathlib.Path(sys.argv[1]).iterdir() if p.is_file())[0]
data = bytearray(weights.read_bytes()); data[-1] ^= 1; weights.write_bytes(bytes(data))
PY
if mlprov model verify "$OUT/lr-model-tampered" --signature "$OUT/lr-model.sig" --key "$OUT/trainer.pub"; then
  echo "tampered model was accepted: this must not happen" >&2; exit 1
else
  echo "(rejected, as it must be)"
fi

step "10. Store the attestations (signatures verified on add) and ask lineage questions"
mlprov store add "$ATT"/*.intoto.json --key "$OUT/data.pub" --key "$OUT/trainer.pub"
mlprov store add "$OUT/lr-model.vsa.intoto.json" --key "$OUT/gate.pub"
mlprov store ls
echo "-- where did the released model come from?"
mlprov lineage "$OUT/lr-model" --up
echo "-- which models did the training data reach? (the impact report for a poisoned dataset)"
TRAIN_DATA=$(mlprov digest "$OUT/data/train" | cut -d' ' -f1)
mlprov lineage "$TRAIN_DATA" --down
mlprov lineage "$TRAIN_DATA" --down --only-models
echo "-- the release gate again, reading the model's attestations from the store"
mlprov policy check "$OUT/layout.yaml" --from-store --subject "$OUT/lr-model" --json \
  | python -c 'import json,sys; r=json.load(sys.stdin); print("passed:", r["passed"], "with", len(r["attestations"]), "attestations from the store")'
mlprov lineage "$OUT/lr-model" --up --format mermaid > "$OUT/lineage.mmd"
echo "wrote $OUT/lineage.mmd (renders in GitHub/GitLab markdown)"

step "11. AI-BOMs and the audit report, from the verified attestations in the store"
mlprov bom "$OUT/lr-model" --format cyclonedx --out "$OUT/lr-model.cdx.json"
mlprov bom "$OUT/lr-model" --format spdx3 --key "$OUT/data.pub" --key "$OUT/trainer.pub" \
  --key "$OUT/gate.pub" --out "$OUT/lr-model.spdx.json"
mlprov bom "$OUT/lr-model" --format cyclonedx --sign "$OUT/gate.key" \
  --out "$OUT/lr-model.cdx.intoto.json" 2>/dev/null
mlprov store add "$OUT/lr-model.cdx.intoto.json" --key "$OUT/gate.pub"
mlprov lineage "$OUT/lr-model" --up --format svg --out "$OUT/lineage.svg"
mlprov report "$OUT/lr-model" --html "$OUT/report.html"
echo "open $OUT/report.html in a browser (it fetches nothing); BOMs: $OUT/lr-model.cdx.json, $OUT/lr-model.spdx.json"

step "12. A model from the Hugging Face cache, offline: its facts, and an OMS signature both tools accept"
export HF_HOME="$PWD/$OUT/hf" HF_HUB_OFFLINE=1   # a tiny cache of our own, not yours
SNAP=$(python hub_cache.py)
mlprov digest hf://acme/tiny-lm@main --json | python -c '
import json, sys
manifest = json.load(sys.stdin)[0]
facts = manifest["modelFacts"]
print(manifest["uri"], manifest["identity"])
print("  formats:", facts["formats"], "parameters:", facts["parameterCount"], "pickles:", facts["pickleFiles"])'
mlprov model sign "$SNAP" --key "$OUT/trainer.key" --signature "$OUT/tiny-lm.sig"
if command -v model_signing >/dev/null; then
  model_signing verify key "$SNAP" --signature "$OUT/tiny-lm.sig" --public_key "$OUT/trainer.pub" --allow_symlinks
fi
