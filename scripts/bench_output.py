"""scripts/bench.py's output section: 200 MB of lines and 200k progress redraws through each tool."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import bench_fixtures as fx
from bench_lib import (
    LOG_BACKUPS,
    LOG_SIZE,
    Bench,
    BenchError,
    MiB,
    Report,
    Sampled,
    Sizes,
    Target,
    mb,
    median,
    ratio,
    rotated,
    sample_until_exit,
    say,
    step_env,
)


@dataclass
class OutputRun:
    """One pass of a generator through a tool."""

    wall: float
    writing: float     # the generator's first write to its last
    peak_rss: int
    cpu: float         # the consumer's own CPU seconds
    check: tuple[bool, str]


def section_output(bench: Bench) -> Report:
    sizes = bench.sizes
    report = Report("Output throughput (step output to stdout → /dev/null and to the rotating log)",
                    ("metric", "Lynx", "baseline", "floor (tee)", "Lynx × tee", "Lynx × baseline"))
    lines = output_rounds(bench, "lines", lambda tool: amount_of(tool, sizes))
    updates = output_rounds(bench, "progress", lambda tool: sizes.progress_updates)
    line_rate = add_output_rows(report, "100-byte lines", lines, "lines",
                                lambda t: amount_of(t, sizes) // fx.LINE_BYTES, per_line=True)
    update_rate = add_output_rows(report, "`\\r` updates", updates, "updates",
                                  lambda t: sizes.progress_updates, per_line=False)
    alone = {kind: median([generator_alone(bench, kind, amount, rep) for rep in range(sizes.out_reps)])
             for kind, amount in (("lines", sizes.out_bytes), ("progress", sizes.progress_updates))}
    report.notes.append(
        f"the generators alone, writing to /dev/null (no pipe, no reader): "
        f"{sizes.out_bytes / alone['lines'] / 1e6:.0f} MB/s of lines, "
        f"{sizes.progress_updates / alone['progress']:,.0f} updates/s, against Lynx's "
        f"{line_rate[0] * fx.LINE_BYTES / 1e6:.0f} MB/s and {update_rate[0]:,.0f}/s and tee's "
        f"{line_rate[1] * fx.LINE_BYTES / 1e6:.0f} MB/s and {update_rate[1]:,.0f}/s: a pipe costs the writer on "
        "every write, and where both readers keep up with that pace the ratio to tee swings either side of 1.0 "
        "from run to run.")
    report.notes += [
        (f"rates are per second of the generator's writing, median of {sizes.out_reps} interleaved run(s) for "
         "Lynx and tee, 1 for the baseline, whose line amount is smaller (it logs one record per line); wall "
         "includes every start-up."),
        ("CPU is the consumer's own user + system time (Lynx's includes its ~0.1 s start-up; the generator "
         "is excluded for all): it is far less sensitive to a noisy machine than the rates."),
    ]
    peak = max(run.peak_rss for runs in (lines["Lynx"], updates["Lynx"]) for run in runs)
    all_checked = all(run.check[0] for runs in (*lines.values(), *updates.values()) for run in runs)
    report.targets += [
        Target("output", "100-byte lines: Lynx ≥ 1.0× tee (MB/s)", ratio(*line_rate), line_rate[0] >= line_rate[1]),
        Target("output", "`\\r` updates at least as fast as tee passes them", ratio(*update_rate),
               update_rate[0] >= update_rate[1]),
        Target("output", "peak RSS ≤ 25 MiB", mb(peak), peak <= 25 * MiB),
        Target("output", "the logs hold every line of the retained segments (all tools)",
               "all checks ok" if all_checked else "a check FAILED (see the table)", all_checked),
    ]
    return report


OUTPUT_TOOLS = ("Lynx", "baseline", "tee")


def amount_of(tool: str, sizes: Sizes) -> int:
    """Bytes of 100-byte lines each tool gets."""
    return sizes.baseline_out_bytes if tool == "baseline" else sizes.out_bytes


def add_output_rows(report: Report, what: str, runs: dict[str, list[OutputRun]], unit: str,
                    items: Callable[[str], int], per_line: bool) -> tuple[float, float]:
    """Rows for one generator; returns (Lynx's items/s, tee's items/s)."""
    writing = {tool: median([r.writing for r in runs[tool]]) for tool in OUTPUT_TOOLS}
    rate = {tool: items(tool) / writing[tool] for tool in OUTPUT_TOOLS}

    def row(metric: str, cell: Callable[[str], str], ratios: dict[str, float] | None = None) -> None:
        extra = (ratio(ratios["Lynx"], ratios["tee"]), ratio(ratios["Lynx"], ratios["baseline"])) \
            if ratios else ("", "")
        report.rows.append((f"{what}: {metric}", *(cell(tool) for tool in OUTPUT_TOOLS), *extra))

    row("amount", lambda t: f"{items(t) * fx.LINE_BYTES / 1e6:g} MB" if per_line else f"{items(t):,} updates")
    if per_line:
        mbps = {t: rate[t] * fx.LINE_BYTES / 1e6 for t in OUTPUT_TOOLS}
        row("MB/s", lambda t: f"{mbps[t]:.0f}", mbps)
    row(f"{unit}/s", lambda t: f"{rate[t]:,.0f}", rate)
    row("wall (with start-up)", lambda t: f"{median([r.wall for r in runs[t]]):.2f} s")
    cpu = {t: median([r.cpu for r in runs[t]]) for t in OUTPUT_TOOLS}
    per = 100e6 / fx.LINE_BYTES if per_line else 100_000
    cpu_per = {t: cpu[t] * per / items(t) for t in OUTPUT_TOOLS}
    row(f"consumer CPU per {'100 MB' if per_line else '100k updates'} (lower is better)",
        lambda t: f"{cpu_per[t]:.3f} s", cpu_per)
    row("peak RSS", lambda t: mb(max(r.peak_rss for r in runs[t])))
    row("log check", lambda t: ("ok: " if all(r.check[0] for r in runs[t]) else "FAILED: ") + runs[t][-1].check[1])
    return rate["Lynx"], rate["tee"]


def output_rounds(bench: Bench, kind: str, amount: Callable[[str], int]) -> dict[str, list[OutputRun]]:
    """Runs of `kind` through every tool, interleaved round by round (the baseline only in the first)."""
    runs: dict[str, list[OutputRun]] = {tool: [] for tool in OUTPUT_TOOLS}
    for rep in range(bench.sizes.out_reps):
        for tool in rotated([t for t in OUTPUT_TOOLS if t != "baseline" or rep == 0], rep):
            runs[tool].append(output_run(bench, tool, kind, amount(tool), rep))
    return runs


def output_run(bench: Bench, tool: str, kind: str, amount: int, rep: int) -> OutputRun:
    """One generator run through `tool` into a fresh log; checked afterwards."""
    work = bench.workdir(f"output/{kind}-{tool}-{rep}")
    gen = bench.scripts["gen_lines.py" if kind == "lines" else "gen_progress.py"]
    stamps = work / "writing.times"
    gen_args = [str(amount), str(stamps)]
    log = work / "out.log"
    say(f"output: {kind} through {tool} (run {rep + 1})")
    timeout = 60 + amount / (1e6 if kind == "lines" else 1e3)
    if tool == "tee":
        sampled = tee_run(bench, [bench.python, str(gen), *gen_args], log, work, timeout)
    else:
        config = fx.write_config(work / "out.yaml", [(gen, gen_args)])
        flags = ["start", "-cf", config, "-ni", "-lf", log, "-ls", LOG_SIZE, "-lbc", LOG_BACKUPS]
        argv = bench.lynx(*flags) if tool == "Lynx" else bench.baseline(*flags)
        proc = bench.procs.spawn(argv, cwd=work)
        sampled = sample_until_exit(bench.procs, proc, proc.pid, timeout, f"{tool} {kind}")
        if sampled.exit != 0:
            raise BenchError(f"output: {tool} exited {sampled.exit} on {kind}")
    first, last = map(float, stamps.read_text().split())
    if kind == "lines":
        check = check_tee_lines(log, amount // fx.LINE_BYTES) if tool == "tee" else \
            check_rotated_lines(log, amount // fx.LINE_BYTES)
    else:
        check = check_tee_progress(log, amount) if tool == "tee" else check_rotated_progress(log, amount)
    shutil.rmtree(work, ignore_errors=True)   # 200 MB logs: do not keep them around
    return OutputRun(sampled.wall, last - first, sampled.peak_rss, sampled.cpu, check)


def generator_alone(bench: Bench, kind: str, amount: int, rep: int) -> float:
    """Seconds the generator takes from its first write to its last with stdout on /dev/null."""
    work = bench.workdir(f"output/{kind}-alone-{rep}")
    stamps = work / "writing.times"
    gen = bench.scripts["gen_lines.py" if kind == "lines" else "gen_progress.py"]
    proc = bench.procs.spawn([bench.python, str(gen), str(amount), str(stamps)], cwd=work, env=step_env(bench))
    if bench.procs.wait(proc, 60 + amount / (1e6 if kind == "lines" else 1e3), f"{kind} generator alone"):
        raise BenchError(f"output: the {kind} generator failed on its own")
    first, last = map(float, stamps.read_text().split())
    shutil.rmtree(work, ignore_errors=True)
    return last - first


def tee_run(bench: Bench, gen_argv: list[str], log: Path, cwd: Path, timeout: float) -> Sampled:
    """`gen | tee LOG > /dev/null` without a shell; tee is the process watched."""
    started = time.perf_counter()
    gen = bench.procs.spawn(gen_argv, cwd=cwd, stdout=subprocess.PIPE, env=step_env(bench))
    tee = bench.procs.spawn(["tee", str(log)], cwd=cwd, stdin=gen.stdout)
    gen.stdout.close()
    sampled = sample_until_exit(bench.procs, tee, tee.pid, timeout, "tee")
    gen_code = bench.procs.wait(gen, 10, "generator")
    if sampled.exit or gen_code:
        raise BenchError(f"output: tee exited {sampled.exit}, generator {gen_code}")
    sampled.wall = time.perf_counter() - started
    return sampled


def rotated_logs(log: Path) -> list[Path]:
    """The log and its rotated copies, oldest first."""
    names = [log.with_name(f"{log.name}.{i}") for i in range(LOG_BACKUPS, 0, -1)]
    return [path for path in [*names, log] if path.exists()]


def check_rotated_lines(log: Path, total: int) -> tuple[bool, str]:
    """The retained files hold consecutive generated lines ending with the last; rotated files are full."""
    files = rotated_logs(log)
    numbers = [int(n) for path in files for n in fx.LINE_NUMBER.findall(path.read_bytes())]
    if not numbers:
        return False, "no step lines in the log"
    gaps = sum(1 for a, b in zip(numbers, numbers[1:]) if b != a + 1)
    last_ok = numbers[-1] == total - 1
    wrong_size = [p.name for i, p in enumerate(files) if p.stat().st_size > LOG_SIZE
                  or (i < len(files) - 1 and p.stat().st_size < LOG_SIZE - 1000)]
    text = (f"{len(files)} files, lines {numbers[0]:,}–{numbers[-1]:,} ({len(numbers):,}) "
            f"{'in order' if not gaps else f'with {gaps} GAPS'}, last line {'present' if last_ok else 'MISSING'}")
    if wrong_size:
        text += f", sizes inconsistent with rotation: {', '.join(wrong_size)}"
    return not gaps and last_ok and not wrong_size, text


def check_tee_lines(log: Path, total: int) -> tuple[bool, str]:
    """tee's log is the generator's output byte for byte: size, line count, first and last line."""
    size, newlines = log.stat().st_size, 0
    with open(log, "rb") as handle:
        first = fx.LINE_NUMBER.match(handle.read(fx.LINE_BYTES))
        handle.seek(0)
        for block in iter(lambda: handle.read(1 << 20), b""):
            newlines += block.count(b"\n")
        handle.seek(max(0, size - fx.LINE_BYTES))
        last = fx.LINE_NUMBER.match(handle.read())
    ok = (size == total * fx.LINE_BYTES and newlines == total and first is not None and last is not None
          and int(first.group(1)) == 0 and int(last.group(1)) == total - 1)
    return ok, f"{newlines:,} lines, {size / 1e6:g} MB, first and last {'present' if ok else 'WRONG'}"


def check_tee_progress(log: Path, count: int) -> tuple[bool, str]:
    data = log.read_bytes()
    ok = len(data) == fx.progress_bytes(count) and data.endswith(b"progress %7d/%d\n" % (count, count))
    return ok, f"{len(data):,} bytes, {'as generated' if ok else 'DIFFERENT'}"


def check_rotated_progress(log: Path, count: int) -> tuple[bool, str]:
    """The bar's final state logged last; Lynx logs one collapsed line, the baseline one per redraw."""
    values = [int(v) for path in rotated_logs(log) for v in re.findall(rb"progress +(\d+)/\d+\n", path.read_bytes())]
    if not values:
        return False, "no progress line in the log"
    gaps = sum(1 for a, b in zip(values, values[1:]) if b != a + 1)
    ok = values[-1] == count and not gaps
    return ok, (f"{len(values):,} progress line(s), last {values[-1]:,}/{count:,}"
                + (f", {gaps} GAPS" if gaps else ""))
