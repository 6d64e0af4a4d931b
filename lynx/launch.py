"""`lynx start`: join config, logging, runner and schedule, in the foreground or detached."""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING, Callable, NamedTuple, Protocol

from lynx import ledger, logs
from lynx.config import Config, Step, load
from lynx.errors import ConfigError, StopRequested, UsageError
from lynx.options import whole_number
from lynx.output import GONE, Screen, StepOutput
from lynx.runner import Interrupted, RunResult, stop_reason
from lynx.runs import RunSettings, make_run_once, select_steps

if TYPE_CHECKING:
    from datetime import datetime

log = logging.getLogger("lynx")

DAEMON_ENV = "LYNX_DAEMON_CHILD"   # set for the detached child on Windows: "you are the daemon"


class StartOptions(NamedTuple):
    """`lynx start`'s options, checked."""

    config_file: str
    log_file: str | None
    log_level: str
    log_size: int
    log_backup_count: int
    interactive: bool
    keep_running: bool
    background: bool
    pid_file: str
    start_at: str | None = None     # --from
    only: str | None = None         # --only
    ledger: str | None = None

    @classmethod
    def from_args(cls, args: dict[str, object]) -> StartOptions:
        """Build from docopt's dict; bad values are usage errors."""
        level = str(args["--log-level"]).upper()
        if level not in logs.LEVELS:
            raise UsageError(f"--log-level: {args['--log-level']!r} is not one of {', '.join(logs.LEVELS)}")
        background = bool(args["--background"])
        return cls(
            config_file=str(args["--config-file"]), log_file=args["--log-file"] or None,  # type: ignore
            log_level=level, log_size=whole_number(args["--log-size"], "--log-size"),
            log_backup_count=whole_number(args["--log-backup-count"], "--log-backup-count", maximum=1000),
            interactive=not (background or args["--non-interactive"]),
            keep_running=bool(args["--keep-running"]), background=background,
            pid_file=str(args["--pid-file"]), start_at=args.get("--from"), only=args.get("--only"),  # type: ignore
            ledger=args.get("--ledger"),  # type: ignore
        )

    def resume_prefix(self, config: Config) -> tuple[str, ...]:
        """`lynx start` with this run's config and log flags, for the resume hint."""
        words = ["lynx", "start", "-cf", str(config.path)]
        if self.log_file:   # with its rotation: the resumed run must not rotate it at other sizes
            words += ["-lf", os.path.abspath(self.log_file), "-ls", str(self.log_size), "-lbc",
                      str(self.log_backup_count)]
        if self.ledger:   # the resumed run belongs in the same ledger
            words += ["--ledger", os.path.abspath(self.ledger)]
        return tuple(words)


def start(args: dict[str, object]) -> int:
    """Validate everything, then run in the foreground or hand over to the background."""
    options = StartOptions.from_args(args)
    config = load(options.config_file)
    schedule = config.schedule()
    select_steps(config.steps, options.start_at, options.only)  # a wrong name is an error before any run
    if schedule is not None and not options.interactive:
        _check_it_fires(config, schedule)
    if options.background or is_daemon_child():
        from lynx import background  # a foreground run does not pay for it

        return background.start_background(
            options, lambda opts, progress: run(config, schedule, opts, screen=False, progress=progress))
    return run(config, schedule, options, screen=True)


def is_daemon_child() -> bool:
    """True in the detached child that the Windows path starts."""
    return os.environ.get(DAEMON_ENV) == "1"


def _check_it_fires(config: Config, schedule) -> None:
    """A schedule to follow that never fires again is an error now, not a daemon that quietly ends."""
    from datetime import datetime, timezone  # a run-once start does not need it (~0.7 ms)

    now = datetime.now(timezone.utc)
    if schedule.next_fire(now) is not None:
        return
    cron = config.cron
    if schedule.end_date is not None and schedule.end_date <= now:
        where, passed = cron.where("end_date"), f" ({cron.values['end_date']} has passed)"
    else:
        where, passed = f"{cron.source}:{cron.line}: cron", ""
    raise ConfigError(f"{where}: the schedule never fires again{passed}; nothing to run "
                      "(`lynx check` shows the fire times)")


class Progress(Protocol):
    """Told where the scheduler is (the background daemon keeps its pidfile current with it)."""

    def next_fire(self, when: datetime | None) -> None: ...
    def run_started(self, due: datetime | None) -> None: ...
    def step_started(self, step: Step) -> None: ...
    def run_ended(self, result: RunResult) -> None: ...


