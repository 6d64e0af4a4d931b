"""Run a pipeline's steps in order, each in its own process group, streaming its output.

A failed step is a result, not an exception. What stops a run from outside (Ctrl+C, a stop
request) is an exception: the running step is ended (ending.end_step) before it propagates.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Callable

from lynx.config import Step
from lynx.ending import POSIX, end_leftovers, end_step
from lynx.errors import StopRequested
from lynx.output import StepOutput
from lynx.streaming import LEFTOVERS, TIMED_OUT, stream

log = logging.getLogger("lynx")


class StepResult:
    """How one step ended (filled in as it runs)."""

    def __init__(self, name: str, index: int, returncode: int | None = None, duration: float = 0.0,
                 attempts: int = 0, reason: str = "", tolerated: bool = False, job_id: str | None = None
                 ) -> None:
        self.name, self.index = name, index
        self.returncode = returncode
        self.duration = duration
        self.attempts = attempts
        self.reason = reason          # human text: "exit status 1", "killed by SIGKILL", "timed out after 5 s"
        self.tolerated = tolerated    # failed, but the step has continue_on_failure
        self.job_id = job_id          # the Slurm job of the last attempt, for a Slurm step

    def __repr__(self) -> str:
        return f"StepResult({self.name!r}, {self.index}, returncode={self.returncode}, reason={self.reason!r})"

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.reason.startswith("timed out")


class RunResult:
    """How a whole run ended: the results of the steps that ran, in order."""

    def __init__(self, steps: list[StepResult] | None = None) -> None:
        self.steps: list[StepResult] = steps if steps is not None else []

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(step.ok for step in self.steps)

    @property
    def failed(self) -> StepResult | None:
        return next((step for step in self.steps if not step.ok and not step.tolerated), None)

    @property
    def status(self) -> str:
        """'ok', 'partial' (only continue_on_failure steps failed) or 'failed'."""
        if self.ok:
            return "ok"
        return "failed" if self.failed or not self.steps else "partial"


class Interrupted(Exception):
    """A run stopped from outside (Ctrl+C, a stop request, raised `from` it): where, and the results so far."""

    def __init__(self, where: str, result: RunResult, cut_short: str = "", resume_from: str | None = None,
                 which: str | None = "failed", run_failed: bool = False) -> None:
        super().__init__(where)
        self.where = where               # "during step 'train' (2/4)", "during the on_start hook", ...
        self.result = result
        self.cut_short = cut_short       # what was running and got ended: "the step", "the hook" or ""
        self.resume_from = resume_from   # the step a rerun should start at; None: nothing to resume
        self._which = which              # that step for the user: "the {which} step"; None: by status
        self.resume: str | None = None   # the command that does it, once known
        self.run_failed = run_failed     # a step had failed already: a stop then exits 1, not 0

    @property
    def stopped(self) -> bool:
        """Ended by a stop request (SIGTERM, `lynx stop`) rather than by Ctrl+C."""
        return isinstance(self.__cause__, StopRequested)

    @property
    def status(self) -> str:
        """The run's result as the ledger records it: 'stopped' or 'interrupted'."""
        return "stopped" if self.stopped else "interrupted"

    @property
    def how(self) -> str:
        return stop_reason(self.__cause__)

    @property
    def which(self) -> str:
        return self._which or self.status


def stop_reason(exc: BaseException | None) -> str:
    """'interrupted by Ctrl+C', 'stopped on request', or a stop's own reason (a hung-up terminal)."""
    if isinstance(exc, StopRequested):
        return str(exc) or "stopped on request"
    return "interrupted by Ctrl+C"


class StepInterrupted(Interrupted):
    """The run was stopped while a step ran (the step was ended)."""

    def __init__(self, step: Step, index: int, total: int, result: RunResult, run_failed: bool) -> None:
        super().__init__(f"during step '{step.name}' ({index + 1}/{total})", result, "the step", step.name,
                         which=None,   # "the interrupted step", "the stopped step"
                         run_failed=run_failed)
        self.step, self.index, self.total = step, index, total


# What to do after a failed step: "step" (rerun it), "pipeline" (start over) or "abort".
OnFailure = Callable[[StepResult], str]
OutputFactory = Callable[[Step], StepOutput]


