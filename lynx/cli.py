"""Lynx's command line: the usage text below is the spec; this is the one place errors are printed."""

from __future__ import annotations

import sys

from lynx import __version__
from lynx.errors import LynxError, UsageError

USAGE = """\
Lynx: chain the scripts of a pipeline and run them once or on a cron schedule.

Usage:
  lynx start [-cf FILE] [-lf FILE] [-ll LEVEL] [-ls BYTES] [-lbc N] [-ni] [-kr] [-bg]
             [--from STEP | --only STEPS] [--pid-file PATH] [--ledger PATH] [--debug]
  lynx check [-cf FILE] [--next N] [--after INSTANT] [--json] [--debug]
  lynx stop [--pid-file PATH] [-y] [--timeout S] [--debug]
  lynx status [--pid-file PATH] [--debug]
  lynx history [-cf FILE] [--ledger PATH] [-n N] [--debug]
  lynx -h | --help
  lynx --version

Commands:
  start    Run the pipeline: once, or on the config's cron schedule with -ni or -bg.
  check    Validate the config and show the steps and the next fire times; runs nothing.
  stop     Stop the Lynx running in the background (asks first on a terminal).
  status   Say whether a background Lynx is running, and how its runs went.
  history  List the last runs from the run ledger.

Options:
  -cf, --config-file FILE       The pipeline's YAML config [default: conf/config.yaml].
  -lf, --log-file FILE          Also write everything to FILE (appended; rotated unless a
                                symlink, device or pipe such as /dev/stderr).
  -ll, --log-level LEVEL        Level of Lynx's own lines on the screen: DEBUG, INFO, WARNING,
                                ERROR or CRITICAL [default: INFO].
  -ls, --log-size BYTES         Rotate the log file when it would pass BYTES [default: 2097152].
  -lbc, --log-backup-count N    How many rotated log files to keep, at most 1000; 0: the log
                                file starts over when full [default: 3].
  -ni, --non-interactive        Never ask: a failed step ends the run. Follows the cron schedule.
  -kr, --keep-running           With a schedule, keep it going after a failed run.
  -bg, --background             Run detached as a daemon; implies -ni. Asks for a log file on
                                a terminal when -lf is not given (Enter discards output).
  --from STEP                   Start at this step (its name); the steps before it do not run.
  --only STEPS                  Run only these steps (names, comma-separated), in pipeline order.
  --pid-file PATH               The pidfile of a background Lynx [default: .lynx_pid.json].
  --ledger PATH                 The run ledger, one JSON line per run. Default:
                                .lynx/runs.jsonl in the config file's directory.
  -n N                          How many runs `history` lists [default: 10].
  --next N                      How many fire times `check` shows [default: 5].
  --after INSTANT               Count fire times from this ISO-8601 instant (with offset);
                                a fire time equal to it is included. Default: now.
  --json                        Print `check`'s result as one JSON object.
  -y, --yes                     `stop` without asking.
  --timeout S                   Seconds `stop` waits before killing what is left [default: 10].
  --debug                       Show a traceback with errors.
  -h, --help                    Show this help.
  --version                     Show Lynx's version.

Exit status: 0 success, 1 a step failed (or stop/start refused), 2 bad usage or config,
3 `status`: not running, 130 interrupted by Ctrl+C.
"""

# The seed's two- and three-letter short flags; docopt would read `-cf` as `-c -f`.
ALIASES: dict[str, str] = {
    "-cf": "--config-file", "-lf": "--log-file", "-ll": "--log-level", "-ls": "--log-size",
    "-lbc": "--log-backup-count", "-ni": "--non-interactive", "-kr": "--keep-running",
    "-bg": "--background",
}


_DOCOPT_TEXTS: dict[str, str] = {}   # docopt and four checks of each command line read it


def docopt_text(usage: str = USAGE) -> str:
    """The usage text as docopt must see it: aliases replaced by their long forms."""
    text = _DOCOPT_TEXTS.get(usage)
    if text is None:
        text = _DOCOPT_TEXTS[usage] = _long_forms(usage)
    return text


