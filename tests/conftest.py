"""Shared test helpers: config files, a fake clock, real `lynx` processes and their cleanup."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import psutil
import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True, scope="session")
def config_cache(tmp_path_factory: pytest.TempPathFactory):
    """Lynx's config cache (lynx/configcache.py) goes to a directory of the session's, not the user's
    ~/.cache: set here, it reaches every `lynx` the tests start too."""
    before = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield Path(os.environ["XDG_CACHE_HOME"])
    if before is None:
        del os.environ["XDG_CACHE_HOME"]
    else:
        os.environ["XDG_CACHE_HOME"] = before


def wait_for(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.02):
    """Poll `predicate` until it is truthy (and return it) or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s: {predicate}")
        time.sleep(interval)


def gone(pid: int) -> bool:
    """True when no process has `pid` any more; an exited but unreaped zombie counts as gone."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def ends(pid: int, started, timeout: float = 5) -> bool:
    """True once `pid` is gone; False if it still runs after `timeout` s (then `started` kills it later)."""
    try:
        return wait_for(lambda: gone(pid), timeout=timeout)
    except AssertionError:
        started.add(pid)
        return False


class FakeClock:
    """A clock whose sleep advances time at once and records each wait."""

    def __init__(self, start: datetime) -> None:
        self.current = start
        self.waits: list[datetime] = []

    def now(self) -> datetime:
        return self.current

    def sleep_until(self, when: datetime) -> bool:
        self.waits.append(when)
        self.current = max(self.current, when)
        return True

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock(datetime(2026, 1, 1, tzinfo=timezone.utc))


@pytest.fixture
def write_config(tmp_path: Path):
    """write_config(yaml_text, name='config.yaml') -> Path; `{py}` in the text becomes sys.executable."""
    def write(text: str, name: str = "config.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).replace("{py}", sys.executable))
        return path
    return write


@pytest.fixture
def write_script(tmp_path: Path):
    """write_script(name, body) -> Path of a Python step script in tmp_path."""
    def write(name: str, body: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(body))
        return path
    return write


def lynx_env(**extra: str) -> dict:
    env = dict(os.environ)
    env.pop("NO_COLOR", None)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


class Started:
    """Every process a test started, so cleanup kills exactly those (and their children)."""

    def __init__(self) -> None:
        self.pids: list[int] = []

    def add(self, pid: int) -> None:
        self.pids.append(pid)

    def kill_all(self) -> None:
        procs = []
        for pid in self.pids:
            try:
                proc = psutil.Process(pid)
                procs += [proc] + proc.children(recursive=True)
            except psutil.Error:
                continue
        for proc in procs:
            try:
                proc.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(procs, timeout=5)


@pytest.fixture
def started():
    tracker = Started()
    yield tracker
    tracker.kill_all()


@pytest.fixture
def run_lynx(tmp_path: Path, started: Started):
    """run_lynx(*args, timeout=30, cwd=tmp_path, input=None, text=True) -> CompletedProcess of `python -m lynx`."""
    def run(*args: str, timeout: float = 30, cwd: Path = tmp_path, input: str | None = None, env=None,
            text: bool = True):
        proc = subprocess.Popen([sys.executable, "-m", "lynx", *args], cwd=cwd, env=env or lynx_env(),
                                stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=text)
        started.add(proc.pid)
        try:
            out, err = proc.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(f"lynx {' '.join(args)} did not finish in {timeout} s:\n{out}\n{err}")
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return run


@pytest.fixture
def popen_lynx(tmp_path: Path, started: Started):
    """popen_lynx(*args, cwd=tmp_path) -> `python -m lynx` running, stdout and stderr piped (text), no stdin."""
    def popen(*args: str, cwd: Path = tmp_path) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-m", "lynx", *args], cwd=cwd, env=lynx_env(),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started.add(proc.pid)
        return proc
    return popen


@pytest.fixture
def spawn_lynx(tmp_path: Path, started: Started):
    """spawn_lynx(*args, cwd=tmp_path, timeout=20) -> a pexpect child on a real pseudo-terminal."""
    import pexpect

    children = []

    def spawn(*args: str, cwd: Path = tmp_path, timeout: float = 20, env=None):
        child = pexpect.spawn(sys.executable, ["-m", "lynx", *args], cwd=str(cwd), env=env or lynx_env(),
                              timeout=timeout, encoding="utf-8", dimensions=(40, 200))
        started.add(child.pid)
        children.append(child)
        return child
    yield spawn
    for child in children:
        if child.isalive():
            child.kill(signal.SIGKILL)
        child.close(force=True)
