"""`lynx start -bg`, `lynx stop` and `lynx status`: real daemons, real pidfiles, psutil checks.

The daemons are not children of the test: each test reads their pids (from the pidfile, and the
step and grandchild pids the steps write) as soon as they exist and `reap` kills those trees at
teardown, pass or fail. Synchronisation is by polling files and pids, never by sleeping.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest
from conftest import REPO, wait_for

from lynx import background, control, pidfile, proctree
from lynx.errors import AlreadyRunningError, LynxError
from lynx.runner import RunResult, StepResult

# Appends its pid to the file after --out: one line per run.
APPEND = """\
import os, sys
with open(sys.argv[sys.argv.index("--out") + 1], "a") as out:
    out.write(f"{os.getpid()}\\n")
"""

# Starts a long-sleeping grandchild, writes both pids, sleeps. --escape: the grandchild leaves
# the step's process group (only `lynx stop` can find it then); --stubborn: both ignore SIGTERM.
LONG = """\
import os, signal, subprocess, sys, time
stubborn = "--stubborn" in sys.argv
if stubborn:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
code = ("import signal, time\\nif %r: signal.signal(signal.SIGTERM, signal.SIG_IGN)\\ntime.sleep(120)"
        % stubborn)
child = subprocess.Popen([sys.executable, "-c", code], start_new_session="--escape" in sys.argv)
for name, pid in (("grandchild.pid", child.pid), ("step.pid", os.getpid())):
    with open(name + ".tmp", "w") as out:
        out.write(str(pid))
    os.replace(name + ".tmp", name)
