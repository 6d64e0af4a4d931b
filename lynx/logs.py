"""Where Lynx's records go: the screen at --log-level, and a rotating log file."""

from __future__ import annotations

import errno
import logging
import os
import sys
from typing import TYPE_CHECKING, Callable, TextIO

from lynx.errors import UsageError

if TYPE_CHECKING:
    from lynx.logfile import BlockRotatingFileHandler

LOGGER_NAME = "lynx"
FILE_FORMAT = "%(asctime)s.%(msecs)03d lynx %(levelname)s: %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


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
    _skip_unused_record_fields()
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
        handler = open_log_file(log_file, max_bytes, backup_count)
        if screen is not None:   # a full disk is told on the screen; in the log once it has room again
            handler.notify = _teller(console)
        logger.addHandler(handler)
    return logger


def _teller(console: logging.Handler) -> Callable[[str], None]:
    """Say a warning on the screen only (the file handler uses it to speak of itself)."""
    def tell(text: str) -> None:
        console.handle(logging.LogRecord(LOGGER_NAME, logging.WARNING, "", 0, text, None, None))
    return tell


def _skip_unused_record_fields() -> None:
    """Don't gather what no Lynx format prints (the logging HOWTO's "Optimization" switches).

    Finding the caller's frame and asking for thread and process names was a third of each
    record's cost, and a run logs two records per step.
    """
    logging._srcfile = None   # the documented switch for funcName, lineno and pathname
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def open_log_file(path: str, max_bytes: int, backup_count: int) -> BlockRotatingFileHandler:
    """Open the rotating log, turning OS errors into a message that names the file."""
    from lynx.logfile import BlockRotatingFileHandler

    try:
        os.makedirs(os.path.dirname(path) or os.curdir, exist_ok=True)
        handler = BlockRotatingFileHandler(os.fspath(path), max_bytes, backup_count)
    except FileExistsError as exc:   # mkdir met a file where a directory should be
        raise UsageError(f"cannot open log file {path}: {exc.filename} is not a directory") from exc
    except OSError as exc:
        why = "a FIFO with no reader" if exc.errno == errno.ENXIO else exc.strerror or exc
        raise UsageError(f"cannot open log file {path}: {why}") from exc
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter(FILE_FORMAT, DATE_FORMAT))
    return handler


def file_handler(logger: logging.Logger) -> BlockRotatingFileHandler | None:
    """The logger's rotating file handler, if it has one."""
    for handler in logger.handlers:
        if hasattr(handler, "write_block"):
            return handler
    return None
