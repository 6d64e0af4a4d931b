"""config.load: the seed's YAML format, every step form, and one-line errors naming file, line and key."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

from lynx.config import Config, load
from lynx.errors import ConfigError

# The "YAML Config File" example of the seed README, verbatim: users' configs look like this.
SEED_EXAMPLE = """\
cron:
  day_of_week: thu
  hour: '*'
  minute: '*'
  second: '*/10'

configs:
  - preprocess: &preprocess
        - script: tasks/preprocess.py
          arguments:
            - "--input_file data/dummy.data"
            - "nr_images=500"
            - "filter=true"
  - training: &training
      - script: tasks/train.py
  - validation: &validation
      - script: tasks/validate.py
        arguments:
          - "--input_file data/dummy.data --forty_two 42"
  - deployment: &deployment
      - script: tasks/deploy.py

steps:
  - <<: *preprocess
  - <<: *training
  - <<: *validation
  - <<: *deployment
"""


def make_executable(path: Path, text: str = "#!/bin/sh\nexit 0\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


@pytest.fixture
def conf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config directory with task scripts; the current directory is elsewhere, as for a real user."""
    conf = tmp_path / "conf"
    for name in ("preprocess", "train", "validate", "deploy"):
        path = conf / "tasks" / f"{name}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("print('hi')\n")
    make_executable(conf / "tasks" / "run.sh")
    (conf / "tasks" / "plain.sh").write_text("echo not executable\n")
    (conf / "data").mkdir()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    return conf


def load_text(conf: Path, text: str, name: str = "config.yaml") -> Config:
    path = conf / name
    path.write_text(textwrap.dedent(text))
    return load(path)


def argv_tail(config: Config) -> list:
    """Each step's argv without the interpreter and script: just the arguments."""
    return [list(step.argv[2:]) for step in config.steps]


# --- the seed's format ---------------------------------------------------------------------------------

def test_the_seed_readme_example_loads_verbatim(conf: Path) -> None:
    config = load_text(conf, SEED_EXAMPLE)
    tasks = conf / "tasks"
    assert [step.name for step in config.steps] == ["preprocess", "training", "validation", "deployment"]
    assert [step.argv for step in config.steps] == [
        (sys.executable, str(tasks / "preprocess.py"), "--input_file", "data/dummy.data", "nr_images=500",
         "filter=true"),
        (sys.executable, str(tasks / "train.py")),
        (sys.executable, str(tasks / "validate.py"), "--input_file", "data/dummy.data", "--forty_two", "42"),
        (sys.executable, str(tasks / "deploy.py")),
    ]
    assert [step.script for step in config.steps] == [str(tasks / f"{n}.py") for n in
                                                      ("preprocess", "train", "validate", "deploy")]
    assert [step.line for step in config.steps] == [24, 25, 26, 27]
    assert config.path == str(conf / "config.yaml")


def test_the_seed_readme_example_keeps_its_cron_section_raw_with_lines(conf: Path) -> None:
    cron = load_text(conf, SEED_EXAMPLE).cron
    assert cron.values == {"day_of_week": "thu", "hour": "*", "minute": "*", "second": "*/10"}
    assert cron.lines == {"day_of_week": 2, "hour": 3, "minute": 4, "second": 5}
    assert cron.line == 1
    assert cron.where("second") == f"{conf / 'config.yaml'}:5: cron.second"


@pytest.mark.parametrize("configs", [
    "configs:\n  - train:\n      - script: tasks/train.py\n  - check:\n      - script: tasks/validate.py\n",
    "configs:\n  - train:\n      script: tasks/train.py\n  - check:\n      script: tasks/validate.py\n",
    "configs:\n  train:\n    - script: tasks/train.py\n  check:\n    script: tasks/validate.py\n",
], ids=["seed list of lists", "list of mappings", "plain mapping"])
def test_steps_may_name_configs_in_any_configs_form(conf: Path, configs: str) -> None:
    config = load_text(conf, configs + "steps:\n  - train\n  - check\n")
    assert [step.name for step in config.steps] == ["train", "check"]
    assert [os.path.basename(step.script) for step in config.steps] == ["train.py", "validate.py"]


def test_a_step_may_be_a_plain_mapping_named_after_its_script(conf: Path) -> None:
    config = load_text(conf, """\
        steps:
          - script: tasks/train.py
            arguments: ["--epochs 3"]
        """)
    assert config.steps[0].name == "train"
    assert config.steps[0].argv[1:] == (str(conf / "tasks" / "train.py"), "--epochs", "3")
    assert config.cron is None


