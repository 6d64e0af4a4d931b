"""Helpers for scripts/bench.py: processes that are always cleaned up, sampling, statistics, tables."""

from __future__ import annotations

import math
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import psutil

DEVNULL = subprocess.DEVNULL


class BenchError(Exception):
    """A measurement could not be made (a tool failed or hung); the message says which."""


# ---------------------------------------------------------------------------------------- processes

class Procs:
    """Every process the benchmark starts: each leads its own process group, all ended on cleanup."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.started: list[subprocess.Popen] = []
        self.env = env   # the environment of every process unless one is given

    def spawn(self, argv: Sequence[str], **kwargs) -> subprocess.Popen:
        for stream in ("stdin", "stdout", "stderr"):
            kwargs.setdefault(stream, DEVNULL)
        if kwargs.get("env") is None:
            kwargs["env"] = self.env
        proc = subprocess.Popen(list(argv), start_new_session=True, **kwargs)
        self.started.append(proc)
        return proc

    def wait(self, proc: subprocess.Popen, timeout: float, what: str) -> int:
        """The exit status; a process still running after `timeout` is killed and is an error.

        Popen.wait(timeout=...) polls with a back-off of up to 50 ms, which would quantize the
        timings; this blocks in waitpid and lets a timer kill the group when time is up.
        """
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            kill_group(proc.pid)

        timer = threading.Timer(timeout, expire)
        timer.start()
        try:
            code = proc.wait()
        finally:
            timer.cancel()
        if expired.is_set():
            raise BenchError(f"{what} did not finish within {timeout:g} s (killed)")
        return code

    def interrupt(self, proc: subprocess.Popen, timeout: float = 15.0, sig: int = signal.SIGINT) -> int:
        """Send `sig` to the process itself (as Ctrl+C would reach it); kill the group if it lingers."""
        if proc.poll() is None:
            try:
                os.kill(proc.pid, sig)
            except ProcessLookupError:
                pass
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            where = stuck_at(proc.pid)
            self.kill(proc)
            raise BenchError(f"pid {proc.pid} ignored signal {sig} for {timeout:g} s (killed); "
                             f"it was {where}") from None
        kill_group(proc.pid)   # anything it left behind in its group
        return code

    def kill(self, proc: subprocess.Popen) -> None:
        kill_group(proc.pid)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    def cleanup(self) -> None:
        """Kill every group the benchmark started (leaders that exited may have left members behind)."""
        for proc in self.started:
            kill_group(proc.pid)
            if proc.poll() is None:
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
        self.started.clear()


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def timed_run(procs: Procs, argv: Sequence[str], timeout: float, what: str, **kwargs) -> tuple[float, int]:
    """Wall seconds from spawn to exit, and the exit status."""
    started = time.perf_counter()
    proc = procs.spawn(argv, **kwargs)
    code = procs.wait(proc, timeout, what)
    return time.perf_counter() - started, code


def timed_run_cpu(procs: Procs, argv: Sequence[str], timeout: float, what: str,
                  **kwargs) -> tuple[float, int, float]:
    """Like timed_run, plus the process's own CPU seconds (children excluded), sampled every 20 ms
    by a thread so the wall time still comes from a blocking wait. The last ~20 ms before exit are
    missed, alike for every run, so differences between runs are right."""
    started = time.perf_counter()
    proc = procs.spawn(argv, **kwargs)
    cpu = [0.0]
    done = threading.Event()

    def watch() -> None:
        try:
            watched = psutil.Process(proc.pid)
            while not done.wait(0.02):
                times = watched.cpu_times()
                cpu[0] = max(cpu[0], times.user + times.system)
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            pass

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        code = procs.wait(proc, timeout, what)
    finally:
        done.set()
    elapsed = time.perf_counter() - started
    watcher.join()
    return elapsed, code, cpu[0]


@dataclass
class Sampled:
    """A process waited for while another (or the same) one was watched."""

    wall: float        # seconds from the call to the exit
    exit: int
    peak_rss: int      # of the watched process, sampled
    cpu: float         # the watched process's own user + system seconds (children excluded), last sample


def sample_until_exit(procs: Procs, proc: subprocess.Popen, watched_pid: int, timeout: float, what: str,
                      interval: float = 0.01) -> Sampled:
    """Wait for `proc`, sampling RSS and CPU time of `watched_pid` every `interval` s."""
    started = time.perf_counter()
    deadline = started + timeout
    watched = psutil.Process(watched_pid)
    peak, cpu = 0, 0.0
    while proc.poll() is None:
        if time.perf_counter() > deadline:
            procs.kill(proc)
            raise BenchError(f"{what} did not finish within {timeout:g} s (killed)")
        try:
            with watched.oneshot():
                peak = max(peak, watched.memory_info().rss)
                times = watched.cpu_times()
                cpu = max(cpu, times.user + times.system)
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            pass
        time.sleep(interval)
    return Sampled(time.perf_counter() - started, proc.returncode, peak, cpu)


@dataclass
class Usage:
    """A process's counters at one instant (threads summed)."""

    rss: int
    cpu: float
    voluntary: int
    involuntary: int
    threads: int


