"""Per-step keys, the LYNX_* step environment, --from/--only with the resume hint, and colours."""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ends, lynx_env

# Records which step ran (in `ran`) and the LYNX_* variables it saw (in env-NAME.json); exits 3 while a
# file fail-NAME exists next to it, so a test can make a step fail and then fix it.
STEP = """
    import json, os, pathlib, sys
    here = pathlib.Path(__file__).parent
    name = os.environ["LYNX_STEP"]
    env = {k: v for k, v in os.environ.items() if k.startswith("LYNX_")}
    (here / f"env-{name}.json").write_text(json.dumps(env))
    with open(here / "ran", "a") as f:
        f.write(name + "\\n")
    sys.exit(3 if (here / f"fail-{name}").exists() else 0)
    """

RESUME = "to resume from the failed step: "


def pipeline(write_config, write_script, *names: str, where: str = "") -> Path:
    """A config (in the folder `where` of tmp_path) whose steps are step.py under the given names."""
    prefix = f"{where}/" if where else ""
    write_script(prefix + "step.py", STEP)
    steps = "".join(f"  - script: step.py\n    name: {name}\n" for name in names)
    return write_config("steps:\n" + steps, name=prefix + "config.yaml")


def ran(folder: Path) -> list[str]:
    """The names of the steps that ran, in order (step.py writes them to `ran` beside itself)."""
    path = folder / "ran"
    return path.read_text().split() if path.exists() else []


def ledger(config: Path) -> list[dict]:
    path = config.parent / ".lynx" / "runs.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def option(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv else None


def resume_argv(stderr: str) -> list[str]:
    lines = [line for line in stderr.splitlines() if RESUME in line]
    assert len(lines) == 1, stderr
    return shlex.split(lines[0].split(RESUME, 1)[1])


# --- timeout, retries, continue_on_failure -------------------------------------------------------------

def test_a_step_past_its_timeout_is_ended_with_the_grandchild_it_started(run_lynx, write_config, write_script,
                                                                          tmp_path, started):
    write_script("hang.py", """
        import pathlib, subprocess, sys, time
        here = pathlib.Path(__file__).parent
        code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
        child = subprocess.Popen([sys.executable, "-c", code])
        (here / "grandchild.pid").write_text(str(child.pid))
        time.sleep(60)
        """)
    write_script("after.py", "open('after.ran', 'w').close()\n")
    cfg = write_config("steps:\n  - script: hang.py\n    timeout: 1\n  - script: after.py\n")
    began = time.monotonic()
    result = run_lynx("start", "-cf", str(cfg), "-ni", timeout=20)
    grandchild_ended = ends(int((tmp_path / "grandchild.pid").read_text()), started)
    assert time.monotonic() - began < 15
    assert result.returncode == 1
    assert "step 1/2 'hang' failed (timed out after 1 s)" in result.stderr
    assert not (tmp_path / "after.ran").exists()
    assert grandchild_ended, "the step's grandchild was left running"
    step = ledger(cfg)[0]["steps"][0]
    assert step["reason"] == "timed out after 1 s" and step["signal"] == signal.SIGTERM


def test_a_step_that_sends_its_output_elsewhere_is_still_ended_at_its_timeout(run_lynx, write_config,
                                                                             write_script, tmp_path, started):
    write_script("quiet.py", """
        import os, time
        open("quiet.pid", "w").write(str(os.getpid()))
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        time.sleep(6)
        """)
    cfg = write_config("steps:\n  - script: quiet.py\n    timeout: 1\n")
    began = time.monotonic()
    result = run_lynx("start", "-cf", str(cfg), "-ni", timeout=30)
    elapsed = time.monotonic() - began
    step_ended = ends(int((tmp_path / "quiet.pid").read_text()), started, timeout=1)
    assert "step 1/1 'quiet' failed (timed out after 1 s)" in result.stderr, result.stderr
    assert result.returncode == 1
    assert elapsed < 5
    assert step_ended


