"""Convert (quantize) a model's weights to float16 into a new model directory."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from model_io import load_model, save_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dtype", default="float16")
    args = parser.parse_args()
    weights, bias = load_model(args.model)
    config = json.loads((args.model / "config.json").read_text())
    config.pop("kind", None), config.pop("features", None)
    save_model(args.out, weights.astype(args.dtype), bias, {**config, "dtype": args.dtype})
    print(f"converted {args.model} to {args.dtype} in {args.out}")


if __name__ == "__main__":
    main()
