"""The run ledger (.lynx/runs.jsonl): what a run records, how damage is survived, and `lynx history`."""

from __future__ import annotations

import enum
import json
import logging
import re
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import ends, lynx_env, wait_for

from lynx import ledger
from lynx.runner import RunResult, StepResult

RUN_KEYS = {"run_id", "trigger", "config", "start", "end", "duration", "result", "steps"}
STEP_KEYS = {"name", "attempts", "ok", "exit_status", "signal", "reason", "duration", "log_file"}
HEADER = re.compile(r"^started\s+duration\s+trigger\s+result\s+steps\s+run id$", re.MULTILINE)
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def default_ledger(config: Path) -> Path:
    return config.parent / ".lynx" / "runs.jsonl"


def fake_entry(n: int, status: str = "ok") -> dict:
    """A ledger entry for run number n, n minutes after T0."""
    start = T0 + timedelta(minutes=n)
    steps = RunResult([StepResult("only", 0, returncode=0 if status == "ok" else 2, duration=1.5, attempts=1,
                                  reason="exit status 0" if status == "ok" else "exit status 2")])
    return ledger.entry(f"run-{n}", "manual", start.timestamp(), start.timestamp() + 2, status, steps,
                        Path("/x/config.yaml"), None)


# --- lynx.ledger, directly ----------------------------------------------------------------------------

def test_entries_appended_are_read_back_oldest_first_and_last_n_keeps_the_newest(tmp_path):
    path = tmp_path / "deep" / "dir" / "runs.jsonl"
    for n in range(4):
        ledger.append(path, fake_entry(n))
    assert path.read_text().count("\n") == 4
    entries, damaged = ledger.read(path)
    assert [e["run_id"] for e in entries] == ["run-0", "run-1", "run-2", "run-3"] and damaged == 0
    assert [e["run_id"] for e in ledger.read(path, 2)[0]] == ["run-2", "run-3"]


def test_reading_a_ledger_that_does_not_exist_gives_no_entries(tmp_path):
    assert ledger.read(tmp_path / "missing.jsonl") == ([], 0)


def test_an_entry_records_the_run_and_each_step_with_exit_status_or_signal():
    result = RunResult([
        StepResult("prep", 0, returncode=0, duration=0.12345, attempts=1, reason="exit status 0"),
        StepResult("train", 1, returncode=3, duration=2.0, attempts=2, reason="exit status 3"),
        StepResult("slow", 2, returncode=-15, duration=1.0004, attempts=1, reason="timed out after 1 s"),
    ])
    end = T0 + timedelta(seconds=3.25)
    entry = ledger.entry("id-1", "manual", T0.timestamp(), end.timestamp(), "failed", result, Path("/p/config.yaml"),
                         "/p/run.log")
    assert set(entry) == RUN_KEYS
    assert entry["run_id"] == "id-1" and entry["trigger"] == "manual" and entry["config"] == "/p/config.yaml"
    assert datetime.fromisoformat(entry["start"]) == T0 and datetime.fromisoformat(entry["end"]) == end
    assert entry["duration"] == 3.25 and entry["result"] == "failed"
    prep, train, slow = entry["steps"]
    assert all(set(step) == STEP_KEYS and step["log_file"] == "/p/run.log" for step in entry["steps"])
    assert prep == {"name": "prep", "attempts": 1, "ok": True, "exit_status": 0, "signal": None,
                    "reason": "exit status 0", "duration": 0.123, "log_file": "/p/run.log"}
    assert (train["ok"], train["attempts"], train["exit_status"], train["signal"]) == (False, 2, 3, None)
    assert (slow["ok"], slow["exit_status"], slow["signal"], slow["reason"]) == (
        False, None, 15, "timed out after 1 s")
    assert json.loads(json.dumps(entry)) == entry


def test_damaged_lines_are_counted_and_skipped_and_empty_lines_are_ignored(tmp_path):
    path = tmp_path / "runs.jsonl"
    good = [json.dumps(fake_entry(n)) for n in range(3)]
    path.write_text(f"{good[0]}\n\nnot json at all\n[1, 2]\n{good[1]}\n{good[2]}\n" + good[2][:25])
    entries, damaged = ledger.read(path)
    assert [e["run_id"] for e in entries] == ["run-0", "run-1", "run-2"]
    assert damaged == 3  # the garbage line, the JSON that is no run, the half line; not the empty line


