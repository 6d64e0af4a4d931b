"""Benchmark Lynx against the APScheduler design it replaces, and against the floor, in one run.

Run it from a clean virtual environment (a system Python's site import can cost tens of ms and
would hide what Lynx itself costs):

    python3 -m venv /tmp/benchenv && . /tmp/benchenv/bin/activate && pip install -e '.[bench]' \
        && python scripts/bench.py

    python scripts/bench.py --quick                 # smaller sizes, about a minute
    python scripts/bench.py --only startup,idle     # some sections: startup steps fire idle output soak
    python scripts/bench.py --soak                  # also the soak (300 fires, over 5 minutes)

The report (markdown) goes to stdout, progress to stderr; a full run takes about 5 minutes on 2 cores.
Everything runs in a temporary directory that is removed at the end; every process started leads
its own process group and is killed on error or timeout. Lynx runs as `sys.executable -m lynx`
(the `lynx` console script adds the entry-point shim's cost, measured separately); the baseline is
scripts/bench_baseline.py (the old design: BlockingScheduler + CronTrigger, eager imports, one
logging record per output line). The processes measured run without PYTHONDONTWRITEBYTECODE and
PYTHONUNBUFFERED, with bytecode cached under the temporary directory (PYTHONPYCACHEPREFIX, filled
by a warm-up), as an installed Lynx would be after its first run; Lynx's config cache is there too
(XDG_CACHE_HOME), warm for each config before it is timed, as at every start but the first after an
edit (a run's fixed cost is also shown with the config not cached).

Sections (medians; "floor" is the least any tool could take for the same work):
  startup  wall time of `lynx --help`, `lynx check` (small config with a cron section) and `lynx stop`
           (nothing running), 21 runs each, interleaved; floors `python -c pass` and `python -I -S
           -c pass` (no site import); the baseline's `--help`. Also which heavy modules `lynx stop`
           imports, and each command's largest imports (python -X importtime).
  steps    one run of N = 30 and N = 200 do-nothing .py steps, against a shell loop running the same
           scripts with the same interpreter: (tool - floor) / N, and the marginal cost per step
           (t200 - t30) / 170, whose excess over the floor's is the per-step overhead. The same with
           /bin/true steps (30 rounds), which measures that overhead without the interpreter's
           start-up noise, judged on the paired estimate (each round's tool against the same round's
           loop, median over rounds); each tool's own CPU per step (sampled, children excluded); a
           run's fixed cost, next to a Python process that only imports what the design requires
           (yaml, docopt, logging, subprocess): the least any tool built this way pays per run; and
           a minimal Python runner (Popen, read the pipe, wait) with the N = 30 `.py` steps against
           the shell loop: what running steps from Python costs before any design choice.
  fire     `second: '*'` for 30 fires (`start -ni`, stopped with SIGINT, first fire included) in 3
           blocks of 10 per tool, interleaved; each step writes time.time() as its first statement;
           lateness after the whole second (median / p90 / max), missed and duplicated fires. The
           floor sleeps to the next whole second and spawns the same step, so its lateness is the
           step's own start-up, which every tool pays. The same again with an `sh` step that execs
           `date +%s.%N` (about 2 ms of start-up instead of the interpreter's ~30 ms, which varies by
           several ms here): the 1 ms and 20 ms targets are judged on it, the .py figures shown too.
  idle     a schedule whose next fire is hours away: RSS, CPU seconds and context switches (all
           threads) over a 10 s window, Lynx vs baseline vs a sleeping `python -c`.
  output   one step printing 200 MB of 100-byte lines, one drawing 200k carriage-return progress
           updates (one write each), through `-lf LOG -ls 2097152 -lbc 3` with stdout on /dev/null;
           floor `gen | tee LOG > /dev/null`. Throughput is the rate the generator could write (it
           records its first and last write; a pipe lets it go only as fast as its reader); wall
           time with start-up, the consumer's own CPU, and peak RSS (sampled every 10 ms) are shown
           too. The logs are checked: every line of the retained rotated segments present, in
           order, the last one included. The baseline gets a tenth of the 200 MB (one record per
           line is slow); rates compare. The generators alone (stdout on /dev/null) give the
           pace no reader of a pipe can reach.
  soak     (--soak) 300 fires at one per second: no missed or duplicated fire, RSS growth <= 1 MiB.

Units: MB/s is 10^6 bytes per second; memory is in MiB. Targets are printed PASS/MISS, never asserted.
The sections live in scripts/bench_{startup,steps,schedule,output}.py; shared helpers in bench_lib.py,
the files the tools run in bench_fixtures.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import bench_fixtures as fx
from bench_lib import (
    DROPPED_ENV,
    QUICK,
    REPO,
    SCRIPTS,
    Bench,
    BenchError,
    Procs,
    Report,
    Sizes,
    capture,
    child_env,
    machine_header,
    say,
    targets_table,
)
from bench_output import section_output
from bench_schedule import section_fire, section_idle, section_soak
from bench_startup import section_startup
from bench_steps import section_steps

SECTIONS = ("startup", "steps", "fire", "idle", "output")


# Imports (so compiles into the cache) every module the tools load; -m lynx's __main__ is cached by
# the start-up section's warm-up runs.
WARM_UP = """\
import importlib, pkgutil, sys
import lynx
for module in pkgutil.iter_modules(lynx.__path__):
    if module.name != "__main__":
        try:
            importlib.import_module("lynx." + module.name)
        except Exception as exc:
            print(f"lynx.{module.name}: {exc}", file=sys.stderr)
