"""scripts/bench.py's per-step section: N trivial steps through each tool against a shell loop."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import bench_fixtures as fx
from bench_lib import (
    Bench,
    BenchError,
    Report,
    Target,
    capture,
    median,
    ms,
    ratio,
    rotated,
    say,
    step_env,
    time_interleaved,
    timed_run_cpu,
    top_imports,
)


@dataclass
class StepTotals:
    """Wall and own-CPU seconds of every run, by tool and N."""

    wall: dict[str, dict[int, list[float]]]
    cpu: dict[str, dict[int, list[float]]]

    def medians(self, which: str) -> dict[str, dict[int, float]]:
        runs = self.wall if which == "wall" else self.cpu
        return {tool: {n: median(v) for n, v in by_n.items()} for tool, by_n in runs.items()}


@dataclass
class StepFigures:
    """What the targets need from one kind of step."""

    totals: dict[str, dict[int, float]]   # median wall seconds by tool and N
    excess: dict[str, float]              # marginal wall seconds per step over the floor's (of the medians)
    paired: dict[str, float]              # the same, per round against that round's floor, median of the rounds


def section_steps(bench: Bench) -> Report:
    work = bench.workdir("steps")
    small, large = bench.sizes.step_ns
    report = Report(f"Per-step overhead (run once; medians of {bench.sizes.step_reps} runs, interleaved)",
                    ("metric", "Lynx", "baseline", "floor (shell loop)", "Lynx × floor", "Lynx × baseline"))
    scripts = fx.trivial_steps(work / "py", large)
    py = step_kind(bench, report, "`.py`", scripts, [bench.python], work, bench.sizes.step_reps)
    # The same with a do-nothing executable: no interpreter start-up per step, so ~50x less noise.
    links = fx.true_steps(work / "true", large)
    # A round of these takes about a second: enough rounds that the machine's drift averages out.
    true = step_kind(bench, report, "`/bin/true`", links, [], work, 6 * bench.sizes.step_reps)
    report.notes.append("a `.py` step's own start-up varies by several ms on a busy machine, which swamps a per-step "
                        "overhead of tenths of a ms; `/bin/true` steps resolve it, so the target is judged on them, "
                        "with the paired estimate: each round's Lynx runs against the same round's shell loop, so a "
                        "stretch where the whole machine runs slow cancels out instead of landing on one tool.")
    note, design_imports = fixed_cost(bench, work)
    report.notes.append(note)
    report.notes.append(minimal_runner(bench, scripts[:small], work))
    config = fx.write_config(work / "imports.yaml", [(p, []) for p in scripts[:small]])
    warm_config(bench, config, work)   # what every start but the first after an edit imports
    report.notes.append("largest imports of `lynx start` (run once, no cron; -X importtime, cumulative): "
                        + top_imports(bench, ["-m", "lynx", "start", "-cf", str(config), "-ni"], work))
    gap = py.totals["Lynx"][small] - py.totals["floor"][small]
    report.targets += [
        Target("steps", "marginal overhead per step ≤ the baseline's and ≤ 0.2 ms (judged on `/bin/true` steps)",
               f"`/bin/true` steps, paired: Lynx {ms(true.paired['Lynx'], 3)}, baseline "
               f"{ms(true.paired['baseline'], 3)} (of the medians: {ms(true.excess['Lynx'], 3)}, "
               f"{ms(true.excess['baseline'], 3)}); `.py` steps: Lynx {ms(py.paired['Lynx'], 2)}, "
               f"baseline {ms(py.paired['baseline'], 2)}",
               true.paired["Lynx"] <= min(true.paired["baseline"], 0.0002)),
        Target("steps", f"N = {small} total within 40 ms of the shell loop",
               f"{ms(py.totals['Lynx'][small])} vs {ms(py.totals['floor'][small])}: +{ms(gap)} (a Python process "
               f"importing only yaml, docopt, logging and subprocess takes {ms(design_imports)})", gap <= 0.040),
    ]
    return report


def step_kind(bench: Bench, report: Report, kind: str, paths: list[Path], runner: list[str], work: Path,
              reps: int) -> StepFigures:
    """Time N = small and N = large steps of one kind through each tool; add the rows to `report`."""
    small, large = bench.sizes.step_ns
    name = "py" if runner else "true"
    configs = {n: fx.write_config(work / f"{name}{n}.yaml", [(p, []) for p in paths[:n]]) for n in (small, large)}
    for config in configs.values():   # as after a config's first start: its YAML is in Lynx's cache
        warm_config(bench, config, work)
    tools: dict[str, Callable[[int], list[str]]] = {
        "Lynx": lambda n: bench.lynx("start", "-cf", configs[n], "-ni"),
        "baseline": lambda n: bench.baseline("start", "-cf", configs[n]),
        "floor": lambda n: shell_loop(runner, paths[:n]),
    }
    totals = run_step_rounds(bench, tools, (small, large), work, reps, name)
    return step_rows(report, kind, totals, small, large)


def shell_loop(runner: list[str], paths: list[Path]) -> list[str]:
    """The floor: `sh` running each path in turn (through `runner`, e.g. the interpreter), stopping at a failure."""
    if runner:
        return ["/bin/sh", "-c", 'for f in "$@"; do "$0" "$f" || exit 1; done', *runner, *map(str, paths)]
    return ["/bin/sh", "-c", 'for f in "$@"; do "$f" || exit 1; done', "sh", *map(str, paths)]


def fixed_cost(bench: Bench, work: Path) -> tuple[str, float]:
    """What a run costs apart from its steps: one /bin/true step, against `python -c pass` and the
    design's imports alone; the note, and the median seconds of those imports."""
    config = fx.write_config(work / "true.yaml", [(Path("/bin/true"), [])])
    # What any Python tool built to this design imports before its first step: YAML for the config,
    # docopt for the command line, logging for the log, subprocess for the steps.
    design = "import yaml, docopt, logging, subprocess"
    warm_config(bench, config, work)
    # The first start after the config changed: its YAML is not in Lynx's cache (a cache home under a
    # file can be neither read nor written), so PyYAML is imported and composes it.
    uncached = ("import os, runpy, sys; os.environ['XDG_CACHE_HOME'] = os.path.join(sys.argv[1], 'x'); "
                "sys.argv[1:] = sys.argv[2:]; runpy.run_module('lynx', run_name='__main__')")   # as -m lynx
    commands = {"Lynx": bench.lynx("start", "-cf", config, "-ni"), "baseline": bench.baseline("start", "-cf", config),
                "python -c pass": [bench.python, "-c", "pass"], f"`{design}`": [bench.python, "-c", design],
                "Lynx, config not cached": [bench.python, "-c", uncached, str(config), "start", "-cf", str(config),
                                            "-ni"]}
    samples = time_interleaved(bench, commands, max(5, bench.sizes.step_reps), work, label="steps: fixed cost")
    med = {label: median(values) for label, values in samples.items()}
    return ("fixed cost of a run (one `/bin/true` step, median; Lynx with the config's YAML in its cache, as "
            "at every start but the first after an edit): "
            + ", ".join(f"{label} {ms(value)}" for label, value in med.items())
            + f"; Lynx's own start-up and exit ≈ {ms(med['Lynx'] - med['python -c pass'])} over the interpreter's, "
            + f"{ms(med['Lynx'] - med[f'`{design}`'])} over the design's imports alone"), med[f"`{design}`"]