@pytest.mark.parametrize("line", [
    '{"run_id": "x", "duration": "abc"}', '{"run_id": "x", "duration": true}', '{"run_id": "x", "duration": 1e999}',
    '{"run_id": "x", "duration": 1' + "0" * 400 + "}", '{"run_id": "x", "steps": "oops"}',
    '{"run_id": "x", "steps": [1]}', "[" * 100000 + "]" * 100000])
def test_a_line_whose_fields_history_and_status_cannot_use_is_a_damaged_line(tmp_path, line):
    # A hand edit or another tool's line: counted and skipped like garbage, never a crash later.
    path = tmp_path / "runs.jsonl"
    path.write_text(f"{json.dumps(fake_entry(0))}\n{line}\n")
    entries, damaged = ledger.read(path)
    assert ([e["run_id"] for e in entries], damaged) == (["run-0"], 1)


def test_an_entry_appended_after_a_half_line_starts_on_a_fresh_line(tmp_path):
    path = tmp_path / "runs.jsonl"
    half = json.dumps(fake_entry(0))[:30]
    path.write_text(half)
    ledger.append(path, fake_entry(1))
    assert path.read_text().splitlines()[0] == half
    entries, damaged = ledger.read(path)
    assert [e["run_id"] for e in entries] == ["run-1"] and damaged == 1


def test_a_ledger_that_cannot_be_written_is_a_warning_not_an_error(tmp_path):
    (tmp_path / "file").write_text("in the way")
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("lynx")
    logger.addHandler(handler)
    try:
        ledger.append(tmp_path / "file" / "runs.jsonl", fake_entry(0))
    finally:
        logger.removeHandler(handler)
    assert any(r.levelno == logging.WARNING and "could not write the run ledger" in r.getMessage()
               for r in records)


def test_run_ids_sort_by_start_time_and_do_not_repeat():
    t0 = T0.timestamp()
    assert ledger.new_run_id(t0) < ledger.new_run_id(t0 + 1)
    assert ledger.new_run_id(t0).startswith("20260301T120000-")   # UTC
    assert len({ledger.new_run_id(t0) for _ in range(20)}) == 20
    assert ledger.default_path(Path("/p/q/config.yaml")) == "/p/q/.lynx/runs.jsonl"
    assert ledger.default_path("/p/q/config.yaml") == "/p/q/.lynx/runs.jsonl"


@pytest.mark.parametrize("seconds", [0.0, 1e-7, 0.4999995, 0.5000005, 1.0000005, 59.9999996, 951782399.9999995,
                                     1772366400.0, 1772366400.25, 1772366400.123456, 1772366400.9999996,
                                     4102444799.999999, -1.5, -0.0000004])
def test_iso_utc_is_what_datetime_gives_to_the_character(seconds):
    assert ledger.iso_utc(seconds) == datetime.fromtimestamp(seconds, timezone.utc).isoformat()


def test_iso_utc_matches_datetime_for_many_random_instants():
    import random

    rng = random.Random(7)
    for _ in range(20000):
        seconds = rng.uniform(0, 4e9) if rng.random() < 0.5 else rng.randrange(0, 4 * 10**15) / 1e6
        assert ledger.iso_utc(seconds) == datetime.fromtimestamp(seconds, timezone.utc).isoformat(), seconds


_CHARACTERS = ['"', "\\", "\n", "\r", "\t", "\b", "\f", "\x00", "\x1f", "\x7f", "a", "Z", "/", " ", "\u00e9",
               "\u2028", "\ud800", "\udfff", "\uffff", "\U0001f600", "\U0010ffff", "\u4e2d"]


def _random_text(rng) -> str:
    return "".join(rng.choice(_CHARACTERS) for _ in range(rng.randrange(12)))


class _Level(enum.IntEnum):
    LOW = 7


class _Colour(str, enum.Enum):
    RED = "r\u00e9d"


class _Seconds(float):
    def __repr__(self) -> str:   # json writes float.__repr__, whatever the subclass says
        return "seconds"


