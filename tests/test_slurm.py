"""Slurm steps: config and sbatch command lines without Slurm; runs, dialog, timeout and stop on a real cluster.

The cluster tests need the single-node cluster of `scripts/slurm-local.sh start`; they skip, saying why, only
when Slurm's client tools are missing or the cluster does not answer.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from lynx.config import Step, load
from lynx.errors import ConfigError
from lynx.slurm import JobState, command, outcome
from tests.conftest import lynx_env, wait_for

TICKS = "import sys, time\nfor i in range(3):\n    print('tick', i, flush=True)\n    time.sleep(0.3)\n"


def _cluster_problem() -> str | None:
    """Why the Slurm cluster tests cannot run here, or None."""
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return "Slurm's client tools (sbatch, sinfo) are not on PATH: install slurm-wlm"
    try:
        done = subprocess.run(["sinfo", "-h"], check=False, capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer in 20 s: start a cluster with `scripts/slurm-local.sh start`"
    if done.returncode != 0:
        return f"sinfo failed ({done.stderr.strip()}): start a cluster with `scripts/slurm-local.sh start`"
    return None


CLUSTER_PROBLEM = _cluster_problem()
cluster = pytest.mark.skipif(CLUSTER_PROBLEM is not None, reason=str(CLUSTER_PROBLEM))


# --- config and command lines: no Slurm needed --------------------------------------------------


def test_slurm_options_merge_the_top_level_defaults_key_by_key(write_config, write_script):
    write_script("train.py", "print('x')\n")
    cfg = write_config("""\
        executor: slurm
        slurm: {partition: gpu, time: "1:00:00", mem: 4G, extra_args: ["--constraint a100"]}
        steps:
          - script: train.py
            slurm: {partition: debug, cpus_per_task: 4, time: 30}
          - script: train.py
            executor: local
    """)
    first, second = load(cfg).steps
    assert first.executor == "slurm" and second.executor == "local"
    assert dict(first.slurm) == {"partition": "debug", "time": "30", "mem": "4G", "cpus_per_task": "4",
                                 "extra_args": ("--constraint", "a100")}
    assert dict(second.slurm) == {}


def test_a_step_may_run_on_slurm_when_the_pipeline_runs_locally(write_config, write_script):
    write_script("train.py", "print('x')\n")
    cfg = write_config("steps:\n  - script: train.py\n    executor: slurm\n  - script: train.py\n")
    assert [step.executor for step in load(cfg).steps] == ["slurm", "local"]


@pytest.mark.parametrize(("text", "line", "fragment"), [
    ("executor: cloud\nsteps: [{script: train.py}]\n", 1, "executor: expected 'local' or 'slurm'"),
    ("slurm: {partiton: gpu}\nsteps: [{script: train.py}]\n", 1,
     "slurm.partiton: unknown key; did you mean 'partition'?"),
    ("slurm: [gpu]\nsteps: [{script: train.py}]\n", 1, "slurm: expected a mapping"),
    ("steps:\n  - script: train.py\n    executor: slurm\n    slurm:\n      cpus_per_task: two\n", 5,
     "steps[0].slurm.cpus_per_task: expected a whole number >= 1, got a string ('two')"),
    ("steps:\n  - script: train.py\n    executor: slurm\n    slurm:\n      extra_args: ['--output x.log']\n", 5,
     "steps[0].slurm.extra_args[0]: --output is set by Lynx itself"),
    ("steps:\n  - script: train.py\n    executor: slurm\n    slurm:\n      partition: [a, b]\n", 5,
     "steps[0].slurm.partition: expected a non-empty string or number, got a list of 2 items"),
    ("steps:\n  - script: train.py\n    exector: slurm\n", 3, "steps[0].exector: unknown key; did you mean"),
    ("steps:\n  - script: train.py\n    executor: slurm\n    slurm:\n      extra_args: ['--err=e.log']\n", 5,
     "steps[0].slurm.extra_args[0]: --err is set by Lynx itself"),
], ids=["unknown executor", "misspelt option", "slurm a list", "cpus in words", "a reserved option",
        "a partition list", "misspelt executor", "a reserved option abbreviated"])
def test_a_bad_slurm_setting_is_a_config_error_naming_file_line_and_key(
        write_config, write_script, text, line, fragment):
    write_script("train.py", "print('x')\n")
    cfg = write_config(text)
    with pytest.raises(ConfigError) as caught:
        load(cfg)
    assert str(caught.value).startswith(f"{cfg}:{line}: ") and fragment in str(caught.value), caught.value


def test_the_sbatch_command_quotes_the_steps_argv_and_sets_every_option(tmp_path):
    step = Step(name="fit model", argv=("/usr/bin/python3", "train.py", "--msg", "it's $HOME"), line=1,
                cwd=tmp_path, executor="slurm",
                slurm={"partition": "gpu", "time": "10", "cpus_per_task": "2", "mem": "1G", "gres": "gpu:1",
                       "account": "lab", "qos": "low", "extra_args": ("--constraint", "a100")})
    argv = command(step, Path("/out"))
    assert argv == ["sbatch", "--parsable", "--job-name=lynx-fit model", "--output=/out/fit_model-%j.out",
                    f"--chdir={tmp_path}", "--export=ALL", "--partition=gpu", "--time=10", "--cpus-per-task=2",
                    "--mem=1G", "--gres=gpu:1", "--account=lab", "--qos=low", "--constraint", "a100",
                    "--wrap", "exec /usr/bin/python3 train.py --msg 'it'\"'\"'s $HOME'"]


def test_a_job_slurm_ended_for_its_own_reasons_is_a_failure_with_that_reason():
    assert outcome(JobState("COMPLETED"), "7") == (0, "")
    assert outcome(JobState("FAILED", 3), "7") == (3, "")
    assert outcome(JobState("FAILED", 0, 9), "7") == (-9, "")
    reason = "Slurm job 7 TIMEOUT: the job's time limit was reached"
    assert outcome(JobState("TIMEOUT", 0, 15), "7") == (None, reason)
    assert outcome(JobState("NODE_FAIL"), "7")[1] == "Slurm job 7 NODE_FAIL: its node failed"


def test_check_shows_the_sbatch_command_of_each_slurm_step(write_config, write_script, run_lynx):
    write_script("train.py", "print('x')\n")
    cfg = write_config("steps:\n  - script: train.py\n    executor: slurm\n    slurm: {partition: gpu}\n"
                       "  - script: train.py\n")
    text = run_lynx("check", "-cf", str(cfg))
    assert text.returncode == 0, text.stderr
    assert re.search(r"runs on Slurm: sbatch --parsable --job-name=lynx-train --output=\S+/\.lynx/slurm/"
                     r"train-%j\.out .*--partition=gpu --wrap 'exec \S+python\S* \S+/train\.py'", text.stdout)
    steps = json.loads(run_lynx("check", "-cf", str(cfg), "--json").stdout)["steps"]
    assert steps[0]["executor"] == "slurm" and steps[0]["sbatch"][:2] == ["sbatch", "--parsable"]
    assert steps[1]["executor"] == "local" and steps[1]["sbatch"] is None


def test_a_missing_sbatch_fails_the_step_naming_it_and_what_to_do(write_config, write_script, run_lynx,
                                                                  tmp_path):
    write_script("train.py", "print('x')\n")
    cfg = write_config("steps:\n  - script: train.py\n    executor: slurm\n")
    empty = tmp_path / "bin"
    empty.mkdir()
    result = run_lynx("start", "-cf", str(cfg), "-ni", env=lynx_env(PATH=str(empty)))
    assert result.returncode == 1
    assert "step 1/1 'train' failed (sbatch not found on PATH" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


# --- a real cluster -------------------------------------------------------------------------------


def jobs(name: str) -> list[str]:
    """Ids of the jobs with this name that Slurm still shows (pending, running or completing)."""
    done = subprocess.run(["squeue", "-h", "-n", name, "-o", "%i"], check=False, capture_output=True,
                          text=True, timeout=20)
    return done.stdout.split()


@pytest.fixture
def job_name():
    """A job name only this test uses; its jobs are cancelled at teardown, whatever happened."""
    name = f"lynx-test-{uuid.uuid4().hex[:8]}"
    yield name
    subprocess.run(["scancel", "-n", name], check=False, capture_output=True, timeout=20)


def slurm_pipeline(write_config, job_name: str, body: str, *, local_steps: bool = False, extra: str = "") -> Path:
    """A config whose step `job` runs `body` on Slurm, between two local steps if asked."""
    steps = f"  - script: job.py\n    name: job\n    executor: slurm\n{extra}"
    if local_steps:
        steps = f"  - command: ['{sys.executable}', -c, \"print('before')\"]\n{steps}" \
                f"  - command: ['{sys.executable}', -c, \"print('after')\"]\n"
    Path(write_config("", "job.py")).write_text(body)
    return write_config(f"slurm:\n  job_name: {job_name}\nsteps:\n{steps}")


def job_ids(text: str) -> list[str]:
    return re.findall(r"submitted Slurm job (\d+)", text)


@cluster
def test_a_slurm_step_between_local_steps_streams_its_output_into_the_log(write_config, run_lynx, job_name,
                                                                          tmp_path):
    cfg = slurm_pipeline(write_config, job_name, "import os\nprint('on', os.environ['LYNX_STEP'])\n" + TICKS,
                         local_steps=True)
    log = tmp_path / "run.log"
    result = run_lynx("start", "-cf", str(cfg), "-lf", str(log), timeout=90)
    assert result.returncode == 0, result.stderr
    text = log.read_text()
    [job] = job_ids(text)
    order = [re.search(pattern, text, re.MULTILINE).start() for pattern in (
        r"\| before$", rf"^\S+ \S+ job \[job {job}\] \| on job$", rf"job \[job {job}\] \| tick 2$", r"\| after$")]
    assert order == sorted(order), text
    assert f"Slurm job {job} ended COMPLETED" in text
    [entry] = [json.loads(line) for line in (tmp_path / ".lynx" / "runs.jsonl").read_text().splitlines()]
    assert entry["result"] == "ok" and entry["steps"][1]["job_id"] == job and "job_id" not in entry["steps"][0]


@cluster
def test_a_failing_slurm_step_opens_the_dialog_and_a_rerun_submits_a_new_job(write_config, spawn_lynx,
                                                                             job_name, tmp_path):
    import pexpect

    body = ("import pathlib, sys\nmark = pathlib.Path('ran.once')\nif not mark.exists():\n"
            "    mark.touch()\n    print('first try fails', flush=True)\n    sys.exit(4)\nprint('second try')\n")
    cfg = slurm_pipeline(write_config, job_name, body)
    log = tmp_path / "run.log"
    child = spawn_lynx("start", "-cf", str(cfg), "-lf", str(log), timeout=60)
    child.expect_exact("Step 'job' failed (exit status 4)")
    child.expect_exact("[a]bort?")
    child.sendline("s")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    first, second = job_ids(log.read_text())
    assert first != second
    assert f"[job {first}] | first try fails" in log.read_text()
    assert f"[job {second}] | second try" in log.read_text()


@cluster
def test_a_step_timeout_cancels_the_job_and_leaves_nothing_queued(write_config, run_lynx, job_name, tmp_path):
    code = ("import signal, sys, time\n"
            "def stop(*_):\n    print('saving a checkpoint', flush=True)\n    sys.exit(143)\n"
            "signal.signal(signal.SIGTERM, stop)\nprint('sleeping', flush=True)\ntime.sleep(300)\n")
    cfg = slurm_pipeline(write_config, job_name, code, extra="    timeout: 4\n")
    result = run_lynx("start", "-cf", str(cfg), "-ni", timeout=90)
    assert result.returncode == 1
    assert "step 1/1 'job' failed (timed out after 4 s)" in result.stderr, result.stderr
    [job] = job_ids(result.stderr)
    assert f"Slurm job {job} ended" in result.stderr
    assert "saving a checkpoint" in result.stdout.splitlines()   # what it says as it is cancelled
    assert jobs(job_name) == []


@cluster
def test_lynx_stop_cancels_the_running_job_of_a_background_lynx(write_config, run_lynx, started, job_name,
                                                               tmp_path):
    cfg = slurm_pipeline(write_config, job_name, "import time\nprint('working', flush=True)\ntime.sleep(300)\n")
    log = tmp_path / "lynx.log"
    result = run_lynx("start", "-cf", str(cfg), "-bg", "-lf", str(log), timeout=20)
    assert result.returncode == 0, result.stdout + result.stderr
    started.add(int(re.search(r"as pid (\d+)", result.stdout).group(1)))
    wait_for(lambda: "| working" in log.read_text(), timeout=60)
    assert len(jobs(job_name)) == 1
    stopped = run_lynx("stop", "--yes", timeout=40)
    assert stopped.returncode == 0 and "stopped (pid" in stopped.stdout, stopped.stdout
    assert jobs(job_name) == []
    text = log.read_text()
    assert re.search(r"Slurm job \d+ ended", text) and "stopped on request during step 'job'" in text


@cluster
def test_a_job_cancelled_outside_lynx_is_a_failed_step_saying_so(write_config, run_lynx, job_name, tmp_path):
    body = "import subprocess, os\nsubprocess.run(['scancel', os.environ['SLURM_JOB_ID']])\nimport time\n" \
           "time.sleep(60)\n"
    cfg = slurm_pipeline(write_config, job_name, body)
    result = run_lynx("start", "-cf", str(cfg), "-ni", timeout=90)
    assert result.returncode == 1
    assert re.search(r"step 1/1 'job' failed \(Slurm job \d+ CANCELLED: cancelled outside Lynx\)",
                     result.stderr), result.stderr


@cluster
def test_a_bad_partition_is_a_clear_error_naming_the_step(write_config, run_lynx, job_name):
    cfg = slurm_pipeline(write_config, job_name, "print('never')\n", extra="    slurm: {partition: nowhere}\n")
    result = run_lynx("start", "-cf", str(cfg), "-ni", timeout=60)
    assert result.returncode == 1
    assert re.search(r"step 1/1 'job' failed \(sbatch failed: .*[Ii]nvalid partition", result.stderr), \
        result.stderr
    assert "Traceback" not in result.stderr and jobs(job_name) == []


def test_a_percent_sign_in_the_output_directory_is_not_read_as_a_slurm_pattern():
    # %x would become the job name: a directory that does not exist, and the job fails to start.
    step = Step(name="fit", argv=("/bin/true",), line=1, executor="slurm")
    assert command(step, Path("/data/100%x done"))[3] == "--output=/data/100%%x done/fit-%j.out"


@cluster
def test_a_job_that_cannot_start_says_why_it_waits_and_its_timeout_cancels_it(write_config, run_lynx, job_name):
    # More CPUs than the one-node cluster has: Slurm accepts the job and keeps it pending.
    cfg = slurm_pipeline(write_config, job_name, "print('never')\n",
                         extra="    timeout: 4\n    slurm: {cpus_per_task: 64}\n")
    result = run_lynx("start", "-cf", str(cfg), "-ni", timeout=90)
    assert result.returncode == 1
    [job] = job_ids(result.stderr)
    assert re.search(rf"Slurm job {job} is pending: \w+ \(`scontrol show job {job}` says more\)", result.stderr), \
        result.stderr
    assert "failed (timed out after 4 s)" in result.stderr
    assert jobs(job_name) == []


def test_a_file_left_with_the_jobs_output_name_is_not_read_as_its_output(tmp_path, monkeypatch):
    # Job ids repeat when a cluster's state is reset: an old file may carry the new job's name.
    # Slurm empties it when the job starts; until then it is not this job's output.
    from lynx import slurm
    from lynx.output import StepOutput

    path = tmp_path / "fit-7.out"
    path.write_bytes(b"an old job's line\n")
    states = iter([JobState("PENDING", reason="Priority"), JobState("RUNNING"), JobState("COMPLETED")])

    def state(job: str) -> JobState:
        now = next(states)
        if now.state == "RUNNING":
            path.write_bytes(b"this job's line\n")   # as Slurm does when the job starts
        return now

    monkeypatch.setattr(slurm, "state", state)
    monkeypatch.setattr(slurm, "POLL_SECONDS", 0.0)
    monkeypatch.setattr(slurm, "READ_SECONDS", 0.0)
    blocks = []
    tail = slurm._Tail(path)
    try:
        final = slurm.follow("7", tail, StepOutput("fit", None, lambda block, head: blocks.append(head + block)),
                             None)
    finally:
        tail.close()
    assert final.state == "COMPLETED"
    assert [line.split(b" | ", 1)[1] for line in b"".join(blocks).splitlines()] == [b"this job's line"]


@cluster
def test_ctrl_c_while_sbatch_waits_on_the_controller_cancels_the_job_it_queued(write_config, job_name, tmp_path,
                                                                               started):
    # A slow controller: sbatch has queued the job but not yet said its id when Ctrl+C comes.
    slow = tmp_path / "bin" / "sbatch"
    slow.parent.mkdir()
    slow.write_text(f"#!/bin/sh\nout=$({shutil.which('sbatch')} \"$@\")\ntouch {tmp_path}/queued\nsleep 3\n"
                    "echo \"$out\"\n")
    slow.chmod(0o755)
    cfg = slurm_pipeline(write_config, job_name, "import time\ntime.sleep(300)\n")
    proc = subprocess.Popen([sys.executable, "-m", "lynx", "start", "-cf", str(cfg), "-ni"], cwd=tmp_path,
                            env=lynx_env(PATH=f"{slow.parent}{os.pathsep}{os.environ['PATH']}"),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started.add(proc.pid)
    wait_for(lambda: (tmp_path / "queued").exists(), timeout=30)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    [job] = re.findall(r"cancelling Slurm job (\d+)", err)
    assert f"Slurm job {job} ended" in err
    assert jobs(job_name) == []
