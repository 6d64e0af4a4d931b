"""Run a step as a Slurm batch job: submit it with sbatch, follow its output file, take its exit code.

Imported only when a Slurm step runs or is checked, so that local pipelines never pay for it. Every
Slurm client runs in its own session: a Ctrl+C on the terminal reaches Lynx, which then cancels the job
itself, and never kills a half-done `sbatch` or `scancel`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shlex
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from lynx.config import SLURM_OPTIONS, Step
from lynx.output import CHUNK, StepOutput

log = logging.getLogger("lynx")

# States of a job that has not run yet: its output file is not its own yet.
NOT_STARTED = {"PENDING", "CONFIGURING", "UNKNOWN", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED"}
POLL_SECONDS = 0.5      # how often the job's state is asked for (one scontrol call each)
READ_SECONDS = 0.1      # how often the output file is read for new bytes
STOP_WAIT = 10.0        # a stop while sbatch runs: how long it may take still to say its job id
CLIENT_TIMEOUT = 60.0   # a Slurm client that hangs this long (controller unreachable) is given up on
CANCEL_WAIT = 60.0      # after scancel, how long to wait for Slurm to report the job ended
# States after which a job never runs again; anything else (PENDING, RUNNING, COMPLETING, ...) is waited on.
ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE",
         "OUT_OF_MEMORY", "SPECIAL_EXIT", "GONE"}
WHY = {"TIMEOUT": "the job's time limit was reached", "NODE_FAIL": "its node failed",
       "CANCELLED": "cancelled outside Lynx", "PREEMPTED": "preempted", "BOOT_FAIL": "its node failed to boot",
       "DEADLINE": "its deadline passed", "OUT_OF_MEMORY": "out of memory",
       "GONE": "Slurm no longer knows the job (its result was not kept)"}


class SlurmError(Exception):
    """A Slurm client failed; the message is Slurm's own, made one line."""


class JobState(NamedTuple):
    """What Slurm says about a job: its state and its exit code and signal."""

    state: str
    exit_code: int = 0
    signal: int = 0
    reason: str = ""    # why a pending job waits (Slurm's Reason=, e.g. Resources, PartitionConfig)

    @property
    def ended(self) -> bool:
        return self.state in ENDED


def output_dir(config_path: str | os.PathLike | None) -> Path:
    """Where job output files go: CONFIG_DIR/.lynx/slurm (next to the run ledger); it must be shared."""
    base = Path(config_path).resolve().parent if config_path else Path.cwd()
    return base / ".lynx" / "slurm"


def command(step: Step, directory: Path) -> list[str]:
    """The exact sbatch command line for `step` (the job id fills %j in the output file's name)."""
    options = step.slurm
    # --output is a filename pattern: a % of the directory's own is written %% (%x would be the job name).
    pattern = str(directory).replace("%", "%%") + os.sep + output_name(step, "%j")
    argv = ["sbatch", "--parsable", f"--job-name={options.get('job_name') or 'lynx-' + step.name}",
            f"--output={pattern}",
            f"--chdir={step.cwd or os.getcwd()}", "--export=ALL"]
    argv += [f"--{key.replace('_', '-')}={options[key]}" for key in SLURM_OPTIONS
             if key != "job_name" and options.get(key)]
    # exec: the step's own process is the job's, so scancel's signals and its exit status are its own.
    return [*argv, *options.get("extra_args", ()), "--wrap", "exec " + shlex.join(step.argv)]


def output_name(step: Step, job: str) -> str:
    """The job's output file's name in the output directory (`job` may be Slurm's %j)."""
    return f"{_safe(step.name)}-{job}.out"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "step"


