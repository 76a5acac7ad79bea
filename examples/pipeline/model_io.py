"""Loading and saving the logistic-regression model: weights.npy, bias.npy, config.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-z)))


def save_model(directory: Path, weights: np.ndarray, bias: float, config: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=False)
    np.save(directory / "weights.npy", weights)
    np.save(directory / "bias.npy", np.array([bias], dtype=weights.dtype))
    meta = {"kind": "logistic-regression", "features": int(weights.shape[0]), **config}
    (directory / "config.json").write_text(json.dumps(meta, sort_keys=True) + "\n")


def load_model(directory: Path) -> tuple[np.ndarray, float]:
    weights = np.load(directory / "weights.npy")
    bias = float(np.load(directory / "bias.npy")[0])
    return weights, bias


def load_split(directory: Path) -> tuple[np.ndarray, np.ndarray]:
    return np.load(directory / "features.npy"), np.load(directory / "labels.npy")


def scores(weights: np.ndarray, bias: float, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Accuracy and mean log-loss of the model on (x, y)."""
    p = np.clip(sigmoid(x.astype(np.float64) @ weights.astype(np.float64) + bias), 1e-9, 1 - 1e-9)
    loss = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    accuracy = float(np.mean((p > 0.5) == (y == 1)))
    return {"accuracy": round(accuracy, 6), "loss": round(loss, 6)}
