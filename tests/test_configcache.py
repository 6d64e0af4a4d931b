"""The config cache: an unchanged config loads to the same Config without PyYAML; anything else composes."""

from __future__ import annotations

import marshal
import os
import subprocess
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

import lynx.config
from lynx import configcache
from lynx.config import load
from lynx.errors import ConfigError

# The kinds of node and scalar value a config holds: anchors merged more than once (shared nodes),
# ints in other bases, floats, booleans, nulls, dates, times with and without offsets, quoted, block
# and non-ASCII text, hooks, env, slurm options and a cron section with dates.
RICH = """\
executor: local
slurm: {partition: gpu, time: "01:00:00"}
cron:
  second: '*/10'
  minute: 010
  start_date: 2026-01-01
  end_date: 2036-01-01 10:20:30.5+05:30
  timezone: Europe/Berlin
hooks:
  on_start: [echo, started]
  on_success: ~
  on_failure: {command: "echo 'run failed'", timeout: 1.5e+1}
configs:
  - base: &base
      - script: tasks/train.py
        env: &env {SEED: 42, OCT: 0o17, HEX: 0x1F, RATE: 0.5, FAST: yes, DAY: 2026-02-03,
                   WHEN: 2026-02-03T04:05:06Z, TEXT: "größe ✓"}
        arguments:
          - "--epochs 3"
          - |
            --note
            two lines
        timeout: 2.5
        retries: 2
        retry_delay: 0
        continue_on_failure: false
steps:
  - <<: *base
  - {<<: *base, env: {<<: *env, SEED: 7}}
  - script: tasks/train.py
    arguments: ['--name', "quoted 'single'", plain words, -1, 1_000]
    cwd: tasks
"""


def python(code: str, config: Path, cache_home: Path) -> subprocess.CompletedProcess:
    """`python -c CODE CONFIG` in a process of its own, with this cache home; it must succeed."""
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home)}
    return subprocess.run([sys.executable, "-c", code, str(config)], capture_output=True, text=True, env=env,
                          timeout=30, check=True)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's own cache directory."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "lynx"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "train.py").write_text("print('train')\n")
    path = tmp_path / "pipeline.yaml"
    path.write_text(RICH)
    return path


@pytest.fixture
def composed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The sources config.load composed with PyYAML (the cache missed), in order."""
    calls: list[str] = []
    real = lynx.config.compose

    def compose(text: str, source: str):
        calls.append(source)
        return real(text, source)
    monkeypatch.setattr(lynx.config, "compose", compose)
    return calls


def test_a_cached_config_loads_to_the_same_config(cache: Path, config: Path, composed: list[str]) -> None:
    first = load(config)
    assert composed == [str(config)]
    assert [file.name for file in cache.iterdir()] == [os.path.basename(configcache.cache_file(str(config)))]
    second = load(config)
    assert composed == [str(config)], "the second load composed again"
    assert second == first
    # Spot checks that the comparison compares what it should: values of every kind came through.
    env = dict(first.steps[0].env)
    assert env == {"SEED": "42", "OCT": "0o17", "HEX": "0x1F", "RATE": "0.5", "FAST": "true",
                   "DAY": "2026-02-03", "WHEN": "2026-02-03T04:05:06Z", "TEXT": "größe ✓"}
    assert dict(second.steps[1].env)["SEED"] == "7"
    assert second.cron.values["minute"] == "010"
    assert repr(second.cron.values["end_date"]) == repr(first.cron.values["end_date"])
    assert second.cron.lines == first.cron.lines and second.steps[2].line == first.steps[2].line == 30
    assert second.hooks["on_failure"].timeout == 15.0


def test_an_unchanged_config_starts_without_importing_pyyaml(config: Path, tmp_path: Path) -> None:
    """The point of the cache, in real processes: the second start of the same text skips PyYAML."""
    probe = ("import sys; from lynx.config import load; config = load(sys.argv[1]); "
             "print('yaml' in sys.modules); print(repr(config))")
    runs = [python(probe, config, tmp_path / "cache").stdout.split("\n", 1) for _ in range(2)]
    assert [imported for imported, _ in runs] == ["True", "False"]
    assert runs[0][1] == runs[1][1]


def test_a_changed_config_is_composed_again(cache: Path, config: Path, composed: list[str]) -> None:
    argv = load(config).steps[0].argv
    config.write_text(RICH.replace("--epochs 3", "--epochs 4"))   # the same size: only the text differs
    changed = load(config).steps[0].argv
    assert changed[argv.index("--epochs") + 1] == "4" and argv[argv.index("--epochs") + 1] == "3"
    assert composed == [str(config)] * 2


def test_an_error_found_after_the_yaml_is_said_as_without_the_cache(cache: Path, config: Path, tmp_path: Path,
                                                                    composed: list[str],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Scripts and executables are checked at every load; a config that fails with its kept form is read
    again from its text, so the error is the one a cold load gives (lines: the first test)."""
    load(config)
    (tmp_path / "tasks" / "train.py").unlink()
    with pytest.raises(ConfigError) as cached:
        load(config)
    assert composed == [str(config)] * 2
    monkeypatch.setenv("XDG_CACHE_HOME", str(config))   # a file: no cache can be read or written there
    with pytest.raises(ConfigError) as cold:
        load(config)
    assert str(cached.value) == str(cold.value)
    assert str(cached.value).startswith(f"{config}:15: steps[0].script: file")