def test_a_merged_config_can_be_overridden_by_the_step(conf: Path) -> None:
    config = load_text(conf, """\
        configs:
          train: &train
            script: tasks/train.py
            arguments: ["--epochs 3"]
            timeout: 60
        steps:
          - <<: *train
            arguments: ["--epochs 9"]
          - <<: *train
        """)
    first, second = config.steps
    assert (first.name, argv_tail(config)[0], first.timeout) == ("train", ["--epochs", "9"], 60.0)
    assert (second.name, argv_tail(config)[1]) == ("train-2", ["--epochs", "3"])


def test_a_merge_of_several_mappings_lets_the_first_one_win(conf: Path) -> None:
    config = load_text(conf, """\
        configs:
          fit: &fit {script: tasks/train.py}
          check: &check {script: tasks/validate.py, arguments: [--strict]}
        steps:
          - <<: [*fit, *check]
        """)
    assert config.steps[0].name == "fit"
    assert config.steps[0].script == str(conf / "tasks" / "train.py")
    assert argv_tail(config) == [["--strict"]]


def test_unused_configs_are_not_checked_beyond_their_shape(conf: Path) -> None:
    config = load_text(conf, """\
        configs:
          - old: [{script: tasks/gone.py}]
          - train: [{script: tasks/train.py}]
        steps: [train]
        """)
    assert [step.name for step in config.steps] == ["train"]


# --- names -------------------------------------------------------------------------------------------

def test_an_explicit_name_on_the_step_wins_over_the_config_name(conf: Path) -> None:
    config = load_text(conf, """\
        configs:
          train: &train {script: tasks/train.py, name: ignored}
        steps:
          - <<: *train
            name: fit the model
          - <<: *train
        """)
    assert [step.name for step in config.steps] == ["fit the model", "train"]


def test_a_name_merged_from_an_anchor_outside_configs_is_used(conf: Path) -> None:
    config = load_text(conf, """\
        steps:
          - &base {script: tasks/train.py, name: fit}
          - <<: *base
        """)
    assert [step.name for step in config.steps] == ["fit", "fit-2"]


def test_steps_that_would_share_a_name_get_numbered_suffixes(conf: Path) -> None:
    config = load_text(conf, "steps:\n" + "  - script: tasks/train.py\n" * 3)
    assert [step.name for step in config.steps] == ["train", "train-2", "train-3"]


def test_an_automatic_name_steps_aside_for_an_explicit_one(conf: Path) -> None:
    config = load_text(conf, """\
        steps:
          - script: tasks/train.py
          - {script: tasks/validate.py, name: train}
          - {script: tasks/deploy.py, name: train-2}
        """)
    assert [step.name for step in config.steps] == ["train-3", "train", "train-2"]


def test_a_command_step_is_named_after_its_program(conf: Path) -> None:
    config = load_text(conf, "steps:\n  - command: tasks/run.sh --fast\n")
    assert config.steps[0].name == "run.sh"


# --- paths ---------------------------------------------------------------------------------------------

def test_a_relative_script_is_found_next_to_the_config_first(conf: Path) -> None:
    make_executable(Path.cwd() / "tasks" / "train.py")
    config = load_text(conf, "steps:\n  - script: tasks/train.py\n")
    assert config.steps[0].script == str(conf / "tasks" / "train.py")


def test_a_relative_script_falls_back_to_the_current_directory(conf: Path) -> None:
    make_executable(Path.cwd() / "local" / "job.py")
    config = load_text(conf, "steps:\n  - script: local/job.py\n")
    assert config.steps[0].script == str(Path.cwd() / "local" / "job.py")
    assert config.steps[0].argv == (sys.executable, str(Path.cwd() / "local" / "job.py"))


def test_an_absolute_script_path_is_used_as_is(conf: Path, tmp_path: Path) -> None:
    script = make_executable(tmp_path / "abs" / "job.py")
    config = load_text(conf, f"steps:\n  - script: {script}\n")
    assert config.steps[0].script == str(script)


