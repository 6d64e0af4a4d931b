"""Run Lynx detached: the parent checks and asks, the daemon runs `target` and keeps its pidfile.

POSIX: python-daemon's DaemonContext (double fork, new session, stdin from /dev/null, all files
closed). DaemonContext makes the calling process exit, so the CLI forks once first: the forked
child becomes the daemon and reports back over a pipe, while the CLI waits for that report and
returns. Windows has no fork: a detached `python -m lynx start` child is told by an environment
variable that it is the daemon. Everything else (pidfile, stop, status) is the same on both.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, NoReturn

from lynx.errors import AlreadyRunningError, LynxError, StopRequested
from lynx.launch import DAEMON_ENV, is_daemon_child

if TYPE_CHECKING:
    from lynx.launch import Progress, StartOptions

    Target = Callable[[StartOptions, Progress], int]

START_TIMEOUT = 20.0               # how long the CLI waits for the daemon to say it is running

log = logging.getLogger("lynx")


def detach_method(platform: str = sys.platform) -> str:
    """How to detach here: "daemon" (python-daemon, POSIX) or "detached-process" (Windows)."""
    return "detached-process" if platform.startswith("win") else "daemon"


def start_background(options: StartOptions, target: Target) -> int:
    """Check, ask for a log file, detach; the CLI's side returns 0 once the daemon runs."""
    if is_daemon_child():
        del os.environ[DAEMON_ENV]   # steps (and a `lynx` they run) must not inherit it
        return run_daemon(options._replace(background=True), target)
    options = absolute(options)
    refuse_if_running(Path(options.pid_file))
    options = options._replace(log_file=ask_log_file(options.log_file))
    if options.log_file:
        check_log_file(options)
    if detach_method() == "daemon":
        pid = detach(options, target)
    else:
        pid = spawn_detached(options)
    where = f"log: {options.log_file}" if options.log_file else "output discarded"
    print(f"lynx: running in the background as pid {pid}; {where}")
    print(f"lynx: `lynx status --pid-file {options.pid_file}` shows how it goes, "
          f"`lynx stop --pid-file {options.pid_file}` stops it")
    return 0


def absolute(options: StartOptions) -> StartOptions:
    """The options with every path absolute: the daemon must not depend on where it was started."""
    def full(path: str | None) -> str | None:
        return os.path.abspath(os.path.expanduser(path)) if path else path
    return options._replace(config_file=full(options.config_file), log_file=full(options.log_file),
                   pid_file=full(options.pid_file), ledger=full(options.ledger))


def refuse_if_running(path: Path) -> None:
    """AlreadyRunningError if the pidfile names a live Lynx; a stale one is only reported."""
    from lynx import pidfile

    record = pidfile.read(path)
    if record is None:
        return
    proc, why = pidfile.identify(record)
    if proc is not None:
        raise AlreadyRunningError(pidfile.already_running(path, record))
    print(f"lynx: replacing the stale pidfile {path} ({why})", file=sys.stderr)


def ask_log_file(log_file: str | None) -> str | None:
    """The log file: as given, asked for on a terminal (Enter: none), or none without a terminal."""
    if log_file:
        return log_file
    if sys.stdin is None or not sys.stdin.isatty():
        print("lynx: no --log-file and no terminal to ask on: the background Lynx's output is discarded "
              "(use -lf FILE to keep it)", file=sys.stderr)
        return None
    sys.stderr.write("lynx: log file for the background Lynx (Enter discards its output): ")
    sys.stderr.flush()
    answer = sys.stdin.readline()
    if not answer:   # Ctrl+D at a prompt means abort
        raise LynxError("end of input at the log file question: not started")
    answer = answer.strip()
    if not answer:
        print("lynx: output will be discarded", file=sys.stderr)
        return None
    return os.path.abspath(os.path.expanduser(answer))


def check_log_file(options: StartOptions) -> None:
    """Open the log file once now, so a bad path is an error here and not a silent daemon death."""
    from lynx.logs import open_log_file

    open_log_file(options.log_file, options.log_size, options.log_backup_count).close()


