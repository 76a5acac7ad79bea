"""Evaluate a saved model on a split and write its metrics as JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from model_io import load_model, load_split, scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    weights, bias = load_model(args.model)
    x, y = load_split(args.data)
    metrics = scores(weights, bias, x, y)
    args.out.write_text(json.dumps(metrics, sort_keys=True) + "\n")
    print(f"evaluated {args.model} on {args.data}: {metrics}")


if __name__ == "__main__":
    main()
