"""The composed YAML of a config, kept between starts: an unchanged config skips importing PyYAML.

Importing PyYAML is ~10 ms of every `lynx start` (a quarter of it). What PyYAML composes depends only
on the text and on PyYAML itself, so after a config loads without error its node graph (each node's
kind, tag, text, line and style, each scalar's value) is kept in `$XDG_CACHE_HOME/lynx` (default
~/.cache/lynx), one file per config path and Python environment. It is used only when the text is the
same to the byte and PyYAML's files are unchanged; every check after the YAML (steps, scripts,
executables, cron) runs each time. A cache that cannot be read, written or trusted is left aside:
it only ever saves time, so no error about it reaches the user.
"""

from __future__ import annotations

import datetime
import marshal
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from yaml.nodes import Node

FORMAT = 1                   # bump when what is kept, or how, changes
MAX_TEXT = 1 << 20           # a larger config is parsed each time: its cache would be as large
MAX_FILE = 16 << 20          # what a kept file may take; a larger one is not ours (or not worth it)
_SCALAR, _SEQUENCE, _MAPPING = "scalar", "sequence", "mapping"


class Mark:
    """Where a cached node starts: `line` counts from 0, as in PyYAML."""

    __slots__ = ("line",)

    def __init__(self, line: int) -> None:
        self.line = line


class CachedNode:
    """A composed node as PyYAML gives it (id, tag, value, start_mark, style), plus `built`: the
    value SafeConstructor made of a scalar, so that neither has to be imported to read it again."""

    __slots__ = ("built", "id", "start_mark", "style", "tag", "value")

    def __init__(self, kind: str, tag: str, line: int, style: str | None, built: Any) -> None:
        self.id, self.tag, self.start_mark, self.style, self.built = kind, tag, Mark(line), style, built
        self.value: Any = None


class _Uncacheable(Exception):
    """A value the cache cannot keep exactly: that config is composed each time."""


def cache_file(config: str) -> str | None:
    """Where the composed form of the config at absolute path `config` is kept; None: nowhere (no
    absolute cache directory: XDG_CACHE_HOME relative, or no home directory to be found)."""
    home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if not os.path.isabs(home):   # the XDG rule: a relative one is ignored (and "~" is no home)
        return None
    # One file per config and Python environment: two virtualenvs may hold two PyYAMLs.
    key = _fnv1a(f"{sys.prefix}\0{config}".encode("utf-8", "surrogateescape"))
    return os.path.join(home, "lynx", f"config-{key:016x}.marshal")


def _fnv1a(data: bytes) -> int:
    """A 64-bit FNV-1a hash: stable across runs (unlike hash()), a few us for a path, where
    importing binascii or zlib for a CRC takes ~0.3 ms. A collision only costs misses."""
    value = 0xCBF29CE484222325
    for byte in data:
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return value


def read(config: str, text: str) -> CachedNode | None:
    """The cached root node of `text`, or None: no cache, another text, another PyYAML, damaged."""
    path = cache_file(config)
    if path is None or len(text) > MAX_TEXT:
        return None
    try:
        # Not through a symlink, and not stuck on a FIFO someone put there: a miss either way.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        with open(fd, "rb") as f:
            data = f.read(MAX_FILE + 1)
        if len(data) > MAX_FILE:
            return None
        form, stamp, kept_text, table = marshal.loads(data)
        if form != FORMAT or kept_text != text or stamp != _yaml_stamp(stamp[0]):
            return None
        return _decode(table)[0]   # the root: numbered first
    # Whatever is wrong with a kept file (unreadable, truncated, not ours, shaped wrongly), it is a
    # miss: the config is composed as if there were no cache, and the file is written again.
    except (OSError, EOFError, ValueError, TypeError, IndexError, KeyError):
        return None


