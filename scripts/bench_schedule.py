"""scripts/bench.py's scheduling sections: fire accuracy, idle, and the soak."""

from __future__ import annotations

import math
import shlex
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import bench_fixtures as fx
from bench_lib import (
    Bench,
    BenchError,
    MiB,
    Report,
    Target,
    mb,
    median,
    ms,
    percentile,
    rotated,
    say,
    step_env,
    usage,
)


@dataclass
class Fires:
    """What a scheduled run recorded: step start times, and how the tool ended."""

    stamps: list[float]
    launched: float
    exit: int
    rss: list[tuple[float, int]] = field(default_factory=list)   # (time, RSS) sampled mid-second

    @property
    def lateness(self) -> list[float]:
        return [t - math.floor(t) for t in self.stamps]

    def counts(self) -> tuple[int, int]:
        """(missed, duplicated): whole seconds without a fire (from the first one due), and extra fires."""
        if not self.stamps:
            return 0, 0
        per_second = Counter(math.floor(t) for t in self.stamps)
        first_due = min(min(per_second), math.ceil(self.launched + 1.0))   # start-up gets a second
        missed = (max(per_second) - first_due + 1) - len(per_second)
        return missed, sum(count - 1 for count in per_second.values())


FIRE_TOOLS = ("Lynx", "baseline", "floor")
# The step as the issue has it (a .py step) and one that starts in ~1 ms, which can resolve 1 ms.
STEP_KINDS = {"py": "`.py` step", "sh": "`sh` + `date` step"}


def section_fire(bench: Bench) -> Report:
    """Each tool's fires in blocks, the blocks interleaved, so slow drift of the machine hits all alike."""
    work = bench.workdir("fire")
    fires, blocks = bench.sizes.fires, bench.sizes.fire_blocks
    per_block = math.ceil(fires / blocks)
    report = Report(f"Fire accuracy (`second: '*'`; per tool and step, {blocks} interleaved block(s) of "
                    f"{per_block} fires, each started and stopped)", ("metric", *FIRE_TOOLS[:2], "floor (sleep, spawn)"))
    late: dict[str, dict[str, list[float]]] = {}
    results: dict[str, dict[str, list[Fires]]] = {}
    for kind, label in STEP_KINDS.items():
        results[kind] = fire_blocks(bench, work, kind, blocks, per_block)
        stats = {tool: fire_stats(runs) for tool, runs in results[kind].items()}
        for metric in stats["Lynx"]:
            report.rows.append((f"{label}: {metric}", *(stats[tool][metric] for tool in FIRE_TOOLS)))
        late[kind] = {tool: [x for run in runs for x in run.lateness] for tool, runs in results[kind].items()}
    report.notes.append("lateness = the step's first clock reading minus the whole second; it includes the step's "
                        "own start-up, which the floor shows. Each block's first fire is included.")
    report.targets += fire_targets(late, results, fires)
    return report


def fire_blocks(bench: Bench, work: Path, kind: str, blocks: int, per_block: int) -> dict[str, list[Fires]]:
    results: dict[str, list[Fires]] = {tool: [] for tool in FIRE_TOOLS}
    for block in range(blocks):
        for tool in rotated(list(FIRE_TOOLS), block):
            results[tool].append(scheduled_run(bench, work, tool, per_block, kind))
    return results


def fire_targets(late: dict[str, dict[str, list[float]]], results: dict[str, dict[str, list[Fires]]],
                 fires: int) -> list[Target]:
    """Median and max judged on the `sh` step (its start-up does not drown 1 ms); the `.py` figures shown."""
    def med(kind: str, tool: str) -> float:
        return median(late[kind][tool])

    def worst(kind: str) -> float:
        return max(late[kind]["Lynx"], default=math.nan) - med(kind, "floor")

    gap = {kind: med(kind, "Lynx") - med(kind, "floor") for kind in STEP_KINDS}
    counts = [fire_counts(results[kind]["Lynx"]) for kind in STEP_KINDS]
    missed, duplicated = sum(c[0] for c in counts), sum(c[1] for c in counts)
    enough = all(len(late[kind]["Lynx"]) >= fires for kind in STEP_KINDS)
    return [
        Target("fire", "lateness median within 1 ms of the floor",
               f"`sh` step {ms(med('sh', 'Lynx'), 2)} vs {ms(med('sh', 'floor'), 2)} ({ms(gap['sh'], 2)}); "
               f"`.py` step {ms(med('py', 'Lynx'), 2)} vs {ms(med('py', 'floor'), 2)} ({ms(gap['py'], 2)})",
               gap["sh"] <= 0.001),
        Target("fire", "lateness max ≤ 20 ms (beyond the floor's median: the step's start-up)",
               f"`sh` step {ms(worst('sh'))}; `.py` step {ms(worst('py'))}", worst("sh") <= 0.020),
        Target("fire", "no missed or duplicate fires (both steps)", f"{missed} missed, {duplicated} duplicated",
               missed == 0 and duplicated == 0 and enough),
    ]


