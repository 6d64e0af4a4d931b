"""Importing a library while modules it imports but rarely uses are stood in for until first used."""

from __future__ import annotations

import importlib
import sys
import types


class Deferred(types.ModuleType):
    """Stands in for a module until one of its names is used, then imports it and hands that over."""

    def __getattr__(self, name: str) -> object:
        return getattr(importlib.import_module(self.__name__), name)


def import_deferring(module: str, deferred: tuple[str, ...]) -> types.ModuleType:
    """Import `module` with each of `deferred` (not yet imported) stood in for while it loads.

    The stand-ins are left out of sys.modules after, so any later `import` of them gets the real
    module, and `module`'s own references import it on first use.
    """
    stand_ins = {name: Deferred(name) for name in deferred if name not in sys.modules}
    sys.modules.update(stand_ins)
    try:
        importlib.import_module(module)
    finally:
        for name, stand_in in stand_ins.items():
            if sys.modules.get(name) is stand_in:
                del sys.modules[name]
    return sys.modules[module]


def import_logging() -> types.ModuleType:
    """logging, without importing traceback (and linecache, tokenize, textwrap) for it.

    logging uses traceback only to print an exception or a stack, never at import time: importing
    it was ~1.5 ms of every `lynx start`. Call it before anything imports logging (cli does).
    """
    return import_deferring("logging", ("traceback",))