def write(config: str, text: str, root: Node, scalars: dict[int, Any]) -> None:
    """Keep `root` (composed from `text`; `scalars` maps id(node) to its value) for the next start."""
    target = cache_file(config)
    if target is None or len(text) > MAX_TEXT:
        return
    temporary = f"{target}.{os.getpid()}.tmp"
    try:
        import yaml

        table = _encode(root, scalars)
        data = marshal.dumps((FORMAT, _yaml_stamp(yaml.__file__), text, table))
        if len(data) > MAX_FILE:
            return
        os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
        # Written whole, then renamed over: a Lynx starting meanwhile reads the old file or the new.
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        with open(os.open(temporary, flags, 0o600), "wb") as f:
            f.write(data)
        os.replace(temporary, target)
    except (OSError, ValueError, _Uncacheable):
        try:
            os.unlink(temporary)   # (ours: its name has our pid; or one a Lynx with our pid left)
        except OSError:
            pass


def _yaml_stamp(path: str) -> tuple[str, int, int]:
    """PyYAML's __init__.py as it is now: a reinstalled or upgraded PyYAML changes its time or size."""
    info = os.stat(path)
    return (path, info.st_mtime_ns, info.st_size)


# --- the node table: nodes by number, children by number, so shared (aliased) nodes stay shared ----------

def _encode(root: Node, scalars: dict[int, Any]) -> list[tuple]:
    numbers: dict[int, int] = {}
    order: list[Node] = []

    def number(node: Node) -> int:
        if id(node) not in numbers:
            numbers[id(node)] = len(order)
            order.append(node)
        return numbers[id(node)]

    number(root)
    table: list[tuple] = []
    while len(table) < len(order):   # in the order numbered (breadth first): a deep config does not recurse
        node = order[len(table)]
        line = node.start_mark.line
        if node.id == _SCALAR:
            table.append((_SCALAR, node.tag, line, node.style, node.value, _kept_value(scalars[id(node)])))
        elif node.id == _SEQUENCE:
            table.append((_SEQUENCE, node.tag, line, [number(item) for item in node.value]))
        else:
            table.append((_MAPPING, node.tag, line, [(number(key), number(value)) for key, value in node.value]))
    return table


def _decode(table: list[tuple]) -> list[CachedNode]:
    """The nodes of a kept table; ValueError (or another error) if it is not one `_encode` wrote."""
    nodes = []
    for row in table:
        kind, tag, line = row[:3]
        if not (kind in (_SCALAR, _SEQUENCE, _MAPPING) and type(tag) is str and type(line) is int):
            raise ValueError("not a node")
        if kind == _SCALAR:
            _, _, _, style, text, kept = row
            if type(text) is not str or not (style is None or type(style) is str):
                raise ValueError("not a scalar")
            node = CachedNode(kind, tag, line, style, _value(kept))
            node.value = text
        else:
            node = CachedNode(kind, tag, line, None, None)
        nodes.append(node)

    def at(number: Any) -> CachedNode:
        if type(number) is not int or not 0 <= number < len(nodes):
            raise ValueError("not a node number")
        return nodes[number]

    for node, row in zip(nodes, table):
        if node.id == _SEQUENCE:
            node.value = [at(i) for i in row[3]]
        elif node.id == _MAPPING:
            node.value = [(at(k), at(v)) for k, v in row[3]]
    return nodes


# --- scalar values: what SafeConstructor makes; marshal keeps all but dates --------------------------------

_PLAIN = (str, int, float, bool, bytes, type(None))


def _kept_value(value: Any) -> Any:
    if type(value) in _PLAIN:
        return value
    if type(value) in (datetime.date, datetime.datetime):
        kept = (type(value).__name__, value.isoformat())
        back = _value(kept)
        # Exactly the same value back, offset and zone name included, or not cached at all.
        if back == value and repr(back) == repr(value) and str(back) == str(value):
            return kept
    raise _Uncacheable(type(value).__name__)


def _value(kept: Any) -> Any:
    if type(kept) in _PLAIN:
        return kept
    kind, text = kept
    if kind == "date":
        return datetime.date.fromisoformat(text)
    if kind == "datetime":
        return datetime.datetime.fromisoformat(text)
    raise ValueError("not a value")