def run_pipeline(steps: Sequence[Step], output_for: OutputFactory,
                 on_failure: OnFailure | None = None, run_env: Mapping[str, str] | None = None) -> RunResult:
    """Run `steps` in order; after a failure ask `on_failure` what to do (default: abort).

    `run_env` (LYNX_RUN_ID, LYNX_CONFIG, ...) is added to every step's environment.
    """
    result = RunResult()
    index = 0
    earlier_attempts = 0   # of a step rerun from the dialog: the record counts every attempt
    rerun = False          # the pipeline was started over from the dialog: a step had failed
    while index < len(steps):
        step = steps[index]
        step_started = time.monotonic()
        outcome = StepResult(step.name, index)
        try:
            run_step(step, index, len(steps), output_for(step), run_env or {}, outcome)
        except (KeyboardInterrupt, StopRequested) as exc:
            # The step that was running belongs in the record too, marked as ended from outside.
            outcome.attempts = max(outcome.attempts, 1) + earlier_attempts
            outcome.duration, outcome.returncode = time.monotonic() - step_started, None
            outcome.reason = stop_reason(exc)
            # A failure before it counts (a continue_on_failure step, or this one before its rerun).
            run_failed = rerun or earlier_attempts > 0 or not all(earlier.ok for earlier in result.steps)
            result.steps.append(outcome)
            raise StepInterrupted(step, index, len(steps), result, run_failed) from exc
        outcome.attempts += earlier_attempts
        earlier_attempts = 0
        result.steps.append(outcome)
        if outcome.ok or step.continue_on_failure:
            outcome.tolerated = not outcome.ok
            index += 1
            continue
        try:
            choice = on_failure(outcome) if on_failure else "abort"
        except (KeyboardInterrupt, StopRequested) as exc:   # at the dialog: the failed step is the record
            raise Interrupted(f"at the dialog after step '{step.name}' ({index + 1}/{len(steps)}) failed",
                              result, resume_from=step.name, run_failed=True) from exc
        if choice == "abort":
            break
        if choice == "pipeline":
            result, index, rerun = RunResult(), 0, True
        else:  # "step": the rerun's result replaces the failed one, its attempts added
            earlier_attempts = result.steps.pop().attempts
    return result


def run_step(step: Step, index: int, total: int, output: StepOutput,
             run_env: Mapping[str, str] = MappingProxyType({}), result: StepResult | None = None) -> StepResult:
    """Run one step with its retries; log its start, its end and its duration.

    Fills in `result` if given: if the run is stopped meanwhile, it holds the attempts started.
    """
    result = StepResult(step.name, index) if result is None else result
    env = {**run_env, "LYNX_STEP": step.name, "LYNX_STEP_INDEX": str(index + 1)}
    started = time.monotonic()
    for attempt in range(1, step.retries + 2):
        result.attempts = attempt
        suffix = f" (attempt {attempt}/{step.retries + 1})" if step.retries else ""
        log.info("step %d/%d '%s' started%s", index + 1, total, step.name, suffix)
        result.returncode, result.reason = _attempt(step, output, env, result)
        if result.returncode == 0 and not result.reason:
            break
        if attempt <= step.retries:
            log.warning("step '%s' failed (%s); retrying in %g s", step.name,
                        result.reason or describe(result.returncode), step.retry_delay)
            time.sleep(step.retry_delay)
    result.duration = time.monotonic() - started
    result.reason = result.reason or describe(result.returncode)
    level = logging.INFO if result.ok else logging.ERROR
    log.log(level, "step %d/%d '%s' %s after %s", index + 1, total, step.name,
            "succeeded" if result.ok else f"failed ({result.reason})", format_duration(result.duration))
    return result


def _attempt(step: Step, output: StepOutput, env: Mapping[str, str], result: StepResult
             ) -> tuple[int | None, str]:
    """Run the step once, here or as a Slurm job (whose id goes into `result`)."""
    if step.executor != "slurm":
        return run_process(step, output, env)
    from lynx import slurm  # only pipelines with Slurm steps pay for it

    directory = slurm.output_dir(env.get("LYNX_CONFIG"))
    code, reason, result.job_id = slurm.run_job(step, output, environment(step, env), directory)
    return code, reason