def expand_aliases(argv: list[str]) -> list[str]:
    """Turn `-cf x` and `-cf=x` into their long forms, in any position."""
    out = []
    for arg in argv:
        if arg == "--":
            out.extend(argv[len(out):])
            break
        name, sep, value = arg.partition("=")
        out.append(ALIASES[name] + sep + value if name in ALIASES else arg)
    return out


# The readers of the usage text below split strings rather than match regular expressions:
# compiling the seven patterns they took was ~0.5 ms of every start.

def _long_forms(usage: str) -> str:
    """Each alias's own Options entry blanked (`-cf, --config-file` -> `--config-file`, in place)
    and every other use of it (patterns, descriptions) spelled long."""
    lines = []
    for line in usage.split("\n"):
        words = line.split(None, 1)
        alias = words[0][:-1] if words and words[0].endswith(",") else ""
        if alias in ALIASES:
            indent = len(line) - len(line.lstrip())
            line = line[:indent] + " " * (len(alias) + 2) + line[indent + len(alias) + 2:]
        lines.append(line)
    text = "\n".join(lines)
    for alias, long in ALIASES.items():
        text = _replace_word(text, alias, long)
    return text


def _replace_word(text: str, word: str, replacement: str) -> str:
    """`word` replaced where it stands alone: not where it is part of a longer word or option."""
    out, start = [], 0
    at = text.find(word)
    while at >= 0:
        end = at + len(word)
        if _word_char(text[at - 1:at]) or _word_char(text[end:end + 1]):
            at = text.find(word, at + 1)
            continue
        out += [text[start:at], replacement]
        start = end
        at = text.find(word, end)
    return "".join(out) + text[start:]


def _word_char(char: str) -> bool:
    return char.isalnum() or char in ("_", "-")


def _option_entries(text: str) -> list[tuple[str, str, str]]:
    """(short spelling or "", name, metavar or "") of each option defined after the Usage section.

    An entry is a line's words up to the two spaces that start its description: `-y, --yes`,
    `--from STEP`, `-cf, --config-file FILE`, `-q --quiet`, `--level=LEVEL`. A metavar is in
    capitals or <angle brackets>, as docopt has it: a description line starting `-1 means all`
    defines no value.
    """
    entries = _OPTION_ENTRIES.get(text)
    if entries is not None:
        return entries
    entries = _OPTION_ENTRIES[text] = []
    for line in usage_patterns(text)[2].split("\n"):
        words = line.strip().split("  ", 1)[0].replace(",", " ").replace("=", " ").split()
        names = [word for word in words if word.startswith("-")]
        if names and words[0] == names[0]:
            metavars = [word for word in words if word[0] != "-" and (word.isupper() or word[0] == "<")]
            entries.append((names[0] if len(names) > 1 else "", names[-1], metavars[0] if metavars else ""))
    return entries


_OPTION_ENTRIES: dict[str, list[tuple[str, str, str]]] = {}   # each command line reads them four times


_GROUPING = str.maketrans("[]()|", "     ")   # a usage pattern's brackets and bars, to split it into words


def command_options(usage: str = USAGE) -> dict[str, set[str]]:
    """Which options each command takes, read from the usage patterns (both spellings)."""
    text = docopt_text(usage)
    pairs = {short: name for short, name, _ in _option_entries(text) if short}
    allowed: dict[str, set[str]] = {}
    for pattern in usage_patterns(text)[1]:
        words = pattern.translate(_GROUPING).split()
        if len(words) > 1 and not words[1].startswith("-"):
            names = {word.split("=", 1)[0] for word in words if word.startswith("-") and word != "-"}
            allowed[words[1]] = names | {pairs.get(name, name) for name in names} | {
                short for short, long in pairs.items() if long in names}
    return allowed


def value_options(usage: str = USAGE) -> dict[str, str]:
    """The options that take a value, by the name docopt sees (`--log-size`, `-n`): their metavar."""
    return {name: metavar for _, name, metavar in _option_entries(docopt_text(usage)) if metavar}


