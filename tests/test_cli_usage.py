"""Bad command lines found by QA: one clear `lynx: error:` line, exit status 2, nothing started."""

from __future__ import annotations

import pytest

from lynx.cli import USAGE, parse
from lynx.logs import LEVELS


@pytest.fixture
def pipeline(write_config, write_script, tmp_path):
    """A two-step config whose steps leave a file behind when they run; its path."""
    for name in ("a", "b"):
        write_script(f"{name}.py", f"open('{name}.ran', 'w').close()\n")
    return write_config("steps:\n  - script: a.py\n  - script: b.py\n")


def assert_usage_error(result, message: str) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"lynx: error: {message}\n"
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def assert_nothing_ran(tmp_path) -> None:
    assert not list(tmp_path.glob("*.ran")), "a step ran"
    assert not list(tmp_path.rglob("runs.jsonl")), "a run was recorded in the ledger"


@pytest.mark.parametrize("flag, value, message", [
    ("--only", ",", "--only: no step names given"),
    ("--only", " , ", "--only: no step names given"),
    ("--only", "", "--only: no step names given"),
    ("--from", "", "--from: no step name given"),
])
def test_an_empty_step_selection_is_a_usage_error(run_lynx, pipeline, tmp_path, flag, value, message):
    # Before: `--only ,` ran an empty pipeline reported as FAILED; `--only ""` ran every step.
    assert_usage_error(run_lynx("start", "-cf", str(pipeline), "-ni", flag, value), message)
    assert_nothing_ran(tmp_path)


def test_empty_names_between_commas_are_still_skipped(run_lynx, pipeline, tmp_path):
    result = run_lynx("start", "-cf", str(pipeline), "-ni", "--only", "b,,")
    assert result.returncode == 0, result.stderr
    assert [path.name for path in tmp_path.glob("*.ran")] == ["b.ran"]


@pytest.mark.parametrize("args, message", [
    (["status", "--pid-file", ""], "--pid-file: empty path"),
    (["status", "--pid-file="], "--pid-file: empty path"),
    (["stop", "--pid-file", ""], "--pid-file: empty path"),
    (["start", "-cf", ""], "--config-file: empty path"),
    (["start", "-cf="], "--config-file: empty path"),
    (["check", "--config-file", ""], "--config-file: empty path"),
    (["history", "-cf", ""], "--config-file: empty path"),
])
def test_an_empty_path_is_a_usage_error(run_lynx, args, message):
    # Before: `status --pid-file ""` read the current directory as a pidfile and exited 1.
    assert_usage_error(run_lynx(*args), message)


def test_start_with_an_empty_pid_file_runs_nothing(run_lynx, pipeline, tmp_path):
    assert_usage_error(run_lynx("start", "-cf", str(pipeline), "-ni", "--pid-file", ""), "--pid-file: empty path")
    assert_nothing_ran(tmp_path)


def test_an_empty_log_file_or_ledger_means_none_and_the_default(run_lynx, pipeline, tmp_path):
    # What `lynx start -lf "$LOG" --ledger "$LEDGER"` with both unset has always meant.
    result = run_lynx("start", "-cf", str(pipeline), "-ni", "-lf", "", "--ledger", "")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "b.ran").exists() and (tmp_path / ".lynx" / "runs.jsonl").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lynx", "a.py", "a.ran", "b.py", "b.ran", "config.yaml"]


@pytest.mark.parametrize("args, message", [
    (["start", "--from", "a", "--only", "b"], "--from and --only cannot be used together"),
    (["start", "--only", "b", "--from", "a"], "--from and --only cannot be used together"),
    (["start", "-cf", "x", "-cf", "y"], "-cf/--config-file given twice"),
    (["start", "-cf", "x", "--config-file=y"], "-cf/--config-file given twice"),
    (["start", "-ni", "--non-interactive"], "-ni/--non-interactive given twice"),
    (["stop", "-y", "--yes"], "-y/--yes given twice"),
    (["history", "-n", "1", "-n", "2"], "-n given twice"),
    (["start", "extra"], "unexpected argument 'extra'"),
    (["start", "-cf", "x", "extra=1"], "unexpected argument 'extra=1'"),
    (["status", "-"], "unexpected argument '-'"),
])
def test_docopt_internals_do_not_leak(run_lynx, pipeline, tmp_path, args, message):
    # Before: "Warning: found unmatched (duplicate?) arguments [Option(None, '--only', 1, 'b')]".
    if args[0] == "start" and "-cf" not in args:
        args = [*args, "-cf", str(pipeline)]
    assert_usage_error(run_lynx(*args), message)
    assert_nothing_ran(tmp_path)


