"""Load a pipeline config: safe YAML with line numbers, validated into frozen dataclasses."""

from __future__ import annotations

import datetime
import difflib
import math
import os
import shlex
import shutil
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, NoReturn

from lynx.errors import ConfigError

if TYPE_CHECKING:
    from yaml.nodes import Node


@dataclass(frozen=True)
class Step:
    """One step, resolved: exactly what will run."""

    name: str
    argv: tuple[str, ...]          # the full command: interpreter, script, arguments
    line: int                      # line of the step in the config file
    script: Path | None = None     # absolute path of the script, if the step has one
    cwd: Path | None = None        # None: the directory Lynx was started in
    env: Mapping[str, str] = field(default_factory=dict)
    timeout: float | None = None
    retries: int = 0
    retry_delay: float = 0.0
    continue_on_failure: bool = False
    executor: str = "local"        # "local" or "slurm"
    slurm: Mapping[str, Any] = field(default_factory=dict)  # sbatch options (text), extra_args (a tuple)


@dataclass(frozen=True)
class CronSection:
    """The raw `cron` mapping with the line of each key, validated by cron.build."""

    values: Mapping[str, Any]
    lines: Mapping[str, int]       # line of each key
    line: int                      # line of the `cron:` key itself
    source: str                    # the config path as the user named it

    def where(self, key: str) -> str:
        """'FILE:LINE: cron.KEY', the prefix of every error about that key."""
        return f"{self.source}:{self.lines.get(key, self.line)}: cron.{key}"


@dataclass(frozen=True)
class Hook:
    """A command run when a run starts, succeeds or fails; it never changes the run's result."""

    event: str                     # on_start, on_success or on_failure
    argv: tuple[str, ...]
    line: int
    timeout: float = 60.0


@dataclass(frozen=True)
class Config:
    """A validated pipeline: its steps in order and its raw cron section."""

    path: Path                     # absolute path of the config file
    steps: tuple[Step, ...]
    cron: CronSection | None = None
    hooks: Mapping[str, Hook] = field(default_factory=dict)  # event -> hook


_YAML = "tag:yaml.org,2002:"
_MERGE = _YAML + "merge"
_VALUE = _YAML + "value"  # PyYAML tags a lone `=` so but cannot construct it; Lynx reads it as text
_TOP_KEYS = ("steps", "configs", "cron", "hooks", "executor", "slurm")
_HOOK_EVENTS = ("on_start", "on_success", "on_failure")
_STEP_KEYS = ("script", "command", "arguments", "name", "python", "timeout", "retries", "retry_delay",
              "env", "cwd", "continue_on_failure", "executor", "slurm")
_EXECUTORS = ("local", "slurm")
# `slurm:` keys that become one sbatch option each; extra_args is the way to pass anything else.
SLURM_OPTIONS = ("partition", "time", "cpus_per_task", "mem", "gres", "account", "qos", "job_name")
_SLURM_KEYS = (*SLURM_OPTIONS, "extra_args")
# sbatch options Lynx sets itself to follow the job: passing them again would break that.
_SLURM_RESERVED = ("--wrap", "--output", "--error", "--parsable", "--chdir", "--export", "--wait", "--array",
                   "--input", "--open-mode", "-o", "-e", "-D", "-W", "-a", "-i")
_Entry = tuple["Node", "Node"]  # (key node, value node)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# Scalar step keys: (what is expected, test of the constructed value, conversion).
_SCALAR_OPTIONS: dict[str, tuple[str, Callable[[Any], bool], Callable[[Any], Any]]] = {
    "timeout": ("a positive number of seconds", lambda v: _is_number(v) and v > 0, float),
    "retries": ("a whole number >= 0", lambda v: _is_number(v) and isinstance(v, int) and v >= 0, int),
    "retry_delay": ("a number of seconds >= 0", lambda v: _is_number(v) and v >= 0, float),
    "continue_on_failure": ("true or false", lambda v: isinstance(v, bool), bool),
}


@dataclass
class _Map:
    """A mapping node with its `<<` merges applied."""

    entries: dict[str, _Entry]  # key text -> (key node, value node)
    own: tuple[str, ...]        # keys written in the mapping itself, not merged in
    merged: list[Node]          # the nodes merged in, in precedence order