def run_job(step: Step, output: StepOutput, env: Mapping[str, str], directory: Path
            ) -> tuple[int | None, str, str | None]:
    """Submit the step, follow it to its end; (returncode, reason if abnormal, job id)."""
    argv = command(step, directory)
    job, tail = None, None
    try:
        directory.mkdir(parents=True, exist_ok=True)
        job = submit(argv, env, step.name)
        tail = _Tail(directory / output_name(step, job))
        log.info("step '%s': submitted Slurm job %s (output %s)", step.name, job, tail.path)
        output.tag = f"{step.name} [job {job}]".encode("utf-8", "replace")
        deadline = time.monotonic() + step.timeout if step.timeout else None
        final = follow(job, tail, output, deadline)
        if final is None:
            cancel(job, step.name, tail, output)
    except SlurmError as exc:
        return None, str(exc), job
    except OSError as exc:
        return None, f"cannot follow the Slurm job: {exc.strerror or exc}", job
    except BaseException:
        if job:
            cancel(job, step.name, tail, output)
        raise
    finally:
        if tail is not None:
            tail.close()
        output.close()
    if final is None:
        return None, f"timed out after {step.timeout:g} s", job
    log.info("step '%s': Slurm job %s ended %s, exit code %d:%d", step.name, job, final.state,
             final.exit_code, final.signal)
    return (*outcome(final, job), job)


def outcome(final: JobState, job: str) -> tuple[int | None, str]:
    """The step's (returncode, reason) from the job's end: a job's own failure reads like a local one."""
    if final.state in ("COMPLETED", "FAILED"):
        return (-final.signal if final.signal else final.exit_code), ""
    return None, f"Slurm job {job} {final.state}: {WHY.get(final.state, final.state.lower())}"


