"""The output sink and the rotating log: every line kept, progress bars collapsed, sizes held."""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import re
import subprocess
import sys

import pytest
from conftest import lynx_env

from lynx.logs import open_log_file
from lynx.output import MAX_PENDING, Screen, StepOutput, collapse_progress

LINE = re.compile(rb"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} (\S+) \| (.*)$")


def collect():
    blocks = []
    return blocks, lambda block, head=b"": blocks.append(head + block)


def logged_lines(blocks):
    lines = b"".join(blocks).split(b"\n")
    assert lines[-1] == b""
    return [LINE.match(line).groups() for line in lines[:-1]]


def test_a_progress_line_collapses_to_what_the_terminal_finally_shows():
    assert collapse_progress(b"10%\r50%\r100%") == b"100%"
    assert collapse_progress(b"done\r") == b"done"
    assert collapse_progress(b"plain") == b"plain"


def test_chunks_split_mid_line_are_logged_as_whole_tagged_lines():
    blocks, log_block = collect()
    screen = io.BytesIO()
    out = StepOutput("train", screen, log_block)
    for chunk in (b"hel", b"lo\nwor", b"ld\n", b"tail"):
        out.write(chunk)
    out.close()
    assert screen.getvalue() == b"hello\nworld\ntail"
    assert logged_lines(blocks) == [(b"train", b"hello"), (b"train", b"world"), (b"train", b"tail")]


