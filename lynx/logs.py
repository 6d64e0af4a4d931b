"""Where Lynx's records go: the screen at --log-level, and a rotating log file."""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from pathlib import Path
from typing import TextIO

from lynx.errors import UsageError

LOGGER_NAME = "lynx"
FILE_FORMAT = "%(asctime)s.%(msecs)03d lynx %(levelname)s: %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


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

    def shouldRollover(self, record: logging.LogRecord) -> bool:
        """Roll over when the formatted record would not fit (size known without seeking)."""
        if self.maxBytes <= 0:
            return False
        length = len(self.format(record).encode("utf-8")) + 1
        return self.size > 0 and self.size + length > self.maxBytes

    def emit(self, record: logging.LogRecord) -> None:
        """Write one record and count its bytes."""
        super().emit(record)
        self.size += len(self.format(record).encode("utf-8")) + 1

    def doRollover(self) -> None:
        """Rotate the files and start counting the new one from zero."""
        super().doRollover()
        self.size = 0

    def write_block(self, data: bytes) -> None:
        """Append whole lines of UTF-8 bytes, rotating between lines as needed."""
        with self.lock:
            if self.stream is None:
                self.stream = self._open()
            self.stream.flush()  # records go through the text layer; keep the order
            while data:
                piece = self._next_piece(data)
                self.stream.buffer.write(piece)
                self.size += len(piece)
                data = data[len(piece):]
            self.stream.buffer.flush()

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


COLOURS = {logging.DEBUG: "2", logging.INFO: "36", logging.WARNING: "33", logging.ERROR: "31",
           logging.CRITICAL: "1;31"}


class ColourFormatter(logging.Formatter):
    """'lynx: message' with the prefix (and warnings, errors) coloured by level."""

    def format(self, record: logging.LogRecord) -> str:
        code = COLOURS.get(record.levelno, "0")
        text = super().format(record)
        if record.levelno >= logging.WARNING:
            return f"\x1b[{code}m{text}\x1b[0m"
        return text.replace("lynx:", f"\x1b[{code}mlynx:\x1b[0m", 1)


def use_colour(stream: TextIO | None) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and not os.environ.get("NO_COLOR")


def setup(level: str = "INFO", log_file: str | None = None, max_bytes: int = 2097152,
          backup_count: int = 3, screen: TextIO | None = sys.stderr) -> logging.Logger:
    """Configure the 'lynx' logger: the screen at `level`, the file (if any) at DEBUG."""
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    if screen is not None:
        console = logging.StreamHandler(screen)
        console.setLevel(level)
        formatter = ColourFormatter if use_colour(screen) else logging.Formatter
        console.setFormatter(formatter("lynx: %(message)s"))
        logger.addHandler(console)
    if log_file:
        logger.addHandler(open_log_file(log_file, max_bytes, backup_count))
    return logger


def open_log_file(path: str, max_bytes: int, backup_count: int) -> BlockRotatingFileHandler:
    """Open the rotating log, turning OS errors into a message that names the file."""
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        handler = BlockRotatingFileHandler(os.fspath(path), max_bytes, backup_count)
    except OSError as exc:
        raise UsageError(f"cannot open log file {path}: {exc.strerror or exc}") from exc
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter(FILE_FORMAT, DATE_FORMAT))
    return handler


def file_handler(logger: logging.Logger) -> BlockRotatingFileHandler | None:
    """The logger's rotating file handler, if it has one."""
    for handler in logger.handlers:
        if isinstance(handler, BlockRotatingFileHandler):
            return handler
    return None