# The least a Python program can do to run steps the way the design says (subprocess, output
# read from a pipe): no config, no log, no command line. What it costs over the shell loop is
# the share of the N = 30 target no design choice of Lynx's can win back.
MINIMAL_RUNNER = """\
import os, subprocess, sys
for path in sys.argv[1:]:
    proc = subprocess.Popen([sys.executable, path], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, bufsize=0, start_new_session=True)
    while os.read(proc.stdout.fileno(), 65536):
        pass
    proc.stdout.close()
    if proc.wait():
        sys.exit(1)
"""


def minimal_runner(bench: Bench, scripts: list[Path], work: Path) -> str:
    """The note: N `.py` steps through MINIMAL_RUNNER against the shell loop, interleaved."""
    commands = {"shell loop": shell_loop([bench.python], scripts),
                "minimal Python runner": [bench.python, "-c", MINIMAL_RUNNER, *map(str, scripts)]}
    samples = time_interleaved(bench, commands, max(5, bench.sizes.step_reps), work, env=step_env(bench),
                               label="steps: minimal runner")
    loop_s, runner_s = median(samples["shell loop"]), median(samples["minimal Python runner"])
    return (f"a minimal Python runner (Popen, read the pipe, wait; it imports only subprocess: scripts/bench_steps.py "
            f"MINIMAL_RUNNER) with the same N = {len(scripts)} `.py` steps: {ms(runner_s)} vs the shell loop's "
            f"{ms(loop_s)}, +{ms(runner_s - loop_s)}: what any Python tool pays before the design adds anything")