@pytest.mark.parametrize("args, message", [
    (["start", "-ls", "-5"], "--log-size: '-5' is not a whole number >= 0"),
    (["start", "-lbc", "-1"], "--log-backup-count: '-1' is not a whole number >= 0"),
    (["check", "--next", "-1"], "--next: '-1' is not a whole number >= 0"),
    (["stop", "--timeout", "-1"], "--timeout: '-1' is not a number of seconds >= 0"),
    (["stop", "--timeout", "-.5"], "--timeout: '-.5' is not a number of seconds >= 0"),
    (["history", "-n", "-5"], "-n: '-5' is not a whole number >= 1"),
    (["history", "-n", "0"], "-n: '0' is not a whole number >= 1"),
])
def test_a_negative_number_is_read_as_the_value_it_is(run_lynx, args, message):
    # Before: "`lynx start` has no option -5".
    assert_usage_error(run_lynx(*args), message)


def test_a_word_like_an_option_after_a_value_option_is_still_checked(run_lynx):
    assert_usage_error(run_lynx("start", "-lf", "-zz"), "`lynx start` has no option -zz")


@pytest.mark.parametrize("args, message", [
    (["-lf", "-ni"], "-lf/--log-file needs a value (FILE)"),
    (["-ni", "--from", "--only", "a"], "--from needs a value (STEP)"),
    (["-ni", "-ls"], "-ls/--log-size needs a value (BYTES)"),
    (["-ni", "--ledger", "-kr"], "--ledger needs a value (PATH)"),
])
def test_an_option_given_no_value_is_a_usage_error_not_the_next_option_taken_as_it(run_lynx, pipeline, tmp_path,
                                                                                    args, message):
    # Before: `-lf -ni` ran without -ni, logging to a file named --non-interactive (docopt takes the
    # next word, whatever it is, as the value).
    assert_usage_error(run_lynx("start", "-cf", str(pipeline), *args), message)
    assert_nothing_ran(tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a.py", "b.py", "config.yaml"]


@pytest.mark.parametrize("args, message", [
    (["start", "-cf"], "-cf/--config-file needs a value (FILE)"),
    (["check", "--after", "--json"], "--after needs a value (INSTANT)"),
    (["stop", "--timeout", "-y"], "--timeout needs a value (S)"),
    (["history", "-n", "-cf", "x.yaml"], "-n needs a value (N)"),
])
def test_each_command_says_which_option_has_no_value(run_lynx, args, message):
    assert_usage_error(run_lynx(*args), message)


def test_a_value_that_starts_with_a_dash_is_given_after_an_equals_sign(run_lynx, pipeline, tmp_path):
    result = run_lynx("start", "-cf", str(pipeline), "-ni", "-lf=-odd.log")
    assert result.returncode == 0, result.stderr
    assert "succeeded" in (tmp_path / "-odd.log").read_text()
    assert (tmp_path / "b.ran").exists()


def test_debug_shows_the_traceback_and_keeps_the_error_line_and_exit_status(run_lynx, pipeline, tmp_path):
    missing = run_lynx("check", "-cf", "missing.yaml", "--debug")
    assert missing.returncode == 2
    assert missing.stderr.startswith("Traceback (most recent call last):")
    assert missing.stderr.endswith("lynx: error: missing.yaml: config file not found (give another with "
                                   "--config-file)\n")
    plain = run_lynx("check", "-cf", "missing.yaml")
    assert plain.stderr == missing.stderr.splitlines(keepends=True)[-1] and plain.returncode == 2
    usage = run_lynx("history", "-n", "--debug")   # --debug taken as -n's value: still shown as asked
    assert usage.returncode == 2 and "Traceback" in usage.stderr
    assert usage.stderr.endswith("lynx: error: -n needs a value (N)\n")


def test_a_huge_log_backup_count_is_refused_before_anything_runs(run_lynx, pipeline, tmp_path):
    # Before: every rotation looped over 10^8 backup names (the standard library's doRollover): a hang.
    result = run_lynx("start", "-cf", str(pipeline), "-ni", "-lf", "rot.log", "-ls", "50", "-lbc", "100000000")
    assert_usage_error(result, "--log-backup-count: at most 1000, not '100000000'")
    assert_nothing_ran(tmp_path)
    assert not (tmp_path / "rot.log").exists()


def test_the_largest_log_backup_count_is_accepted(run_lynx, pipeline, tmp_path):
    result = run_lynx("start", "-cf", str(pipeline), "-ni", "-lf", "rot.log", "-lbc", "1000")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "b.ran").exists()