def short_forms(usage: str = USAGE) -> dict[str, str]:
    """Each long option with a short spelling: {'--config-file': '-cf', '--yes': '-y', ...}."""
    return {name: short for short, name, _ in _option_entries(usage) if short}


def exclusive_options(usage: str = USAGE) -> list[tuple[str, str]]:
    """Each pair of options the usage patterns offer as alternatives: `[--from STEP | --only STEPS]`."""
    pairs = []
    for pattern in usage_patterns(docopt_text(usage))[1]:
        for group in pattern.split("[")[1:]:
            firsts = [words[0] for words in map(str.split, group.split("]", 1)[0].split("|")) if words]
            pairs += [(first, other) for n, first in enumerate(firsts) for other in firsts[n + 1:]]
    return pairs


def option_words(args: list[str], takes_value: set[str]) -> list[tuple[str, str | None]]:
    """Each option with its value, paired as docopt pairs them (None: no value given); other words alone."""
    pairs: list[tuple[str, str | None]] = []
    words = list(args)
    while words:
        word = words.pop(0)
        if word.startswith("-") and "=" in word:
            name, _, value = word.partition("=")
            pairs.append((name, value))
        elif word in takes_value and words and not is_option(words[0]):
            pairs.append((word, words.pop(0)))
        else:
            pairs.append((word, None))
    return pairs


def is_option(word: str) -> bool:
    """`-x` or `--x`; `-5` and `-` are values: docopt takes them as the value of `-ls -5`."""
    return word.startswith("-") and len(word) > 1 and not (word[1].isdigit() or word[1] == ".")


def check_words(argv: list[str]) -> None:
    """Say plainly what is wrong with the command line, before docopt's terser (or internal) message."""
    allowed = command_options()
    command = argv[0]
    if command not in allowed:
        raise UsageError(f"unknown command {command!r} (commands: {', '.join(allowed)})")
    takes_value, shorts = value_options(), short_forms()
    seen: list[str] = []
    without_value = ""   # the first option given no value: told after any word that is wrong itself
    for name, value in option_words(argv[1:], set(takes_value)):
        if not is_option(name):
            raise UsageError(f"unexpected argument {name!r}")
        if name not in allowed[command]:
            raise UsageError(f"`lynx {command}` has no option {name}")
        long = next((full for full, short in shorts.items() if short == name), name)
        spelled = f"{shorts[long]}/{long}" if long in shorts else long
        if long in seen:
            raise UsageError(f"{spelled} given twice")
        seen.append(long)
        if value is not None and long not in takes_value:   # `-ni=x`: docopt's message says less
            raise UsageError(f"{spelled} takes no value")
        # docopt would take the option after it as the value: `-lf -ni` logged to a file named
        # --non-interactive, and ran without -ni.
        if value is None and long in takes_value and not without_value:
            without_value = f"{spelled} needs a value ({takes_value[long]})"
        # Not the current directory, as Path("") would be. An empty -lf or --ledger keeps meaning no
        # log file / the default ledger: what a wrapper's unset variable (-lf "$LOG") has always given.
        if value == "" and takes_value.get(long) in ("FILE", "PATH") and long not in ("--log-file", "--ledger"):
            raise UsageError(f"{long}: empty path")
    if without_value:
        raise UsageError(without_value)
    for first, second in exclusive_options():
        if first in seen and second in seen:
            raise UsageError(f"{first} and {second} cannot be used together")


def parse(argv: list[str]) -> dict[str, object]:
    """Parse the command line; raise UsageError with a short message."""
    from docopt import DocoptExit, docopt

    words = expand_aliases(argv)
    check_words(words)
    # `-n=3` means 3, as check_words read it (and as `-cf=x` means x); docopt would take "=3".
    takes_value = value_options()
    words = [word[:2] + word[3:] if word[2:3] == "=" and len(word) > 3 and word[:2] in takes_value else word
             for word in words]
    try:
        # Only the command's own usage pattern: docopt's work grows with the square of a pattern's
        # parts, and reading all five patterns was ~1.6 ms of every start. The other commands'
        # words and options are not in the result; run_command dispatches on the command's name.
        return dict(docopt(command_text(argv[0]), words, default_help=False))
    except DocoptExit as exc:
        raise UsageError(f"{_first_line(str(exc)) or 'bad usage'}; see `lynx --help`") from exc