@dataclass
class _Draft:
    """A step before names are settled: explicit names first, automatic ones around them."""

    path: str
    explicit: tuple[str, int] | None  # (name, line) of a `name:` written on the step itself
    auto: str
    fields: dict[str, Any]


@dataclass
class _Context:
    """What every check needs: where the file is, and the scalars already built safely."""

    source: str
    base: Path                  # the config file's directory
    cwd: Path
    scalars: dict[int, Any] = field(default_factory=dict)
    executor: str = "local"     # the top-level default for steps
    slurm: dict[str, Any] = field(default_factory=dict)  # the top-level `slurm:` defaults

    def fail(self, at: Node | int, path: str, problem: str) -> NoReturn:
        """Raise the one-line ConfigError 'FILE:LINE: PATH: PROBLEM'."""
        line = at if isinstance(at, int) else _line(at)
        raise ConfigError(_one_line(": ".join(part for part in (f"{self.source}:{line}", path, problem) if part)))

    def scalar(self, node: Node) -> Any:
        return self.scalars[id(node)]


def load(path: str | Path) -> Config:
    """Read and validate the config at `path`; raise ConfigError naming file, line and key."""
    source = str(path)
    file = Path(os.path.abspath(path))
    root = _compose(_read(file, source), source)
    if root is None:
        raise ConfigError(f"{source}: the config file is empty; it needs a `steps:` list of scripts to run")
    ctx = _Context(source, file.parent, Path.cwd())
    _check_nodes(root, "", ctx, set(), set())
    if root.id != "mapping":
        ctx.fail(root, "", f"expected a mapping with `steps:` (and optional `configs:`, `cron:`), "
                           f"got {_describe(root, ctx)}")
    top = _map(root, "", ctx)
    _check_keys(top, _TOP_KEYS, "", ctx)
    ctx.executor = _executor(top.entries.get("executor"), "executor", ctx) or "local"
    ctx.slurm = _slurm(top.entries.get("slurm"), "slurm", ctx)
    bodies, owners = _configs(top.entries.get("configs"), ctx)
    steps = _steps(top.entries.get("steps"), root, bodies, owners, ctx)
    return Config(path=file, steps=steps, cron=_cron(top.entries.get("cron"), ctx),
                  hooks=_hooks(top.entries.get("hooks"), ctx))


# --- reading -------------------------------------------------------------------------------------------

def _read(file: Path, source: str) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise ConfigError(f"{source}: config file not found (give another with --config-file)") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"{source}: is a directory, not a config file (give a YAML file with "
                          "--config-file)") from exc
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read the config file: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not UTF-8 text (bad byte at offset {exc.start}); save it as UTF-8") from exc


def _compose(text: str, source: str) -> Node | None:
    """Build the node graph only: nothing is constructed yet, so no tag can run code."""
    import yaml  # here, so that `lynx stop` and `lynx --help` never pay for it

    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "unreadable"
        if exc.problem and exc.context:  # PyYAML's own order: "while parsing X at line N, expected Y"
            at = f" at line {exc.context_mark.line + 1}" if exc.context_mark else ""
            problem = f"{exc.context}{at}, {exc.problem}"
        if "\\t" in problem:
            problem += "; YAML indents with spaces, not tabs"
        elif "<block end>" in problem or "mapping values are not allowed" in problem:
            problem += "; check the indentation"
        where = f"{source}:{mark.line + 1}" if mark else source
        raise ConfigError(_one_line(f"{where}: not valid YAML: {problem}")) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(_one_line(f"{source}: not valid YAML: {exc}")) from exc


def _check_nodes(node: Node, path: str, ctx: _Context, done: set[int], stack: set[int]) -> None:
    """Refuse unsafe tags and self-containing anchors, then build each scalar with SafeConstructor."""
    if id(node) in stack:
        ctx.fail(node, path, "an alias points at a node that contains it; YAML here cannot be recursive")
    if id(node) in done:
        return
    done.add(id(node))
    _check_tag(node, path, ctx)
    if node.id == "scalar":
        ctx.scalars[id(node)] = _construct(node, path, ctx)
        return
    stack.add(id(node))
    for child_path, child in _children(node, path):
        _check_nodes(child, child_path, ctx, done, stack)
    stack.discard(id(node))


