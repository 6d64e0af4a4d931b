"""`lynx` as users run it: real processes, real files, a real terminal for the dialog."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import psutil
import pytest
from conftest import REPO, gone, lynx_env, wait_for

from lynx.cli import USAGE, expand_aliases, parse

SEED_FLAGS = [("-cf", "--config-file"), ("-lf", "--log-file"), ("-ll", "--log-level"), ("-ls", "--log-size"),
              ("-lbc", "--log-backup-count"), ("-ni", "--non-interactive"), ("-kr", "--keep-running"),
              ("-bg", "--background")]


def test_help_documents_every_seed_flag_in_both_forms(run_lynx):
    result = run_lynx("--help")
    assert result.returncode == 0
    for short, long in SEED_FLAGS:
        assert re.search(rf"^\s+{short}, {long}\b", result.stdout, re.MULTILINE), short
    assert result.stdout == USAGE


def test_version_is_printed_the_same_by_the_console_script_and_python_m(run_lynx):
    from lynx import __version__

    assert run_lynx("--version").stdout.strip() == f"lynx {__version__}"
    console = shutil.which("lynx")
    assert console, "the `lynx` console script is missing: install the project first (see README)"
    out = subprocess.run([console, "--version"], capture_output=True, text=True, timeout=30, check=False)
    assert out.stdout.strip() == f"lynx {__version__}"


def test_the_command_keeps_the_collector_out_of_start_up_but_runs_steps_with_it_on(write_config, write_script,
                                                                                   tmp_path):
    # Start-up's objects live until exit: collecting them is wasted work (~8 ms of `lynx start`),
    # but a schedule may run for months, so the collector is on again before the first step.
    write_script("ok.py", "print('ok')\n")
    cfg = write_config("steps:\n  - script: ok.py\n")
    code = """if True:
        import gc, sys
        from lynx import cli, launch
        seen, load, run = [], launch.load, launch._run
        def watched_load(path):
            seen.append(("load", gc.isenabled()))
            return load(path)
        def watched_run(*args):
            seen.append(("run", gc.isenabled(), gc.get_freeze_count() > 0))
            return run(*args)
        launch.load, launch._run = watched_load, watched_run
        sys.argv = ["lynx", "start", "-cf", sys.argv[1]]
        status = cli.entry()
        print(seen, status)
    """
    out = subprocess.run([sys.executable, "-c", code, str(cfg)], capture_output=True, text=True, timeout=30,
                         cwd=tmp_path, env=lynx_env(), check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "[('load', False), ('run', True, True)] 0"
    assert "step 1/1 'ok' succeeded" in out.stderr


def test_two_letter_flags_mean_the_same_as_the_long_ones_in_any_order():
    short = parse(["start", "-ni", "-lf", "x.log", "-cf=a.yaml", "-ls", "10", "-lbc", "2", "-kr", "-ll", "debug"])
    long = parse(["start", "--log-level", "debug", "--keep-running", "--log-backup-count=2", "--log-size", "10",
                  "--config-file", "a.yaml", "--log-file=x.log", "--non-interactive"])
    assert short == long
    assert short["--config-file"] == "a.yaml" and short["--non-interactive"] is True


def test_only_whole_alias_words_are_expanded():
    assert expand_aliases(["start", "-cf", "-cfx", "--", "-ni"]) == ["start", "--config-file", "-cfx", "--", "-ni"]


@pytest.mark.parametrize("args, message", [
    (["frobnicate"], "unknown command 'frobnicate'"),
    (["start", "-zz"], "`lynx start` has no option -zz"),
    (["start", "--next", "3"], "`lynx start` has no option --next"),
    (["start", "-ll"], "-ll/--log-level needs a value (LEVEL)"),
    (["start", "-ll", "LOUD"], "--log-level: 'LOUD' is not one of"),
    (["start", "-ls", "big"], "--log-size: 'big' is not a whole number"),
    (["check", "--after", "tomorrow"], "--after: 'tomorrow' is not an ISO-8601 instant"),
])
def test_bad_usage_is_a_short_message_and_status_2(run_lynx, args, message):
    result = run_lynx(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_the_example_pipeline_runs_once_and_says_what_it_did(run_lynx, tmp_path):
    result = run_lynx("start", "-cf", str(REPO / "conf" / "config.yaml"), timeout=60)
    assert result.returncode == 0, result.stderr
    assert "cron section is ignored in interactive mode" in result.stderr
    for name in ("preprocess", "training", "validation", "deployment"):
        assert re.search(rf"^{name}\s+ok\s", result.stderr, re.MULTILINE), name
    assert "held-out RMSE" in result.stdout
    assert (tmp_path / "output" / "deployed" / "current.json").exists()


def test_a_bad_config_starts_nothing_and_exits_2(run_lynx, write_config, write_script, tmp_path):
    write_script("touch.py", "open('ran', 'w').close()\n")
    cfg = write_config("""
        steps:
          - script: touch.py
          - script: touch.py
            argumnets: ["x"]
        """)
    result = run_lynx("start", "-cf", str(cfg))
    assert result.returncode == 2
    assert f"{cfg}:5: steps[1].argumnets: unknown key; did you mean 'arguments'?" in result.stderr
    assert not (tmp_path / "ran").exists()


def test_a_missing_config_is_a_clear_error(run_lynx):
    result = run_lynx("start")
    assert result.returncode == 2
    assert "conf/config.yaml" in result.stderr and "Traceback" not in result.stderr


def test_a_failed_step_without_dialog_exits_1_and_later_steps_do_not_run(run_lynx, write_config, write_script,
                                                                          tmp_path):
    write_script("fail.py", "import sys; print('bad data'); sys.exit(4)\n")
    write_script("touch.py", "open('ran', 'w').close()\n")
    cfg = write_config("steps:\n  - script: fail.py\n  - script: touch.py\n")
    result = run_lynx("start", "-cf", str(cfg), "-ni")
    assert result.returncode == 1
    assert "step 1/2 'fail' failed (exit status 4)" in result.stderr
    assert not (tmp_path / "ran").exists()


def _reader_goes_after_one_line(popen_lynx, first: str, *args: str) -> tuple[subprocess.Popen, str]:
    """`lynx ARGS | head -1`: read the first line (it must be `first`), close stdout; (Lynx, its stderr)."""
    proc = popen_lynx(*args)
    assert proc.stdout.readline() == first
    proc.stdout.close()
    _, err = proc.communicate(timeout=30)
    return proc, err


def test_a_closed_stdout_does_not_stop_the_steps_or_lose_the_log(write_config, write_script, tmp_path, popen_lynx):
    # `lynx start | head -1`: the reader goes away while a step still prints.
    write_script("talk.py", "for i in range(20000): print('line', i)\nopen('talked', 'w').close()\n")
    write_script("after.py", "open('after', 'w').close()\n")
    cfg = write_config("steps:\n  - script: talk.py\n  - script: after.py\n")
    proc, err = _reader_goes_after_one_line(popen_lynx, "line 0\n", "start", "-cf", str(cfg), "-ni", "-lf", "run.log")
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "Exception ignored" not in err
    assert err.count("cannot write step output to stdout (Broken pipe): the steps go on; their output goes "
                     "to the log file only") == 1
    assert (tmp_path / "talked").exists() and (tmp_path / "after").exists()
    assert "talk | line 19999" in (tmp_path / "run.log").read_text()
    assert '"result":"ok"' in (tmp_path / ".lynx" / "runs.jsonl").read_text()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux) to fail writes for real")
def test_a_log_file_on_a_full_disk_is_reported_once_and_the_run_goes_on(run_lynx, write_config, write_script,
                                                                         tmp_path):
    write_script("talk.py", "for i in range(2000): print('line', i)\n")
    write_script("after.py", "open('after', 'w').close()\n")
    cfg = write_config("steps:\n  - script: talk.py\n  - script: after.py\n")
    (tmp_path / "full.log").symlink_to("/dev/full")   # every write fails with ENOSPC
    result = run_lynx("start", "-cf", str(cfg), "-ni", "-lf", "full.log", "-ls", "0")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "Logging error" not in result.stderr
    assert result.stderr.count("cannot write the log file") == 1
    assert "(No space left on device): steps go on" in result.stderr
    assert "line 1999" in result.stdout and (tmp_path / "after").exists()
    assert '"result":"ok"' in (tmp_path / ".lynx" / "runs.jsonl").read_text()


def test_a_reader_that_stops_early_ends_check_quietly(write_config, write_script, popen_lynx):
    # `lynx check --json | head`: no BrokenPipeError traceback, no "Exception ignored" at exit.
    write_script("ok.py", "pass\n")
    cfg = write_config("steps:\n  - script: ok.py\ncron:\n  second: '*'\n")
    proc, err = _reader_goes_after_one_line(popen_lynx, "{\n", "check", "-cf", str(cfg), "--json", "--next", "5000")
    assert proc.returncode == 1 and err == ""


@pytest.mark.skipif(os.name != "posix", reason="closes the descriptor in the child (POSIX)")
def test_lynx_started_with_stdout_closed_still_runs_and_says_so(write_config, write_script, tmp_path, started):
    write_script("ok.py", "print('hi'); open('ran', 'w').close()\n")
    cfg = write_config("steps:\n  - script: ok.py\n")
    for args in (["--version"], ["start", "-cf", str(cfg)]):
        proc = subprocess.Popen(["sh", "-c", 'exec "$0" -m lynx "$@" >&-', sys.executable, *args], cwd=tmp_path,
                                env=lynx_env(), stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        started.add(proc.pid)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0 and "Traceback" not in err, (args, err)
    assert (tmp_path / "ran").exists()


def test_the_log_file_has_every_line_tagged_and_progress_collapsed(run_lynx, write_config, write_script, tmp_path):
    write_script("bar.py", """
        import sys
        for i in range(101):
            sys.stdout.write(f"\\rprogress {i}%")
            sys.stdout.flush()
        print()
        for i in range(1000):
            print(f"line {i}")
        print("to stderr", file=sys.stderr)
        """)
    cfg = write_config("steps:\n  - script: bar.py\n    name: train\n")
    log = tmp_path / "logs" / "lynx.log"
    result = run_lynx("start", "-cf", str(cfg), "-lf", str(log))
    assert result.returncode == 0, result.stderr
    text = log.read_text()
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} train \| progress 100%$", text, re.MULTILINE)
    assert "progress 50%" not in text
    assert all(f"train | line {i}\n" in text for i in range(1000))
    assert "train | to stderr" in text
    assert "lynx INFO: step 1/1 'train' succeeded" in text
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}"
    assert re.search(rf"^({stamp}) lynx INFO: run \S+ succeeded\n\1 lynx INFO: step +status +duration\n"
                     rf"\1 lynx INFO: train +ok ", text, re.MULTILINE), "the summary's lines are headed too"
    screen = run_lynx("start", "-cf", str(cfg), text=False).stdout
    assert screen.count(b"\rprogress") == 101, "the terminal gets every redraw as it is"


def test_rotation_with_a_tiny_log_size_keeps_exactly_the_backup_count(run_lynx, write_config, write_script,
                                                                       tmp_path):
    write_script("talk.py", "for i in range(2000): print('some output line', i)\n")
    cfg = write_config("steps:\n  - script: talk.py\n")
    result = run_lynx("start", "-cf", str(cfg), "-lf", "run.log", "-ls", "4096", "-lbc", "2")
    assert result.returncode == 0, result.stderr
    logs = sorted(p.name for p in tmp_path.glob("run.log*"))
    assert logs == ["run.log", "run.log.1", "run.log.2"]
    assert all((tmp_path / name).stat().st_size <= 4096 for name in logs)


def test_a_step_printing_50_mb_keeps_lynx_memory_flat(write_config, write_script, tmp_path, started):
    write_script("flood.py", """
        import sys
        line = b"x" * 99 + b"\\n"
        block = line * 10000
        for _ in range(50):
            sys.stdout.buffer.write(block)
        """)
    cfg = write_config("steps:\n  - script: flood.py\n")
    proc = subprocess.Popen([sys.executable, "-m", "lynx", "start", "-cf", str(cfg), "-lf", "big.log"],
                            cwd=tmp_path, env=lynx_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    started.add(proc.pid)
    peak = 0
    lynx = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            peak = max(peak, lynx.memory_info().rss)
        except psutil.Error:
            break
        time.sleep(0.02)  # sampling interval, not synchronisation
    assert proc.wait(timeout=60) == 0
    assert peak < 100 * 2**20, f"peak RSS {peak / 2**20:.1f} MB"
    total = sum(p.stat().st_size for p in tmp_path.glob("big.log*"))
    assert total > 3 * 2**20  # default rotation: 2 MiB x (1 + 3 backups), all of it used


def test_a_scheduled_run_starts_on_consecutive_whole_seconds(write_config, write_script, tmp_path, started):
    write_script("stamp.py", "import time; open('starts', 'a').write(f'{time.time()}\\n')\n")
    cfg = write_config("cron:\n  second: '*'\nsteps:\n  - script: stamp.py\n")
    proc = subprocess.Popen([sys.executable, "-m", "lynx", "start", "-cf", str(cfg), "-ni"], cwd=tmp_path,
                            env=lynx_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started.add(proc.pid)
    starts = tmp_path / "starts"
    wait_for(lambda: starts.exists() and len(starts.read_text().splitlines()) >= 3, timeout=20)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130
    assert "interrupted" in err
    seconds = [int(float(t)) for t in starts.read_text().split()[:3]]
    assert seconds[1] - seconds[0] == 1 and seconds[2] - seconds[1] == 1


def test_ctrl_c_ends_the_running_step_and_says_where(spawn_lynx, write_config, write_script, tmp_path):
    write_script("one.py", "print('one done')\n")
    write_script("sleepy.py", "import os, time; open('step.pid', 'w').write(str(os.getpid())); time.sleep(60)\n")
    cfg = write_config("steps:\n  - script: one.py\n  - script: sleepy.py\n")
    child = spawn_lynx("start", "-cf", str(cfg))
    pidfile = tmp_path / "step.pid"
    wait_for(lambda: pidfile.exists() and pidfile.read_text(), timeout=20)
    step_pid = int(pidfile.read_text())
    child.sendintr()
    child.expect("interrupted by Ctrl\\+C during step 'sleepy' \\(2/2\\)")
    child.expect(pexpect_eof())
    child.close()
    assert child.exitstatus == 130
    assert gone(step_pid)


def pexpect_eof():
    import pexpect

    return pexpect.EOF


def flaky_pipeline(write_config, write_script):
    """first.py counts its runs; flaky.py fails on its first run only."""
    write_script("first.py", "import pathlib; p = pathlib.Path('first.count'); "
                             "p.write_text(str(int(p.read_text()) + 1 if p.exists() else 1))\n")
    write_script("flaky.py", "import pathlib, sys; p = pathlib.Path('flaky.seen'); seen = p.exists(); p.touch(); "
                             "print('flaky says hi'); sys.exit(0 if seen else 2)\n")
    write_script("last.py", "open('last.ran', 'w').close()\n")
    return write_config("steps:\n  - script: first.py\n  - script: flaky.py\n  - script: last.py\n")


@pytest.mark.parametrize("answer, first_runs", [("s", "1"), ("p", "2")])
def test_the_dialog_reruns_the_step_or_the_whole_pipeline(spawn_lynx, write_config, write_script, tmp_path,
                                                          answer, first_runs):
    child = spawn_lynx("start", "-cf", str(flaky_pipeline(write_config, write_script)))
    child.expect("Step 'flaky' failed \\(exit status 2\\)")
    child.expect("\\[a\\]bort\\? ")
    child.sendline(answer)
    child.expect(pexpect_eof())
    child.close()
    assert child.exitstatus == 0
    assert (tmp_path / "first.count").read_text() == first_runs
    assert (tmp_path / "last.ran").exists()


@pytest.mark.parametrize("keys", ["a\r", "\x04"], ids=["abort", "ctrl-d"])
def test_the_dialog_aborts_on_a_or_end_of_input(spawn_lynx, write_config, write_script, tmp_path, keys):
    child = spawn_lynx("start", "-cf", str(flaky_pipeline(write_config, write_script)))
    child.expect("\\[a\\]bort\\? ")
    child.send(keys)
    child.expect("FAILED")
    child.expect(pexpect_eof())
    child.close()
    assert child.exitstatus == 1
    assert not (tmp_path / "last.ran").exists()


def test_the_dialog_asks_again_after_an_answer_it_does_not_understand(spawn_lynx, write_config, write_script,
                                                                      tmp_path):
    child = spawn_lynx("start", "-cf", str(flaky_pipeline(write_config, write_script)))
    child.expect("\\[a\\]bort\\? ")
    child.sendline("maybe")
    child.expect("Please answer s, p or a \\(not 'maybe'\\)")
    child.expect("\\[a\\]bort\\? ")
    child.sendline("s")
    child.expect(pexpect_eof())
    child.close()
    assert child.exitstatus == 0 and (tmp_path / "last.ran").exists()


def test_ctrl_d_while_waiting_for_the_next_fire_stops_cleanly(spawn_lynx, write_config, write_script, tmp_path):
    write_script("noop.py", "open('ran', 'a').write('x')\n")
    cfg = write_config("cron:\n  year: 2099\nsteps:\n  - script: noop.py\n")
    child = spawn_lynx("start", "-cf", str(cfg), "-ni")
    child.expect("next run at 2099-01-01")
    child.sendeof()
    child.expect("end of input: stopped while waiting")
    child.expect(pexpect_eof())
    child.close()
    assert child.exitstatus == 0
    assert not (tmp_path / "ran").exists()


def test_check_shows_steps_and_fire_times_and_runs_nothing(run_lynx, write_config, write_script, tmp_path):
    write_script("touch.py", "open('ran', 'w').close()\n")
    cfg = write_config("cron:\n  hour: 2\n  minute: 30\n  timezone: Europe/Berlin\n"
                       "steps:\n  - script: touch.py\n    arguments: ['--n 3']\n")
    result = run_lynx("check", "-cf", str(cfg), "--after", "2026-03-27T12:00:00+01:00", "--next", "3")
    assert result.returncode == 0, result.stderr
    assert "touch.py --n 3" in result.stdout
    assert "2026-03-29 03:30:00 Sun +02:00" in result.stdout
    assert "daylight-saving" in result.stdout
    assert not (tmp_path / "ran").exists()


def test_check_json_is_one_object_with_instants(run_lynx, write_config, write_script):
    import json

    write_script("touch.py", "pass\n")
    cfg = write_config("cron:\n  minute: '*/10'\n  timezone: UTC\nsteps:\n  - script: touch.py\n")
    result = run_lynx("check", "-cf", str(cfg), "--after", "2026-01-01T00:00:00Z", "--json")
    data = json.loads(result.stdout)
    assert data["next_fire_times"][:2] == ["2026-01-01T00:00:00+00:00", "2026-01-01T00:10:00+00:00"]
    assert data["timezone"] == "UTC" and data["steps"][0]["name"] == "touch"


def test_check_reports_a_bad_cron_value_with_file_line_and_key(run_lynx, write_config, write_script):
    write_script("touch.py", "pass\n")
    cfg = write_config("steps:\n  - script: touch.py\ncron:\n  second: 0\n  hour: 25\n")
    result = run_lynx("check", "-cf", str(cfg))
    assert result.returncode == 2
    assert f"{cfg}:5: cron.hour" in result.stderr


def test_a_config_without_cron_runs_once_and_check_says_so(run_lynx, write_config, write_script):
    write_script("touch.py", "pass\n")
    cfg = write_config("steps:\n  - script: touch.py\n")
    assert "the pipeline runs once" in run_lynx("check", "-cf", str(cfg)).stdout
    assert run_lynx("start", "-cf", str(cfg), "-ni").returncode == 0


@pytest.mark.skipif(not shutil.which("bash"), reason="needs an interactive shell with job control (bash)")
def test_a_schedule_started_with_an_ampersand_keeps_running_when_the_user_types_ahead(tmp_path, write_config,
                                                                                       started):
    # Reading the terminal from a background job stops it (SIGTTIN): the schedule would halt unseen.
    import pexpect

    cfg = write_config("cron:\n  hour: '0'\nsteps:\n  - command: [{py}, -c, pass]\n")
    out = tmp_path / "out.txt"
    shell = pexpect.spawn("bash", ["--norc", "--noprofile", "-i"], cwd=str(tmp_path), timeout=20,
                          env=lynx_env(PS1="$ "), encoding="utf-8")
    started.add(shell.pid)
    try:
        shell.sendline(f"{sys.executable} -m lynx start -cf {cfg} -ni -lf '' > {out} 2>&1 & echo pid=$!")
        shell.expect(r"pid=(\d+)")
        pid = int(shell.match.group(1))
        started.add(pid)
        wait_for(lambda: out.exists() and "next run at" in out.read_text(), timeout=15)
        shell.sendline("sleep 1")                 # a foreground job; the user types ahead meanwhile
        shell.send("typed ahead\n")
        shell.sendline("jobs -l")
        shell.expect(r"\d+ (Running|Stopped)")
        assert shell.match.group(1) == "Running"
        assert psutil.Process(pid).status() != psutil.STATUS_STOPPED
    finally:
        shell.close(force=True)


@pytest.mark.parametrize("mode", [["-ni"], ["-bg", "--pid-file", "p.json"]], ids=["foreground", "background"])
def test_following_a_schedule_that_never_fires_again_is_an_error_and_starts_nothing(run_lynx, write_config,
                                                                                   tmp_path, mode):
    cfg = write_config("cron:\n  second: '*/2'\n  end_date: '2020-01-01'\nsteps:\n  - command: [{py}, -c, pass]\n")
    result = run_lynx("start", "-cf", str(cfg), "-lf", "", *mode)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"lynx: error: {cfg}:3: cron.end_date: the schedule never fires again "
                                     "(2020-01-01 has passed); nothing to run (`lynx check` shows the fire times)")
    assert not (tmp_path / "p.json").exists() and not (tmp_path / ".lynx").exists()



def test_a_schedule_that_never_fires_blames_its_end_date_only_when_that_has_passed(run_lynx, write_config):
    cfg = write_config("cron:\n  month: 2\n  day: 30\n  end_date: '2035-01-01'\nsteps:\n  - command: [{py}, -c, pass]\n")
    result = run_lynx("start", "-cf", str(cfg), "-ni", "-lf", "")
    assert result.returncode == 2
    assert result.stderr.startswith(f"lynx: error: {cfg}:1: cron: the schedule never fires again; nothing to run")