def fire_counts(runs: list[Fires]) -> tuple[int, int]:
    """(missed, duplicated) over all runs."""
    counts = [run.counts() for run in runs]
    return sum(c[0] for c in counts), sum(c[1] for c in counts)


def fire_stats(runs: list[Fires]) -> dict[str, object]:
    late = [x for run in runs for x in run.lateness]
    missed, duplicated = fire_counts(runs)
    first = [min(run.stamps) - run.launched for run in runs if run.stamps]
    return {"fires": len(late), "lateness median": ms(median(late), 2),
            "lateness p90": ms(percentile(late, 90), 2), "lateness max": ms(max(late, default=math.nan), 2),
            "missed / duplicated": f"{missed} / {duplicated}",
            "first fire after launch (max)": f"{max(first, default=math.nan):.2f} s",
            "exit status": ", ".join(sorted({str(run.exit) for run in runs}))}


def scheduled_run(bench: Bench, work: Path, tool: str, fires: int, kind: str = "py",
                  sample_rss: bool = False) -> Fires:
    """Start `tool` on a once-a-second schedule, wait for `fires` fires, stop it with SIGINT mid-second."""
    times = work / f"{tool}-{kind}.times"
    times.unlink(missing_ok=True)
    step = bench.scripts[f"fire_step.{kind}"]
    config = fx.write_config(work / f"{tool}-{kind}.yaml", [(step, [shlex.quote(str(times))])],
                             cron={"second": "*"})
    step_argv = [bench.python, str(step)] if kind == "py" else [str(step)]
    argv = {"Lynx": bench.lynx("start", "-cf", config, "-ni"),
            "baseline": bench.baseline("start", "-cf", config, "-ni"),
            "floor": [bench.python, str(bench.scripts["fire_floor.py"]), *step_argv, str(times)]}[tool]
    say(f"fire: {tool}, {kind} step, {fires} fires")
    with open(work / f"{tool}-{kind}.stderr", "wb") as errors:
        launched = time.time()
        proc = bench.procs.spawn(argv, cwd=work, stderr=errors, env=step_env(bench))
        rss = wait_for_fires(proc, times, fires, sample_rss, tool)
        sleep_to_fraction(0.5)   # no step is starting: stop between fires
        code = bench.procs.interrupt(proc)
    return Fires(read_stamps(times), launched, code, rss)


def wait_for_fires(proc: subprocess.Popen, times: Path, fires: int, sample_rss: bool,
                   tool: str) -> list[tuple[float, int]]:
    """Poll until `fires` stamps are recorded; optionally sample the tool's RSS mid-second."""
    import psutil

    deadline = time.monotonic() + fires + 30
    watched = psutil.Process(proc.pid)
    rss: list[tuple[float, int]] = []
    while len(read_stamps(times)) < fires:
        if proc.poll() is not None:
            raise BenchError(f"{tool} exited ({proc.returncode}) after {len(read_stamps(times))} fires")
        if time.monotonic() > deadline:
            raise BenchError(f"{tool}: only {len(read_stamps(times))} of {fires} fires in time")
        if sample_rss:
            sleep_to_fraction(0.5)
            rss.append((time.time(), watched.memory_info().rss))
        else:
            time.sleep(0.1)
    return rss


def read_stamps(path: Path) -> list[float]:
    try:
        return [float(line) for line in path.read_text().split()]
    except FileNotFoundError:
        return []