def _check_tag(node: Node, path: str, ctx: _Context) -> None:
    from yaml.constructor import SafeConstructor

    if node.tag in (_MERGE, _VALUE) or node.tag in SafeConstructor.yaml_constructors:
        return
    tag = node.tag.replace(_YAML, "!!", 1)
    if tag.startswith("!!python/"):
        ctx.fail(node, path, f"refused the tag {tag}: Lynx reads YAML safely and never builds Python objects")
    ctx.fail(node, path, f"unknown tag {tag}; remove it (Lynx reads plain YAML)")


def _construct(node: Node, path: str, ctx: _Context) -> Any:
    from yaml import YAMLError
    from yaml.constructor import SafeConstructor

    if node.tag in (_MERGE, _VALUE):
        return node.value
    try:
        return SafeConstructor().construct_object(node)
    # SafeConstructor raises assorted built-in errors for values that defy their tag (`!!int many`).
    except (YAMLError, ValueError, TypeError, KeyError, AttributeError) as exc:
        ctx.fail(node, path, f"cannot read {node.value!r} as {node.tag.replace(_YAML, '!!', 1)} ({exc})")


def _children(node: Node, path: str) -> Iterator[tuple[str, Node]]:
    if node.id == "sequence":
        yield from ((f"{path}[{i}]", item) for i, item in enumerate(node.value))
        return
    for key, value in node.value:
        yield path, key
        yield _join(path, key.value if key.id == "scalar" else "?"), value


# --- mappings, merges and keys ---------------------------------------------------------------------------

def _map(node: Node, path: str, ctx: _Context) -> _Map:
    """Apply `<<` the YAML way: own keys win, then earlier merged mappings over later ones."""
    entries: dict[str, _Entry] = {}
    merged: list[Node] = []
    for key, value in node.value:
        if key.tag == _MERGE:
            merged.extend(_merge_sources(value, _join(path, "<<"), ctx))
        elif key.id != "scalar":
            ctx.fail(key, path, f"keys must be plain text, got {_describe(key, ctx)}")
        elif key.value in entries:
            first = _line(entries[key.value][0])
            ctx.fail(key, _join(path, key.value), f"duplicate key (first at line {first}); keep one")
        else:
            entries[key.value] = (key, value)
    own = tuple(entries)
    for source in (node for node in merged if node.id == "mapping"):
        for text, entry in _map(source, path, ctx).entries.items():
            entries.setdefault(text, entry)
    return _Map(entries, own, merged)


def _merge_sources(value: Node, path: str, ctx: _Context) -> list[Node]:
    if value.id == "mapping":
        return [value]
    if value.id == "sequence" and all(item.id == "mapping" for item in value.value):
        return [value, *value.value]  # the list itself too: a config anchored as a list is found by it
    ctx.fail(value, path, f"`<<` merges a mapping or a list of mappings, got {_describe(value, ctx)}")


def _check_keys(mapping: _Map, known: tuple[str, ...], path: str, ctx: _Context) -> None:
    for text, (key, _) in mapping.entries.items():
        if text not in known:
            close = difflib.get_close_matches(text, known, n=1)
            hint = f"did you mean {close[0]!r}?" if close else "valid keys: " + ", ".join(known)
            ctx.fail(key, _join(path, text), f"unknown key; {hint}")


# --- configs and steps ---------------------------------------------------------------------------------

def _configs(entry: _Entry | None, ctx: _Context) -> tuple[dict[str, Node], dict[int, str]]:
    """Collect `configs` (the seed's list of one-key mappings, or a plain mapping): name -> step mapping,
    and node id -> name for every node a `<<: *anchor` may point at to mean that config."""
    bodies: dict[str, Node] = {}
    owners: dict[int, str] = {}
    if entry is None or _is_null(entry[1], ctx):
        return bodies, owners
    key, node = entry
    if node.id not in ("mapping", "sequence"):
        ctx.fail(key, "configs", f"expected a list of `- name: {{script: ...}}` entries or a mapping of "
                                 f"names, got {_describe(node, ctx)}")
    for i, group in enumerate([node] if node.id == "mapping" else node.value):
        if group.id != "mapping":
            ctx.fail(group, f"configs[{i}]", f"expected `name: {{script: ...}}`, got {_describe(group, ctx)}")
        for name, (name_node, value) in _map(group, "configs", ctx).entries.items():
            if name in bodies:
                ctx.fail(name_node, f"configs.{name}", "duplicate config name; rename one")
            bodies[name] = _definition(value, f"configs.{name}", ctx)
            owners.update({id(value): name, id(bodies[name]): name})
    return bodies, owners