def submit(argv: list[str], env: Mapping[str, str], name: str) -> str:
    """Run sbatch; the job id, or SlurmError with sbatch's own message.

    A stop (Ctrl+C, SIGTERM) while sbatch waits for a slow controller lets it finish, for up to
    STOP_WAIT s, and cancels the job it queued before the stop goes on: none is left unknown.
    A second stop gives up on it.
    """
    try:
        proc = subprocess.Popen(argv, env=dict(env), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
    except FileNotFoundError as exc:
        raise SlurmError(_NOT_FOUND.format(argv[0])) from exc
    with proc:
        try:
            out, err = proc.communicate(timeout=CLIENT_TIMEOUT)
        except subprocess.TimeoutExpired as exc:
            proc.kill()
            raise SlurmError(_NO_ANSWER.format(argv[0], CLIENT_TIMEOUT)) from exc
        except BaseException:
            try:
                job = _job_id(proc.communicate(timeout=STOP_WAIT)[0])
            except BaseException:   # no answer in time, or a second stop
                proc.kill()
                raise
            if proc.returncode == 0 and job:
                cancel(job, name)
            raise
    if proc.returncode != 0:
        raise SlurmError(f"{argv[0]} failed: {_message(err or out) or proc.returncode}")
    job = _job_id(out)
    if not job:
        raise SlurmError(f"sbatch printed no job id: {out.strip()!r}")
    return job


def _job_id(out: str) -> str | None:
    job = out.strip().split(";")[0]  # --parsable: "ID" or "ID;CLUSTER"
    return job if job.isdigit() else None


_NOT_FOUND = "{} not found on PATH; install Slurm's client tools on this machine or set `executor: local`"
_NO_ANSWER = "{} did not answer within {:g} s; is the Slurm controller reachable?"


def client(argv: list[str], env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run a Slurm client; SlurmError on failure, carrying its stderr."""
    try:
        done = subprocess.run(argv, env=dict(env) if env is not None else None, stdin=subprocess.DEVNULL,
                              check=False, capture_output=True, text=True, timeout=CLIENT_TIMEOUT, start_new_session=True)
    except FileNotFoundError as exc:
        raise SlurmError(_NOT_FOUND.format(argv[0])) from exc
    except subprocess.TimeoutExpired as exc:
        raise SlurmError(_NO_ANSWER.format(argv[0], CLIENT_TIMEOUT)) from exc
    if done.returncode != 0:
        raise SlurmError(f"{argv[0]} failed: {_message(done.stderr or done.stdout) or done.returncode}")
    return done


def _message(text: str) -> str:
    """Slurm's lines as one: 'sbatch: error: X' and 'sbatch: error: Y' become 'X; Y'."""
    lines = (re.sub(r"^\w+: (error: )?", "", line.strip()) for line in text.splitlines())
    return "; ".join(line for line in lines if line)


def follow(job: str, tail: _Tail, output: StepOutput, deadline: float | None) -> JobState | None:
    """Copy new bytes of the job's output file as they appear until the job ends; None at the deadline."""
    next_poll, told = time.monotonic(), ""
    while True:
        tail.pump(output)
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            return None
        if now >= next_poll:
            final = state(job)
            tail.note(final)
            if final.state == "PENDING" and final.reason and final.reason != told:
                # A job that cannot start (more CPUs than any node has) would otherwise wait unseen.
                told = final.reason
                log.info("Slurm job %s is pending: %s (`scontrol show job %s` says more)", job, told, job)
            if final.ended:
                tail.last(output)
                return final
            next_poll = now + POLL_SECONDS
        time.sleep(READ_SECONDS)


class _Tail:
    """The job's output file, read from where the last read stopped, once the job has started.

    Not before: a file left with the same name (job ids repeat when a cluster's state is reset)
    would be read as this job's, and Slurm empties it under the reader when the job starts.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None
        self.started = False   # set once Slurm says the job left the queue

    def note(self, job: JobState) -> None:
        """Take the job's state: once it has left the queue, its output file is its own."""
        self.started = self.started or job.state not in NOT_STARTED

    def last(self, output: StepOutput) -> None:
        """The job has ended: pass on its last bytes, which the node may still be flushing."""
        time.sleep(READ_SECONDS)
        self.pump(output)

    def pump(self, output: StepOutput) -> None:
        """Pass every byte written since the last call on to `output`."""
        if self.fd is None:
            if not self.started:
                return
            try:
                self.fd = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                return
        chunk = os.read(self.fd, CHUNK)
        while chunk:
            output.write(chunk)
            chunk = os.read(self.fd, CHUNK)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


_warned: set[str] = set()


def state(job: str) -> JobState:
    """The job's state from `scontrol show job` (sacct once scontrol has forgotten it)."""
    try:
        text = client(["scontrol", "show", "job", "-o", job]).stdout
    except SlurmError as exc:
        if "invalid job id" not in str(exc).lower():
            if job not in _warned:  # an unreachable controller: keep asking, say so once
                log.warning("Slurm job %s: cannot ask for its state (%s); still trying", job, exc)
                _warned.add(job)
            return JobState("UNKNOWN")
        return _accounted(job)
    fields = dict(re.findall(r"(\w+)=(\S*)", text))
    code, _, sig = fields.get("ExitCode", "0:0").partition(":")
    reason = fields.get("Reason", "")
    return JobState(fields.get("JobState", "UNKNOWN"), int(code or 0), int(sig or 0),
                    "" if reason == "None" else reason)


def _accounted(job: str) -> JobState:
    """The job's end from accounting, which a cluster without slurmdbd does not keep: GONE then."""
    try:
        rows = client(["sacct", "-j", job, "-X", "-n", "-P", "--format=State,ExitCode"]).stdout.split()
    except SlurmError:
        rows = []
    if not rows or "|" not in rows[0]:
        return JobState("GONE")
    state_text, _, exit_text = rows[0].partition("|")
    code, _, sig = exit_text.partition(":")
    return JobState(state_text.split()[0], int(code or 0), int(sig or 0))


def cancel(job: str, name: str, tail: _Tail | None = None, output: StepOutput | None = None) -> None:
    """scancel the job and wait until Slurm reports it ended (bounded): nothing is left queued or running.

    Meanwhile what the job prints as it is cancelled still goes to `output`.
    """
    log.info("step '%s': cancelling Slurm job %s", name, job)
    deadline = time.monotonic() + CANCEL_WAIT
    try:
        client(["scancel", job])
    except SlurmError as exc:
        log.warning("step '%s': scancel %s failed: %s", name, job, exc)
    while not (now := state(job)).ended:
        if tail is not None:
            tail.note(now)   # it may have left the queue since follow() last asked
            try:
                tail.pump(output)
            except OSError:   # cannot read it any more: the cancel matters more
                tail = None
        if time.monotonic() >= deadline:
            log.error("step '%s': Slurm job %s has not ended %g s after scancel; check `squeue -j %s`",
                      name, job, CANCEL_WAIT, job)
            return
        time.sleep(POLL_SECONDS / 2)
    if tail is not None:
        tail.note(now)
        with contextlib.suppress(OSError):
            tail.last(output)
    log.info("step '%s': Slurm job %s ended", name, job)