def test_the_config_path_becomes_absolute_but_errors_quote_it_as_given(
        conf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(conf.parent)
    (conf / "config.yaml").write_text("steps:\n  - script: tasks/train.py\n")
    (conf / "bad.yaml").write_text("steps:\n  - scirpt: tasks/train.py\n")
    assert load("conf/config.yaml").path == str(conf / "config.yaml")
    with pytest.raises(ConfigError, match=r"^conf/bad\.yaml:2: steps\[0\]\.scirpt: "):
        load("conf/bad.yaml")


def test_a_step_cwd_is_relative_to_the_config_directory(conf: Path) -> None:
    config = load_text(conf, "steps:\n  - {script: tasks/train.py, cwd: data}\n")
    assert config.steps[0].cwd == str(conf / "data")


# --- argv ----------------------------------------------------------------------------------------------

def test_numbers_and_booleans_become_the_text_a_user_reads(conf: Path) -> None:
    config = load_text(conf, """\
        steps:
          - script: tasks/train.py
            arguments: [42, 1.5, 1.50, 2024-01-01, true, false, yes, "--flag no", "filter=true"]
        """)
    assert argv_tail(config) == [["42", "1.5", "1.50", "2024-01-01", "true", "false", "true", "--flag", "no",
                                  "filter=true"]]


def test_shell_quoting_keeps_quoted_words_together(conf: Path) -> None:
    config = load_text(conf, """\
        steps:
          - script: tasks/train.py
            arguments: ["--msg 'hello world'", '--path "a b/c"']
          - script: tasks/train.py
            arguments: "--one 1 --two 'x y'"
        """)
    assert argv_tail(config) == [["--msg", "hello world", "--path", "a b/c"], ["--one", "1", "--two", "x y"]]


def test_an_executable_script_that_is_not_python_runs_directly(conf: Path) -> None:
    config = load_text(conf, "steps:\n  - {script: tasks/run.sh, arguments: [go]}\n")
    assert config.steps[0].argv == (str(conf / "tasks" / "run.sh"), "go")


def test_a_python_step_may_name_another_interpreter(
        conf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    venv_python = make_executable(conf / "venv" / "bin" / "python")
    make_executable(tmp_path / "bin" / "mypython")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    config = load_text(conf, """\
        steps:
          - {script: tasks/train.py, python: venv/bin/python}
          - {script: tasks/validate.py, python: mypython}
        """)
    assert config.steps[0].argv == (str(venv_python), str(conf / "tasks" / "train.py"))
    assert config.steps[1].argv[0] == str(tmp_path / "bin" / "mypython")


def test_a_command_string_is_split_and_its_program_found_on_path(
        conf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tool = make_executable(tmp_path / "bin" / "tool")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    config = load_text(conf, """\
        steps:
          - command: tool --label 'a b'
            arguments: [extra]
          - command: [tool, "a b", 3]
        """)
    assert config.steps[0].argv == (str(tool), "--label", "a b", "extra")
    assert config.steps[1].argv == (str(tool), "a b", "3")
    assert config.steps[0].script is None


def test_a_command_with_a_path_is_resolved_like_a_script(conf: Path) -> None:
    config = load_text(conf, "steps:\n  - command: tasks/run.sh --fast\n")
    assert config.steps[0].argv == (str(conf / "tasks" / "run.sh"), "--fast")


# --- other step keys -----------------------------------------------------------------------------------

def test_step_options_are_read_into_the_step(conf: Path) -> None:
    step = load_text(conf, """\
        steps:
          - script: tasks/train.py
            timeout: 2.5
            retries: 2
            retry_delay: 1
            env: {SEED: 42, FAST: true, MODE: full, RATE: 0.5}
            cwd: data
            continue_on_failure: true
        """).steps[0]
    assert (step.timeout, step.retries, step.retry_delay) == (2.5, 2, 1.0)
    assert step.env == {"SEED": "42", "FAST": "true", "MODE": "full", "RATE": "0.5"}
    assert (step.cwd, step.continue_on_failure) == (str(conf / "data"), True)


def test_a_key_left_empty_means_its_default(conf: Path) -> None:
    step = load_text(conf, """\
        steps:
          - script: tasks/train.py
            arguments:
            timeout:
            env:
            name:
        cron:
        """).steps[0]
    assert (step.name, step.argv[2:], step.timeout, step.env) == ("train", (), None, {})


def test_cron_values_keep_their_yaml_types(conf: Path) -> None:
    cron = load_text(conf, "steps: [{script: tasks/train.py}]\ncron:\n  hour: 10\n  minute: '*/5'\n").cron
    assert cron.values == {"hour": 10, "minute": "*/5"}
    assert cron.lines == {"hour": 3, "minute": 4}


def test_cron_numbers_yaml_would_read_as_octal_or_base_60_are_taken_as_written(conf: Path) -> None:
    # YAML 1.1 reads `minute: 010` as 8 and `second: 1:30` as 90; nobody writing a schedule means that.
    cron = load_text(conf, "steps: [{script: tasks/train.py}]\ncron:\n  minute: 010\n  hour: 1:30\n").cron
    assert cron.values == {"minute": "010", "hour": "1:30"}


# --- bad configs ---------------------------------------------------------------------------------------

MISSING, DIRECTORY = object(), object()

BAD_CONFIGS = [
    # (case, config text, line of the error or None, fragments the message must contain)
    ("missing file", MISSING, None, ["config file not found (give another with --config-file)"]),
    ("directory instead of a file", DIRECTORY, None, ["is a directory", "--config-file"]),
    ("a tab in the indentation", "steps:\n  - script: tasks/train.py\n\targuments: []\n", 3,
     ["not valid YAML", "spaces, not tabs"]),
    ("a key indented wrongly", "steps:\n  - script: tasks/train.py\n arguments: [a]\n", 3, ["not valid YAML"]),
    ("two documents", "steps: []\n---\nsteps: []\n", 2, ["not valid YAML", "single document"]),
    ("an empty file", "", None, ["empty", "`steps:`"]),
    ("only a comment", "# nothing yet\n", None, ["empty", "`steps:`"]),
    ("top level a list", "- script: tasks/train.py\n", 1, ["expected a mapping with `steps:`", "got a list"]),
    ("top level a scalar", "hello\n", 1, ["expected a mapping", "got a string ('hello')"]),
    ("steps missing", "# pipeline\ncron:\n  minute: 1\n", 2, ["steps: missing"]),
    ("steps empty", "steps: []\n", 1, ["steps: is empty"]),
    ("steps a mapping", "steps:\n  script: tasks/train.py\n", 1, ["steps: expected a list of steps, got a mapping"]),
    ("steps a string", "steps: train\n", 1, ["steps: expected a list of steps, got a string ('train')"]),
    ("a step that is an integer", "steps:\n  - script: tasks/train.py\n  - 42\n", 3,
     ["steps[1]: expected a mapping", "got an integer (42)"]),
    ("an unknown step key", "steps:\n  - scirpt: tasks/train.py\n", 2,
     ["steps[0].scirpt: unknown key; did you mean 'script'?"]),
    ("an unknown step key left empty", "steps:\n  - script: tasks/train.py\n    argumnets:\n", 3,
     ["steps[0].argumnets: unknown key; did you mean 'arguments'?"]),
    ("an unknown top-level key", "step:\n  - script: tasks/train.py\n", 1,
     ["step: unknown key; did you mean 'steps'?"]),
    ("a script missing on disk", "steps:\n  - script: tasks/missing.py\n", 2,
     ["steps[0].script: file 'tasks/missing.py' not found", "{conf}/tasks/missing.py", "{cwd}/tasks/missing.py"]),
    ("both script and command", "steps:\n  - script: tasks/train.py\n    command: echo hi\n", 3,
     ["steps[0].command: give `script` or `command`, not both"]),
    ("neither script nor command", "steps:\n  - arguments: [a]\n", 2, ["steps[0]: needs `script:`", "`command:`"]),
    ("arguments a mapping", "steps:\n  - script: tasks/train.py\n    arguments:\n      input: a.csv\n", 3,
     ["steps[0].arguments: expected a list of strings, got a mapping"]),
    ("arguments holding a mapping", ("steps:\n  - script: tasks/train.py\n    arguments:\n      - --epochs 3\n"
     "      - {input: a.csv}\n"), 5, ["steps[0].arguments[1]: expected a string, number or boolean, got a mapping"]),
    ("an argument with an unclosed quote", "steps:\n  - script: tasks/train.py\n    arguments: [\"--msg 'hi\"]\n",
     3, ["steps[0].arguments[0]: cannot split", "No closing quotation"]),
    ("a python object tag that would run a command", ("steps:\n  - script: tasks/train.py\n    arguments:\n"
     "      - !!python/object/apply:os.system [\"touch {ran}\"]\n"), 4,
     ["steps[0].arguments[0]: refused the tag !!python/object/apply:os.system"]),
    ("a python name tag", "steps:\n  - !!python/name:os.system\n", 2,
     ["steps[0]: refused the tag !!python/name:os.system"]),
    ("a python tag in an unused corner", "steps: [train]\ncron:\n  hour: !!python/object/apply:os.system [x]\n",
     3, ["cron.hour: refused the tag !!python/object/apply:os.system"]),
    ("an unknown tag", "steps:\n  - !shell rm -rf\n", 2, ["steps[0]: unknown tag !shell"]),
    ("a value that defies its tag", "steps:\n  - script: tasks/train.py\n    retries: !!int many\n", 3,
     ["steps[0].retries: cannot read 'many' as !!int"]),
    ("a merge of an undefined anchor", "steps:\n  - <<: *nope\n", 2, ["found undefined alias 'nope'"]),
    ("a merge of a scalar", "steps:\n  - <<: 5\n", 2, ["steps[0].<<: `<<` merges a mapping", "an integer (5)"]),
    ("a recursive alias", "steps:\n  - &loop [*loop]\n", 2, ["steps[0][0]:", "cannot be recursive"]),
    ("a step naming an unknown config", "configs:\n  train: {script: tasks/train.py}\nsteps:\n  - trian\n", 4,
     ["steps[0]: no config named 'trian'; did you mean 'train'?"]),
    ("a step naming a config without configs", "steps:\n  - train\n", 2, ["no `configs:` section"]),
    ("configs a string", "configs: train\nsteps:\n  - script: tasks/train.py\n", 1,
     ["configs: expected a list", "got a string ('train')"]),
    ("a configs entry that is not a mapping", "configs:\n  - train\nsteps: [train]\n", 2,
     ["configs[0]: expected `name: {script: ...}`"]),
    ("a config holding two mappings", ("configs:\n  - train:\n      - script: a.py\n      - script: b.py\n"
     "steps: [train]\n"), 3, ["configs.train: expected a mapping", "a list of 2 items"]),
    ("a config defined twice", "configs:\n  - train: {script: a.py}\n  - train: {script: b.py}\nsteps: [train]\n",
     3, ["configs.train: duplicate config name"]),
    ("a key given twice", "steps:\n  - script: tasks/train.py\n    script: tasks/deploy.py\n", 3,
     ["steps[0].script: duplicate key (first at line 2)"]),
    ("a negative timeout", "steps:\n  - script: tasks/train.py\n    timeout: -5\n", 3,
     ["steps[0].timeout: expected a positive number of seconds (at most ten years), got an integer (-5)"]),
    ("a timeout in words", "steps:\n  - script: tasks/train.py\n    timeout: ten\n", 3,
     ["steps[0].timeout: expected a positive number of seconds (at most ten years), got a string ('ten')"]),
    ("a timeout in exponent form YAML reads as text", "steps:\n  - script: tasks/train.py\n    timeout: 1e3\n", 3,
     ["steps[0].timeout:", "got a string ('1e3'; YAML reads a number in that form as text: write 1.0e+3)"]),
    ("a retry delay in exponent form YAML reads as text",
     "steps:\n  - script: tasks/train.py\n    retries: 1\n    retry_delay: .5E1\n", 4,
     ["steps[0].retry_delay:", "('.5E1'; YAML reads a number in that form as text: write 0.5e+1)"]),
    ("a timeout that is a boolean", "steps:\n  - script: tasks/train.py\n    timeout: true\n", 3,
     ["steps[0].timeout:", "got a boolean (true)"]),
    ("negative retries", "steps:\n  - script: tasks/train.py\n    retries: -1\n", 3,
     ["steps[0].retries: expected a whole number >= 0, got an integer (-1)"]),
    ("fractional retries", "steps:\n  - script: tasks/train.py\n    retries: 1.5\n", 3,
     ["steps[0].retries: expected a whole number >= 0, got a number (1.5)"]),
    ("a negative retry delay", "steps:\n  - script: tasks/train.py\n    retry_delay: -2\n", 3,
     ["steps[0].retry_delay: expected a number of seconds >= 0"]),
    ("env not a mapping", "steps:\n  - script: tasks/train.py\n    env: [A=1]\n", 3,
     ["steps[0].env: expected a mapping of NAME: value, got a list of 1 item"]),
    ("an env value that is a list", "steps:\n  - script: tasks/train.py\n    env:\n      PATHS: [a, b]\n", 4,
     ["steps[0].env.PATHS: expected a string, number or boolean, got a list of 2 items"]),
    ("a cwd that does not exist", "steps:\n  - script: tasks/train.py\n    cwd: nowhere\n", 3,
     ["steps[0].cwd: directory {conf}/nowhere not found"]),
    ("continue_on_failure in words", "steps:\n  - script: tasks/train.py\n    continue_on_failure: 'yes'\n", 3,
     ["steps[0].continue_on_failure: expected true or false, got a string ('yes')"]),
    ("a name that is a list", "steps:\n  - script: tasks/train.py\n    name: [a]\n", 3,
     ["steps[0].name: expected a name of one line, at most 100 characters, without commas", "got a list of 1"]),
    ("two steps with the same explicit name", ("steps:\n  - script: tasks/train.py\n    name: fit\n"
     "  - script: tasks/validate.py\n    name: fit\n"), 5,
     ["steps[1].name: duplicate step name 'fit'", "steps[0].name at line 3"]),
    ("cron a list", "steps:\n  - script: tasks/train.py\ncron:\n  - minute: 1\n", 3,
     ["cron: expected a mapping", "got a list of 1 item"]),
    ("a script that is neither python nor executable", "steps:\n  - script: tasks/plain.sh\n", 2,
     ["steps[0].script: {conf}/tasks/plain.sh is not executable", "chmod +x", "`command:`"]),
    ("a command not on PATH", "steps:\n  - command: lynx-no-such-program --flag\n", 2,
     ["steps[0].command: program 'lynx-no-such-program' not found on PATH"]),
    ("an empty command", "steps:\n  - command: []\n", 2, ["steps[0].command: is empty"]),
    ("a python interpreter not found", "steps:\n  - script: tasks/train.py\n    python: lynx-no-such-python\n",
     3, ["steps[0].python: interpreter 'lynx-no-such-python' not found on PATH"]),
    # Values no program could be given, or no clock could wait for (found by a QA pass).
    ("a NUL in a command word", 'steps:\n  - command: ["/bin/echo", "a\\0b"]\n', 2,
     ["steps[0].command[1]: contains a NUL character (\\0)"]),
    ("a NUL in an env value", 'steps:\n  - script: tasks/train.py\n    env: {A: "x\\0"}\n', 3,
     ["steps[0].env.A: contains a NUL character"]),
    ("a lone surrogate in a name", 'steps:\n  - script: tasks/train.py\n    name: "\\ud800"\n', 3,
     ["steps[0].name: contains a lone surrogate (\\ud800)"]),
    ("a raw NUL byte in the file", "steps:\n  - script: tasks/train.py\n    name: a\0b\n", 3,
     ["not valid YAML: unacceptable character #x0000"]),
    ("a timeout too big for a float", "steps:\n  - script: tasks/train.py\n    timeout: 1" + "0" * 400 + "\n",
     3, ["steps[0].timeout: expected a positive number of seconds (at most ten years), got an integer (100"]),
    ("a retry_delay past ten years", "steps:\n  - script: tasks/train.py\n    retry_delay: 1.0e+29\n", 3,
     ["steps[0].retry_delay: expected a number of seconds >= 0 (at most ten years)"]),
    ("a hook timeout too big for a float", "hooks:\n  on_start: {command: [true], timeout: 1" + "0" * 400
     + "}\nsteps:\n  - script: tasks/train.py\n", 2, ["hooks.on_start.timeout: expected a positive number"]),
    ("a name with a comma", "steps:\n  - script: tasks/train.py\n    name: a,b\n", 3,
     ["steps[0].name: expected a name of one line, at most 100 characters, without commas"]),
    ("a name of two lines", 'steps:\n  - script: tasks/train.py\n    name: "a\\nb"\n', 3,
     ["steps[0].name: expected a name of one line"]),
    ("a blank name", 'steps:\n  - script: tasks/train.py\n    name: "  "\n', 3, ["steps[0].name: expected a name"]),
    ("a name too long", "steps:\n  - script: tasks/train.py\n    name: " + "n" * 101 + "\n", 3,
     ["steps[0].name: expected a name"]),
    ("a command that YAML reads as a boolean", "steps:\n  - command: yes\n", 2,
     ["steps[0].command: 'yes' reads as a boolean in YAML, not a program; quote it (\"yes\")"]),
    ("a hook that YAML reads as a boolean", "hooks:\n  on_start: on\nsteps:\n  - script: tasks/train.py\n", 2,
     ["hooks.on_start: 'on' reads as a boolean"]),
    ("a script that is a directory", "steps:\n  - script: tasks\n", 2,
     ["steps[0].script: {conf}/tasks is a directory; give the file to run"]),
    ("a bad slurm key on a local step", "steps:\n  - script: tasks/train.py\n    slurm: {partitoin: gpu}\n",
     3, ["steps[0].slurm.partitoin: unknown key; did you mean 'partition'?"]),
    ("a timestamp that is not a date", "steps:\n  - script: tasks/train.py\n    name: !!timestamp soon\n", 3,
     ["steps[0].name: cannot read 'soon' as !!timestamp"]),
    ("a python interpreter for a script that is not python",
     "steps:\n  - script: tasks/run.sh\n    python: python3\n", 3,
     ["steps[0].python: only applies to a .py script"]),
]


@pytest.mark.parametrize(("text", "line", "fragments"), [case[1:] for case in BAD_CONFIGS],
                         ids=[case[0] for case in BAD_CONFIGS])
def test_a_bad_config_is_refused_with_one_line_naming_file_line_and_key(
        conf: Path, tmp_path: Path, text: object, line: int | None, fragments: list) -> None:
    path, ran = conf / "bad.yaml", tmp_path / "ran"
    if text is DIRECTORY:
        path.mkdir()
    elif text is not MISSING:
        path.write_text(str(text).replace("{ran}", str(ran)))
    with pytest.raises(ConfigError) as caught:
        load(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:{line}: " if line else f"{path}: ")
    for fragment in fragments:
        assert fragment.replace("{conf}", str(conf)).replace("{cwd}", str(Path.cwd())) in message
    assert "\n" not in message and "Traceback" not in message
    assert not ran.exists()


def test_a_python_tag_is_refused_before_anything_is_built(conf: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    (conf / "evil.yaml").write_text(f"!!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ConfigError, match="refused the tag !!python/object/apply:os.system"):
        load(conf / "evil.yaml")
    assert not marker.exists()


MIXED = """\
executor: local
cron: {second: '*/10', timezone: Europe/Berlin}
hooks:
  on_failure: {command: "sh -c 'echo failed'"}
configs:
  - preprocess: &preprocess
      - script: tasks/preprocess.py
        arguments: ["--samples 400", '--name "my data"']
        env: {SEED: 42, RATE: 0.5, FLAG: yes}
  - run: &run
      - command: [tasks/run.sh, --fast]
        timeout: 1.5
steps:
  - <<: *preprocess
    retries: 2
  - <<: *run
    name: "run it"
  - script: tasks/train.py
    continue_on_failure: true
    cwd: data
"""


@pytest.mark.parametrize("text", [SEED_EXAMPLE, MIXED], ids=["seed-example", "merges-flow-style-quotes"])
def test_the_libyaml_and_the_python_loaders_give_the_same_config(conf: Path, monkeypatch, text) -> None:
    import yaml

    if not getattr(yaml, "__with_libyaml__", False):
        pytest.skip("this PyYAML has no libyaml: only the Python loader exists")
    fast = load_text(conf, text)
    monkeypatch.delattr(yaml, "CSafeLoader")
    assert load_text(conf, text) == fast


# --- configs made to exhaust Lynx (found by a QA pass): refused quickly, in one line ---------------------

@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_a_config_from_a_pipe_is_read_like_a_file(conf: Path, tmp_path: Path) -> None:
    # `lynx check -cf <(make-config)` hands Lynx a pipe.
    import threading

    os.mkfifo(tmp_path / "pipe")
    text = f"steps:\n  - script: {conf / 'tasks' / 'train.py'}\n"
    writer = threading.Thread(target=(tmp_path / "pipe").write_text, args=(text,), daemon=True)
    writer.start()
    try:
        assert [step.name for step in load(tmp_path / "pipe").steps] == ["train"]
    finally:
        writer.join(timeout=10)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_an_endless_device_as_the_config_is_refused_instead_of_read(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="^/dev/zero: a device or socket, not a config file"):
        load("/dev/zero")


def test_a_config_larger_than_any_real_one_is_refused(tmp_path: Path) -> None:
    from lynx.yamlsafe import MAX_CONFIG_BYTES

    path = tmp_path / "huge.yaml"
    path.write_bytes(b"# padding\n" * (MAX_CONFIG_BYTES // 10 + 1))
    with pytest.raises(ConfigError, match=r"huge\.yaml: larger than 16 MiB"):
        load(path)


@pytest.mark.parametrize("depth", [900, 1200], ids=["deep-for-python", "deep-for-libyaml-too"])
def test_lists_nested_hundreds_deep_are_refused_in_one_line(conf: Path, depth: int) -> None:
    text = "steps:\n  - script: tasks/train.py\n    arguments: " + "[" * depth + "a" + "]" * depth + "\n"
    with pytest.raises(ConfigError) as caught:
        load_text(conf, text)
    assert str(caught.value).startswith(str(conf / "config.yaml")) and "\n" not in str(caught.value)


def test_aliases_of_aliases_in_cron_are_refused_before_they_expand(conf: Path) -> None:
    levels = "".join(f"  a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]\n" for n in range(1, 9))
    text = "steps:\n  - script: tasks/train.py\ncron:\n  a0: &a0 x\n" + levels
    with pytest.raises(ConfigError, match=r"cron: expands into more than 100000 values"):
        load_text(conf, text)   # 10**8 values if expanded: this would not return


def test_a_mapping_merged_again_and_again_is_merged_once(conf: Path) -> None:
    levels = "".join(f"  - l{n}: &l{n}\n      <<: [{', '.join([f'*l{n - 1}'] * 10)}]\n" for n in range(1, 9))
    text = ("configs:\n  - l0: &l0\n      script: tasks/train.py\n" + levels
            + "steps:\n  - <<: *l8\n    name: deep\n")
    config = load_text(conf, text)   # 10**8 merges if each were expanded again
    assert [step.name for step in config.steps] == ["deep"]
    assert config.steps[0].script == str(conf / "tasks" / "train.py")


def test_thousands_of_steps_of_one_script_are_numbered_in_order(conf: Path) -> None:
    config = load_text(conf, "steps:\n" + "  - script: tasks/train.py\n" * 3000 + "  - script: tasks/train.py\n"
                       "    name: train-7\n")
    names = [step.name for step in config.steps]
    assert names[:6] == ["train", "train-2", "train-3", "train-4", "train-5", "train-6"]
    assert names[6] == "train-8" and names[-1] == "train-7" and len(set(names)) == len(names) == 3001


def test_a_directory_beside_the_config_does_not_hide_the_script_in_the_current_one(conf: Path) -> None:
    (conf / "tools.py").mkdir()
    (Path.cwd() / "tools.py").write_text("print('here')\n")   # the fixture's current directory is elsewhere
    config = load_text(conf, "steps:\n  - script: tools.py\n")
    assert config.steps[0].script == str(Path.cwd() / "tools.py")


def test_a_quoted_exponent_is_text_on_purpose_and_gets_no_hint(conf: Path) -> None:
    (conf / "config.yaml").write_text('steps:\n  - script: tasks/train.py\n    timeout: "1e3"\n')
    with pytest.raises(ConfigError) as error:
        load(conf / "config.yaml")
    assert str(error.value).endswith("got a string ('1e3')")


def test_numbers_in_yaml_s_own_exponent_form_are_read_as_numbers(conf: Path) -> None:
    (conf / "config.yaml").write_text("steps:\n  - script: tasks/train.py\n    timeout: 1.0e+3\n"
                                      "    retries: 1\n    retry_delay: 2.5e-1\n")
    step = load(conf / "config.yaml").steps[0]
    assert (step.timeout, step.retry_delay) == (1000.0, 0.25)



@pytest.mark.parametrize("text", ["steps:\n  - script: tasks/train.py\n    retries: 1e3\n",
                                  "steps:\n  - script: tasks/train.py\n    timeout: 1e999\n",
                                  "steps:\n  - script: tasks/train.py\n    retries: 1\n    retry_delay: -2e1\n",
                                  "steps: 1e3\n"],
                         ids=["a whole number wanted", "too large as a float", "negative", "not a value at all"])
def test_the_exponent_hint_comes_only_where_the_number_it_suggests_would_do(conf: Path, text: str) -> None:
    (conf / "config.yaml").write_text(text)
    with pytest.raises(ConfigError) as error:
        load(conf / "config.yaml")
    assert "YAML reads" not in str(error.value)
