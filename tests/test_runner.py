"""The runner with real subprocesses: order, streaming, failures, retries, timeouts, leftovers."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import gone, lynx_env, wait_for

from lynx.config import Step
from lynx.output import StepOutput
from lynx.runner import StepInterrupted, describe, run_pipeline, summary


def py_step(name: str, code: str, **kw) -> Step:
    return Step(name=name, argv=(sys.executable, "-c", code), line=1, **kw)


class Sink:
    """Collects what each step wrote to the log, by step name."""

    def __init__(self) -> None:
        self.blocks = []

    def __call__(self, step: Step) -> StepOutput:
        return StepOutput(step.name, None, lambda block, head: self.blocks.append(head + block))

    @property
    def text(self) -> str:
        return b"".join(self.blocks).decode()


def test_steps_run_in_order_and_all_output_is_logged():
    sink = Sink()
    steps = [py_step("one", "print('first')"), py_step("two", "import sys; print('oops', file=sys.stderr)")]
    result = run_pipeline(steps, sink)
    assert result.ok
    assert [s.name for s in result.steps] == ["one", "two"]
    assert sink.text.index("one | first") < sink.text.index("two | oops")


def test_a_failed_step_ends_the_run_without_a_dialog():
    sink = Sink()
    steps = [py_step("bad", "raise SystemExit(3)"), py_step("never", "print('ran')")]
    result = run_pipeline(steps, sink)
    assert not result.ok
    assert result.failed.name == "bad" and result.failed.returncode == 3
    assert result.failed.reason == "exit status 3"
    assert "ran" not in sink.text


def test_rerunning_the_failed_step_continues_the_pipeline(tmp_path):
    flag = tmp_path / "failed-once"
    flaky = f"import pathlib,sys; p=pathlib.Path({str(flag)!r}); ok=p.exists(); p.touch(); sys.exit(0 if ok else 1)"
    answers = []
    result = run_pipeline([py_step("flaky", flaky), py_step("after", "print('after')")], Sink(),
                          on_failure=lambda failed: answers.append(failed.name) or "step")
    assert answers == ["flaky"]
    assert result.ok and [s.name for s in result.steps] == ["flaky", "after"]
    assert [s.attempts for s in result.steps] == [2, 1]   # the failed attempt is counted, not forgotten


def test_a_step_stopped_during_its_retries_is_recorded_with_the_attempts_it_started(tmp_path):
    counter = tmp_path / "n"
    # Fails twice, then (third attempt) asks to be stopped, as Ctrl+C would: SIGINT to Lynx.
    code = (f"import os,pathlib,signal,sys,time; p=pathlib.Path({str(counter)!r}); n=int(p.read_text()) "
            "if p.exists() else 0; p.write_text(str(n+1));"
            "n < 2 and sys.exit(1); os.kill(os.getppid(), signal.SIGINT); time.sleep(60)")
    with pytest.raises(StepInterrupted) as stopped:
        run_pipeline([py_step("flaky", code, retries=2)], Sink())
    [step] = stopped.value.result.steps
    assert (step.attempts, step.reason, stopped.value.run_failed) == (3, "interrupted by Ctrl+C", False)


@pytest.mark.parametrize("choice, attempts", [("step", 2), ("pipeline", 1)])
def test_a_stop_during_a_rerun_from_the_dialog_counts_the_failure_before_it(tmp_path, choice, attempts):
    flag = tmp_path / "failed-once"
    code = (f"import os,pathlib,signal,sys,time; p=pathlib.Path({str(flag)!r}); again=p.exists(); p.touch();"
            "again or sys.exit(1); os.kill(os.getppid(), signal.SIGINT); time.sleep(60)")
    with pytest.raises(StepInterrupted) as stopped:
        run_pipeline([py_step("flaky", code)], Sink(), on_failure=lambda failed: choice)
    [step] = stopped.value.result.steps
    assert (step.attempts, stopped.value.run_failed) == (attempts, True)   # a stop now exits 1, as at the dialog


def test_rerunning_the_pipeline_starts_again_from_the_first_step(tmp_path):
    counter = tmp_path / "count"
    first = f"import pathlib; p=pathlib.Path({str(counter)!r}); p.write_text(p.read_text()+'x' if p.exists() else 'x')"
    second = f"import pathlib,sys; sys.exit(0 if len(pathlib.Path({str(counter)!r}).read_text()) > 1 else 1)"
    result = run_pipeline([py_step("a", first), py_step("b", second)], Sink(), on_failure=lambda f: "pipeline")
    assert result.ok
    assert counter.read_text() == "xx"
    assert [s.name for s in result.steps] == ["a", "b"]


def test_output_is_streamed_while_the_step_is_still_running(tmp_path):
    go = tmp_path / "go"
    code = f"import pathlib,time; print('ready'); [time.sleep(0.01) for _ in iter(lambda: pathlib.Path({str(go)!r}).exists(), True)]"
    sink = Sink()
    worker = threading.Thread(target=run_pipeline, args=([py_step("live", code)], sink))
    worker.start()
    try:
        wait_for(lambda: "live | ready" in sink.text, timeout=10)
    finally:
        go.touch()
        worker.join(10)
    assert not worker.is_alive()


def test_steps_see_pythonunbuffered_and_their_own_env():
    sink = Sink()
    code = "import os; print(os.environ['PYTHONUNBUFFERED'], os.environ['EXTRA'])"
    assert run_pipeline([py_step("env", code, env={"EXTRA": "yes"})], sink).ok
    assert "env | 1 yes" in sink.text


def test_steps_inherit_lynx_environment_and_their_own_env_wins_over_it(monkeypatch):
    monkeypatch.setenv("LYNX_TEST_INHERITED", "from lynx")
    monkeypatch.setenv("LYNX_TEST_OVERRIDDEN", "from lynx")
    sink = Sink()
    code = "import os; print(os.environ['LYNX_TEST_INHERITED'], '/', os.environ['LYNX_TEST_OVERRIDDEN'])"
    assert run_pipeline([py_step("env", code, env={"LYNX_TEST_OVERRIDDEN": "from the step"})], sink).ok
    assert "env | from lynx / from the step" in sink.text


def test_a_steps_variables_do_not_stay_in_lynx_environment(monkeypatch):
    # They are put into Lynx's own (C-level) environment just around each start, then taken out
    # again: after a step, after a step that could not start, and for the next step.
    monkeypatch.setenv("X_KEPT", "lynx's own")
    monkeypatch.delenv("X_STEP_ONLY", raising=False)
    monkeypatch.delenv("LYNX_STEP", raising=False)
    sink = Sink()
    show = "import os; print(os.environ.get('X_KEPT'), os.environ.get('X_STEP_ONLY'), os.environ.get('LYNX_STEP'))"
    changed = {"X_KEPT": "the step's", "X_STEP_ONLY": "set"}
    steps = [py_step("first", show, env=changed),
             Step(name="unstartable", argv=("/nonexistent/lynx-test",), line=1, env=changed,
                  continue_on_failure=True),
             py_step("second", show)]
    result = run_pipeline(steps, sink, run_env={"LYNX_RUN_ID": "r"})
    assert [s.ok for s in result.steps] == [True, False, True]
    assert "first | the step's set first" in sink.text
    assert "second | lynx's own None second" in sink.text
    after = subprocess.run([sys.executable, "-c", show], capture_output=True, text=True, timeout=30, check=True)
    assert after.stdout.split() == ["lynx's", "own", "None", "None"]   # what a process Lynx starts inherits


def test_retries_run_a_failing_step_again_until_it_succeeds_and_say_why_each_time(tmp_path, caplog):
    counter = tmp_path / "n"
    code = (f"import pathlib,sys; p=pathlib.Path({str(counter)!r}); n=int(p.read_text()) if p.exists() else 0;"
            "p.write_text(str(n+1)); sys.exit(0 if n >= 2 else 4)")
    with caplog.at_level(logging.WARNING, logger="lynx"):
        result = run_pipeline([py_step("flaky", code, retries=2)], Sink())
    assert result.ok and result.steps[0].attempts == 3
    assert [r.getMessage() for r in caplog.records] == ["step 'flaky' failed (exit status 4); retrying in 0 s"] * 2


def test_a_timed_out_step_and_its_grandchild_are_ended(tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    code = ("import subprocess,sys,time,pathlib;"
            f"c=subprocess.Popen([sys.executable,'-c','import time; time.sleep(60)']);"
            f"pathlib.Path({str(pidfile)!r}).write_text(str(c.pid)); time.sleep(60)")
    result = run_pipeline([py_step("hang", code, timeout=1.5)], Sink())
    assert not result.ok
    assert result.steps[0].reason == "timed out after 1.5 s"
    grandchild = int(pidfile.read_text())
    assert wait_for(lambda: gone(grandchild), timeout=5)


def _leaves_its_group(pidfile: Path, how: str) -> str:
    """A step whose child moves to a process group (or session) of its own, like coreutils `timeout`."""
    return ("import os,subprocess,sys,time,pathlib;"
            f"c=subprocess.Popen([sys.executable,'-c','import time; time.sleep(60)'], {how});"
            f"pathlib.Path({str(pidfile)!r}).write_text(str(c.pid)); time.sleep(60)")


@pytest.mark.parametrize("how", ["preexec_fn=os.setpgrp", "start_new_session=True"])
def test_a_timed_out_step_takes_the_children_that_left_its_group_with_it(tmp_path, how):
    pidfile = tmp_path / "stray.pid"
    # 3 s: time for Python to start it, and its child, even on a loaded machine.
    result = run_pipeline([py_step("hang", _leaves_its_group(pidfile, how), timeout=3)], Sink())
    assert pidfile.exists(), "the step did not start its child within its timeout: nothing to check"
    stray = int(pidfile.read_text())
    try:
        assert result.steps[0].reason == "timed out after 3 s"
        assert wait_for(lambda: gone(stray), timeout=5)
    finally:
        if not gone(stray):
            os.kill(stray, signal.SIGKILL)


def test_a_stop_landing_right_after_a_step_started_ends_that_step(monkeypatch):
    # Between Popen's return and start()'s, nobody else holds the process: start() must end it.
    from lynx import runner

    started = []

    class Recorded(subprocess.Popen):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            started.append(self)

    def interrupted(changes) -> None:
        restore(changes)
        raise KeyboardInterrupt

    restore = runner._restore
    monkeypatch.setattr(subprocess, "Popen", Recorded)
    monkeypatch.setattr(runner, "_restore", interrupted)
    with pytest.raises(KeyboardInterrupt):
        runner.start(py_step("slow", "import time; time.sleep(60)"), {})
    assert len(started) == 1 and started[0].returncode is not None   # ended and reaped


def test_a_stop_landing_inside_popen_after_the_fork_ends_the_step_it_started(monkeypatch):
    # Popen raises with the child running and no Popen object to end it with.
    import _posixsubprocess

    from lynx import runner

    forked = []
    holder, name = (subprocess, "_fork_exec") if hasattr(subprocess, "_fork_exec") else (_posixsubprocess, "fork_exec")
    real = getattr(holder, name)

    def fork_then_interrupted(*args, **kwargs):
        forked.append(real(*args, **kwargs))
        raise KeyboardInterrupt

    monkeypatch.setattr(holder, name, fork_then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        runner.start(py_step("slow", "import time; time.sleep(60)"), {})
    monkeypatch.undo()
    assert len(forked) == 1
    ended = []

    def reaped() -> bool:
        pid, status = os.waitpid(forked[0], os.WNOHANG)
        ended.append(status)
        return pid != 0

    try:
        assert wait_for(reaped, timeout=5)
        assert os.WTERMSIG(ended[-1]) == signal.SIGKILL   # killed, not left running unseen
    finally:
        if not gone(forked[0]):
            os.kill(forked[0], signal.SIGKILL)
            os.waitpid(forked[0], 0)


def test_what_a_step_says_as_it_is_stopped_still_reaches_the_log():
    code = ("import signal,sys,time\n"
            "def stop(*_):\n    print('saving a checkpoint', flush=True); time.sleep(0.2)\n"
            "    print('checkpoint saved', flush=True); sys.exit(143)\n"
            "signal.signal(signal.SIGTERM, stop); print('training', flush=True); time.sleep(60)")
    sink = Sink()
    result = run_pipeline([py_step("train", code, timeout=3)], sink)   # time to set its handler up
    assert result.steps[0].reason == "timed out after 3 s"
    assert [line.split(" | ")[1] for line in sink.text.splitlines()] == ["training", "saving a checkpoint",
                                                                        "checkpoint saved"]


def test_a_ctrl_c_during_a_timed_out_steps_grace_ends_it_once(monkeypatch):
    # The step answers SIGTERM by pressing Ctrl+C on Lynx (here: pytest) and goes on.
    from lynx import ending

    sent = []
    real = ending.signal_group
    monkeypatch.setattr(ending, "signal_group", lambda pgid, sig: sent.append(sig) or real(pgid, sig))
    code = ("import os,signal,time; signal.signal(signal.SIGTERM, lambda *_: os.kill(os.getppid(), "
            "signal.SIGINT)); print('ready', flush=True); time.sleep(60)")
    with pytest.raises(StepInterrupted):
        run_pipeline([py_step("stubborn", code, timeout=3)], Sink())   # time to set its handler up
    assert sent == [signal.SIGTERM, signal.SIGKILL]   # not a second round at a group already gone


def test_what_a_step_starts_in_a_session_of_its_own_while_being_stopped_is_ended_too(tmp_path, monkeypatch):
    from lynx import ending

    monkeypatch.setattr(ending, "GRACE_SECONDS", 1.0)
    pidfile = tmp_path / "late.pid"
    code = ("import os,signal,subprocess,sys,time\n"
            "def late(*_):\n    c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],"
            " start_new_session=True)\n"
            f"    open({str(pidfile)!r}, 'w').write(str(c.pid))\n"
            "signal.signal(signal.SIGTERM, late); time.sleep(60)")   # and goes on, ignoring the stop
    result = run_pipeline([py_step("stubborn", code, timeout=3)], Sink())
    assert result.steps[0].reason == "timed out after 3 s"
    late = int(pidfile.read_text())
    try:
        assert wait_for(lambda: gone(late), timeout=5)
    finally:
        if not gone(late):
            os.kill(late, signal.SIGKILL)


def test_a_step_that_cannot_start_is_a_failed_step_not_a_crash(tmp_path):
    step = Step(name="gone", argv=(str(tmp_path / "missing"),), line=1)
    result = run_pipeline([step], Sink())
    assert not result.ok and result.steps[0].reason.startswith("could not start")


def test_a_background_process_holding_the_pipe_does_not_hang_the_run(tmp_path):
    pidfile = tmp_path / "left.pid"
    result = run_pipeline([py_step("leaves", _hold_output(pidfile))], Sink())
    assert result.ok
    left = int(pidfile.read_text())
    assert wait_for(lambda: gone(left), timeout=5)


@pytest.fixture
def lynx_warnings():
    """The messages the 'lynx' logger gives at WARNING and above during the test."""
    messages: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    logger, handler = logging.getLogger("lynx"), Keep(logging.WARNING)
    logger.addHandler(handler)
    yield messages
    logger.removeHandler(handler)


def _leave_behind(pidfile: Path, child_code: str, **popen) -> str:
    """A step's code that starts `child_code` (output not to the step's pipe), waits until it is
    ready (it prints one line), writes its pid to `pidfile` and exits."""
    options = ", ".join(f"{k}={v}" for k, v in popen.items())
    return ("import subprocess,sys,pathlib;"
            f"c=subprocess.Popen([sys.executable,'-c',{child_code!r}],stdout=subprocess.PIPE,"
            f"stderr=subprocess.DEVNULL,{options});"
            f"c.stdout.readline(); pathlib.Path({str(pidfile)!r}).write_text(str(c.pid))")


@pytest.mark.skipif(os.name != "posix", reason="process groups are POSIX")
@pytest.mark.parametrize("ignores_sigterm", [False, True])
def test_what_a_step_left_running_in_its_group_is_ended_when_the_step_ends(tmp_path, lynx_warnings, monkeypatch,
                                                                          ignores_sigterm):
    from lynx import ending

    monkeypatch.setattr(ending, "GRACE_SECONDS", 0.5)   # then SIGKILL, for the one that ignores SIGTERM
    pidfile = tmp_path / "left.pid"
    child = ("import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); " if ignores_sigterm else
             "import time; ") + "print('ready', flush=True); time.sleep(60)"
    result = run_pipeline([py_step("leaves", _leave_behind(pidfile, child)), py_step("next", "pass")], Sink())
    left = int(pidfile.read_text())
    try:
        assert gone(left)   # already when the run returns: ended before the next step started
    finally:
        if not gone(left):
            os.kill(left, signal.SIGKILL)
    assert result.ok and [s.name for s in result.steps] == ["leaves", "next"]
    assert len(lynx_warnings) == 1
    assert lynx_warnings[0].startswith("step 'leaves' left python") and f"(pid {left}) running" in lynx_warnings[0]
    assert lynx_warnings[0].endswith("; ended it")


@pytest.mark.skipif(os.name != "posix", reason="process groups are POSIX")
def test_a_process_that_leaves_the_group_with_setsid_outlives_its_step(tmp_path, lynx_warnings):
    pidfile = tmp_path / "server.pid"
    child = "import time; print('ready', flush=True); time.sleep(60)"
    code = _leave_behind(pidfile, child, start_new_session=True)
    result = run_pipeline([py_step("serve", code)], Sink())
    left = int(pidfile.read_text())
    try:
        assert result.ok and not gone(left) and lynx_warnings == []
    finally:
        os.kill(left, signal.SIGKILL)


def test_continue_on_failure_goes_on_and_the_run_counts_as_failed():
    result = run_pipeline([py_step("bad", "raise SystemExit(1)", continue_on_failure=True),
                           py_step("next", "pass")], Sink())
    assert [s.name for s in result.steps] == ["bad", "next"]
    assert not result.ok


def test_exit_statuses_and_signals_are_described_for_people():
    assert describe(0) == "exit status 0"
    assert describe(-9) == "killed by SIGKILL"
    result = run_pipeline([py_step("s", "pass")], Sink())
    assert summary(result).splitlines()[1].startswith("s     ok")


def test_the_step_runs_in_its_cwd(tmp_path):
    sink = Sink()
    assert run_pipeline([py_step("where", "import os; print(os.getcwd())", cwd=tmp_path)], sink).ok
    assert f"where | {Path(tmp_path).resolve()}" in sink.text


def test_a_chatty_progress_bar_reaches_the_screen_byte_for_byte_and_the_log_collapsed():
    import io

    screen, blocks = io.BytesIO(), []
    code = ("import os\nfor i in range(20000):\n    os.write(1, b'\\r%05d' % i)\n"
            "os.write(1, b'\\ndone\\n')\n")
    result = run_pipeline([py_step("bar", code)],
                          lambda step: StepOutput(step.name, screen, lambda b, h: blocks.append(h + b)))
    assert result.ok
    assert screen.getvalue() == b"".join(b"\r%05d" % i for i in range(20000)) + b"\ndone\n"
    assert [line.split(b" | ", 1)[1] for line in b"".join(blocks).splitlines()] == [b"19999", b"done"]


def test_without_poll_the_output_is_still_copied_whole(monkeypatch):
    # Windows has no select.poll for pipes; the fallback reads blocking until EOF.
    import select

    monkeypatch.delattr(select, "poll")
    sink = Sink()
    code = "import sys\nfor i in range(3000): print('line', i)\nprint('end', file=sys.stderr)"
    result = run_pipeline([py_step("plain", code)], sink)
    assert result.ok
    lines = sink.text.splitlines()
    assert [line.split(" | ", 1)[1] for line in lines] == [f"line {i}" for i in range(3000)] + ["end"]


def test_a_step_that_never_stops_printing_is_still_ended_at_its_timeout():
    blocks = []
    code = "import os\nwhile True:\n    os.write(1, b'x' * 99 + b'\\n')"
    started = time.monotonic()
    with open(os.devnull, "wb") as screen:
        result = run_pipeline([py_step("flood", code, timeout=1.0)],
                              lambda step: StepOutput(step.name, screen, lambda b, h: blocks.append(len(b))))
    assert result.steps[0].reason == "timed out after 1 s"
    assert time.monotonic() - started < 8   # the timeout, the SIGTERM, and slack for a busy machine
    assert sum(blocks) > 100_000, "the output flowed until the timeout"


def test_a_left_behind_process_that_keeps_printing_is_ended_after_the_step_exits(tmp_path):
    pidfile = tmp_path / "printer.pid"
    printer = "import os\nwhile True:\n    os.write(1, b'still here\\n')"
    code = ("import subprocess,sys,pathlib;"
            f"c=subprocess.Popen([sys.executable,'-c',{printer!r}]);"
            f"pathlib.Path({str(pidfile)!r}).write_text(str(c.pid))")
    result = run_pipeline([py_step("leaves", code)], Sink())
    assert result.ok
    assert wait_for(lambda: gone(int(pidfile.read_text())), timeout=5)


def _pipe_sizes(code: str) -> list[int]:
    """The step's pipe size (F_GETPIPE_SZ) each time Lynx passes on a chunk of its output."""
    import fcntl

    from lynx.runner import start
    from lynx.streaming import EOF, stream

    proc = start(py_step("p", code), {})
    sizes: list[int] = []

    class Probe:
        def write(self, chunk: bytes) -> None:
            sizes.append(fcntl.fcntl(proc.stdout.fileno(), 1032))   # F_GETPIPE_SZ

    try:
        assert stream(proc, Probe(), time.monotonic() + 30) == EOF
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    return sizes


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pipe sizes are a Linux feature")
def test_the_pipe_is_widened_only_once_a_step_writes_faster_than_lynx_reads():
    quiet = _pipe_sizes("import os\nos.write(1, b'quiet\\n'); os.write(1, b'still quiet\\n')")
    assert quiet and set(quiet) == {65536}   # one read or two, the pipe keeps its size
    limit = int(Path("/proc/sys/fs/pipe-max-size").read_text())
    sizes = _pipe_sizes("import os\nfor _ in range(64): os.write(1, b'x' * 65535 + b'\\n')")
    assert sizes[0] == 65536 and sizes[-1] == min(1 << 20, limit)


