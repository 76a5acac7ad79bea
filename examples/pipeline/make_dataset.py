"""Generate a tiny, deterministic binary-classification dataset (numpy only).

Writes OUT/train/{features,labels}.npy and OUT/test/{features,labels}.npy.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--features", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    true_weights = rng.normal(size=args.features)
    features = rng.normal(size=(args.samples, args.features))
    logits = features @ true_weights + 0.3 * rng.normal(size=args.samples)
    labels = (logits > 0).astype(np.int64)
    split = int(args.samples * 0.8)
    for name, rows in (("train", slice(0, split)), ("test", slice(split, None))):
        directory = args.out / name
        directory.mkdir(parents=True, exist_ok=False)
        np.save(directory / "features.npy", features[rows])
        np.save(directory / "labels.npy", labels[rows])
    print(f"wrote {split} training and {args.samples - split} test samples to {args.out}")


if __name__ == "__main__":
    main()