# --- POSIX: fork, then python-daemon -------------------------------------------------------------


def detach(options: StartOptions, target: Target) -> int:
    """Fork; the child becomes the daemon; return the daemon's pid once it reports running."""
    read_end, write_end = os.pipe()
    sys.stdout.flush()   # or the forked child would hold (and could write) a copy of the buffers
    sys.stderr.flush()
    child = os.fork()
    if child == 0:
        os.close(read_end)
        become_daemon(options, target, write_end)
    os.close(write_end)
    try:
        report = read_report(read_end, START_TIMEOUT)
    finally:
        os.close(read_end)
        os.waitpid(child, 0)   # it exits as soon as DaemonContext has forked
    return parse_report(report, options)


def become_daemon(options: StartOptions, target: Target, report_fd: int) -> NoReturn:
    """In the forked child: detach with DaemonContext, run, and exit without returning to the CLI."""
    status = 1
    reporter = Reporter(report_fd)
    try:
        import daemon  # POSIX-only: imported here so the package imports on Windows

        daemon.DaemonContext(
            working_directory=os.getcwd(), umask=current_umask(), detach_process=True,
            prevent_core=False,   # steps inherit the limit; keep it as in the foreground
            files_preserve=[report_fd], signal_map=signal_map()).open()
        status = run_daemon(options, target, reporter)
    except BaseException as exc:   # noqa: BLE001 - whatever happens, never return into the CLI
        reporter.error(exc)
    finally:
        os._exit(status)


def current_umask() -> int:
    """The umask Lynx was started with (reading it means setting it, so set it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def signal_map() -> dict[int, Callable[[int, Any], None]]:
    """SIGTERM stops like `lynx stop`; SIGHUP is logged and ignored (a daemon has no terminal to lose)."""
    handlers = {signal.SIGTERM: _stop_requested}
    if hasattr(signal, "SIGHUP"):   # not on Windows
        handlers[signal.SIGHUP] = _hangup
    return handlers


def _stop_requested(signum: int, frame: Any) -> None:
    raise StopRequested()


def _hangup(signum: int, frame: Any) -> None:
    log.warning("received SIGHUP: ignored (`lynx stop` stops the background Lynx)")


def read_report(fd: int, timeout: float) -> str | None:
    """The daemon's one-line report, "" if it closed the pipe without one, None on timeout."""
    import select

    data = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            return None
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data.decode("utf-8", "replace").partition("\n")[0]


def parse_report(report: str | None, options: StartOptions) -> int:
    """The daemon's pid from its report, or the error it reported."""
    see = f"see {options.log_file}" if options.log_file else "run it without -bg to see why"
    if report is None:
        raise LynxError(f"the background Lynx did not report within {START_TIMEOUT:g} s; "
                        f"`lynx status --pid-file {options.pid_file}` tells whether it runs")
    message = json.loads(report) if report else {}
    if "ready" in message:
        return int(message["ready"])
    error = LynxError(message.get("error") or f"the background Lynx exited while starting; {see}")
    error.exit_status = int(message.get("status", 1))
    raise error


class Reporter:
    """The daemon's end of the pipe: one line, "ready" with its pid or the error that stopped it."""

    def __init__(self, fd: int | None) -> None:
        self.fd = fd

    def ready(self) -> None:
        """Tell the CLI the scheduler runs (logging is set up, the pidfile written)."""
        self._send({"ready": os.getpid()})

    def error(self, exc: BaseException) -> None:
        """Tell the CLI why the daemon could not start."""
        if isinstance(exc, LynxError):
            self._send({"error": str(exc), "status": exc.exit_status})
        elif not isinstance(exc, (StopRequested, SystemExit)):
            self._send({"error": f"the background Lynx failed to start: {exc!r}", "status": 1})

    def _send(self, message: dict[str, Any]) -> None:
        if self.fd is None:
            return
        fd, self.fd = self.fd, None   # one report only; later ones have no reader
        try:
            os.write(fd, (json.dumps(message) + "\n").encode())
            os.close(fd)
        except OSError:
            pass


