"""Load a pipeline config: safe YAML with line numbers, validated into frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Tuple

from lynx.errors import ConfigError  # noqa: F401  (raised by load)


@dataclass(frozen=True)
class Step:
    """One step, resolved: exactly what will run."""

    name: str
    argv: Tuple[str, ...]          # the full command: interpreter, script, arguments
    line: int                      # line of the step in the config file
    script: Optional[Path] = None  # absolute path of the script, if the step has one
    cwd: Optional[Path] = None     # None: the directory Lynx was started in
    env: Mapping[str, str] = field(default_factory=dict)
    timeout: Optional[float] = None
    retries: int = 0
    retry_delay: float = 0.0
    continue_on_failure: bool = False


@dataclass(frozen=True)
class CronSection:
    """The raw `cron` mapping with the line of each key, validated by cron.build."""

    values: Mapping[str, Any]
    lines: Mapping[str, int]       # line of each key
    line: int                      # line of the `cron:` key itself
    source: str                    # the config path as the user named it

    def where(self, key: str) -> str:
        """'FILE:LINE: cron.KEY', the prefix of every error about that key."""
        return f"{self.source}:{self.lines.get(key, self.line)}: cron.{key}"


@dataclass(frozen=True)
class Config:
    path: Path                     # absolute path of the config file
    steps: Tuple[Step, ...]
    cron: Optional[CronSection] = None


def load(path: str | Path) -> Config:
    """Read and validate the config at `path`; raise ConfigError naming file, line and key."""
    raise NotImplementedError