def sleep_to_fraction(fraction: float) -> None:
    """Sleep until the wall clock's fraction of a second is `fraction` (at least 0.05 s from now)."""
    now = time.time()
    target = math.floor(now) + fraction
    while target < now + 0.05:
        target += 1
    time.sleep(target - now)


# =============================================================================================== idle

def section_idle(bench: Bench) -> Report:
    work = bench.workdir("idle")
    step = fx.trivial_steps(work / "steps", 1)[0]
    hour = (time.gmtime().tm_hour + 3) % 24
    config = fx.write_config(work / "idle.yaml", [(step, [])],
                             cron={"hour": hour, "minute": 0, "second": 0, "timezone": "UTC"})
    tools = {"Lynx": bench.lynx("start", "-cf", config, "-ni"),
             "baseline": bench.baseline("start", "-cf", config, "-ni"),
             "floor (sleeping python)": [bench.python, "-c", "import time; time.sleep(3600)"]}
    window = bench.sizes.idle_seconds
    say(f"idle: {window:g} s window, next fire at {hour:02d}:00 UTC")
    procs = {tool: bench.procs.spawn(argv, cwd=work) for tool, argv in tools.items()}
    time.sleep(2.0)   # start-up over: each is waiting now
    for tool, proc in procs.items():
        if proc.poll() is not None:
            raise BenchError(f"idle: {tool} exited ({proc.returncode}) instead of waiting")
    before = {tool: usage(proc.pid) for tool, proc in procs.items()}
    time.sleep(window)
    after = {tool: usage(proc.pid) for tool, proc in procs.items()}
    for proc in procs.values():
        bench.procs.interrupt(proc)
    return idle_report(before, after, window)


def idle_report(before: dict, after: dict, window: float) -> Report:
    report = Report(f"Idle (next fire hours away; {window:g} s window after 2 s of start-up)",
                    ("metric", *before))

    def row(metric: str, value: Callable[[str], object]) -> None:
        report.rows.append((metric, *(value(tool) for tool in before)))

    row("RSS", lambda t: mb(after[t].rss))
    row("CPU seconds in the window", lambda t: f"{after[t].cpu - before[t].cpu:.3f} s")
    row("voluntary context switches (wakeups)", lambda t: after[t].voluntary - before[t].voluntary)
    row("involuntary context switches", lambda t: after[t].involuntary - before[t].involuntary)
    row("threads", lambda t: after[t].threads)
    wakeups = after["Lynx"].voluntary - before["Lynx"].voluntary
    allowed = math.ceil(window / 60)
    report.targets += [
        Target("idle", "no periodic wakeups more often than once a minute",
               f"{wakeups} wakeups in {window:g} s (allowed {allowed})", wakeups <= allowed),
        Target("idle", "RSS ≤ 20 MiB", mb(after["Lynx"].rss), after["Lynx"].rss <= 20 * MiB),
    ]
    return report


# =============================================================================================== soak

def section_soak(bench: Bench) -> Report:
    work = bench.workdir("soak")
    fires = bench.sizes.soak_fires
    result = scheduled_run(bench, work, "Lynx", fires, "py", sample_rss=True)
    missed, duplicated = result.counts()
    samples = [rss for _, rss in result.rss]
    start = median(samples[5:15]) if len(samples) >= 15 else samples[0]
    end = median(samples[-10:])
    late = result.lateness
    report = Report(f"Soak (Lynx, `second: '*'`, {fires}+ fires)", ("metric", "Lynx"))
    report.rows += [("fires recorded", len(late)), ("missed", missed), ("duplicated", duplicated),
                    ("lateness median / max", f"{ms(median(late), 2)} / {ms(max(late), 2)}"),
                    ("RSS after ~10 fires", mb(start)), ("RSS at the end", mb(end)),
                    ("RSS peak (mid-second samples)", mb(max(samples)))]
    report.targets += [
        Target("soak", "no missed or duplicated fire", f"{missed} missed, {duplicated} duplicated",
               missed == 0 and duplicated == 0),
        Target("soak", "RSS growth ≤ 1 MiB", mb(end - start), end - start <= MiB),
    ]
    return report
