"""Safe YAML for the config: the node graph with line numbers, `<<` merges, and scalars read by type.

Nothing here knows what a step is; every error it raises is one line, 'FILE:LINE: PATH: PROBLEM'.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, NoReturn

from lynx.configcache import CachedNode
from lynx.errors import ConfigError

if TYPE_CHECKING:
    from yaml.nodes import Node


_YAML = "tag:yaml.org,2002:"
_MERGE = _YAML + "merge"
_VALUE = _YAML + "value"  # PyYAML tags a lone `=` so but cannot construct it; Lynx reads it as text
_STR = _YAML + "str"
# Tags whose scalars are read as the text they are: most nodes, so they skip the constructor
# (and the import statements that find it).
_AS_TEXT = (_STR, _MERGE, _VALUE)
MAX_CONFIG_BYTES = 16 << 20
# Ten years: a longer timeout or wait is a typo (and further on time.sleep and datetime overflow).
MAX_SECONDS = 10 * 365 * 24 * 3600
# Items that aliases may expand a value into (`a: &a [*b, *b, ...]` nested doubles it per level).
MAX_EXPANDED = 100_000
Entry = tuple["Node", "Node"]  # (key node, value node)


class Map(NamedTuple):
    """A mapping node with its `<<` merges applied."""

    entries: dict[str, Entry]   # key text -> (key node, value node)
    own: tuple[str, ...]        # keys written in the mapping itself, not merged in
    merged: list[Node]          # the nodes merged in, in precedence order


class Context:
    """What every check needs: where the file is, and the scalars already built safely."""

    def __init__(self, source: str, base: str, cwd: str, text: str) -> None:
        self.source = source
        # Only an escape (a backslash) or non-ASCII text can make a NUL or a lone surrogate: most
        # configs have neither, and their scalars need not be searched for them.
        self.odd_text_possible = not text.isascii() or "\\" in text
        self.base = base                          # the config file's directory
        self.cwd = cwd
        self.scalars: dict[int, Any] = {}
        self.executor = "local"                   # the top-level default for steps
        self.slurm: dict[str, Any] = {}           # the top-level `slurm:` defaults
        self.maps: dict[int, Map] = {}            # as_map's result for each mapping merged somewhere
        self.expanded = 0                         # items aliases have expanded into (see MAX_EXPANDED)

    def fail(self, at: Node | int, path: str, problem: str) -> NoReturn:
        """Raise the one-line ConfigError 'FILE:LINE: PATH: PROBLEM'."""
        line = at if isinstance(at, int) else line_of(at)
        raise ConfigError(_one_line(": ".join(part for part in (f"{self.source}:{line}", path, problem) if part)))

    def scalar(self, node: Node) -> Any:
        """The value check_nodes built for a scalar node."""
        return self.scalars[id(node)]


# --- reading -------------------------------------------------------------------------------------------

def read_file(file: str, source: str) -> str:
    """The config's text; a missing, unreadable, special, huge or non-UTF-8 file is a ConfigError."""
    import stat

    try:
        mode = os.stat(file).st_mode
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISSOCK(mode):
            # /dev/zero would fill the memory, a terminal would wait for typing. A pipe is read
            # (`-cf <(make-config)`), bounded like a file.
            raise ConfigError(f"{source}: a device or socket, not a config file; give a YAML file "
                              "with --config-file")
        with open(file, "rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)   # a size from stat is 0 for /proc files: read, bounded
        if len(data) > MAX_CONFIG_BYTES:
            raise ConfigError(f"{source}: larger than {MAX_CONFIG_BYTES >> 20} MiB; is it really the config?")
        return data.decode("utf-8")
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise ConfigError(f"{source}: config file not found (give another with --config-file)") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"{source}: is a directory, not a config file (give a YAML file with "
                          "--config-file)") from exc
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read the config file: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not UTF-8 text (bad byte at offset {exc.start}); save it as UTF-8") from exc


def compose(text: str, source: str) -> Node | None:
    """Build the node graph only: nothing is constructed yet, so no tag can run code."""
    import yaml  # here, so that `lynx stop` and `lynx --help` never pay for it

    # libyaml composes several times faster than PyYAML's Python scanner (a 200-step config loads
    # in 11 ms instead of 28); an error is composed again in Python, whose messages say more.
    fast = getattr(yaml, "CSafeLoader", None)
    if fast is not None:
        try:
            return yaml.compose(text, Loader=fast)
        except yaml.YAMLError:
            pass
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
    except yaml.reader.ReaderError as exc:   # a character YAML does not allow (NUL, BEL, ...)
        line = text.count("\n", 0, exc.position) + 1
        problem = str(exc).split("\n")[0] if isinstance(exc.character, bytes) else (
            f"unacceptable character #x{exc.character:04x}: {exc.reason}")
        raise ConfigError(_one_line(f"{source}:{line}: not valid YAML: {problem}")) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(_one_line(f"{source}: not valid YAML: {exc}")) from exc


