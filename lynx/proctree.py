"""Ending process trees with psutil: a background Lynx's (the daemon, its steps, their children),
a step Lynx stops (with what left its group), and what a finished step left running in its group.

Steps run in their own process groups and may leave children behind, so the tree is collected
before anything is signalled and every group it used is swept afterwards.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Callable

import psutil

from lynx.errors import LynxError

KILL_WAIT = 5.0   # after SIGKILL, how long to wait for the kernel to take the processes away


def terminate(proc: psutil.Process, timeout: float) -> bool:
    """SIGTERM the daemon; after `timeout` s kill what is left of its tree; True if it stopped itself."""
    tree = descendants(proc)   # before signalling: once the daemon is gone, orphans have no parent to find
    groups = step_groups(proc, tree)
    try:
        proc.terminate()
    except psutil.NoSuchProcess:
        pass
    except psutil.AccessDenied as exc:
        raise LynxError(f"not allowed to stop pid {proc.pid}: run `lynx stop` as the user who "
                        "started it") from exc
    clean = wait_gone([proc], timeout)
    if not clean:
        tree += [p for p in descendants(proc) if p not in tree]   # started since the first look
        kill([proc])
    # Even after a clean exit: a step's child that left the step's process group survives the
    # daemon's group kill; so do orphans that stayed in the group but were never seen in the tree.
    leftovers = [p for p in tree if not is_gone(p)] + group_members(groups, tree)
    kill(leftovers)
    wait_gone([proc, *leftovers], KILL_WAIT)
    return clean


def descendants(proc: psutil.Process) -> list[psutil.Process]:
    """The process's descendants (never this `lynx stop` itself, should a step have run it)."""
    try:
        return [p for p in proc.children(recursive=True) if p.pid != os.getpid()]
    except psutil.Error:
        return []


def step_groups(proc: psutil.Process, tree: list[psutil.Process]) -> set[int]:
    """The process groups of the daemon's descendants (each step leads its own); POSIX only."""
    if not hasattr(os, "getpgid"):
        return set()
    groups = {pgid(member.pid) for member in tree}
    return groups - {None, pgid(0), pgid(proc.pid)}


def pgid(pid: int) -> int | None:
    """The process group of `pid`, None if it is gone."""
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def group_members(groups: set[int], known: list[psutil.Process]) -> list[psutil.Process]:
    """Live processes in `groups` that are not in `known`."""
    if not groups:
        return []
    skip = {os.getpid()} | {p.pid for p in known}
    found = []
    for pid in psutil.pids():
        if pid not in skip and pgid(pid) in groups:
            try:
                found.append(psutil.Process(pid))
            except psutil.Error:
                pass
    return found


def outside_group(pid: int) -> tuple[list[psutil.Process], set[int]]:
    """Descendants of the process-group leader `pid` that moved to a group (or session) of their own,
    and those groups (never Lynx's own: sweeping it would end Lynx and what it runs beside)."""
    try:
        tree = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return [], set()
    groups = {p.pid: pgid(p.pid) for p in tree}
    strays = [p for p in tree if groups[p.pid] not in (pid, None)]
    return strays, {groups[p.pid] for p in strays} - {pgid(0)}


def end_new_sessions() -> None:
    """SIGKILL the process group of each child of Lynx that leads a session of its own, as a step
    does: for a stop landing inside Popen after the fork, before the step was handed over."""
    for child in psutil.Process().children():
        try:
            if os.getsid(child.pid) != child.pid:
                continue
            strays, _ = outside_group(child.pid)   # what it started already, in groups of their own
            os.killpg(child.pid, signal.SIGKILL)
        except (OSError, psutil.Error):
            continue
        kill(strays)


def still_ours(groups: set[int], strays: list[psutil.Process]) -> set[int]:
    """The `groups` (looked up with `strays`) whose number no new process group can have taken: a
    group's number is its leader's pid, so it is ours while that pid is gone or still our stray."""
    ours = {p.pid: p for p in strays}
    return {g for g in groups if not psutil.pid_exists(g) or (g in ours and ours[g].is_running())}


def terminate_each(procs: list[psutil.Process]) -> None:
    """SIGTERM each process."""
    _each(procs, psutil.Process.terminate)


def kill(procs: list[psutil.Process]) -> None:
    """SIGKILL each process."""
    _each(procs, psutil.Process.kill)


def _each(procs: list[psutil.Process], action: Callable[[psutil.Process], None]) -> None:
    """psutil refuses if a pid was reused since it was looked up: no stranger is signalled."""
    for proc in procs:
        try:
            action(proc)
        except psutil.Error:
            pass


def is_gone(proc: psutil.Process) -> bool:
    """Exited (a zombie not yet reaped by its parent counts) or its pid reused by another process."""
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def wait_gone(procs: list[psutil.Process], timeout: float) -> bool:
    """Poll until every process is gone; False if some remain after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not all(is_gone(p) for p in procs):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def end_group(pgid: int, grace: float) -> list[str]:
    """End the live processes of a finished step's group: SIGTERM, `grace` s, then SIGKILL.

    Returns them as "name (pid N)", [] if only exited ones (zombies) were left; POSIX only.
    """
    members = [p for p in group_members({pgid}, []) if not is_gone(p)]
    if not members:
        return []
    names = []
    for proc in members:
        try:
            names.append(f"{proc.name()} (pid {proc.pid})")
        except psutil.Error:
            names.append(f"pid {proc.pid}")
    from lynx.ending import signal_group

    signal_group(pgid, signal.SIGTERM)
    if not wait_gone(members, grace):
        signal_group(pgid, signal.SIGKILL)
        wait_gone(members, KILL_WAIT)
    signal_group(pgid, signal.SIGKILL)   # whatever they started meanwhile in the same group
    return names