sys.path.insert(0, sys.argv[1])
import bench_baseline, apscheduler.executors.pool, apscheduler.jobstores.memory, docopt, runpy
"""


def warm_up(bench: Bench) -> None:
    """Fill the bytecode cache, as a user's installed Lynx would have it after its first run."""
    done = capture([bench.python, "-c", WARM_UP, str(SCRIPTS)], bench.root, bench.procs.env)
    if done.returncode:
        raise BenchError("warm-up failed: " + done.stderr.decode(errors="replace")[-500:])


# =============================================================================================== main

RUNNERS: dict[str, Callable[[Bench], Report]] = {
    "startup": section_startup, "steps": section_steps, "fire": section_fire, "idle": section_idle,
    "output": section_output, "soak": section_soak,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, smaller sizes (~1 min)")
    parser.add_argument("--only", help=f"comma-separated sections: {','.join(SECTIONS)},soak")
    parser.add_argument("--soak", action="store_true", help="also run the soak (>= 300 fires, over 5 min)")
    parser.add_argument("--soak-fires", type=int, default=Sizes.soak_fires, metavar="N",
                        help=f"fires in the soak (default {Sizes.soak_fires})")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else list(SECTIONS)
    unknown = set(names) - set(RUNNERS)
    if unknown:
        parser.error(f"unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(RUNNERS)}")
    if args.soak and "soak" not in names:
        names.append("soak")
    args.sections = names
    return args


def check_install(python: str) -> str:
    """Lynx must be importable by this interpreter; say where it comes from."""
    spec = importlib.util.find_spec("lynx")
    if spec is None or spec.origin is None:
        raise BenchError("lynx is not importable: run `pip install -e '.[bench]'` in this environment first")
    if importlib.util.find_spec("apscheduler") is None:
        raise BenchError("apscheduler is missing (the baseline needs it): pip install 'apscheduler>=3.10,<4'")
    origin = Path(spec.origin).resolve().parent
    return str(origin) + ("" if origin.parent == REPO else f" (NOT this checkout, {REPO})")


def header(bench: Bench, lynx_from: str, sections: list[str], quick: bool) -> str:
    import apscheduler

    from lynx import __version__

    extra = [("Lynx", f"{__version__} from {lynx_from}"), ("APScheduler (baseline)", apscheduler.__version__),
             ("environment", environment_note(bench)),
             ("run", (f"{'--quick' if quick else 'full'}; sections {', '.join(sections)}; "
                      f"{time.strftime('%Y-%m-%d %H:%M %Z')}"))]
    return "## Lynx benchmark\n\n" + machine_header(extra) + "\n"


def environment_note(bench: Bench) -> str:
    dropped = [key for key in DROPPED_ENV if key in os.environ]
    note = ("bytecode cached in the temp dir (PYTHONPYCACHEPREFIX), warmed up first; Lynx's config cache there "
            "too (XDG_CACHE_HOME), warm")
    return note + (f"; unset for the processes measured: {', '.join(dropped)}" if dropped else "")


def exit_on_signal(signum: int, frame: object) -> None:
    """SIGTERM / SIGHUP end the benchmark through its `finally`, which kills what it started."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, exit_on_signal)
    # Started as a background job (`bench.py &` in a script), this process ignores SIGINT, and the
    # tools it starts would inherit that and never see the SIGINT the fire and soak sections stop
    # them with (Python keeps an inherited SIG_IGN, as any Unix program should).
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    root = Path(tempfile.mkdtemp(prefix="lynx-bench-"))
    sizes = dataclasses.replace(QUICK if args.quick else Sizes(), soak_fires=args.soak_fires)
    bench = Bench(root, sizes, Procs(child_env(root)))
    started = time.monotonic()
    reports: list[Report] = []
    try:
        lynx_from = check_install(bench.python)
        bench.scripts = fx.write_scripts(bench.workdir("scripts"))
        warm_up(bench)
        print(header(bench, lynx_from, args.sections, args.quick), flush=True)
        for name in args.sections:
            say(f"section {name}")
            reports.append(RUNNERS[name](bench))
            print(reports[-1].render(), flush=True)
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    finally:
        bench.procs.cleanup()
        shutil.rmtree(root, ignore_errors=True)
    print("### Targets\n\n" + targets_table([t for r in reports for t in r.targets]) + "\n")
    print(f"(benchmark took {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