def check_nodes(node: Node, path: str, ctx: Context, done: set[int], stack: set[int]) -> None:
    """Refuse unsafe tags and self-containing anchors, then build each scalar with SafeConstructor."""
    if id(node) in stack:
        ctx.fail(node, path, "an alias points at a node that contains it; YAML here cannot be recursive")
    if id(node) in done:
        return
    done.add(id(node))
    # A node from the cache passed these checks when its (identical) text was composed; its
    # scalars carry the values SafeConstructor built then.
    cached = isinstance(node, CachedNode)
    if not cached:
        _check_tag(node, path, ctx)
    if node.id == "scalar":
        ctx.scalars[id(node)] = node.built if cached else _construct(node, path, ctx)
        if ctx.odd_text_possible:
            _check_text(node.value, node, path, ctx)
        return
    stack.add(id(node))
    for child_path, child in _children(node, path):
        check_nodes(child, child_path, ctx, done, stack)
    stack.discard(id(node))


def _check_tag(node: Node, path: str, ctx: Context) -> None:
    if node.tag in _AS_TEXT:
        return
    from yaml.constructor import SafeConstructor

    if node.tag in SafeConstructor.yaml_constructors:
        return
    tag = node.tag.replace(_YAML, "!!", 1)
    if tag.startswith("!!python/"):
        ctx.fail(node, path, f"refused the tag {tag}: Lynx reads YAML safely and never builds Python objects")
    ctx.fail(node, path, f"unknown tag {tag}; remove it (Lynx reads plain YAML)")


def _check_text(text: str, node: Node, path: str, ctx: Context) -> None:
    """No program argument, name or environment value can hold a NUL or a lone surrogate."""
    if text.isascii() and "\0" not in text:
        return
    if "\0" in text:
        ctx.fail(node, path, "contains a NUL character (\\0), which no argument, name or variable can hold; "
                             "remove it")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        ctx.fail(node, path, f"contains a lone surrogate (\\u{code:04x}), which is not a character; write "
                             "the character itself")


def _construct(node: Node, path: str, ctx: Context) -> Any:
    if node.tag in _AS_TEXT:
        return node.value
    from yaml import YAMLError
    from yaml.constructor import SafeConstructor

    try:
        return SafeConstructor().construct_object(node)
    # SafeConstructor raises assorted built-in errors for values that defy their tag (`!!int many`).
    except (YAMLError, ValueError, OverflowError, TypeError, KeyError, AttributeError) as exc:
        # The last three speak of PyYAML's insides, not of the value: their text is left out.
        detail = f" ({exc})" if isinstance(exc, (YAMLError, ValueError, OverflowError)) else ""
        ctx.fail(node, path, f"cannot read {clip(node.value)!r} as {node.tag.replace(_YAML, '!!', 1)}{detail}")


def _children(node: Node, path: str) -> Iterator[tuple[str, Node]]:
    if node.id == "sequence":
        yield from ((f"{path}[{i}]", item) for i, item in enumerate(node.value))
        return
    for key, value in node.value:
        yield path, key
        yield join_path(path, key.value if key.id == "scalar" else "?"), value


# --- mappings, merges and keys ---------------------------------------------------------------------------

def as_map(node: Node, path: str, ctx: Context) -> Map:
    """Apply `<<` the YAML way: own keys win, then earlier merged mappings over later ones."""
    entries: dict[str, Entry] = {}
    merged: list[Node] = []
    for key, value in node.value:
        if key.tag == _MERGE:
            merged.extend(_merge_sources(value, join_path(path, "<<"), ctx))
        elif key.id != "scalar":
            ctx.fail(key, path, f"keys must be plain text, got {describe(key, ctx)}")
        elif key.value in entries:
            first = line_of(entries[key.value][0])
            ctx.fail(key, join_path(path, key.value), f"duplicate key (first at line {first}); keep one")
        else:
            entries[key.value] = (key, value)
    own = tuple(entries)
    for source in (node for node in merged if node.id == "mapping"):
        # Each merged mapping is read once: one merged ten times, ten levels deep, would be 10**10.
        done = ctx.maps.get(id(source))
        if done is None:
            done = ctx.maps[id(source)] = as_map(source, path, ctx)
        for text, entry in done.entries.items():
            entries.setdefault(text, entry)
    return Map(entries, own, merged)


def _merge_sources(value: Node, path: str, ctx: Context) -> list[Node]:
    if value.id == "mapping":
        return [value]
    if value.id == "sequence" and all(item.id == "mapping" for item in value.value):
        return [value, *value.value]  # the list itself too: a config anchored as a list is found by it
    ctx.fail(value, path, f"`<<` merges a mapping or a list of mappings, got {describe(value, ctx)}")


def check_keys(mapping: Map, known: tuple[str, ...], path: str, ctx: Context) -> None:
    """Fail on the first key not in `known`, suggesting the closest known one."""
    for text, (key, _) in mapping.entries.items():
        if text not in known:
            import difflib  # only when there is an error to explain

            close = difflib.get_close_matches(text, known, n=1)
            hint = f"did you mean {close[0]!r}?" if close else "valid keys: " + ", ".join(known)
            ctx.fail(key, join_path(path, text), f"unknown key; {hint}")


