"""Lynx's own errors: library code raises them, only the CLI prints them."""


class LynxError(Exception):
    """An error the user can act on; its message says what to do."""

    exit_status = 1


class UsageError(LynxError):
    """The command line is wrong."""

    exit_status = 2


class ConfigError(LynxError):
    """The configuration is wrong: the message names file, line and key."""

    exit_status = 2


class AlreadyRunningError(LynxError):
    """A background Lynx already owns the pidfile."""


class NotRunningError(LynxError):
    """No background Lynx is running for the pidfile."""


class StopRequested(BaseException):
    """SIGTERM or `lynx stop` asked Lynx to end; a BaseException so no `except Exception` eats it.

    Its message, if any, says why in other words than "stopped on request" (a hung-up terminal).
    """
