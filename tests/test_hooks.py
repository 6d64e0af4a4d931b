"""Hooks: on_start, on_success and on_failure commands, their LYNX_* variables, and why they never
change a run's result."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from conftest import ends

from lynx.config import load

# Dumps the LYNX_* variables to hook-EVENT.json, its pid to hook-EVENT.pid, and appends to `events`;
# argument `fail` makes it exit 1, `hang` makes it sleep far past any timeout.
HOOK = """
    import json, os, pathlib, sys, time
    here = pathlib.Path(__file__).parent
    event = os.environ["LYNX_HOOK"]
    env = {k: v for k, v in os.environ.items() if k.startswith("LYNX_")}
    (here / f"hook-{event}.json").write_text(json.dumps(env))
    (here / f"hook-{event}.pid").write_text(str(os.getpid()))
    with open(here / "events", "a") as f:
        f.write(f"hook:{event}\\n")
    mode = sys.argv[1] if len(sys.argv) > 1 else "ok"
    if mode == "fail":
        sys.exit(1)
    if mode == "hang":
        time.sleep(60)
    """

# Appends step:NAME to `events`; exits 3 while a file fail-NAME exists next to it.
STEP = """
    import os, pathlib, sys
    here = pathlib.Path(__file__).parent
    name = os.environ["LYNX_STEP"]
    with open(here / "events", "a") as f:
        f.write(f"step:{name}\\n")
    sys.exit(3 if (here / f"fail-{name}").exists() else 0)
    """

def pipeline(write_config, write_script, hooks: str, steps: str = "a,b") -> Path:
    """Steps (step.py) named in `steps` and the given `hooks:` body, where HOOK is the hook script's path."""
    hook = write_script("hook.py", HOOK)
    write_script("step.py", STEP)
    text = "steps:\n" + "".join(f"  - script: step.py\n    name: {name}\n" for name in steps.split(","))
    text += "hooks:\n" + "".join(f"  {line}\n" for line in textwrap.dedent(hooks).strip().splitlines())
    return write_config(text.replace("HOOK", str(hook)))


def events(tmp_path: Path) -> list[str]:
    path = tmp_path / "events"
    return path.read_text().split() if path.exists() else []


def hook_env(tmp_path: Path, event: str) -> dict[str, str]:
    return json.loads((tmp_path / f"hook-{event}.json").read_text())


def last_run(config: Path) -> dict:
    return json.loads((config.parent / ".lynx" / "runs.jsonl").read_text().splitlines()[-1])


ALL_HOOKS = """
on_start: ["{py}", "HOOK"]
on_success: ["{py}", "HOOK"]
on_failure: ["{py}", "HOOK"]
"""


