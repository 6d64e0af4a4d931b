"""Ending a step's processes: what a finished step left in its group, and all of a step Lynx stops.

A step runs in its own process group, so one signal reaches it and the children that stayed with it.
psutil (proctree) is imported only when there is more to find than the group: something left
behind, or a step being stopped, whose descendants may have moved to groups of their own.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time

from lynx.output import StepOutput
from lynx.sigmask import held
from lynx.streaming import stream

GRACE_SECONDS = 5.0
POSIX = os.name == "posix"

log = logging.getLogger("lynx")


def end_leftovers(name: str, pgid: int, holding_output: bool = False) -> bool:
    """End what a finished step left running in its process group (`cmd &`, a worker never joined);
    True if there was any.

    On a schedule such processes would pile up run after run. A process meant to outlive its step
    leaves the group (setsid). Checking costs one system call when nothing is left, the usual case.
    """
    if not POSIX:
        return False
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    from lynx.proctree import end_group  # psutil: only when something is left

    left = end_group(pgid, GRACE_SECONDS)
    if left:
        shown = ", ".join(left[:10]) + (f" and {len(left) - 10} more" if len(left) > 10 else "")
        log.warning("step '%s' left %s running%s; ended %s", name, shown,
                    " (holding its output open)" if holding_output else "", "it" if len(left) == 1 else "them")
    return bool(left)


def end_step(proc: subprocess.Popen, output: StepOutput | None = None) -> None:
    """End a step Lynx stops (timeout, Ctrl+C, SIGTERM): its process group and the descendants that
    moved to groups of their own (coreutils `timeout`, `set -m` scripts); SIGTERM, a grace period
    (GRACE_SECONDS), then SIGKILL. A second Ctrl+C cuts the grace short, never the rest.

    During the grace period the step's output still goes to `output`: what it says as it stops
    ("saving a checkpoint") is what a user most needs to see.
    """
    if not POSIX:
        proc.kill()
        proc.wait()
        return
    strays: list = []        # its descendants in groups of their own (psutil processes)
    stray_groups: set = set()

    def look_for_strays() -> None:
        """Only while the step is there to lead to them: once it is gone they are orphans."""
        from lynx import proctree  # psutil: only when a step is being stopped

        found, groups = proctree.outside_group(proc.pid)
        strays.extend(p for p in found if p not in strays)
        stray_groups.update(groups)

    try:
        with held():   # a second Ctrl+C here would leave the strays unknown, so unkilled
            if proc.returncode is None:   # else its pid may be another process's by now
                look_for_strays()
            signal_group(proc.pid, signal.SIGTERM)
            if strays:
                from lynx import proctree

                proctree.terminate_each(strays)
        deadline = time.monotonic() + GRACE_SECONDS
        if output is not None:
            stream(proc, output, deadline)
        proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        if strays:
            from lynx import proctree

            proctree.wait_gone(strays, max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass
    finally:
        with held():
            if proc.poll() is None:   # what it started on its own during the grace (setsid in a TERM trap)
                look_for_strays()
            # Grandchildren stay in the group after the leader exits: make sure none is left,
            # nor anything that joined a stray's group meanwhile.
            signal_group(proc.pid, signal.SIGKILL)
            if strays:
                from lynx import proctree

                proctree.kill(strays + proctree.group_members(proctree.still_ours(stray_groups, strays), strays))
        proc.wait()


def signal_group(pgid: int, sig: int) -> None:
    """Signal a whole process group; one that is gone already is no error."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
