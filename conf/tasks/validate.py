"""Check the model on the held-out rows; fail (exit 1) when its error is too large."""

import argparse
import csv
import json
import math
import sys
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--max-rmse", type=float, default=0.5)
    args = parser.parse_args()

    model = json.loads(Path(args.model).read_text())
    with open(args.data, newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["split"] == "test"]
    errors = [model["slope"] * float(r["x"]) + model["intercept"] - float(r["y"]) for r in rows]
    rmse = math.sqrt(sum(e * e for e in errors) / len(errors))
    print(f"held-out RMSE {rmse:.4f} on {len(rows)} rows (limit {args.max_rmse})")
    if rmse > args.max_rmse:
        print("validation failed: the model is not good enough to deploy", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