def _definition(value: Node, path: str, ctx: _Context) -> Node:
    if value.id == "mapping":
        return value
    if value.id == "sequence" and len(value.value) == 1 and value.value[0].id == "mapping":
        return value.value[0]
    ctx.fail(value, path, f"expected a mapping (script:, arguments:, ...) or a list holding one, "
                          f"got {_describe(value, ctx)}")


def _steps(entry: _Entry | None, root: Node, bodies: dict[str, Node], owners: dict[int, str], ctx: _Context
           ) -> tuple[Step, ...]:
    if entry is None:
        ctx.fail(root, "steps", "missing; add a `steps:` list of the scripts to run, in order")
    key, node = entry
    if node.id != "sequence":
        ctx.fail(key, "steps", f"expected a list of steps, got {_describe(node, ctx)}")
    if not node.value:
        ctx.fail(key, "steps", "is empty; list at least one step (e.g. `- script: tasks/train.py`)")
    drafts = [_draft(item, f"steps[{i}]", bodies, owners, ctx) for i, item in enumerate(node.value)]
    return tuple(Step(name=name, **d.fields) for name, d in zip(_names(drafts, ctx), drafts))


def _draft(item: Node, path: str, bodies: dict[str, Node], owners: dict[int, str], ctx: _Context) -> _Draft:
    """Read one step: a mapping (maybe merging a config) or the name of a config."""
    if item.id == "mapping":
        body = _map(item, path, ctx)
        config = next((owners[id(n)] for n in body.merged if id(n) in owners), None)
        own_name = "name" in body.own
    elif item.id == "scalar" and isinstance(ctx.scalar(item), str):
        config = _lookup(item, path, bodies, ctx)
        body, own_name = _map(bodies[config], path, ctx), False
    else:
        ctx.fail(item, path, f"expected a mapping (`script: ...`) or the name of a config, "
                             f"got {_describe(item, ctx)}")
    fields, stem = _fields(body, item, path, ctx)
    name = _typed(body.entries.get("name"), f"{path}.name", ctx, "a non-empty name", _is_text)
    explicit = (name, _line(body.entries["name"][0])) if name and own_name else None
    return _Draft(path, explicit, config or name or stem, fields)


def _lookup(item: Node, path: str, bodies: dict[str, Node], ctx: _Context) -> str:
    name = ctx.scalar(item)
    if name in bodies:
        return name
    close = difflib.get_close_matches(name, list(bodies), n=3)
    hint = (f"did you mean {' or '.join(map(repr, close))}?" if close
            else f"known configs: {', '.join(bodies)}" if bodies else "there is no `configs:` section")
    ctx.fail(item, path, f"no config named {name!r}; {hint}")


def _names(drafts: list[_Draft], ctx: _Context) -> list[str]:
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
    for draft in drafts:
        name, n = draft.explicit[0] if draft.explicit else draft.auto, 1
        while not draft.explicit and name in taken:
            n += 1
            name = f"{draft.auto}-{n}"
        taken[name] = draft
        names.append(name)
    return names


# --- step fields ---------------------------------------------------------------------------------------

