"""Load a pipeline config: safe YAML with line numbers, validated into immutable records.

The reading itself lives below this module: yamlsafe (nodes, merges, typed scalars, errors with lines),
configsteps (`configs:` and `steps:`) and executables (what a step or hook runs).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

from lynx import configcache
from lynx.configsteps import SECONDS, SLURM_OPTIONS, collect_configs, read_executor, read_slurm, read_steps
from lynx.errors import ConfigError
from lynx.executables import command_argv
from lynx.yamlsafe import (
    MAX_EXPANDED,
    Context,
    Entry,
    as_map,
    check_keys,
    check_nodes,
    compose,
    describe,
    is_null,
    is_seconds,
    line_of,
    read_file,
    typed,
)

if TYPE_CHECKING:
    from yaml.nodes import Node

__all__ = ["SLURM_OPTIONS", "Config", "CronSection", "Hook", "Step", "load"]


# Records are NamedTuples, not dataclasses: importing dataclasses (and inspect, ast, dis with it)
# and building each class cost `lynx start` over 10 ms, a fifth of its start-up.
NOTHING: Mapping[str, Any] = MappingProxyType({})   # the empty default of mapping fields


class Step(NamedTuple):
    """One step, resolved: exactly what will run."""

    name: str
    argv: tuple[str, ...]          # the full command: interpreter, script, arguments
    line: int                      # line of the step in the config file
    script: str | None = None      # absolute path of the script, if the step has one
    cwd: str | None = None         # absolute; None: the directory Lynx was started in
    env: Mapping[str, str] = NOTHING
    timeout: float | None = None
    retries: int = 0
    retry_delay: float = 0.0
    continue_on_failure: bool = False
    executor: str = "local"        # "local" or "slurm"
    slurm: Mapping[str, Any] = NOTHING  # sbatch options (text), extra_args (a tuple)


class CronSection(NamedTuple):
    """The raw `cron` mapping with the line of each key, validated by cron.build."""

    values: Mapping[str, Any]
    lines: Mapping[str, int]       # line of each key
    line: int                      # line of the `cron:` key itself
    source: str                    # the config path as the user named it

    def where(self, key: str) -> str:
        """'FILE:LINE: cron.KEY', the prefix of every error about that key."""
        return f"{self.source}:{self.lines.get(key, self.line)}: cron.{key}"


class Hook(NamedTuple):
    """A command run when a run starts, succeeds or fails; it never changes the run's result."""

    event: str                     # on_start, on_success or on_failure
    argv: tuple[str, ...]
    line: int
    timeout: float = 60.0


class Config(NamedTuple):
    """A validated pipeline: its steps in order and its raw cron section."""

    path: str                      # absolute path of the config file (a str: `lynx start` skips pathlib)
    steps: tuple[Step, ...]
    cron: CronSection | None = None
    hooks: Mapping[str, Hook] = NOTHING  # event -> hook

    def schedule(self):
        """The cron schedule (validated now, so errors come before anything runs), or None.
        Here, not in launch: `lynx check` needs it without what a run imports (~8 ms)."""
        if self.cron is None:
            return None
        from lynx.cron import build  # croniter: only for a config with a `cron` section
        return build(self.cron.values, self.cron.where)


_TOP_KEYS = ("steps", "configs", "cron", "hooks", "executor", "slurm")
_HOOK_EVENTS = ("on_start", "on_success", "on_failure")


def load(path: str | os.PathLike) -> Config:
    """Read and validate the config at `path`; raise ConfigError naming file, line and key."""
    try:
        return _load(path)
    except RecursionError:   # lists in lists hundreds deep: no line to point at that would help
        raise ConfigError(f"{path}: nested too deeply to read (lists or mappings hundreds of levels "
                          "inside each other)") from None


def _load(path: str | os.PathLike) -> Config:
    source = str(path)
    file = os.path.abspath(path)
    text = read_file(file, source)
    cached = configcache.read(file, text)
    if cached is not None:
        try:
            return _validate(cached, file, source, text)[0]
        except (ConfigError, RecursionError):
            # Most likely the same error the text itself gives (a script since deleted), said
            # below; if not, the kept form was wrong, and is written again from the text.
            pass
    root = compose(text, source)
    config, ctx = _validate(root, file, source, text)
    configcache.write(file, text, root, ctx.scalars)   # its YAML passed every check made of YAML alone
    return config


