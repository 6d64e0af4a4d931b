"""The rotating log file: Lynx's records and step output in blocks, rotated on line boundaries.

Its own module so that `logging.handlers` is imported only when there is a log file.
"""

from __future__ import annotations

import logging
import os
import stat
import sys
import time
from typing import Callable

from lynx.lazyimport import import_deferring

# logging.handlers without socket, pickle and queue: only its network and queue handlers use them,
# never at import time, and Lynx uses neither; importing them was ~2.8 ms of every run's start-up.
_handlers = import_deferring("logging.handlers", ("socket", "pickle", "queue"))

# Linux and the BSDs; elsewhere the buffered file object writes the two pieces.
WRITEV = hasattr(os, "writev")
# How often a write checks that the path is still the file written to (a stat; every write
# would cost a chatty step ~4% of Lynx's CPU).
CHECK_SECONDS = 1.0


class BlockRotatingFileHandler(_handlers.RotatingFileHandler):
    """A RotatingFileHandler that also takes pre-formatted blocks of step output.

    The stock handler seeks to the end of the file before every record to learn its size;
    step output can be hundreds of MB, so the size is tracked in memory instead and a
    block is written in as few pieces as rotation allows, each cut on a line boundary.

    A write that fails (a full disk) never stops a step: what could not be written is counted,
    `notify` is told once, and the log itself says how much it missed once it can be written again.
    """

    def __init__(self, filename: str, max_bytes: int, backup_count: int) -> None:
        super().__init__(filename, mode="a", maxBytes=max_bytes, backupCount=backup_count,
                         encoding="utf-8", delay=False)
        if not self.plain:   # (_open saw it; RotatingFileHandler set maxBytes after)
            # A device, pipe, terminal or symlink (-lf /dev/null, /dev/stderr) is written to, never
            # rotated: rotating renames the path (as root, /dev/null itself) and puts a file there.
            self.maxBytes = 0
        self.size = self.stream.tell() if self.stream and self.maxBytes else 0
        # (_open also noted self.identity: the file the stream writes to)
        self.checked = float("-inf")                    # when the path was last checked to still be it
        # Tells the user of a failed write and of the recovery (logs.setup: the screen, if any).
        self.notify: Callable[[str], None] | None = None
        self.lost = 0          # bytes not written since the last write that failed
        self.why = ""          # the error that lost them
        self.torn = False      # the last failed write ended the file mid-line

    def emit(self, record: logging.LogRecord) -> None:
        """Write one record, formatted once, rolling over first when it would not fit."""
        try:
            data = (_every_line_headed(self.format(record), record) + self.terminator).encode("utf-8", "replace")
            if self.maxBytes > 0 and self.size > 0 and self.size + len(data) > self.maxBytes:
                self.doRollover()
            self._write(data)
        except Exception:  # noqa: BLE001 (logging: a failing handler reports, it never raises)
            self.handleError(record)

    def handleError(self, record: logging.LogRecord) -> None:
        """An OS error (a rotation on a full disk) is counted as lost output; others as logging does."""
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            self._lost(len(str(record.msg)), exc)
        else:
            super().handleError(record)

    def _open(self):  # a text stream, as logging.FileHandler's
        """Open the file (at start, after a rotation, after it was removed) and note what it is.

        Never waits: a FIFO with no reader is an error (ENXIO), not a run stuck in open(). What is
        not a regular file itself (a symlink or FIFO put there mid-run, too) is never rotated.
        """
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK, 0o666)
        os.set_blocking(fd, True)
        stream = open(fd, self.mode, encoding=self.encoding, errors=self.errors)  # noqa: SIM115 (kept open)
        self.identity = _identity(self.baseFilename)
        self.plain = _is_plain_file(self.baseFilename)
        if not self.plain:
            self.maxBytes = 0
        return stream

    def _reopen_if_replaced(self) -> None:
        """Write to the path again when the file was deleted or replaced (`rm -r logs/`, logrotate):
        otherwise everything would go on into a file no one can see."""
        now = time.monotonic()
        if self.stream is None or not self.plain or now - self.checked < CHECK_SECONDS:
            return   # (a device or pipe given as the log is left alone: reopening a FIFO could block)
        self.checked = now
        if _identity(self.baseFilename) == self.identity:
            return
        self.stream.close()
        self.stream = None   # if it cannot be opened now, the next write tries again
        self.size = 0
        self.stream = self._open()
        if self.maxBytes:
            self.size = self.stream.tell()
        if self.notify is not None:
            self.notify(f"the log file {self.baseFilename} was removed or replaced; writing a new one")

    def doRollover(self) -> None:
        """Rotate the files and start counting the new one from zero.

        With no backups to keep the file starts over (the stock handler, like a backup count of 0
        in RotatingFileHandler, would reopen it for appending and let it grow without bound).
        """
        try:
            super().doRollover()
            if self.backupCount <= 0 and self.stream is not None:
                self.stream.truncate(0)
        finally:
            # Even when it failed half-way (no inode left for the new file): otherwise every later
            # write would rotate again, pushing the backups out one by one.
            self.size = 0

    def write_block(self, block: bytes | memoryview, head: bytes = b"") -> None:
        """Append head + block (whole lines of UTF-8), rotating between lines as needed.

        `head` belongs to the first line (its prefix): passed apart so it is never copied in front.
        """
        with self.lock:
            if isinstance(block, memoryview) and self.size + len(head) + len(block) > self.maxBytes > 0:
                block = bytes(block)   # finding the lines to rotate between needs bytes.rfind (once a file)
            view, start = memoryview(block), 0
            try:
                while head or start < len(block):
                    end = self._piece_end(block, start, len(head))
                    self._write_parts(head, view[start:end])
                    head, start = b"", end
            except OSError as exc:   # the rotation failed: this block is lost, the next may fit
                self._lost(len(head) + len(block) - start, exc)

    def _write(self, data: bytes) -> None:
        """Append a record's bytes (straight to the binary layer) and count them."""
        self._write_parts(data, b"")

    def _write_parts(self, head: bytes, body: bytes) -> None:
        """Append head + body in one system call where there is writev, and count the bytes.

        A failure loses these bytes (counted) and raises nothing.
        """
        total, written = len(head) + len(body), 0
        try:
            self._reopen_if_replaced()
            if self.stream is None:   # a rotation (or a reopen) could not open the new file: try again now
                self.stream = self._open()
            if self.lost and not self._say_what_was_lost():
                self._lost(total)
                return
            if WRITEV:   # straight to the file: a failed write must not stay in a buffer to go in later
                fd = self.stream.fileno()
                written = os.writev(fd, [head, body])
                if written < total:   # short write (a full disk or a signal): finish it in order
                    rest = (bytes(head) + bytes(body))[written:]
                    while rest:
                        done = os.write(fd, rest)
                        written, rest = written + done, rest[done:]
            else:
                self.stream.buffer.write(head)
                self.stream.buffer.write(body)
                self.stream.buffer.flush()
                written = total
        except OSError as exc:
            self.torn = written > 0
            self._lost(total - written, exc)
        finally:
            self.size += written

    def _lost(self, count: int, exc: OSError | None = None) -> None:
        """Count bytes that could not be written; the first failure of a run of them is told."""
        if exc is not None:
            self.why = exc.strerror or str(exc)
        if not self.lost and self.notify is not None:
            self.notify(f"cannot write the log file {self.baseFilename} ({self.why}): steps go on; "
                        "the log says how much it missed once it can be written again")
        self.lost += max(count, 1)

    def _say_what_was_lost(self) -> bool:
        """Write a line saying how much the log missed; True (and the count reset) if it went in."""
        record = logging.LogRecord("lynx", logging.WARNING, "", 0, "%d bytes of output and records could not "
                                   "be written to this log (%s)", (self.lost, self.why), None)
        data = ("\n" * self.torn + self.format(record) + self.terminator).encode("utf-8", "replace")
        try:
            if self.size > 0 and self.size + len(data) > self.maxBytes > 0:
                self.doRollover()
                if self.torn:   # the torn line went with the file rotated away: no newline to end it here
                    data = data[1:]
            os.write(self.stream.fileno(), data)
        except OSError:
            return False
        self.size += len(data)
        self.torn = False
        if self.notify is not None:
            self.notify(f"the log file {self.baseFilename} can be written again; {self.lost} bytes were lost")
        self.lost = 0
        return True

    def _piece_end(self, block: bytes, start: int, extra: int) -> int:
        """Where the longest run of whole lines from `start` that fits (after `extra` bytes) ends.

        Rotates first if not even one line fits in what is left of the file.
        """
        if self.maxBytes <= 0:
            return len(block)
        room = self.maxBytes - self.size - extra
        if len(block) - start <= room:
            return len(block)
        cut = block.rfind(b"\n", start, start + max(room, 0)) + 1
        if cut > 0:
            return cut
        if self.size > 0:
            self.doRollover()
            return self._piece_end(block, start, extra)
        # A single line longer than the whole file size: it goes in alone, uncut.
        return block.find(b"\n", start) + 1 or len(block)


def _every_line_headed(text: str, record: logging.LogRecord) -> str:
    """A record of several lines (a run's summary table) with the time and level on each of them,
    as every line of step output has: the log stays one line per entry, for grep and for sort."""
    message = record.message
    if "\n" not in message or not text.endswith(message):   # (a traceback follows the message)
        return text
    head = text[: len(text) - len(message)]
    return head + message.replace("\n", "\n" + head)


def _identity(path: str) -> tuple[int, int] | None:
    """The (device, inode) of the file at `path`; None if there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _is_plain_file(path: str) -> bool:
    """A regular file itself, not a symlink (/dev/stderr -> /proc/self/fd/2 -> a file under `2> err.log`)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False
