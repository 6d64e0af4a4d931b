"""The files scripts/bench.py runs: trivial steps, a fire-time recorder, output generators, configs."""

from __future__ import annotations

import json
import re
from pathlib import Path

# Records when it started: time.time() before anything else (`time` is built in: no import cost).
FIRE_STEP = """\
import time
t = time.time()
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
os.write(fd, b"%.6f\\n" % t)
"""

# The same with ~1 ms of start-up instead of the interpreter's ~30 ms (and its noise).
FIRE_STEP_SH = """\
#!/bin/sh
exec date +%s.%N >> "$1"
"""

# The fire-accuracy floor: sleep to the next whole second, then spawn the same step (argv[1:]).
FIRE_FLOOR = """\
import math, subprocess, sys, time
try:
    while True:
        now = time.time()
        time.sleep(math.floor(now) + 1 - now)
        subprocess.Popen(sys.argv[1:]).wait()
except KeyboardInterrupt:
    pass
"""

# SIZE bytes of 100-byte lines, "L<12-digit line number> xxx...\\n", written 100 kB at a time.
# Both generators write the time of their first and last write to the file named by argv[2]:
# a pipe lets a writer go only as fast as its reader, so that is the reader's throughput.
LINE_BYTES = 100
GEN_LINES = """\
import sys, time
size = int(sys.argv[1])
template = b"".join(b"L#########%03d " % i + b"x" * 85 + b"\\n" for i in range(1000))
out = sys.stdout.buffer
first = time.time()
for block in range(size // len(template)):
    out.write(template.replace(b"#########", b"%09d" % block))
out.flush()
with open(sys.argv[2], "w") as times:
    times.write(f"{first} {time.time()}")
"""
LINE_NUMBER = re.compile(rb"L(\d{12}) x")

# COUNT carriage-return redraws of one progress bar, one write each (as tqdm does), then a newline.
GEN_PROGRESS = """\
import os, sys, time
count = int(sys.argv[1])
first = time.time()
for i in range(1, count + 1):
    os.write(1, b"\\rprogress %7d/%d" % (i, count))
os.write(1, b"\\n")
with open(sys.argv[2], "w") as times:
    times.write(f"{first} {time.time()}")
"""


def progress_bytes(count: int) -> int:
    """How many bytes GEN_PROGRESS writes."""
    return sum(len(b"\rprogress %7d/%d" % (i, count)) for i in range(1, count + 1)) + 1


def write_scripts(root: Path) -> dict[str, Path]:
    """Write the helper scripts; their paths by name."""
    scripts = {"fire_step.py": FIRE_STEP, "fire_step.sh": FIRE_STEP_SH, "fire_floor.py": FIRE_FLOOR,
               "gen_lines.py": GEN_LINES, "gen_progress.py": GEN_PROGRESS}
    paths = {}
    for name, text in scripts.items():
        paths[name] = root / name
        paths[name].write_text(text)
    paths["fire_step.sh"].chmod(0o755)
    return paths


def trivial_steps(root: Path, count: int) -> list[Path]:
    """`count` distinct do-nothing .py scripts."""
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = root / f"s{i:03d}.py"
        path.write_text("pass\n")
        paths.append(path)
    return paths


def true_steps(root: Path, count: int) -> list[Path]:
    """`count` distinct names for /bin/true (symlinks): steps that cost no interpreter start-up."""
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = root / f"t{i:03d}"
        if not path.is_symlink():
            path.symlink_to("/bin/true")
        paths.append(path)
    return paths


def write_config(path: Path, steps: list[tuple[Path, list[str]]], cron: dict | None = None) -> Path:
    """A config both Lynx and the baseline read: steps of `script` + `arguments`, an optional cron."""
    lines = []
    if cron:
        lines.append("cron:")
        lines += [f"  {key}: {json.dumps(value)}" for key, value in cron.items()]
    lines.append("steps:")
    for script, arguments in steps:
        lines.append(f"  - script: {json.dumps(str(script))}")
        if arguments:
            lines.append(f"    arguments: {json.dumps(arguments)}")
    path.write_text("\n".join(lines) + "\n")
    return path
