"""Where a step's output goes: raw to the screen, as tagged, timestamped lines to the log.

Output is handled in chunks of up to 64 KiB, never line by line: a step may print hundreds
of megabytes, and per-line work (a logging record, a write and a flush per line) is what
made the old design slow. Memory stays flat because at most one partial line is held.
"""

from __future__ import annotations

import errno
import os
import re
import select
import time
from typing import BinaryIO, Callable

CHUNK = 1 << 16   # 64 KiB: the most a read takes from a step's pipe (more is slower: caches)
# A line with no newline is flushed to the log once it grows this large, so a step that
# never prints a newline cannot make Lynx hold unbounded memory.
MAX_PENDING = 1 << 20


# ANSI escape sequences (colours, cursor moves): kept on the terminal, stripped from the log.
ANSI = re.compile(rb"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")


def collapse_progress(line: bytes) -> bytes:
    """Keep what a terminal would finally show of a line redrawn with carriage returns."""
    if b"\r" not in line:
        return line
    parts = [part for part in line.split(b"\r") if part]
    return parts[-1] if parts else b""


# The errors that mean stdout is gone for good: a closed pipe, a hung-up terminal, a closed fd.
GONE = (errno.EPIPE, errno.EIO, errno.ENXIO, errno.EBADF)


class Screen:
    """Lynx's stdout, where step output is copied as it comes. It may go away while steps run (a
    pipe into `head` closed, a terminal hung up): the steps go on, their output to the log only.
    """

    def __init__(self, stream: BinaryIO, on_lost: Callable[[OSError], None]) -> None:
        stream.flush()
        self.stream: BinaryIO | None = stream
        self.fd = stream.fileno()   # written directly: no buffer to hold a chunk back or lose it
        self.on_lost = on_lost      # told of the error once it is gone, and of the first other error
        self.troubled = False

    def write(self, chunk: bytes) -> None:
        """Write the whole chunk; once the screen is gone, drop it and every later one.

        A stdout that another process made non-blocking is waited for, as a blocking one would be.
        Another error (a full disk under `> out.txt`) loses the chunk and is told once.
        """
        if self.stream is None:
            return
        view = memoryview(chunk)
        try:
            while view:
                try:
                    view = view[os.write(self.fd, view):]
                except BlockingIOError:
                    select.select([], [self.fd], [])
        except OSError as exc:
            gone = exc.errno in GONE
            if gone:
                stream, self.stream = self.stream, None
                discard_from_now_on(stream)
            if gone or not self.troubled:   # a disk that stays full would say so for every chunk
                self.troubled = True
                self.on_lost(exc)

    def flush(self) -> None:
        """write() has flushed already."""


def discard_from_now_on(stream: BinaryIO) -> None:
    """Point the stream's descriptor at /dev/null (the Python docs' advice for a broken pipe), so
    that what is still in its buffer cannot fail again when the interpreter flushes it at exit."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, stream.fileno())
        os.close(null)
    except (OSError, ValueError, AttributeError):   # no descriptor (None, a BytesIO): nothing to flush
        pass


# Receives (block, head): the log gets head + block, whole lines. Two pieces, so that the first
# line's prefix is not copied in front of the block (which would copy the whole block). The block
# is a memoryview of the tagged lines.
LogBlock = Callable[["bytes | memoryview", bytes], None]


class StepOutput:
    """Receives one step's output chunks and writes them to the screen and the log."""

    def __init__(self, tag: str, screen: BinaryIO | None, log_block: LogBlock | None,
                 clock: Callable[[], float] = time.time) -> None:
        self.screen = screen
        self.log_block = log_block
        self.tag = tag.encode("utf-8", "replace")
        self.clock = clock
        self.pending = b""

    def write(self, chunk: bytes) -> None:
        """Pass a chunk on: as it is to the screen, as whole collapsed lines to the log."""
        if self.screen is not None:
            self.screen.write(chunk)
            self.screen.flush()
        if self.log_block is None:
            return
        data = self.pending + chunk if self.pending else chunk
        end = data.rfind(b"\n") + 1
        self.pending = self._trim(data[end:])
        if not end:
            return
        if b"\x1b" in data or b"\r" in data:
            self._log_lines(data[:end])
        else:   # plain lines, the bulk of any big output: not even the unfinished line is cut off first
            self._log(data, end)

    def close(self) -> None:
        """Log the last line even when the step did not end it with a newline."""
        if self.log_block is not None and self.pending:
            line = collapse_progress(self.pending)
            self.pending = b""
            if line:
                self._log_lines(line + b"\n")

    def _trim(self, pending: bytes) -> bytes:
        """Hold only what the next newline could still need: the last redraw, bounded."""
        cut = pending.rfind(b"\r", 0, len(pending) - 1)
        if cut >= 0:
            pending = pending[cut + 1:]
        if len(pending) > MAX_PENDING:
            self._log_lines(pending + b"\n")
            return b""
        return pending

    def _log_lines(self, block: bytes) -> None:
        """Log whole lines (`block` ends with a newline) without escape codes, redraws collapsed."""
        if b"\x1b" in block:
            block = ANSI.sub(b"", block)
        if b"\r" in block:
            block = b"\n".join(collapse_progress(line) for line in block.split(b"\n"))
        self._log(block, len(block))

    def _log(self, data: bytes, end: int) -> None:
        """Prefix every line of data[:end] (which ends with a newline) and hand them to the log."""
        prefix = self._prefix()
        # One replace over all of `data` is ~5x cheaper than splitting lines and joining them. The
        # log gets a view that stops before the prefix after the last newline (and whatever follows
        # it): cutting either off would copy the whole block again.
        tagged = data.replace(b"\n", b"\n" + prefix)
        self.log_block(memoryview(tagged)[: len(tagged) - (len(data) - end) - len(prefix)], prefix)

    def _prefix(self) -> bytes:
        """'2026-01-31 12:00:00.123 tag | ': what starts each line logged now."""
        now = self.clock()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)).encode()
        return b"%s.%03d %s | " % (stamp, int(now * 1000) % 1000, self.tag)
