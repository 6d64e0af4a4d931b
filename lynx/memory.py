"""Hand freed memory back to the operating system before a long wait."""

from __future__ import annotations

import sys


def release_free_memory() -> bool:
    """Return the free pages of glibc's heap to the OS; False where that cannot be done.

    Loading the config and running a pipeline leave a few MB freed but still mapped (glibc
    keeps it for reuse, and Lynx raises its thresholds for fast output): a scheduled Lynx
    would otherwise sit on it for hours between runs.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes  # already loaded with a schedule: croniter's dateutil imports it

        trim = ctypes.CDLL(None).malloc_trim
    except (ImportError, OSError, AttributeError):   # no ctypes; musl and others have no malloc_trim
        return False
    trim(0)
    return True