# --- the daemon ------------------------------------------------------------------------------------


def run_daemon(options: StartOptions, target: Target, reporter: Reporter | None = None) -> int:
    """Claim the pidfile, run `target` with a Tracker as its progress, remove the pidfile at the end."""
    from lynx import pidfile

    reporter = reporter or Reporter(None)
    for signum, handler in signal_map().items():   # again for the Windows path's child
        signal.signal(signum, handler)
    path = Path(options.pid_file)
    try:
        from lynx.ledger import default_path

        ledger = options.ledger or default_path(options.config_file)
        record = pidfile.new_record(options.config_file, options.log_file, ledger)
        pidfile.claim(path, record)
    except OSError as exc:
        reporter.error(LynxError(f"cannot write the pidfile {path}: {exc.strerror or exc}"))
        return 1
    except LynxError as exc:
        reporter.error(exc)
        return exc.exit_status
    try:
        return target(options, pidfile.Tracker(path, record, on_ready=reporter.ready))
    except StopRequested:
        return 0   # SIGTERM before the scheduler installed its own handler
    except BaseException as exc:
        reporter.error(exc)
        log.exception("the background Lynx failed")
        return exc.exit_status if isinstance(exc, LynxError) else 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)   # a second SIGTERM must not skip the cleanup
        pidfile.remove(path, record["pid"])


# --- Windows: a detached child process -------------------------------------------------------------


def spawn_detached(options: StartOptions) -> int:
    """Start `python -m lynx start ...` detached, as the daemon; its pid once its pidfile says it runs."""
    argv = [sys.executable, "-m", "lynx", "start", *child_arguments(options)]
    proc = subprocess.Popen(argv, cwd=os.getcwd(), env={**os.environ, DAEMON_ENV: "1"},
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            close_fds=True, **detached_flags())
    return await_pidfile(Path(options.pid_file), proc, START_TIMEOUT)


def child_arguments(options: StartOptions) -> list[str]:
    """`lynx start`'s arguments for the detached child: the same options, without --background.

    Each value is joined to its option (`--log-file=-x.log`): as a word of its own, a value that
    starts with '-' would read as an option.
    """
    values = (("--config-file", options.config_file), ("--log-level", options.log_level),
              ("--log-size", str(options.log_size)), ("--log-backup-count", str(options.log_backup_count)),
              ("--pid-file", options.pid_file), ("--log-file", options.log_file), ("--from", options.start_at),
              ("--only", options.only), ("--ledger", options.ledger))
    args = ["--non-interactive", *(f"{flag}={value}" for flag, value in values if value)]
    return args + (["--keep-running"] if options.keep_running else [])


def detached_flags() -> dict[str, Any]:
    """Popen arguments that detach a child from this console (Windows) or session (elsewhere)."""
    if sys.platform.startswith("win"):
        return {"creationflags": subprocess.DETACHED_PROCESS  # type: ignore[attr-defined]
                | subprocess.CREATE_NEW_PROCESS_GROUP}  # type: ignore[attr-defined]
    return {"start_new_session": True}


def await_pidfile(path: Path, proc: subprocess.Popen, timeout: float) -> int:
    """Wait until the pidfile names `proc` (or its child: a venv launcher) as running; its pid."""
    from lynx import pidfile

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LynxError(f"the background Lynx exited while starting (status {proc.returncode}); "
                            "run the same command without -bg to see why")
        try:
            record = pidfile.read(path)
        except LynxError:
            record = None   # not written yet, or being replaced
        if record and record.get("state") != "starting" and record["pid"] in _self_and_children(proc.pid):
            return int(record["pid"])
        time.sleep(0.05)
    raise LynxError(f"the background Lynx did not report within {timeout:g} s; "
                    f"`lynx status --pid-file {path}` tells whether it runs")


def _self_and_children(pid: int) -> set[int]:
    import psutil

    try:
        return {pid} | {child.pid for child in psutil.Process(pid).children()}
    except psutil.Error:
        return {pid}