def test_on_start_and_on_success_run_around_the_steps_with_the_runs_variables(run_lynx, write_config,
                                                                              write_script, tmp_path):
    cfg = pipeline(write_config, write_script, ALL_HOOKS)
    result = run_lynx("start", "-cf", "config.yaml", "-ni", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert events(tmp_path) == ["hook:on_start", "step:a", "step:b", "hook:on_success"]
    run = {"LYNX_RUN_ID": last_run(cfg)["run_id"], "LYNX_CONFIG": str(cfg), "LYNX_TRIGGER": "manual"}
    start, success = hook_env(tmp_path, "on_start"), hook_env(tmp_path, "on_success")
    assert start.items() >= {**run, "LYNX_HOOK": "on_start"}.items()
    assert success.items() >= {**run, "LYNX_HOOK": "on_success"}.items()
    assert not (tmp_path / "hook-on_failure.json").exists()
    assert last_run(cfg)["result"] == "ok"


def test_on_failure_is_told_the_result_the_failed_step_its_reason_status_and_log_file(
        run_lynx, write_config, write_script, tmp_path):
    cfg = pipeline(write_config, write_script, ALL_HOOKS, steps="a,b,c")
    (tmp_path / "fail-b").touch()
    result = run_lynx("start", "-cf", str(cfg), "-ni", "-lf", "logs/run.log")
    assert result.returncode == 1
    assert events(tmp_path) == ["hook:on_start", "step:a", "step:b", "hook:on_failure"]
    env = hook_env(tmp_path, "on_failure")
    assert env.items() >= {
        "LYNX_RUN_ID": last_run(cfg)["run_id"], "LYNX_CONFIG": str(cfg), "LYNX_TRIGGER": "manual",
        "LYNX_HOOK": "on_failure", "LYNX_RESULT": "failed", "LYNX_FAILED_STEP": "b",
        "LYNX_FAILED_REASON": "exit status 3", "LYNX_EXIT_STATUS": "3", "LYNX_SIGNAL": "",
        "LYNX_LOG_FILE": str(tmp_path / "logs" / "run.log")}.items()
    assert not (tmp_path / "hook-on_success.json").exists()
    assert last_run(cfg)["result"] == "failed"


def test_on_failure_after_a_tolerated_failure_says_the_run_was_partial(run_lynx, write_config, write_script,
                                                                       tmp_path):
    hook = write_script("hook.py", HOOK)
    write_script("step.py", STEP)
    cfg = write_config(f"""
        steps:
          - script: step.py
            name: a
            continue_on_failure: true
          - script: step.py
            name: b
        hooks:
          on_success: ["{{py}}", "{hook}"]
          on_failure: ["{{py}}", "{hook}"]
        """)
    (tmp_path / "fail-a").touch()
    result = run_lynx("start", "-cf", str(cfg), "-ni")
    assert result.returncode == 1
    assert events(tmp_path) == ["step:a", "step:b", "hook:on_failure"]
    env = hook_env(tmp_path, "on_failure")
    assert (env["LYNX_RESULT"], env["LYNX_FAILED_STEP"], env["LYNX_EXIT_STATUS"]) == ("partial", "a", "3")
    assert last_run(cfg)["result"] == "partial"


@pytest.mark.parametrize("event, fail_step, status, recorded", [
    ("on_start", False, 0, "ok"),
    ("on_success", False, 0, "ok"),
    ("on_failure", True, 1, "failed"),
])
def test_a_hook_that_fails_is_logged_and_the_runs_result_stands(run_lynx, write_config, write_script,
                                                                tmp_path, event, fail_step, status, recorded):
    cfg = pipeline(write_config, write_script, f'{event}: ["{{py}}", "HOOK", "fail"]')
    if fail_step:
        (tmp_path / "fail-b").touch()
    result = run_lynx("start", "-cf", str(cfg), "-ni")
    assert f"hook:{event}" in events(tmp_path)
    assert result.returncode == status, result.stderr
    assert f"hook {event} failed (exit status 1); the run's result stands" in result.stderr
    assert last_run(cfg)["result"] == recorded
    assert events(tmp_path).count("step:a") == 1 and "step:b" in events(tmp_path)


def test_a_hook_past_its_timeout_is_ended_and_the_run_still_succeeds(run_lynx, write_config, write_script,
                                                                    tmp_path, started):
    cfg = pipeline(write_config, write_script, """
        on_success:
          command: ["{py}", "HOOK", "hang"]
          timeout: 1
        """)
    result = run_lynx("start", "-cf", str(cfg), "-ni", timeout=20)
    hook_ended = ends(int((tmp_path / "hook-on_success.pid").read_text()), started)
    assert result.returncode == 0, result.stderr
    assert "hook on_success failed (timed out after 1 s); the run's result stands" in result.stderr
    assert last_run(cfg)["result"] == "ok"
    assert hook_ended, "the hook was left running past its timeout"


def test_a_hook_command_may_be_a_string_split_like_a_shell_would(run_lynx, write_config, write_script,
                                                                 tmp_path):
    cfg = pipeline(write_config, write_script, """
        on_start: {py} 'HOOK'
        on_success:
          command: {py} HOOK fail
          timeout: 5
        """)
    result = run_lynx("start", "-cf", str(cfg), "-ni")
    assert result.returncode == 0, result.stderr
    assert events(tmp_path) == ["hook:on_start", "step:a", "step:b", "hook:on_success"]
    assert "hook on_start failed" not in result.stderr
    assert "hook on_success failed (exit status 1)" in result.stderr


def test_a_hook_without_a_timeout_gets_sixty_seconds_and_one_with_gets_its_own(write_config, write_script):
    cfg = pipeline(write_config, write_script, """
        on_start: ["{py}", "HOOK"]
        on_failure:
          command: ["{py}", "HOOK"]
          timeout: 2.5
        """)
    hooks = load(cfg).hooks
    assert set(hooks) == {"on_start", "on_failure"}
    assert hooks["on_start"].timeout == 60 and hooks["on_failure"].timeout == 2.5
    assert hooks["on_start"].argv[1] == str(cfg.parent / "hook.py")


def test_an_unknown_hook_event_is_a_config_error_and_nothing_runs(run_lynx, write_config, write_script,
                                                                  tmp_path):
    cfg = pipeline(write_config, write_script, 'on_fail: ["{py}", "HOOK"]')
    result = run_lynx("start", "-cf", str(cfg), "-ni")
    assert result.returncode == 2
    assert "hooks.on_fail: unknown key; did you mean 'on_failure'?" in result.stderr
    assert events(tmp_path) == []


def test_on_failure_is_told_the_signal_that_ended_a_step_as_the_ledger_records_it(run_lynx, write_config,
                                                                                   write_script, tmp_path):
    hook = write_script("hook.py", HOOK)
    cfg = write_config(f"""
        steps:
          - command: ["{{py}}", "-c", "import time; time.sleep(60)"]
            name: slow
            timeout: 0.5
        hooks:
          on_failure: ["{{py}}", "{hook}"]
        """)
    result = run_lynx("start", "-cf", str(cfg), "-ni")
    assert result.returncode == 1
    env = hook_env(tmp_path, "on_failure")
    assert (env["LYNX_EXIT_STATUS"], env["LYNX_SIGNAL"]) == ("", "15")
    step = last_run(cfg)["steps"][0]
    assert (step["exit_status"], step["signal"]) == (None, 15)
