"""Fit y = a*x + b to the training rows by gradient descent on the squared error."""

import argparse
import csv
import json
import sys
from pathlib import Path


def load(path: str, split: str):
    with open(path, newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["split"] == split]
    return [float(r["x"]) for r in rows], [float(r["y"]) for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--rate", type=float, default=0.05)
    args = parser.parse_args()

    xs, ys = load(args.data, "train")
    n = len(xs)
    a = b = 0.0
    for epoch in range(1, args.epochs + 1):
        grad_a = sum((a * x + b - y) * x for x, y in zip(xs, ys)) * 2 / n
        grad_b = sum(a * x + b - y for x, y in zip(xs, ys)) * 2 / n
        a, b = a - args.rate * grad_a, b - args.rate * grad_b
        if epoch % 10 == 0 or epoch == args.epochs:
            done = epoch * 30 // args.epochs
            # A tqdm-style progress bar: redrawn in place with a carriage return.
            sys.stdout.write(f"\rtraining [{'#' * done}{'.' * (30 - done)}] epoch {epoch}/{args.epochs}")
            sys.stdout.flush()
    mse = sum((a * x + b - y) ** 2 for x, y in zip(xs, ys)) / n
    print(f"\nfitted y = {a:.3f}x + {b:.3f} on {n} rows (training MSE {mse:.4f})")
    Path(args.model).write_text(json.dumps({"slope": a, "intercept": b, "train_mse": mse}))


if __name__ == "__main__":
    main()