def _fields(body: _Map, item: Node, path: str, ctx: _Context) -> tuple[dict[str, Any], str]:
    """Validate a step's keys into Step fields; also return the stem its automatic name falls back to."""
    _check_keys(body, _STEP_KEYS, path, ctx)
    # A known key with no value means the same as leaving it out.
    body.entries = {k: e for k, e in body.entries.items() if not _is_null(e[1], ctx)}
    get = body.entries.get
    args = [word for text, node, where in _items(get("arguments"), f"{path}.arguments", ctx, "a list of strings")
            for word in _split(text, node, where, ctx)]
    if get("script") and get("command"):
        ctx.fail(get("command")[0], f"{path}.command", "give `script` or `command`, not both")
    if get("python") and not get("script"):
        ctx.fail(get("python")[0], f"{path}.python", "only applies to a .py `script`")
    if get("script"):
        script, argv = _script_argv(get("script"), get("python"), args, path, ctx)
        stem = script.stem
    elif get("command"):
        script, argv = None, _command_argv(get("command"), args, f"{path}.command", ctx)
        stem = os.path.basename(argv[0])
    else:
        ctx.fail(item, path, "needs `script:` (a file to run) or `command:` (a program and its arguments)")
    fields = {key: convert(_typed(get(key), f"{path}.{key}", ctx, expected, accepts))
              for key, (expected, accepts, convert) in _SCALAR_OPTIONS.items() if get(key)}
    if get("env"):
        fields["env"] = _env(get("env"), f"{path}.env", ctx)
    if get("cwd"):
        fields["cwd"] = _directory(get("cwd"), f"{path}.cwd", ctx)
    fields["executor"] = _executor(get("executor"), f"{path}.executor", ctx) or ctx.executor
    if fields["executor"] == "slurm":  # the step's own keys win over the top-level ones, key by key
        fields["slurm"] = {**ctx.slurm, **_slurm(get("slurm"), f"{path}.slurm", ctx)}
    return {"argv": tuple(argv), "line": _line(item), "script": script, **fields}, stem


def _script_argv(entry: _Entry, python: _Entry | None, args: list[str], path: str, ctx: _Context
                 ) -> tuple[Path, list[str]]:
    where = f"{path}.script"
    script = _find(_typed(entry, where, ctx, "a path to a script", _is_text), entry[0], where, ctx)
    if script.suffix.lower() == ".py":
        interpreter = sys.executable
        if python:
            text = _typed(python, f"{path}.python", ctx, "the path or name of a Python interpreter", _is_text)
            interpreter = _executable(text, python[0], f"{path}.python", ctx, "interpreter")
        return script, [interpreter, str(script), *args]
    if python:
        ctx.fail(python[0], f"{path}.python", f"only applies to a .py script, and {script.name} is not one")
    _require_executable(script, entry[0], where, ctx)
    return script, [str(script), *args]


def _command_argv(entry: _Entry, args: list[str], path: str, ctx: _Context) -> list[str]:
    key, node = entry
    if node.id == "scalar":  # one string: split like a shell would, without a shell
        words = _split(_text(node, path, ctx), node, path, ctx)
    else:  # a list: each element is one argv entry already
        words = [text for text, _, _ in _items(entry, path, ctx, "a list of words or a string")]
    if not words:
        ctx.fail(key, path, "is empty; name the program to run")
    return [_executable(words[0], key, path, ctx, "program"), *words[1:], *args]


def _executable(word: str, key: Node, path: str, ctx: _Context, what: str) -> str:
    """A word with a slash is a path, found like a script; a bare word is looked up on PATH."""
    if "/" in word or os.sep in word:
        found = _find(word, key, path, ctx)
        _require_executable(found, key, path, ctx)
        return str(found)
    on_path = shutil.which(word)
    if not on_path:
        ctx.fail(key, path, f"{what} {word!r} not found on PATH; install it or give its full path")
    return os.path.abspath(on_path)


def _find(text: str, key: Node, path: str, ctx: _Context) -> Path:
    """Resolve a relative path against the config's directory, then the current one (DECISIONS 7)."""
    given = Path(os.path.expanduser(text))
    tried = [given] if given.is_absolute() else [ctx.base / given, ctx.cwd / given]
    tried = list(dict.fromkeys(Path(os.path.abspath(p)) for p in tried))
    for candidate in tried:
        if candidate.is_file():
            return candidate
    places = " and ".join(str(p) for p in tried)
    ctx.fail(key, path, f"file {text!r} not found (tried {places}); fix the path or make it absolute")


def _require_executable(file: Path, key: Node, path: str, ctx: _Context) -> None:
    if not os.access(file, os.X_OK):
        ctx.fail(key, path, f"{file} is not executable; run `chmod +x {file}` or use `command:` "
                            "to name the program that runs it")


