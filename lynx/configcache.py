"""The composed YAML of a config, kept between starts: an unchanged config skips importing PyYAML.

Importing PyYAML is ~10 ms of every `lynx start` (a quarter of it). What PyYAML composes depends only
on the text and on PyYAML itself, so after a config loads without error its node graph (each node's
kind, tag, text, line and style, each scalar's value) is kept in `$XDG_CACHE_HOME/lynx` (default
~/.cache/lynx), one file per config path and Python environment. It is used only when the text is the
same to the byte, the PyYAML that would be imported now is the one that composed it (the same files,
times and sizes), Lynx's modules that read the YAML are unchanged, the file's checksum holds, and
file and directory are the user's own and writable by nobody else. Every check after the YAML (steps,
scripts, executables, cron) runs each time, and a config that fails with its kept form is loaded
again without it. A cache that cannot be read, written or trusted is left aside: it only ever saves
time, so no error about it reaches the user.
"""

from __future__ import annotations

import marshal
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from yaml.nodes import Node

FORMAT = 2                   # bump when what is kept, or how, changes
MAX_TEXT = 256 << 10         # a larger config is composed each time: checking its kept form costs more
MAX_FILE = 4 << 20           # what a kept file may take; a larger one is not ours
KEEP_SECONDS = 60 * 86400    # a kept file not written or used for this long goes when another is written
# The checksum: the payload's bytes as one integer, modulo a Mersenne prime (no import: zlib's or
# binascii's would cost more than the check). A damaged byte changes it for certain.
_PRIME = (1 << 61) - 1
# Lynx's own modules whose rules a cached node skips (tag checks, scalar values): see code_stamp.
_LYNX_FILES = ("yamlsafe.py", "configcache.py")
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
    # Whatever is wrong with a kept file (unreadable, truncated, not ours, shaped wrongly), it is a
    # miss: the config is composed as if there were no cache, and the file is written again. It is
    # data from disk, so any error in reading it is that, and only that.
    try:
        # Not through a symlink, and not stuck on a FIFO someone put there: a miss either way.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        with open(fd, "rb") as f:
            fd_info = os.fstat(fd)
            if not (_private(fd_info) and _private(os.lstat(os.path.dirname(path)))):
                return None
            data = f.read(MAX_FILE + 1)
        if len(data) > MAX_FILE:
            return None
        form, checksum, payload = marshal.loads(data)
        if form != FORMAT or checksum != _checksum(payload):
            return None
        stamp, kept_text, table = marshal.loads(payload)
        if kept_text != text or stamp != code_stamp():
            return None
        _keep_fresh(path, fd_info)
        return _decode(table)[0]   # the root: numbered first
    except Exception:  # noqa: BLE001
        return None


def write(config: str, text: str, root: Node, scalars: dict[int, Any]) -> None:
    """Keep `root` (composed from `text`; `scalars` maps id(node) to its value) for the next start."""
    target = cache_file(config)
    if target is None or len(text) > MAX_TEXT:
        return
    directory = os.path.dirname(target)
    temporary = f"{target}.{os.getpid()}.tmp"
    written = False
    try:
        import yaml

        stamp = code_stamp()
        if stamp is None or stamp[0] != os.path.dirname(yaml.__file__):
            return   # PyYAML came from somewhere read() cannot check (a zip, a module file, bytecode only)
        payload = marshal.dumps((stamp, text, _encode(root, scalars)))
        data = marshal.dumps((FORMAT, _checksum(payload), payload))
        if len(data) > MAX_FILE:
            return
        os.makedirs(directory, mode=0o700, exist_ok=True)
        if not _private(os.lstat(directory)):
            return   # someone else's directory (or a symlink to one): the config's text is not left there
        # Written whole, then renamed over: a Lynx starting meanwhile reads the old file or the new.
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        with open(os.open(temporary, flags, 0o600), "wb") as f:
            f.write(data)
        os.replace(temporary, target)
        written = True
        _prune(directory)
    # Keeping is only ever a saving: whatever fails here (a full disk, a finder of the import
    # system that raises, a value marshal cannot write) leaves the config composed each time.
    except Exception:  # noqa: BLE001, S110
        pass
    finally:
        if not written:   # (also when interrupted)
            try:
                os.unlink(temporary)   # ours: its name has our pid (or a Lynx's before us with it)
            except OSError:
                pass


def _private(info: os.stat_result) -> bool:
    """Owned by this user and writable by no one else: what another user could write, Lynx does
    not read (it would choose the commands Lynx runs). Windows has no such owner to compare."""
    if not hasattr(os, "geteuid"):
        return True
    return info.st_uid == os.geteuid() and not info.st_mode & 0o022


def _checksum(payload: bytes) -> int:
    return int.from_bytes(payload, "little") % _PRIME


def code_stamp() -> tuple | None:
    """What decides the meaning of a kept form, as it is now: the directory of the PyYAML that `import
    yaml` would load, with every file in it (names, times, sizes: an edit, an upgrade, another libyaml),
    and the files of Lynx's modules whose rules a cached node skips. None when PyYAML would come from
    somewhere it cannot be stamped so (a zip, a single module, bytecode only): then nothing is kept.
    Found by asking the import system's finders in order, as `import yaml` will, without importing it:
    that is what the cache saves."""
    spec = None
    for finder in sys.meta_path:
        find = getattr(finder, "find_spec", None)
        spec = find("yaml", None) if find is not None else None
        if spec is not None:
            break
    if spec is None or not (spec.origin or "").endswith(os.sep + "__init__.py"):
        return None
    directory = os.path.dirname(spec.origin)
    with os.scandir(directory) as entries:
        files = sorted((entry.name, info.st_mtime_ns, info.st_size) for entry in entries
                       if entry.is_file() for info in [entry.stat()])
    here = os.path.dirname(os.path.abspath(__file__))
    lynx_files = tuple((path, info.st_mtime_ns, info.st_size) for path in
                       (os.path.join(here, name) for name in _LYNX_FILES) for info in [os.stat(path)])
    return (directory, tuple(files), lynx_files)


def _keep_fresh(path: str, info: os.stat_result) -> None:
    """A kept file in use is touched once a month, so that _prune leaves it alone."""
    import time

    if time.time() - info.st_mtime > KEEP_SECONDS / 2:
        try:
            os.utime(path)
        except OSError:   # a read-only cache: the file is still good to use
            pass


def _prune(directory: str) -> None:
    """Remove kept files (and temporary ones) not written or used for KEEP_SECONDS: configs gone or
    unused (a file in use is touched by read)."""
    import time

    old = time.time() - KEEP_SECONDS
    with os.scandir(directory) as entries:
        for entry in entries:
            try:   # (another Lynx may remove the same file meanwhile)
                if entry.name.startswith("config-") and entry.stat(follow_symlinks=False).st_mtime < old:
                    os.unlink(entry.path)
            except OSError:
                pass


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
    import datetime  # here and in _value: only a config with a date in it needs it

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
    import datetime

    if kind == "date":
        return datetime.date.fromisoformat(text)
    if kind == "datetime":
        return datetime.datetime.fromisoformat(text)
    raise ValueError("not a value")
