"""Train a logistic regression by gradient descent; optionally record it with mlprov's API.

    python train.py --data out/data/train --config train.yaml --model out/model \
        --record out/train.statement.json

With --record, `mlprov.TrainingRun` writes the SLSA provenance Statement when training
ends (or fails): dataset, config, model, metrics, code and environment; the seed given to
NumPy's default_rng, the entry point and argv are captured by the run itself, and the loss
logged every 10 epochs is kept as out/train.metrics.jsonl (referenced by digest).
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from model_io import load_split, save_model, scores, sigmoid


def train(
    x: np.ndarray,
    y: np.ndarray,
    config: dict[str, Any],
    on_epoch: Callable[[int, float], None] | None = None,
) -> tuple[np.ndarray, float]:
    rng = np.random.default_rng(config["seed"])
    weights = np.asarray(rng.normal(scale=0.01, size=x.shape[1]))
    bias = 0.0
    for epoch in range(config["epochs"]):
        p = sigmoid(x @ weights + bias)
        weights -= config["learning_rate"] * (x.T @ (p - y)) / len(y)
        bias -= config["learning_rate"] * float(np.mean(p - y))
        if on_epoch is not None:
            eps = 1e-12
            loss = -float(np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps)))
            on_epoch(epoch, loss)
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

        def log_loss(epoch: int, loss: float) -> None:
            if run and epoch % 10 == 0:
                run.log(step=epoch, loss=loss)

        x, y = load_split(args.data)
        weights, bias = train(x, y, config, on_epoch=log_loss)
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