def _hold_output(pidfile: Path, popen: str = "") -> str:
    """A step's code that starts a child keeping the step's output pipe (its stdout), writes the
    child's pid to `pidfile` and exits at once; `popen`: more Popen arguments."""
    return ("import subprocess,sys,pathlib;"
            f"c=subprocess.Popen([sys.executable,'-c','import time; time.sleep(60)'],{popen});"
            f"pathlib.Path({str(pidfile)!r}).write_text(str(c.pid))")


@pytest.mark.skipif(os.name != "posix", reason="process groups are POSIX")
def test_a_step_that_ends_in_time_is_not_timed_out_by_what_holds_its_output(tmp_path, lynx_warnings):
    pidfile = tmp_path / "holder.pid"
    result = run_pipeline([py_step("quick", _hold_output(pidfile), timeout=0.5)], Sink())
    holder = int(pidfile.read_text())
    try:
        assert gone(holder)
    finally:
        if not gone(holder):
            os.kill(holder, signal.SIGKILL)
    assert result.ok, result.steps[0].reason
    assert len(lynx_warnings) == 1 and "(holding its output open); ended it" in lynx_warnings[0]


@pytest.mark.skipif(os.name != "posix", reason="sessions are POSIX")
def test_a_process_outside_the_group_holding_the_output_is_named_not_killed(tmp_path, lynx_warnings):
    pidfile = tmp_path / "server.pid"
    result = run_pipeline([py_step("serve", _hold_output(pidfile, "start_new_session=True"))], Sink())
    server = int(pidfile.read_text())
    try:
        assert result.ok and not gone(server)
        assert len(lynx_warnings) == 1
        assert "a process outside its group (setsid?) still holds its output" in lynx_warnings[0]
    finally:
        os.kill(server, signal.SIGKILL)


def test_ending_a_step_lost_inside_popen_ends_what_it_started_in_sessions_of_its_own(tmp_path):
    # In a process of its own: end_new_sessions() ends every session-leading child of the caller.
    pidfile = tmp_path / "grandchild.pid"
    step = ("import subprocess,sys,time; c=subprocess.Popen([sys.executable,'-c','import time; time.sleep(60)'],"
            f" start_new_session=True); open({str(pidfile)!r},'w').write(str(c.pid)); time.sleep(60)")
    code = ("import os,subprocess,sys,time\n"
            "from lynx.proctree import end_new_sessions\n"
            f"p = subprocess.Popen([sys.executable, '-c', {step!r}], start_new_session=True)\n"
            f"while not os.path.exists({str(pidfile)!r}) or not open({str(pidfile)!r}).read(): time.sleep(0.01)\n"
            "end_new_sessions(); print(p.wait())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
                         env=lynx_env(), check=False)
    grandchild = int(pidfile.read_text())
    try:
        assert out.stdout.strip() == str(-signal.SIGKILL), out.stderr
        assert wait_for(lambda: gone(grandchild), timeout=5)
    finally:
        if not gone(grandchild):
            os.kill(grandchild, signal.SIGKILL)