# --- values --------------------------------------------------------------------------------------------

def text_items(entry: Entry | None, path: str, ctx: Context, expected: str) -> list[tuple[str, Node, str]]:
    """A scalar or a list of scalars, as (text, node, key path) triples."""
    if entry is None:
        return []
    key, node = entry
    if node.id == "scalar":
        return [(as_text(node, path, ctx), node, path)]
    if node.id != "sequence":
        ctx.fail(key, path, f"expected {expected}, got {describe(node, ctx)}")
    return [(as_text(item, f"{path}[{i}]", ctx), item, f"{path}[{i}]") for i, item in enumerate(node.value)]


def as_text(node: Node, path: str, ctx: Context) -> str:
    """A scalar as the user wrote it (`1.50`, `2024-01-01`, not 1.5 or a date); booleans `true`/`false`."""
    value = ctx.scalar(node) if node.id == "scalar" else None
    if isinstance(value, bool):
        return "true" if value else "false"
    if not isinstance(value, (str, int, float)) and not _is_date(value):
        ctx.fail(node, path, f"expected a string, number or boolean, got {describe(node, ctx)}")
    return node.value


def _is_date(value: Any) -> bool:
    import datetime  # here: date scalars are rare, and importing it was ~0.7 ms of every start

    return isinstance(value, datetime.date)


def shell_words(text: str, node: Node, path: str, ctx: Context) -> list[str]:
    """Split `text` like a shell would, without a shell."""
    import shlex  # only a config with `arguments` needs it

    try:
        return shlex.split(text)
    except ValueError as exc:
        ctx.fail(node, path, f"cannot split {text!r} shell-style ({exc}); close the quote or escape it")


def typed(entry: Entry | None, path: str, ctx: Context, expected: str, accepts: Callable[[Any], bool]
          ) -> Any:
    """The value of a scalar key, if `accepts` it; None when the key is absent."""
    if entry is None:
        return None
    value = ctx.scalar(entry[1]) if entry[1].id == "scalar" else None
    if entry[1].id != "scalar" or not accepts(value):
        got = describe(entry[1], ctx)
        if entry[1].id == "scalar" and not entry[1].style:   # plain (libyaml: ""): 1e3, not "1e3"
            got = f"{got[:-1]}{exponent_hint(entry[1].value, accepts)})"
        ctx.fail(entry[0], path, f"expected {expected}, got {got}")
    return value


def is_text(value: Any) -> bool:
    """A non-empty string."""
    return isinstance(value, str) and value != ""


def is_number(value: Any) -> bool:
    """An int or a finite float, not a boolean."""
    try:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    except OverflowError:   # an int with hundreds of digits
        return False


def is_seconds(value: Any, positive: bool) -> bool:
    """A number of seconds > 0 (or >= 0), at most MAX_SECONDS."""
    return is_number(value) and (value > 0 if positive else value >= 0) and value <= MAX_SECONDS


def describe(node: Node, ctx: Context) -> str:
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
    shown = clip(node.value)
    return f"{kind} ({shown!r})" if isinstance(value, str) else f"{kind} ({shown})"


# PyYAML (YAML 1.1) reads a float only with a dot and a signed exponent: 1e3 and 1.5e3 are text.
# A pattern, not a compiled one: compiling it cost every `lynx start` ~0.2 ms for an error message.
_EXPONENT_FORM = r"([-+]?)([0-9]*)(?:\.([0-9]*))?[eE]([-+]?)([0-9]+)"


def _float_spelling(text: str) -> str | None:
    """How to write text like 1e3 so that YAML reads it as a float (1.0e+3); None if it is no such text."""
    match = re.fullmatch(_EXPONENT_FORM, text)
    if not match or not (match[2] or match[3]):
        return None
    return f"{match[1]}{match[2] or 0}.{match[3] or 0}e{match[4] or '+'}{match[5]}"


def exponent_hint(text: str, accepts: Callable[[Any], bool]) -> str:
    """'; YAML reads a number in that form as text: write 1.0e+3' where that number would be accepted."""
    number = _float_spelling(text)
    return f"; YAML reads a number in that form as text: write {number}" if number and accepts(float(number)) else ""


def clip(text: str) -> str:
    """Text as a message quotes it: at most 40 characters."""
    return text if len(text) <= 40 else text[:37] + "..."


def is_null(node: Node, ctx: Context) -> bool:
    """A scalar that reads as null (`~`, `null` or nothing)."""
    return node.id == "scalar" and ctx.scalar(node) is None


def line_of(node: Node) -> int:
    """The 1-based line the node starts on."""
    return node.start_mark.line + 1


def join_path(path: str, key: str) -> str:
    """'PATH.KEY', or just 'KEY' at the top level."""
    return f"{path}.{key}" if path else key


def _one_line(message: str) -> str:
    return " ".join(message.split())