def test_the_screen_gets_carriage_returns_but_the_log_gets_the_final_state():
    blocks, log_block = collect()
    screen = io.BytesIO()
    out = StepOutput("bar", screen, log_block)
    for i in range(1000):
        out.write(b"\r%d%%" % (i // 10))
    out.write(b"\nnext\n")
    out.close()
    assert screen.getvalue().count(b"\r") == 1000
    assert logged_lines(blocks) == [(b"bar", b"99%"), (b"bar", b"next")]
    assert len(out.pending) == 0


def test_a_redrawn_line_never_holds_more_than_its_last_state():
    out = StepOutput("bar", None, lambda block, head: None)
    for i in range(10000):
        out.write(b"\rprogress %05d" % i)
    assert len(out.pending) < 32


def test_a_huge_line_without_newline_is_flushed_instead_of_growing_memory():
    blocks, log_block = collect()
    out = StepOutput("big", None, log_block)
    for _ in range(MAX_PENDING // 65536 + 2):
        out.write(b"x" * 65536)
    assert blocks, "a line past MAX_PENDING must have been written out"
    assert len(out.pending) <= MAX_PENDING


def _five_hundred_lines(tmp_path, backup_count: int) -> None:
    """Write 'line 0000' ... 'line 0499' through a 1000-byte rotating log, tmp_path/lynx.log."""
    handler = open_log_file(str(tmp_path / "lynx.log"), max_bytes=1000, backup_count=backup_count)
    out = StepOutput("s", None, handler.write_block)
    for i in range(500):
        out.write(b"line %04d\n" % i)
    handler.close()


def test_rotation_keeps_exactly_the_backup_count_and_each_file_within_size(tmp_path):
    _five_hundred_lines(tmp_path, backup_count=2)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["lynx.log", "lynx.log.1", "lynx.log.2"]
    for name in files:
        size = (tmp_path / name).stat().st_size
        assert 0 < size <= 1000
        assert (tmp_path / name).read_bytes().endswith(b"\n")
    newest = (tmp_path / "lynx.log").read_text().splitlines()
    assert newest[-1].endswith("s | line 0499")


def test_big_chunks_cut_mid_line_rotate_between_whole_lines_and_lose_none(tmp_path):
    path = tmp_path / "lynx.log"
    handler = open_log_file(str(path), max_bytes=4096, backup_count=50)
    out = StepOutput("s", None, handler.write_block)
    data = b"".join(b"line %05d\n" % i for i in range(2000))
    for start in range(0, len(data), 1000):   # chunks that end mid-line, many lines each
        out.write(data[start:start + 1000])
    out.close()
    handler.close()
    files = [tmp_path / f"lynx.log.{n}" for n in range(50, 0, -1)] + [path]
    files = [f for f in files if f.exists()]
    assert len(files) > 4
    for f in files:
        assert 0 < f.stat().st_size <= 4096 and f.read_bytes().endswith(b"\n")
    lines = logged_lines([f.read_bytes() for f in files])
    assert lines == [(b"s", b"line %05d" % i) for i in range(2000)]


def test_appending_to_an_existing_log_counts_its_size(tmp_path):
    path = tmp_path / "lynx.log"
    path.write_bytes(b"old\n" * 245)  # 980 bytes already there
    handler = open_log_file(str(path), max_bytes=1000, backup_count=1)
    handler.write_block(b"a line that does not fit any more\n")
    handler.close()
    assert (tmp_path / "lynx.log.1").read_bytes() == b"old\n" * 245
    assert path.read_bytes() == b"a line that does not fit any more\n"


def test_colour_codes_reach_the_screen_but_not_the_log():
    blocks, log_block = collect()
    screen = io.BytesIO()
    out = StepOutput("c", screen, log_block)
    out.write(b"\x1b[31mred\x1b[0m and \x1b[1;32mbold green\x1b[m\n")
    assert screen.getvalue().count(b"\x1b[") == 4
    assert logged_lines(blocks) == [(b"c", b"red and bold green")]


def test_lynx_lines_are_coloured_only_on_a_terminal_without_no_color(monkeypatch):
    from lynx.logs import use_colour

    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert use_colour(Tty()) and not use_colour(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_colour(Tty())


def test_a_head_goes_with_the_first_line_when_the_block_forces_a_rotation(tmp_path):
    path = tmp_path / "lynx.log"
    handler = open_log_file(str(path), max_bytes=40, backup_count=1)
    handler.write_block(b"0123456789012345678901234567890\n")   # 32 bytes
    handler.write_block(b"first\nsecond\n", head=b"HEAD ")        # "HEAD first\n" does not fit
    handler.close()
    assert (tmp_path / "lynx.log.1").read_bytes() == b"0123456789012345678901234567890\n"
    assert path.read_bytes() == b"HEAD first\nsecond\n"


def test_a_short_writev_is_finished_in_order(tmp_path, monkeypatch):
    from lynx import logfile

    real = os.writev
    monkeypatch.setattr(logfile.os, "writev", lambda fd, parts: real(fd, [bytes(parts[0])[:3]]))
    handler = open_log_file(str(tmp_path / "lynx.log"), max_bytes=0, backup_count=0)
    handler.write_block(b"line one\nline two\n", head=b"tag | ")
    handler.close()
    assert (tmp_path / "lynx.log").read_bytes() == b"tag | line one\nline two\n"


def _disk_full(handler):
    """Make the handler's file descriptor /dev/full (every write: ENOSPC); returns a restorer."""
    fd = handler.stream.fileno()
    saved, full = os.dup(fd), os.open("/dev/full", os.O_WRONLY)
    os.dup2(full, fd)
    os.close(full)

    def restore():
        os.dup2(saved, fd)
        os.close(saved)
    return restore


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux) to fail writes for real")
def test_a_full_disk_loses_what_cannot_be_written_says_so_once_and_the_log_tells_after(tmp_path):
    path = tmp_path / "lynx.log"
    handler = open_log_file(str(path), max_bytes=1 << 20, backup_count=1)
    told = []
    handler.notify = told.append
    logger = logging.getLogger("lynx.test-full-disk")
    logger.propagate, logger.handlers = False, [handler]
    out = StepOutput("s", None, handler.write_block)
    out.write(b"before\n")
    restore = _disk_full(handler)
    try:
        for i in range(3):
            out.write(b"lost %d\n" % i)          # raises nothing: the step must go on
        logger.warning("a record lost too")
    finally:
        restore()
    assert len(told) == 1 and "No space left on device" in told[0] and str(path) in told[0]
    out.write(b"after\n")
    handler.close()
    lines = path.read_text().splitlines()
    assert [line.split(" | ")[-1] for line in lines if " s | " in line] == ["before", "after"]
    notice = [line for line in lines if "could not be written to this log" in line]
    assert len(notice) == 1 and "lynx WARNING" in notice[0] and "(No space left on device)" in notice[0]
    assert lines.index(notice[0]) == 1   # between the last line written and the first after
    assert int(notice[0].split(": ", 1)[1].split()[0]) >= 3 * len(b"2026-01-01 00:00:00.000 s | lost 0\n")
    assert len(told) == 2 and "can be written again" in told[1]
    assert handler.size == path.stat().st_size


def test_a_screen_that_goes_away_is_dropped_once_and_the_log_still_gets_everything(tmp_path):
    read, write = os.pipe()
    lost = []
    screen = Screen(os.fdopen(write, "wb", buffering=0), lost.append)
    blocks, log_block = collect()
    out = StepOutput("s", screen, log_block)
    out.write(b"seen\n")
    assert os.read(read, 100) == b"seen\n"
    os.close(read)                       # the reader (say `head`) is gone
    out.write(b"one\n")
    out.write(b"two\n")
    assert len(lost) == 1 and isinstance(lost[0], BrokenPipeError)
    assert [text for _, text in logged_lines(blocks)] == [b"seen", b"one", b"two"]


def test_with_no_backups_to_keep_the_log_starts_over_instead_of_growing(tmp_path):
    path = tmp_path / "lynx.log"
    _five_hundred_lines(tmp_path, backup_count=0)
    assert [p.name for p in tmp_path.iterdir()] == ["lynx.log"]
    text = path.read_text()
    assert 0 < len(text) <= 1000 and text.endswith("s | line 0499\n")
    assert text.splitlines()[0].endswith(f" s | line {500 - len(text.splitlines()):04d}")   # whole lines


def test_a_log_file_under_a_plain_file_is_named_as_not_a_directory(tmp_path):
    from lynx.errors import UsageError

    (tmp_path / "notes").write_text("")
    with pytest.raises(UsageError, match=r"cannot open log file .*notes/run\.log: .*notes is not a directory$"):
        open_log_file(str(tmp_path / "notes" / "run.log"), 1000, 1)


def test_a_rotation_that_cannot_open_the_new_file_keeps_every_backup(tmp_path):
    path = tmp_path / "lynx.log"
    handler = open_log_file(str(path), max_bytes=100, backup_count=3)
    told = []
    handler.notify = told.append
    out = StepOutput("s", None, handler.write_block)
    for i in range(8):
        out.write(b"line %d %s\n" % (i, b"x" * 60))   # one line a file: .1, .2, .3 get filled

    def no_inode_left():
        raise OSError(28, "No space left on device")
    handler._open = no_inode_left
    out.write(b"line 8\n")   # rotates (the files move up once), then cannot create the new file
    backups = {n: (tmp_path / f"lynx.log.{n}").read_bytes() for n in (1, 2, 3)}
    assert b"line 7" in backups[1]
    for i in range(9, 12):
        out.write(b"line %d %s\n" % (i, b"x" * 60))   # each would rotate again if the count stayed high
    assert {n: (tmp_path / f"lynx.log.{n}").read_bytes() for n in (1, 2, 3)} == backups
    assert len(told) == 1 and "No space left on device" in told[0]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux) to fail writes for real")
def test_the_line_saying_what_was_lost_keeps_the_file_within_its_size(tmp_path):
    path = tmp_path / "lynx.log"
    handler = open_log_file(str(path), max_bytes=300, backup_count=2)
    handler.notify = lambda text: None
    out = StepOutput("s", None, handler.write_block)
    out.write(b"a" * 200 + b"\n")
    restore = _disk_full(handler)
    try:
        out.write(b"lost\n")
    finally:
        restore()
    out.write(b"after\n")
    handler.close()
    sizes = {p.name: p.stat().st_size for p in tmp_path.iterdir()}
    assert all(size <= 300 for size in sizes.values()), sizes
    assert "could not be written to this log" in path.read_text() and "s | after" in path.read_text()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux) to fail writes for real")
def test_a_screen_with_trouble_that_is_not_the_end_is_told_once_and_kept():
    told = []
    with open("/dev/full", "wb", buffering=0) as full:
        screen = Screen(full, told.append)
        screen.write(b"one\n")
        screen.write(b"two\n")
        assert screen.stream is full   # a full disk may empty again: the screen is not given up
    assert len(told) == 1 and told[0].errno == errno.ENOSPC


def test_a_non_blocking_stdout_gets_every_byte_in_order():
    import fcntl
    import threading

    read, write = os.pipe()
    fcntl.fcntl(write, fcntl.F_SETFL, fcntl.fcntl(write, fcntl.F_GETFL) | os.O_NONBLOCK)
    received = bytearray()

    def slow_reader():
        while chunk := os.read(read, 4096):
            received.extend(chunk)
    reader = threading.Thread(target=slow_reader, daemon=True)
    reader.start()
    told = []
    with os.fdopen(write, "wb", buffering=0) as stream:
        screen = Screen(stream, told.append)
        data = b"".join(b"line %06d\n" % i for i in range(100_000))   # 1.2 MB: far more than a pipe holds
        screen.write(data)
    reader.join(timeout=30)
    os.close(read)
    assert bytes(received) == data and told == []


# --- logging.handlers without socket, pickle and queue ---------------------------------------------


def test_a_run_with_a_log_file_imports_neither_socket_nor_pickle_nor_queue(tmp_path, write_config):
    config = write_config("steps:\n  - command: [{py}, -c, \"print('hi')\"]\n")
    log = tmp_path / "lynx.log"
    code = ("import sys; from lynx.cli import main; "
            f"code = main(['start', '-cf', {str(config)!r}, '-lf', {str(log)!r}]); "
            "print(code, sorted({'socket', 'pickle', 'queue'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, cwd=tmp_path,
                         env=lynx_env(), check=False)
    assert out.stdout.strip().splitlines()[-1] == "0 []", out.stderr
    assert "python | hi" in log.read_text()


def test_logging_handlers_network_and_queue_handlers_still_work_once_lynx_logfile_is_loaded():
    # Their modules are imported on first use instead; a later `import socket` gets the real one.
    code = ("import logging, sys, lynx.logfile, logging.handlers as h; "
            "before = sorted({'socket', 'pickle', 'queue'} & set(sys.modules)); "
            "record = logging.makeLogRecord({'msg': 'x'}); "
            "pickled = h.SocketHandler('localhost', 9).makePickle(record); "
            "import queue, socket; q = queue.Queue(); h.QueueHandler(q).handle(record); "
            "print(before, len(pickled) > 4, q.get_nowait().msg, h.socket.AF_INET == socket.AF_INET, "
            "type(sys.modules['socket']).__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
                         env=lynx_env(), check=False)
    assert out.stdout.strip() == "[] True x True module", out.stderr


def test_a_run_once_imports_no_traceback_datetime_or_json_and_logging_still_formats_exceptions(tmp_path,
                                                                                                   write_config):
    # logging is imported with traceback stood in for (lazyimport.import_logging); a run's times are
    # time.time() values; the ledger line is written by ledger.to_json. An exception logged after the
    # run still gets its traceback.
    config = write_config("steps:\n  - command: [{py}, -c, \"print('hi')\"]\n")
    warm = subprocess.run([sys.executable, "-m", "lynx", "check", "-cf", str(config)], capture_output=True,
                          timeout=30, env=lynx_env(), check=False)   # its YAML kept: PyYAML imports datetime
    assert warm.returncode == 0, warm.stderr
    code = ("import sys; from lynx.cli import main; "
            f"code = main(['start', '-cf', {str(config)!r}, '-ni']); "
            "print(code, sorted({'traceback', 'datetime', 'shlex', 'textwrap', 'json'} & set(sys.modules))); "
            "import logging; "
            "exec('try:\\n 1/0\\nexcept ZeroDivisionError:\\n logging.getLogger(\\'t\\').exception(\\'boom\\')'); "
            "print(type(sys.modules['traceback']).__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, cwd=tmp_path,
                         env=lynx_env(), check=False)
    assert out.stdout.strip().splitlines()[-2:] == ["0 []", "module"], out.stderr
    assert "Traceback (most recent call last)" in out.stderr and "ZeroDivisionError" in out.stderr
    ledger_lines = (config.parent / ".lynx" / "runs.jsonl").read_text().splitlines()   # written all the same
    assert json.loads(ledger_lines[-1])["result"] == "ok"


@pytest.mark.parametrize("target", ["device", "regular file"])
def test_a_log_that_is_not_a_regular_file_is_written_to_but_never_rotated(tmp_path, write_config, target):
    # -lf /dev/null or /dev/stderr (a symlink, to a file under `2> err.log`) as root must never rename
    # them: here symlinks in tmp_path stand in.
    link = tmp_path / "lynx.log"
    link.symlink_to(os.devnull if target == "device" else tmp_path / "err.log")
    config = write_config("steps:\n  - command: [{py}, -c, \"[print('x' * 99) for _ in range(500)]\"]\n")
    out = subprocess.run([sys.executable, "-m", "lynx", "start", "-cf", str(config), "-lf", str(link),
                          "-ls", "2000", "-lbc", "2"], capture_output=True, text=True, timeout=30, cwd=tmp_path,
                         env=lynx_env(), check=False)
    assert out.returncode == 0, out.stderr
    assert link.is_symlink() and os.readlink(link) == (os.devnull if target == "device" else str(tmp_path / "err.log"))
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("lynx.log")) == ["lynx.log"]
    if target == "regular file":
        assert (tmp_path / "err.log").read_text().count("python | " + "x" * 99) == 500   # nothing lost