def usage(pid: int) -> Usage:
    """RSS, CPU seconds and context switches of all of a process's threads.

    psutil's num_ctx_switches reads /proc/PID/status, which counts the main thread only on Linux,
    so the threads' own counters are summed when /proc allows it.
    """
    proc = psutil.Process(pid)
    with proc.oneshot():
        times = proc.cpu_times()
        rss = proc.memory_info().rss
        ctx = proc.num_ctx_switches()
        threads = proc.num_threads()
    voluntary, involuntary = ctx.voluntary, ctx.involuntary
    tasks = Path(f"/proc/{pid}/task")
    if tasks.is_dir():
        voluntary = involuntary = 0
        for status in tasks.glob("*/status"):
            for line in status.read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches"):
                    voluntary += int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches"):
                    involuntary += int(line.split()[1])
    return Usage(rss, times.user + times.system, voluntary, involuntary, threads)


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------------------------------- setup

SCRIPTS = Path(__file__).resolve().parent
REPO = SCRIPTS.parent
BASELINE = SCRIPTS / "bench_baseline.py"
LOG_SIZE, LOG_BACKUPS = 2097152, 3
MiB = 2**20


@dataclass(frozen=True)
class Sizes:
    startup_reps: int = 21
    step_ns: tuple[int, int] = (30, 200)
    step_reps: int = 5
    fires: int = 30
    fire_blocks: int = 3
    idle_seconds: float = 10.0
    out_bytes: int = 200_000_000
    baseline_out_bytes: int = 20_000_000
    progress_updates: int = 200_000
    out_reps: int = 3
    soak_fires: int = 300


QUICK = Sizes(startup_reps=5, step_ns=(10, 60), step_reps=2, fires=5, fire_blocks=1, idle_seconds=3.0,
              out_bytes=20_000_000, baseline_out_bytes=5_000_000, progress_updates=20_000, out_reps=1)


