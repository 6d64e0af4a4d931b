"""'Deploy' the model: copy it with a version stamp into the target folder."""

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--target", required=True)
    args = parser.parse_args()

    model = json.loads(Path(args.model).read_text())
    version = time.strftime("%Y%m%d-%H%M%S")
    target = Path(args.target)
    target.mkdir(parents=True, exist_ok=True)
    deployed = dict(model, version=version)
    (target / f"model-{version}.json").write_text(json.dumps(deployed, indent=2))
    (target / "current.json").write_text(json.dumps(deployed, indent=2))
    print(f"deployed model version {version} to {target / 'current.json'}")


if __name__ == "__main__":
    main()
