"""Copy a running step's output pipe to its sink, chunk by chunk, until the pipe closes.

Reads take whatever the pipe holds (up to 64 KiB) and poll only when it is empty; a burst of
tiny writes (a progress bar) is left to gather for a moment instead of being read write by write.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time

from lynx.output import CHUNK, StepOutput

# How stream() ended.
EOF = "eof"                # the pipe closed: the step (and all it started) finished writing
TIMED_OUT = "timed out"    # the step's deadline passed first
LEFTOVERS = "leftovers"    # the step exited but processes it left behind still hold the pipe

# After a step's own process exits, how long its output pipe may stay open (held by a
# process it left behind) before the caller is told to end those leftovers.
DRAIN_SECONDS = 1.0
POLL_SECONDS = 0.05   # how often a streaming step is checked for having exited
PIPE_BYTES = 1 << 20
# A read this large means the step writes faster than Lynx reads: only then is the pipe widened
# (resizing it costs a quiet step ~20 us of kernel time for nothing).
WIDEN_AFTER = 1 << 15
# A read smaller than SMALL_READ within BATCH_SECONDS of the one before: wait BATCH_SECONDS so
# more output gathers (the screen still updates 500 times a second).
SMALL_READ = 4096
BATCH_SECONDS = 0.002
_allocator_settled = False


def stream(proc: subprocess.Popen, output: StepOutput, deadline: float | None) -> str:
    """Copy the step's output in chunks until EOF; returns EOF, TIMED_OUT or LEFTOVERS."""
    fd = proc.stdout.fileno()
    if not hasattr(select, "poll"):
        return _stream_blocking(fd, output, deadline)
    os.set_blocking(fd, False)   # read until the pipe is empty, poll only then
    _settle_allocator()
    # poll, not epoll: an epoll registration makes Linux wake it on every write to the pipe,
    # which costs a chatty step's writes even while Lynx is not waiting.
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    exited_at = None
    widened = False
    # The step has only just started: the first check for its exit can wait POLL_SECONDS.
    polled, last_read = time.monotonic(), 0.0
    while True:
        now = time.monotonic()
        # waitpid on every chunk costs more than the chunk's own work for a chatty step
        if exited_at is None and (now - polled >= POLL_SECONDS or deadline is not None and now >= deadline):
            polled = now
            if proc.poll() is not None:
                exited_at = now
        if deadline is not None and now >= deadline:
            # The step itself ended in time: only what it left behind still holds the pipe.
            return TIMED_OUT if exited_at is None else LEFTOVERS
        if exited_at is not None and now - exited_at > DRAIN_SECONDS:
            return LEFTOVERS
        try:
            chunk = os.read(fd, CHUNK)
        except BlockingIOError:   # nothing to read yet
            wait = 0.5 if deadline is None else min(0.5, deadline - now)
            poller.poll(1000 * (wait if exited_at is None else 0.1))
            continue
        if not chunk:
            return EOF
        output.write(chunk)
        if not widened and len(chunk) >= WIDEN_AFTER:
            widened = True
            _widen_pipe(fd)
        if len(chunk) < SMALL_READ and now - last_read < BATCH_SECONDS:
            # Small writes in quick succession (a progress bar): let them gather in the pipe
            # rather than paying a read, a screen write and a log write for each one.
            time.sleep(BATCH_SECONDS)
        last_read = now


def _stream_blocking(fd: int, output: StepOutput, deadline: float | None) -> str:
    """Windows has no poll() for pipes: plain blocking reads, the deadline checked between chunks.

    A step that stops printing without exiting is then timed out only once it prints again or exits.
    """
    while True:
        chunk = os.read(fd, CHUNK)
        if not chunk:
            return EOF
        output.write(chunk)
        if deadline is not None and time.monotonic() >= deadline:
            return TIMED_OUT


def _settle_allocator() -> None:
    """Once per process: free one 1 MiB block, so that glibc's malloc raises its thresholds.

    Every chunk allocates and frees blocks of ~100 KB. With the thresholds glibc starts with
    (128 KiB), freeing them shrinks the heap and the next chunk faults fresh pages in again: that
    halved the throughput in some processes. glibc raises its mmap and trim thresholds to the size
    of the first mmap'd block freed; other allocators just free it.
    """
    global _allocator_settled
    if not _allocator_settled:
        _allocator_settled = True
        block = bytes(1 << 20)   # above the 128 KiB mmap threshold: mmap'd, and unmapped by del
        del block


def _widen_pipe(fd: int) -> None:
    """Ask Linux for a 1 MiB pipe: a chatty step can write on while Lynx handles the last chunk."""
    if not sys.platform.startswith("linux"):
        return
    import fcntl

    try:
        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_BYTES)
    except OSError:   # over the user's limit (/proc/sys/fs/pipe-max-size): keep the default
        pass