@dataclass
class Bench:
    """Where and how the benchmark runs things."""

    root: Path
    sizes: Sizes
    procs: Procs = field(default_factory=Procs)
    python: str = sys.executable
    scripts: dict[str, Path] = field(default_factory=dict)

    def lynx(self, *args: object) -> list[str]:
        return [self.python, "-m", "lynx", *map(str, args)]

    def baseline(self, *args: object) -> list[str]:
        return [self.python, str(BASELINE), *map(str, args)]

    def workdir(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# Set in some shells and CI images; they would change what is measured (no bytecode cache: every
# module compiled at every start; unbuffered tools), so the processes measured run without them.
DROPPED_ENV = ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PYTHONPROFILEIMPORTTIME", "PYTHONDEVMODE")


def child_env(root: Path) -> dict[str, str]:
    """The environment of every process measured: bytecode cached in the temp dir, not the checkout;
    Lynx's config cache (lynx/configcache.py) there too, not in the user's ~/.cache."""
    env = {key: value for key, value in os.environ.items() if key not in DROPPED_ENV}
    env["PYTHONPYCACHEPREFIX"] = str(root / "pycache")
    env["XDG_CACHE_HOME"] = str(root / "cache")
    return env


def step_env(bench: Bench) -> dict[str, str]:
    """What Lynx and the baseline add to a step's environment, for floors that run steps directly."""
    return {**bench.procs.env, "PYTHONUNBUFFERED": "1"}


def rotated(items: list, by: int) -> list:
    """`items` starting at position `by` (mod len), so no item is always first or last."""
    by %= len(items)
    return items[by:] + items[:by]


def capture(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run once to the end with output captured (stdin empty, 60 s at most)."""
    return subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=60,
                          check=False)


def time_interleaved(bench: Bench, commands: dict[str, list[str]], reps: int, cwd: Path,
                     env: dict[str, str] | None = None, label: str = "startup") -> dict[str, list[float]]:
    """Each command `reps` times, round-robin (order rotated) so drift hits them all alike; wall seconds."""
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for argv in commands.values():   # warm-up, not measured
        timed_run(bench.procs, argv, 60, label, cwd=cwd, env=env)
    for rep in range(reps):
        say(f"{label}: round {rep + 1}/{reps}")
        for name in rotated(list(commands), rep):
            seconds, _ = timed_run(bench.procs, commands[name], 60, name, cwd=cwd, env=env)
            samples[name].append(seconds)
    return samples


def import_times(bench: Bench, args: list[str], cwd: Path) -> list[tuple[int, str, int]]:
    """(depth, module, cumulative µs) for each import `python -X importtime ARGS` reports."""
    rows = []
    argv = [bench.python, "-X", "importtime", *args]
    for line in capture(argv, cwd, bench.procs.env).stderr.decode(errors="replace").splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\s*)(\S+)", line)
        if match:
            rows.append((len(match.group(2)) // 2, match.group(3), int(match.group(1))))
    return rows


def top_imports(bench: Bench, args: list[str], cwd: Path, count: int = 5) -> str:
    """The top-level imports costing most, e.g. 'site 15.3 ms, docopt 3.8 ms'."""
    rows = sorted((r for r in import_times(bench, args, cwd) if r[0] == 0), key=lambda r: -r[2])[:count]
    return ", ".join(f"{name} {us / 1000:.1f} ms" for _, name, us in rows) or "n/a"


# ---------------------------------------------------------------------------------------- statistics

def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def percentile(values: Sequence[float], pct: float) -> float:
    """Linear interpolation between closest ranks; nan for no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * pct / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ms(seconds: float, digits: int = 1) -> str:
    return "n/a" if seconds is None or math.isnan(seconds) else f"{seconds * 1000:.{digits}f} ms"


def mb(nbytes: float) -> str:
    return "n/a" if nbytes is None else f"{nbytes / 2**20:.1f} MiB"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return "n/a"
    return f"{a / b:.2f}×"


# ---------------------------------------------------------------------------------------- reporting

def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(cell) for cell in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths)) + " |" for row in cells]
    lines.insert(1, "| " + " | ".join("-" * width for width in widths) + " |")
    return "\n".join(lines)


@dataclass
class Target:
    """One of the issue's targets: what was measured and whether it was met (None: not measured)."""

    section: str
    goal: str
    measured: str
    met: bool | None

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "MISS", None: "n/a"}[self.met]


@dataclass
class Report:
    """What a section prints: a title, a table, notes; and the targets it judged."""

    title: str
    headers: Sequence[str] = ()
    rows: list[Sequence[object]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)

    def render(self) -> str:
        parts = [f"### {self.title}", ""]
        if self.rows:
            parts += [markdown_table(self.headers, self.rows), ""]
        parts += [f"- {note}" for note in self.notes]
        return "\n".join(parts).rstrip() + "\n"


def targets_table(targets: Sequence[Target]) -> str:
    rows = [(t.section, t.goal, t.measured, f"**{t.verdict}**") for t in targets]
    return markdown_table(("section", "target", "measured", "result"), rows)


def machine_header(extra: Sequence[tuple[str, str]] = ()) -> str:
    """CPU model, cores, OS, Python: what the README shows next to the numbers."""
    rows = [
        ("CPU", cpu_model()),
        ("cores", f"{os.cpu_count()} logical, {usable_cores()} usable"),
        ("memory", f"{psutil.virtual_memory().total / 2**30:.1f} GiB"),
        ("OS", f"{platform.system()} {platform.release()} ({platform.machine()})"),
        ("Python", f"{platform.python_implementation()} {platform.python_version()} at {sys.executable}"),
        ("virtual env", "yes" if sys.prefix != sys.base_prefix else "no (system/pyenv interpreter)"),
        *extra,
    ]
    return markdown_table(("machine", ""), rows)


def usable_cores() -> str:
    return str(len(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") else "?"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def stuck_at(pid: int) -> str:
    """Where a process that ignores a signal is: its Python stack (py-spy, if installed), else its state."""
    import shutil

    if shutil.which("py-spy"):
        dump = subprocess.run(["py-spy", "dump", "--pid", str(pid)], capture_output=True, text=True, check=False,
                              timeout=20)
        if dump.returncode == 0:
            return "at:\n" + dump.stdout
    try:
        with open(f"/proc/{pid}/wchan") as wchan, open(f"/proc/{pid}/stat") as stat:
            return f"in state {stat.read().split()[2]}, waiting in {wchan.read() or '-'} (install py-spy for its stack)"
    except OSError as exc:
        return f"not inspectable ({exc})"
