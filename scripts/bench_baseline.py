"""The design Lynx replaces, rebuilt small for scripts/bench.py to measure against.

APScheduler's BlockingScheduler + CronTrigger, eager imports of apscheduler, croniter, psutil and
yaml at the top (as the old tool had them, whatever the command), steps run with subprocess, and
every line a step prints logged as one record through a RotatingFileHandler and a StreamHandler.
Step output is read in text mode, so a carriage-return progress bar becomes one record per redraw
(universal newlines), as it did in the old tool.

    python scripts/bench_baseline.py --help
    python scripts/bench_baseline.py start -cf CONFIG [-lf FILE -ls BYTES -lbc N]       # run once
    python scripts/bench_baseline.py start -cf CONFIG -ni [-lf FILE ...]  # follow the cron section

Only the config subset the benchmark writes is understood: `steps` of `script` (+ `arguments`)
and a `cron` mapping of CronTrigger keyword arguments.
"""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import os
import shlex
import subprocess
import sys
from pathlib import Path

import apscheduler  # noqa: F401  (eager, like the old tool)
import croniter  # noqa: F401  (eager, like the old tool)
import psutil  # noqa: F401  (eager, like the old tool)
import yaml
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

log = logging.getLogger("pipeline")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="baseline", description="Run a pipeline once or on a cron schedule.")
    parser.add_argument("command", choices=["start"])
    parser.add_argument("-cf", "--config-file", default="conf/config.yaml")
    parser.add_argument("-lf", "--log-file")
    parser.add_argument("-ls", "--log-size", type=int, default=2097152)
    parser.add_argument("-lbc", "--log-backup-count", type=int, default=3)
    parser.add_argument("-ni", "--non-interactive", action="store_true")
    return parser.parse_args(argv)


def setup_logging(args: argparse.Namespace) -> None:
    """One StreamHandler (stdout) and, with -lf, one RotatingFileHandler; every record goes to both."""
    log.setLevel(logging.INFO)
    screen = logging.StreamHandler(sys.stdout)
    screen.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(screen)
    if args.log_file:
        handler = logging.handlers.RotatingFileHandler(args.log_file, maxBytes=args.log_size,
                                                       backupCount=args.log_backup_count)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
        log.addHandler(handler)


def load_steps(path: Path) -> tuple[list[tuple[str, list[str]]], dict | None]:
    """[(name, argv)] and the cron mapping (or None)."""
    config = yaml.safe_load(path.read_text())
    steps = []
    for item in config["steps"]:
        script = (path.parent / item["script"]).resolve()
        arguments = item.get("arguments", [])
        arguments = [arguments] if isinstance(arguments, str) else arguments
        args = [word for text in arguments for word in shlex.split(str(text))]
        argv = [sys.executable, str(script), *args] if script.suffix == ".py" else [str(script), *args]
        steps.append((script.stem, argv))
    return steps, config.get("cron")


def run_step(name: str, argv: list[str]) -> int:
    """Run one step; log each line of its output as one record."""
    log.info("step '%s' started", name)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL, env=env)
    for line in proc.stdout:
        log.info("%s | %s", name, line.rstrip("\n"))
    code = proc.wait()
    log.info("step '%s' ended with exit status %d", name, code)
    return code


def run_pipeline(steps: list[tuple[str, list[str]]]) -> bool:
    for name, argv in steps:
        if run_step(name, argv) != 0:
            return False
    return True


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    setup_logging(args)
    steps, cron = load_steps(Path(args.config_file))
    if not (args.non_interactive and cron):
        return 0 if run_pipeline(steps) else 1
    scheduler = BlockingScheduler()
    scheduler.add_job(run_pipeline, CronTrigger(**cron), args=[steps], max_instances=1, coalesce=True)
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