def test_help_names_every_accepted_log_level_and_keeps_the_default():
    options = USAGE.split("\nOptions:", 1)[1]
    text = " ".join(options.split("-ll, --log-level LEVEL", 1)[1].split("-ls,", 1)[0].split())
    assert all(level in text for level in LEVELS), text
    assert parse(["start"])["--log-level"] == "INFO"
    assert parse(["start"])["--log-backup-count"] == "3"


def test_an_empty_after_instant_is_a_usage_error_not_now(run_lynx, pipeline):
    assert_usage_error(run_lynx("check", "-cf", str(pipeline), "--after", ""),
                       "--after: '' is not an ISO-8601 instant with an offset (e.g. 2026-03-29T00:00:00+01:00)")


@pytest.mark.parametrize("argv", [
    ["start"], ["start", "-cf", "a.yaml", "-ni", "-kr", "-lf", "x.log", "-ls", "10", "-lbc", "0", "--from", "b"],
    ["start", "-bg", "--only", "a,b", "--pid-file", "p.json", "--ledger", "l.jsonl", "-ll", "debug", "--debug"],
    ["check", "--next", "3", "--after", "2026-01-01T00:00:00+00:00", "--json"], ["check", "-cf", "b.yaml"],
    ["stop"], ["stop", "-y", "--timeout", "2", "--pid-file", "p.json"], ["status", "--debug"],
    ["history", "-n", "4", "--ledger", "l.jsonl"],
])
def test_each_command_parses_as_the_whole_usage_text_would(argv):
    """parse() gives docopt only the command's own pattern (for speed): the values it reads are the ones
    the whole usage text gives, and every option of the command is there."""
    from docopt import docopt

    from lynx.cli import command_options, docopt_text, expand_aliases

    whole = docopt(docopt_text(), expand_aliases(argv), default_help=False)
    parsed = parse(argv)
    assert parsed == {key: value for key, value in whole.items() if key in parsed}
    assert parsed[argv[0]] is True
    keys = {name for name in command_options()[argv[0]] if name.startswith("--") or name == "-n"}  # docopt's names
    assert keys <= set(parsed)


def test_the_usage_text_is_read_into_each_commands_options_and_their_values():
    """check_words' spec comes from the usage text: the options each command takes, which take a value,
    their short spellings and the alternatives that exclude each other."""
    from lynx.cli import command_options, exclusive_options, short_forms, value_options

    allowed = command_options()
    assert set(allowed) == {"start", "check", "stop", "status", "history"}
    assert allowed["stop"] == {"--pid-file", "-y", "--yes", "--timeout", "--debug"}
    assert allowed["history"] == {"--config-file", "--ledger", "-n", "--debug"}
    assert allowed["start"] >= {"--config-file", "--log-backup-count", "--background", "--from", "--only"}
    assert value_options() == {
        "--config-file": "FILE", "--log-file": "FILE", "--log-level": "LEVEL", "--log-size": "BYTES",
        "--log-backup-count": "N", "--from": "STEP", "--only": "STEPS", "--pid-file": "PATH", "--ledger": "PATH",
        "-n": "N", "--next": "N", "--after": "INSTANT", "--timeout": "S"}
    assert short_forms() == {
        "--config-file": "-cf", "--log-file": "-lf", "--log-level": "-ll", "--log-size": "-ls",
        "--log-backup-count": "-lbc", "--non-interactive": "-ni", "--keep-running": "-kr", "--background": "-bg",
        "--yes": "-y", "--help": "-h"}
    assert exclusive_options() == [("--from", "--only")]