def _validate(root: Node | None, file: str, source: str, text: str) -> tuple[Config, Context]:
    """The Config that the composed `root` describes, and the context that read it."""
    if root is None:
        raise ConfigError(f"{source}: the config file is empty; it needs a `steps:` list of scripts to run")
    ctx = Context(source, os.path.dirname(file), os.getcwd(), text)
    check_nodes(root, "", ctx, set(), set())
    if root.id != "mapping":
        ctx.fail(root, "", f"expected a mapping with `steps:` (and optional `configs:`, `cron:`), "
                           f"got {describe(root, ctx)}")
    top = as_map(root, "", ctx)
    check_keys(top, _TOP_KEYS, "", ctx)
    ctx.executor = read_executor(top.entries.get("executor"), "executor", ctx) or "local"
    ctx.slurm = read_slurm(top.entries.get("slurm"), "slurm", ctx)
    bodies, owners = collect_configs(top.entries.get("configs"), ctx)
    steps = read_steps(top.entries.get("steps"), root, bodies, owners, ctx)
    config = Config(path=file, steps=tuple(Step(**fields) for fields in steps),
                    cron=_cron(top.entries.get("cron"), ctx), hooks=_hooks(top.entries.get("hooks"), ctx))
    return config, ctx


# --- cron and hooks ------------------------------------------------------------------------------------

def _cron(entry: Entry | None, ctx: Context) -> CronSection | None:
    """Keep `cron` raw with each key's line: the cron module validates the values themselves."""
    if entry is None or is_null(entry[1], ctx):
        return None
    key, node = entry
    if node.id != "mapping":
        ctx.fail(key, "cron", f"expected a mapping such as `minute: '*/10'`, got {describe(node, ctx)}")
    body = as_map(node, "cron", ctx)
    values = {name: _plain(value, ctx) for name, (_, value) in body.entries.items()}
    lines = {name: line_of(name_node) for name, (name_node, _) in body.entries.items()}
    return CronSection(values=values, lines=lines, line=line_of(key), source=ctx.source)


def _hooks(entry: Entry | None, ctx: Context) -> dict[str, Hook]:
    """`hooks:` maps an event to a command (string or list) or to `{command: ..., timeout: ...}`."""
    if entry is None or is_null(entry[1], ctx):
        return {}
    if entry[1].id != "mapping":
        ctx.fail(entry[0], "hooks", f"expected a mapping such as `on_failure: notify-send failed`, "
                                    f"got {describe(entry[1], ctx)}")
    body = as_map(entry[1], "hooks", ctx)
    check_keys(body, _HOOK_EVENTS, "hooks", ctx)
    return {event: _hook(event, hook, ctx) for event, hook in body.entries.items()
            if not is_null(hook[1], ctx)}


def _hook(event: str, entry: Entry, ctx: Context) -> Hook:
    path = f"hooks.{event}"
    timeout = None
    if entry[1].id == "mapping":
        body = as_map(entry[1], path, ctx)
        check_keys(body, ("command", "timeout"), path, ctx)
        timeout = typed(body.entries.get("timeout"), f"{path}.timeout", ctx, SECONDS,
                        lambda v: is_seconds(v, positive=True))
        if "command" not in body.entries:
            ctx.fail(entry[0], path, "needs `command:` (a program and its arguments)")
        entry, path = body.entries["command"], f"{path}.command"
    argv = command_argv(entry, [], path, ctx)
    return Hook(event, tuple(argv), line_of(entry[0]), float(timeout) if timeout else 60.0)


def _plain(node: Node, ctx: Context) -> Any:
    ctx.expanded += 1
    if ctx.expanded > MAX_EXPANDED:
        ctx.fail(node, "cron", f"expands into more than {MAX_EXPANDED} values (aliases of aliases?)")
    if node.id == "scalar":
        value = ctx.scalar(node)
        # YAML 1.1 reads `minute: 010` as octal 8 and `1:30` as 90: a cron value is taken as written.
        if type(value) is int and node.value != str(value):
            return node.value
        return value
    if node.id == "sequence":
        return [_plain(item, ctx) for item in node.value]
    return {name: _plain(value, ctx) for name, (_, value) in as_map(node, "cron", ctx).entries.items()}