def test_a_failing_step_is_retried_after_the_delay_and_each_attempt_is_logged(run_lynx, write_config,
                                                                               write_script, tmp_path):
    write_script("flaky.py", """
        import pathlib, sys, time
        stamps = pathlib.Path(__file__).with_name("stamps")
        with open(stamps, "a") as f:
            f.write(f"{time.time()}\\n")
        sys.exit(0 if len(stamps.read_text().split()) >= 3 else 1)
        """)
    cfg = write_config("steps:\n  - script: flaky.py\n    retries: 2\n    retry_delay: 0.3\n")
    result = run_lynx("start", "-cf", str(cfg), "-ni")
    assert result.returncode == 0, result.stderr
    for attempt in (1, 2, 3):
        assert f"step 1/1 'flaky' started (attempt {attempt}/3)" in result.stderr
    assert "(attempt 4/" not in result.stderr
    stamps = [float(t) for t in (tmp_path / "stamps").read_text().split()]
    assert len(stamps) == 3
    assert all(later - earlier >= 0.3 for earlier, later in zip(stamps, stamps[1:]))
    assert ledger(cfg)[0]["steps"][0]["attempts"] == 3


def test_a_step_that_fails_every_attempt_fails_the_run_after_its_last_retry(run_lynx, write_config,
                                                                            write_script, tmp_path):
    write_script("bad.py", "import sys; open('tries', 'a').write('x'); sys.exit(5)\n")
    write_script("after.py", "open('after.ran', 'w').close()\n")
    cfg = write_config("steps:\n  - script: bad.py\n    retries: 1\n    retry_delay: 0.05\n"
                       "  - script: after.py\n")
    result = run_lynx("start", "-cf", str(cfg), "-ni")
    assert result.returncode == 1
    assert "(attempt 1/2)" in result.stderr and "(attempt 2/2)" in result.stderr
    assert (tmp_path / "tries").read_text() == "xx"
    assert not (tmp_path / "after.ran").exists()
    entry = ledger(cfg)[0]
    assert entry["result"] == "failed"
    assert entry["steps"][0]["attempts"] == 2 and entry["steps"][0]["exit_status"] == 5


def test_continue_on_failure_goes_on_and_the_run_is_partial_with_status_1(run_lynx, write_config,
                                                                          write_script, tmp_path):
    write_script("bad.py", "import sys; sys.exit(4)\n")
    write_script("after.py", "open('after.ran', 'w').close()\n")
    cfg = write_config("steps:\n  - script: bad.py\n    continue_on_failure: true\n  - script: after.py\n")
    result = run_lynx("start", "-cf", str(cfg), "-ni")
    assert result.returncode == 1
    assert (tmp_path / "after.ran").exists()
    assert re.search(r"^bad\s+failed, tolerated \(exit status 4\)", result.stderr, re.MULTILINE)
    entry = ledger(cfg)[0]
    assert entry["result"] == "partial"
    assert [(s["name"], s["ok"]) for s in entry["steps"]] == [("bad", False), ("after", True)]


# --- env, cwd, command, python ---------------------------------------------------------------------------

def test_a_steps_env_mapping_is_added_to_the_environment(run_lynx, write_config, write_script):
    write_script("show.py", "import os; print('seen:', os.environ['GREETING'], os.environ['COUNT'], "
                            "bool(os.environ.get('PATH')))\n")
    cfg = write_config("steps:\n  - script: show.py\n    env:\n      GREETING: hello world\n      COUNT: 3\n")
    result = run_lynx("start", "-cf", str(cfg), "-ni")
    assert result.returncode == 0, result.stderr
    assert "seen: hello world 3 True" in result.stdout


