"""Lynx: chain the scripts of a pipeline and run them once or on a cron schedule."""

__version__ = "0.1.0"