def kept(file: Path) -> tuple:
    """(stamp, text, node table) of a kept file."""
    return marshal.loads(marshal.loads(file.read_bytes())[2])


def keep(file: Path, stamp: object, text: object, table: object, form: int = configcache.FORMAT) -> None:
    """Write a kept file as write() would, its checksum right: what it holds is all a test changes."""
    payload = marshal.dumps((stamp, text, table))
    file.write_bytes(marshal.dumps((form, configcache._checksum(payload), payload)))


@pytest.mark.parametrize("damage", [
    "garbage", "truncated", "not a tuple", "a code object", "a flipped byte", "a node number out of range",
    "a negative node number", "a tag that is not text", "a value that is not a value", "a stamp that is no stamp",
    "another format",
])
def test_a_damaged_cache_is_a_miss_and_is_written_again(cache: Path, config: Path, composed: list[str],
                                                        damage: str) -> None:
    expected = load(config)
    file = Path(configcache.cache_file(str(config)))
    data = file.read_bytes()
    before = kept(file)
    stamp, text, table = before
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x01   # inside the payload: the checksum no longer holds
    bad_rows = {
        "a node number out of range": [table[0][:3] + ([(1, 10**6)],)],
        "a negative node number": [table[0][:3] + ([(-1, -1)],)],
        "a tag that is not text": [(table[0][0], 7, *table[0][2:])] + table[1:],
        "a value that is not a value": table[:-1] + [("scalar", "tag:yaml.org,2002:str", 1, None, "x", ("set", "x"))],
    }
    if damage in bad_rows:
        keep(file, stamp, text, bad_rows[damage])
    elif damage == "a stamp that is no stamp":   # not (path, time, size) triples
        keep(file, ((2**64, 0, 0),), text, table)
    elif damage == "another format":
        keep(file, stamp, text, table, form=configcache.FORMAT + 1)
    else:
        file.write_bytes({
            "garbage": b"\x00not marshal at all", "truncated": data[: len(data) // 2],
            "not a tuple": marshal.dumps([1, 2, 3]), "a code object": marshal.dumps(compile("1", "x", "exec")),
            "a flipped byte": bytes(flipped),
        }[damage])
    assert load(config) == expected
    assert composed == [str(config)] * 2
    assert kept(file) == before, "the damaged file was not written again"


def test_a_kept_form_that_fails_is_loaded_again_from_the_text_and_rewritten(cache: Path, config: Path,
                                                                            composed: list[str]) -> None:
    """Whatever made a kept form wrong (its checksum holds), an error it leads to is never the last word."""
    expected = load(config)
    file = Path(configcache.cache_file(str(config)))
    stamp, text, table = kept(file)
    wrong = [row[:4] + ("tasks/missing.py",) * 2 if row[0] == "scalar" and row[4] == "tasks/train.py" else row
             for row in table]
    assert wrong != table
    keep(file, stamp, text, wrong)
    assert load(config) == expected
    assert composed == [str(config)] * 2
    assert kept(file) == (stamp, text, table)


def test_another_pyyaml_or_another_lynx_is_a_miss(cache: Path, config: Path, composed: list[str]) -> None:
    """The kept form names every file of PyYAML's directory and of Lynx's modules that read the YAML, with
    times and sizes: an upgrade, an edit, another libyaml changes them."""
    import yaml

    load(config)
    file = Path(configcache.cache_file(str(config)))
    stamp, text, table = kept(file)
    directory, yaml_files, lynx_files = stamp
    assert directory == str(Path(yaml.__file__).parent)
    assert {"__init__.py", "scanner.py", "constructor.py"} <= {name for name, _, _ in yaml_files}
    assert [Path(path).name for path, _, _ in lynx_files] == ["yamlsafe.py", "configcache.py"]
    changed = [
        (directory, tuple((n, t - 1, z) if n == "scanner.py" else (n, t, z) for n, t, z in yaml_files), lynx_files),
        (directory, yaml_files[1:], lynx_files),   # a file more (or less) in the directory
        (directory, yaml_files, ((lynx_files[0][0], lynx_files[0][1], lynx_files[0][2] + 1), lynx_files[1])),
    ]
    for i, other in enumerate(changed):
        keep(file, other, text, table)
        load(config)
        assert composed == [str(config)] * (i + 2)


@pytest.mark.parametrize("shadow", ["a package", "a module"])
def test_a_yaml_first_on_the_path_is_a_miss(cache: Path, config: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch, shadow: str) -> None:
    """What counts is what `import yaml` would load now, not the PyYAML that composed the kept form."""
    load(config)
    first = tmp_path / "first"
    if shadow == "a package":
        (first / "yaml").mkdir(parents=True)
        (first / "yaml" / "__init__.py").write_text("")
    else:
        first.mkdir()
        (first / "yaml.py").write_text("")
    monkeypatch.syspath_prepend(str(first))
    assert configcache.read(str(config), config.read_text()) is None


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX owners and modes")
@pytest.mark.parametrize("whose", ["another user's file", "a file others may write", "a directory others may write"])
def test_a_cache_someone_else_could_have_written_is_not_read(cache: Path, config: Path, composed: list[str],
                                                              monkeypatch: pytest.MonkeyPatch, whose: str) -> None:
    """Another user who could write the kept form could choose the commands Lynx runs."""
    load(config)
    file = Path(configcache.cache_file(str(config)))
    if whose == "another user's file":
        real = os.geteuid()
        monkeypatch.setattr(os, "fstat", lambda fd, real_fstat=os.fstat: _owned_by(real_fstat(fd), real + 1))
    elif whose == "a file others may write":
        file.chmod(0o622)
    else:
        file.parent.chmod(0o777)
    load(config)
    assert composed == [str(config)] * 2
    if whose == "a directory others may write":
        assert sorted(p.name for p in file.parent.iterdir()) == [file.name]   # nothing new written there


def _owned_by(info: os.stat_result, uid: int) -> os.stat_result:
    fields = list(info)
    fields[4] = uid   # st_uid
    return os.stat_result(fields)


def test_kept_files_nobody_wrote_for_long_are_removed(cache: Path, config: Path, tmp_path: Path) -> None:
    load(config)
    old = cache / "config-0123456789abcdef.marshal"
    stale_tmp = cache / "config-0123456789abcdef.marshal.99.tmp"
    recent = cache / "config-fedcba9876543210.marshal"
    for path in (old, stale_tmp, recent):
        path.write_bytes(b"x")
    long_ago = time.time() - configcache.KEEP_SECONDS - 60
    os.utime(old, (long_ago, long_ago))
    os.utime(stale_tmp, (long_ago, long_ago))
    other = tmp_path / "other.yaml"
    other.write_text(RICH)
    load(other)   # a miss: a file is written, and the directory pruned
    assert not old.exists() and not stale_tmp.exists() and recent.exists()
    assert Path(configcache.cache_file(str(config))).exists()


@pytest.mark.parametrize("where", ["under a file", "a directory in the way"])
def test_a_cache_that_cannot_be_written_changes_nothing(tmp_path: Path, config: Path, composed: list[str],
                                                        monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    if where == "a directory in the way":   # the temporary file is written, the rename over fails
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
        Path(configcache.cache_file(str(config))).mkdir(parents=True)
    else:
        monkeypatch.setenv("XDG_CACHE_HOME", str(config / "cache"))
    assert load(config) == load(config)
    assert composed == [str(config)] * 2
    assert [p.name for p in tmp_path.rglob("*.tmp")] == []


def test_only_a_config_that_loads_is_kept(cache: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps:\n  - script: missing.py\n")
    with pytest.raises(ConfigError):
        load(bad)
    unsafe = tmp_path / "unsafe.yaml"
    unsafe.write_text("steps: !!python/object/apply:os.system [echo hi]\n")
    with pytest.raises(ConfigError):
        load(unsafe)
    assert not cache.exists()


def test_the_cache_is_private(cache: Path, config: Path) -> None:
    load(config)
    file = Path(configcache.cache_file(str(config)))
    assert file.stat().st_mode & 0o777 == 0o600
    assert cache.stat().st_mode & 0o777 == 0o700


def test_a_value_the_cache_cannot_keep_exactly_is_not_kept(cache: Path, tmp_path: Path) -> None:
    """SafeConstructor makes only plain values, dates and times; anything else leaves the config uncached."""
    import yaml

    text = "a: 1\n"
    root = yaml.compose(text)
    scalars = {id(node): {1} for node in (root.value[0][0], root.value[0][1])}   # a set: never a scalar's value
    configcache.write(str(tmp_path / "a.yaml"), text, root, scalars)
    assert not cache.exists() or list(cache.iterdir()) == []
    assert configcache.read(str(tmp_path / "a.yaml"), text) is None


def test_a_large_config_is_not_kept(cache: Path, tmp_path: Path) -> None:
    (tmp_path / "t.py").write_text("")
    path = tmp_path / "large.yaml"
    path.write_text("# " + "x" * configcache.MAX_TEXT + "\nsteps:\n  - script: t.py\n")
    load(path)
    assert not cache.exists()


def test_a_deep_graph_is_kept_without_recursion() -> None:
    """The node table is written and read breadth first: 5000 levels (far past the recursion limit)."""
    depth = 5000
    leaf = configcache.CachedNode("scalar", "tag:yaml.org,2002:int", depth, None, 1)
    leaf.value = "1"
    node = leaf
    for line in range(depth - 1, -1, -1):
        parent = configcache.CachedNode("sequence", "tag:yaml.org,2002:seq", line, None, None)
        parent.value = [node]
        node = parent
    table = marshal.loads(marshal.dumps(configcache._encode(node, {id(leaf): 1})))
    back = configcache._decode(table)[0]
    for line in range(depth):
        assert (back.id, back.start_mark.line) == ("sequence", line)
        back = back.value[0]
    assert (back.id, back.value, back.built, back.start_mark.line) == ("scalar", "1", 1, depth)


@pytest.mark.parametrize("value", [
    "text", "", 0, -(10**40), 1.5, float("inf"), True, False, None, b"\x00bytes",
    date(2026, 2, 3), datetime(2026, 2, 3, 4, 5, 6, 500000), datetime(2026, 2, 3, 4, 5, 6, tzinfo=timezone.utc),
    datetime(2036, 1, 1, 10, 20, 30, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
])
def test_every_value_safe_yaml_builds_comes_back_the_same(value: object) -> None:
    back = configcache._value(marshal.loads(marshal.dumps(configcache._kept_value(value))))
    assert type(back) is type(value) and back == value and repr(back) == repr(value)


def test_a_relative_cache_home_is_ignored(tmp_path: Path, config: Path, composed: list[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """XDG: a relative XDG_CACHE_HOME is invalid; Lynx keeps nothing rather than litter the current directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", "relative")
    assert load(config) == load(config)
    assert composed == [str(config)] * 2
    assert not (tmp_path / "relative").exists()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_a_fifo_or_a_symlink_where_the_cache_file_goes_is_a_miss(cache: Path, config: Path, tmp_path: Path) -> None:
    """Neither is followed nor waited on (a FIFO with no writer would block an open for ever); the kept
    file replaces them."""
    file = Path(configcache.cache_file(str(config)))
    file.parent.mkdir(parents=True)
    os.mkfifo(file)
    probe = "import sys; from lynx.config import load; print(len(load(sys.argv[1]).steps))"
    assert python(probe, config, tmp_path / "cache").stdout == "3\n"
    assert file.is_file() and not file.is_symlink()
    elsewhere = tmp_path / "elsewhere"
    kept = file.read_bytes()
    elsewhere.write_bytes(kept)
    file.unlink()
    file.symlink_to(elsewhere)
    assert configcache.read(str(config), config.read_text()) is None
    load(config)
    assert file.is_file() and not file.is_symlink()
    assert elsewhere.read_bytes() == kept, "the symlink's target was written"
    assert configcache.read(str(config), config.read_text()) is not None


def test_check_of_an_unchanged_config_imports_neither_pyyaml_nor_what_a_run_needs(tmp_path: Path) -> None:
    (tmp_path / "t.py").write_text("")
    path = tmp_path / "c.yaml"
    path.write_text("steps:\n  - script: t.py\n")
    code = ("import sys; from lynx.cli import main; assert main(['check', '-cf', sys.argv[1]]) == 0; "
            "print(sorted({'yaml', 'croniter', 'logging', 'subprocess', 'lynx.runner'} & set(sys.modules)))")
    runs = [python(code, path, tmp_path / "cache").stdout.splitlines()[-1] for _ in range(2)]
    assert runs == ["['yaml']", "[]"]


def test_an_interrupted_write_leaves_no_temporary_file(cache: Path, config: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(source: str, target: str) -> None:
        raise KeyboardInterrupt
    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        load(config)
    assert list(cache.iterdir()) == []


def test_a_kept_file_in_use_is_touched_so_that_pruning_spares_it(cache: Path, config: Path) -> None:
    load(config)
    file = Path(configcache.cache_file(str(config)))
    month_and_a_day = configcache.KEEP_SECONDS / 2 + 86400
    os.utime(file, (time.time() - month_and_a_day, time.time() - month_and_a_day))
    load(config)   # a hit
    assert time.time() - file.stat().st_mtime < 60
    week = 7 * 86400
    os.utime(file, (time.time() - week, time.time() - week))
    load(config)   # recent enough: not touched (a hit writes nothing)
    assert time.time() - file.stat().st_mtime > week - 60
