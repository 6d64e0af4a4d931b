"""The rotating log file: Lynx's records and step output in blocks, rotated on line boundaries.

Its own module so that `logging.handlers` (which pulls in socket and pickle) is imported only
when there is a log file.
"""

from __future__ import annotations

import logging
import logging.handlers


class BlockRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A RotatingFileHandler that also takes pre-formatted blocks of step output.

    The stock handler seeks to the end of the file before every record to learn its size;
    step output can be hundreds of MB, so the size is tracked in memory instead and a
    block is written in as few pieces as rotation allows, each cut on a line boundary.
    """

    def __init__(self, filename: str, max_bytes: int, backup_count: int) -> None:
        super().__init__(filename, mode="a", maxBytes=max_bytes, backupCount=backup_count,
                         encoding="utf-8", delay=False)
        self.size = self.stream.tell() if self.stream else 0

    def emit(self, record: logging.LogRecord) -> None:
        """Write one record, formatted once, rolling over first when it would not fit."""
        try:
            data = (self.format(record) + self.terminator).encode("utf-8", "replace")
            if self.maxBytes > 0 and self.size > 0 and self.size + len(data) > self.maxBytes:
                self.doRollover()
            self._write(data)
        except Exception:  # noqa: BLE001 (logging: a failing handler reports, it never raises)
            self.handleError(record)

    def doRollover(self) -> None:
        """Rotate the files and start counting the new one from zero."""
        super().doRollover()
        self.size = 0

    def write_block(self, data: bytes) -> None:
        """Append whole lines of UTF-8 bytes, rotating between lines as needed."""
        with self.lock:
            while data:
                piece = self._next_piece(data)
                self._write(piece)
                data = data[len(piece):]

    def _write(self, data: bytes) -> None:
        """Append bytes (records and blocks alike go straight to the binary layer) and count them."""
        if self.stream is None:
            self.stream = self._open()
        self.stream.buffer.write(data)
        self.stream.buffer.flush()
        self.size += len(data)

    def _next_piece(self, data: bytes) -> bytes:
        """The longest run of whole lines that fits; rotate first if not even one line fits."""
        if self.maxBytes <= 0:
            return data
        room = self.maxBytes - self.size
        if len(data) <= room:
            return data
        cut = data.rfind(b"\n", 0, max(room, 0)) + 1
        if cut > 0:
            return data[:cut]
        if self.size > 0:
            self.doRollover()
            return self._next_piece(data)
        # A single line longer than the whole file size: it goes in alone, uncut.
        return data[: data.find(b"\n") + 1 or len(data)]
