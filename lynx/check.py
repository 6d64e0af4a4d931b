"""`lynx check`: validate the config and show what would run and when, running nothing."""

from __future__ import annotations

import json
import shlex
from datetime import datetime, timezone

from lynx.config import Config, Step, load
from lynx.errors import UsageError


def check(args: dict[str, object]) -> int:
    """Print the resolved steps and the next fire times (or JSON); 0 valid, 2 invalid."""
    from lynx.options import whole_number

    count = whole_number(args["--next"], "--next")
    after = parse_instant(args["--after"]) if args["--after"] is not None else datetime.now(timezone.utc)
    config = load(str(args["--config-file"]))
    schedule = config.schedule()
    fires = fire_times(schedule, after, count) if schedule else []
    if args["--json"]:
        print(json.dumps(as_json(config, schedule, fires), indent=2))
    else:
        print(as_text(config, schedule, fires))
    return 0


def parse_instant(text: object) -> datetime:
    """An ISO-8601 instant with a UTC offset ('Z' allowed)."""
    value = str(text).strip()
    try:
        instant = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value)
    except ValueError:
        instant = None
    if instant is None or instant.tzinfo is None:
        raise UsageError(f"--after: {value!r} is not an ISO-8601 instant with an offset "
                         "(e.g. 2026-03-29T00:00:00+01:00)")
    return instant


def fire_times(schedule, after: datetime, count: int) -> list[datetime]:
    """The first `count` fire times at or after `after` (fewer if the schedule ends)."""
    fires: list[datetime] = []
    nxt = schedule.next_fire(after, inclusive=True)
    while nxt is not None and len(fires) < count:
        fires.append(nxt)
        nxt = schedule.next_fire(nxt, inclusive=False)
    return fires


def step_fields(step: Step, config: Config | None = None) -> dict[str, object]:
    """What a step will run, as plain data (with the sbatch command line of a Slurm step)."""
    fields: dict[str, object] = {"name": step.name, "line": step.line, "argv": list(step.argv),
                                 "cwd": str(step.cwd) if step.cwd else None}
    for key in ("timeout", "retries", "retry_delay", "continue_on_failure", "executor"):
        fields[key] = getattr(step, key)
    fields["env"] = dict(step.env)
    fields["sbatch"] = sbatch_command(step, config) if step.executor == "slurm" else None
    return fields


def sbatch_command(step: Step, config: Config | None) -> list[str]:
    """The sbatch command line the step is submitted with."""
    from lynx import slurm

    return slurm.command(step, slurm.output_dir(config.path if config else None))


def as_json(config: Config, schedule, fires: list[datetime]) -> dict[str, object]:
    return {
        "config": str(config.path),
        "steps": [step_fields(step, config) for step in config.steps],
        "runs_once": schedule is None,
        "timezone": schedule.timezone_name if schedule else None,
        "expression": schedule.expression if schedule else None,
        "next_fire_times": [fire.isoformat() for fire in fires],
    }


def as_text(config: Config, schedule, fires: list[datetime]) -> str:
    count = len(config.steps)
    lines = [f"config: {config.path} is valid ({count} step{'' if count == 1 else 's'})", "", "steps:"]
    width = max(len(step.name) for step in config.steps)
    for number, step in enumerate(config.steps, 1):
        lines.append(f"  {number}. {step.name:<{width}}  {shlex.join(step.argv)}")
        lines.extend(f"     {extra}" for extra in _step_extras(step))
        if step.executor == "slurm":
            lines.append(f"     runs on Slurm: {shlex.join(sbatch_command(step, config))}")
    lines.append("")
    if schedule is None:
        lines.append("schedule: none (no cron section): the pipeline runs once")
        return "\n".join(lines)
    lines.append(f"schedule: cron '{schedule.expression}' in {schedule.timezone_name}"
                 + (f", jitter up to {schedule.jitter:g} s" if schedule.jitter else ""))
    lines.append("  (followed with --non-interactive or --background; interactive `start` runs once)")
    if not fires:
        lines.append("next fire times: none (the schedule never fires again)")
    else:
        lines.append(f"next {len(fires)} fire times:")
        lines.extend(f"  {_fmt_fire(schedule, fire)}" for fire in fires)
    return "\n".join(lines)


def _step_extras(step: Step) -> list[str]:
    extras = []
    if step.cwd:
        extras.append(f"cwd: {step.cwd}")
    if step.env:
        extras.append("env: " + " ".join(f"{k}={shlex.quote(v)}" for k, v in step.env.items()))
    if step.timeout:
        extras.append(f"timeout: {step.timeout:g} s")
    if step.retries:
        extras.append(f"retries: {step.retries} (delay {step.retry_delay:g} s)")
    if step.continue_on_failure:
        extras.append("continue_on_failure: the pipeline goes on if this step fails")
    return extras


def _fmt_fire(schedule, fire: datetime) -> str:
    text = f"{fire.strftime('%Y-%m-%d %H:%M:%S %a')} {fire.strftime('%z')[:3]}:{fire.strftime('%z')[3:]}"
    mark: str | None = "  <- near a daylight-saving change" if schedule.near_dst_change(fire) else None
    return text + (mark or "")