def run(config: Config, schedule, options: StartOptions, screen: bool,
        progress: Progress | None = None) -> int:
    """Set up logging and run once or on the schedule; the exit status."""
    if not gc.isenabled():   # off for start-up (cli.entry); the runs need it
        gc.freeze()          # start-up's objects live until exit: no later collection walks them again
        gc.enable()
    logger = logs.setup(options.log_level, options.log_file, options.log_size, options.log_backup_count,
                        screen=sys.stderr if screen else None)
    signal.signal(signal.SIGTERM, _raise_stop)
    # The daemon ignores SIGHUP (background.signal_map), and so does a Lynx started with nohup.
    if screen and hasattr(signal, "SIGHUP") and signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        signal.signal(signal.SIGHUP, _hung_up)
    handler = logs.file_handler(logger)
    to_screen = screen and sys.stdout is not None   # (None when Lynx was started with stdout closed)
    output_for = outputs(Screen(sys.stdout.buffer, _screen_lost) if to_screen else None,
                         handler.write_block if handler else None, progress)
    on_failure = ask_on_terminal if options.interactive else None
    run_once = make_run_once(run_settings(config, options), output_for, on_failure, progress)
    try:
        return _run(schedule, options, run_once, progress)
    except Interrupted as exc:
        return _interrupted(exc)
    except KeyboardInterrupt:
        log.warning("interrupted while waiting for the next run; stopped")
        return 130
    except StopRequested as exc:
        log.info("%s while waiting for the next run", stop_reason(exc))
        return 0
    finally:
        logging.shutdown()


def _run(schedule, options: StartOptions, run_once: Callable[[datetime | None], bool],
         progress: Progress | None) -> int:
    """Once, or on the schedule."""
    if schedule is None or options.interactive:
        if schedule is not None:
            log.info("the cron section is ignored in interactive mode: running once "
                     "(use --non-interactive to follow the schedule)")
        if options.keep_running:
            log.info("--keep-running has no effect without a schedule followed (-ni or -bg)")
        return 0 if run_once(None) else 1
    from lynx.schedule import RealClock, run_loop
    stdin = sys.stdin if not options.background and sys.stdin.isatty() else None
    return run_loop(schedule, run_once, RealClock(stdin), options.keep_running,
                    on_next=progress.next_fire if progress else None)


def _interrupted(exc: Interrupted) -> int:
    """Say where the run stopped; 130 for Ctrl+C, 0 for a requested stop."""
    log.warning("%s %s%s", exc.how, exc.where, f"; {exc.cut_short} was ended" if exc.cut_short else "")
    if exc.resume:
        log.info("to resume from the %s step: %s", exc.which, exc.resume)
    if not exc.stopped:
        return 130
    return 1 if exc.run_failed else 0


def _screen_lost(exc: OSError) -> None:
    if exc.errno not in GONE:
        log.warning("could not write step output to stdout (%s); the steps go on", exc.strerror or exc)
        return
    where = "goes to the log file only" if logs.file_handler(log) else "is discarded (no --log-file)"
    log.warning("cannot write step output to stdout (%s): the steps go on; their output %s",
                exc.strerror or exc, where)


def _raise_stop(signum: int, frame: object) -> None:
    raise StopRequested()


def _hung_up(signum: int, frame: object) -> None:
    """The terminal closed: its steps would go on unseen, orphaned; stop as on SIGTERM, said why."""
    raise StopRequested("stopped by SIGHUP (the terminal closed)")


def outputs(screen, log_block, progress: Progress | None = None) -> Callable[[Step], StepOutput]:
    """A factory giving each step its own output sink (and telling `progress` the step started)."""
    def output_for(step: Step) -> StepOutput:
        if progress is not None:
            progress.step_started(step)
        return StepOutput(step.name, screen, log_block)
    return output_for


def ask_on_terminal(failed) -> str:
    """The recovery dialog on this process's stdin/stderr."""
    from lynx.dialog import ask
    return ask(failed.name, failed.reason)


def run_settings(config: Config, options: StartOptions) -> RunSettings:
    """What every run shares: the selected steps, the ledger, the resume command."""
    ledger_path = os.path.realpath(options.ledger) if options.ledger else ledger.default_path(config.path)
    return RunSettings(config, select_steps(config.steps, options.start_at, options.only), ledger_path,
                       os.path.abspath(options.log_file) if options.log_file else None,
                       options.resume_prefix(config), only=bool(options.only))