def test_a_relative_cwd_is_taken_from_the_config_files_directory(run_lynx, write_config, write_script,
                                                                 tmp_path):
    (tmp_path / "proj" / "work").mkdir(parents=True)
    (tmp_path / "work").mkdir()  # what a cwd relative to where Lynx runs would wrongly pick
    write_script("proj/where.py", "import os; print('cwd:', os.getcwd())\n")
    cfg = write_config("steps:\n  - script: where.py\n    cwd: work\n", name="proj/config.yaml")
    result = run_lynx("start", "-cf", str(cfg), "-ni", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"cwd: {(tmp_path / 'proj' / 'work').resolve()}\n" in result.stdout


def test_a_command_list_runs_each_element_as_one_argument_without_a_shell(run_lynx, write_config, tmp_path):
    cfg = write_config("""
        steps:
          - name: argv
            command: ["{py}", "-c", "import sys; print('argv:', sys.argv[1:])", "two words", "$HOME > out"]
        """)
    result = run_lynx("start", "-cf", str(cfg), "-ni")
    assert result.returncode == 0, result.stderr
    assert "argv: ['two words', '$HOME > out']" in result.stdout
    assert not (tmp_path / "out").exists()


def test_a_command_string_is_split_like_a_shell_would_but_no_shell_runs_it(run_lynx, write_config, tmp_path):
    cfg = write_config("""
        steps:
          - name: split
            command: {py} -c 'import sys; print("argv:", sys.argv[1:])' 'two words' plain
          - name: echo
            command: echo $HOME; touch hacked
        """)
    result = run_lynx("start", "-cf", str(cfg), "-ni")
    assert result.returncode == 0, result.stderr
    assert "argv: ['two words', 'plain']" in result.stdout
    assert "$HOME; touch hacked" in result.stdout
    assert not (tmp_path / "hacked").exists()


def test_a_relative_program_path_in_a_command_is_found_beside_the_config(run_lynx, write_config, tmp_path):
    tool = tmp_path / "proj" / "bin" / "tool.sh"
    tool.parent.mkdir(parents=True)
    tool.write_text('#!/bin/sh\necho "tool says $1"\n')
    tool.chmod(0o755)
    (tmp_path / "elsewhere").mkdir()
    cfg = write_config("steps:\n  - command: bin/tool.sh hello\n", name="proj/config.yaml")
    result = run_lynx("start", "-cf", str(cfg), "-ni", cwd=tmp_path / "elsewhere")
    assert result.returncode == 0, result.stderr
    assert "tool says hello" in result.stdout


def test_a_py_script_runs_with_the_interpreter_named_by_python(run_lynx, write_config, write_script,
                                                              tmp_path):
    marker = tmp_path / "interpreter.used"
    wrapper = tmp_path / "venv" / "bin" / "python"
    wrapper.parent.mkdir(parents=True)
    wrapper.write_text(f'#!/bin/sh\necho "$@" > {shlex.quote(str(marker))}\n'
                       f'exec {shlex.quote(sys.executable)} "$@"\n')
    wrapper.chmod(0o755)
    script = write_script("hello.py", "print('hello from the wrapped interpreter')\n")
    cfg = write_config("steps:\n  - script: hello.py\n    python: venv/bin/python\n"
                       "    arguments: ['--n 2']\n")
    result = run_lynx("start", "-cf", str(cfg), "-ni")
    assert result.returncode == 0, result.stderr
    assert "hello from the wrapped interpreter" in result.stdout
    assert marker.read_text().split() == [str(script), "--n", "2"]


# --- the LYNX_* environment of a step ---------------------------------------------------------------------

def test_each_step_sees_the_run_id_its_name_its_position_the_config_and_the_trigger(run_lynx, write_config,
                                                                                    write_script, tmp_path):
    cfg = pipeline(write_config, write_script, "a", "b", "c")
    result = run_lynx("start", "-cf", cfg.name, "-ni", "--from", "b", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    b, c = (json.loads((tmp_path / f"env-{name}.json").read_text()) for name in ("b", "c"))
    run_id = ledger(cfg)[0]["run_id"]
    assert b == {"LYNX_RUN_ID": run_id, "LYNX_STEP": "b", "LYNX_STEP_INDEX": "1", "LYNX_CONFIG": str(cfg),
                 "LYNX_TRIGGER": "manual"}
    assert c == {**b, "LYNX_STEP": "c", "LYNX_STEP_INDEX": "2"}
    assert Path(b["LYNX_CONFIG"]).is_absolute()


# --- --from and --only -------------------------------------------------------------------------------------

def test_from_starts_at_the_named_step(run_lynx, write_config, write_script, tmp_path):
    cfg = pipeline(write_config, write_script, "a", "b", "c")
    result = run_lynx("start", "-cf", str(cfg), "-ni", "--from", "b")
    assert result.returncode == 0, result.stderr
    assert ran(tmp_path) == ["b", "c"]


def test_only_runs_just_the_named_steps_in_pipeline_order(run_lynx, write_config, write_script, tmp_path):
    cfg = pipeline(write_config, write_script, "a", "b", "c", "d")
    result = run_lynx("start", "-cf", str(cfg), "-ni", "--only", "d,b")
    assert result.returncode == 0, result.stderr
    assert ran(tmp_path) == ["b", "d"]
    assert [s["name"] for s in ledger(cfg)[0]["steps"]] == ["b", "d"]


def test_an_unknown_step_name_is_a_usage_error_with_a_suggestion_and_nothing_runs(run_lynx, write_config,
                                                                                  write_script, tmp_path):
    cfg = pipeline(write_config, write_script, "prepare", "train", "deploy")
    for flag, value, close in (("--from", "trian", "train"), ("--only", "prepare,deploi", "deploy")):
        result = run_lynx("start", "-cf", str(cfg), "-ni", flag, value)
        assert result.returncode == 2, result.stderr
        assert f"did you mean '{close}'?" in result.stderr
        assert "Traceback" not in result.stderr
    assert ran(tmp_path) == []
    assert not (tmp_path / ".lynx").exists()


def test_the_resume_command_printed_after_a_failure_reruns_the_failed_step_and_the_rest(
        run_lynx, write_config, write_script, tmp_path):
    cfg = pipeline(write_config, write_script, "a", "b", "c")
    (tmp_path / "fail-b").touch()
    result = run_lynx("start", "-cf", "config.yaml", "-lf", "logs/run.log", "-ni",
                      "--ledger", "records/runs.jsonl", cwd=tmp_path)
    assert result.returncode == 1
    assert ran(tmp_path) == ["a", "b"]
    argv = resume_argv(result.stderr)
    assert argv[:2] == ["lynx", "start"]
    assert option(argv, "-cf") == str(cfg)
    assert option(argv, "-lf") == str(tmp_path / "logs" / "run.log")
    assert option(argv, "--ledger") == str(tmp_path / "records" / "runs.jsonl")
    assert option(argv, "--from") == "b" and "--only" not in argv

    (tmp_path / "fail-b").unlink()
    (tmp_path / "ran").unlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    resumed = run_lynx(*argv[1:], cwd=elsewhere)
    assert resumed.returncode == 0, resumed.stderr
    assert ran(tmp_path) == ["b", "c"]
    assert "'c' succeeded" in (tmp_path / "logs" / "run.log").read_text().split(RESUME)[-1]
    ledger = (tmp_path / "records" / "runs.jsonl").read_text().splitlines()
    assert [json.loads(line)["result"] for line in ledger] == ["failed", "ok"]   # both runs, one ledger


def test_the_resume_command_after_only_keeps_to_the_selected_steps_and_survives_spaces(
        run_lynx, write_config, write_script):
    cfg = pipeline(write_config, write_script, "a", "b", "c", "d", where="my pipeline")
    home = cfg.parent
    (home / "fail-b").touch()
    result = run_lynx("start", "-cf", str(cfg), "-ni", "--only", "a,b,d")
    assert result.returncode == 1
    assert ran(home) == ["a", "b"]
    argv = resume_argv(result.stderr)
    assert argv[:2] == ["lynx", "start"]
    assert option(argv, "-cf") == str(cfg) and "-lf" not in argv
    assert option(argv, "--only") == "b,d" and "--from" not in argv

    (home / "fail-b").unlink()
    (home / "ran").unlink()
    resumed = run_lynx(*argv[1:])
    assert resumed.returncode == 0, resumed.stderr
    assert ran(home) == ["b", "d"]


# --- colours -----------------------------------------------------------------------------------------------

def test_lynx_colours_its_own_lines_on_a_terminal(spawn_lynx, write_config, write_script):
    import pexpect

    cfg = pipeline(write_config, write_script, "a")
    child = spawn_lynx("start", "-cf", str(cfg))
    child.expect("\x1b\\[[0-9;]*mlynx:")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_no_color_in_the_environment_turns_lynx_colours_off(spawn_lynx, write_config, write_script):
    import pexpect

    cfg = pipeline(write_config, write_script, "a")
    child = spawn_lynx("start", "-cf", str(cfg), env=lynx_env(NO_COLOR="1"))
    child.expect(pexpect.EOF)
    screen = child.before
    child.close()
    assert child.exitstatus == 0
    assert "lynx: step 1/1 'a' succeeded" in screen
    assert "\x1b[" not in screen


def test_a_steps_colours_reach_the_terminal_but_not_the_log_file(spawn_lynx, write_config, write_script,
                                                                  tmp_path):
    import pexpect

    write_script("red.py", "print('\\x1b[1;31mred alert\\x1b[0m and \\x1b[32mgreen\\x1b[0m')\n")
    cfg = write_config("steps:\n  - script: red.py\n")
    log = tmp_path / "run.log"
    child = spawn_lynx("start", "-cf", str(cfg), "-lf", str(log))
    child.expect_exact("\x1b[1;31mred alert\x1b[0m and \x1b[32mgreen\x1b[0m")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    text = log.read_text()
    assert re.search(r"^\S+ \S+ red \| red alert and green$", text, re.MULTILINE), text
    assert "\x1b" not in text


def test_the_dialog_aborts_when_nobody_can_see_it():
    from lynx.dialog import ask

    class Gone:
        def write(self, text: str) -> None:
            raise BrokenPipeError(32, "Broken pipe")   # stderr into a closed pipe, or a hung-up terminal

        def flush(self) -> None:
            pass
    assert ask("train", "exit status 1", read_line=lambda: "s\n", out=Gone()) == "abort"


def test_the_resume_command_keeps_the_log_files_rotation(tmp_path):
    from lynx.config import Config
    from lynx.launch import StartOptions

    options = StartOptions(config_file="c.yaml", log_file="run.log", log_level="INFO", log_size=5000,
                           log_backup_count=7, interactive=False, keep_running=False, background=False,
                           pid_file="p.json")
    words = options.resume_prefix(Config(path=tmp_path / "c.yaml", steps=()))
    assert words[words.index("-ls") + 1] == "5000" and words[words.index("-lbc") + 1] == "7"


@pytest.mark.parametrize("closed", ["2>&-", "<&-"])
def test_a_run_started_with_stderr_or_stdin_closed_aborts_at_the_dialog_and_records_the_run(
        write_config, tmp_path, started, closed):
    mark = tmp_path / "hook-ran"
    cfg = write_config(f"""
        hooks:
          on_failure: {{command: [{{py}}, -c, "open({str(mark)!r}, 'w')"]}}
        steps:
          - command: [{{py}}, -c, "raise SystemExit(4)"]
            name: train
        """)
    ledger = tmp_path / "runs.jsonl"
    proc = subprocess.Popen(["/bin/sh", "-c", f'exec {closed} "$@"', "sh", sys.executable, "-m", "lynx", "start",
                             "-cf", str(cfg), "-lf", str(tmp_path / "l.log"), "--ledger", str(ledger)],
                            cwd=tmp_path, env=lynx_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    started.add(proc.pid)
    proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert json.loads(ledger.read_text())["result"] == "failed"
    assert mark.exists()


@pytest.mark.parametrize("only, failed, expected", [
    (False, "train", ["--from", "train"]), (False, "-x", ["--from=-x"]),
    (True, "train", ["--only", "train,last"]), (True, "-x", ["--only=-x,last"])])
def test_the_resume_command_keeps_a_name_starting_with_a_dash_a_value(only, failed, expected):
    from lynx.config import Config, Step
    from lynx.runs import RunSettings, resume_command

    steps = tuple(Step(name=name, argv=("/bin/true",), line=1) for name in (failed, "last"))
    settings = RunSettings(Config(path="/c.yaml", steps=steps), steps, "/l.jsonl", None,
                           ("lynx", "start", "-cf", "/c.yaml"), only=only)
    assert shlex.split(resume_command(settings, failed)) == ["lynx", "start", "-cf", "/c.yaml", *expected]