def run_process(step: Step, output: StepOutput, env: Mapping[str, str]) -> tuple[int | None, str]:
    """Start the step once, stream its output until it ends; (returncode, reason if abnormal)."""
    try:
        proc = start(step, env)
    except OSError as exc:
        return None, f"could not start: {exc.strerror or exc}"
    deadline = time.monotonic() + step.timeout if step.timeout else None
    timed_out = False
    try:
        ended = stream(proc, output, deadline)
        # A step may stop writing to the pipe (EOF) long before it exits: keep waiting, within the deadline.
        timed_out = ended == TIMED_OUT or _wait(proc, deadline)
        if timed_out:
            end_step(proc, output)   # interrupted, it has still ended the step: not twice
        elif not end_leftovers(step.name, proc.pid, holding_output=ended == LEFTOVERS) and ended == LEFTOVERS:
            log.warning("step '%s' exited, but a process outside its group (setsid?) still holds its output: "
                        "Lynx stops reading it, and its next write may kill it (SIGPIPE); give such a process "
                        "its own output, e.g. `> serve.log 2>&1`", step.name)
    except BaseException:
        if not timed_out:
            end_step(proc, output)
        raise
    finally:
        output.close()
    return proc.wait(), f"timed out after {step.timeout:g} s" if timed_out else ""


def _wait(proc: subprocess.Popen, deadline: float | None) -> bool:
    """Wait for the step to exit; True if the deadline passed first."""
    try:
        proc.wait(timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return True
    return False


def start(step: Step, lynx_env: Mapping[str, str]) -> subprocess.Popen:
    """Start a step in its own process group, output to one pipe, no shell, no stdin.

    Its environment is Lynx's plus `step_changes`. On POSIX those are put into Lynx's own
    environment just around Popen, which then passes it on as it is (env=None): given a whole dict,
    Popen re-encodes every variable, ~15 us of a step's ~200 us overhead. (Windows' putenv would
    drop a variable set to "", so there the dict it is.)
    """
    if not POSIX:
        return subprocess.Popen(list(step.argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, cwd=step.cwd, env=environment(step, lynx_env),
                                bufsize=0, creationflags=subprocess.CREATE_NEW_PROCESS_GROUP)  # type: ignore[attr-defined]
    changes = step_changes(step, lynx_env)
    proc = None
    try:
        try:
            for key, value in changes.items():
                os.putenv(key, value)
            proc = subprocess.Popen(list(step.argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, cwd=step.cwd, bufsize=0, start_new_session=True)
        finally:
            _restore(changes)
        return proc
    except BaseException:
        # Stopped between the fork and our return: nobody else could end the step.
        if proc is not None:
            end_step(proc)
        else:   # inside Popen, after the fork (rare): the step may run, in a session of its own
            from lynx.proctree import end_new_sessions  # psutil: only on this path

            end_new_sessions()
        raise


def _restore(changes: Mapping[str, str]) -> None:
    """Put Lynx's environment back as os.environ (left alone by start) still has it."""
    for key in changes:
        value = os.environ.get(key)
        if value is None:
            os.unsetenv(key)
        else:
            os.putenv(key, value)


def step_changes(step: Step, lynx_env: Mapping[str, str]) -> dict[str, str]:
    """What a step's environment adds to Lynx's: its `env`, the LYNX_* variables, unbuffered Python."""
    return {**step.env, **lynx_env, "PYTHONUNBUFFERED": "1"}


def environment(step: Step, lynx_env: Mapping[str, str]) -> dict[str, str]:
    """A step's whole environment (for a Slurm job): Lynx's own plus `step_changes`."""
    return {**os.environ, **step_changes(step, lynx_env)}


def describe(returncode: int | None) -> str:
    """'exit status 1' or 'killed by SIGKILL', as a user reads it."""
    if returncode is None:
        return "did not finish"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


def format_duration(seconds: float) -> str:
    """1.23 s, 2 min 05 s, 1 h 02 min."""
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def summary(result: RunResult) -> str:
    """A short table: step, status, duration."""
    width = max([len(step.name) for step in result.steps] + [4])
    rows = [f"{'step':<{width}}  {'status':<28}  duration"]
    for step in result.steps:
        status = "ok" if step.ok else f"{'failed, tolerated' if step.tolerated else 'FAILED'} ({step.reason})"
        rows.append(f"{step.name:<{width}}  {status:<28}  {format_duration(step.duration)}")
    return "\n".join(rows)
