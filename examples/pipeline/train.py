"""Train a logistic regression by gradient descent; optionally record it with mlprov's API.

    python train.py --data out/data/train --config train.yaml --model out/model \
        --record out/train.statement.json

With --record, `mlprov.TrainingRun` writes the SLSA provenance Statement when training
ends (or fails): dataset, config, seed, model, metrics, code and environment.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from model_io import load_split, save_model, scores, sigmoid


def train(x: np.ndarray, y: np.ndarray, config: dict[str, Any]) -> tuple[np.ndarray, float]:
    rng = np.random.default_rng(config["seed"])
    weights = np.asarray(rng.normal(scale=0.01, size=x.shape[1]))
    bias = 0.0
    for _ in range(config["epochs"]):
        p = sigmoid(x @ weights + bias)
        weights -= config["learning_rate"] * (x.T @ (p - y)) / len(y)
        bias -= config["learning_rate"] * float(np.mean(p - y))
    return weights, bias


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True, help="train split directory")
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True, help="output model directory")
    parser.add_argument("--metrics", type=Path, help="write training metrics JSON here")
    parser.add_argument("--record", type=Path, help="write a provenance Statement here")
    args = parser.parse_args()

    config = yaml.safe_load(args.config.read_text())
    recording: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    if args.record:
        import mlprov

        recording = mlprov.TrainingRun(step="train", out=args.record, force=True)
    with recording as run:
        if run:
            run.dataset("train", args.data)
            run.config(args.config)
            run.seed("numpy", config["seed"])
            run.entry_point(f"{Path(__file__).name}")
        x, y = load_split(args.data)
        weights, bias = train(x, y, config)
        save_model(args.model, weights.astype(config.get("dtype", "float32")), bias, {})
        metrics = scores(weights, bias, x, y)
        if args.metrics:
            args.metrics.write_text(json.dumps(metrics, sort_keys=True) + "\n")
        if run:
            run.model(args.model)
            run.metrics(metrics)
    print(f"trained {args.model}: {metrics}")


if __name__ == "__main__":
    main()
