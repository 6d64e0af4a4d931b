import sys

from lynx.cli import entry

sys.exit(entry())
