"""What a step or hook runs: its script or program found on disk or on PATH, and the argv that runs it."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from lynx.yamlsafe import Context, Entry, as_text, is_text, shell_words, text_items, typed

if TYPE_CHECKING:
    from yaml.nodes import Node


def script_argv(entry: Entry, python: Entry | None, args: list[str], path: str, ctx: Context
                ) -> tuple[str, list[str]]:
    """`script:` (and `python:`) as the script's absolute path and the argv that runs it."""
    where = f"{path}.script"
    script = _find(typed(entry, where, ctx, "a path to a script", is_text), entry[0], where, ctx)
    if os.path.splitext(script)[1].lower() == ".py":
        interpreter = sys.executable
        if python:
            text = typed(python, f"{path}.python", ctx, "the path or name of a Python interpreter", is_text)
            interpreter = _executable(text, python[0], f"{path}.python", ctx, "interpreter")
        return script, [interpreter, script, *args]
    if python:
        ctx.fail(python[0], f"{path}.python", f"only applies to a .py script, and {os.path.basename(script)} is not one")
    _require_executable(script, entry[0], where, ctx)
    return script, [script, *args]


def command_argv(entry: Entry, args: list[str], path: str, ctx: Context) -> list[str]:
    """`command:` (a string or a list of words) as argv, its program resolved to an absolute path."""
    key, node = entry
    first = node if node.id == "scalar" else node.value[0] if node.id == "sequence" and node.value else None
    if first is not None and first.id == "scalar" and isinstance(ctx.scalar(first), bool):
        ctx.fail(first, path, f"{first.value!r} reads as a boolean in YAML, not a program; quote it "
                              f"(\"{first.value}\") if you mean a program of that name")
    if node.id == "scalar":  # one string: split like a shell would, without a shell
        words = shell_words(as_text(node, path, ctx), node, path, ctx)
    else:  # a list: each element is one argv entry already
        words = [text for text, _, _ in text_items(entry, path, ctx, "a list of words or a string")]
    if not words:
        ctx.fail(key, path, "is empty; name the program to run")
    return [_executable(words[0], key, path, ctx, "program"), *words[1:], *args]


def _executable(word: str, key: Node, path: str, ctx: Context, what: str) -> str:
    """A word with a slash is a path, found like a script; a bare word is looked up on PATH."""
    if "/" in word or os.sep in word:
        found = _find(word, key, path, ctx)
        _require_executable(found, key, path, ctx)
        return str(found)
    import shutil  # here: it imports bz2 and lzma, which a pipeline of scripts does not need

    on_path = shutil.which(word)
    if not on_path:
        ctx.fail(key, path, f"{what} {word!r} not found on PATH; install it or give its full path")
    return os.path.abspath(on_path)


def _find(text: str, key: Node, path: str, ctx: Context) -> str:
    """Resolve a relative path against the config's directory, then the current one (DECISIONS 7)."""
    # os.path on strings, not pathlib, and the current directory only when needed: this runs for
    # every step of every config loaded.
    given = os.path.expanduser(text)
    tried: list[str] = []
    for base in (None,) if os.path.isabs(given) else (ctx.base, ctx.cwd):
        candidate = os.path.abspath(given if base is None else os.path.join(base, given))
        if os.path.isfile(candidate):
            return candidate
        if candidate not in tried:
            tried.append(candidate)
    there = next((c for c in tried if os.path.exists(c)), None)   # but nothing a step can run
    if there:
        what = "a directory" if os.path.isdir(there) else "not a regular file"
        ctx.fail(key, path, f"{there} is {what}; give the file to run")
    places = " and ".join(tried)
    ctx.fail(key, path, f"file {text!r} not found (tried {places}); fix the path or make it absolute")


def _require_executable(file: str, key: Node, path: str, ctx: Context) -> None:
    if not os.access(file, os.X_OK):
        ctx.fail(key, path, f"{file} is not executable; run `chmod +x {file}` or use `command:` "
                            "to name the program that runs it")