def _directory(entry: _Entry, path: str, ctx: _Context) -> Path:
    text = _typed(entry, path, ctx, "a directory path", _is_text)
    directory = Path(os.path.abspath(ctx.base / os.path.expanduser(text)))
    if not directory.is_dir():
        ctx.fail(entry[0], path, f"directory {directory} not found; create it or fix the path")
    return directory


def _env(entry: _Entry, path: str, ctx: _Context) -> dict[str, str]:
    key, node = entry
    if node.id != "mapping":
        ctx.fail(key, path, f"expected a mapping of NAME: value, got {_describe(node, ctx)}")
    env = {}
    for name, (name_node, value) in _map(node, path, ctx).entries.items():
        if not name or "=" in name or "\0" in name:
            ctx.fail(name_node, _join(path, name), "not a valid environment variable name")
        env[name] = _text(value, _join(path, name), ctx)
    return env


def _executor(entry: _Entry | None, path: str, ctx: _Context) -> str | None:
    return _typed(entry, path, ctx, "'local' or 'slurm'", lambda v: v in _EXECUTORS)


def _slurm(entry: _Entry | None, path: str, ctx: _Context) -> dict[str, Any]:
    """`slurm:` options as text (numbers as written), extra_args as a tuple of words."""
    if entry is None or _is_null(entry[1], ctx):
        return {}
    if entry[1].id != "mapping":
        ctx.fail(entry[0], path, f"expected a mapping such as `partition: gpu`, got {_describe(entry[1], ctx)}")
    body = _map(entry[1], path, ctx)
    _check_keys(body, _SLURM_KEYS, path, ctx)
    options: dict[str, Any] = {}
    for key, (key_node, value) in body.entries.items():
        where = f"{path}.{key}"
        if _is_null(value, ctx):
            continue
        if key == "extra_args":
            options[key] = _extra_args(body.entries[key], where, ctx)
        elif key == "cpus_per_task":
            options[key] = str(_typed(body.entries[key], where, ctx, "a whole number >= 1",
                                      lambda v: _is_number(v) and isinstance(v, int) and v >= 1))
        else:
            options[key] = _typed(body.entries[key], where, ctx, "a non-empty string or number",
                                  lambda v: _is_text(v) or _is_number(v)) and value.value
    return options


def _extra_args(entry: _Entry, path: str, ctx: _Context) -> tuple[str, ...]:
    """Each element split like `arguments`; the options Lynx sets itself are refused."""
    words = [(word, node, where) for text, node, where in _items(entry, path, ctx, "a list of strings")
             for word in _split(text, node, where, ctx)]
    for word, node, where in words:
        option = word.split("=", 1)[0]
        if option in _SLURM_RESERVED or (option[:2] in _SLURM_RESERVED and not word.startswith("--")):
            ctx.fail(node, where, f"{option} is set by Lynx itself (it follows the job's output and exit "
                                  "status); remove it")
    return tuple(word for word, _, _ in words)


# --- values --------------------------------------------------------------------------------------------

def _items(entry: _Entry | None, path: str, ctx: _Context, expected: str) -> list[tuple[str, Node, str]]:
    """A scalar or a list of scalars, as (text, node, key path) triples."""
    if entry is None:
        return []
    key, node = entry
    if node.id == "scalar":
        return [(_text(node, path, ctx), node, path)]
    if node.id != "sequence":
        ctx.fail(key, path, f"expected {expected}, got {_describe(node, ctx)}")
    return [(_text(item, f"{path}[{i}]", ctx), item, f"{path}[{i}]") for i, item in enumerate(node.value)]


def _text(node: Node, path: str, ctx: _Context) -> str:
    """A scalar as the user wrote it (`1.50`, `2024-01-01`, not 1.5 or a date); booleans `true`/`false`."""
    value = ctx.scalar(node) if node.id == "scalar" else None
    if isinstance(value, bool):
        return "true" if value else "false"
    if not isinstance(value, (str, int, float, datetime.date)):
        ctx.fail(node, path, f"expected a string, number or boolean, got {_describe(node, ctx)}")
    return node.value


def _split(text: str, node: Node, path: str, ctx: _Context) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as exc:
        ctx.fail(node, path, f"cannot split {text!r} shell-style ({exc}); close the quote or escape it")