def _random_key(rng):
    """Mostly text; json also takes numbers, booleans and None as keys (written as their JSON text)."""
    if rng.random() < 0.7:
        return _random_text(rng)
    return rng.choice([0, -3, 2**70, 1.5, -0.0, float("nan"), float("inf"), True, False, None, _Level.LOW])


def _random_value(rng, depth: int = 0):
    """Anything an entry may hold: nested mappings and lists, text with every kind of character,
    numbers at their edges, booleans, None, subclasses of them, and objects written as their str()."""
    kind = rng.randrange(7 if depth < 4 else 5)
    if kind == 0:
        return _random_text(rng)
    if kind == 1:
        return rng.choice([0, -1, 1, 2**63, -(2**70), 10**40, rng.randrange(-10**6, 10**6)])
    if kind == 2:
        return rng.choice([0.0, -0.0, 1.5, 1e-320, 1e300, -2.5e-7, 0.1 + 0.2, float("nan"), float("inf"),
                           float("-inf"), round(rng.uniform(0, 1e5), 3), rng.uniform(-1, 1)])
    if kind == 3:
        return rng.choice([True, False, None])
    if kind == 4:
        return rng.choice([Path("/tmp/\u00e9 x"), ValueError("w\u00e9ird \"one\""), b"bytes", 3 + 4j, {1, 2},
                           _Level.LOW, _Colour.RED, _Seconds(2.5), _Seconds("nan")])
    if kind == 5:
        return {_random_key(rng): _random_value(rng, depth + 1) for _ in range(rng.randrange(4))}
    items = [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return tuple(items) if rng.random() < 0.3 else items


@pytest.mark.parametrize("escaper", ["C", "pure Python"])
def test_a_ledger_line_is_what_json_dumps_gives_to_the_character(monkeypatch, escaper):
    """The ledger writes its lines without importing json (~0.9 ms of a start): the text must not differ,
    with CPython's C escaper or the pure Python one an interpreter without it falls back to."""
    import random
    from json.encoder import py_encode_basestring_ascii

    if escaper == "pure Python":
        monkeypatch.setattr(ledger, "_quote", py_encode_basestring_ascii)
    rng = random.Random(11)
    for _ in range(5000):
        value = _random_value(rng)
        assert ledger.to_json(value) == json.dumps(value, separators=(",", ":"), default=str), value
    entry = fake_entry(3, "failed")
    assert ledger.to_json(entry) == json.dumps(entry, separators=(",", ":"), default=str)
    with pytest.raises(TypeError, match="keys must be str, int, float, bool or None, not tuple"):
        ledger.to_json({(1, 2): 3})   # as json.dumps refuses it


# --- what real runs record ----------------------------------------------------------------------------

def test_a_successful_run_appends_one_line_beside_the_config(run_lynx, write_config, write_script, tmp_path):
    write_script("proj/ok.py", "import os\nenv = os.environ\n"
                               "open(env['LYNX_STEP'] + '.id', 'w').write(env['LYNX_RUN_ID'])\n")
    cfg = write_config("steps:\n  - script: ok.py\n    name: one\n  - script: ok.py\n    name: two\n",
                       name="proj/config.yaml")
    result = run_lynx("start", "-cf", str(cfg), "-ni", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / ".lynx").exists()
    [entry] = lines(default_ledger(cfg))
    assert set(entry) == RUN_KEYS
    assert entry["run_id"] == (tmp_path / "one.id").read_text() == (tmp_path / "two.id").read_text()
    assert entry["trigger"] == "manual" and entry["config"] == str(cfg) and entry["result"] == "ok"
    start, end = datetime.fromisoformat(entry["start"]), datetime.fromisoformat(entry["end"])
    assert start.tzinfo is not None and start <= end
    assert 0 <= entry["duration"] <= (end - start).total_seconds() + 0.001
    assert [s["name"] for s in entry["steps"]] == ["one", "two"]
    for step in entry["steps"]:
        assert set(step) == STEP_KEYS
        assert (step["attempts"], step["ok"], step["exit_status"], step["signal"], step["log_file"]) == (
            1, True, 0, None, None)
    run_lynx("start", "-cf", str(cfg), "-ni")
    second = lines(default_ledger(cfg))
    assert len(second) == 2 and second[1]["run_id"] != entry["run_id"]


def test_a_failed_run_records_the_failed_step_and_not_the_ones_after_it(run_lynx, write_config, write_script,
                                                                        tmp_path):
    write_script("ok.py", "pass\n")
    write_script("bad.py", "import sys; sys.exit(3)\n")
    cfg = write_config("steps:\n  - script: ok.py\n  - script: bad.py\n  - script: ok.py\n    name: later\n")
    log = tmp_path / "run.log"
    result = run_lynx("start", "-cf", str(cfg), "-ni", "-lf", "run.log")
    assert result.returncode == 1
    [entry] = lines(default_ledger(cfg))
    assert entry["result"] == "failed"
    ok, bad = entry["steps"]
    assert ok["name"] == "ok" and ok["ok"] is True and ok["log_file"] == str(log)
    assert bad == {**bad, "name": "bad", "ok": False, "attempts": 1, "exit_status": 3, "signal": None,
                   "reason": "exit status 3", "log_file": str(log)}


def test_a_timed_out_step_is_recorded_with_the_signal_that_ended_it(run_lynx, write_config, write_script):
    write_script("hang.py", "import time; time.sleep(60)\n")
    cfg = write_config("steps:\n  - script: hang.py\n    timeout: 1\n")
    result = run_lynx("start", "-cf", str(cfg), "-ni", timeout=20)
    assert result.returncode == 1
    [entry] = lines(default_ledger(cfg))
    assert entry["result"] == "failed"
    [step] = entry["steps"]
    assert (step["ok"], step["exit_status"], step["signal"], step["reason"]) == (
        False, None, signal.SIGTERM, "timed out after 1 s")
    assert 1 <= step["duration"] < 10


# Both write their pid only once set up: one keeps printing to Lynx's pipe, one has sent its output away.
SLEEPY = {
    "printing": """
        import os, time
        print("working", flush=True)
        open("step.pid", "w").write(str(os.getpid()))
        time.sleep(60)
        """,
    "silent": """
        import os, time
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        open("step.pid", "w").write(str(os.getpid()))
        time.sleep(60)
        """,
    "leaving": """
        import os, subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], preexec_fn=os.setpgrp)
        open("stray.pid", "w").write(str(child.pid))   # a child in a group of its own, like coreutils timeout's
        open("step.pid", "w").write(str(os.getpid()))
        time.sleep(60)
        """,
}


def _stopped_mid_step(popen_lynx, cfg: Path, tmp_path: Path, *signals: int) -> tuple[subprocess.Popen, str, int]:
    """Run `cfg` until its SLEEPY step wrote step.pid, send `signals` at once; (Lynx, its stderr, the step's pid)."""
    proc = popen_lynx("start", "-cf", str(cfg), "-ni")
    pidfile = tmp_path / "step.pid"
    wait_for(lambda: pidfile.exists() and pidfile.read_text(), timeout=20)
    for sig in signals:
        proc.send_signal(sig)
    _, err = proc.communicate(timeout=20)
    return proc, err, int(pidfile.read_text())


@pytest.mark.parametrize("step", ["printing", "silent", "leaving"],
                         ids=["step-with-output", "step-output-redirected", "step-with-a-child-outside-its-group"])
@pytest.mark.parametrize("sig, status, recorded", [(signal.SIGINT, 130, "interrupted"),
                                                   (signal.SIGTERM, 0, "stopped")], ids=["ctrl-c", "sigterm"])
def test_a_run_ended_from_outside_is_recorded_and_its_step_is_ended(write_config, write_script, tmp_path,
                                                                    started, popen_lynx, step, sig, status,
                                                                    recorded):
    write_script("quick.py", "pass\n")
    write_script("sleepy.py", SLEEPY[step])
    cfg = write_config("steps:\n  - script: quick.py\n  - script: sleepy.py\n")
    proc, err, step_pid = _stopped_mid_step(popen_lynx, cfg, tmp_path, sig)
    step_ended = ends(step_pid, started, timeout=3)
    stray = tmp_path / "stray.pid"
    stray_ended = not stray.exists() or ends(int(stray.read_text()), started, timeout=3)
    assert proc.returncode == status, err
    assert step_ended, "the step was left running"
    assert stray_ended, "the step's child outside its process group was left running"
    [entry] = lines(default_ledger(cfg))
    assert entry["result"] == recorded
    assert entry["steps"][0]["name"] == "quick" and entry["steps"][0]["ok"] is True
    # The step that was running is recorded too, with why it ended.
    assert [(s["name"], s["ok"], s["reason"]) for s in entry["steps"][1:]] == [
        ("sleepy", False, "interrupted by Ctrl+C" if sig == signal.SIGINT else "stopped on request")]
    assert f"to resume from the {recorded} step: " in err and err.rstrip().endswith("--from sleepy")


def test_a_closed_terminal_stops_the_run_like_sigterm_and_ends_its_step(spawn_lynx, write_config, write_script,
                                                                         tmp_path, started):
    import pexpect

    write_script("sleepy.py", SLEEPY["printing"])
    cfg = write_config("steps:\n  - script: sleepy.py\n")
    child = spawn_lynx("start", "-cf", str(cfg), "-lf", "run.log")
    pidfile = tmp_path / "step.pid"
    wait_for(lambda: pidfile.exists() and pidfile.read_text(), timeout=20)
    step = int(pidfile.read_text())
    started.add(step)
    child.kill(signal.SIGHUP)   # what the terminal's closing sends
    child.expect(pexpect.EOF)
    child.close()
    assert ends(step, started, timeout=3), "the step was left running"
    assert child.exitstatus == 0
    reason = "stopped by SIGHUP (the terminal closed)"
    assert f"{reason} during step 'sleepy' (1/1); the step was ended" in (tmp_path / "run.log").read_text()
    [entry] = lines(default_ledger(cfg))
    assert entry["result"] == "stopped" and entry["steps"][0]["reason"] == reason


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the signal mask from /proc")
def test_a_lynx_started_under_nohup_keeps_ignoring_the_hangup(write_config, write_script, tmp_path, started):
    write_script("wait.py", "import os, pathlib, time\nopen('step.pid', 'w').write(str(os.getpid()))\n"
                            "while not pathlib.Path('go').exists(): time.sleep(0.02)\n")
    cfg = write_config("steps:\n  - script: wait.py\n")
    nohup = ("import runpy, signal, sys; signal.signal(signal.SIGHUP, signal.SIG_IGN); "
             "sys.argv = ['lynx', *sys.argv[1:]]; runpy.run_module('lynx', run_name='__main__')")
    proc = subprocess.Popen([sys.executable, "-c", nohup, "start", "-cf", str(cfg)], cwd=tmp_path, env=lynx_env(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started.add(proc.pid)
    wait_for(lambda: (tmp_path / "step.pid").exists() and (tmp_path / "step.pid").read_text(), timeout=20)
    status = Path(f"/proc/{proc.pid}/status").read_text()
    ignored = int(re.search(r"^SigIgn:\s*([0-9a-f]+)$", status, re.MULTILINE).group(1), 16)
    assert ignored & (1 << (signal.SIGHUP - 1)), "Lynx took back the SIGHUP that nohup ignores"
    proc.send_signal(signal.SIGHUP)
    (tmp_path / "go").touch()
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert [entry["result"] for entry in lines(default_ledger(cfg))] == ["ok"]


def test_ctrl_c_at_the_dialog_is_recorded_with_the_failed_step_and_says_how_to_resume(spawn_lynx, write_config,
                                                                                       write_script):
    import pexpect

    write_script("fails.py", "import sys; sys.exit(3)\n")
    write_script("after.py", "pass\n")
    cfg = write_config("steps:\n  - script: fails.py\n  - script: after.py\n")
    child = spawn_lynx("start", "-cf", str(cfg))
    child.expect("\\[a\\]bort\\? ")
    child.sendintr()
    child.expect("interrupted by Ctrl\\+C at the dialog after step 'fails' \\(1/2\\) failed")
    child.expect("to resume from the failed step: .*--from fails")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130
    [entry] = lines(default_ledger(cfg))
    assert entry["result"] == "interrupted"
    assert [(s["name"], s["reason"]) for s in entry["steps"]] == [("fails", "exit status 3")]


@pytest.mark.parametrize("event, step, status, resume, recorded", [
    # on_start: nothing ran yet; the run is recorded as stopped, a rerun starts at the first step.
    ("on_start", "open('step.ran', 'w').close()\n", 0, "to resume from the first step: ", "stopped"),
    # on_failure: the run is recorded already, failed; a stop after a failure is no success.
    ("on_failure", "import sys; sys.exit(3)\n", 1, "to resume from the failed step: ", "failed"),
])
def test_a_stop_during_a_hook_ends_the_hook_and_says_where(write_config, write_script, tmp_path, started,
                                                           popen_lynx, event, step, status, resume, recorded):
    write_script("hook.py", SLEEPY["silent"])
    write_script("step.py", step)
    cfg = write_config(f"hooks:\n  {event}: {{command: [{sys.executable}, hook.py]}}\nsteps:\n  - script: step.py\n")
    proc = popen_lynx("start", "-cf", str(cfg), "-ni")
    pidfile = tmp_path / "step.pid"
    wait_for(lambda: pidfile.exists() and pidfile.read_text(), timeout=20)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert ends(int(pidfile.read_text()), started, timeout=3), "the hook was left running"
    assert proc.returncode == status, err
    assert f"stopped on request during the {event} hook; the hook was ended" in err
    assert "waiting for the next run" not in err
    assert resume in err and err.rstrip().endswith("--from step")
    [entry] = lines(default_ledger(cfg))
    assert entry["result"] == recorded
    if event == "on_start":
        assert entry["steps"] == [] and not (tmp_path / "step.ran").exists()


def test_the_ledger_option_puts_the_ledger_where_it_says(run_lynx, write_config, write_script, tmp_path):
    write_script("ok.py", "pass\n")
    cfg = write_config("steps:\n  - script: ok.py\n")
    result = run_lynx("start", "-cf", str(cfg), "-ni", "--ledger", "records/mine.jsonl")
    assert result.returncode == 0, result.stderr
    assert [e["result"] for e in lines(tmp_path / "records" / "mine.jsonl")] == ["ok"]
    assert not default_ledger(cfg).exists()


def test_a_run_after_a_half_written_line_appends_a_line_that_parses(run_lynx, write_config, write_script,
                                                                    tmp_path):
    write_script("ok.py", "pass\n")
    cfg = write_config("steps:\n  - script: ok.py\n")
    path = default_ledger(cfg)
    path.parent.mkdir()
    half = json.dumps(fake_entry(0))[:40]
    path.write_text(json.dumps(fake_entry(1)) + "\n" + half)
    assert run_lynx("start", "-cf", str(cfg), "-ni").returncode == 0
    text = path.read_text().splitlines()
    assert text[1] == half
    assert json.loads(text[2])["result"] == "ok"
    history = run_lynx("history", "-cf", str(cfg))
    assert history.returncode == 0
    assert "skipped 1 damaged line" in history.stderr
    assert "run-1" in history.stdout and json.loads(text[2])["run_id"] in history.stdout


# --- lynx history -----------------------------------------------------------------------------------------

def test_history_lists_the_last_n_runs_oldest_first_as_a_table(run_lynx, write_config, tmp_path):
    cfg = write_config("steps:\n  - command: ['{py}', '-c', 'pass']\n")
    path = default_ledger(cfg)
    for n in range(4):
        ledger.append(path, fake_entry(n, "failed" if n == 2 else "ok"))
    result = run_lynx("history", "-cf", str(cfg), "-n", "3")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    out = result.stdout.splitlines()
    assert HEADER.match(out[0]) and len(out) == 4
    assert [line.split()[-1] for line in out[1:]] == ["run-1", "run-2", "run-3"]
    local = (T0 + timedelta(minutes=1)).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    assert out[1].startswith(local)
    assert re.search(r"\bmanual\s+failed\s+0/1 ok; only: exit status 2\s+run-2$", out[2])
    assert re.search(r"\bmanual\s+ok\s+1/1 ok\s+run-3$", out[3])


def test_history_reads_the_ledger_that_the_ledger_option_names(run_lynx, tmp_path):
    path = tmp_path / "elsewhere.jsonl"
    ledger.append(path, fake_entry(7))
    result = run_lynx("history", "--ledger", str(path))
    assert result.returncode == 0, result.stderr
    assert HEADER.search(result.stdout) and "run-7" in result.stdout


def test_history_without_a_ledger_says_no_runs_are_recorded(run_lynx, write_config, tmp_path):
    cfg = write_config("steps:\n  - command: ['{py}', '-c', 'pass']\n")
    result = run_lynx("history", "-cf", str(cfg))
    assert result.returncode == 0
    assert result.stdout.strip() == f"no runs recorded in {default_ledger(cfg)}"
    missing = tmp_path / "none.jsonl"
    assert run_lynx("history", "--ledger", str(missing)).stdout.strip() == f"no runs recorded in {missing}"


@pytest.mark.parametrize("damage", ["half line at the end", "garbage in the middle", "all three"])
def test_history_warns_about_a_damaged_ledger_and_still_lists_the_good_runs(run_lynx, tmp_path, damage):
    good = [json.dumps(fake_entry(n)) for n in range(2)]
    text, count = {
        "half line at the end": (f"{good[0]}\n{good[1]}\n{good[1][:20]}", 1),
        "garbage in the middle": (f"{good[0]}\n}}{{garbage\n{good[1]}\n", 1),
        "all three": (f"{good[0]}\n\n%%%\n{good[1]}\n{good[0][:33]}", 2),
    }[damage]
    path = tmp_path / "runs.jsonl"
    path.write_text(text)
    result = run_lynx("history", "--ledger", str(path))
    assert result.returncode == 0
    warning = re.search(r"^lynx: warning: .*skipped (\d+) damaged line", result.stderr, re.MULTILINE)
    assert warning and int(warning.group(1)) == count, result.stderr
    assert str(path) in warning.group(0)
    assert [line.split()[-1] for line in result.stdout.splitlines()[1:]] == ["run-0", "run-1"]


def test_history_shows_odd_but_usable_fields_as_they_are(run_lynx, tmp_path):
    path = tmp_path / "runs.jsonl"
    path.write_text(json.dumps({"run_id": "odd", "start": 5, "trigger": "0001-01-01T00:00:00+14:00",
                                "steps": [{"name": "a", "ok": False, "reason": "r"}]}) + "\n")
    result = run_lynx("history", "--ledger", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1].split() == ["5", "0.0", "s", "0001-01-01T00:00:00+14:00", "None", "0/1",
                                                     "ok;", "a:", "r", "odd"]


def test_a_stop_after_a_tolerated_failure_exits_1_like_any_stop_after_a_failure(write_config, write_script,
                                                                                tmp_path, started, popen_lynx):
    write_script("tolerated.py", "raise SystemExit(3)\n")
    write_script("sleepy.py", SLEEPY["printing"])
    cfg = write_config("steps:\n  - script: tolerated.py\n    continue_on_failure: true\n  - script: sleepy.py\n")
    proc, err, step_pid = _stopped_mid_step(popen_lynx, cfg, tmp_path, signal.SIGTERM)
    assert ends(step_pid, started, timeout=3)
    assert proc.returncode == 1, err
    [entry] = lines(default_ledger(cfg))
    assert entry["result"] == "stopped"


def test_a_double_ctrl_c_still_ends_the_step_and_the_children_that_left_its_group(write_config, write_script,
                                                                                  tmp_path, started, popen_lynx):
    write_script("sleepy.py", SLEEPY["leaving"])
    cfg = write_config("steps:\n  - script: sleepy.py\n")
    # Two at once: the second lands while Lynx looks for the step's children, or after (or the
    # kernel merges them into one, and this is a single Ctrl+C): either way nothing is left.
    proc, err, step_pid = _stopped_mid_step(popen_lynx, cfg, tmp_path, signal.SIGINT, signal.SIGINT)
    stray = int((tmp_path / "stray.pid").read_text())
    assert ends(step_pid, started, timeout=3)
    assert ends(stray, started, timeout=3), "the child outside the step's group was left running"
    assert proc.returncode == 130, err
