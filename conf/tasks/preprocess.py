"""Make a noisy linear dataset and split it into training and held-out rows."""

import argparse
import csv
import random
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", required=True)
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--noise", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--holdout", type=float, default=0.25, help="share of rows kept for validation")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    slope, intercept = 2.5, -1.0  # the truth the model should recover
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["x", "y", "split"])
        for _ in range(args.samples):
            x = rng.uniform(-5, 5)
            y = slope * x + intercept + rng.gauss(0, args.noise)
            writer.writerow([f"{x:.6f}", f"{y:.6f}", "test" if rng.random() < args.holdout else "train"])
    print(f"wrote {args.samples} rows to {out} (y = {slope}x + {intercept} + noise {args.noise})")


if __name__ == "__main__":
    main()