time.sleep(120)
"""

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


def gone(proc: psutil.Process | int) -> bool:
    """Exited (zombies count) or its pid reused."""
    try:
        proc = proc if isinstance(proc, psutil.Process) else psutil.Process(proc)
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


@pytest.fixture
def reap():
    """reap(pid) -> pid: kill that process and its descendants at teardown, whatever happened."""
    procs: list[psutil.Process] = []

    def add(pid: int) -> int:
        try:
            procs.append(psutil.Process(pid))   # remembers the create time: a reused pid is not killed
        except psutil.Error:
            pass
        return pid
    yield add
    tree: list[psutil.Process] = []
    for proc in procs:
        try:
            tree += [proc, *proc.children(recursive=True)]
        except psutil.Error:
            continue
    for proc in tree:
        try:
            proc.kill()
        except psutil.Error:
            pass
    wait_for(lambda: all(gone(p) for p in tree), timeout=10)


@pytest.fixture
def every_second(write_config, write_script):
    """every_second(*(script, args), name=...) -> a config firing every second; scripts written."""
    write_script("append.py", APPEND)
    write_script("long.py", LONG)

    def config(*steps: tuple[str, list[str]], name: str = "config.yaml") -> Path:
        lines = ["cron:", "  second: '*'", "steps:"]
        for script, args in steps:
            lines += [f"  - script: {script}", f"    arguments: {json.dumps(args)}"]
        return write_config("\n".join(lines) + "\n", name)
    return config


@pytest.fixture
def start_daemon(run_lynx, reap, tmp_path):
    """start_daemon(cfg, *flags, pid_file=...) -> (daemon pid, CompletedProcess); reaped at teardown."""
    def start(cfg: Path, *flags: str, pid_file: str = ".lynx_pid.json", log: str | None = "lynx.log"):
        log_flags = ("-lf", str(tmp_path / log)) if log else ()
        result = run_lynx("start", "-cf", str(cfg), "-bg", *log_flags, "--pid-file", pid_file, timeout=20)
        found = re.search(r"as pid (\d+)", result.stdout)
        if found:
            reap(int(found.group(1)))
        assert result.returncode == 0, result.stdout + result.stderr
        record = json.loads((tmp_path / pid_file).read_text())
        assert record["pid"] == int(found.group(1))
        return record["pid"], result
    return start


def step_pids(tmp_path: Path, reap) -> tuple[int, int]:
    """The pids of the long step and its grandchild, once it wrote them; reaped at teardown."""
    files = [tmp_path / "step.pid", tmp_path / "grandchild.pid"]
    wait_for(lambda: all(f.exists() for f in files), timeout=15)
    step, grandchild = (reap(int(f.read_text())) for f in files)
    return step, grandchild


def assert_detached(pid: int, cwd: Path) -> None:
    """Double fork and setsid (not a session leader, own session), our cwd and umask, stdin /dev/null."""
    proc = psutil.Process(pid)
    assert os.getsid(pid) != os.getsid(0) and os.getsid(pid) != pid
    assert proc.cwd() == str(cwd)
    if sys.platform.startswith("linux"):
        umask = os.umask(0o022)
        os.umask(umask)
        status = Path(f"/proc/{pid}/status").read_text()
        assert re.search(rf"^Umask:\s+0*{umask:o}$", status, re.MULTILINE), status
        assert os.readlink(f"/proc/{pid}/fd/0") == os.devnull


def lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


# --- start, stop, status with real daemons -------------------------------------------------------


def test_a_background_start_runs_the_schedule_and_stop_yes_leaves_no_process_behind(
        every_second, start_daemon, run_lynx, reap, tmp_path):
    cfg = every_second(("append.py", ["--out runs.txt"]), ("long.py", ["--escape"]))
    pid, result = start_daemon(cfg)
    assert f"log: {tmp_path / 'lynx.log'}" in result.stdout
    record = json.loads((tmp_path / ".lynx_pid.json").read_text())
    assert record["create_time"] == pytest.approx(psutil.Process(pid).create_time(), abs=1)
    assert record["cmdline"] == psutil.Process(pid).cmdline()
    assert record["config"] == str(cfg) and record["log_file"] == str(tmp_path / "lynx.log")
    assert record["started"] and (tmp_path / "lynx.log").exists()
    assert_detached(pid, tmp_path)
    wait_for(lambda: lines(tmp_path / "runs.txt") >= 1, timeout=15)
    step, grandchild = step_pids(tmp_path, reap)
    assert os.getpgid(grandchild) != os.getpgid(step)   # escaped the step's group: only stop finds it

    stopped = run_lynx("stop", "--yes", timeout=20)
    assert stopped.returncode == 0, stopped.stderr
    assert f"stopped (pid {pid})" in stopped.stdout
    assert gone(pid) and gone(step) and gone(grandchild)
    assert not (tmp_path / ".lynx_pid.json").exists()
    assert "stopped on request during step 'long'" in (tmp_path / "lynx.log").read_text()


def test_status_shows_pid_next_fire_and_last_run_while_running_and_exits_3_after_stop(
        every_second, start_daemon, run_lynx, tmp_path):
    pid, _ = start_daemon(every_second(("append.py", ["--out runs.txt"])))
    pid_path = tmp_path / ".lynx_pid.json"
    wait_for(lambda: lines(tmp_path / "runs.txt") >= 2, timeout=15)
    wait_for(lambda: json.loads(pid_path.read_text())["last_run"], timeout=10)

    status = run_lynx("status")
    assert status.returncode == 0, status.stderr
    assert f"pid {pid}" in status.stdout
    assert (re.search(r"next run:\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", status.stdout)
            or "running step" in status.stdout)   # caught between two runs, or in one
    assert re.search(r"last run:\s+\d{4}-.*took .*: ok", status.stdout)
    assert str(tmp_path / "lynx.log") in status.stdout
    assert f"ledger:    {tmp_path / '.lynx' / 'runs.jsonl'}" in status.stdout
    assert re.search(r"recorded:\s+run \S+ started .*: ok", status.stdout)

    os.kill(pid, signal.SIGHUP)   # logged and ignored: the schedule goes on
    wait_for(lambda: "SIGHUP" in (tmp_path / "lynx.log").read_text(), timeout=10)
    runs = lines(tmp_path / "runs.txt")
    wait_for(lambda: lines(tmp_path / "runs.txt") > runs, timeout=10)
    assert not gone(pid)

    assert run_lynx("stop", "-y").returncode == 0
    after = run_lynx("status")
    assert after.returncode == 3 and "not running" in after.stdout


def test_a_second_start_is_refused_with_the_pid_and_how_to_stop_it(every_second, start_daemon, run_lynx,
                                                                   tmp_path):
    cfg = every_second(("append.py", ["--out runs.txt"]))
    pid, _ = start_daemon(cfg)
    second = run_lynx("start", "-cf", str(cfg), "-bg", "-lf", str(tmp_path / "other.log"), timeout=20)
    assert second.returncode == 1
    assert f"pid {pid}" in second.stderr and "lynx stop --pid-file" in second.stderr
    assert json.loads((tmp_path / ".lynx_pid.json").read_text())["pid"] == pid
    assert not (tmp_path / "other.log").exists()   # refused before anything was set up


def test_a_stale_pidfile_is_removed_by_stop_and_replaced_by_start(every_second, start_daemon, run_lynx,
                                                                  tmp_path):
    exited = subprocess.Popen(SLEEPER[:2] + ["pass"])
    exited.wait(timeout=10)
    stale = {"pid": exited.pid, "create_time": time.time() - 5, "cmdline": SLEEPER[:2] + ["pass"]}
    pid_path = tmp_path / ".lynx_pid.json"
    pid_path.write_text(json.dumps(stale))

    stopped = run_lynx("stop", "--yes")
    assert stopped.returncode == 0 and "not running" in stopped.stdout and "stale" in stopped.stdout
    assert not pid_path.exists()

    pid_path.write_text(json.dumps(stale))
    pid, result = start_daemon(every_second(("append.py", ["--out runs.txt"])))
    assert "stale pidfile" in result.stderr and pid != exited.pid
    wait_for(lambda: lines(tmp_path / "runs.txt") >= 1, timeout=15)


@pytest.mark.parametrize("mismatch", ["command line", "create time"])
def test_a_pidfile_naming_a_live_program_that_is_not_lynx_never_gets_it_killed(run_lynx, started, reap,
                                                                                tmp_path, mismatch):
    sleeper = subprocess.Popen(SLEEPER)
    started.add(reap(sleeper.pid))
    proc = psutil.Process(sleeper.pid)
    record = {"pid": sleeper.pid, "create_time": proc.create_time(), "cmdline": proc.cmdline()}
    if mismatch == "command line":
        record["cmdline"] = [sys.executable, "-m", "lynx", "start", "-bg"]
    else:
        record["create_time"] -= 3600
    (tmp_path / ".lynx_pid.json").write_text(json.dumps(record))

    assert run_lynx("status").returncode == 3
    stopped = run_lynx("stop", "--yes")
    assert stopped.returncode == 0 and "not running" in stopped.stdout
    assert not (tmp_path / ".lynx_pid.json").exists()
    assert proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE


def test_stop_without_a_terminal_and_without_yes_refuses_and_the_daemon_keeps_running(
        every_second, start_daemon, run_lynx, tmp_path):
    pid, _ = start_daemon(every_second(("append.py", ["--out runs.txt"])))
    refused = run_lynx("stop")
    assert refused.returncode == 1 and "--yes" in refused.stderr
    assert not gone(pid) and (tmp_path / ".lynx_pid.json").exists()


def test_stop_on_a_terminal_shows_the_daemon_and_asks_first(every_second, start_daemon, spawn_lynx, tmp_path):
    import pexpect

    cfg = every_second(("append.py", ["--out runs.txt"]))
    pid, _ = start_daemon(cfg)
    child = spawn_lynx("stop")
    child.expect(f"pid {pid}")
    child.expect(re.escape(str(cfg)))
    child.expect(r"now: .*\r\n")
    child.expect(r"\[y/N\] ")
    child.sendline("n")
    child.expect("not stopped")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1 and not gone(pid)

    child = spawn_lynx("stop")
    child.expect(r"\[y/N\] ")
    child.sendline("y")
    child.expect(f"stopped \\(pid {pid}\\)")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and gone(pid)
    assert not (tmp_path / ".lynx_pid.json").exists()


def test_sigterm_sent_straight_to_the_daemon_ends_the_step_its_grandchild_and_the_pidfile(
        every_second, start_daemon, reap, tmp_path):
    pid, _ = start_daemon(every_second(("long.py", [])))
    step, grandchild = step_pids(tmp_path, reap)
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: gone(pid) and gone(step) and gone(grandchild), timeout=15)
    wait_for(lambda: not (tmp_path / ".lynx_pid.json").exists(), timeout=5)
    assert "stopped on request during step 'long'" in (tmp_path / "lynx.log").read_text()


def test_stop_kills_the_whole_tree_when_the_daemon_does_not_stop_within_the_timeout(
        every_second, start_daemon, run_lynx, reap, tmp_path):
    pid, _ = start_daemon(every_second(("long.py", ["--stubborn", "--escape"])))
    step, grandchild = step_pids(tmp_path, reap)
    stopped = run_lynx("stop", "--yes", "--timeout", "1", timeout=20)
    assert stopped.returncode == 0, stopped.stderr
    assert "did not stop within 1 s" in stopped.stdout
    assert gone(pid) and gone(step) and gone(grandchild)
    assert not (tmp_path / ".lynx_pid.json").exists()


def test_stop_ends_a_step_that_sent_its_output_away_even_if_the_daemon_leaves_it(
        every_second, write_script, start_daemon, run_lynx, reap, tmp_path):
    # A step that closed its end of Lynx's pipe is waited for, not read from: whatever the
    # daemon does with it on SIGTERM, `lynx stop` knew it before signalling and ends it.
    write_script("silent.py", """\
        import os, time
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        with open("silent.pid.tmp", "w") as out:
            out.write(str(os.getpid()))
        os.replace("silent.pid.tmp", "silent.pid")
        time.sleep(120)
        """)
    pid, _ = start_daemon(every_second(("silent.py", [])))
    wait_for(lambda: (tmp_path / "silent.pid").exists(), timeout=15)
    step = reap(int((tmp_path / "silent.pid").read_text()))
    wait_for(lambda: json.loads((tmp_path / ".lynx_pid.json").read_text())["running"], timeout=5)
    stopped = run_lynx("stop", "--yes", timeout=20)
    assert stopped.returncode == 0, stopped.stderr
    assert gone(pid) and gone(step)


def test_background_without_a_log_file_or_a_terminal_says_output_is_discarded(
        every_second, start_daemon, tmp_path):
    _, result = start_daemon(every_second(("append.py", ["--out runs.txt"])), log=None)
    assert "discarded" in result.stderr and "output discarded" in result.stdout
    assert json.loads((tmp_path / ".lynx_pid.json").read_text())["log_file"] is None
    wait_for(lambda: lines(tmp_path / "runs.txt") >= 1, timeout=15)


@pytest.mark.parametrize("answer", ["", "typed.log"])
def test_background_without_a_log_file_asks_on_a_terminal(every_second, spawn_lynx, reap, tmp_path, answer):
    import pexpect

    child = spawn_lynx("start", "-cf", str(every_second(("append.py", ["--out runs.txt"]))), "-bg")
    child.expect("log file for the background Lynx \\(Enter discards its output\\): ")
    child.sendline(answer)
    child.expect(r"as pid (\d+)")
    reap(int(child.match.group(1)))
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    record = json.loads((tmp_path / ".lynx_pid.json").read_text())
    assert record["log_file"] == (str(tmp_path / answer) if answer else None)
    wait_for(lambda: lines(tmp_path / "runs.txt") >= 1, timeout=15)
    if answer:
        wait_for(lambda: "step 1/1 'append' succeeded" in (tmp_path / answer).read_text(), timeout=10)


def test_two_daemons_run_side_by_side_with_their_own_pidfiles(every_second, start_daemon, run_lynx, tmp_path):
    first, _ = start_daemon(every_second(("append.py", ["--out a.txt"]), name="a.yaml"), pid_file="a.json")
    second, _ = start_daemon(every_second(("append.py", ["--out b.txt"]), name="b.yaml"), pid_file="b.json",
                             log="b.log")
    assert first != second
    wait_for(lambda: lines(tmp_path / "a.txt") >= 1 and lines(tmp_path / "b.txt") >= 1, timeout=15)
    assert f"pid {second}" in run_lynx("status", "--pid-file", "b.json").stdout
    assert run_lynx("stop", "-y", "--pid-file", "a.json").returncode == 0
    assert gone(first) and not gone(second)
    assert run_lynx("status", "--pid-file", "a.json").returncode == 3
    assert run_lynx("status", "--pid-file", "b.json").returncode == 0


def test_a_daemon_that_cannot_write_its_pidfile_is_reported_by_the_parent(every_second, run_lynx, tmp_path):
    missing = tmp_path / "no-such-dir" / "lynx.json"
    result = run_lynx("start", "-cf", str(every_second(("append.py", ["--out runs.txt"]))), "-bg",
                      "-lf", str(tmp_path / "lynx.log"), "--pid-file", str(missing), timeout=20)
    assert result.returncode == 1
    assert f"cannot write the pidfile {missing}" in result.stderr

    def daemons_left() -> list[psutil.Process]:
        return [p for p in psutil.process_iter(["cmdline"]) if str(missing) in (p.info["cmdline"] or [])
                and not gone(p)]
    wait_for(lambda: not daemons_left(), timeout=10)


def test_the_detached_process_path_gives_the_same_pidfile_and_stop(every_second, run_lynx, reap, monkeypatch,
                                                                   tmp_path):
    from lynx.launch import StartOptions

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    # The log file's name starts with '-': the child's command line must still read it as the value.
    options = StartOptions(config_file=str(every_second(("append.py", ["--out runs.txt"]))),
                           log_file="-lynx.log", log_level="INFO", log_size=2097152,
                           log_backup_count=3, interactive=False, keep_running=False, background=True,
                           pid_file=str(tmp_path / ".lynx_pid.json"))
    pid = reap(background.spawn_detached(options))
    assert json.loads((tmp_path / ".lynx_pid.json").read_text())["pid"] == pid
    wait_for(lambda: lines(tmp_path / "runs.txt") >= 1, timeout=15)
    assert "step 1/1 'append' started" in (tmp_path / "-lynx.log").read_text()
    stopped = run_lynx("stop", "--yes", timeout=20)
    assert stopped.returncode == 0 and f"stopped (pid {pid})" in stopped.stdout
    assert gone(pid) and not (tmp_path / ".lynx_pid.json").exists()


@pytest.mark.parametrize("platform, method", [("linux", "daemon"), ("darwin", "daemon"),
                                              ("freebsd14", "daemon"), ("cygwin", "daemon"),
                                              ("win32", "detached-process")])
def test_the_detach_method_is_python_daemon_on_posix_and_a_detached_process_on_windows(platform, method):
    assert background.detach_method(platform) == method


def test_stop_and_status_import_neither_yaml_nor_croniter_nor_daemon(tmp_path):
    code = ("import sys; from lynx.cli import main; "
            f"assert main(['status', '--pid-file', {str(tmp_path / 'p.json')!r}]) == 3; "
            f"assert main(['stop', '--pid-file', {str(tmp_path / 'p.json')!r}]) == 0; "
            "print(sorted({'yaml', 'croniter', 'daemon'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, cwd=REPO,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


# --- the pidfile helpers (fast) --------------------------------------------------------------------


def test_write_replaces_the_pidfile_whole_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "p.json"
    pidfile.write(path, {"pid": 1, "create_time": 1.0, "cmdline": ["a"], "note": "x" * 10000})
    pidfile.write(path, {"pid": 2, "create_time": 2.0, "cmdline": ["b"]})
    assert pidfile.read(path) == {"pid": 2, "create_time": 2.0, "cmdline": ["b"]}
    assert [p.name for p in tmp_path.iterdir()] == ["p.json"]


def test_a_file_that_is_not_a_lynx_pidfile_is_refused_and_never_deleted(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("steps: []\n")
    with pytest.raises(LynxError, match="not a Lynx pidfile"):
        pidfile.read(path)
    with pytest.raises(LynxError, match="not a Lynx pidfile"):
        control.stop({"--pid-file": str(path), "--timeout": "10", "--yes": True})
    assert not pidfile.remove(path, 1) and path.exists()


def test_the_record_of_a_live_lynx_identifies_that_process(tmp_path):
    record = pidfile.new_record("/c.yaml", None)
    proc, why = pidfile.identify(record)
    assert proc is not None and proc.pid == os.getpid() and why == ""


def test_a_record_whose_pid_has_exited_is_stale(tmp_path):
    proc = subprocess.Popen(SLEEPER[:2] + ["pass"])
    proc.wait(timeout=10)
    found, why = pidfile.identify({"pid": proc.pid, "create_time": time.time(), "cmdline": ["x"]})
    assert found is None and str(proc.pid) in why


def test_a_zombie_counts_as_gone(started):
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    started.add(proc.pid)
    ps = psutil.Process(proc.pid)
    record = {"pid": proc.pid, "create_time": ps.create_time(), "cmdline": ps.cmdline()}
    assert pidfile.identify(record)[0] is not None
    proc.stdin.close()   # it exits; not reaped until proc.wait(), so it stays a zombie meanwhile
    wait_for(lambda: ps.status() == psutil.STATUS_ZOMBIE, timeout=10)
    assert pidfile.identify(record) == (None, f"pid {proc.pid} has exited")
    assert proctree.is_gone(ps)
    proc.wait(timeout=10)


@pytest.mark.parametrize("field, value", [("create_time", -3600.0), ("cmdline", ["sleep", "60"])])
def test_a_reused_pid_is_stale(field, value):
    record = pidfile.new_record("/c.yaml", None)
    record[field] = record[field] + value if field == "create_time" else value
    found, why = pidfile.identify(record)
    assert found is None and "another" in why


def test_remove_deletes_the_pidfile_only_while_it_names_that_pid(tmp_path):
    path = tmp_path / "p.json"
    pidfile.write(path, {"pid": 7, "create_time": 1.0, "cmdline": ["a"]})
    assert not pidfile.remove(path, 8) and path.exists()
    assert pidfile.remove(path, 7) and not path.exists()
    assert not pidfile.remove(path, 7)


def test_claim_refuses_a_live_lynx_and_replaces_a_stale_record(tmp_path):
    path = tmp_path / "p.json"
    pidfile.write(path, pidfile.new_record("/c.yaml", None))   # this test process: alive
    with pytest.raises(AlreadyRunningError, match=f"pid {os.getpid()}.*lynx stop --pid-file"):
        pidfile.claim(path, {"pid": 1, "create_time": 1.0, "cmdline": ["new"]})
    pidfile.write(path, {"pid": os.getpid(), "create_time": 1.0, "cmdline": ["old"]})   # stale
    pidfile.claim(path, {"pid": 1, "create_time": 1.0, "cmdline": ["new"]})
    assert pidfile.read(path)["cmdline"] == ["new"]
    assert [p.name for p in tmp_path.iterdir()] == ["p.json"]


def test_the_tracker_keeps_next_fire_running_step_and_last_run_in_the_pidfile(tmp_path):
    from datetime import datetime, timezone

    path, ready = tmp_path / "p.json", []
    tracker = pidfile.Tracker(path, pidfile.new_record("/c.yaml", None), on_ready=lambda: ready.append(1))
    due = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
    tracker.next_fire(due)
    assert pidfile.read(path)["next_fire"] == "2026-01-01T12:00:00+00:00" and ready == [1]
    tracker.run_started(due)
    tracker.step_started(SimpleNamespace(name="train"))
    running = pidfile.read(path)
    assert running["state"] == "running" and running["running"]["step"] == "train"
    tracker.run_ended(RunResult([StepResult("train", 0, returncode=3, reason="exit status 3")]))
    last = pidfile.read(path)["last_run"]
    assert last["result"] == "failed" and last["failed_step"] == "train"
    assert last["due"] == running["running"]["due"]
    assert pidfile.read(path)["runs"] == 1 and ready == [1]


def test_status_and_stop_describe_a_ledger_they_cannot_read_instead_of_failing(tmp_path):
    # `stop` describes the daemon before it signals it: a bad ledger must not keep a daemon running.
    directory = tmp_path / "a-directory"
    directory.mkdir()
    lines = control.ledger_lines({"ledger": str(directory)})
    assert len(lines) == 1 and lines[0].startswith(f"  ledger:    {directory} (cannot read it: ")
    damaged = tmp_path / "runs.jsonl"
    damaged.write_text('{"run_id": "x", "duration": "abc"}\n')
    assert control.ledger_lines({"ledger": str(damaged)}) == [
        f"  ledger:    {damaged} (no runs yet; 1 damaged line(s) skipped)"]
