"""Giving freed memory back to the OS before a long wait (glibc's malloc_trim), in a real process."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"

# 30 MB freed in the middle of the heap (a block kept above it stops free() from trimming it),
# then handed back: the process's resident size before, after the free, after the release.
PROBE = """\
from lynx.memory import release_free_memory

def rss_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1])

blocks = [bytes(1000) for _ in range(30000)]
kept_above = bytes(1000)
del blocks
freed = rss_kb()
print(release_free_memory(), freed, rss_kb())
"""


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's; elsewhere release_free_memory() says False")
def test_freed_heap_memory_goes_back_to_the_os():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    released, freed_kb, after_kb = done.stdout.split()
    assert released == "True"
    assert int(freed_kb) - int(after_kb) > 20_000, "most of the 30 MB freed was still resident"


def test_release_free_memory_says_whether_it_could():
    from lynx.memory import release_free_memory

    assert release_free_memory() is GLIBC