def warm_config(bench: Bench, config: Path, work: Path) -> None:
    """Start-up as at every start of a config but the first after an edit: `lynx check` puts its YAML in
    Lynx's cache (in the temp dir)."""
    done = capture(bench.lynx("check", "-cf", config), work, bench.procs.env)
    if done.returncode:
        raise BenchError(f"lynx check {config} failed: " + done.stderr.decode(errors="replace")[-500:])


def run_step_rounds(bench: Bench, tools: dict[str, Callable[[int], list[str]]], ns: tuple[int, int],
                    cwd: Path, reps: int, name: str) -> StepTotals:
    """Every tool at every N, round-robin (order rotated); a failed run is an error."""
    totals = StepTotals({tool: {n: [] for n in ns} for tool in tools}, {tool: {n: [] for n in ns} for tool in tools})
    for rep in range(reps):
        say(f"steps ({name}): round {rep + 1}/{reps}")
        for n in ns:
            for tool in rotated(list(tools), rep):
                seconds, code, cpu = timed_run_cpu(bench.procs, tools[tool](n), 30 + n, f"{tool} with {n} steps",
                                                   cwd=cwd, env=step_env(bench))
                if code != 0:
                    raise BenchError(f"{tool} with {n} {name} steps exited {code}")
                totals.wall[tool][n].append(seconds)
                totals.cpu[tool][n].append(cpu)
    return totals


def step_rows(report: Report, kind: str, runs: StepTotals, small: int, large: int) -> StepFigures:
    med = runs.medians("wall")
    marginal = {tool: (m[large] - m[small]) / (large - small) for tool, m in med.items()}
    excess = {tool: marginal[tool] - marginal["floor"] for tool in med}
    digits = 2 if kind.startswith("`.py") else 3

    def row(metric: str, values: dict[str, float], digits: int = 1, ratios: bool = True) -> None:
        cells = [ms(values[tool], digits) for tool in ("Lynx", "baseline", "floor")]
        report.rows.append((f"{kind} {metric}", *cells, ratio(values["Lynx"], values["floor"]) if ratios else "",
                            ratio(values["Lynx"], values["baseline"]) if ratios else ""))

    for n in (small, large):
        row(f"N = {n}: total", {tool: med[tool][n] for tool in med})
    for n in (small, large):
        row(f"N = {n}: (tool − floor) / N", {tool: (med[tool][n] - med["floor"][n]) / n for tool in med},
            digits, ratios=False)
    row(f"marginal per step (t{large} − t{small}) / {large - small}", marginal, digits)
    row("marginal overhead per step (marginal − floor's)", excess, digits, ratios=False)
    cpu = runs.medians("cpu")
    row("own CPU per step (marginal, children excluded)",
        {tool: (c[large] - c[small]) / (large - small) for tool, c in cpu.items()}, digits, ratios=False)
    spread = paired_excess(runs.wall, small, large)
    paired = {tool: median(values) for tool, values in spread.items()}
    row("marginal overhead per step, paired by round (median)", {**paired, "floor": 0.0}, digits, ratios=False)
    report.notes.append(f"{kind} steps: per-round paired estimates of the marginal overhead (noise): "
                        + "; ".join(f"{tool} {ms(min(v), digits)} … {ms(max(v), digits)}" for tool, v in spread.items()))
    return StepFigures(med, excess, paired)


def paired_excess(totals: dict[str, dict[int, list[float]]], small: int, large: int) -> dict[str, list[float]]:
    """Marginal overhead per round (the same round's floor subtracted), for Lynx and the baseline."""
    def marginal(tool: str, rep: int) -> float:
        return (totals[tool][large][rep] - totals[tool][small][rep]) / (large - small)
    reps = range(len(totals["floor"][small]))
    return {tool: [marginal(tool, r) - marginal("floor", r) for r in reps] for tool in ("Lynx", "baseline")}
