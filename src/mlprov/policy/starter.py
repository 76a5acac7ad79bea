"""The starter layout `mlprov policy init` writes: dataset → train → eval → release, commented."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

STEPS = ("dataset", "train", "eval")

_TEMPLATE = """\
# mlprov layout: what must be true of a model's attestations before it is released.
# Format: in-toto attestation layout (ITE-10/11), extended by mlprov; see docs/policy.md.
# Check it with `mlprov policy lint {name}`, use it with
#   mlprov policy check {name} --attestations out/ --subject out/lr-model
expires: "{expires}"  # after this, every check fails: review the policy by then

# Values substituted as {{name}} into the rules below; override with --param NAME=VALUE.
parameters:
  train_data: train           # name of the training split the dataset step produces
  test_data: test             # name of the test split the dataset step produces
  model: lr-model             # name of the model artifact the train step produces
  metric: accuracy            # the evaluation metric that gates the release ...
  min_score: {min_score}      # ... and its minimum (double() in the rule: ints work too)

# Who may sign for each step: PEM public keys (publicKey, embedded here so that a signed
# layout covers the keys themselves; publicKeyPath names a file relative to this layout,
# which a signed layout refuses), securesystemslib keys (keyType/scheme/keyVal) or Sigstore
# identities:
#   ci: {{sigstore: {{issuer: https://token.actions.githubusercontent.com,
#                   subject: "https://github.com/org/repo/.github/workflows/train.yml@refs/heads/main"}}}}
functionaries:
{functionaries}
steps:
  # 1. Dataset preparation: SLSA provenance of the splits, from `mlprov attest dataset`
  #    (buildType dataset-preparation) or `mlprov run` (buildType run).
  - name: dataset
    expectedMaterials:
      - "ALLOW *"                 # raw sources; tighten to what you accept
    expectedProducts:
      - "CREATE {{train_data}}"
      - "CREATE {{test_data}}"
      - "DISALLOW *"              # nothing else may come out of this step
    expectedPredicates:
      - predicateType: https://slsa.dev/provenance/v1
        functionaries: [{dataset_signer}]
        expectedAttributes:
          - rule: "predicate.buildDefinition.buildType in [
              'https://mlprov.dev/buildtypes/dataset-preparation/v1',
              'https://mlprov.dev/buildtypes/run/v1']"
          # A run that mlprov watched records its outcome: a failed run does not count.
          - rule: "{succeeded}"

  # 2. Training: the model must be trained on the dataset step's training split.
  - name: train
    expectedMaterials:
      - "MATCH {{train_data}} WITH products FROM dataset"
      - "DISALLOW {{train_data}}" # a dataset whose digest the dataset step did not produce
      # Never train on the test split, whatever it is called: nothing left may have the
      # digest of a product of the dataset step (mlprov's digest rule).
      - "DISALLOW * WITH products FROM dataset"
      - "DISALLOW {{test_data}}"  # nor anything called like the test split
      - "ALLOW *"                 # code, config, base image, packages
    expectedProducts:
      - "CREATE {{model}}"
      - "DISALLOW *"
    expectedPredicates:
      - predicateType: https://slsa.dev/provenance/v1
        functionaries: [{train_signer}]
        threshold: 1              # raise with more functionaries: distinct signers needed
        expectedAttributes:
          # No pickle-based model files (.bin/.pt/.pth/.ckpt/.pkl, joblib): loading one can
          # run code. mlprov records each file's format in annotations.modelFacts. To allow
          # them, delete this rule (or add `warn: true` under it to only report them).
          - rule: "subject.all(s, !has(s.annotations) || !has(s.annotations.modelFacts)
              || !s.annotations.modelFacts.canRunCode)"
          - rule: "predicate.buildDefinition.buildType == 'https://mlprov.dev/buildtypes/training/v1'"
          - rule: "{succeeded}"

  # 3. Evaluation: a test result about the trained model (a test result's materials are
  #    its subjects), with the metric above the bar.
  - name: eval
    expectedMaterials:
      - "MATCH {{model}} WITH products FROM train"
      - "DISALLOW *"
    expectedPredicates:
      - predicateType: https://in-toto.io/attestation/test-result/v0.1
        functionaries: [{eval_signer}]
        expectedAttributes:
          - rule: "predicate.result == 'PASSED'"
          - rule: "double(predicate.mlprov_metrics.{{metric}}) >= double({{min_score}})"
          - rule: "size(predicate.failedTests) == 0"
            allowIfNoClaim: true
            warn: true

# 4. Release: the artifact released (--subject) must be what the train step produced.
subjects:
  - productOf: [train]
"""


#: CEL: a run whose outcome was recorded (mlprov run, TrainingRun) succeeded; a step
#: recorded after the fact (mlprov attest) records none.
SUCCEEDED = (
    "!('metadata' in predicate.runDetails)"
    " || !('mlprov_outcome' in predicate.runDetails.metadata)"
    " || predicate.runDetails.metadata.mlprov_outcome.outcome == 'succeeded'"
)


def starter_layout(
    *,
    keys: dict[str, str],
    expires: datetime,
    min_accuracy: float,
    base_dir: Path,
    name: str = "layout.yaml",
) -> str:
    """The starter layout's YAML text; `keys` maps step -> public key file.

    Each key is read now and embedded (`publicKey`), one functionary per distinct key.
    """
    from mlprov.signing.dsse import key_identity
    from mlprov.signing.keys import load_public_key, public_pem

    names: dict[str, str] = {}  # key identity (or placeholder path) -> functionary name
    entries: list[str] = []
    signer: dict[str, str] = {}
    for step in STEPS:
        path = keys.get(step)
        if path is None:
            identity = functionary = f"{step}-signer"
            entry = (
                f"  {functionary}:\n"
                f'    publicKeyPath: "{step}.pub"  # placeholder: put this step\'s key here'
            )
        else:
            key = load_public_key(Path(path))
            identity = key_identity(key)
            functionary = names.get(identity) or Path(path).stem
            if identity not in names and functionary in names.values():
                functionary = f"{functionary}-{step}"
            pem = public_pem(key).decode().strip().replace("\n", "\n      ")
            entry = (
                f"  {functionary}:  # from {json.dumps(os.path.relpath(path, base_dir))}\n"
                f"    publicKey: |\n      {pem}"
            )
        if identity not in names:
            names[identity] = functionary
            entries.append(entry)
        signer[step] = names[identity]
    stamp = expires.replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return _TEMPLATE.format(
        expires=stamp,
        name=name,
        min_score=min_accuracy,
        functionaries="\n".join(entries),
        dataset_signer=signer["dataset"],
        train_signer=signer["train"],
        eval_signer=signer["eval"],
        succeeded=SUCCEEDED.replace('"', '\\"'),
    )
