"""scripts/bench.py's start-up section: `lynx --help`, `check`, `stop` against the floors."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import bench_fixtures as fx
from bench_lib import (
    BASELINE,
    REPO,
    Bench,
    Report,
    Target,
    capture,
    import_times,
    median,
    ms,
    percentile,
    ratio,
    time_interleaved,
    top_imports,
)

# Runs a Lynx command in-process and writes which heavy modules it imported.
MODULES_PROBE = """\
import json, sys
from lynx.cli import main
try:
    code = main(sys.argv[2:])
except SystemExit as exc:
    code = exc.code
watched = ("yaml", "croniter", "dateutil", "apscheduler", "docopt", "psutil", "daemon", "lynx.config")
with open(sys.argv[1], "w") as out:
    json.dump({"code": code, "imported": [name for name in watched if name in sys.modules]}, out)
"""


def section_startup(bench: Bench) -> Report:
    work = bench.workdir("startup")
    step = fx.trivial_steps(work / "steps", 1)[0]
    config = fx.write_config(work / "small.yaml", [(step, [])], cron={"minute": "*/5"})
    pidfile = work / "nothing-running.json"
    commands = {
        "`python -I -S -c pass` (bare interpreter)": [bench.python, "-I", "-S", "-c", "pass"],
        "`python -c pass` (floor)": [bench.python, "-c", "pass"],
        "`python -m lynx --help`": bench.lynx("--help"),
        "`python -S -m lynx --help` (no site import)": [bench.python, "-S", "-m", "lynx", "--help"],
    }
    console = console_script(bench.python)
    if console:
        commands["`lynx --help` (console script)"] = [console, "--help"]
    commands["`python -m lynx check -cf small.yaml`"] = bench.lynx("check", "-cf", config)
    commands["`python -m lynx stop` (nothing running)"] = bench.lynx("stop", "--pid-file", pidfile)
    commands["baseline `--help`"] = bench.baseline("--help")
    # -S leaves site-packages off sys.path: find Lynx through PYTHONPATH (--help needs nothing else).
    env = {**bench.procs.env, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    outcomes = {label: probe(argv, work, env) for label, argv in commands.items()}   # also warms caches
    samples = time_interleaved(bench, commands, bench.sizes.startup_reps, work, env)
    floor = median(samples["`python -c pass` (floor)"])
    report = Report(f"Start-up (wall time, {bench.sizes.startup_reps} runs each, interleaved)",
                    ("command", "median", "min", "p90", "− floor", "× floor", "exit"))
    for label, values in samples.items():
        med = median(values)
        report.rows.append((label, ms(med), ms(min(values)), ms(percentile(values, 90)),
                            ms(med - floor), ratio(med, floor), outcomes[label]))
    help_med = median(samples["`python -m lynx --help`"])
    base_help = median(samples["baseline `--help`"])
    stop_modules = modules_imported(bench, ["stop", "--pid-file", str(pidfile)], work)
    help_modules = modules_imported(bench, ["--help"], work)
    bare = median(samples["`python -I -S -c pass` (bare interpreter)"])
    report.notes += [
        ("`python -c pass` includes the site import; `python -I -S -c pass` shows the interpreter alone. "
         f"The difference ({ms(floor - bare)}) is paid by every Python process here, Lynx and steps "
         f"included: {site_summary(bench, work)}."),
        ("The `lynx` console script adds the entry-point shim's cost over `python -m lynx`"
         + (f" ({console})." if console else "; no console script next to this interpreter.")),
        (f"modules imported by `lynx stop`: {', '.join(stop_modules['imported']) or 'none of the watched'}"
         f" (exit {stop_modules['code']}); by `lynx --help`: {', '.join(help_modules['imported']) or 'none'}"
         " (watched: yaml croniter dateutil apscheduler docopt psutil daemon lynx.config)."),
    ]
    for label, argv in (("lynx --help", ["--help"]), ("lynx stop", ["stop", "--pid-file", str(pidfile)]),
                        ("lynx check", ["check", "-cf", str(config)])):
        report.notes.append(f"largest imports of `{label}` (-X importtime, cumulative): "
                            + top_imports(bench, ["-m", "lynx", *argv], work))
    report.notes.append("largest imports of baseline `--help`: " + top_imports(bench, [str(BASELINE), "--help"], work))
    bad = [name for name in ("croniter", "yaml") if name in stop_modules["imported"]]
    report.targets += [
        Target("startup", "`lynx --help` median ≤ 25 ms", ms(help_med), help_med <= 0.025),
        Target("startup", "`lynx --help` ≤ 1/3 of the baseline's `--help`",
               f"{ms(help_med)} vs {ms(base_help)} = {ratio(help_med, base_help)}", help_med <= base_help / 3),
        Target("startup", "`lynx stop` never imports croniter or yaml",
               f"imports {', '.join(bad) or 'neither'}", not bad),
    ]
    return report


def console_script(python: str) -> str | None:
    """The `lynx` script installed with this interpreter (not a pyenv shim elsewhere on PATH)."""
    sibling = Path(python).parent / "lynx"
    if sibling.is_file() and os.access(sibling, os.X_OK):
        return str(sibling)
    found = shutil.which("lynx")
    if found and Path(found).resolve().parent == Path(python).resolve().parent:
        return found
    return None


def probe(argv: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Run once: 'EXIT: first line of stderr' when it fails, else the exit status."""
    done = capture(argv, cwd, env)
    if done.returncode == 0:
        return "0"
    first = (done.stderr.decode(errors="replace").strip().splitlines() or [""])[0]
    return f"{done.returncode}: {first[:70]}"


def modules_imported(bench: Bench, argv: list[str], cwd: Path) -> dict:
    out = cwd / "modules.json"
    capture([bench.python, "-c", MODULES_PROBE, str(out), *argv], cwd, bench.procs.env)
    return json.loads(out.read_text())


def site_summary(bench: Bench, cwd: Path) -> str:
    """What `site` imports at start-up (e.g. an editable install's finder, a .pth importing certifi)."""
    children: list[tuple[int, str, int]] = []
    for depth, name, us in import_times(bench, ["-c", "pass"], cwd):
        if depth == 0 and name == "site":   # -X importtime lists a module after what it imported
            heavy = sorted((c for c in children if c[0] == 1), key=lambda c: -c[2])[:3]
            parts = ", ".join(f"{child} {child_us / 1000:.1f} ms" for _, child, child_us in heavy)
            return f"site {us / 1000:.1f} ms" + (f", of which {parts}" if parts else "")
        children = [] if depth == 0 else [*children, (depth, name, us)]
    return "no site import reported"