def test_a_log_file_deleted_or_its_directory_removed_mid_run_is_written_again(tmp_path, monkeypatch):
    from lynx import logfile

    monkeypatch.setattr(logfile, "CHECK_SECONDS", 0)   # checked at every write here, not once a second
    directory = tmp_path / "logs"
    path = directory / "lynx.log"
    directory.mkdir()
    handler = open_log_file(str(path), 10_000, 2)
    told = []
    handler.notify = told.append
    try:
        handler.write_block(b"s | one\n")
        path.unlink()                      # deleted: the next line starts a new file
        handler.write_block(b"s | two\n")
        assert path.read_bytes() == b"s | two\n"
        path.unlink()
        directory.rmdir()                  # its directory removed: lost, counted, and said
        handler.write_block(b"s | three\n")
        directory.mkdir()                  # back: the log goes on and says how much it missed
        handler.write_block(b"s | four\n")
        assert path.read_bytes().endswith(b"s | four\n")
        assert b"10 bytes of output and records could not be written" in path.read_bytes()
    finally:
        handler.close()
    assert told[0] == f"the log file {path} was removed or replaced; writing a new one"


@pytest.mark.parametrize("put_there", ["a FIFO with no reader", "a symlink"])
def test_a_log_path_replaced_mid_run_by_a_fifo_or_a_symlink_never_blocks_nor_rotates(tmp_path, monkeypatch,
                                                                                   put_there):
    from lynx import logfile

    monkeypatch.setattr(logfile, "CHECK_SECONDS", 0)
    path, target = tmp_path / "lynx.log", tmp_path / "elsewhere.log"
    handler = open_log_file(str(path), 200, 2)
    try:
        handler.write_block(b"s | before\n")
        path.unlink()
        if put_there == "a symlink":
            path.symlink_to(target)
        else:
            os.mkfifo(path)
        for i in range(20):   # ten times the log size: rotations would be due
            handler.write_block(b"s | after %02d\n" % i)
    finally:
        handler.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["lynx.log"] + ["elsewhere.log"] * (
        put_there == "a symlink"))
    if put_there == "a symlink":
        assert path.is_symlink() and target.read_bytes().count(b"s | after") == 20



def test_a_fifo_with_no_reader_as_the_log_is_an_error_at_once_not_a_hang(tmp_path, write_config):
    fifo = tmp_path / "log.fifo"
    os.mkfifo(fifo)
    config = write_config("steps:\n  - command: [{py}, -c, pass]\n")
    out = subprocess.run([sys.executable, "-m", "lynx", "start", "-cf", str(config), "-lf", str(fifo)],
                         capture_output=True, text=True, timeout=30, cwd=tmp_path, env=lynx_env(), check=False)
    assert (out.returncode, out.stderr.strip()) == (2, f"lynx: error: cannot open log file {fifo}: a FIFO with no reader")