def _typed(entry: _Entry | None, path: str, ctx: _Context, expected: str, accepts: Callable[[Any], bool]
           ) -> Any:
    """The value of a scalar key, if `accepts` it; None when the key is absent."""
    if entry is None:
        return None
    value = ctx.scalar(entry[1]) if entry[1].id == "scalar" else None
    if entry[1].id != "scalar" or not accepts(value):
        ctx.fail(entry[0], path, f"expected {expected}, got {_describe(entry[1], ctx)}")
    return value


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def _cron(entry: _Entry | None, ctx: _Context) -> CronSection | None:
    """Keep `cron` raw with each key's line: the cron module validates the values themselves."""
    if entry is None or _is_null(entry[1], ctx):
        return None
    key, node = entry
    if node.id != "mapping":
        ctx.fail(key, "cron", f"expected a mapping such as `minute: '*/10'`, got {_describe(node, ctx)}")
    body = _map(node, "cron", ctx)
    values = {name: _plain(value, ctx) for name, (_, value) in body.entries.items()}
    lines = {name: _line(name_node) for name, (name_node, _) in body.entries.items()}
    return CronSection(values=values, lines=lines, line=_line(key), source=ctx.source)


def _hooks(entry: _Entry | None, ctx: _Context) -> dict[str, Hook]:
    """`hooks:` maps an event to a command (string or list) or to `{command: ..., timeout: ...}`."""
    if entry is None or _is_null(entry[1], ctx):
        return {}
    if entry[1].id != "mapping":
        ctx.fail(entry[0], "hooks", f"expected a mapping such as `on_failure: notify-send failed`, "
                                    f"got {_describe(entry[1], ctx)}")
    body = _map(entry[1], "hooks", ctx)
    _check_keys(body, _HOOK_EVENTS, "hooks", ctx)
    return {event: _hook(event, hook, ctx) for event, hook in body.entries.items()
            if not _is_null(hook[1], ctx)}


def _hook(event: str, entry: _Entry, ctx: _Context) -> Hook:
    path = f"hooks.{event}"
    timeout = None
    if entry[1].id == "mapping":
        body = _map(entry[1], path, ctx)
        _check_keys(body, ("command", "timeout"), path, ctx)
        timeout = _typed(body.entries.get("timeout"), f"{path}.timeout", ctx, "a positive number of seconds",
                         lambda v: _is_number(v) and v > 0)
        if "command" not in body.entries:
            ctx.fail(entry[0], path, "needs `command:` (a program and its arguments)")
        entry, path = body.entries["command"], f"{path}.command"
    argv = _command_argv(entry, [], path, ctx)
    return Hook(event, tuple(argv), _line(entry[0]), float(timeout) if timeout else 60.0)


def _plain(node: Node, ctx: _Context) -> Any:
    if node.id == "scalar":
        return ctx.scalar(node)
    if node.id == "sequence":
        return [_plain(item, ctx) for item in node.value]
    return {name: _plain(value, ctx) for name, (_, value) in _map(node, "cron", ctx).entries.items()}


def _describe(node: Node, ctx: _Context) -> str:
    """'a mapping', 'a list of 2 items', 'an integer (-1)', "a string ('ten')", 'null'."""
    if node.id != "scalar":
        count = len(node.value)
        plural = "s" if count > 1 else ""
        return "a mapping" if node.id == "mapping" else f"a list of {count} item{plural}" if count else "an empty list"
    value = ctx.scalar(node)
    if value is None:
        return "null"
    kinds = ((bool, "a boolean"), (int, "an integer"), (float, "a number"), (str, "a string"))
    kind = next((name for cls, name in kinds if isinstance(value, cls)), f"a {type(value).__name__}")
    shown = node.value if len(node.value) <= 40 else node.value[:37] + "..."
    return f"{kind} ({shown!r})" if isinstance(value, str) else f"{kind} ({shown})"


def _is_null(node: Node, ctx: _Context) -> bool:
    return node.id == "scalar" and ctx.scalar(node) is None


def _line(node: Node) -> int:
    return node.start_mark.line + 1


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _one_line(message: str) -> str:
    return " ".join(message.split())