def test_docopt_sees_each_alias_spelled_long_where_it_stands_alone_and_its_own_entry_blanked():
    from lynx.cli import command_options, docopt_text, exclusive_options, short_forms, value_options

    usage = ("A tool.\n\nUsage:\n"
             "  lynx start [-cf FILE] [-lbc N] [--from STEP | --only STEPS]\n"
             "\n"
             "Options:\n"
             "  -cf, --config-file FILE    Its config; see -cf, not x-cf, -cfx or -cf-cf [default: a.yaml].\n"
             "  -lbc, --log-backup-count N  How many.\n"
             "  --from STEP                From here.\n"
             "  --only STEPS               Only these.\n")
    assert docopt_text(usage) == (
        "A tool.\n\nUsage:\n"
        "  lynx start [--config-file FILE] [--log-backup-count N] [--from STEP | --only STEPS]\n"
        "\n"
        "Options:\n"
        "       --config-file FILE    Its config; see --config-file, not x-cf, -cfx or -cf-cf [default: a.yaml].\n"
        "        --log-backup-count N  How many.\n"
        "  --from STEP                From here.\n"
        "  --only STEPS               Only these.\n")
    assert command_options(usage) == {"start": {"--config-file", "--log-backup-count", "--from", "--only"}}
    assert value_options(usage) == {"--config-file": "FILE", "--log-backup-count": "N", "--from": "STEP",
                                    "--only": "STEPS"}
    assert short_forms(usage) == {"--config-file": "-cf", "--log-backup-count": "-lbc"}
    assert exclusive_options(usage) == [("--from", "--only")]


def test_the_usage_readers_take_docopts_other_spellings():
    """A lowercase section title, synonyms without a comma, `--opt=VALUE`, a description line that
    starts with a dash, three alternatives and an empty one: read as docopt reads them, no crash."""
    from lynx.cli import command_options, exclusive_options, short_forms, value_options

    usage = ("A tool.\n\nUsage:\n"
             "  lynx start [-q] [--lvl=LEVEL] [--n N] [--a | --b | --c X] [--d | ]\n"
             "\n"
             "options:\n"
             "  -q --quiet     Say less.\n"
             "  --lvl=LEVEL    How loud.\n"
             "  --n N          How many;\n"
             "                 -1 means all.\n")
    assert command_options(usage) == {"start": {"-q", "--quiet", "--lvl", "--n", "--a", "--b", "--c", "--d"}}
    assert value_options(usage) == {"--lvl": "LEVEL", "--n": "N"}
    assert short_forms(usage) == {"--quiet": "-q"}
    assert exclusive_options(usage) == [("--a", "--b"), ("--a", "--c"), ("--b", "--c")]


@pytest.mark.parametrize("args, message", [
    (["start", "-ni=x"], "-ni/--non-interactive takes no value"),
    (["stop", "-y=no"], "-y/--yes takes no value"),
    (["history", "--debug=1"], "--debug takes no value"),
])
def test_a_flag_given_a_value_is_a_usage_error(run_lynx, args, message):
    assert_usage_error(run_lynx(*args), message)


def test_a_one_letter_option_takes_its_value_after_an_equals_sign_too():
    # `-cf=x` has always meant x; `-n=3` gave docopt "=3" while the checks before it read 3.
    assert parse(["history", "-n=3"])["-n"] == parse(["history", "-n", "3"])["-n"] == "3"
    assert parse(["stop", "-y", "--timeout=-1"])["--timeout"] == "-1"


def test_the_detached_child_reads_every_option_back_even_values_starting_with_a_dash():
    from lynx.background import child_arguments
    from lynx.launch import StartOptions

    options = StartOptions(config_file="-c.yaml", log_file="-l.log", log_level="DEBUG", log_size=10,
                           log_backup_count=0, interactive=False, keep_running=True, background=True,
                           pid_file="-p.json", start_at="-s", only=None, ledger="-r.jsonl")
    parsed = parse(["start", *child_arguments(options)])
    assert (parsed["--config-file"], parsed["--log-file"], parsed["--pid-file"], parsed["--from"],
            parsed["--ledger"]) == ("-c.yaml", "-l.log", "-p.json", "-s", "-r.jsonl")
    assert (parsed["--log-level"], parsed["--log-size"], parsed["--log-backup-count"]) == ("DEBUG", "10", "0")
    assert parsed["--non-interactive"] and parsed["--keep-running"] and not parsed["--background"]
    only = parse(["start", *child_arguments(options._replace(start_at=None, only="-a,b"))])
    assert only["--only"] == "-a,b" and only["--from"] is None
