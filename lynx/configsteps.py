"""The `configs:` and `steps:` sections: each step's keys validated into the fields of a config.Step."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

from lynx.executables import command_argv, script_argv
from lynx.yamlsafe import (
    Context,
    Entry,
    Map,
    as_map,
    as_text,
    check_keys,
    describe,
    is_null,
    is_number,
    is_seconds,
    is_text,
    join_path,
    line_of,
    shell_words,
    text_items,
    typed,
)

if TYPE_CHECKING:
    from yaml.nodes import Node


_STEP_KEYS = ("script", "command", "arguments", "name", "python", "timeout", "retries", "retry_delay",
              "env", "cwd", "continue_on_failure", "executor", "slurm")
_EXECUTORS = ("local", "slurm")
# `slurm:` keys that become one sbatch option each; extra_args is the way to pass anything else.
SLURM_OPTIONS = ("partition", "time", "cpus_per_task", "mem", "gres", "account", "qos", "job_name")
_SLURM_KEYS = (*SLURM_OPTIONS, "extra_args")
# sbatch options Lynx sets itself to follow the job: passing them again would break that.
_SLURM_RESERVED = ("--wrap", "--output", "--error", "--parsable", "--chdir", "--export", "--wait", "--array",
                   "--input", "--open-mode", "-o", "-e", "-D", "-W", "-a", "-i")

# Scalar step keys: (what is expected, test of the constructed value, conversion).
SECONDS = "a positive number of seconds (at most ten years)"
_SCALAR_OPTIONS: dict[str, tuple[str, Callable[[Any], bool], Callable[[Any], Any]]] = {
    "timeout": (SECONDS, lambda v: is_seconds(v, positive=True), float),
    "retries": ("a whole number >= 0", lambda v: is_number(v) and isinstance(v, int) and v >= 0, int),
    "retry_delay": ("a number of seconds >= 0 (at most ten years)", lambda v: is_seconds(v, positive=False),
                    float),
    "continue_on_failure": ("true or false", lambda v: isinstance(v, bool), bool),
}


class _Draft(NamedTuple):
    """A step before names are settled: explicit names first, automatic ones around them."""

    path: str
    explicit: tuple[str, int] | None  # (name, line) of a `name:` written on the step itself
    auto: str
    fields: dict[str, Any]


# --- configs and steps ---------------------------------------------------------------------------------

def collect_configs(entry: Entry | None, ctx: Context) -> tuple[dict[str, Node], dict[int, str]]:
    """Collect `configs` (the seed's list of one-key mappings, or a plain mapping): name -> step mapping,
    and node id -> name for every node a `<<: *anchor` may point at to mean that config."""
    bodies: dict[str, Node] = {}
    owners: dict[int, str] = {}
    if entry is None or is_null(entry[1], ctx):
        return bodies, owners
    key, node = entry
    if node.id not in ("mapping", "sequence"):
        ctx.fail(key, "configs", f"expected a list of `- name: {{script: ...}}` entries or a mapping of "
                                 f"names, got {describe(node, ctx)}")
    for i, group in enumerate([node] if node.id == "mapping" else node.value):
        if group.id != "mapping":
            ctx.fail(group, f"configs[{i}]", f"expected `name: {{script: ...}}`, got {describe(group, ctx)}")
        for name, (name_node, value) in as_map(group, "configs", ctx).entries.items():
            if name in bodies:
                ctx.fail(name_node, f"configs.{name}", "duplicate config name; rename one")
            bodies[name] = _definition(value, f"configs.{name}", ctx)
            owners.update({id(value): name, id(bodies[name]): name})
    return bodies, owners


def _definition(value: Node, path: str, ctx: Context) -> Node:
    if value.id == "mapping":
        return value
    if value.id == "sequence" and len(value.value) == 1 and value.value[0].id == "mapping":
        return value.value[0]
    ctx.fail(value, path, f"expected a mapping (script:, arguments:, ...) or a list holding one, "
                          f"got {describe(value, ctx)}")


def read_steps(entry: Entry | None, root: Node, bodies: dict[str, Node], owners: dict[int, str], ctx: Context
               ) -> list[dict[str, Any]]:
    """The `steps:` list in order, each step as the keyword arguments of a config.Step."""
    if entry is None:
        ctx.fail(root, "steps", "missing; add a `steps:` list of the scripts to run, in order")
    key, node = entry
    if node.id != "sequence":
        ctx.fail(key, "steps", f"expected a list of steps, got {describe(node, ctx)}")
    if not node.value:
        ctx.fail(key, "steps", "is empty; list at least one step (e.g. `- script: tasks/train.py`)")
    drafts = [_draft(item, f"steps[{i}]", bodies, owners, ctx) for i, item in enumerate(node.value)]
    return [{"name": name, **d.fields} for name, d in zip(_names(drafts, ctx), drafts)]


def _draft(item: Node, path: str, bodies: dict[str, Node], owners: dict[int, str], ctx: Context) -> _Draft:
    """Read one step: a mapping (maybe merging a config) or the name of a config."""
    if item.id == "mapping":
        body = as_map(item, path, ctx)
        config = next((owners[id(n)] for n in body.merged if id(n) in owners), None)
        own_name = "name" in body.own
    elif item.id == "scalar" and isinstance(ctx.scalar(item), str):
        config = _lookup(item, path, bodies, ctx)
        body, own_name = as_map(bodies[config], path, ctx), False
    else:
        ctx.fail(item, path, f"expected a mapping (`script: ...`) or the name of a config, "
                             f"got {describe(item, ctx)}")
    check_keys(body, _STEP_KEYS, path, ctx)
    # A known key with no value means the same as leaving it out.
    body = body._replace(entries={k: e for k, e in body.entries.items() if not is_null(e[1], ctx)})
    fields, stem = _fields(body, item, path, ctx)
    name = typed(body.entries.get("name"), f"{path}.name", ctx, "a name of one line, at most 100 characters, "
                 "without commas (--only separates names with them)", is_step_name)
    explicit = (name, line_of(body.entries["name"][0])) if name and own_name else None
    return _Draft(path, explicit, config or name or stem, fields)


def is_step_name(value: Any) -> bool:
    """Usable in logs, the summary and --only: one printable line, no comma, not blank, not huge."""
    return is_text(value) and value.isprintable() and "," not in value and value.strip() != "" and len(value) <= 100


def _lookup(item: Node, path: str, bodies: dict[str, Node], ctx: Context) -> str:
    name = ctx.scalar(item)
    if name in bodies:
        return name
    import difflib  # only when there is an error to explain

    close = difflib.get_close_matches(name, list(bodies), n=3)
    hint = (f"did you mean {' or '.join(map(repr, close))}?" if close
            else f"known configs: {', '.join(bodies)}" if bodies else "there is no `configs:` section")
    ctx.fail(item, path, f"no config named {name!r}; {hint}")


def _names(drafts: list[_Draft], ctx: Context) -> list[str]:
    """Explicit names must be unique; automatic ones get -2, -3, ... so they never clash."""
    taken: dict[str, _Draft] = {}
    for draft in (d for d in drafts if d.explicit):
        name, line = draft.explicit
        if name in taken:
            first = taken[name]
            ctx.fail(line, f"{draft.path}.name", f"duplicate step name {name!r} (also {first.path}.name at "
                                                 f"line {first.explicit[1]}); names must be unique")
        taken[name] = draft
    names = []
    suffixes: dict[str, int] = {}   # the last suffix each automatic name got: 20,000 `train`s stay linear
    for draft in drafts:
        if draft.explicit:
            name = draft.explicit[0]
        else:
            n = suffixes.get(draft.auto, 1)
            name = draft.auto if n == 1 else f"{draft.auto}-{n}"
            while name in taken:
                n += 1
                name = f"{draft.auto}-{n}"
            suffixes[draft.auto] = n
        taken[name] = draft
        names.append(name)
    return names


# --- step fields ---------------------------------------------------------------------------------------

def _fields(body: Map, item: Node, path: str, ctx: Context) -> tuple[dict[str, Any], str]:
    """Validate a step's keys into Step fields; also return the stem its automatic name falls back to."""
    get = body.entries.get
    arguments = text_items(get("arguments"), f"{path}.arguments", ctx, "a list of strings")
    args = [word for text, node, where in arguments for word in shell_words(text, node, where, ctx)]
    if get("script") and get("command"):
        ctx.fail(get("command")[0], f"{path}.command", "give `script` or `command`, not both")
    if get("python") and not get("script"):
        ctx.fail(get("python")[0], f"{path}.python", "only applies to a .py `script`")
    if get("script"):
        script, argv = script_argv(get("script"), get("python"), args, path, ctx)
        stem = os.path.splitext(os.path.basename(script))[0]
    elif get("command"):
        script, argv = None, command_argv(get("command"), args, f"{path}.command", ctx)
        stem = os.path.basename(argv[0])
    else:
        ctx.fail(item, path, "needs `script:` (a file to run) or `command:` (a program and its arguments)")
    fields = {key: convert(typed(get(key), f"{path}.{key}", ctx, expected, accepts))
              for key, (expected, accepts, convert) in _SCALAR_OPTIONS.items() if get(key)}
    if get("env"):
        fields["env"] = _env(get("env"), f"{path}.env", ctx)
    if get("cwd"):
        fields["cwd"] = _directory(get("cwd"), f"{path}.cwd", ctx)
    fields["executor"] = read_executor(get("executor"), f"{path}.executor", ctx) or ctx.executor
    slurm = read_slurm(get("slurm"), f"{path}.slurm", ctx)   # checked even where unused: typos show
    if fields["executor"] == "slurm":  # the step's own keys win over the top-level ones, key by key
        fields["slurm"] = {**ctx.slurm, **slurm}
    return {"argv": tuple(argv), "line": line_of(item), "script": script, **fields}, stem


def _directory(entry: Entry, path: str, ctx: Context) -> str:
    text = typed(entry, path, ctx, "a directory path", is_text)
    directory = os.path.abspath(os.path.join(ctx.base, os.path.expanduser(text)))
    if not os.path.isdir(directory):
        ctx.fail(entry[0], path, f"directory {directory} not found; create it or fix the path")
    return directory


def _env(entry: Entry, path: str, ctx: Context) -> dict[str, str]:
    key, node = entry
    if node.id != "mapping":
        ctx.fail(key, path, f"expected a mapping of NAME: value, got {describe(node, ctx)}")
    env = {}
    for name, (name_node, value) in as_map(node, path, ctx).entries.items():
        if not name or "=" in name or "\0" in name:
            ctx.fail(name_node, join_path(path, name), "not a valid environment variable name")
        env[name] = as_text(value, join_path(path, name), ctx)
    return env


def read_executor(entry: Entry | None, path: str, ctx: Context) -> str | None:
    """`executor:` ('local' or 'slurm'); None when the key is absent."""
    return typed(entry, path, ctx, "'local' or 'slurm'", lambda v: v in _EXECUTORS)


def read_slurm(entry: Entry | None, path: str, ctx: Context) -> dict[str, Any]:
    """`slurm:` options as text (numbers as written), extra_args as a tuple of words."""
    if entry is None or is_null(entry[1], ctx):
        return {}
    if entry[1].id != "mapping":
        ctx.fail(entry[0], path, f"expected a mapping such as `partition: gpu`, "
                                 f"got {describe(entry[1], ctx)}")
    body = as_map(entry[1], path, ctx)
    check_keys(body, _SLURM_KEYS, path, ctx)
    options: dict[str, Any] = {}
    for key, (key_node, value) in body.entries.items():
        where = f"{path}.{key}"
        if is_null(value, ctx):
            continue
        if key == "extra_args":
            options[key] = _extra_args(body.entries[key], where, ctx)
        elif key == "cpus_per_task":
            options[key] = str(typed(body.entries[key], where, ctx, "a whole number >= 1",
                                     lambda v: is_number(v) and isinstance(v, int) and v >= 1))
        else:
            options[key] = typed(body.entries[key], where, ctx, "a non-empty string or number",
                                 lambda v: is_text(v) or is_number(v)) and value.value
    return options


def _extra_args(entry: Entry, path: str, ctx: Context) -> tuple[str, ...]:
    """Each element split like `arguments`; the options Lynx sets itself are refused."""
    words = [(word, node, where) for text, node, where in text_items(entry, path, ctx, "a list of strings")
             for word in shell_words(text, node, where, ctx)]
    for word, node, where in words:
        option = word.split("=", 1)[0]
        # sbatch takes any unambiguous start of a long option: --err is --error.
        abbreviated = len(option) > 2 and word.startswith("--") and any(
            reserved.startswith(option) for reserved in _SLURM_RESERVED)
        if abbreviated or (option[:2] in _SLURM_RESERVED and not word.startswith("--")):
            ctx.fail(node, where, f"{option} is set by Lynx itself (it follows the job's output and exit "
                                  "status); remove it")
    return tuple(word for word, _, _ in words)