def command_text(command: str, usage: str = USAGE) -> str:
    """docopt_text with only the usage pattern of `command` (the Options section whole)."""
    head, patterns, tail = usage_patterns(docopt_text(usage))
    kept = [pattern for pattern in patterns if pattern.split()[1:2] == [command]]
    return f"{head}\nUsage:\n" + "\n".join(kept) + "\n\n" + tail


def usage_patterns(text: str) -> tuple[str, list[str], str]:
    """(what precedes the Usage section, its patterns with their continuation lines, what follows it)."""
    head, rest = text.split("\nUsage:\n", 1)
    section, tail = rest.split("\n\n", 1)
    patterns: list[str] = []
    for line in section.split("\n"):
        if line.split()[:1] == ["lynx"] or not patterns:   # a pattern starts; indented lines continue it
            patterns.append(line)
        else:
            patterns[-1] += "\n" + line
    return head, patterns, tail


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    # docopt's message is its usage section when nothing more specific is known, or a warning
    # that shows its internals (check_words should have said what is wrong first).
    if not lines or lines[0].lower().startswith(("usage", "warning: found unmatched")):
        return ""
    return lines[0]


def main(argv: list[str] | None = None) -> int:
    """Entry point of `lynx` and `python -m lynx`; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        print(USAGE, end="", file=sys.stderr)
        return 2
    if {"-h", "--help"} & set(argv):
        print(USAGE, end="")
        return 0
    if argv == ["--version"]:
        print(f"lynx {__version__}")
        return 0
    debug = "--debug" in argv
    try:
        args = parse(argv)
        return run_command(args)
    except LynxError as exc:
        if debug:   # the traceback, then the same line and exit status as without --debug
            import traceback

            traceback.print_exc()
        print(f"lynx: error: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print("\nlynx: interrupted", file=sys.stderr)
        return 130


def entry() -> int:
    """The `lynx` command and `python -m lynx`: main(), the cyclic garbage collector kept out of
    start-up and exit, where it would walk tens of thousands of objects to free none of them."""
    import gc

    gc.disable()   # launch.run turns it back on before the first step: a schedule may run for months
    try:
        status = main()
        if sys.stdout is not None:   # (None when Lynx was started with stdout closed)
            sys.stdout.flush()       # here, where a closed pipe can be handled, not at interpreter exit
    except OSError as exc:
        import errno

        if exc.errno not in (errno.EPIPE, errno.ENOSPC, errno.EDQUOT, errno.EIO):
            raise   # not a problem with where the output goes: a bug, shown as one
        from lynx.output import discard_from_now_on

        discard_from_now_on(sys.stdout)
        if not isinstance(exc, BrokenPipeError):   # a pipe's reader that took what it wanted: no news
            print(f"lynx: error: cannot write the output: {exc.strerror or exc}", file=sys.stderr)
        status = 1
    finally:
        # The interpreter collects once more at exit; frozen objects are still freed by their
        # reference counts then, only that walk (~5 ms) is skipped.
        gc.freeze()
    return status


def run_command(args: dict[str, object]) -> int:
    """Dispatch to the command's function, importing only what that command needs."""
    if not args.get("check"):   # every other command logs; first imported here, logging comes lighter
        from lynx.lazyimport import import_logging
        import_logging()
    if args.get("start"):
        from lynx.launch import start
        return start(args)
    if args.get("check"):
        from lynx.check import check
        return check(args)
    if args.get("history"):
        from lynx.history import history
        return history(args)
    from lynx import control
    return control.stop(args) if args.get("stop") else control.status(args)
