"""One run of the pipeline as the user sees it: hooks, the summary, the ledger line, the resume hint."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Callable, NamedTuple

from lynx import ledger
from lynx.config import Config, Hook, Step
from lynx.errors import StopRequested, UsageError
from lynx.runner import (
    Interrupted,
    OnFailure,
    OutputFactory,
    RunResult,
    run_pipeline,
    run_process,
    summary,
)

if TYPE_CHECKING:
    from datetime import datetime

log = logging.getLogger("lynx")


class RunSettings(NamedTuple):
    """What every run of this Lynx shares."""

    config: Config
    steps: tuple[Step, ...]            # the steps selected with --from / --only (all by default)
    ledger_path: str
    log_file: str | None
    resume_prefix: tuple[str, ...]     # `lynx start -cf CONFIG ...` without --from/--only
    only: bool = False                 # steps were picked with --only


def select_steps(steps: Sequence[Step], start_at: str | None, only: str | None) -> tuple[Step, ...]:
    """The steps from `start_at` on, or just the `only` ones (comma-separated names), in pipeline order."""
    names = [step.name for step in steps]
    # `is not None`: an empty --from or --only is a slip, not a request for every step.
    if start_at is not None:
        return tuple(steps[_index(names, start_at, "--from"):])
    if only is not None:
        wanted = {_index(names, name.strip(), "--only") for name in only.split(",") if name.strip()}
        if not wanted:   # `--only ,` would run an empty pipeline and call it a failure
            raise UsageError("--only: no step names given")
        return tuple(step for i, step in enumerate(steps) if i in wanted)
    return tuple(steps)


def _index(names: list[str], name: str, flag: str) -> int:
    if not name.strip():
        raise UsageError(f"{flag}: no step name given")
    if name in names:
        return names.index(name)
    import difflib

    close = difflib.get_close_matches(name, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f" (steps: {', '.join(names)})"
    raise UsageError(f"{flag}: no step named {name!r}{hint}")


def make_run_once(settings: RunSettings, output_for: OutputFactory, on_failure: OnFailure | None,
                  progress=None) -> Callable[[datetime | None], bool]:
    """The function the schedule calls: one run, recorded in the ledger, hooks around it."""
    def run_once(due: datetime | None) -> bool:
        started = time.time()
        run_id = ledger.new_run_id(started)
        env = {"LYNX_RUN_ID": run_id, "LYNX_CONFIG": str(settings.config.path),
               "LYNX_TRIGGER": due.isoformat() if due else "manual"}
        count = len(settings.steps)
        log.info("run %s: %s, %d step%s", run_id, os.path.basename(settings.config.path), count,
                 "" if count == 1 else "s")
        if progress is not None:
            progress.run_started(due)
        try:
            first = settings.steps[0].name if settings.steps else None
            _hook(settings.config.hooks.get("on_start"), env, output_for, rerun_from=first)
            result = run_pipeline(settings.steps, output_for, on_failure, env)
        except Interrupted as exc:
            _record(settings, env, started, exc.status, exc.result)
            raise _with_resume(settings, exc)
        try:
            _finish(settings, env, started, result, output_for)   # records the run, then runs its last hook
        except Interrupted as exc:
            exc.run_failed = not result.ok
            raise _with_resume(settings, exc)
        if progress is not None:
            progress.run_ended(result)
        return result.ok
    return run_once


def _finish(settings: RunSettings, env: dict[str, str], started: float, result: RunResult,
            output_for: OutputFactory) -> None:
    """Summary, ledger line, the success or failure hook, and how to resume."""
    level = logging.INFO if result.ok else logging.ERROR
    log.log(level, "run %s %s\n%s", env["LYNX_RUN_ID"], result.status.upper() if not result.ok else "succeeded",
            summary(result))
    _record(settings, env, started, result.status, result)
    failed = result.failed or next((s for s in result.steps if not s.ok), None)
    if failed is None:
        _hook(settings.config.hooks.get("on_success"), {**env, "LYNX_RESULT": "ok"}, output_for)
        return
    _hook(settings.config.hooks.get("on_failure"), {
        **env, "LYNX_RESULT": result.status, "LYNX_FAILED_STEP": failed.name,
        "LYNX_FAILED_REASON": failed.reason,
        **_exit_fields(failed.returncode),
        "LYNX_LOG_FILE": settings.log_file or ""}, output_for, rerun_from=result.failed and failed.name)
    if result.failed:
        log.info("to resume from the failed step: %s", resume_command(settings, failed.name))


def _exit_fields(returncode: int | None) -> dict[str, str]:
    """As the ledger has them: the exit status, or the signal that ended the step."""
    exit_status, signal = ledger.exit_status_and_signal(returncode)
    return {"LYNX_EXIT_STATUS": "" if exit_status is None else str(exit_status),
            "LYNX_SIGNAL": "" if signal is None else str(signal)}


def resume_command(settings: RunSettings, failed: str) -> str:
    """The exact command that runs the failed step and the ones after it (of those selected)."""
    names = [step.name for step in settings.steps]
    rest = names[names.index(failed):]
    option, value = ("--only", ",".join(rest)) if settings.only else ("--from", failed)
    # A name may start with '-' (`name: -x`); as a word of its own it would read as an option.
    selection = [f"{option}={value}"] if value.startswith("-") else [option, value]
    import shlex  # here and in _hook: a run without a failure or a hook does not need it

    return shlex.join([*settings.resume_prefix, *selection])


def _with_resume(settings: RunSettings, exc: Interrupted) -> Interrupted:
    """The interruption, with the command that reruns what it cut off (said after the interruption)."""
    if exc.resume_from is not None:
        exc.resume = resume_command(settings, exc.resume_from)
    return exc


def _record(settings: RunSettings, env: dict[str, str], started: float, status: str,
            result: RunResult) -> None:
    ended = time.time()
    ledger.append(settings.ledger_path, ledger.entry(
        env["LYNX_RUN_ID"], env["LYNX_TRIGGER"], started, ended, status, result, settings.config.path,
        settings.log_file))


def _hook(hook: Hook | None, env: dict[str, str], output_for: OutputFactory, rerun_from: str | None = None
          ) -> None:
    """Run a hook with the run's LYNX_* variables; its failure is logged, never the run's.

    Stopped from outside, it raises Interrupted: a rerun would start at `rerun_from` (None: none).
    """
    if hook is None:
        return
    import shlex

    step = Step(name=f"hook:{hook.event}", argv=hook.argv, line=hook.line, timeout=hook.timeout)
    log.info("hook %s: %s", hook.event, shlex.join(hook.argv))
    output = output_for(step)
    try:
        code, reason = run_process(step, output, {**env, "LYNX_HOOK": hook.event})
    except (KeyboardInterrupt, StopRequested) as exc:
        raise Interrupted(f"during the {hook.event} hook", RunResult(), "the hook", rerun_from,
                          "first" if hook.event == "on_start" else "failed") from exc
    if code != 0 or reason:
        from lynx.runner import describe

        log.warning("hook %s failed (%s); the run's result stands", hook.event, reason or describe(code))
